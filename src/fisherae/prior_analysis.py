"""The prior's own analysis: which factors of the polynomial prior (eq. 13) can be normalised,
where an unnormalisable factor's tail rises without bound (SVGD particles past that point never
come back), and the exact marginal CDFs of the normalisable factors, integrated numerically in
float64. With an odd top degree or a positive top coefficient exp(sum_k eta_jk z^k) has an
infinite integral: such a factor has no exact marginal and no samples."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from fisherae.errors import NotNormalisableError
from fisherae.priors import GaussianPrior, PolynomialPrior, factor_problem

SUPPORT_NATS = 40.0


def natural_parameters(prior: torch.nn.Module) -> np.ndarray:
    """eta [dim, K] in float64 (column k-1 multiplies z^k); N(0, I) is eta_j = (0, -1/2)."""
    if isinstance(prior, GaussianPrior):
        return np.tile([0.0, -0.5], (prior.dim, 1))
    if isinstance(prior, PolynomialPrior):
        return prior.natural_parameters().detach().cpu().double().numpy()
    raise TypeError(f"no exact marginals for a {type(prior).__name__}: expected GaussianPrior or PolynomialPrior")


def not_normalisable_message(problems: dict[int, str], order: int) -> str:
    listed = "; ".join(f"dim {j}: {why}" for j, why in list(problems.items())[:8])
    more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
    return (f"the polynomial prior (eq. 13, K = {order}) cannot be normalised in {len(problems)} dimension(s) "
            f"[{listed}{more}]: exp(sum_k eta_jk z^k) has an infinite integral there, so it has no exact "
            "samples and SVGD particles drift off instead of converging. Retrain with "
            "training.poly_normalisable: true and an even training.poly_order (e.g. 4 or 6), or sample it "
            "with SVGD (the paper's method) knowing that the samples drift.")


def unnormalisable_dims(prior: torch.nn.Module) -> dict[int, str]:
    """{dimension: reason} for the factors of the prior that cannot be normalised."""
    eta = natural_parameters(prior)
    return {j: why for j, row in enumerate(eta) if (why := factor_problem(row))}


def escape_region(eta_j: np.ndarray) -> tuple[float, float]:
    """(left, right): particles below ``left`` or above ``right`` are past the last critical point
    on a side where log p_j rises without bound, so they never come back (+-inf: no such side)."""
    coef = np.concatenate([[0.0], eta_j])
    degree = np.flatnonzero(coef)[-1] if np.any(coef) else 0
    if degree == 0:
        return math.inf, -math.inf  # flat: every particle drifts (repulsion only)
    top = coef[degree]
    crit = _real_roots(np.polynomial.polynomial.polyder(coef[:degree + 1]))
    left_rises = (degree % 2 == 0 and top > 0) or (degree % 2 == 1 and top < 0)
    right_rises = top > 0
    left = (crit.min() if crit.size else math.inf) if left_rises else -math.inf
    right = (crit.max() if crit.size else -math.inf) if right_rises else math.inf
    return float(left), float(right)


def _real_roots(coef: np.ndarray, rel_tol: float = 1e-7) -> np.ndarray:
    """Real roots of the power-ascending polynomial ``coef`` (near-real pairs kept by real part)."""
    nz = np.flatnonzero(coef)
    if nz.size == 0 or nz[-1] == 0:
        return np.zeros(0)
    roots = np.polynomial.polynomial.polyroots(coef[:nz[-1] + 1])
    return np.sort(roots.real[np.abs(roots.imag) <= rel_tol * np.maximum(1.0, np.abs(roots))])


@dataclass(frozen=True)
class MarginalGrid:
    """The normalised CDF of each factor of eq. 13 on a grid: ``z`` and ``cdf`` [dim, G], trapezoid
    rule in float64 over the support where log p_j is within ``SUPPORT_NATS`` of its maximum;
    between grid points the CDF is linear (the density piecewise constant)."""

    z: np.ndarray
    cdf: np.ndarray
    dims: tuple[int, ...] = field(default=())

    def cdf_fn(self, i: int) -> Callable[[np.ndarray], np.ndarray]:
        """The CDF of the i-th gridded dimension, as a callable (e.g. for scipy.stats.kstest)."""
        return lambda values: np.interp(values, self.z[i], self.cdf[i])

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF of each column of ``u`` [n, len(dims)] in [0, 1]."""
        return np.stack([np.interp(u[:, i], self.cdf[i], self.z[i]) for i in range(self.z.shape[0])], axis=1)


def marginal_grid(prior: torch.nn.Module, grid_points: int = 20001, *, dims: Sequence[int] | None = None,
                  nats: float = SUPPORT_NATS) -> MarginalGrid:
    """The exact marginal CDFs of the prior's factors ``dims`` (default all), each normalisable."""
    if grid_points < 3:
        raise ValueError(f"grid_points must be >= 3, got {grid_points}")
    eta = natural_parameters(prior)
    dims = tuple(range(eta.shape[0])) if dims is None else tuple(dims)
    problems = {j: why for j in dims if (why := factor_problem(eta[j]))}
    if problems:
        raise NotNormalisableError(not_normalisable_message(problems, eta.shape[1]))
    zs, cdfs = [], []
    for j in dims:
        coef = np.concatenate([[0.0], eta[j]])
        lo, hi = _support(coef, nats)
        z = np.linspace(lo, hi, grid_points)
        log_p = np.polynomial.polynomial.polyval(z, coef)
        w = np.exp(log_p - log_p.max())
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(z))])
        zs.append(z)
        cdfs.append(cdf / cdf[-1])
    return MarginalGrid(np.stack(zs), np.stack(cdfs), dims)


def _support(coef: np.ndarray, nats: float) -> tuple[float, float]:
    """[lo, hi] outside which log p (power-ascending ``coef``, normalisable) is > ``nats`` below its max."""
    crit = np.polynomial.polynomial.polyroots(np.polynomial.polynomial.polyder(coef))
    peak = np.polynomial.polynomial.polyval(crit.real, coef).max()
    level = coef.copy()
    level[0] -= peak - nats
    ends = _real_roots(level, rel_tol=1e-6)
    if ends.size < 2:
        raise RuntimeError(f"exact sampler: could not bracket the support of the factor {coef[1:]}")
    lo, hi = ends[0], ends[-1]
    pad = 0.01 * (hi - lo)
    return float(lo - pad), float(hi + pad)
