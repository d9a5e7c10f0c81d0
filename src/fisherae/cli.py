"""The one command line: ``python -m fisherae <command> ...``. Every Snakemake rule calls it.

Each command is registered with ``@command(name, help)`` on a function that adds its
arguments to a parser and returns the function that runs it."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

from fisherae.config import ConfigError

_COMMANDS: dict[str, tuple[str, Callable]] = {}


def command(name: str, help: str):
    """Register ``setup(parser) -> run(args)`` as the subcommand ``name``."""
    def register(setup: Callable) -> Callable:
        _COMMANDS[name] = (help, setup)
        return setup
    return register


class UserError(RuntimeError):
    """A failure caused by input (config, data, checkpoint): printed without a traceback."""


class Interrupted(KeyboardInterrupt):
    """A stop asked for by ``signum``: SIGINT (Ctrl-C) or SIGTERM (how SLURM and Snakemake stop a
    job). Raised as an exception so that atomic writes clean up; ``str()`` says what was kept."""

    def __init__(self, signum: int = signal.SIGINT, detail: str = ""):
        super().__init__(detail)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block has run (say, the files of one training epoch are
    written), then act on them as they would have acted. Outside the main thread (where Python
    runs signal handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda received, frame: held.append(received))
                for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fisherae", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, setup) in sorted(_COMMANDS.items()):
        sub_parser = sub.add_parser(name, help=help_, description=help_)
        sub_parser.set_defaults(run=setup(sub_parser))
    return parser


def main(argv: list[str] | None = None) -> int:
    _load_commands()
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_interrupts():
            args.run(args)
    except (ConfigError, UserError, FileNotFoundError) as err:
        print(f"fisherae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM: one line, no traceback
        signum = getattr(err, "signum", signal.SIGINT)
        detail = f": {err}" if str(err) else ""
        print(f"fisherae {args.command}: interrupted by {signal.Signals(signum).name}{detail}", file=sys.stderr)
        return 128 + signum
    return 0


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises Interrupted while the block runs, as Ctrl-C raises KeyboardInterrupt (in the
    main thread, and unless SIGTERM is ignored)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _stop(signum: int, frame) -> None:
    raise Interrupted(signum)


def _load_commands() -> None:
    """Import the modules whose commands register themselves."""
    import fisherae.commands  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
