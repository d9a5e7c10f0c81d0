"""Time the first training steps of a fresh process: the one-time warm-up (compiling) an epoch pays.

    python benchmarks/bench_first_step.py --threads 1                 # MNIST nets, width 16, Fisher AE
    python benchmarks/bench_first_step.py --threads 1 --cold          # from an empty inductor cache

One ``TrainingStep`` (``bench_step.py``'s row: the config's settings, eager, a fixed batch) is built
and run ``--steps`` times; printed: each step's seconds, and the graphs dynamo compiled (on the
CPU, the group-norm forms of ``fisherae.group_norm`` for maps of ``MIN_ELEMENTS`` values or more).
``--cold`` points ``TORCHINDUCTOR_CACHE_DIR`` at an empty temporary folder first, as on a new
machine; without it the user's cache serves (warm after one run)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--config", default="config/cpu.yaml")
    parser.add_argument("--net", default="mnist")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--method", default="fisher_ae")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="start from an empty inductor cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        if args.cold:  # before torch is imported: inductor reads it once
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        run(args)


def run(args: argparse.Namespace) -> None:
    import torch
    from torch._dynamo.utils import counters

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_step import Row
    from fisherae.config import load_config
    from fisherae.host_memory import keep_freed_memory

    keep_freed_memory()  # as training does
    torch.set_num_threads(args.threads)
    row = Row(args.net, args.width, args.method, "eager", (), load_config(args.config), args.batch, torch.device("cpu"))
    print(f"{args.net} width {args.width} {args.method}, batch {args.batch}, {args.threads} thread(s), "
          f"inductor cache {'empty' if args.cold else 'as found'}")
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        row.run(record=False)
        print(f"step {step}: {time.perf_counter() - started:.3f} s")
    print(f"graphs compiled: {counters['stats']['unique_graphs']}")


if __name__ == "__main__":
    main()
