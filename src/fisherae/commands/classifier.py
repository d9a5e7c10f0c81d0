"""``train-classifier``: the small MNIST CNN whose penultimate layer gives the domain FID features
(``fisherae.classifier``; docs/cli.md)."""

from __future__ import annotations

import json

from fisherae.commands.common import read_config
from fisherae.commands.registry import command
from fisherae.errors import ConfigError, UserError


@command("train-classifier", "train the small MNIST CNN whose penultimate layer gives the domain FID features")
def setup_train_classifier(parser):
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--dataset", required=True, help="mnist (the only data set with a domain classifier)")
    parser.add_argument("--out", required=True, help="classifier .pt (weights and test accuracy)")
    parser.add_argument("--out-metrics", required=True, help="JSON: test accuracy, losses, sizes")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    return run_train_classifier


def run_train_classifier(args) -> None:
    from fisherae.checkpoint import atomic_write_text
    from fisherae.classifier import save_classifier, train_classifier
    from fisherae.data import load_split
    from fisherae.devices import job_device, use_configured_compute

    config = read_config(args, dataset=args.dataset)
    if args.dataset != "mnist":
        raise UserError(f"train-classifier: --dataset {args.dataset}: the domain classifier exists for MNIST only "
                        "(CelebA's FID uses Inception features)")
    if "mnist" not in config["datasets"]:
        raise ConfigError(f"{args.config}: datasets.mnist is not configured")
    use_configured_compute(config)
    data_cfg = config["datasets"][args.dataset]
    train, test = load_split("mnist", data_cfg, "train"), load_split("mnist", data_cfg, "test")
    with job_device(config) as device:
        model, metrics = train_classifier(train, test, epochs=config["evaluation"]["fid"]["classifier_epochs"],
                                          batch_size=config["training"]["batch_size"], seed=args.seed, device=device)
    metrics["seed"] = args.seed
    save_classifier(args.out, model, metrics)
    atomic_write_text(args.out_metrics, json.dumps(metrics, indent=2) + "\n")
    print(f"fisherae train-classifier: test accuracy {metrics['test_accuracy']:.4f} -> {args.out}")
