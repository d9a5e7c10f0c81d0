"""Time openTSNE against scikit-learn's TSNE for the latent-robustness study (Figures 3-4).

Both run through ``fisherae.latent.tsne_embed`` with the same iterations (250 early
exaggeration + the rest), perplexity and threads, on an MNIST-latent-like toy set: n points
in 8-D from 10 Gaussian clusters. Prints seconds and the k-means NMI of each embedding (a
sanity check that both embeddings are equally good), one line per (backend, n).

    python benchmarks/bench_tsne.py                         # 2 000 and 10 000 points, 750 iterations
    python benchmarks/bench_tsne.py --sizes 2000 --n-iter 300   # a quick look
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from fisherae.latent import TSNE_BACKENDS, cluster_nmi, tsne_embed


def toy_latents(n: int, dim: int = 8, n_clusters: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points in ``dim``-D from ``n_clusters`` overlapping unit Gaussians (centres ~ N(0, 3^2 I))."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(n_clusters, size=n)
    centres = rng.normal(scale=3.0, size=(n_clusters, dim))
    return centres[labels] + rng.normal(size=(n, dim)), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--n-iter", type=int, default=750, help="total iterations, 250 of them early exaggeration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="+", choices=TSNE_BACKENDS, default=list(TSNE_BACKENDS))
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (other processes slow both timings)")
    print(f"{'backend':<9} {'n':>6} {'iters':>5} {'threads':>7} {'seconds':>8} {'nmi':>6}")
    for n in args.sizes:
        x, labels = toy_latents(n)
        for backend in args.backends:
            start = time.perf_counter()
            embedding = tsne_embed(x, seed=0, n_iter=args.n_iter, backend=backend, n_jobs=args.threads)
            seconds = time.perf_counter() - start
            score = cluster_nmi(embedding, labels, n_clusters=10, seed=0)
            print(f"{backend:<9} {n:>6} {args.n_iter:>5} {args.threads:>7} {seconds:>8.1f} {score:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
