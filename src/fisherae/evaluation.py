"""Robustness of reconstructions to input noise (paper Section 4, Figures 1, 2, 5 and 6).

The paper feeds each trained model ``test data + N(0, sigma^2 I_D)`` and scores the
reconstruction against the *clean* test data. We do exactly that, without clipping the noisy
input to [0, 1] (clipping would shrink the effective noise; the paper adds raw Gaussian noise).
Clipping happens only when a noisy image is *displayed* (``grid_sections``).

Noise is common to all models: test batch ``b`` gets the standard-normal draw
``batch_noise(shape, noise_seed, b)`` (a generator seeded by ``(noise_seed, b)``, on the CPU,
so the draw does not depend on the device), scaled by ``sqrt(sigma^2)`` for each noise level.

Per-image scores (rows of the sweep table, one per test batch, the batch mean of these):
  - ``bce``: binary cross-entropy summed over the image's pixels (Figure 1, MNIST),
    -sum_p [x_p log xhat_p + (1 - x_p) log(1 - xhat_p)], x the clean image, xhat = f(mu(x + noise));
  - ``mse``: squared error summed over the image's pixels and channels (Figure 5, CelebA),
    sum_p (x_p - xhat_p)^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from fisherae.models import AutoEncoder

SWEEP_COLUMNS = ["dataset", "model", "seed", "sigma2", "batch", "n_images", "metric", "value"]
MEAN_IMAGE_N = 500  # first test images whose mean image a grid's clean reconstructions are compared with
METRICS = ("bce", "mse")


def batch_noise(shape: tuple[int, ...], noise_seed: int, batch: int) -> torch.Tensor:
    """Standard-normal noise for test batch ``batch``: the same for every model and device."""
    state = np.random.SeedSequence([noise_seed, batch]).generate_state(1)[0]
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(state)))


def add_noise(x: torch.Tensor, sigma2: float, noise: torch.Tensor) -> torch.Tensor:
    """x + N(0, sigma2 I): ``noise`` is a standard-normal draw of x's shape. Not clipped."""
    return x + math.sqrt(sigma2) * noise.to(x.device, x.dtype)


def per_image_bce(recon: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """BCE of each reconstruction against its clean image, summed over pixels: shape [B]."""
    return F.binary_cross_entropy(recon, clean, reduction="none").flatten(1).sum(1)


def per_image_mse(recon: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Squared error summed over each image's pixels and channels: shape [B]."""
    return (recon - clean).pow(2).flatten(1).sum(1)


_SCORES = {"bce": per_image_bce, "mse": per_image_mse}


@torch.no_grad()
def noise_sweep(model: AutoEncoder, data: Dataset, sigma2s: list[float], batch_size: int, noise_seed: int,
                device: torch.device | str = "cpu", metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Reconstruction error of f(mu(x + noise)) against clean x, per test batch and noise level.

    Returns columns sigma2, batch, n_images, metric, value (value = batch mean of the per-image
    score). The same noise draw per batch is scaled to every sigma2 (common random numbers)."""
    unknown = set(metrics) - set(_SCORES)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}: expected some of {METRICS}")
    model = model.to(device).eval()
    rows = []
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    for batch, (x, _) in enumerate(loader):
        x = x.to(device)
        noise = batch_noise(tuple(x.shape), noise_seed, batch)
        for sigma2 in sigma2s:
            recon = model.reconstruct(add_noise(x, sigma2, noise))
            for metric in metrics:
                value = _SCORES[metric](recon, x).mean().item()
                rows.append({"sigma2": float(sigma2), "batch": batch, "n_images": len(x),
                             "metric": metric, "value": value})
    if not rows:
        raise ValueError("noise_sweep: the test set is empty")
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS[3:])


def normalise_by_clean(sweep: pd.DataFrame) -> pd.DataFrame:
    """Divide each value by the same model's, seed's, batch's and metric's value at sigma2 = 0
    (Figure 1, right): a per-batch ratio, so batch-to-batch variation largely cancels."""
    keys = [k for k in ("dataset", "model", "seed", "batch", "metric") if k in sweep.columns]
    clean = sweep[sweep["sigma2"] == 0.0]
    if clean.empty:
        raise ValueError("normalising needs sigma2 = 0 in the sweep; add 0.0 to evaluation.noise_sweep.sigma2")
    base = clean.set_index(keys)["value"].rename("clean_value")
    out = sweep.join(base, on=keys)
    if out["clean_value"].isna().any():
        missing = out.loc[out["clean_value"].isna(), keys].drop_duplicates().to_dict("records")
        raise ValueError(f"no sigma2 = 0 value to normalise by for {missing[:3]}")
    out["value"] = out["value"] / out["clean_value"]
    return out.drop(columns="clean_value")


def first_images(data: Dataset, n: int) -> tuple[torch.Tensor, np.ndarray]:
    """The first ``n`` (image, label) pairs of ``data`` as an image tensor and a label array."""
    if n > len(data):
        raise ValueError(f"asked for the first {n} test images, but the test split has only {len(data)}")
    x, y = next(iter(DataLoader(Subset(data, range(n)), batch_size=n, shuffle=False)))
    return x, torch.as_tensor(y).numpy()


def error_ratio(recon: torch.Tensor, clean: torch.Tensor, reference: torch.Tensor) -> float:
    """The squared error of ``recon`` against ``clean`` over that of the constant prediction
    ``reference`` (a mean image): about 1 or more for a model that reconstructs no better than it."""
    return float((clean - recon).double().pow(2).sum() / (clean - reference).double().pow(2).sum())


def clean_error_ratio(sections: list[GridSection], data: Dataset) -> float:
    """A grid's clean reconstructions' error over that of the mean of the first MEAN_IMAGE_N test
    images of ``data`` (see ``error_ratio``)."""
    shown = {section.name: section.images for section in sections}
    mean_image = first_images(data, min(MEAN_IMAGE_N, len(data)))[0].mean(0)
    return error_ratio(shown["reconstruction of clean"], shown["clean input"], mean_image)


@dataclass(frozen=True)
class GridSection:
    """A block of rows of a qualitative grid (Figures 2 and 6)."""

    name: str
    images: torch.Tensor  # [N, C, H, W] in [0, 1]


@torch.no_grad()
def grid_sections(model: AutoEncoder, clean: torch.Tensor, z_samples: torch.Tensor, noise_sigma2: float,
                  noise_seed: int, device: torch.device | str = "cpu") -> list[GridSection]:
    """Rows of Figure 2 / 6 for one model: noisy test inputs (clipped for display only), their
    reconstructions f(mu(x + noise)), clean test inputs, their reconstructions, and samples
    decoded from prior draws ``z_samples``. Noise: ``batch_noise(.., noise_seed, 0)``."""
    if z_samples.ndim != 2 or z_samples.shape[1] != model.spec.latent:
        raise ValueError(f"latent samples have shape {tuple(z_samples.shape)}; the model needs "
                         f"[n, {model.spec.latent}]")
    model = model.to(device).eval()
    clean = clean.to(device)
    noisy = add_noise(clean, noise_sigma2, batch_noise(tuple(clean.shape), noise_seed, 0))
    decoded = model.decoder(z_samples.to(device, clean.dtype))
    sections = [
        GridSection(f"noisy input (σ²={noise_sigma2:g})", noisy.clamp(0, 1)),
        GridSection("reconstruction of noisy", model.reconstruct(noisy)),
        GridSection("clean input", clean),
        GridSection("reconstruction of clean", model.reconstruct(clean)),
        GridSection("random samples", decoded),
    ]
    return [GridSection(s.name, s.images.detach().float().cpu()) for s in sections]


def tile(sections: list[GridSection], n_cols: int, pad: int = 2) -> tuple[np.ndarray, list[dict]]:
    """Lay sections out as one image (uint8, [H, W] or [H, W, 3]), ``n_cols`` images a row,
    each section starting on a new row, ``pad`` white pixels around tiles. Also returns each
    section's name, number of rows and pixel rows [top, bottom), for labelling."""
    c, h, w = sections[0].images.shape[1:]
    n_rows = [math.ceil(len(s.images) / n_cols) for s in sections]
    canvas = np.ones((c, pad + sum(n_rows) * (h + pad), pad + n_cols * (w + pad)), dtype=np.float32)
    layout, row = [], 0
    for section, rows in zip(sections, n_rows):
        for i, img in enumerate(section.images.numpy()):
            top, left = pad + (row + i // n_cols) * (h + pad), pad + (i % n_cols) * (w + pad)
            canvas[:, top:top + h, left:left + w] = img
        layout.append({"name": section.name, "rows": rows, "top": pad + row * (h + pad),
                       "bottom": (row + rows) * (h + pad)})
        row += rows
    image = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)
    return (image[0] if c == 1 else image.transpose(1, 2, 0)), layout
