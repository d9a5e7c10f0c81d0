"""Wall time of ``fisherae.svgd.svgd`` (Liu & Wang, 2016; the paper's sampler) on a normalisable
K = 4 polynomial prior (eq. 13), in seconds and ms/step: one particle set, and S independent sets
moved in one batched call vs one after another (as ``sample_latents`` does for the FID samples).

    # (a) the paper's setting on one CPU core: 15 000 steps of 1e-3, 500 particles, d = 8
    python benchmarks/bench_svgd.py --threads 1
    # S = 20 sets of 500 in d = 8 (10 000 samples), batched vs sequential, 300 steps
    python benchmarks/bench_svgd.py --threads 1 --steps 300 --sets 20
    # (b) a GPU: 10 000 particles in d = 64 (shorten with --steps)
    python benchmarks/bench_svgd.py --device cuda --particles 10000 --dim 64 --steps 2000
    # the same against another implementation of svgd, e.g. the previous commit's:
    git show HEAD:src/fisherae/svgd.py > /tmp/old_svgd.py
    python benchmarks/bench_svgd.py --threads 1 --svgd-from /tmp/old_svgd.py
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

import torch

from bench_samplers import learned_looking_prior  # the same K = 4 prior as the sampler comparison


def load_svgd(path: str | None):
    if path is None:
        from fisherae.svgd import svgd
        return svgd
    spec = importlib.util.spec_from_file_location("svgd_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.svgd


def timed(fn, device: torch.device) -> tuple[float, torch.Tensor]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--particles", type=int, default=500, help="particles per set")
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--steps", type=int, default=15000, help="SVGD iterations (paper: 15 000)")
    parser.add_argument("--step-size", type=float, default=1e-3, help="SVGD step size (paper: 1e-3)")
    parser.add_argument("--sets", type=int, default=1, help="S > 1: time S sets batched and one after another")
    parser.add_argument("--no-sequential", action="store_true", help="with --sets: skip the one-after-another run")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--device", default="cpu", help="cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (torch.set_num_threads)")
    parser.add_argument("--svgd-from", default=None, help="a file defining svgd (e.g. an older svgd.py) to time instead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    svgd = load_svgd(args.svgd_from)
    dtype = getattr(torch, args.dtype)
    prior = learned_looking_prior(args.dim, args.seed).to(device=device, dtype=dtype)
    g = torch.Generator().manual_seed(args.seed)
    starts = torch.randn(args.sets, args.particles, args.dim, generator=g, dtype=dtype).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# svgd: torch {torch.__version__}, device {device} ({name}), {torch.get_num_threads()} CPU threads, "
          f"{args.dtype}, svgd from {args.svgd_from or 'fisherae.sampling'}")
    print(f"# {args.sets} set(s) x {args.particles} particles, d = {args.dim}, {args.steps} steps x {args.step_size:g}")
    run = lambda x: svgd(prior.score, x, args.steps, args.step_size)  # noqa: E731
    steps = max(args.steps, 1)
    if args.sets == 1:
        seconds, out = timed(lambda: run(starts[0]), device)
        print(f"one set: {seconds:.2f} s, {1e3 * seconds / steps:.3f} ms/step; "
              f"final mean |z| {out.abs().mean().item():.4f}")
        return
    try:
        seconds, out = timed(lambda: run(starts), device)
        print(f"batched ({args.sets} sets in one call): {seconds:.2f} s, {1e3 * seconds / steps:.3f} ms/step, "
              f"final mean |z| {out.abs().mean().item():.4f}")
    except ValueError as err:  # an svgd without [S, n, d] support
        print(f"batched: not supported ({err})")
    if not args.no_sequential:
        seconds, outs = timed(lambda: [run(starts[i]) for i in range(args.sets)], device)
        print(f"sequential ({args.sets} calls): {seconds:.2f} s, {1e3 * seconds / steps:.3f} ms/step, "
              f"final mean |z| {torch.stack(outs).abs().mean().item():.4f}")


if __name__ == "__main__":
    main()
