"""Publishing a run: its MNIST figures, tables and the CSVs behind them copied from a results root,
with the config it was made with, job timings and a manifest of checksums, into a directory that
is committed (e.g. results/published/mnist-cpu)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from fisherae.config import config_named_in
from fisherae.errors import UserError

# What is copied from a results root: the MNIST figures, the tables and the CSVs behind them, with
# every per-run CSV (the whole-test-set NMI and the snapshots' sweeps and NMI included), so that
# claims over several published parts need nothing else.
PUBLISHED = ("figures/figure[1-4]_mnist_*.png", "figures/figure[1-4]_mnist_*.csv", "tables/*",
             "sweeps/mnist/*/*.csv", "latent/mnist/*/*.csv", "latent_full/mnist/*/*.csv",
             "snapshots/mnist/*/*/epoch*/*.csv", "fid/mnist/*/*.csv", "fid_exact/mnist/*/*.csv",
             "diagnostics/mnist/*/*.csv",
             "sampling/mnist/*/*.csv", "runs/mnist/*/*/metrics.csv", "classifier/mnist.json")
# The logs whose first line names the config (under configs/) the run was made with, published as
# config.yaml: the run's last job, or else (a part published before its claims ran) a figure's.
CONFIG_LOGS = ("logs/tables/claims_mnist.log", "logs/figures/figure1_mnist_bce.log")


def publish(results: Path, out: Path) -> int:
    """(Re)create ``out`` from the run under ``results`` in one rename; the number of files listed
    in its MANIFEST.csv."""
    files = sorted({p for pattern in PUBLISHED for p in results.glob(pattern) if p.is_file()})
    if not any(p.match("figures/*.png") for p in files):
        raise UserError(f"{results} holds no MNIST figures; run the DAG first (snakemake --configfile ...)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = [_copy(p, p.relative_to(results), staging) for p in files]
        config = next(filter(None, (config_named_in(results / log) for log in CONFIG_LOGS)), None)
        if config:
            manifest.append(_copy(results / "configs" / Path(config).name, Path("config.yaml"), staging))
        manifest.sort(key=lambda row: Path(row["path"]))
        job_timings(results).to_csv(staging / "timings.csv", index=False)
        pd.DataFrame(manifest).to_csv(staging / "MANIFEST.csv", index=False)
        _replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(manifest)


def _copy(path: Path, relative: Path, staging: Path) -> dict:
    """``path`` copied to ``relative`` under ``staging``; its manifest row."""
    target = staging / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return {"path": str(relative), "bytes": target.stat().st_size,
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}


def job_timings(results: Path) -> pd.DataFrame:
    """Wall seconds, CPU seconds and peak memory of every job, from Snakemake's benchmark files."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        bench = pd.read_csv(tsv, sep="\t")
        job = tsv.relative_to(results / "benchmarks").with_suffix("")
        rows.append({"job": str(job), "wall_s": bench["s"].iloc[-1], "cpu_s": bench["cpu_time"].iloc[-1],
                     "max_rss_mb": bench["max_rss"].iloc[-1]})
    return pd.DataFrame(rows, columns=["job", "wall_s", "cpu_s", "max_rss_mb"])


def _replace_dir(new: Path, old: Path) -> None:
    """Put ``new`` at ``old``'s path; the previous directory is removed only once the new one is in place."""
    backup = old.with_name(f".{old.name}.old.{os.getpid()}")
    if old.exists():
        old.rename(backup)
    try:
        new.rename(old)
    except BaseException:
        if backup.exists():
            backup.rename(old)
        raise
    shutil.rmtree(backup, ignore_errors=True)
