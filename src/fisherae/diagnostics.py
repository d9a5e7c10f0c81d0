"""Encoder collapse diagnostics, reported beside Figure 1 (see docs/pilot_decoder_variance.md).

A collapsed encoder, whose reconstructions f(mu(x)) are about the mean image whatever x is, makes
Figure 1's normalised BCE flat for the wrong reason: the model ignores its input, noisy or not.
These statistics of the test split say how informative a trained encoder is. Sums are taken in
float64; every sd is the population sd (ddof = 0) across test images.

  - ``recon_sq_error``: mean over test images of sum_p (x_p - f(mu(x))_p)^2 (no noise);
  - ``mean_image_sq_error``: the same for the constant prediction m, the mean of the first
    ``n_probe`` training images; ``error_ratio`` = recon_sq_error / mean_image_sq_error
    (about 1: collapsed);
  - ``sigma_mean``: mean of sigma(x) = exp(logvar(x) / 2) over test images and latent dims; NaN
    for a WAE-GAN with a deterministic encoder, whose logvar head is never trained;
  - ``mu_sd``: sd of mu(x), averaged over latent dims; ``mu_sd_over_sigma`` = mu_sd / sigma_mean;
  - ``output_sd`` / ``data_sd``: per-pixel sd of f(mu(x)) / of x, averaged over pixels and channels;
  - ``probe_accuracy``: test accuracy of a logistic regression on standardised mu(x), trained on
    the first ``n_probe`` training images (``probe_n_train`` of them); NaN if some mu is not finite;
  - ``n_test``: the number of test images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, Dataset, Subset

from fisherae.models import AutoEncoder

DIAGNOSTIC_FIELDS = ["recon_sq_error", "mean_image_sq_error", "error_ratio", "sigma_mean", "mu_sd",
                     "mu_sd_over_sigma", "output_sd", "data_sd", "probe_accuracy", "probe_n_train", "n_test"]
DIAGNOSE_COLUMNS = ["dataset", "model", "seed", *DIAGNOSTIC_FIELDS]
SIGMA_FIELDS = ("sigma_mean", "mu_sd_over_sigma")
PROBE_MAX_ITER = 10_000
PROBE_SEED = 0


class _Moments:
    """Per-feature mean and sum of squared deviations of a stream of batches (Chan's merge, float64)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, batch: torch.Tensor) -> None:
        """Merge ``batch`` [B, ...] (features: everything after the first axis)."""
        b = batch.double().flatten(1)
        n, mean = self.n + len(b), b.mean(0)
        delta = mean - self.mean
        self.m2 = self.m2 + (b - mean).pow(2).sum(0) + delta.pow(2) * (self.n * len(b) / n)
        self.mean = self.mean + delta * (len(b) / n)
        self.n = n

    def mean_sd(self) -> float:
        """The population sd of each feature, averaged over features."""
        return (self.m2 / self.n).sqrt().mean().item()


def has_posterior_variance(model: AutoEncoder) -> bool:
    """Whether sigma(x) is part of the model: not for a WAE-GAN trained with a deterministic encoder."""
    return model.spec.method != "wae_gan" or bool(model.spec.extra.get("stochastic_encoder", False))


def non_finite_fields(stats: dict, model: AutoEncoder) -> list[str]:
    """The fields of ``stats`` that are NaN or infinite although ``model`` defines them."""
    undefined = () if has_posterior_variance(model) else SIGMA_FIELDS
    return [k for k, v in stats.items() if k not in undefined and not math.isfinite(v)]


def _ratio(a: float, b: float) -> float:
    """a / b, infinite or NaN (not an exception) where b = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / b)


def _squared_error(x: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """sum_p (x_p - prediction_p)^2 per image, in float64: shape [B]."""
    return (x.double() - prediction.double()).pow(2).flatten(1).sum(1)


@torch.no_grad()
def _encode_probe_train(model: AutoEncoder, data: Dataset, batch_size: int,
                        device) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """mu(x) [n, d] and labels [n] of ``data``, and its mean image (float64, on ``device``)."""
    mus, labels, total = [], [], 0.0
    for x, y in DataLoader(data, batch_size=batch_size, shuffle=False):
        x = x.to(device)
        mus.append(model.encoder(x)[0].double().cpu())
        labels.append(torch.as_tensor(y))
        total = total + x.double().sum(0)
    return torch.cat(mus).numpy(), torch.cat(labels).numpy(), total / len(data)


@torch.no_grad()
def _test_statistics(model: AutoEncoder, data: Dataset, mean_image: torch.Tensor, batch_size: int,
                     device) -> tuple[dict, np.ndarray, np.ndarray]:
    """The test-split fields but the ratios and the probe, and mu(x) [n, d] and labels [n] for the probe."""
    sums = dict.fromkeys(("recon_sq_error", "mean_image_sq_error", "sigma"), 0.0)
    images, outputs, mus, labels = _Moments(), _Moments(), [], []
    for x, y in DataLoader(data, batch_size=batch_size, shuffle=False):
        x = x.to(device)
        mu, logvar = model.encoder(x)
        recon = model.decoder(mu)
        sums["recon_sq_error"] += _squared_error(x, recon).sum().item()
        sums["mean_image_sq_error"] += _squared_error(x, mean_image).sum().item()
        sums["sigma"] += logvar.double().mul(0.5).exp().sum().item()
        images.add(x)
        outputs.add(recon)
        mus.append(mu.double().cpu())
        labels.append(torch.as_tensor(y))
    mu = torch.cat(mus)
    stats = {"recon_sq_error": sums["recon_sq_error"] / len(mu),
             "mean_image_sq_error": sums["mean_image_sq_error"] / len(mu),
             "sigma_mean": sums["sigma"] / mu.numel(), "mu_sd": mu.std(0, correction=0).mean().item(),
             "output_sd": outputs.mean_sd(), "data_sd": images.mean_sd()}
    return stats, mu.numpy(), torch.cat(labels).numpy()


def probe_accuracy(train_mu: np.ndarray, train_labels: np.ndarray, test_mu: np.ndarray,
                   test_labels: np.ndarray) -> float:
    """Test accuracy of a logistic regression on standardised codes; NaN if a code is not finite."""
    classes = np.unique(train_labels)
    if len(classes) < 2:
        raise ValueError(f"the probe needs at least 2 classes among its {len(train_labels)} training labels, "
                         f"got {classes.tolist()}; raise n_probe or use a labelled data set")
    if not (np.isfinite(train_mu).all() and np.isfinite(test_mu).all()):
        return math.nan
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER, random_state=PROBE_SEED))
    return float(probe.fit(train_mu, train_labels).score(test_mu, test_labels))


def encoder_diagnostics(model: AutoEncoder, train: Dataset, test: Dataset, *, batch_size: int, n_probe: int,
                        device: torch.device | str = "cpu") -> dict:
    """The fields of the module docstring (DIAGNOSTIC_FIELDS, in order) of ``model`` on ``test``; the mean
    image and the probe use the first ``n_probe`` images of ``train`` (all of them if it has fewer)."""
    if not len(train) or not len(test):
        raise ValueError(f"diagnostics need non-empty splits; got {len(train)} train and {len(test)} test images")
    model = model.to(device).eval()
    probe_train = Subset(train, range(min(n_probe, len(train))))
    train_mu, train_labels, mean_image = _encode_probe_train(model, probe_train, batch_size, device)
    stats, test_mu, test_labels = _test_statistics(model, test, mean_image, batch_size, device)
    if not has_posterior_variance(model):
        stats["sigma_mean"] = math.nan
    stats.update(error_ratio=_ratio(stats["recon_sq_error"], stats["mean_image_sq_error"]),
                 mu_sd_over_sigma=_ratio(stats["mu_sd"], stats["sigma_mean"]),
                 probe_accuracy=probe_accuracy(train_mu, train_labels, test_mu, test_labels),
                 probe_n_train=len(probe_train), n_test=len(test))
    return {k: stats[k] for k in DIAGNOSTIC_FIELDS}
