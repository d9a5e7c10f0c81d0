"""``diagnose``: encoder collapse diagnostics beside Figure 1 (``fisherae.diagnostics``; docs/cli.md)."""

from __future__ import annotations

import argparse

import pandas as pd

from fisherae.commands.common import (add_model_arguments, load_config_and_model, load_test_split, require_mnist,
                                      write_csv)
from fisherae.commands.registry import command
from fisherae.errors import UserError


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
