"""The report of ``sample --report``: per latent dimension and sampler, KS / W1 against the exact
marginal where that factor of the prior is normalisable, time, and where SVGD particles drifted
(``fisherae.sampling.drift_diagnostics``) where it is not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fisherae.metrics import marginal_distances
from fisherae.prior_analysis import marginal_grid

REPORT_COLUMNS = ["dataset", "model", "seed", "dim", "method", "normalisable", "problem", "n", "seconds",
                  "ks", "ks_pvalue", "w1", "mean", "sd", "escape_region", "escaping_start", "escaping_half",
                  "escaping_end", "mean_shift_second_half_sd", "note"]
DRIFT_COLUMNS = ("escape_region", "escaping_start", "escaping_half", "escaping_end", "mean_shift_second_half_sd")
RUNAWAY_FRACTION = 0.01  # more particles than this past the escape point: the samples are drift


def runaway_warning(drift: list[dict]) -> str | None:
    """What to say loudly when some dimensions' SVGD particles (``drift_diagnostics`` rows) ended in
    a tail where the prior rises without bound (None when none did)."""
    runaways = [r for r in drift if r["escaping_end"] > RUNAWAY_FRACTION]
    if not runaways:
        return None
    where = "; ".join(f"dim {r['dim']}: {r['escaping_end']:.1%} of particles in {r['escape_region']}, "
                      f"mean {r['mean_end']:.3g}" for r in runaways)
    return (f"SVGD particles ran into the unbounded tail of the prior ({where}). They are not samples of any "
            "distribution: decodings and FIDs of them measure the drift. Retrain with "
            "training.poly_normalisable: true for a prior that can be sampled.")


def sampling_report(prior, samples, problems: dict[int, str], drift: list[dict],
                    grid_points: int = 20001) -> pd.DataFrame:
    """Per dimension and method: KS / W1 against the exact marginal where that factor is
    normalisable (``problems``: dim -> why not; a stated NaN with a note there), time, and the SVGD
    ``drift`` diagnostics (``drift_diagnostics`` rows; empty for exact samples)."""
    problem = {j: problems.get(j, "") for j in range(prior.dim)}
    good = [j for j, why in problem.items() if not why]
    grid = marginal_grid(prior, grid_points, dims=good) if good else None
    runs = [(samples.method, samples.z, samples.seconds)]
    if samples.z_exact is not None:
        runs.append(("exact", samples.z_exact, samples.seconds_exact))
    drift = {row["dim"]: row for row in drift}
    rows = []
    for method, z, seconds in runs:
        flat = z.reshape(-1, z.shape[-1]).double().numpy()
        dist = marginal_distances(flat, grid) if grid is not None else {"dim": []}
        by_dim = {d: i for i, d in enumerate(dist["dim"])}
        for j in range(flat.shape[1]):
            i = by_dim.get(j)
            row = {"dim": j, "method": method, "normalisable": not problem[j], "problem": problem[j] or "none",
                   "n": flat.shape[0], "seconds": seconds, "mean": flat[:, j].mean(), "sd": flat[:, j].std(),
                   "ks": dist["ks"][i] if i is not None else np.nan,
                   "ks_pvalue": dist["ks_pvalue"][i] if i is not None else np.nan,
                   "w1": dist["w1"][i] if i is not None else np.nan,
                   "note": _note(method, problem[j])}
            if method == "svgd":
                row |= {k: drift[j][k] for k in DRIFT_COLUMNS}
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=[c for c in REPORT_COLUMNS if c not in ("dataset", "model", "seed")])


def _note(method: str, problem: str) -> str:
    if problem:
        return (f"prior factor not normalisable ({problem}): no exact marginal, so no KS/W1 and no exact "
                "sampler; judge SVGD by the escaping_* drift diagnostics")
    if method == "svgd":
        return "KS/W1 of the SVGD particles against the numerically integrated exact marginal"
    return "KS/W1 of the exact sampler against the same marginal (the sampling-noise floor)"
