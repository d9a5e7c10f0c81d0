"""``publish``: a run's results copied with checksums into a directory that is committed
(``fisherae.publish``; docs/cli.md)."""

from __future__ import annotations

from pathlib import Path

from fisherae.commands.registry import command


@command("publish", "copy a run's MNIST figures 1-4, tables and the CSVs behind them, with checksums, into a directory")
def setup_publish(parser):
    parser.add_argument("--results", required=True, help="the run's results root (the config's `results:`)")
    parser.add_argument("--out", required=True, help="directory to (re)create, e.g. results/published/mnist-cpu")
    return run_publish


def run_publish(args) -> None:
    from fisherae.publish import publish

    out = Path(args.out)
    n_files = publish(Path(args.results), out)
    print(f"{out}: {n_files} files")
