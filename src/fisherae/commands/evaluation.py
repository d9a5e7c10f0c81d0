"""``noise-sweep`` and ``grids``: the robustness evaluations of Section 4 behind Figures 1, 2, 5
and 6 (``fisherae.evaluation``; docs/cli.md)."""

from __future__ import annotations

import numpy as np

from fisherae.commands.common import add_model_arguments, load_config_and_model, load_test_split, write_csv
from fisherae.commands.registry import command
from fisherae.errors import ConfigError, UserError


@command("noise-sweep", "reconstruction error vs input-noise variance (Figures 1 and 5): tidy CSV per test batch")
def setup_noise_sweep(parser):
    add_model_arguments(parser)
    parser.add_argument("--out", required=True,
                        help="CSV: dataset, model, seed, sigma2, batch, n_images, metric, value")
    return run_noise_sweep


def run_noise_sweep(args) -> None:
    from fisherae.devices import job_device
    from fisherae.evaluation import SWEEP_COLUMNS, noise_sweep

    config, model = load_config_and_model(args)
    settings = config["evaluation"]["noise_sweep"]
    sigma2s = settings["sigma2"].get(args.dataset)
    if sigma2s is None:
        raise ConfigError(f"{args.config}: evaluation.noise_sweep.sigma2.{args.dataset} is not set; "
                          f"list the noise variances to sweep for {args.dataset}")
    data = load_test_split(config, args.dataset)
    with job_device(config) as device:
        table = noise_sweep(model, data, sigma2s, settings["batch_size"], settings["noise_seed"], device)
    if not np.isfinite(table["value"]).all():
        raise UserError(f"checkpoint {args.checkpoint} gives non-finite reconstruction errors; retrain it")
    table = table.assign(dataset=args.dataset, model=args.model, seed=args.seed)[SWEEP_COLUMNS]
    write_csv(table, args.out)
    print(args.out)


@command("grids", "qualitative grid of one model (Figures 2 and 6): noisy/clean inputs, reconstructions, samples")
def setup_grids(parser):
    add_model_arguments(parser, seed_required=False)
    parser.add_argument("--samples", required=True, help="latent samples NPZ written by `sample` (z: [draws, n, d])")
    parser.add_argument("--out", required=True, help="PNG to write")
    return run_grids


def run_grids(args) -> None:
    import torch

    from fisherae.devices import job_device
    from fisherae.evaluation import clean_error_ratio, first_images, grid_sections, tile
    from fisherae.plots import write_grid_png
    from fisherae.sampling import read_samples

    config, model = load_config_and_model(args)
    settings, noise_seed = config["evaluation"]["grids"], config["evaluation"]["noise_sweep"]["noise_seed"]
    noise_sigma2 = settings["noise_sigma2"].get(args.dataset)
    if noise_sigma2 is None:
        raise ConfigError(f"{args.config}: evaluation.grids.noise_sigma2.{args.dataset} is not set")
    z, method = read_samples(args.samples, model.spec.latent)
    data = load_test_split(config, args.dataset)
    n_images = min(settings["n_images"], len(data))
    clean, _ = first_images(data, n_images)
    try:
        with job_device(config) as device:
            sections = grid_sections(model, clean, torch.from_numpy(z[0, :settings["n_samples"]]), noise_sigma2,
                                     noise_seed, device)
    except ValueError as err:
        raise UserError(f"{args.samples}: {err}; sample from this checkpoint's prior") from err
    image, layout = tile(sections, n_cols=n_images)
    ratio = clean_error_ratio(sections, data)
    write_grid_png(args.out, image, {"dataset": args.dataset, "model": args.model, "seed": args.seed,
                                     "noise_sigma2": noise_sigma2, "sampler": method, "layout": layout,
                                     "clean_error_ratio": ratio})
    print(args.out)
