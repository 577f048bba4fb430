"""Adaptive worker rounds (replay/adaptive.py; issue 4: per-class medians repeat within 3 %):
the stopping rule, the budget, and what a real replay records about them."""
from __future__ import annotations

import json

import polars as pl
import pytest

from syspage.errors import ReplayError
from syspage.replay import adaptive, runner, stats
from tests.replay_helpers import call_events


def test_stops_when_every_class_is_predicted_within_the_target():
    d = adaptive.next_rounds({"getpid (syscall)": 0.01, "getpid (page)": 0.029, "clone3 (page)": None},
                             rounds_done=10, elapsed_s=1.0, round_s=0.1, target=0.03, max_seconds=30)
    assert d == adaptive.Decision(0, adaptive.STOP_MET)


def test_runs_what_the_worst_class_needs_at_most_doubling_and_within_the_budget():
    # 6 % at 10 rounds: (6/3)^2 = 4x the rounds, 30 more; capped at doubling (10 more)
    d = adaptive.next_rounds({"a": 0.06, "b": 0.01}, rounds_done=10, elapsed_s=1.0, round_s=0.1,
                             target=0.03, max_seconds=30)
    assert d == adaptive.Decision(10, None)
    # 1.25x the target at 100 rounds needs ceil(100 * 1.5625) = 157: 57 more, under the doubling cap
    d = adaptive.next_rounds({"a": 0.3125}, rounds_done=100, elapsed_s=1.0, round_s=0.01, target=0.25,
                             max_seconds=30)
    assert d == adaptive.Decision(57, None)
    # the budget leaves room for 5 rounds of 0.2 s: 5, not the 10 doubling allows
    d = adaptive.next_rounds({"a": 0.5}, rounds_done=10, elapsed_s=29.0, round_s=0.2, target=0.03,
                             max_seconds=30)
    assert d == adaptive.Decision(5, None)


def test_budget_spent_stops_even_when_a_class_is_far_from_the_target():
    d = adaptive.next_rounds({"a": 0.5}, rounds_done=10, elapsed_s=29.95, round_s=0.1, target=0.03,
                             max_seconds=30)
    assert d == adaptive.Decision(0, adaptive.STOP_BUDGET)


def test_off_and_no_estimate_stop_at_once():
    assert adaptive.next_rounds({"a": 0.5}, 10, 1.0, 0.1, target=0.0, max_seconds=30).reason == adaptive.STOP_OFF
    assert adaptive.next_rounds({"a": None}, 2, 1.0, 0.1, target=0.03, max_seconds=30).reason == \
        adaptive.STOP_NO_ESTIMATE


def test_predicted_spread_is_the_safety_factor_times_the_expected_one():
    wm = [100.0, 104.0, 97.0, 101.0, 99.0, 108.0]
    assert adaptive.predicted_spread(wm, 1.5) == pytest.approx(1.5 * stats.expected_run_spread(wm))
    assert adaptive.predicted_spread([1.0, 2.0]) is None
    assert adaptive.workers_needed(10, 0.06, 0.03) == 40
    assert adaptive.workers_needed(10, 0.02, 0.03) == 10


def test_bad_options_are_refused():
    from syspage.replay import engine

    eng = engine.load()
    for bad in ({"repeat_target": -0.1}, {"max_seconds": 0.0}, {"max_seconds": float("inf")},
                {"repeat_safety": 0.5}):
        with pytest.raises(ReplayError):
            runner.validate(runner.Options(**bad), eng)


def test_a_real_replay_spends_its_budget_on_a_target_no_class_can_meet_and_keeps_every_round():
    from syspage import replay

    # a target of 0.0001 % cannot be predicted for any real class: the rounds go on until the budget
    opts = replay.Options(workers=3, samples=2, min_sample_ms=0.1, repeat_target=1e-6, max_seconds=2.0)
    res = replay.replay_events(call_events(["getuid"] + ["getpid"] * 200), opts)
    a = res.summary["adaptive"]
    assert a["stop_reason"] == adaptive.STOP_BUDGET and a["budget_hit"] is True
    assert a["rounds"] > 3 and a["extra_rounds"] == a["rounds"] - 3
    # the budget holds to within one round (the last one starts only if it is predicted to fit)
    seconds = float(res.metadata["replay_seconds"])
    per_round = seconds / a["rounds"]
    assert seconds <= 2.0 + 2 * per_round + 0.5
    # every round's samples are in the table (nothing dropped), and the metadata counts them
    for row in res.table.filter(pl.col("cost_ns_median").is_not_null()).iter_rows(named=True):
        assert len(json.loads(row["raw_ns_json"])) == a["rounds"] * 2
    assert res.metadata["workers"] == str(a["rounds"])
    assert a["classes"]["getuid (syscall)"]["reached"] is False
    assert "getuid (syscall)" in " ".join(res.summary["not_repeatable"])
    assert f"{a['rounds']} rounds in all, stopped: time budget spent" in res.metadata["method"]


def test_a_real_replay_within_target_runs_only_the_default_rounds():
    from syspage import replay

    # 1000 % is met by every class with an estimate at once: no extra round
    opts = replay.Options(workers=3, samples=2, min_sample_ms=0.1, repeat_target=10.0, max_seconds=60.0)
    res = replay.replay_events(call_events(["getpid"] * 200), opts)
    a = res.summary["adaptive"]
    assert a["stop_reason"] == adaptive.STOP_MET and a["rounds"] == 3 and a["extra_rounds"] == 0
    assert all(c["reached"] for c in a["classes"].values())
    off = replay.replay_events(call_events(["getpid"] * 200), replay.Options(workers=3, samples=2, min_sample_ms=0.1,
                                                                         repeat_target=0.0))
    assert off.summary["adaptive"]["stop_reason"] == adaptive.STOP_OFF and off.summary["adaptive"]["rounds"] == 3


def test_batch_means_see_states_that_last_several_rounds_and_the_larger_estimate_is_taken():
    # 100 rounds whose cost drifts in steps of 10 rounds (100, 101, ... 109 ns), +-1 ns inside a
    # step: the workers' spread alone reads as independent noise, the batches see the states
    state = [100.0 + i // 10 + (1.0 if i % 2 else -1.0) for i in range(100)]
    independent, batched = stats.expected_run_spread(state), stats.expected_run_spread_batched(state)
    assert batched > 2 * independent
    assert adaptive.expected_spread(state) == batched
    # the same values in an order without lasting states: the batches agree, the per-worker
    # estimate is unchanged and is now the larger one
    shuffled = [state[(i * 37) % 100] for i in range(100)]
    assert stats.expected_run_spread(shuffled) == pytest.approx(independent)
    assert stats.expected_run_spread_batched(shuffled) < independent
    assert adaptive.expected_spread(shuffled) == pytest.approx(independent)
    # no more values than batches: it is the per-worker estimate
    assert stats.expected_run_spread_batched(state[:10]) == stats.expected_run_spread(state[:10])


def test_cli_flags_set_the_target_and_budget_and_the_warning_names_the_budget(run_cli, tmp_path):
    from tests.replay_helpers import BUNDLED, parse_to

    events = parse_to(BUNDLED / "python-logging", tmp_path / "events.parquet")
    out = tmp_path / "replay.parquet"
    proc = run_cli("replay", events, "-o", out, "--workers", "3", "--samples", "2", "--min-sample-ms", "0.1",
                   "--repeat-target", "0.0001", "--max-seconds", "2")
    assert proc.returncode == 0, proc.stderr
    a = json.loads((tmp_path / "replay.json").read_text())["adaptive"]
    assert a["target"] == pytest.approx(1e-6) and a["max_seconds"] == 2.0 and a["budget_hit"] is True
    assert a["rounds"] > 3
    assert "the --max-seconds 2 budget spent" in proc.stderr and "adaptive rounds:" in proc.stdout
    bad = run_cli("replay", events, "-o", tmp_path / "bad.parquet", "--repeat-target", "-1")
    assert bad.returncode != 0 and "repeat_target" in bad.stderr
