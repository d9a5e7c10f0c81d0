"""The claims, their sensitivity to the readings and their trajectory over epochs, as Markdown
(fisherae.claims computes them; this module only lays them out)."""

from __future__ import annotations

import math

import pandas as pd

from fisherae.claims import COMPARABLE, READINGS, Evidence, Judged, verdict_rows
from fisherae.markdown import markdown_table
from fisherae.run_summaries import FINAL
from fisherae.seed_stats import mean_interval

METHOD = ("Unit: the training seed. Each run gives one number per claim (a curve: its mean over the σ² > 0 "
          "levels); the verdict comes from the Welch 95 % interval of the difference of the seed means "
          "(ours − baseline): wholly on the paper's side → reproduced, wholly on the other → contradicted, "
          "otherwise inconclusive (a tie, or one seed: no interval). Against several baselines: contradicted if "
          "any is, reproduced if all are. A collapsed encoder (clean error > 0.9 × the mean image's) downgrades "
          f"a robustness claim to inconclusive. 'Comparable' means within ±{COMPARABLE:.0%}.")
COLUMNS_NOTE = ("CSV columns: claim, arm (the role judged as 'the Fisher AE': fisher_exp = the paper's arm, "
                "authors = the authors' code; 2x2 for the factor claims), figure, statement, criterion, verdict, "
                "reason, then per baseline: versus (its role), model, other_model, epoch, other_epoch, n_seeds, "
                "n_seeds_other, mean, mean_other, difference (mean − mean_other), ci_low, ci_high (its Welch 95 % "
                "interval) and comparison (that baseline's verdict).")


def _cell(i) -> str:
    if i.n == 0:
        return "—"
    ci = "" if math.isnan(i.low) else f" [{i.low:.4g}, {i.high:.4g}]"
    return f"{i.mean:.4g}{ci} (n={i.n})"


SUMMARY = {"clean BCE": ("clean_bce", "clean"), "nBCE (mean σ² > 0)": ("nbce", "variance/mean"),
           "NMI (mean σ² > 0)": ("nmi", "variance/mean"), "domain FID": ("fid", "-"),
           "domain FID, exact prior samples": ("fid_exact", "-"),
           "error / mean-image error": ("error_ratio", "-"), "latent probe acc.": ("probe_accuracy", "-")}


def model_summary(ev: Evidence) -> pd.DataFrame:
    """One row per model with runs: seed mean [95 % interval] (n seeds) of the numbers behind the claims."""
    rows = []
    for model in ev.labels:
        if model in set(ev.runs["model"]):
            cells = [_cell(mean_interval(ev.seed_values(model, q, r, FINAL).to_numpy())) for q, r in SUMMARY.values()]
            rows.append([ev.labels[model], *cells])
    return pd.DataFrame(rows, columns=["model", *SUMMARY])


def claims_markdown(ev: Evidence, judged: list[Judged], header: str, notes: list[tuple[str, str]]) -> str:
    """The claims (one row per claim and arm) and the numbers per model, under ``header``."""
    table = pd.DataFrame(verdict_rows(ev, judged))
    statements = {j.claim.claim: (j.claim.figure, j.claim.statement) for j in judged}
    table.insert(1, "figure", [statements[c][0] for c in table["claim"]])
    table.insert(2, "claim tested", [statements[c][1] for c in table["claim"]])
    return "\n".join([header, "", METHOD, "", markdown_table(table.rename(columns={"evidence": "ours − baseline "
                                                                                     "[95 % interval]"})),
                      "", COLUMNS_NOTE, "", "## Numbers per model (final epoch)", "",
                      markdown_table(model_summary(ev)), "", *notes_section(notes)])


def notes_section(notes: list[tuple[str, str]]) -> list[str]:
    """The readings skipped for want of noise levels: each once, with the runs it concerns."""
    runs: dict[str, list[str]] = {}
    for note, run in notes:
        runs.setdefault(note, []).append(run)
    lines = [f"- {note} ({', '.join(sorted(set(found)))})" for note, found in runs.items()]
    return ["## Readings skipped", "", *lines, ""] if lines else []


def sensitivity_markdown(table: pd.DataFrame) -> str:
    readings = "\n".join(f"- `{r.name}`: {r.description}" for r in READINGS)
    flips = table[table["flips"] == "yes"]
    return "\n".join(["# MNIST claims: sensitivity to the readings", "", "Readings (each changes one thing "
                      "relative to the primary one):", "", readings, "",
                      f"{len(flips)} verdict(s) flip relative to the primary reading"
                      + (": " + ", ".join(f"{c} ({a}, {r})" for c, a, r in
                                          zip(flips["claim"], flips["arm"], flips["reading"])) if len(flips) else ""),
                      "", markdown_table(table), ""])


def trajectory_markdown(summaries: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    return "\n".join(["# MNIST claims over training epochs", "", "The primary Figure 1 (normalised BCE) and "
                      "Figure 3 (NMI) summaries per model at each snapshot epoch and the final one (mean and 95 % "
                      "interval over seeds):", "", markdown_table(summaries.round(4)), "",
                      "## Verdicts at each epoch (every model at that epoch)", "", markdown_table(verdicts), ""])
