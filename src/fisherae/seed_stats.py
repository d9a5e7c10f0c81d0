"""Statistics with the training seed as the unit (issue 12): one number per trained run, a mean
and a t-based 95 % interval over seeds, Welch's interval for the difference of two arms' seed
means, and the verdict a claim gets from that interval. A leaf module (it imports nothing of
fisherae).

A verdict is ``reproduced`` when the interval lies wholly on the side the paper claims,
``contradicted`` when it lies wholly on the other side, and ``inconclusive`` otherwise (a tie, or
fewer than 2 seeds on an arm: no interval), always with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE)


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` seed values and its 95 % interval (NaN bounds with fewer than 2 seeds)."""

    n: int
    mean: float
    low: float
    high: float


def _half_width(se: float, df: float) -> float:
    return 0.0 if se == 0 else float(stats.t.ppf(0.5 + LEVEL / 2, df) * se)


def mean_interval(values) -> Interval:
    """Mean of ``values`` (one per seed) and its t interval (df = n - 1)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Interval(0, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if len(x) < 2:
        return Interval(len(x), mean, math.nan, math.nan)
    half = _half_width(float(x.std(ddof=1)) / math.sqrt(len(x)), len(x) - 1)
    return Interval(len(x), mean, mean - half, mean + half)


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) over seeds, its Welch 95 % interval and degrees of freedom (NaN where an
    arm has fewer than 2 seeds; an interval of width 0 where both arms have no spread)."""

    n_a: int
    n_b: int
    difference: float
    low: float
    high: float
    df: float


def welch(a, b) -> Difference:
    """Welch's interval for mean(a) - mean(b), with the Welch-Satterthwaite degrees of freedom."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Difference(len(a), len(b), diff, math.nan, math.nan, math.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = math.inf if se == 0 else (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = _half_width(se, df)
    return Difference(len(a), len(b), diff, diff - half, diff + half, float(df))


@dataclass(frozen=True)
class Verdict:
    """A verdict (one of VERDICTS) and why."""

    verdict: str
    reason: str


def _too_few(d: Difference) -> Verdict | None:
    if min(d.n_a, d.n_b) >= 2:
        return None
    n = min(d.n_a, d.n_b)
    return Verdict(INCONCLUSIVE, "no seed" if n == 0 else "one seed")


def judge(d: Difference, direction: int) -> Verdict:
    """The verdict of a claim that the difference has the sign ``direction`` (+1: a > b, -1: a < b)."""
    few = _too_few(d)
    if few:
        return few
    low, high = sorted((direction * d.low, direction * d.high))
    if low > 0:
        return Verdict(REPRODUCED, "95 % interval on the paper's side")
    if high < 0:
        return Verdict(CONTRADICTED, "95 % interval on the other side")
    return Verdict(INCONCLUSIVE, "95 % interval includes 0 (a tie)")


def judge_within(d: Difference, margin: float) -> Verdict:
    """The verdict of a claim that the difference is within ±``margin`` (an equivalence claim)."""
    few = _too_few(d)
    if few:
        return few
    if -margin <= d.low and d.high <= margin:
        return Verdict(REPRODUCED, f"95 % interval within ±{margin:.4g}")
    if d.low > margin or d.high < -margin:
        return Verdict(CONTRADICTED, f"95 % interval wholly outside ±{margin:.4g}")
    return Verdict(INCONCLUSIVE, f"95 % interval crosses ±{margin:.4g}")


def combine(verdicts: list[Verdict]) -> Verdict:
    """One claim against several baselines: contradicted if any comparison is, reproduced if all
    are, else inconclusive; the reason names the first comparison that decides it."""
    if not verdicts:
        return Verdict(INCONCLUSIVE, "no comparison")
    for wanted in (CONTRADICTED, INCONCLUSIVE):
        found = [v for v in verdicts if v.verdict == wanted]
        if found:
            return Verdict(wanted, found[0].reason)
    return Verdict(REPRODUCED, verdicts[0].reason if len(verdicts) == 1 else "every 95 % interval on the "
                   "paper's side")


def downgrade(v: Verdict, caution: str | None) -> Verdict:
    """A caution that undermines a claim turns a decisive verdict ('reproduced' or 'contradicted')
    into 'inconclusive'."""
    if caution and v.verdict in (REPRODUCED, CONTRADICTED):
        return Verdict(INCONCLUSIVE, f"{v.verdict}, but {caution}")
    return v
