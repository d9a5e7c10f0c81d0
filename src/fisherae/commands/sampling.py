"""``sample``: latent draws of a trained model's prior for FID and sample grids (docs/cli.md).

The learned polynomial prior is sampled with SVGD as in the paper (Section 4); where it is
normalisable the exact sampler runs too and ``--report`` compares the two per dimension;
where it is not, the report says so and gives SVGD drift diagnostics instead."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from fisherae.commands.common import read_config, refuse_other_training, write_csv
from fisherae.commands.registry import command
from fisherae.errors import UserError

REPORT_COLUMNS = ["dataset", "model", "seed", "dim", "method", "normalisable", "problem", "n", "seconds",
                  "ks", "ks_pvalue", "w1", "mean", "sd", "escape_region", "escaping_start", "escaping_half",
                  "escaping_end", "mean_shift_second_half_sd", "note"]


@command("sample", "latent samples of the prior (SVGD for the polynomial prior, as in the paper); "
                   "--report compares SVGD with the exact sampler")
def setup_sample(parser):
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--checkpoint", required=True, help="model.pt written by `train`")
    parser.add_argument("--seed", type=int, required=True, help="seed of the draws")
    parser.add_argument("--out", required=True, help="NPZ: z [n_draws, n_samples, latent_dim], method, seconds")
    parser.add_argument("--report", help="CSV: SVGD vs exact per dimension (KS, W1, time) or drift diagnostics")
    return run_sample


RUNAWAY_FRACTION = 0.01  # more particles than this past the escape point: the samples are drift


def run_sample(args) -> None:
    import torch

    from fisherae.checkpoint import load_model_payload, model_from_payload
    from fisherae.devices import job_device, use_configured_threads
    from fisherae.errors import SVGDDivergedError
    from fisherae.prior_analysis import not_normalisable_message, unnormalisable_dims
    from fisherae.sampling import drift_diagnostics, sample_latents, write_samples

    payload = load_model_payload(args.checkpoint)
    model, meta = model_from_payload(payload, args.checkpoint), payload.get("metadata", {})
    config = read_config(args, dataset=str(meta.get("dataset")), model=str(meta.get("model")))
    if meta.get("model") not in config["models"]:
        raise UserError(f"checkpoint {args.checkpoint} holds model {meta.get('model')!r}, which {args.config} does "
                        f"not define (models: {', '.join(sorted(config['models']))}); pass the config it was "
                        "trained with")
    refuse_other_training(config, meta, args.checkpoint, args.config, meta.get("dataset"), meta["model"], None)
    use_configured_threads(config)
    sampling, fid = config["evaluation"]["sampling"], config["evaluation"]["fid"]
    prior = model.prior
    problems = unnormalisable_dims(prior)
    if problems:
        print(f"fisherae sample: warning: {not_normalisable_message(problems, prior.order)} "
              "The exact sampler is refused; see the --report drift diagnostics.", file=sys.stderr)
    generator = torch.Generator().manual_seed(args.seed)
    with job_device(config) as device:
        try:
            samples = sample_latents(prior, fid["n_draws"], fid["n_samples"], svgd_steps=sampling["svgd_steps"],
                                     svgd_step_size=sampling["svgd_step_size"], n_particles=sampling["n_particles"],
                                     grid_points=sampling["grid_points"], generator=generator, device=device)
        except SVGDDivergedError as err:
            raise UserError(f"sampling the prior of {args.checkpoint} failed: {err}") from err
    write_samples(args.out, samples, normalisable=not problems)
    print(f"fisherae sample: {samples.method}, z {tuple(samples.z.shape)}, {samples.seconds:.1f} s -> {args.out}")
    drift = drift_diagnostics(prior, samples) if samples.method == "svgd" else []
    if problems:
        _warn_runaways(drift)
    if args.report:
        table = sampling_report(prior, samples, problems, drift, grid_points=sampling["grid_points"])
        table.insert(0, "seed", args.seed)
        table.insert(0, "model", meta.get("model", model.spec.method))
        table.insert(0, "dataset", model.spec.dataset)
        write_csv(table[REPORT_COLUMNS], args.report)


def _warn_runaways(drift: list[dict]) -> None:
    """Say loudly which dimensions' SVGD particles (``drift_diagnostics`` rows) ended in a tail where the
    prior rises without bound."""
    runaways = [r for r in drift if r["escaping_end"] > RUNAWAY_FRACTION]
    if runaways:
        where = "; ".join(f"dim {r['dim']}: {r['escaping_end']:.1%} of particles in {r['escape_region']}, "
                          f"mean {r['mean_end']:.3g}" for r in runaways)
        print(f"fisherae sample: warning: SVGD particles ran into the unbounded tail of the prior ({where}). "
              "They are not samples of any distribution: decodings and FIDs of them measure the drift. "
              "Retrain with training.poly_normalisable: true for a prior that can be sampled.", file=sys.stderr)


def sampling_report(prior, samples, problems: dict[int, str], drift: list[dict],
                    grid_points: int = 20001) -> pd.DataFrame:
    """Per dimension and method: KS / W1 against the exact marginal where that factor is
    normalisable (``problems``: dim -> why not; a stated NaN with a note there), time, and the SVGD
    ``drift`` diagnostics (``drift_diagnostics`` rows; empty for exact samples)."""
    from fisherae.metrics import marginal_distances
    from fisherae.prior_analysis import marginal_grid

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
                row |= {k: drift[j][k] for k in ("escape_region", "escaping_start", "escaping_half", "escaping_end",
                                                 "mean_shift_second_half_sd")}
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=[c for c in REPORT_COLUMNS if c not in ("dataset", "model", "seed")])


def _note(method: str, problem: str) -> str:
    if problem:
        return (f"prior factor not normalisable ({problem}): no exact marginal, so no KS/W1 and no exact "
                "sampler; judge SVGD by the escaping_* drift diagnostics")
    if method == "svgd":
        return "KS/W1 of the SVGD particles against the numerically integrated exact marginal"
    return "KS/W1 of the exact sampler against the same marginal (the sampling-noise floor)"
