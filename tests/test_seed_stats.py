"""fisherae.seed_stats: t intervals over seeds, Welch's difference, verdicts, exact against scipy and by hand."""

import math

import numpy as np
import pytest
from scipy import stats

from fisherae.seed_stats import (CONTRADICTED, INCONCLUSIVE, REPRODUCED, Difference, Verdict, combine, downgrade,
                                 judge, judge_within, mean_interval, welch)


def test_mean_interval_is_the_t_interval_over_seeds():
    x = [1.0, 2.0, 4.0]
    found = mean_interval(x)
    low, high = stats.t.interval(0.95, df=2, loc=np.mean(x), scale=stats.sem(x))
    assert (found.n, found.mean) == (3, pytest.approx(7 / 3))
    assert found.low == pytest.approx(low, rel=1e-12) and found.high == pytest.approx(high, rel=1e-12)
    # by hand: se = sqrt(7/3) / sqrt(3); with 2 df, t(p) = (2p - 1) / sqrt(2p(1 - p)) in closed form
    assert found.high - found.mean == pytest.approx(0.95 / math.sqrt(2 * 0.975 * 0.025) * math.sqrt(7) / 3, rel=1e-12)


def test_mean_interval_of_one_seed_has_no_interval():
    one = mean_interval([5.0])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.low) and math.isnan(one.high)
    assert mean_interval([]).n == 0 and math.isnan(mean_interval([]).mean)
    flat = mean_interval([2.0, 2.0])
    assert (flat.low, flat.high) == (2.0, 2.0)


def test_welch_matches_scipy_and_the_satterthwaite_df():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 9.0]
    d = welch(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d.difference == pytest.approx(2.5 - 5.0)
    assert (d.low, d.high) == (pytest.approx(ci.low, rel=1e-12), pytest.approx(ci.high, rel=1e-12))
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3  # 5/12 and 13/3
    assert d.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2), rel=1e-12)
    assert (d.n_a, d.n_b) == (4, 3)


def test_welch_with_one_seed_or_no_spread():
    one = welch([1.0], [2.0, 3.0])
    assert one.difference == -1.5 and math.isnan(one.low) and (one.n_a, one.n_b) == (1, 2)
    flat = welch([1.0, 1.0], [3.0, 3.0])
    assert (flat.difference, flat.low, flat.high, flat.df) == (-2.0, -2.0, -2.0, math.inf)


def diff(low, high, n=3):
    return Difference(n, n, (low + high) / 2, low, high, 4.0)


def test_judge_by_the_side_of_the_interval():
    assert judge(diff(-3, -1), -1) == Verdict(REPRODUCED, "95 % interval on the paper's side")
    assert judge(diff(1, 3), -1) == Verdict(CONTRADICTED, "95 % interval on the other side")
    assert judge(diff(1, 3), +1).verdict == REPRODUCED
    assert judge(diff(-1, 3), +1) == Verdict(INCONCLUSIVE, "95 % interval includes 0 (a tie)")
    assert judge(diff(0, 0), +1).verdict == INCONCLUSIVE  # an exact tie
    assert judge(welch([1.0], [2.0, 3.0]), -1) == Verdict(INCONCLUSIVE, "one seed")
    assert judge(welch([], [2.0, 3.0]), -1) == Verdict(INCONCLUSIVE, "no seed")


def test_judge_within_a_margin():
    assert judge_within(diff(-0.5, 0.5), 1.0).verdict == REPRODUCED
    assert judge_within(diff(1.5, 2.0), 1.0).verdict == CONTRADICTED
    assert judge_within(diff(-2.0, -1.5), 1.0).verdict == CONTRADICTED
    assert judge_within(diff(0.5, 1.5), 1.0) == Verdict(INCONCLUSIVE, "95 % interval crosses ±1")
    assert judge_within(welch([1.0], [1.0, 1.0]), 1.0) == Verdict(INCONCLUSIVE, "one seed")


def test_combining_baselines_and_downgrading():
    yes, tie, no = Verdict(REPRODUCED, "a"), Verdict(INCONCLUSIVE, "b"), Verdict(CONTRADICTED, "c")
    assert combine([yes, yes]) == Verdict(REPRODUCED, "every 95 % interval on the paper's side")
    assert combine([yes]) == yes
    assert combine([yes, tie]) == tie and combine([tie, no, yes]) == no
    assert combine([]) == Verdict(INCONCLUSIVE, "no comparison")
    assert downgrade(yes, "collapsed") == Verdict(INCONCLUSIVE, "reproduced, but collapsed")
    assert downgrade(no, "collapsed") == Verdict(INCONCLUSIVE, "contradicted, but collapsed")
    assert downgrade(tie, "collapsed") == tie and downgrade(yes, None) == yes and downgrade(no, None) == no
