"""The exact sampler of the prior: N(0, I) directly; the factorised polynomial prior of eq. 13 by
the inverse CDF of each factor (``fisherae.prior_analysis.marginal_grid``). Only a normalisable
prior has samples; an unnormalisable one is refused (NotNormalisableError)."""

from __future__ import annotations

import torch

from fisherae.prior_analysis import marginal_grid
from fisherae.priors import GaussianPrior


def sample_prior(prior: torch.nn.Module, n: int, generator: torch.Generator | None = None, *,
                 grid_points: int = 20001) -> torch.Tensor:
    """n exact samples [n, dim] (float32, CPU) of a Gaussian or normalisable polynomial prior.

    The polynomial prior of eq. 13 factorises, so each coordinate is F_j^{-1}(u), u ~ U(0, 1),
    with F_j from ``marginal_grid``. An unnormalisable prior raises NotNormalisableError."""
    if n < 1:
        raise ValueError(f"sample_prior: n must be >= 1, got {n}")
    if isinstance(prior, GaussianPrior):
        return torch.randn(n, prior.dim, generator=generator)
    grid = marginal_grid(prior, grid_points)
    u = torch.rand(n, len(grid.dims), generator=generator, dtype=torch.float64).numpy()
    return torch.from_numpy(grid.ppf(u)).float()
