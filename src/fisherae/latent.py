"""Robustness of the latent representation to input noise (paper Section 4, Figures 3 and 4).

MNIST test images plus N(0, sigma^2 I) noise (the same draws for every model, see
``evaluation.batch_noise``) are encoded with the posterior mean mu(x), embedded in 2-D with
t-SNE, clustered with k-means on the 2-D embedding, and the clusters scored against the digit
labels with NMI = 2 I(Omega; C) / (H(Omega) + H(C)) (``metrics.nmi``).

t-SNE backend: openTSNE, chosen over scikit-learn's TSNE because it was faster at the size we
run, 10 000 points (where openTSNE switches from Barnes-Hut to its FFT-interpolated gradient,
which scales ~linearly in n). ``benchmarks/bench_tsne.py`` (750 iterations for both, toy 8-D
data; on the shared 2-core development box under load average 3.5-5.3 from other jobs, so
absolute seconds are noisy) measured at 10 000 points: openTSNE 49.4 s vs scikit-learn 115.5 s
and 80.1 s vs 94.4 s (2 threads, two runs), 48.5 s vs 148.2 s (1 thread); at 2 000 points
scikit-learn was faster (8.9 s vs 19.0 s and 28.7 s vs 40.8 s, both Barnes-Hut there). NMI of
k-means on the embeddings was the same (0.991 vs 0.992). openTSNE gives identical embeddings
for a fixed seed (checked with 1 and 2 threads). scikit-learn stays available (``backend="sklearn"``) for comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import KMeans

from fisherae.errors import UserError
from fisherae.evaluation import add_noise, batch_noise
from fisherae.metrics import nmi
from fisherae.models import AutoEncoder
from fisherae.npz import read_npz, write_npz

NMI_COLUMNS = ["dataset", "model", "seed", "sigma2", "tsne_seed", "nmi"]
TSNE_BACKENDS = ("opentsne", "sklearn")
EARLY_EXAGGERATION_ITER = 250  # both libraries' default exploration phase


def tsne_embed(x: np.ndarray, seed: int, perplexity: float = 30.0, n_iter: int = 750,
               backend: str = "opentsne", n_jobs: int = 1) -> np.ndarray:
    """2-D t-SNE embedding of ``x`` [n, d] (float32 [n, 2]); ``n_iter`` counts all iterations,
    the first 250 with early exaggeration. Perplexity is capped at (n - 1) / 3, the most that
    n points support (openTSNE's rule; scikit-learn would fail instead)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 4:
        raise ValueError(f"t-SNE needs at least 4 points as an [n, d] array, got shape {x.shape}")
    if n_iter <= EARLY_EXAGGERATION_ITER:
        raise ValueError(f"n_iter must exceed the {EARLY_EXAGGERATION_ITER} early-exaggeration iterations, "
                         f"got {n_iter}")
    perplexity = min(perplexity, (len(x) - 1) / 3)
    if backend == "opentsne":
        from openTSNE import TSNE
        embedding = TSNE(perplexity=perplexity, early_exaggeration_iter=EARLY_EXAGGERATION_ITER,
                         n_iter=n_iter - EARLY_EXAGGERATION_ITER, n_jobs=n_jobs, random_state=seed).fit(x)
        return np.asarray(embedding, dtype=np.float32)
    if backend == "sklearn":
        from sklearn.manifold import TSNE
        return TSNE(perplexity=perplexity, max_iter=n_iter, n_jobs=n_jobs, random_state=seed,
                    init="pca").fit_transform(x).astype(np.float32)
    raise ValueError(f"unknown t-SNE backend {backend!r}: expected one of {TSNE_BACKENDS}")


def cluster_nmi(embedding: np.ndarray, labels: np.ndarray, n_clusters: int, seed: int) -> float:
    """NMI between k-means clusters of ``embedding`` (k = ``n_clusters``) and ``labels``."""
    clusters = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(embedding)
    return float(nmi(labels, clusters))


@torch.no_grad()
def encode_noisy(model: AutoEncoder, images: torch.Tensor, sigma2: float, noise_seed: int, batch_size: int,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """Posterior means mu(x + noise) [n, d]; batch b's noise is ``batch_noise(.., noise_seed, b)``."""
    model = model.to(device).eval()
    means = []
    for batch, x in enumerate(images.split(batch_size)):
        x = x.to(device)
        means.append(model.encode_mean(add_noise(x, sigma2, batch_noise(tuple(x.shape), noise_seed, batch))).cpu())
    return torch.cat(means).double().numpy()


def latent_robustness(model: AutoEncoder, images: torch.Tensor, labels: np.ndarray, sigma2s: list[float],
                      tsne_seeds: list[int], n_clusters: int, noise_seed: int, perplexity: float = 30.0,
                      batch_size: int = 500, device: torch.device | str = "cpu", n_jobs: int = 1,
                      n_iter: int = 750) -> tuple[pd.DataFrame, np.ndarray]:
    """NMI of k-means on the t-SNE of mu(x + noise), per noise level and t-SNE/k-means seed.

    Returns (table with columns sigma2, tsne_seed, nmi; embeddings [n_sigma2, n_seeds, n, 2])."""
    rows, embeddings = [], np.zeros((len(sigma2s), len(tsne_seeds), len(images), 2), dtype=np.float32)
    for i, sigma2 in enumerate(sigma2s):
        z = encode_noisy(model, images, sigma2, noise_seed, batch_size, device)
        if not np.isfinite(z).all():
            raise ValueError(f"the encoder returned non-finite posterior means at sigma2 = {sigma2}")
        for j, tsne_seed in enumerate(tsne_seeds):
            embeddings[i, j] = tsne_embed(z, tsne_seed, perplexity, n_iter=n_iter, n_jobs=n_jobs)
            rows.append({"sigma2": float(sigma2), "tsne_seed": tsne_seed,
                         "nmi": cluster_nmi(embeddings[i, j], labels, n_clusters, tsne_seed)})
    return pd.DataFrame(rows, columns=NMI_COLUMNS[3:]), embeddings


def write_embeddings(path: str, embeddings: np.ndarray, labels: np.ndarray, sigma2s: list[float],
                     tsne_seeds: list[int], dataset: str, model: str, seed: int) -> None:
    """The t-SNE embeddings of one model (Figure 4's input) as an NPZ at ``path``, atomically."""
    write_npz(path, {"embeddings": embeddings, "labels": labels, "sigma2": np.asarray(sigma2s, dtype=float),
                     "tsne_seeds": np.asarray(tsne_seeds), "dataset": np.asarray(dataset),
                     "model": np.asarray(model), "seed": np.asarray(seed)})


def read_embeddings(paths: list[str]) -> list[dict]:
    """The NPZs written by `latent`, as dicts (0-d arrays as scalars)."""
    out = []
    for path in paths:
        try:
            out.append({k: (v.item() if v.ndim == 0 else v) for k, v in read_npz(path).items()})
        except (OSError, ValueError) as err:
            raise UserError(f"{path} is not a latent NPZ written by `python -m fisherae latent` ({err})") from err
    return out
