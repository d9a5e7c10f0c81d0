"""The one command line: ``python -m fisherae <command> ...``. Every Snakemake rule calls it.

Each command is registered with ``@command(name, help)`` on a function that adds its
arguments to a parser and returns the function that runs it."""

from __future__ import annotations

import argparse
import sys
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
        args.run(args)
    except (ConfigError, UserError, FileNotFoundError) as err:
        print(f"fisherae {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


def _load_commands() -> None:
    """Import the modules whose commands register themselves."""
    import fisherae.commands  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
