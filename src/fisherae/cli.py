"""The one command line: ``python -m fisherae <command> ...``. Every Snakemake rule calls it.

Each command is registered with ``@command(name, help)`` (``fisherae.commands.registry``) on a
function that adds its arguments to a parser and returns the function that runs it. Any
``fisherae.errors.FisherAEError`` becomes one line on stderr and exit code 2; Ctrl-C or SIGTERM
one line and exit code 128 + the signal's number."""

from __future__ import annotations

import argparse
import signal
import sys

import fisherae.commands  # noqa: F401  (importing the command modules registers their commands)
from fisherae.commands.registry import COMMANDS
from fisherae.errors import FisherAEError
from fisherae.interrupts import sigterm_interrupts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fisherae", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, setup) in sorted(COMMANDS.items()):
        sub_parser = sub.add_parser(name, help=help_, description=help_)
        sub_parser.set_defaults(run=setup(sub_parser))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with sigterm_interrupts():
            args.run(args)
    except (FisherAEError, OSError) as err:  # OSError: a path missing, unwritable, a full disk
        print(f"fisherae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM: one line, no traceback
        signum = getattr(err, "signum", signal.SIGINT)
        detail = f": {err}" if str(err) else ""
        print(f"fisherae {args.command}: interrupted by {signal.Signals(signum).name}{detail}", file=sys.stderr)
        return 128 + signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
