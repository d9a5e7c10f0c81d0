"""SVGD (the paper's sampler: N(0, I) start, step 1e-3, 15 000 iterations) on the polynomial prior
(eq. 13) of a *trained* model: the learned eta, per-dimension normalisability, wall time, and
per-dimension KS / W1 distances to the exact marginals where the prior is normalisable (with the
N(0, I) start and the exact sampler's own sampling noise as references); where it is not, what the
particles do (drift diagnostics, moments at start / halfway / end) and the exact sampler's refusal.

    python benchmarks/bench_trained_prior.py RUN/model.pt                       # 1000 particles, CPU
    python benchmarks/bench_trained_prior.py RUN/model.pt --particles 10000 --device cuda
    python benchmarks/bench_trained_prior.py RUN/model.pt --config CONFIG   # + distances to q(z)

With --config (the run's config) the particles are also compared, per dimension, with the model's
aggregate posterior q(z) = mean_x q(z|x) over the first --posterior-images training images: the
distribution the learned prior was fitted to, and a reference that exists whether or not the
prior can be normalised.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fisherae.checkpoint import load_model
from fisherae.priors import PolynomialPrior
from fisherae.errors import NotNormalisableError, SVGDDivergedError
from fisherae.exact_sampler import sample_prior
from fisherae.losses import reparameterise
from fisherae.metrics import marginal_distances
from fisherae.prior_analysis import marginal_grid, natural_parameters, unnormalisable_dims
from fisherae.sampling import LatentSamples, drift_diagnostics
from fisherae.svgd import svgd


def print_eta(prior: PolynomialPrior) -> None:
    eta, problems = natural_parameters(prior), unnormalisable_dims(prior)
    print(f"{'dim':>4}" + "".join(f"{f'eta_{k}':>11}" for k in range(1, eta.shape[1] + 1)) + "  normalisable")
    for j, row in enumerate(eta):
        print(f"{j:>4}" + "".join(f"{v:>11.4g}" for v in row) + f"  {'yes' if j not in problems else 'no: ' + problems[j]}")


def print_moments(snapshots: dict[str, np.ndarray]) -> None:
    """Per dimension: mean / sd / max |z| of each particle set."""
    names = list(snapshots)
    print(f"{'dim':>4}" + "".join(f"{n + ' mean':>15}{n + ' sd':>13}{n + ' max|z|':>15}" for n in names))
    for j in range(next(iter(snapshots.values())).shape[1]):
        print(f"{j:>4}" + "".join(f"{v[:, j].mean():>15.4f}{v[:, j].std():>13.4f}{np.abs(v[:, j]).max():>15.4f}"
                                  for v in snapshots.values()))


def aggregate_posterior(model_path: str, config_path: str, n_images: int, generator) -> torch.Tensor:
    """One draw z ~ q(z|x) per training image x: samples of the aggregate posterior."""
    from fisherae.config import load_config
    from fisherae.data import load_split

    model, config = load_model(model_path), load_config(config_path)
    data = load_split(model.spec.dataset, config["datasets"][model.spec.dataset], "train")
    x = torch.stack([data[i][0] for i in range(min(n_images, len(data)))])
    with torch.no_grad():
        mu, logvar = model.encoder(x)
    return reparameterise(mu, logvar, torch.randn(mu.shape, generator=generator)[None])


def print_two_sample(reference: torch.Tensor, sets: dict[str, torch.Tensor]) -> None:
    """Per dimension: two-sample KS and W1 of each particle set against the aggregate posterior."""
    from scipy.stats import ks_2samp, wasserstein_distance

    ref = reference.numpy()
    print(f"\ndistance to the aggregate posterior q(z) ({len(ref)} draws): two-sample KS / W1 per dimension")
    print(f"{'dim':>4}" + "".join(f"{'KS ' + n:>14}" for n in sets) + "".join(f"{'W1 ' + n:>14}" for n in sets))
    stats = {n: [(ks_2samp(z.numpy()[:, j], ref[:, j]).statistic, wasserstein_distance(z.numpy()[:, j], ref[:, j]))
                 for j in range(ref.shape[1])] for n, z in sets.items()}
    for j in range(ref.shape[1]):
        print(f"{j:>4}" + "".join(f"{s[j][0]:>14.4f}" for s in stats.values())
              + "".join(f"{s[j][1]:>14.4f}" for s in stats.values()))
    print("mean" + "".join(f"{np.mean([v[0] for v in s]):>14.4f}" for s in stats.values())
          + "".join(f"{np.mean([v[1] for v in s]):>14.4f}" for s in stats.values()))
    print("q(z) moments: mean " + " ".join(f"{v:.3f}" for v in ref.mean(0)) + "; sd "
          + " ".join(f"{v:.3f}" for v in ref.std(0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("model", help="model.pt written by `python -m fisherae train` (polynomial prior)")
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=15000, help="SVGD iterations (paper: 15 000)")
    parser.add_argument("--step-size", type=float, default=1e-3, help="SVGD step size (paper: 1e-3)")
    parser.add_argument("--grid-points", type=int, default=20001)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", help="the run's config: compare with the aggregate posterior on its training data")
    parser.add_argument("--posterior-images", type=int, default=10000)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = load_model(args.model).prior
    if not isinstance(prior, PolynomialPrior):
        raise SystemExit(f"{args.model}: prior is {type(prior).__name__}, expected a PolynomialPrior")
    print(f"# {args.model}: {prior}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print_eta(prior)
    normalisable = prior.is_normalisable()
    print(f"prior normalisable: {normalisable}")

    generator = torch.Generator().manual_seed(args.seed)
    start = torch.randn(args.particles, prior.dim, generator=generator)
    every = max(args.steps // 10, 1)
    trace: dict[int, torch.Tensor] = {0: start.clone()}

    def monitor(step: int, x: torch.Tensor) -> None:
        if step % every == 0 or step == args.steps:
            trace[step] = x.clone()

    t0 = time.perf_counter()
    try:
        end, error = svgd(prior.score, start, args.steps, args.step_size, monitor=monitor), None
    except SVGDDivergedError as err:
        end, error = None, err
    t_svgd = time.perf_counter() - t0
    last = max(trace)
    print(f"\nsvgd: {args.particles} particles, {last}/{args.steps} steps x {args.step_size:g} in {t_svgd:.1f} s "
          f"({1e3 * t_svgd / max(last, 1):.2f} ms/step)" + (f"; STOPPED: {error}" if error else ""))
    half = trace[max(s for s in trace if s <= last // 2)]
    print(f"\nmoments (start = N(0, I); half = step {max(s for s in trace if s <= last // 2)}; end = step {last})")
    snapshots = {"start": start.numpy(), "half": half.numpy(), "end": trace[last].numpy()}

    if normalisable:
        t0 = time.perf_counter()
        grid = marginal_grid(prior, args.grid_points)
        t_grid = time.perf_counter() - t0
        exact = sample_prior(prior, args.particles, generator, grid_points=args.grid_points)
        t_exact = time.perf_counter() - t0
        print_moments({**snapshots, "exact": exact.numpy()})
        print(f"\nexact sampler (marginal_grid + inverse CDF): {t_exact:.3f} s ({t_grid:.3f} s of it the grid)")
        dist = {name: marginal_distances(z, grid) for name, z in
                (("svgd", trace[last]), ("exact", exact), ("start", start), ("svgd_half", half))}
        print(f"KS 95% critical value for n = {args.particles}: {1.358 / np.sqrt(args.particles):.4f}")
        print(f"{'dim':>4}" + "".join(f"{'KS ' + n:>14}" for n in dist) + "".join(f"{'W1 ' + n:>14}" for n in dist))
        for j in range(prior.dim):
            print(f"{j:>4}" + "".join(f"{d['ks'][j]:>14.4f}" for d in dist.values())
                  + "".join(f"{d['w1'][j]:>14.4f}" for d in dist.values()))
        print("mean" + "".join(f"{d['ks'].mean():>14.4f}" for d in dist.values())
              + "".join(f"{d['w1'].mean():>14.4f}" for d in dist.values()))
    else:
        print_moments(snapshots)
        try:
            sample_prior(prior, args.particles, generator)
            print("\nBUG: sample_prior returned samples of an unnormalisable prior")
        except NotNormalisableError as err:
            print(f"\nsample_prior refuses: NotNormalisableError: {err}")
    if args.config and end is not None:
        reference = aggregate_posterior(args.model, args.config, args.posterior_images, generator)
        print_two_sample(reference, {"start": start, "svgd_half": half, "svgd": trace[last]})
    if end is not None:
        samples = LatentSamples(end[None], "svgd", t_svgd, z_start=start[None], z_half=half[None])
        print("\ndrift diagnostics (fisherae.sampling.drift_diagnostics)")
        for row in drift_diagnostics(prior, samples):
            print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
