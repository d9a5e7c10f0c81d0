"""``noise-sweep``, ``grids``, ``latent`` and ``figure``: the robustness evaluations of Section 4
and the paper's Figures 1-6; ``diagnose``: encoder collapse diagnostics beside Figure 1 (see docs/cli.md)."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from fisherae.commands.common import (add_model_arguments, load_config_and_model, load_test_split, read_config,
                                      require_mnist, write_csv)
from fisherae.commands.registry import command
from fisherae.errors import ConfigError, UserError

FIGURES = {"figure1": "mnist", "figure2": "mnist", "figure3": "mnist", "figure4": "mnist",
           "figure5": "celeba", "figure6": "celeba"}


# --------------------------------------------------------------------------- noise-sweep

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


# --------------------------------------------------------------------------- grids

@command("grids", "qualitative grid of one model (Figures 2 and 6): noisy/clean inputs, reconstructions, samples")
def setup_grids(parser):
    add_model_arguments(parser, seed_required=False)
    parser.add_argument("--samples", required=True, help="latent samples NPZ written by `sample` (z: [draws, n, d])")
    parser.add_argument("--out", required=True, help="PNG to write")
    return run_grids


def run_grids(args) -> None:
    import torch

    from fisherae.devices import job_device
    from fisherae.evaluation import MEAN_IMAGE_N, error_ratio, first_images, grid_sections, tile
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
    shown = {section.name: section.images for section in sections}
    ratio = error_ratio(shown["reconstruction of clean"], shown["clean input"],
                        first_images(data, min(MEAN_IMAGE_N, len(data)))[0].mean(0))
    write_grid_png(args.out, image, {"dataset": args.dataset, "model": args.model, "seed": args.seed,
                                     "noise_sigma2": noise_sigma2, "sampler": method, "layout": layout,
                                     "clean_error_ratio": ratio})
    print(args.out)


# --------------------------------------------------------------------------- latent

@command("latent", "t-SNE + k-means NMI of noisy MNIST latents (Figures 3 and 4): embeddings NPZ and NMI CSV")
def setup_latent(parser):
    add_model_arguments(parser)
    parser.add_argument("--out-embedding", required=True, help="NPZ: embeddings [sigma2, tsne seed, n, 2], labels")
    parser.add_argument("--out-nmi", required=True, help="CSV: dataset, model, seed, sigma2, tsne_seed, nmi")
    return run_latent


def run_latent(args) -> None:
    from fisherae.checkpoint import atomic_write
    from fisherae.evaluation import first_images
    from fisherae.latent import NMI_COLUMNS, latent_robustness

    config, model = load_config_and_model(args)
    require_mnist(args, "to score clusters, Figures 3-4 use MNIST")
    settings = config["evaluation"]["latent"]
    data = load_test_split(config, args.dataset)
    if settings["n_points"] > len(data):
        raise ConfigError(f"{args.config}: evaluation.latent.n_points = {settings['n_points']}, but the "
                          f"{args.dataset} test split has {len(data)} images; lower n_points")
    images, labels = first_images(data, settings["n_points"])
    try:  # on the CPU, holding no GPU: t-SNE and k-means are CPU work, the encoder pass a fifth (BENCHMARKS.md)
        table, embeddings = latent_robustness(
            model, images, labels, settings["sigma2"], settings["seeds"], settings["n_clusters"],
            config["evaluation"]["noise_sweep"]["noise_seed"], settings["tsne_perplexity"],
            config["evaluation"]["noise_sweep"]["batch_size"], "cpu", n_jobs=config["training"]["threads"])
    except ValueError as err:
        raise UserError(f"checkpoint {args.checkpoint}: {err}") from err
    atomic_write(args.out_embedding, lambda tmp: np.savez(
        tmp, embeddings=embeddings, labels=labels, sigma2=np.asarray(settings["sigma2"], dtype=float),
        tsne_seeds=np.asarray(settings["seeds"]), dataset=args.dataset, model=args.model, seed=args.seed))
    write_csv(table.assign(dataset=args.dataset, model=args.model, seed=args.seed)[NMI_COLUMNS], args.out_nmi)
    print(args.out_nmi)


# --------------------------------------------------------------------------- diagnose

@command("diagnose", "encoder collapse diagnostics beside Figure 1: error vs the mean image, latent spread, "
                     "digit probe")
def setup_diagnose(parser):
    add_model_arguments(parser)
    parser.add_argument("--out", required=True,
                        help="CSV, one row: dataset, model, seed, then the fields of fisherae.diagnostics")
    parser.add_argument("--n-probe", type=_positive_int, default=10000,
                        help="first training images for the mean image and the probe (default 10000; all if fewer)")
    parser.add_argument("--batch-size", type=_positive_int, help="default: evaluation.noise_sweep.batch_size")
    return run_diagnose


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def run_diagnose(args) -> None:
    from fisherae.data import load_split
    from fisherae.devices import job_device
    from fisherae.diagnostics import DIAGNOSE_COLUMNS, encoder_diagnostics, non_finite_fields

    config, model = load_config_and_model(args)
    require_mnist(args, "for its probe; Figure 1 is MNIST")
    train = load_split(args.dataset, config["datasets"][args.dataset], "train")
    test = load_test_split(config, args.dataset)
    batch_size = args.batch_size or config["evaluation"]["noise_sweep"]["batch_size"]
    try:
        with job_device(config) as device:
            stats = encoder_diagnostics(model, train, test, batch_size=batch_size, n_probe=args.n_probe,
                                        device=device)
    except ValueError as err:
        raise UserError(f"diagnose: {err}") from err
    bad = non_finite_fields(stats, model)
    if bad:
        raise UserError(f"checkpoint {args.checkpoint} gives non-finite {', '.join(bad)}; retrain it")
    row = {"dataset": args.dataset, "model": args.model, "seed": args.seed, **stats}
    write_csv(pd.DataFrame([row], columns=DIAGNOSE_COLUMNS), args.out)
    print(args.out)


# --------------------------------------------------------------------------- figure

@command("figure", "one of the paper's Figures 1-6 from the evaluation outputs (+ the tidy data behind it)")
def setup_figure(parser):
    parser.add_argument("--config", required=True, help="YAML config (model labels and colours)")
    parser.add_argument("--name", required=True, choices=sorted(FIGURES))
    parser.add_argument("--inputs", required=True, nargs="+", help="sweep CSVs, grid PNGs, latent CSVs or NPZs")
    parser.add_argument("--out", required=True, help="image to write (PNG, or PDF/SVG by suffix)")
    parser.add_argument("--out-csv", help="CSV of the data plotted")
    return run_figure


def _read_tables(paths: list[str], columns: list[str]) -> pd.DataFrame:
    tables = []
    for path in paths:
        table = pd.read_csv(path)
        if list(table.columns) != columns:
            raise UserError(f"{path}: columns {list(table.columns)}, expected {columns}; regenerate it with the "
                            "matching fisherae command")
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _read_embeddings(paths: list[str]) -> list[dict]:
    out = []
    for path in paths:
        try:
            with np.load(path) as npz:
                out.append({k: (npz[k].item() if npz[k].ndim == 0 else npz[k]) for k in npz.files})
        except (OSError, ValueError) as err:
            raise UserError(f"{path} is not a latent NPZ written by `python -m fisherae latent` ({err})") from err
    return out


def _read_grids(paths: list[str]) -> list[tuple[str, np.ndarray, dict]]:
    from fisherae.plots import read_grid_png

    grids, seen = [], set()
    for path in paths:
        image, meta = read_grid_png(path)
        if meta["model"] not in seen:  # one panel per model: its first grid
            seen.add(meta["model"])
            grids.append((path, image, meta))
    return grids


def run_figure(args) -> None:
    from fisherae import plots
    from fisherae.checkpoint import atomic_write_text
    from fisherae.evaluation import SWEEP_COLUMNS
    from fisherae.latent import NMI_COLUMNS

    config = read_config(args)
    dataset = FIGURES[args.name]
    try:
        if args.name in ("figure1", "figure5"):
            table = _read_tables(args.inputs, SWEEP_COLUMNS)
            style = plots.ModelStyle.from_config(config, list(table["model"].unique()))
            fig, tidy = (plots.figure1 if args.name == "figure1" else plots.figure5)(table, style)
        elif args.name == "figure3":
            table = _read_tables(args.inputs, NMI_COLUMNS)
            fig, tidy = plots.figure3(table, plots.ModelStyle.from_config(config, list(table["model"].unique())))
        elif args.name == "figure4":
            embeddings = _read_embeddings(args.inputs)
            style = plots.ModelStyle.from_config(config, [str(e["model"]) for e in embeddings])
            fig, tidy = plots.figure4(embeddings, style)
        else:
            grids = _read_grids(args.inputs)
            others = sorted({g[2]["dataset"] for g in grids} - {dataset})
            if others:
                raise ValueError(f"{args.name} shows {dataset} grids; got grids of {others}")
            style = plots.ModelStyle.from_config(config, [g[2]["model"] for g in grids])
            fig, tidy = plots.figure_grids(grids, args.name, dataset, style)
    except (ValueError, KeyError, OSError) as err:  # bad content, missing or unreadable input files
        raise UserError(f"figure {args.name}: {err}") from err
    if dataset in config["datasets"]:
        plots.add_note(fig, plots.training_note(config, dataset))
    plots.save_figure(fig, args.out)
    if args.out_csv:
        atomic_write_text(args.out_csv, tidy.to_csv(index=False))
    print(args.out)
