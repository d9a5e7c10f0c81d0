"""``sample``: latent draws of a trained model's prior for FID and sample grids (docs/cli.md).

The learned polynomial prior is sampled with SVGD as in the paper (Section 4); where it is
normalisable the exact sampler runs too and ``--report`` compares the two per dimension;
where it is not, the report says so and gives SVGD drift diagnostics instead."""

from __future__ import annotations

import contextlib
import sys

from fisherae.commands.common import read_config, refuse_other_training, write_csv
from fisherae.commands.registry import command
from fisherae.errors import UserError


@command("sample", "latent samples of the prior (SVGD for the polynomial prior, as in the paper); "
                   "--report compares SVGD with the exact sampler")
def setup_sample(parser):
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--checkpoint", required=True, help="model.pt written by `train`")
    parser.add_argument("--seed", type=int, required=True, help="seed of the draws")
    parser.add_argument("--out", required=True, help="NPZ: z [n_draws, n_samples, latent_dim], method, seconds")
    parser.add_argument("--report", help="CSV: SVGD vs exact per dimension (KS, W1, time) or drift diagnostics")
    return run_sample


def run_sample(args) -> None:
    import torch

    from fisherae.checkpoint import load_model_payload, model_from_payload
    from fisherae.devices import job_device, use_configured_compute
    from fisherae.errors import SVGDDivergedError
    from fisherae.prior_analysis import not_normalisable_message, unnormalisable_dims
    from fisherae.priors import GaussianPrior
    from fisherae.sampling import drift_diagnostics, sample_latents, write_samples
    from fisherae.sampling_report import REPORT_COLUMNS, runaway_warning, sampling_report

    payload = load_model_payload(args.checkpoint)
    model, meta = model_from_payload(payload, args.checkpoint), payload.get("metadata", {})
    config = read_config(args, dataset=str(meta.get("dataset")), model=str(meta.get("model")))
    if meta.get("model") not in config["models"]:
        raise UserError(f"checkpoint {args.checkpoint} holds model {meta.get('model')!r}, which {args.config} does "
                        f"not define (models: {', '.join(sorted(config['models']))}); pass the config it was "
                        "trained with")
    refuse_other_training(config, meta, args.checkpoint, args.config, meta.get("dataset"), meta["model"], None)
    use_configured_compute(config)
    sampling, fid = config["evaluation"]["sampling"], config["evaluation"]["fid"]
    prior = model.prior
    problems = unnormalisable_dims(prior)
    if problems:
        print(f"fisherae sample: warning: {not_normalisable_message(problems, prior.order)} "
              "The exact sampler is refused; see the --report drift diagnostics.", file=sys.stderr)
    generator = torch.Generator().manual_seed(args.seed)
    # N(0, I) draws are CPU work: no GPU slot held for them (the DAG's `sample` rule asks for none)
    learned = not isinstance(prior, GaussianPrior)
    with job_device(config) if learned else contextlib.nullcontext(torch.device("cpu")) as device:
        try:
            samples = sample_latents(prior, fid["n_draws"], fid["n_samples"], svgd_steps=sampling["svgd_steps"],
                                     svgd_step_size=sampling["svgd_step_size"], n_particles=sampling["n_particles"],
                                     grid_points=sampling["grid_points"], generator=generator, device=device)
        except SVGDDivergedError as err:
            raise UserError(f"sampling the prior of {args.checkpoint} failed: {err}") from err
    write_samples(args.out, samples, normalisable=not problems)
    print(f"fisherae sample: {samples.method}, z {tuple(samples.z.shape)}, {samples.seconds:.1f} s -> {args.out}")
    drift = drift_diagnostics(prior, samples) if samples.method == "svgd" else []
    warning = runaway_warning(drift) if problems else None
    if warning:
        print(f"fisherae sample: warning: {warning}", file=sys.stderr)
    if args.report:
        table = sampling_report(prior, samples, problems, drift, grid_points=sampling["grid_points"])
        table.insert(0, "seed", args.seed)
        table.insert(0, "model", meta.get("model", model.spec.method))
        table.insert(0, "dataset", model.spec.dataset)
        write_csv(table[REPORT_COLUMNS], args.report)
