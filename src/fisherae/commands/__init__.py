"""CLI commands, one module per pipeline stage; importing them registers them in
``fisherae.commands.registry``, which ``fisherae.cli`` reads."""

from fisherae.commands import train  # noqa: F401
from fisherae.commands import evaluate  # noqa: F401
from fisherae.commands import data  # noqa: F401
from fisherae.commands import fid, report, sampling  # noqa: F401
