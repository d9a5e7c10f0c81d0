"""Evaluation metrics: the Fréchet distance behind FID (Table 1), its feature extractors
(pytorch-fid's InceptionV3 pool3 and a domain classifier), the NMI of Section 4 /
Figure 3, NMI = 2 I(Omega; C) / (H(Omega) + H(C)), and the per-dimension distances (KS, W1)
of prior samples to the exact marginals."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator
from urllib.parse import urlparse

import numpy as np
import torch
from scipy import stats
from torch import nn

from fisherae.errors import FeaturesUnavailable

if TYPE_CHECKING:
    from fisherae.prior_analysis import MarginalGrid

INCEPTION_FEATURES = "inception-pool3-2048"
CLASSIFIER_FEATURES = "mnist-classifier-penultimate"
INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"


# --------------------------------------------------------------------------- Fréchet distance

def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}) between N(mu1, S1) and N(mu2, S2).

    tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(S1^{1/2} S2 S1^{1/2})): the matrix is symmetric PSD,
    so its eigenvalues are real and the result is exact for singular (rank-deficient)
    covariances too, without sqrtm's eps offset or imaginary residue. Float64 throughout."""
    mu1, mu2 = (np.asarray(m, dtype=np.float64) for m in (mu1, mu2))
    s1, s2 = (_check_covariance(np.asarray(s, dtype=np.float64), f"sigma{i}") for i, s in ((1, sigma1), (2, sigma2)))
    if mu1.ndim != 1 or mu1.shape != mu2.shape or s1.shape != (mu1.size, mu1.size) or s1.shape != s2.shape:
        raise ValueError(f"frechet_distance: shapes do not match: mu1 {mu1.shape}, sigma1 {s1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {s2.shape}")
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all()):
        raise ValueError("frechet_distance: the means contain NaN or inf")
    root1 = _psd_sqrt(s1)
    tr_covmean = np.sqrt(_psd_eigenvalues(root1 @ s2 @ root1)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def _symmetric(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def _check_covariance(sigma: np.ndarray, name: str) -> np.ndarray:
    if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1]:
        raise ValueError(f"frechet_distance: {name} must be a square matrix, got shape {sigma.shape}")
    if not np.isfinite(sigma).all():
        raise ValueError(f"frechet_distance: {name} contains NaN or inf")
    scale = max(np.abs(sigma).max(initial=0.0), 1e-300)
    if np.abs(sigma - sigma.T).max(initial=0.0) > 1e-6 * scale:
        raise ValueError(f"frechet_distance: {name} is not symmetric; pass a covariance matrix")
    sigma = _symmetric(sigma)
    lowest = np.linalg.eigvalsh(sigma).min(initial=0.0)
    if lowest < -1e-6 * scale * sigma.shape[0]:
        raise ValueError(f"frechet_distance: {name} is not positive semi-definite (eigenvalue {lowest:.3g})")
    return sigma


def _psd_eigenvalues(a: np.ndarray, vectors: bool = False):
    """eigh of a symmetric PSD matrix with round-off eigenvalues (below d * eps * max, the usual
    numerical-rank tolerance, or negative) set to exactly 0: their square roots would add noise."""
    values, vecs = np.linalg.eigh(_symmetric(a))
    tol = a.shape[0] * np.finfo(np.float64).eps * max(values.max(initial=0.0), 0.0)
    values = np.where(values > tol, values, 0.0)
    return (values, vecs) if vectors else values


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric PSD square root."""
    values, vectors = _psd_eigenvalues(sigma, vectors=True)
    return _symmetric((vectors * np.sqrt(values)) @ vectors.T)


class ActivationStatistics:
    """Running mean and covariance of feature rows, accumulated in float64."""

    def __init__(self, dim: int):
        self.n = 0
        self._sum = np.zeros(dim)
        self._outer = np.zeros((dim, dim))
        self._shift: np.ndarray | None = None  # first batch's mean, for a well-conditioned sum

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        f = torch.as_tensor(features).detach().to("cpu", torch.float64).numpy()
        if f.ndim != 2 or f.shape[1] != self._sum.size:
            raise ValueError(f"expected features [n, {self._sum.size}], got {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError("feature extractor produced NaN or inf activations")
        if self._shift is None:
            self._shift = f.mean(0)
        f = f - self._shift
        self.n += f.shape[0]
        self._sum += f.sum(0)
        self._outer += f.T @ f

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, unbiased covariance); needs at least two rows."""
        if self.n < 2:
            raise ValueError(f"activation statistics need at least 2 samples, got {self.n}")
        centred_mean = self._sum / self.n
        cov = (self._outer - self.n * np.outer(centred_mean, centred_mean)) / (self.n - 1)
        return centred_mean + self._shift, _symmetric(cov)


# --------------------------------------------------------------------------- NMI

def nmi(labels_true: Iterable, labels_pred: Iterable) -> float:
    """NMI = 2 I(Omega; C) / (H(Omega) + H(C)) from the contingency table (Section 4, Figure 3).

    Two one-cluster labelings are identical partitions: NMI = 1 (as scikit-learn)."""
    a, b = np.asarray(labels_true).ravel(), np.asarray(labels_pred).ravel()
    if a.size != b.size:
        raise ValueError(f"nmi: labelings differ in length ({a.size} vs {b.size})")
    if a.size == 0:
        raise ValueError("nmi: empty labelings")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1.0)
    p = table / a.size
    pa, pb = p.sum(1), p.sum(0)
    h_a, h_b = -(pa * np.log(pa)).sum(), -(pb * np.log(pb)).sum()
    if h_a + h_b == 0.0:
        return 1.0
    nz = p > 0
    mutual = (p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum()
    return float(np.clip(2.0 * mutual / (h_a + h_b), 0.0, 1.0))


# --------------------------------------------------------------------------- distances to the exact marginals

def wasserstein_to_cdf(samples: np.ndarray, z: np.ndarray, cdf: np.ndarray) -> float:
    """W1 = integral |F_n(x) - F(x)| dx between the empirical CDF of 1-D ``samples`` and the
    piecewise-linear CDF (z, cdf), integrated exactly."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    pts = np.union1d(x, z)
    f = np.interp(pts, z, cdf)
    fn = np.searchsorted(x, pts[:-1], side="right") / x.size  # F_n on [pts[i], pts[i+1])
    a, b, width = f[:-1] - fn, f[1:] - fn, np.diff(pts)
    same_sign = a * b >= 0
    area = np.where(same_sign, 0.5 * (np.abs(a) + np.abs(b)),
                    0.5 * (a**2 + b**2) / np.maximum(np.abs(a) + np.abs(b), 1e-300))
    return float((area * width).sum())


def marginal_distances(samples: torch.Tensor | np.ndarray, grid: MarginalGrid) -> dict[str, np.ndarray]:
    """Per gridded dimension: KS statistic and p-value against the exact marginal CDF, and W1."""
    x = torch.as_tensor(samples).detach().cpu().double().numpy()
    ks, pvalue, w1 = [], [], []
    for i, j in enumerate(grid.dims):
        test = stats.kstest(x[:, j], grid.cdf_fn(i))
        ks.append(test.statistic)
        pvalue.append(test.pvalue)
        w1.append(wasserstein_to_cdf(x[:, j], grid.z[i], grid.cdf[i]))
    return {"dim": np.array(grid.dims), "ks": np.array(ks), "ks_pvalue": np.array(pvalue), "w1": np.array(w1)}


# --------------------------------------------------------------------------- Inception features

def inception_weights_path(configured: str | os.PathLike | None) -> Path:
    """Where the FID Inception weights are looked for: the configured file, else the torch.hub cache."""
    if configured:
        return Path(configured).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME


def _missing_weights_message(path: Path, why: str) -> str:
    from pytorch_fid.inception import FID_WEIGHTS_URL
    cache = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME
    return (f"Inception weights for FID unavailable: {why}. Download {FID_WEIGHTS_URL} on a machine with "
            f"internet access and either put it at {cache} (the torch.hub cache; $TORCH_HOME moves it) "
            f"or anywhere and set evaluation.fid.inception_weights: /path/to/{INCEPTION_FILENAME} in the config "
            "(a DAG reruns fid when that setting changes; after putting the file in the cache, rerun it with "
            "`snakemake --forcerun fid fid_exact`)")


def _online(url: str, timeout: float) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` s (no hang offline)."""
    host = urlparse(url).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """A default socket timeout, so a stalled download fails instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


@contextlib.contextmanager
def _state_dict_source(loader: Callable[..., dict]) -> Iterator[None]:
    """Make pytorch-fid's ``fid_inception_v3`` take its state dict from ``loader``: it has no
    weights-path argument and always calls ``load_state_dict_from_url``."""
    import pytorch_fid.inception as pfi
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = loader
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


def inception_model(weights: str | os.PathLike | None = None, *, download: bool = True,
                    connect_timeout: float = 5.0) -> nn.Module:
    """pytorch-fid's FID InceptionV3 returning pool3 (2048-d), in eval mode on the CPU.

    Weights: ``weights`` (evaluation.fid.inception_weights) if given; else the torch.hub cache
    file; else (``download``) the standard download, tried only when its host answers within
    ``connect_timeout`` s. FeaturesUnavailable says where to put the file when none works."""
    from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
    path = inception_weights_path(weights)
    if weights and not path.is_file():
        raise FeaturesUnavailable(_missing_weights_message(path, f"evaluation.fid.inception_weights = {path} "
                                                                 "does not exist"))
    if path.is_file():
        def loader(*_args, **_kwargs):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # any unreadable file: say which and why
                raise FeaturesUnavailable(_missing_weights_message(path, f"{path} is not a readable "
                                                                         f"state dict ({err})")) from err
    elif not download:
        raise FeaturesUnavailable(_missing_weights_message(path, f"no file at {path} and download is off"))
    elif not _online(FID_WEIGHTS_URL, connect_timeout):
        host = urlparse(FID_WEIGHTS_URL).hostname
        raise FeaturesUnavailable(_missing_weights_message(path, f"no file at {path} and {host} is unreachable"))
    else:
        loader = None
    try:
        with _state_dict_source(loader) if loader else _socket_timeout(60.0):
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    except FeaturesUnavailable:
        raise
    except RuntimeError as err:  # load_state_dict: missing / unexpected keys or shapes
        raise FeaturesUnavailable(_missing_weights_message(
            path, f"{path} does not hold pytorch-fid's FID Inception weights ({str(err).splitlines()[0]})")) from err
    except OSError as err:  # the download failed after all
        raise FeaturesUnavailable(_missing_weights_message(path, f"download failed ({err})")) from err
    return model.eval()


def inception_features(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """images [B, C, H, W] in [0, 1] (C = 1 repeated to RGB) -> pool3 features [B, 2048].
    pytorch-fid resizes to 299 x 299 and rescales to [-1, 1] itself."""
    def extract(images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return model(images)[0].flatten(1)
    return extract
