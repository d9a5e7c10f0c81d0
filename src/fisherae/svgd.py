"""Stein variational gradient descent (Liu & Wang, 2016): the paper's sampler for the learned
polynomial prior (Section 4, "Sampling with SVGD": N(0, I) start, step 1e-3, 15 000 iterations),
batched over independent particle sets and without host syncs between its checks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from fisherae.errors import SVGDDivergedError

ESCAPE_FACTOR = 10.0  # the default escape radius is this many times (1 + max |z| at the start)

# CPU, float32/float64 only: for >= this many squared distances per set, the median is selected among
# the entries of a bracket around the previous step's median (see _median_sq_distance) instead of by a
# full kthvalue.
BRACKET_MIN_ENTRIES = 16384
BRACKET_RANKS = 1024  # ranks kept each side of the middle pair when the next step's bracket is chosen
BRACKET_SEED = 0.05  # relative half-width of the bracket seeded from an exact median


@torch.no_grad()
def svgd(score: Callable[[torch.Tensor], torch.Tensor], particles: torch.Tensor, n_iter: int, step_size: float, *,
         alpha: float = 0.9, fudge: float = 1e-6, bandwidth: float | None = None,
         escape_radius: float | None = None, check_every: int = 50, chunk_size: int | None = None,
         median_particles: int = 2048,
         monitor: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Move ``particles`` [n, d] towards the density whose score is ``score`` (Liu & Wang, 2016).

    phi(x_i) = (1/n) sum_j [k(x_j, x_i) score(x_j) + grad_{x_j} k(x_j, x_i)] with the RBF kernel
    k(x, y) = exp(-||x - y||^2 / h), h = med^2 / log(n + 1) (median heuristic over the squared
    pairwise distances, recomputed each step; from the first ``median_particles`` particles when
    n is larger) unless ``bandwidth`` fixes h. AdaGrad with momentum: g = phi^2 at the first
    step, then g = alpha g + (1 - alpha) phi^2; x += step_size phi / (fudge + sqrt(g)).

    ``particles`` [S, n, d] moves S independent particle sets together (batched matmuls), each
    with its own bandwidth, AdaGrad state, escape radius and result; ``score`` is then called on
    the [S * n, d] particles of all sets at once.

    Runs on the particles' device without an autograd graph and without host syncs between the
    checks; the kernel is built in blocks of ``chunk_size`` rows (default: ~2^24 kernel entries
    per block, all sets together). Every ``check_every`` steps (and at the end) the particles
    are checked, ``monitor(step, particles)`` is called, and SVGDDivergedError is raised if they
    are non-finite or if max |z| exceeds ``escape_radius`` (default 10 (1 + max |z| at the start)
    of the set): the usual cause is an unnormalisable target."""
    x = _check_particles_in(particles)
    xs = x if x.dim() == 3 else x[None]  # a view: updating xs updates x
    n = xs.shape[1]
    if n_iter < 0 or step_size <= 0 or not 0 <= alpha < 1 or check_every < 1 or median_particles < 2:
        raise ValueError(f"svgd: need n_iter >= 0, step_size > 0, 0 <= alpha < 1, check_every >= 1, "
                         f"median_particles >= 2; got {n_iter}, {step_size}, {alpha}, {check_every}, "
                         f"{median_particles}")
    if bandwidth is not None and not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"svgd: bandwidth must be a positive number, got {bandwidth}")
    start = xs.abs().amax(dim=(1, 2)).tolist()
    radius = [ESCAPE_FACTOR * (1.0 + s) if escape_radius is None else escape_radius for s in start]
    m = min(n, median_particles)
    bracketed = (bandwidth is None and xs.device.type == "cpu" and xs.dtype in (torch.float32, torch.float64)
                 and m * m >= BRACKET_MIN_ENTRIES)
    state = _SVGDState(None, None, torch.zeros((), dtype=torch.bool, device=xs.device))
    saved, saved_step = state.copy(xs), 0
    step = 1
    while step <= n_iter:
        exact = not bracketed or state.bracket is None
        _svgd_step(score, xs, state, step_size, alpha, fudge, bandwidth, chunk_size, median_particles, exact,
                   bracketed)
        if step % check_every == 0 or step == n_iter:
            if bracketed and state.missed.item():  # a bracket missed the median: redo these steps exactly
                state = saved.copy(xs, restore=True)
                for _ in range(saved_step, step):
                    _svgd_step(score, xs, state, step_size, alpha, fudge, bandwidth, chunk_size, median_particles,
                               True, True)
            _check_escape(xs, step, radius, start, escape_radius is None, x.dim() == 3)
            if monitor is not None:
                monitor(step, x)
            saved, saved_step = state.copy(xs), step
        step += 1
    return x


@dataclass
class _SVGDState:
    """AdaGrad accumulator, the median bracket [S, 2] for the next step (None: use the exact median)
    and whether a bracket missed since the last check; ``x`` only in saved copies."""

    historical: torch.Tensor | None
    bracket: torch.Tensor | None
    missed: torch.Tensor
    x: torch.Tensor | None = None

    def copy(self, xs: torch.Tensor, restore: bool = False) -> "_SVGDState":
        clone = lambda t: None if t is None else t.clone()  # noqa: E731
        if restore:
            xs.copy_(self.x)
            return _SVGDState(clone(self.historical), None, torch.zeros_like(self.missed))
        return _SVGDState(clone(self.historical), clone(self.bracket), torch.zeros_like(self.missed), xs.clone())


def _svgd_step(score, xs, state, step_size, alpha, fudge, bandwidth, chunk_size, median_particles, exact,
               bracketed) -> None:
    """One SVGD step in place; the median by kthvalue when ``exact``, else in ``state.bracket``;
    a bracket for the next step when ``bracketed``."""
    s, n, d = xs.shape
    grad = score(xs.reshape(s * n, d) if s > 1 else xs[0]).reshape(s, n, d)
    phi, bracket, hit = _stein(xs, grad, bandwidth, chunk_size, median_particles,
                               None if exact else state.bracket, bracketed)
    if state.historical is None:
        state.historical = phi.square()
    else:
        state.historical.mul_(alpha).add_(phi.square(), alpha=1 - alpha)
    xs.add_(step_size * phi / (fudge + state.historical.sqrt()))
    state.bracket = bracket
    if hit is not None:
        state.missed |= ~hit.all()


def stein_direction(x: torch.Tensor, grad: torch.Tensor, bandwidth: float | None = None,
                    chunk_size: int | None = None, median_particles: int = 2048) -> torch.Tensor:
    """The SVGD update phi [n, d] (or [S, n, d]) for particles ``x`` with scores ``grad`` (see ``svgd``)."""
    xs = x if x.dim() == 3 else x[None]
    phi, _, _ = _stein(xs, grad.reshape(xs.shape), bandwidth, chunk_size, median_particles, None, False)
    return phi.reshape(x.shape)


def _stein(xs, grad, bandwidth, chunk_size, median_particles, bracket, bracketed):
    """phi [S, n, d]; with no ``bandwidth``, also the next median bracket (when ``bracketed``, or
    when ``bracket`` is given) and whether ``bracket`` held the median of each set."""
    s, n, d = xs.shape
    chunk = chunk_size or max(1, 2**24 // (s * n))
    left, right = _distance_factors(xs)
    reuse = bandwidth is None and n <= median_particles and chunk >= n
    d2 = _sq_distances(left, right) if reuse else None
    next_bracket = hit = None
    if bandwidth is not None:
        neg_inv_h = torch.full((s, 1, 1), -1.0 / bandwidth, dtype=xs.dtype, device=xs.device)
        two_over_h = torch.full((s, 1, 1), 2.0 / bandwidth, dtype=xs.dtype, device=xs.device)
    else:
        if d2 is None:
            m = min(n, median_particles)
            sub_l, sub_r = (left, right) if m == n else _distance_factors(xs[:, :m])
            d2_median = _sq_distances(sub_l, sub_r)
        else:
            d2_median = d2
        med2, next_bracket, hit = _median_sq_distance(d2_median, bracket, bracketed)
        h = _bandwidth(med2, n)[:, None, None]
        neg_inv_h, two_over_h = -1.0 / h, 2.0 / h
    rhs = torch.cat([grad.to(xs.dtype), xs, torch.ones(s, n, 1, dtype=xs.dtype, device=xs.device)], dim=2)
    if d2 is not None:
        out = torch.bmm(d2.mul_(neg_inv_h).exp_(), rhs)
    else:
        out = torch.empty_like(rhs)
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            kernel = torch.bmm(left[:, lo:hi], right.transpose(1, 2)).clamp_(min=0.0)
            torch.bmm(kernel.mul_(neg_inv_h).exp_(), rhs, out=out[:, lo:hi])
    k_grad, k_x, k_sum = out[..., :d], out[..., d:2 * d], out[..., 2 * d:]
    # sum_j grad_{x_j} k(x_j, x_i) = (2 / h) (x_i sum_j k_ij - sum_j k_ij x_j)
    return (k_grad + two_over_h * (xs * k_sum - k_x)) / n, next_bracket, hit


def _distance_factors(xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[-2 x, 1, |x|^2] and [x, |x|^2, 1]: their product is ||x_i - x_j||^2 in one (b)mm."""
    sq = xs.square().sum(2, keepdim=True)
    one = torch.ones_like(sq)
    return torch.cat([-2.0 * xs, one, sq], dim=2), torch.cat([xs, sq, one], dim=2)


def _sq_distances(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """[S, m, m] squared pairwise distances, clamped at 0, with an exact zero diagonal."""
    d2 = torch.bmm(left, right.transpose(1, 2)).clamp_(min=0.0)
    d2.diagonal(dim1=1, dim2=2).zero_()
    return d2


def median_bandwidth(x: torch.Tensor, median_particles: int = 2048) -> float | torch.Tensor:
    """h = med^2 / log(n + 1), med^2 the median of all n^2 squared pairwise distances (the zero
    diagonal included, as in Liu & Wang's code) of the first ``median_particles`` particles.
    Collapsed particles (med = 0) get h = 1. A float for x [n, d], a tensor [S] for x [S, n, d]."""
    xs = x if x.dim() == 3 else x[None]
    n = xs.shape[1]
    med2, _, _ = _median_sq_distance(_sq_distances(*_distance_factors(xs[:, :median_particles])), None, False)
    h = _bandwidth(med2, n)
    return h if x.dim() == 3 else h.item()


def _bandwidth(med2: torch.Tensor, n: int) -> torch.Tensor:
    """Liu & Wang's median heuristic h = med^2 / log(n + 1) per set; 1 where the particles collapsed (med = 0)."""
    return torch.where(med2 > 0, med2 / math.log(n + 1), torch.ones_like(med2))


def _median_sq_distance(d2: torch.Tensor, bracket: torch.Tensor | None, bracketed: bool):
    """Per set, the median of the m^2 entries of ``d2`` [S, m, m] (the mean of the two middle
    values when m^2 is even, as numpy's median), without a host sync on a GPU.

    With no ``bracket``: by kthvalue (and the least entry above it) on the CPU, by a (segmented
    radix) sort on a GPU. With a ``bracket`` [S, 2] (CPU, float32 or float64 only, through NumPy):
    the entries in [lo, hi] are sorted and the middle pair read off at its rank among
    them, valid where count(< lo) <= the lower middle rank and count(<= hi) > the upper one; the
    second result says where it was (the caller redoes a step where it was not). Returns (med2
    [S], the next step's bracket [S, 2] or None, valid [S] or None)."""
    s = d2.shape[0]
    flat = d2.reshape(s, -1)
    total = flat.shape[1]
    k_lo, k_hi = (total - 1) // 2, total // 2  # 0-based ranks of the middle pair
    if bracket is None and _median_by_sort(flat.device):
        ordered = flat.sort(dim=1).values
        lower, upper = ordered[:, k_lo], ordered[:, k_hi]
        return 0.5 * (lower + upper), None, None
    if bracket is None:
        lower = flat.kthvalue(k_lo + 1, dim=1).values
        if k_hi == k_lo:
            upper = lower
        else:
            at_most = flat <= lower[:, None]
            above = flat.masked_fill(at_most, math.inf).amin(dim=1)
            upper = torch.where(at_most.sum(1) > k_hi, lower, above)
        next_bracket = (torch.stack([lower * (1 - BRACKET_SEED), upper * (1 + BRACKET_SEED)], dim=1)
                        if bracketed else None)
        return 0.5 * (lower + upper), next_bracket, None
    # per set, in NumPy (on the CPU its comparisons, count and boolean selection cost about a fifth of
    # torch's over these ~10^5 entries): the entries below the bracket are counted, those inside it
    # sorted, and the entries of the middle pair's ranks and BRACKET_RANKS beyond are read off
    # (clamped into the bracket), with the ranks they really have
    ranks = (k_lo, k_hi, k_lo - BRACKET_RANKS, k_hi + BRACKET_RANKS)
    counts, read, read_ranks = [], [], []
    for entries, (lo, hi) in zip(flat.numpy(), bracket.numpy()):
        inside = np.sort(entries[(entries >= lo) & (entries <= hi)])
        below = int(np.count_nonzero(entries < lo))
        at = [min(max(rank - below, 0), max(inside.size - 1, 0)) for rank in ranks]
        counts.append((below, inside.size))
        read.append(inside[at] if inside.size else np.zeros(len(ranks), entries.dtype))
        read_ranks.append([below + i for i in at])
    (below, count), (_, _, low_rank, high_rank) = torch.tensor(counts).T, torch.tensor(read_ranks).T
    lower, upper, low, high = torch.from_numpy(np.stack(read)).T
    valid = (below <= k_lo) & (below + count > k_hi)
    # the next bracket: centred on this median, BRACKET_RANKS ranks to each side by the density of the
    # entries seen in this one (so that it follows a drifting median)
    width = torch.maximum((lower - low) / (k_lo - low_rank).clamp(min=1),
                          (high - upper) / (high_rank - k_hi).clamp(min=1)) * BRACKET_RANKS
    next_bracket = torch.stack([lower - width, upper + width], dim=1)
    return 0.5 * (lower + upper), next_bracket, valid


def _median_by_sort(device: torch.device) -> bool:
    """Off the CPU the unbracketed median is read off a (segmented radix) sort: a GPU's kthvalue is
    one block per row."""
    return device.type != "cpu"


def _check_particles_in(particles: torch.Tensor) -> torch.Tensor:
    if not isinstance(particles, torch.Tensor) or particles.dim() not in (2, 3) or particles.shape[-2] < 2:
        shape = tuple(particles.shape) if isinstance(particles, torch.Tensor) else type(particles).__name__
        raise ValueError(f"svgd: particles must be a tensor [n >= 2, d] (or [S, n >= 2, d]), got {shape}")
    if not particles.is_floating_point():
        raise ValueError(f"svgd: particles must be floating point, got {particles.dtype}")
    if not torch.isfinite(particles).all():
        raise ValueError("svgd: the initial particles contain NaN or inf")
    return particles.detach().clone()


def _check_escape(xs: torch.Tensor, step: int, radius: list[float], start: list[float], default_radius: bool,
                  batched: bool = False) -> None:
    cause = ("The target is probably not normalisable (e.g. a polynomial prior of eq. 13 with an odd top "
             "degree or a positive top coefficient), so its particles drift to infinity: retrain with "
             "training.poly_normalisable: true and an even training.poly_order, or lower the step size "
             "if the target is normalisable.")
    if not torch.isfinite(xs).all():
        raise SVGDDivergedError(f"SVGD particles became NaN/inf by step {step}. {cause}")
    for i, far in enumerate(xs.abs().amax(dim=(1, 2)).tolist()):
        if far > radius[i]:
            rule = f" = {ESCAPE_FACTOR:g} x (1 + max |z| at the start, {start[i]:.3g})" if default_radius else ""
            where = f" (particle set {i})" if batched else ""
            raise SVGDDivergedError(f"SVGD particles ran away: max |z| = {far:.4g} after step {step}{where}, "
                                    f"beyond the escape radius {radius[i]:.4g}{rule}. {cause} If the target's "
                                    "mass really lies that far out, pass a larger escape_radius.")
