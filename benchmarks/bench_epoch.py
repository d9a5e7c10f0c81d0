"""Time the training loop itself and project the wall time of a config's training on this device.

    python benchmarks/bench_epoch.py --config config/config.yaml             # the paper's DAG, one GPU
    python benchmarks/bench_epoch.py --config config/cpu.yaml --datasets mnist --models fisher_ae_poly \
        --threads 1 --batches 469                                            # one whole cpu.yaml epoch

For every data set x model of the config, the training loop (``fisherae.training``: on-device
batches, the step eager or from a CUDA graph, the ledger's checks, the checkpoint and metrics
written at the end of the epoch) runs two epochs of ``--batches`` batches on stand-in images of
the data set's shape (uint8, like MNIST and the CelebA cache; the step's cost does not depend on
the pixel values), and the second, warm epoch is timed. Printed per row: seconds per batch in
the loop, the bare step on a fixed batch (the same TrainingStep, timed step by step), the loop's
overhead over the bare step, the seconds of the epoch's checkpoint (timed apart: a fixed cost per
epoch), the run's peak GPU memory (its data, model, optimiser, CUDA graph and steps, over both
epochs), and the projected time of the config's training:
seeds x epochs x (batches per epoch of the full split x seconds per batch + the checkpoint),
one job at a time. The held-out images (``validation_size``) are counted as trained: their
held-out loss each epoch costs less than a training step. Evaluation stages are not included."""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from fisherae.batches import TensorBatches
from fisherae.config import load_config
from fisherae.devices import float32_products, use_configured_compute
from fisherae.host_memory import keep_freed_memory
from fisherae.data import EMBEDDED_FACES_TRAIN, EMBEDDED_MNIST_TRAIN_PER_CLASS, MNIST_FILES, image_shape
from fisherae import training
from fisherae.training import _Run, model_spec

# the train splits' sizes: torchvision's MNIST and CelebA, and the embedded stand-ins
FULL_TRAIN = {("mnist", "torchvision"): MNIST_FILES["train-images-idx3-ubyte"][1],
              ("celeba", "torchvision"): 162770, ("mnist", "embedded"): 10 * EMBEDDED_MNIST_TRAIN_PER_CLASS, ("celeba", "embedded"): EMBEDDED_FACES_TRAIN}


def stand_in(dataset: str, n: int, batch_size: int, device: torch.device) -> TensorBatches:
    """``n`` random uint8 images (and labels) of ``dataset``'s shape, batched on ``device``."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *image_shape(dataset)), dtype=torch.uint8, generator=gen)
    return TensorBatches(torch.utils.data.TensorDataset(images, torch.zeros(n, dtype=torch.long)), batch_size, device)


class _TimedSave:
    """training's checkpoint writer, timed: the epoch's fixed cost, apart from its batches."""

    def __init__(self):
        self.seconds, self.save = 0.0, training.atomic_torch_save

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        self.save(*args, **kwargs)
        self.seconds += time.perf_counter() - started


def measure(config: dict, dataset: str, model: str, batches: int, device: torch.device, bare_steps: int) -> dict:
    """Seconds per batch of the loop's warm epoch (the checkpoint apart) and of the bare step;
    the seconds of the epoch's checkpoint; the run's peak GPU memory."""
    settings = config["training"]
    base = _resident(device)
    data = stand_in(dataset, batches * settings["batch_size"], settings["batch_size"], device)
    with tempfile.TemporaryDirectory() as outdir, mock.patch.object(training, "atomic_torch_save", _TimedSave()) as save:
        run = _Run(config, dataset, model, 0, Path(outdir), device, model_spec(config, dataset, model))
        run.train_epoch(data, None, 1, progress=False)  # warm-up, CUDA graph capture (no held-out loss)
        save.seconds = 0.0
        started = time.perf_counter()
        run.train_epoch(data, None, 2, progress=False)
        loop = (time.perf_counter() - started - save.seconds) / batches
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else math.nan
        x = next(data.epoch(0))[0]
        times = []
        for _ in range(bare_steps):
            _sync(device)
            started = time.perf_counter()
            run.step(x)
            _sync(device)
            times.append(time.perf_counter() - started)
        return {"loop": loop, "bare": statistics.median(times), "save": save.seconds, "peak": peak,
                "mode": run.step.graph.mode}


def _resident(device: torch.device) -> int:
    """Bytes allocated on the GPU once the previous rows' runs are collected; the peak counter
    restarts from here, so a row's peak is its own run's (data, model, optimiser, CUDA graph, steps)."""
    if device.type != "cuda":
        return 0
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--datasets", nargs="+", help="default: the config's")
    parser.add_argument("--models", nargs="+", help="default: the config's")
    parser.add_argument("--batches", type=int, default=60, help="batches in each timed epoch")
    parser.add_argument("--bare-steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the config's training.threads)")
    args = parser.parse_args()
    keep_freed_memory()  # as training does
    config = load_config(args.config)
    use_configured_compute(config, config["training"]["tf32"])  # as training does
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    seeds, epochs = len(config["seeds"]), config["training"]["epochs"]
    print(f"device={device} ({name}) torch={torch.__version__} threads={torch.get_num_threads()} config={args.config} "
          f"({seeds} seeds x {epochs} epochs), {args.batches} batches per timed epoch"
          + (f", float32 products: {float32_products()}" if device.type == "cuda" else ""))
    print(f"{'data':>7} {'model':<32} {'loop ms/batch':>13} {'bare ms':>8} {'overhead':>8} {'save s':>7} "
          f"{'peak MiB':>8} {'epoch s':>8} {'run h':>7}  step")
    total = 0.0
    for dataset in args.datasets or list(config["datasets"]):
        data = config["datasets"][dataset]
        n_train = data.get("n_train") or FULL_TRAIN[dataset, data["source"]]
        batches = math.ceil(n_train / config["training"]["batch_size"])
        for model in args.models or list(config["models"]):
            m = measure(config, dataset, model, args.batches, device, args.bare_steps)
            epoch = m["loop"] * batches + m["save"]
            hours = seeds * epochs * epoch / 3600
            total += hours
            print(f"{dataset:>7} {model:<32} {1e3 * m['loop']:13.2f} {1e3 * m['bare']:8.2f} "
                  f"{100 * (m['loop'] / m['bare'] - 1):7.1f}% {m['save']:7.2f} {m['peak']:8.0f} {epoch:8.1f} "
                  f"{hours:7.2f}  {m['mode']}")
    print(f"projected training wall time of {args.config} on this device, one job at a time: {total:.2f} h")


if __name__ == "__main__":
    main()
