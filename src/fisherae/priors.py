"""Latent priors p_eta(z): the standard Gaussian and the factorised polynomial
exponential family of eq. 13. Each exposes ``score(z) = grad_z log p(z)``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


class GaussianPrior(nn.Module):
    """N(0, I) on R^dim."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 1:
            raise ValueError(f"GaussianPrior: dim must be >= 1, got {dim}")
        self.dim = dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_density(z)

    def score(self, z: torch.Tensor) -> torch.Tensor:
        """grad_z log N(z; 0, I) = -z."""
        _check_last_dim(z, self.dim)
        return -z

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised log N(z; 0, I), summed over the last axis."""
        _check_last_dim(z, self.dim)
        return -0.5 * (z**2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def is_normalisable(self) -> bool:
        return True

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class PolynomialPrior(nn.Module):
    """Factorised polynomial exponential family, eq. 13:
    log p_eta(z) = sum_j sum_{k=1..K} eta_jk z_j^k + const.

    ``normalisable=False`` (default) is the paper's unconstrained form: ``eta`` is an
    ``nn.Parameter`` of shape [dim, order] (column k-1 holds eta_jk). Such a density
    integrates to a finite value only if, in every dimension, the highest non-zero
    power is even with a negative coefficient; with odd ``order`` that fails as soon
    as the top coefficient is non-zero.

    ``normalisable=True`` needs an even ``order`` and keeps the top coefficient
    negative by construction: eta_jK = -(rho_j^2 + min_top). (A softplus there starts
    deep in its exponential tail for a small initial eta_jK, where Adam's roughly
    lr-sized steps on rho barely move eta_jK; the square moves it steadily.) Its
    parameters are ``eta_lower`` [dim, order-1] and ``top_raw`` (rho) [dim];
    ``natural_parameters()`` returns the full eta in both forms.

    Both start at the standard normal (eta_j2 = -1/2, all else 0) where possible.
    """

    def __init__(self, dim: int, order: int = 5, normalisable: bool = False, min_top: float = 1e-4):
        super().__init__()
        if dim < 1:
            raise ValueError(f"PolynomialPrior: dim must be >= 1, got {dim}")
        if order < 1:
            raise ValueError(f"PolynomialPrior: order must be >= 1, got {order}")
        if normalisable and order % 2:
            raise ValueError(
                f"PolynomialPrior: normalisable=True needs an even order (got {order}); "
                "a polynomial of odd top degree cannot be normalised. Use order "
                f"{order + 1} or normalisable=False."
            )
        self.dim, self.order, self.normalisable, self.min_top = dim, order, normalisable, min_top
        init = torch.zeros(dim, order)
        if order >= 2:
            init[:, 1] = -0.5
        if normalisable:
            self.eta_lower = nn.Parameter(init[:, :-1].clone())
            # rho^2 = -eta_top - min_top, at least 1e-3 so that z^K matters from the start.
            self.top_raw = nn.Parameter((-init[:, -1] - min_top).clamp_min(1e-3).sqrt())
        else:
            self.eta = nn.Parameter(init)

    def natural_parameters(self) -> torch.Tensor:
        """The eta of eq. 13, shape [dim, order]; column k-1 multiplies z^k."""
        if not self.normalisable:
            return self.eta
        top = -(self.top_raw.square() + self.min_top)
        return torch.cat([self.eta_lower, top[:, None]], dim=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_density(z)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised log p_eta(z) = sum_jk eta_jk z_j^k, summed over the last axis."""
        return self.log_marginals(z).sum(-1)

    def log_marginals(self, z: torch.Tensor) -> torch.Tensor:
        """Per-dimension unnormalised log-densities sum_k eta_jk z_j^k, shape of z."""
        _check_last_dim(z, self.dim)
        powers = z.unsqueeze(-1) ** torch.arange(1, self.order + 1, device=z.device, dtype=z.dtype)
        return (powers * self.natural_parameters().to(z.dtype)).sum(-1)

    def score(self, z: torch.Tensor) -> torch.Tensor:
        """grad_z log p_eta(z): d/dz_j = sum_k k eta_jk z_j^(k-1) (Section 3.1)."""
        _check_last_dim(z, self.dim)
        k = torch.arange(1, self.order + 1, device=z.device, dtype=z.dtype)
        powers = z.unsqueeze(-1) ** (k - 1)
        return (powers * (k * self.natural_parameters().to(z.dtype))).sum(-1)

    def normalisable_dims(self) -> torch.Tensor:
        """Bool [dim]: whether each factor exp(sum_k eta_jk z^k) has a finite integral."""
        eta = self.natural_parameters().detach().cpu().double().numpy()
        return torch.tensor([not factor_problem(row) for row in eta])

    def is_normalisable(self) -> bool:
        """True iff every factor of eq. 13 integrates to a finite value."""
        return bool(self.normalisable_dims().all())

    def extra_repr(self) -> str:
        return f"dim={self.dim}, order={self.order}, normalisable={self.normalisable}"


def factor_problem(eta_j: Sequence[float]) -> str:
    """Why exp(sum_k eta_jk z^k) (coefficients of z^1..z^K) cannot be normalised; '' if it can:
    its highest non-zero power must be even with a negative coefficient."""
    nonzero = np.flatnonzero(eta_j)
    if nonzero.size == 0:
        return "all coefficients are zero (flat density)"
    degree, top = nonzero[-1] + 1, eta_j[nonzero[-1]]
    if degree % 2:
        return f"odd top degree {degree}"
    if top > 0:
        return f"top coefficient eta_{degree} = {top:.3g} > 0"
    return ""


def build_prior(kind: str, dim: int, order: int = 5, normalisable: bool = False) -> nn.Module:
    """A prior by name: 'gaussian' or 'polynomial'."""
    if kind == "gaussian":
        return GaussianPrior(dim)
    if kind == "polynomial":
        return PolynomialPrior(dim, order, normalisable=normalisable)
    raise ValueError(f"unknown prior {kind!r}: expected 'gaussian' or 'polynomial'")


def _check_last_dim(z: torch.Tensor, dim: int) -> None:
    if z.shape[-1] != dim:
        raise ValueError(f"prior of dim {dim} got z with last axis {z.shape[-1]} (shape {tuple(z.shape)})")
