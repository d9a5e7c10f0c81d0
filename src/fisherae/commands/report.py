"""``claims`` (the paper's MNIST claims tested on a run) and ``publish`` (a run's results, copied
with checksums into a directory that is committed, e.g. results/published/)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from fisherae.claims import CLAIM_COLUMNS
from fisherae.commands.common import config_named_in, read_config
from fisherae.commands.registry import command
from fisherae.errors import UserError

# What `publish` copies from a results root: the MNIST figures, the tables and the CSVs behind them.
PUBLISHED = ("figures/figure[1-4]_mnist_*.png", "figures/figure[1-4]_mnist_*.csv", "tables/*",
             "sweeps/mnist/*/*.csv", "latent/mnist/*/*.csv", "fid/mnist/*/*.csv", "diagnostics/mnist/*/*.csv",
             "sampling/mnist/*/*.csv", "runs/mnist/*/*/metrics.csv", "classifier/mnist.json")
# The log of the run's last job, whose first line names the config (under configs/) it was made with:
# published as config.yaml.
CLAIMS_LOG = "logs/tables/claims_mnist.log"


# --------------------------------------------------------------------------- claims

@command("claims", "the paper's MNIST claims (Figures 1-3, Table 1's ordering) tested on one run: CSV + Markdown")
def setup_claims(parser):
    parser.add_argument("--config", required=True, help="the run's YAML config (models, labels, grid noise)")
    parser.add_argument("--figure1", required=True, help="figure1_mnist_bce.csv written by `figure`")
    parser.add_argument("--figure3", required=True, help="figure3_mnist_nmi.csv written by `figure`")
    parser.add_argument("--table1", required=True, help="table1_fid.csv written by `table1`")
    parser.add_argument("--classifier", help="the MNIST classifier's metrics JSON (its test accuracy is quoted)")
    parser.add_argument("--diagnostics", nargs="*", default=[], help="CSVs written by `diagnose`")
    parser.add_argument("--out-csv", required=True, help="CSV: " + ", ".join(CLAIM_COLUMNS))
    parser.add_argument("--out-md", required=True, help="Markdown: the claims and the numbers per model")
    return run_claims


def _read_csv(path: str, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise UserError(f"{path} is not a readable {what} CSV ({err}); regenerate it with the pipeline") from err


def _classifier_accuracy(path: str | None) -> str:
    if path is None:
        return "no domain classifier given"
    try:
        metrics = json.loads(Path(path).read_text())
        return f"domain classifier test accuracy {metrics['test_accuracy']:.4f} ({metrics['n_test']} test digits)"
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path} is not the metrics JSON written by `train-classifier` ({err})") from err


def run_claims(args) -> None:
    from fisherae.checkpoint import atomic_write_text
    from fisherae.claims import per_model, evaluate_claims, load_evidence, model_roles, model_summary

    config = read_config(args)
    labels = {name: spec.get("label", name) for name, spec in config["models"].items()}
    grid_sigma2 = config["evaluation"]["grids"]["noise_sigma2"].get("mnist", 0.2)
    try:
        diagnostics = pd.concat([_read_csv(p, "diagnostics") for p in args.diagnostics] or [pd.DataFrame()])
        evidence = load_evidence(_read_csv(args.figure1, "Figure 1"), _read_csv(args.figure3, "Figure 3"),
                                 _read_csv(args.table1, "Table 1"), diagnostics, labels, grid_sigma2)
        claims = evaluate_claims(evidence, model_roles(config["models"]))
        models = [m for m in config["models"] if m in set(evidence.bce["model"])]
        summary = model_summary(evidence, per_model(diagnostics, "probe_accuracy"), models)
    except KeyError as err:
        raise UserError(f"claims: a model or noise level is missing from the inputs ({err}); give the figures and "
                        "tables of one run made from --config") from err
    atomic_write_text(args.out_csv, claims.to_csv(index=False))
    atomic_write_text(args.out_md, _claims_markdown(claims, summary, _classifier_accuracy(args.classifier), config))
    print(args.out_md)


def _claims_markdown(claims: pd.DataFrame, summary: pd.DataFrame, classifier: str, config: dict) -> str:
    from fisherae.claims import SE_FACTOR
    from fisherae.commands.common import markdown_table

    shown = claims.rename(columns={"statement": "claim tested", "evidence": "our numbers"})
    return "\n".join([
        "# MNIST: the paper's claims tested on this run", "",
        f"Run: `{config['results']}`, training seeds {config['seeds']}; {classifier}. Verdicts are computed "
        f"(`python -m fisherae claims`): two means tie when they are within {SE_FACTOR:g} combined standard "
        "errors (sd/√n over test batches, t-SNE/k-means seeds or FID draws).", "",
        markdown_table(shown[["claim", "figure", "claim tested", "criterion", "verdict", "our numbers"]]), "",
        "## Numbers per model", "",
        markdown_table(summary), "",
        "BCE: per-image binary cross-entropy of f(μ(x + noise)) against the clean x (sum over 784 pixels); "
        "nBCE = BCE(σ²)/BCE(0). NMI: mean ± sd over t-SNE/k-means seeds. Domain FID: Fréchet distance of "
        "prior samples' decodings to the test digits in the classifier's penultimate layer (mean ± sd over "
        "draws). Error / mean-image error: the σ² = 0 squared error of f(μ(x)) over that of the mean training "
        "image (≈ 1: the encoder carries no information). Latent probe: logistic regression on μ(x).", ""])


# --------------------------------------------------------------------------- publish

@command("publish", "copy a run's MNIST figures 1-4, tables and the CSVs behind them, with checksums, into a directory")
def setup_publish(parser):
    parser.add_argument("--results", required=True, help="the run's results root (the config's `results:`)")
    parser.add_argument("--out", required=True, help="directory to (re)create, e.g. results/published/mnist-cpu")
    return run_publish


def run_publish(args) -> None:
    results = Path(args.results)
    files = sorted({p for pattern in PUBLISHED for p in results.glob(pattern) if p.is_file()})
    if not any(p.match("figures/*.png") for p in files):
        raise UserError(f"{results} holds no MNIST figures; run the DAG first (snakemake --configfile ...)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = [_copy(p, p.relative_to(results), staging) for p in files]
        config = config_named_in(results / CLAIMS_LOG)
        if config:
            manifest.append(_copy(results / "configs" / Path(config).name, Path("config.yaml"), staging))
        manifest.sort(key=lambda row: Path(row["path"]))
        _job_timings(results).to_csv(staging / "timings.csv", index=False)
        pd.DataFrame(manifest).to_csv(staging / "MANIFEST.csv", index=False)
        _replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"{out}: {len(manifest)} files")


def _copy(path: Path, relative: Path, staging: Path) -> dict:
    """``path`` copied to ``relative`` under ``staging``; its manifest row."""
    target = staging / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return {"path": str(relative), "bytes": target.stat().st_size,
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}


def _job_timings(results: Path) -> pd.DataFrame:
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
    new.rename(old)
    shutil.rmtree(backup, ignore_errors=True)
