"""Statistics of the replay's samples: median, MAD, a distribution-free 95 % confidence
interval of the median, and the stability flag.

The interval comes from order statistics (the number of samples below the median is
Binomial(n, 1/2)), so it assumes nothing about the shape of the timing distribution,
which is skewed (interrupts, preemption only ever add time). With fewer than 6 samples no
pair of order statistics reaches 95 %: the interval is then [min, max] and says so.
pyperf warns when the spread passes 10 % of the centre; so do we, with the robust pair
MAD / median.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

UNSTABLE_RATIO = 0.10
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    n: int
    median: float | None
    mad: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float | None   # the interval's actual coverage (>= 0.95 unless n < 6)
    unstable: bool


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def spread(values: list[float]) -> float:
    """(max - min) / median: how far apart repeated estimates of one figure are (issue 4's
    repeatability target is this <= 3 % across separate runs). NaN for no values or a zero median."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return float("nan")
    m = median(vals)
    return (max(vals) - min(vals)) / abs(m) if m else float("nan")


def _binom_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), in exact integers (2.0 ** n overflows past n = 1023,
    which an adaptive replay's thousands of samples reach)."""
    return sum(math.comb(n, i) for i in range(0, k + 1)) / (1 << n)


def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int, float]:
    """0-based ranks (lo, hi) of the order statistics bounding the median, and the coverage."""
    alpha = 1.0 - confidence
    best = None
    cumulative, term, whole = 0, 1, 1 << n   # sum of C(n, i) for i <= k; C(n, k); 2^n
    for k in range(0, n // 2 + 1):
        cumulative += term
        term = term * (n - k) // (k + 1)
        # [x_(k), x_(n-1-k)] (0-based) misses the median when k or fewer samples fall on
        # one side of it: coverage = 1 - 2 P(X <= k)
        coverage = 1.0 - 2.0 * (cumulative / whole)
        if coverage >= 1.0 - alpha:
            best = (k, n - 1 - k, coverage)
        else:
            break
    if best is None:
        return 0, n - 1, 1.0 - 2.0 * 0.5 ** n
    return best


def summarize(values: list[float]) -> Summary:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    if n == 0:
        return Summary(0, None, None, None, None, None, False)
    s = sorted(vals)
    med = median(s)
    mad = median([abs(v - med) for v in s])
    if n < 6:
        lo, hi, level = s[0], s[-1], 1.0 - 2.0 * 0.5 ** n
    else:
        r_lo, r_hi, level = median_ci_ranks(n)
        lo, hi = s[r_lo], s[r_hi]
    unstable = n >= 2 and abs(med) > 0 and mad / abs(med) > UNSTABLE_RATIO
    return Summary(n, med, mad, lo, hi, level, unstable)


# d2(k): the expected range of k independent standard normal values (the control-chart constant;
# ASTM E2587 table), for the expected spread of k runs' medians.
_D2 = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970, 10: 3.078}


def expected_run_spread(worker_values: list[float], runs: int = 5) -> float | None:
    """How far apart the medians of `runs` separate runs are expected to be, as (max - min) /
    median (stats.spread), from the process-to-process spread inside one run.

    Each run's figure is a median over its workers' values; with W workers of robust spread
    sigma = 1.4826 MAD, that median's standard error is about 1.2533 sigma / sqrt(W) (the
    median's efficiency under normality), and the range of `runs` such values is d2(runs) times
    that. Workers are taken as independent draws: a state of the machine that outlasts a run
    moves every worker of the run together and is not in this figure, so it is a lower bound of
    the real run-to-run spread (docs/replay.md, "Repeatability"). None with fewer than 3 values.
    """
    vals = [v for v in worker_values if v is not None and math.isfinite(v)]
    if len(vals) < 3 or runs not in _D2:
        return None
    med = median(vals)
    if not med:
        return None
    mad = median([abs(v - med) for v in vals])
    se = 1.2533 * 1.4826 * mad / math.sqrt(len(vals))
    return _D2[runs] * se / abs(med)


def expected_run_spread_batched(worker_values: list[float], runs: int = 5, batches: int = 10) -> float | None:
    """The same prediction as expected_run_spread, from batch medians: the worker values (in the
    order the rounds ran) cut into `batches` consecutive batches, the robust spread of the batch
    medians taken as the spread of independent draws (the batch-means method of simulation output
    analysis). A machine state that lasts several rounds moves a whole batch, so this sees the
    states shorter than the run that the per-worker estimate treats as independent (in a
    222-round replay, 1.0-2.9x that estimate: one slow batch in every class). With no more
    values than batches it is expected_run_spread. None with fewer than 3 values."""
    vals = [v for v in worker_values if v is not None and math.isfinite(v)]
    if len(vals) <= batches:
        return expected_run_spread(vals, runs)
    size = len(vals) // batches
    # the first len % batches values join the first batch: every value counts
    extra = len(vals) - size * batches
    cuts = [0] + [extra + size * (i + 1) for i in range(batches)]
    medians = [median(vals[a:b]) for a, b in zip(cuts, cuts[1:])]
    if runs not in _D2:
        return None
    med = median(vals)
    if not med:
        return None
    centre = median(medians)
    mad = median([abs(v - centre) for v in medians])
    return _D2[runs] * 1.2533 * 1.4826 * mad / math.sqrt(batches) / abs(med)
