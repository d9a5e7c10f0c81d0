"""SVGD (the paper's sampler: N(0, I) start, step 1e-3, 15 000 iterations) vs the exact
inverse-CDF sampler on a normalisable K = 4 polynomial prior (eq. 13) with learned-looking
coefficients: wall time and per-dimension KS / W1 distances to the exact marginals.

    python benchmarks/bench_samplers.py                                 # the paper's setting (GPU)
    python benchmarks/bench_samplers.py --particles 1000 --steps 500    # a few minutes on a CPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fisherae.priors import PolynomialPrior
from fisherae.exact_sampler import sample_prior
from fisherae.metrics import marginal_distances
from fisherae.prior_analysis import marginal_grid
from fisherae.svgd import svgd


def learned_looking_prior(dim: int, seed: int) -> PolynomialPrior:
    """K = 4, normalisable: a skewed (eta_1, eta_3 != 0), non-Gaussian (eta_4 < 0) factor per dimension
    near N(0, 1), like a prior fitted to an aggregate posterior."""
    g = torch.Generator().manual_seed(seed)
    prior = PolynomialPrior(dim, 4, normalisable=True)
    with torch.no_grad():
        prior.eta_lower[:, 0] = 0.2 * torch.randn(dim, generator=g)
        prior.eta_lower[:, 1] = -0.5 + 0.15 * torch.rand(dim, generator=g)
        prior.eta_lower[:, 2] = 0.1 * torch.randn(dim, generator=g)
        prior.top_raw[:] = 0.22 + 0.14 * torch.rand(dim, generator=g)  # eta_4 = -(rho^2 + 1e-4) ~ -0.05 .. -0.13
    return prior


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(dim: int, args, device: torch.device) -> None:
    prior = learned_looking_prior(dim, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    grid = marginal_grid(prior, args.grid_points)
    exact = sample_prior(prior, args.particles, generator, grid_points=args.grid_points)
    t_exact = time.perf_counter() - t0
    start = torch.randn(args.particles, dim, generator=generator).to(device)
    prior = prior.to(device)
    synchronise(device)
    t0 = time.perf_counter()
    particles = svgd(prior.score, start, args.steps, args.step_size, check_every=max(args.steps // 10, 1))
    synchronise(device)
    t_svgd = time.perf_counter() - t0
    d_svgd, d_exact = marginal_distances(particles.cpu(), grid), marginal_distances(exact, grid)
    d_start = marginal_distances(start.cpu(), grid)
    print(f"\n## d = {dim}, n = {args.particles} particles, device {device}")
    print(f"{'method':<24}{'seconds':>10}{'KS mean':>10}{'KS max':>10}{'W1 mean':>10}{'W1 max':>10}")
    for name, seconds, dist in ((f"svgd {args.steps} x {args.step_size:g}", t_svgd, d_svgd),
                                ("exact (inverse CDF)", t_exact, d_exact),
                                ("N(0, I) start", float("nan"), d_start)):
        print(f"{name:<24}{seconds:>10.2f}{dist['ks'].mean():>10.4f}{dist['ks'].max():>10.4f}"
              f"{dist['w1'].mean():>10.4f}{dist['w1'].max():>10.4f}")
    print(f"svgd: {1e3 * t_svgd / max(args.steps, 1):.1f} ms/step; KS 95% critical value for n = {args.particles}: "
          f"{1.358 / np.sqrt(args.particles):.4f}")
    if dim <= args.per_dim_max:
        print(f"{'dim':>4}{'KS svgd':>10}{'KS exact':>10}{'W1 svgd':>10}{'W1 exact':>10}")
        for j in range(dim):
            print(f"{j:>4}{d_svgd['ks'][j]:>10.4f}{d_exact['ks'][j]:>10.4f}{d_svgd['w1'][j]:>10.4f}"
                  f"{d_exact['w1'][j]:>10.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--particles", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=15000, help="SVGD iterations (paper: 15 000)")
    parser.add_argument("--step-size", type=float, default=1e-3, help="SVGD step size (paper: 1e-3)")
    parser.add_argument("--grid-points", type=int, default=20001)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--per-dim-max", type=int, default=16, help="print per-dimension rows up to this d")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from fisherae.devices import acquire_device
    with acquire_device(args.device) as device:
        print(f"# SVGD vs exact sampler ({torch.__version__}, {torch.get_num_threads()} CPU threads)")
        for dim in args.dims:
            run(dim, args, device)


if __name__ == "__main__":
    main()
