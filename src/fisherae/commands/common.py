"""Arguments and loading shared by the commands that evaluate one trained model."""

from __future__ import annotations

import sys

import pandas as pd

from fisherae.config import config_line, load_config
from fisherae.config_keys import ConfigView
from fisherae.errors import UserError


def read_config(args, **wildcards: str) -> ConfigView:
    """The config of --config as ``args.command`` may read it (the keys fisherae.config_keys.READS
    declares for it, with ``wildcards`` such as dataset= and model= filled in). Its path goes to
    stderr first: under Snakemake, the first line of each job's log names the config it read."""
    print(config_line(args.command, args.config), file=sys.stderr)
    return ConfigView(load_config(args.config), args.command, **wildcards)


def add_model_arguments(parser, seed_required: bool = True) -> None:
    """--config, --dataset, --checkpoint, --model and --seed of a command that reads one model."""
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--dataset", required=True, help="a key of the config's datasets")
    parser.add_argument("--checkpoint", required=True,
                        help="model.pt written by `train` (not its checkpoint.pt, the state training resumes from)")
    parser.add_argument("--model", required=True, help="a key of the config's models")
    parser.add_argument("--seed", type=int, required=seed_required, help="the model's training seed")


def load_config_and_model(args):
    """(config, model): the validated config and the checkpoint, checked against --dataset/--model."""
    from fisherae.checkpoint import load_model_payload, model_from_payload
    from fisherae.devices import use_configured_compute
    from fisherae.training import model_spec

    config = read_config(args, dataset=args.dataset, model=args.model)
    expected = model_spec(config, args.dataset, args.model)  # names valid keys
    payload = load_model_payload(args.checkpoint)
    model = model_from_payload(payload, args.checkpoint)
    got = model.spec
    fields = ("dataset", "method", "prior", "latent")
    if any(getattr(got, f) != getattr(expected, f) for f in fields):
        def describe(spec):
            return ", ".join(f"{f}={getattr(spec, f)}" for f in fields)
        raise UserError(f"checkpoint {args.checkpoint} holds a model with {describe(got)}, but --dataset "
                        f"{args.dataset} --model {args.model} in {args.config} means {describe(expected)}; "
                        "pass the checkpoint trained for this data set and model")
    refuse_other_training(config, payload.get("metadata", {}), args.checkpoint, args.config, args.dataset,
                          args.model, args.seed)
    use_configured_compute(config)
    return config, model


def refuse_other_training(config: dict, metadata: dict, checkpoint: str, config_path: str, dataset: str, model: str,
                          seed: int | None) -> None:
    """UserError naming each training setting in which the model file differs from the config's."""
    from fisherae.training import trained_differences

    changed = trained_differences(config, metadata, dataset, model, seed)
    if changed:
        raise UserError(f"checkpoint {checkpoint} was trained with other settings than {config_path} gives "
                        f"{dataset}/{model}" + (f" seed {seed}" if seed is not None else "")
                        + f": {', '.join(changed)} (the model's value -> the config's); evaluate it with the "
                        "config it was trained with (a pipeline run keeps it as <results>/configs/<hash>.yaml, "
                        f"named on the first line of <results>/logs/train/{dataset}/{model}/seed<S>.log), "
                        "or pass the model trained under this config")


def require_mnist(args, why: str) -> None:
    """Refuse a --dataset other than MNIST for a command that needs digit labels (``why``)."""
    if args.dataset != "mnist":
        raise UserError(f"{args.command} needs digit labels ({why}); got --dataset {args.dataset}")


def load_test_split(config: dict, dataset: str):
    """The configured test split of ``dataset``."""
    from fisherae.data import load_split

    return load_split(dataset, config["datasets"][dataset], "test")


def write_csv(table: pd.DataFrame, path: str) -> None:
    """``table`` as CSV at ``path``, atomically."""
    from fisherae.checkpoint import atomic_write_text

    atomic_write_text(path, table.to_csv(index=False))
