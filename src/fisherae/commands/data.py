"""``data``: load (and, where configured, download) both splits of a data set once, before any
training job, and write a manifest of what was found."""

from __future__ import annotations

import json

from fisherae.checkpoint import atomic_write_text
from fisherae.commands.common import read_config
from fisherae.commands.registry import command
from fisherae.data import SPLITS, image_shape, load_split
from fisherae.errors import DataError


@command("data", "check (and download, where configured) a data set; write its manifest JSON")
def setup(parser):
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--dataset", required=True, help="a key of the config's datasets")
    parser.add_argument("--out", required=True, help="manifest JSON to write")
    return run


def run(args) -> None:
    config = read_config(args, dataset=args.dataset)
    if args.dataset not in config["datasets"]:
        raise DataError(f"data set {args.dataset!r} is not in {args.config} (datasets: "
                                f"{', '.join(config['datasets'])})")
    cfg = config["datasets"][args.dataset]
    manifest = {"dataset": args.dataset, "source": cfg["source"], "image_shape": list(image_shape(args.dataset))}
    for split in SPLITS:
        data = load_split(args.dataset, cfg, split)
        x, _ = data[0]
        if tuple(x.shape) != image_shape(args.dataset):
            raise DataError(f"{args.dataset} {split}: images of shape {tuple(x.shape)}, expected "
                                    f"{image_shape(args.dataset)}")
        manifest[f"n_{split}"] = len(data)
    atomic_write_text(args.out, json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest))
