"""CLI commands, one module per pipeline stage; importing them registers them with fisherae.cli."""

from fisherae.commands import train  # noqa: F401
