"""Latent samples of a trained model's prior: which sampler runs, what its draws are, and the
samples file every later stage reads.

* ``sample_latents``: N(0, I) exactly for the Gaussian prior; SVGD (``fisherae.svgd``, the
  paper's sampler) for the polynomial prior of eq. 13, plus the exact sampler
  (``fisherae.exact_sampler``) where that prior is normalisable.
* ``drift_diagnostics``: where SVGD particles went on a prior that may not be normalisable
  (``fisherae.prior_analysis``).
* ``write_samples`` / ``read_samples``: the NPZ written by ``sample`` (z [n_draws, n_samples, d],
  method, seconds, normalisable, and z_exact / seconds_exact where the exact sampler ran) and its
  one reader, which checks it against the model that decodes it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fisherae.errors import SamplesFileError
from fisherae.exact_sampler import sample_prior
from fisherae.npz import read_npz, write_npz
from fisherae.prior_analysis import escape_region, marginal_grid, natural_parameters
from fisherae.priors import GaussianPrior, factor_problem
from fisherae.svgd import ESCAPE_FACTOR, svgd


@dataclass
class LatentSamples:
    """Draws [n_draws, n, d] of the prior: ``z`` from ``method`` (the paper's sampler), plus the
    exact draws when the prior is normalisable and SVGD particles halfway through (for drift)."""

    z: torch.Tensor
    method: str
    seconds: float
    z_exact: torch.Tensor | None = None
    seconds_exact: float | None = None
    z_start: torch.Tensor | None = None
    z_half: torch.Tensor | None = None


def sample_latents(prior: torch.nn.Module, n_draws: int, n_samples: int, *, svgd_steps: int = 15000,
                   svgd_step_size: float = 1e-3, n_particles: int = 10000, grid_points: int = 20001,
                   generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                   check_every: int = 50) -> LatentSamples:
    """Gaussian prior: exact N(0, I). Polynomial prior: SVGD from N(0, I) as in the paper, in
    independent particle sets of at most ``n_particles`` (those of one size moved together in one
    batched ``svgd`` call); if normalisable, exact draws too."""
    if n_draws < 1 or n_samples < 2:
        raise ValueError(f"sample_latents: need n_draws >= 1 and n_samples >= 2, got {n_draws}, {n_samples}")
    if isinstance(prior, GaussianPrior):
        t0 = time.perf_counter()
        z = sample_prior(prior, n_draws * n_samples, generator).reshape(n_draws, n_samples, prior.dim)
        return LatentSamples(z, "exact", time.perf_counter() - t0)
    normalisable = prior.is_normalisable()
    radius = None
    if normalisable:  # the exact support bounds where SVGD particles should end up
        grid = marginal_grid(prior, grid_points)
        radius = ESCAPE_FACTOR * (1.0 + max(np.abs(grid.z).max(), 6.0))
    starts = torch.randn(n_draws, n_samples, prior.dim, generator=generator)
    prior = prior.to(device)
    final, half = torch.empty_like(starts), torch.empty_like(starts)
    t0 = time.perf_counter()
    # the particle sets [lo, hi) of each draw: of n_particles, the last one of the rest (SVGD needs
    # >= 2 particles per set, so a single leftover particle joins the set before it)
    bounds, lo = [], 0
    while lo < n_samples:
        hi = min(lo + n_particles, n_samples)
        hi = n_samples if n_samples - hi == 1 else hi
        bounds.append((lo, hi))
        lo = hi
    sizes = {}
    for lo, hi in bounds:  # sets of one size, of all draws, move together in one batched call
        sizes.setdefault(hi - lo, []).append(lo)
    for size, los in sizes.items():
        batch = torch.stack([starts[draw, lo:lo + size] for draw in range(n_draws) for lo in los])
        snapshot = _HalfwaySnapshot(svgd_steps)
        out = svgd(prior.score, batch.to(device), svgd_steps, svgd_step_size, escape_radius=radius,
                   check_every=check_every, monitor=snapshot).cpu()
        mid = snapshot.particles if snapshot.particles is not None else batch
        for i, (draw, lo) in enumerate((draw, lo) for draw in range(n_draws) for lo in los):
            final[draw, lo:lo + size] = out[i]
            half[draw, lo:lo + size] = mid[i]
    seconds = time.perf_counter() - t0
    result = LatentSamples(final, "svgd", seconds, z_start=starts, z_half=half)
    if normalisable:
        t0 = time.perf_counter()
        result.z_exact = sample_prior(prior.cpu(), n_draws * n_samples, generator,
                                      grid_points=grid_points).reshape(n_draws, n_samples, prior.dim)
        result.seconds_exact = time.perf_counter() - t0
    return result


class _HalfwaySnapshot:
    """SVGD monitor keeping the particles at the last check at or before half the steps."""

    def __init__(self, n_iter: int):
        self.half, self.particles = n_iter // 2, None

    def __call__(self, step: int, x: torch.Tensor) -> None:
        if step <= self.half:
            self.particles = x.cpu().clone()


def drift_diagnostics(prior: torch.nn.Module, samples: LatentSamples) -> list[dict]:
    """Per dimension, for SVGD draws: normalisability, the escaping region (past the last critical
    point towards a tail where log p_j rises without bound), the fraction of particles in it at
    the start / halfway / end, and how far the mean moved over the second half (in sd units)."""
    eta = natural_parameters(prior)
    flat = {name: t.reshape(-1, t.shape[-1]).double().numpy()
            for name, t in (("start", samples.z_start), ("half", samples.z_half), ("end", samples.z))}
    rows = []
    for j, eta_j in enumerate(eta):
        left, right = escape_region(eta_j)
        escaping = {k: float(np.mean((v[:, j] < left) | (v[:, j] > right))) for k, v in flat.items()}
        sd_end = flat["end"][:, j].std()
        rows.append({
            "dim": j, "problem": factor_problem(eta_j) or "none",
            "escape_region": _describe_region(left, right),
            "escaping_start": escaping["start"], "escaping_half": escaping["half"], "escaping_end": escaping["end"],
            "mean_half": flat["half"][:, j].mean(), "mean_end": flat["end"][:, j].mean(), "sd_end": sd_end,
            "max_abs_end": np.abs(flat["end"][:, j]).max(),
            "mean_shift_second_half_sd": (flat["end"][:, j].mean() - flat["half"][:, j].mean()) / max(sd_end, 1e-12),
        })
    return rows


def _describe_region(left: float, right: float) -> str:
    if left == math.inf and right == -math.inf:
        return "everywhere"
    parts = ([f"z < {left:.4g}"] if left > -math.inf else []) + ([f"z > {right:.4g}"] if right < math.inf else [])
    return " or ".join(parts) or "none"


# --------------------------------------------------------------------------- the samples file

def write_samples(path: str | Path, samples: LatentSamples, normalisable: bool) -> Path:
    """The samples NPZ at ``path``, atomically: z (float32), method, seconds, normalisable, and
    z_exact / seconds_exact where the exact sampler ran."""
    arrays = {"z": samples.z.numpy().astype(np.float32), "method": np.array(samples.method),
              "seconds": np.array(samples.seconds), "normalisable": np.array(normalisable)}
    if samples.z_exact is not None:
        arrays |= {"z_exact": samples.z_exact.numpy().astype(np.float32),
                   "seconds_exact": np.array(samples.seconds_exact)}
    return write_npz(path, arrays)


def read_samples(path: str | Path, latent_dim: int, exact: bool = False) -> tuple[np.ndarray, str]:
    """(z [n_draws, n_samples, latent_dim], method) of the samples NPZ at ``path`` (``exact``: its
    exact sampler's draws, method "exact": z_exact beside SVGD draws, or z where z is exact);
    SamplesFileError where it is missing, unreadable, without exact draws when asked for them, of
    another shape or not finite."""
    if not Path(path).is_file():
        raise SamplesFileError(f"samples file {path} does not exist; run `python -m fisherae sample` first")
    try:
        npz = read_npz(path)
        z, method = npz["z"], str(npz["method"])
        if exact and method != "exact" and "z_exact" in npz:
            z, method = npz["z_exact"], "exact"
    except (OSError, ValueError, KeyError) as err:
        raise SamplesFileError(f"samples file {path} is unreadable or lacks z/method ({err}); "
                               "delete it and rerun `python -m fisherae sample`") from err
    if exact and method != "exact":
        raise SamplesFileError(f"samples file {path} holds {method} draws and no exact ones: the exact sampler "
                               "runs only for a normalisable prior (N(0, I), or a polynomial prior with "
                               "poly_normalisable and an even poly_order); score its draws without --exact")
    if z.dtype.kind != "f":
        raise SamplesFileError(f"samples file {path}: z holds {z.dtype} values, not floating-point draws; "
                               "delete it and rerun `python -m fisherae sample`")
    if z.ndim != 3 or z.shape[0] < 1 or z.shape[1] < 1 or z.shape[2] != latent_dim:
        raise SamplesFileError(f"samples file {path}: z has shape {z.shape}, expected [n_draws, n_samples, "
                               f"{latent_dim}] for this checkpoint; rerun `sample` with the matching checkpoint")
    if not np.isfinite(z).all():
        raise SamplesFileError(f"samples file {path}: z contains NaN or inf; rerun `sample`")
    return z, method
