"""The one-core training epoch of this code against an older checkout, each run alone, alternated.

    mkdir -p .baseline && git archive 78c0ce3 src | tar -x -C .baseline   # the code before issue 9
    python benchmarks/epoch_vs_baseline.py --baseline-src .baseline/src --epochs 2 --rounds 2

Each round runs ``python -m fisherae train`` (``--model`` on ``--dataset``, seed 0) once with this
checkout's ``src`` and once with ``--baseline-src`` on ``PYTHONPATH``, one after the other (this
code first in odd rounds, the baseline first in even ones), the process pinned to CPU ``--core``
with ``training.threads`` 1, on a copy of ``--config`` with ``training.epochs`` = ``--epochs``, no
snapshots (and, with ``--root``, the data set's root, downloads off). The baseline's copy drops
the keys listed by ``--baseline-drop`` (default: the held-out split, which 78c0ce3 predates; so it
trains on every image). Printed per run and epoch: the seconds training logs in metrics.csv (the
loop over the batches; the first epoch includes one-time warm-up such as compiling), the images
it trained on, and milliseconds per image; then the change per image of each epoch, this code
against the baseline, from the medians over the rounds. Nothing here is timed by a test; the
figures in BENCHMARKS.md name the machine they came from."""

from __future__ import annotations

import argparse
import copy
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_epoch import FULL_TRAIN  # noqa: E402  (the train splits' sizes: one source of truth)

REPO = Path(__file__).resolve().parents[1]


def run_config(config: dict, dataset: str, epochs: int, root: str | None, drop: list[str]) -> dict:
    """``config`` for one timed run: ``epochs`` epochs on one thread, the data at ``root``, and
    without the dotted keys of ``drop`` (each relative to the config's top level)."""
    config = copy.deepcopy(config)
    config["training"].update(epochs=epochs, threads=1)
    config["training"].pop("snapshot_epochs", None)  # no snapshots (one may lie past ``epochs``)
    if root:
        config["datasets"][dataset].update(root=root, download=False)
    for key in drop:
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return config


def trained_images(config: dict, dataset: str) -> int:
    """Images one epoch trains on: the train split (cut to ``n_train`` if set) less the held-out ones."""
    settings = config["datasets"][dataset]
    split = FULL_TRAIN[(dataset, settings.get("source", "embedded"))]
    return min(split, settings.get("n_train") or split) - settings.get("validation_size", 0)


def train(label: str, src: Path, config: dict, args: argparse.Namespace, workdir: Path) -> list[float]:
    """Seconds of each epoch (metrics.csv) of one ``python -m fisherae train`` run with ``src``."""
    path = workdir / f"{label}.yaml"
    path.write_text(yaml.safe_dump(config))
    outdir = workdir / label
    command = [sys.executable, "-m", "fisherae", "train", "--config", str(path), "--dataset", args.dataset,
               "--model", args.model, "--seed", "0", "--outdir", str(outdir)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    pin = (lambda: os.sched_setaffinity(0, {args.core})) if hasattr(os, "sched_setaffinity") else None
    result = subprocess.run(command, cwd=REPO, env=env, preexec_fn=pin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{label}: training failed ({result.returncode}):\n{result.stderr[-3000:]}")
    with open(next(outdir.rglob("metrics.csv"))) as handle:
        return [float(row["seconds"]) for row in csv.DictReader(handle)]


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--baseline-src", type=Path, required=True, help="the older checkout's src folder")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "cpu.yaml")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--model", default="fisher_ae_poly")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--core", type=int, default=0, help="the CPU both runs are pinned to")
    parser.add_argument("--root", help="the data set's root (default: the config's)")
    parser.add_argument("--baseline-drop", nargs="*", default=None,
                        help="dotted config keys the baseline does not know (default: datasets.DATASET.validation_size)")
    args = parser.parse_args()
    if not (args.baseline_src / "fisherae").is_dir():
        raise SystemExit(f"--baseline-src {args.baseline_src} holds no fisherae package: give an older checkout's "
                         "src folder (git archive REV src | tar -x -C DIR; then DIR/src)")
    drop = args.baseline_drop if args.baseline_drop is not None else [f"datasets.{args.dataset}.validation_size"]
    base_config = yaml.safe_load(args.config.read_text())
    configs = {"this": run_config(base_config, args.dataset, args.epochs, args.root, []),
               "baseline": run_config(base_config, args.dataset, args.epochs, args.root, drop)}
    sources = {"this": REPO / "src", "baseline": args.baseline_src.resolve()}
    per_image = {label: [[] for _ in range(args.epochs)] for label in configs}
    print(f"{args.dataset}/{args.model}, {args.config.name}, {args.epochs} epochs, one thread on CPU {args.core}")
    print(f"{'round':>5} {'code':<9} {'epoch':>5} {'seconds':>9} {'images':>7} {'ms/image':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            for label in list(configs)[::1 if round_ % 2 else -1]:  # this code first in odd rounds
                config = configs[label]
                images = trained_images(config, args.dataset)
                for epoch, seconds in enumerate(train(f"{label}{round_}", sources[label], config, args, Path(tmp))):
                    per_image[label][epoch].append(1e3 * seconds / images)
                    print(f"{round_:>5} {label:<9} {epoch + 1:>5} {seconds:9.1f} {images:>7} "
                          f"{per_image[label][epoch][-1]:9.3f}")
    for epoch in range(args.epochs):
        this, base = (statistics.median(per_image[label][epoch]) for label in ("this", "baseline"))
        print(f"epoch {epoch + 1}: {this:.3f} ms/image against {base:.3f} (median of {args.rounds}): "
              f"{100 * (this / base - 1):+.1f} %")


if __name__ == "__main__":
    main()
