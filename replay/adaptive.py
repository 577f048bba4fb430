"""Adaptive worker rounds: more worker processes where the run's own data say the per-class
medians will not repeat, within a time budget the user sets (issue 4: per-class medians repeat
within 3 % across runs; docs/replay.md, "Adaptive rounds").

pyperf's answer to a noisy figure is more worker processes; here the run decides how many. After
the default rounds, each class's expected run-to-run spread (stats.expected_run_spread over its
worker medians, times a safety factor) is compared with the target; while some class is above
it and the budget allows, more rounds run (new processes, the same plan and method) and the
estimate is made again. The number of extra rounds is what the worst class needs (the spread
narrows as 1/sqrt(workers)), at most doubling the rounds so far, so a need estimated from few
workers is re-checked before the budget is spent on it, and at most what fits in the budget.

Every round counts: no class or value is dropped, no worker is chosen, nothing is clamped; the
rounds are the same for every class (a round replays the whole plan).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from syspage.replay import stats

# Why the expected spread is multiplied before it is compared with the target: it assumes the
# workers are independent draws, while a machine state that outlasts a run moves all its workers
# together, so the real spread of 5 runs is larger (1-3x the expected one in the previous
# engineer's 5 packed runs; this module's calibration in docs/replay.md, "Adaptive rounds").
SAFETY = 2.0

STOP_OFF = "off"
STOP_MET = "every class predicted within the target"
STOP_BUDGET = "time budget spent"
STOP_NO_ESTIMATE = "no class has an estimate (fewer than 3 worker medians)"


def expected_spread(worker_medians: list[float]) -> float | None:
    """The expected spread of 5 runs' medians: the larger of the per-worker estimate (workers as
    independent draws) and the batch-means one (states that last several rounds), both from
    replay/stats.py. None with fewer than 3 worker medians."""
    found = [e for e in (stats.expected_run_spread(worker_medians), stats.expected_run_spread_batched(worker_medians))
             if e is not None]
    return max(found) if found else None


def predicted_spread(worker_medians: list[float], safety: float = SAFETY) -> float | None:
    """The spread of 5 runs' medians this class is predicted to have, safety factor included."""
    expected = expected_spread(worker_medians)
    return None if expected is None else safety * expected


def workers_needed(workers: int, predicted: float, target: float) -> int:
    """The workers a class needs for `predicted` (at `workers` workers) to reach `target`."""
    if predicted <= target:
        return workers
    return math.ceil(workers * (predicted / target) ** 2)


@dataclass
class Decision:
    rounds: int          # extra rounds to run now (0 = stop)
    reason: str | None   # why it stops (STOP_*), None while it goes on


def next_rounds(predicted: dict[str, float | None], rounds_done: int, elapsed_s: float, round_s: float,
                target: float, max_seconds: float) -> Decision:
    """The stopping rule: how many more rounds to run, given each class's predicted spread.

    predicted: per class key, the predicted spread at rounds_done rounds (None: no estimate);
    round_s: the seconds one round takes (the mean so far); max_seconds: the whole replay's budget.
    """
    if target <= 0:
        return Decision(0, STOP_OFF)
    known = {k: v for k, v in predicted.items() if v is not None}
    if not known:
        return Decision(0, STOP_NO_ESTIMATE)
    worst = max(known.values())
    if worst <= target:
        return Decision(0, STOP_MET)
    fit = math.floor((max_seconds - elapsed_s) / round_s) if round_s > 0 else 0
    if fit < 1:
        return Decision(0, STOP_BUDGET)
    need = workers_needed(rounds_done, worst, target) - rounds_done
    return Decision(max(1, min(need, rounds_done, fit)), None)


@dataclass
class Record:
    """What the adaptive rounds did, for the summary and the metadata."""

    target: float
    max_seconds: float
    safety: float
    default_rounds: int
    steps: list[dict] = field(default_factory=list)   # per re-estimate: rounds, elapsed, worst class
    initial: dict[str, float | None] = field(default_factory=dict)   # predicted after the default rounds
    final: dict[str, float | None] = field(default_factory=dict)
    rounds: int = 0
    stop_reason: str = STOP_OFF

    def as_dict(self) -> dict:
        budget_hit = self.stop_reason == STOP_BUDGET
        classes = {}
        for key, final in self.final.items():
            classes[key] = {
                "predicted_spread_default_rounds": rounded(self.initial.get(key)),
                "predicted_spread": rounded(final),
                "reached": None if final is None or self.target <= 0 else final <= self.target,
                "rounds": self.rounds,
            }
        return {"target": self.target, "max_seconds": self.max_seconds, "safety_factor": self.safety,
                "default_rounds": self.default_rounds, "rounds": self.rounds,
                "extra_rounds": self.rounds - self.default_rounds, "stop_reason": self.stop_reason,
                "budget_hit": budget_hit, "steps": self.steps, "classes": classes}


def rounded(v: float | None) -> float | None:
    """v to 4 decimals for the summary (None stays None)."""
    return None if v is None else round(v, 4)
