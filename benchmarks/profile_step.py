"""Where one training step's time goes: its top kernels (GPU) or operators (CPU), by self time.

    python benchmarks/profile_step.py                                  # on the GPU if there is one
    python benchmarks/profile_step.py --device cpu --threads 1 --width 16 --nets mnist

The step is ``bench_step.py``'s (the training loop's own ``TrainingStep`` on a fixed batch, the
settings of ``--config``), run eagerly so that the profiler sees every kernel: ``--warmup`` steps,
then ``--steps`` profiled ones. For each net and method: the wall time a step, the profiled time a
step (the device's kernels on a GPU, the operators' own CPU time on a CPU), and the ``--top``
entries by self time with their calls and milliseconds a step and their share. Entries of
PyTorch's fallback convolutions (im2col, col2im, slow_conv) are marked with "!"."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import PRIORS, Row  # noqa: E402

from fisherae.config import load_config  # noqa: E402
from fisherae.devices import use_tf32  # noqa: E402
from fisherae.host_memory import keep_freed_memory  # noqa: E402
from fisherae.models import ARCHITECTURES  # noqa: E402

FALLBACK = ("im2col", "col2im", "slow_conv")


def profiled(row: Row, steps: int) -> tuple[float, list]:
    """(wall seconds a step, the profiler's averages) over ``steps`` steps of ``row``."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if row.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            row.run(record=False)
        wall = (time.perf_counter() - start) / steps
    return wall, prof.key_averages()


def self_time(event, device: torch.device) -> float:
    """An entry's own time in microseconds: on the device's kernels (GPU) or the CPU."""
    return event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--config", default="config/config.yaml", help="training settings (default: the paper's)")
    parser.add_argument("--nets", nargs="+", default=["mnist", "celeba"], choices=sorted(ARCHITECTURES))
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--methods", nargs="+", default=["fisher_ae", "vae"], choices=sorted(PRIORS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--tf32", choices=["on", "off"], help="a GPU's float32 products (default: the config's training.tf32)")
    args = parser.parse_args()
    keep_freed_memory()  # as training does
    if args.threads:
        torch.set_num_threads(args.threads)
    device, config = torch.device(args.device), load_config(args.config)
    tf32 = config["training"]["tf32"] if args.tf32 is None else args.tf32 == "on"
    use_tf32(tf32)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device={device} ({name}) torch={torch.__version__} threads={torch.get_num_threads()} batch={args.batch} "
          f"width={args.width} tf32={tf32} steps={args.steps}")
    for net in args.nets:
        for method in args.methods:
            row = Row(net, args.width, method, "eager", (), config, args.batch, device, tf32)
            for _ in range(args.warmup):
                row.run(record=False)
            wall, events = profiled(row, args.steps)
            entries = sorted((e for e in events if self_time(e, device) > 0), key=lambda e: -self_time(e, device))
            total = sum(self_time(e, device) for e in entries)
            where = "GPU kernels" if device.type == "cuda" else "CPU operators' own time"
            print(f"\n== {net} {method}: {1e3 * wall:.2f} ms a step (wall, eager, profiled); "
                  f"{total / 1e3 / args.steps:.2f} ms of {where}")
            print(f"  {'calls':>6} {'ms':>8} {'share':>6}  name")
            for event in entries[:args.top]:
                mark = "!" if any(word in event.key for word in FALLBACK) else " "
                print(f"  {event.count / args.steps:6.0f} {self_time(event, device) / 1e3 / args.steps:8.2f} "
                      f"{100 * self_time(event, device) / total:5.1f}% {mark}{event.key[:110]}")


if __name__ == "__main__":
    main()
