"""``train``: train one model on one data set with one seed (resuming a killed run)."""

from __future__ import annotations

from fisherae.commands.common import read_config
from fisherae.commands.registry import command


@command("train", "train one model on one data set with one seed; writes model.pt, checkpoint.pt, metrics.csv, train.log (and snapshots/epoch<E>.pt)")
def setup(parser):
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--dataset", required=True, help="a key of the config's datasets (mnist, celeba)")
    parser.add_argument("--model", required=True, help="a key of the config's models (e.g. fisher_ae_poly)")
    parser.add_argument("--seed", required=True, type=int, help="seed of initialisation, data order and draws")
    parser.add_argument("--outdir", required=True, help="run folder, e.g. results/runs/mnist/vae/seed0")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return run


def run(args) -> None:
    from fisherae.devices import job_device
    from fisherae.training import model_spec, train

    config = read_config(args, dataset=args.dataset, model=args.model)
    model_spec(config, args.dataset, args.model)  # names the valid keys before a GPU is taken
    with job_device(config) as device:
        path = train(config, args.dataset, args.model, args.seed, args.outdir, device, progress=not args.no_progress)
    print(path)
