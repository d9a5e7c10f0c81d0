"""The paper's Table 1 beside ours: the FID of prior samples per data set, model and feature
space (mean +- sd over seeds and draws), the paper's number where there is one, and whether ours
is comparable to it, saying why not (``fisherae.paper.TABLE1``: CelebA, Inception features,
enough samples, the paper's training setting)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fisherae.config import model_setting
from fisherae.errors import UserError
from fisherae.fid import FID_COLUMNS
from fisherae.markdown import markdown_table
from fisherae.metrics import INCEPTION_FEATURES
from fisherae.paper import TABLE1, paper_algorithm

TABLE1_COLUMNS = ["algorithm", "dataset", "model", "features", "status", "fid_mean", "fid_sd", "n_seeds", "n_draws",
                  "n_samples", "paper_fid", "paper_sd", "comparable", "note"]


def read_fid_csvs(paths: list[str]) -> pd.DataFrame:
    """The CSVs written by ``fid``, concatenated; a UserError naming any that is not one."""
    frames = []
    for path in paths:
        try:
            frame = pd.read_csv(path, dtype={"draw": str}, keep_default_na=False, na_values=[""])
        except (OSError, ValueError) as err:  # pandas' parser errors and a file not UTF-8 are ValueErrors
            raise UserError(f"table1: cannot read {path} ({err}); rerun `python -m fisherae fid` for it") from err
        missing = set(FID_COLUMNS) - set(frame.columns)
        if missing:
            raise UserError(f"table1: {path} lacks column(s) {sorted(missing)}; it is not a `fid` CSV — rerun `fid`")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def paper_setting_gaps(config: dict, model: str) -> list[str]:
    """How the configured CelebA run of ``model`` differs from the setting behind the paper's Table 1."""
    data, training = config["datasets"].get("celeba", {}), config["training"]
    settings = {key: data.get(key) for key in TABLE1.data} | {"latent_dim": data.get("latent_dim") or 64}
    gaps = [f"datasets.celeba.{key} = {settings[key]} (paper: {value})"
            for key, value in TABLE1.data.items() if settings[key] != value]
    gaps += [f"training.{key} = {training[key]} (paper: {value})"
             for key, value in TABLE1.training.items() if training[key] != value]
    if config["models"].get(model, {}).get("prior") == "polynomial":
        order, normalisable = (model_setting(config, model, key) for key in ("poly_order", "poly_normalisable"))
        if (order, normalisable) != (TABLE1.poly_order, False):
            gaps.append(f"polynomial prior K = {order}, normalisable form = {normalisable} "
                        f"(paper: K = {TABLE1.poly_order}, unconstrained)")
    return gaps


def _paper_cell(dataset: str, features: str) -> bool:
    """Whether (dataset, features) is a cell of the paper's Table 1."""
    return (dataset, features) == (TABLE1.dataset, INCEPTION_FEATURES)


def table1(fids: pd.DataFrame, config: dict) -> pd.DataFrame:
    """One row per (dataset, model, features): mean +- sd of the per-draw FIDs over seeds and
    draws, the paper's value (CelebA, Inception) and whether ours is comparable to it: only
    CelebA, Inception features, >= 10 000 samples, trained in the paper's setting."""
    models = config["models"]
    rows = []
    for (dataset, model, features), group in fids.groupby(["dataset", "model", "features"], sort=True):
        entry = models.get(model, {"method": "unknown"})
        # the entry alone decides (not training.poly_normalisable): a polynomial-prior Fisher AE is the
        # Exp.-prior row, with K and the form noted as gaps, unless its entry opts into the
        # normalisable arm (beyond the paper, no row)
        algorithm = paper_algorithm(entry) if model in models else None
        draws = group[(group["status"] == "ok") & (group["draw"] != "mean")]
        paper = TABLE1.fid.get(algorithm) if _paper_cell(dataset, features) else None
        n_samples = int(group["n_samples"].min())
        reasons = []
        if dataset != TABLE1.dataset:
            reasons.append(f"{dataset} (the paper reports CelebA only)")
        if features != INCEPTION_FEATURES:
            reasons.append(f"{features} features (the paper uses Inception pool3)")
        if draws.empty:
            why = {str(r).split(". ")[0] for r in group["reason"].dropna()}  # first sentences; full text in the fid CSV
            reasons.append("no FID: " + "; ".join(sorted(why)))
        if n_samples < TABLE1.min_samples:
            reasons.append(f"{n_samples} samples (< {TABLE1.min_samples})")
        if algorithm is None:
            reasons.append("no counterpart in the paper's Table 1")
        if dataset == TABLE1.dataset:
            reasons += paper_setting_gaps(config, model)
        rows.append({
            "algorithm": entry.get("label") or algorithm or model, "dataset": dataset, "model": model,
            "features": features, "status": "ok" if not draws.empty else "unavailable",
            "fid_mean": draws["fid"].mean() if not draws.empty else np.nan,
            "fid_sd": draws["fid"].std(ddof=1) if len(draws) > 1 else np.nan,
            "n_seeds": draws["seed"].nunique(), "n_draws": len(draws), "n_samples": n_samples,
            "paper_fid": paper[0] if paper else np.nan, "paper_sd": paper[1] if paper else np.nan,
            "comparable": "yes" if not reasons else "no", "note": "; ".join(reasons),
        })
    ours = {paper_algorithm(models[r["model"]]) for r in rows
            if _paper_cell(r["dataset"], r["features"]) and r["model"] in models}
    for algorithm, (value, sd) in TABLE1.fid.items():
        if algorithm not in ours:
            rows.append({"algorithm": algorithm, "dataset": TABLE1.dataset, "model": "",
                         "features": INCEPTION_FEATURES, "status": "not run", "fid_mean": np.nan, "fid_sd": np.nan,
                         "n_seeds": 0, "n_draws": 0, "n_samples": 0, "paper_fid": value, "paper_sd": sd,
                         "comparable": "no", "note": "paper value only: not run in this configuration"})
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def _plus_minus(mean, sd) -> str:
    if pd.isna(mean):
        return "—"
    decimals = max(1, 2 - int(np.floor(np.log10(max(abs(mean), 1e-12)))))  # 89.1, 7.45, 0.756
    return f"{mean:.{decimals}f} ± {sd:.{decimals}f}" if not pd.isna(sd) else f"{mean:.{decimals}f}"


def table1_markdown(table: pd.DataFrame) -> str:
    """``table1``'s rows as the Markdown of tables/table1_fid.md, with what makes them comparable."""
    rows = [[r.algorithm, r.dataset, r.features, _plus_minus(r.fid_mean, r.fid_sd) if r.status == "ok" else r.status,
             f"{r.n_seeds} × {r.n_draws // max(r.n_seeds, 1)}", r.n_samples, _plus_minus(r.paper_fid, r.paper_sd),
             f"{r.comparable}{': ' + r.note if r.note else ''}"] for r in table.itertuples()]
    columns = ["Algorithm", "Data set", "Features", "Ours (mean ± sd)", "Seeds × draws", "Samples",
               "Paper (CelebA, Inception)", "Comparable"]
    lines = ["# Table 1: FID of prior samples (smaller is better)", "",
             markdown_table(pd.DataFrame(rows, columns=columns))]
    lines += ["", "The paper's numbers are FIDs on CelebA 64×64 with Inception pool3 (2048-d) features "
              "(Elkhalil et al., 2021, Table 1). Ours are comparable only for CelebA with "
              "`inception-pool3-2048` features and at least "
              f"{TABLE1.min_samples} samples (the paper states no count: this is the minimum Heusel et al., "
              "2017, recommend); `mnist-classifier-penultimate` is the Fréchet distance in the "
              "penultimate layer of a small MNIST classifier trained here (Inception features fit 28×28 "
              "digits poorly) and has no counterpart in the paper. Mean ± sd over all seeds × draws.", ""]
    return "\n".join(lines)
