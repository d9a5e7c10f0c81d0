"""The registry of the command line's subcommands: each command module registers its commands
with ``@command(name, help)``; ``fisherae.cli`` builds its parser from ``COMMANDS``."""

from __future__ import annotations

from typing import Callable

COMMANDS: dict[str, tuple[str, Callable]] = {}


def command(name: str, help: str):
    """Register ``setup(parser) -> run(args)`` as the subcommand ``name``."""
    def register(setup: Callable) -> Callable:
        COMMANDS[name] = (help, setup)
        return setup
    return register
