"""The replay's statistics against textbook values."""
from __future__ import annotations

import pytest

from syspage.replay import stats


@pytest.mark.parametrize("n,ranks", [
    # 95 % distribution-free CI of the median, 1-based order statistics (Conover,
    # Practical Nonparametric Statistics, table A3; also scipy's binomtest-based recipe)
    (10, (2, 9)), (20, (6, 15)), (30, (10, 21)), (50, (18, 33)),
])
def test_median_ci_ranks_match_the_binomial_table(n, ranks):
    lo, hi, coverage = stats.median_ci_ranks(n)
    assert (lo + 1, hi + 1) == ranks
    assert coverage >= 0.95


def test_summary_of_known_values():
    s = stats.summarize([10.0, 11.0, 9.0, 10.0, 10.5, 9.5, 10.0, 30.0, 10.0, 10.2])
    assert s.median == 10.0
    assert s.mad == pytest.approx(0.35)   # deviations 0,0,0,0,.2,.5,.5,1,1,20
    assert (s.ci_low, s.ci_high) == (9.5, 11.0)
    assert not s.unstable


def test_spread_above_ten_percent_is_flagged_unstable():
    assert stats.summarize([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unstable


def test_small_samples_use_min_max_and_say_their_coverage():
    s = stats.summarize([3.0, 1.0, 2.0])
    assert (s.ci_low, s.ci_high) == (1.0, 3.0)
    assert s.ci_level == pytest.approx(0.75)


def test_no_samples():
    assert stats.summarize([]).median is None
