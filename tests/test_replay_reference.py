"""The machine reference (docs/replay.md "Machine reference"): a raw getpid(2) loop and the bare
page-read loop timed in every sample by the replay itself, and each class's cost over the
reference of its own samples, for comparing replays run at different times (issue 4)."""
from __future__ import annotations

import json
import math

import pytest

from syspage.replay import engine as engine_mod
from syspage.replay import runner
from syspage.replay.runner import Options, RunResult
from tests.replay_helpers import call_events


@pytest.fixture(scope="module")
def engine():
    return engine_mod.load()


def test_every_kept_sample_of_a_replay_process_carries_the_reference(engine):
    from syspage.replay import plan as plan_mod

    plan = plan_mod.build(call_events(["getpid"] * 200 + ["getuid"]))
    out = engine.run_process(plan.data, 0, samples=4, warmup_samples=1, min_sample_ns=200_000)
    ref = out["reference"]
    assert len(ref["syscall"]) == len(ref["page"]) == 4          # kept samples only, not the warm-up
    # a system call costs tens of ns at least, a page read a few ns at most: the two loops are not swapped
    assert all(20.0 < v < 100_000.0 for v in ref["syscall"])
    assert all(0.0 < v < 20.0 for v in ref["page"])
    assert min(ref["syscall"]) > 5 * max(ref["page"])


def test_relative_to_reference_pairs_each_sample_with_its_own_reference():
    raw = [100.0, 110.0, None, 120.0, 130.0]
    ref = [100.0, 100.0, 100.0, None, 65.0]
    # pairs: 1.0, 1.1, 2.0 (the None value and the None reference are skipped, not zero)
    assert runner.relative_to_reference(raw, ref) == pytest.approx(1.1)
    assert runner.relative_to_reference([5.0], [0.0]) is None
    assert runner.relative_to_reference([], []) is None
    assert runner.reference_kind("syscall") == "syscall"
    assert runner.reference_kind("page") == runner.reference_kind("page-kernel") == "page"


def test_the_round_reference_averages_the_processes_per_sample_and_keeps_the_order():
    outcomes = [{"reference": {"syscall": [100.0, 110.0], "page": [0.5, 0.6]}},
                {"reference": {"syscall": [102.0, 90.0], "page": [0.7, 0.4]}}]
    assert runner.round_reference(outcomes, "syscall", 2) == [101.0, 100.0]
    assert runner.round_reference(outcomes, "page", 2) == pytest.approx([0.6, 0.5])
    assert runner.round_reference([{}], "page", 2) == [None, None]   # an engine without it
    result = RunResult(rounds=[outcomes, outcomes[:1]])
    assert runner.reference_values(result, "syscall", 2) == [101.0, 100.0, 100.0, 110.0]
    summary = runner.reference_summary(result, 2)
    assert summary["syscall"]["samples"] == 4
    assert summary["syscall"]["round_medians_min"] == 100.5 and summary["syscall"]["round_medians_max"] == 105.0


def test_a_replay_reports_each_class_over_the_machine_reference(engine):
    """The logging-style plan's getpid: the engine's syscall against the raw getpid loop (the
    engine adds 4-8 % in the benches), its page read against the bare loop (1.0-1.1x)."""
    from syspage.replay import plan as plan_mod

    options = Options(workers=3, samples=4, repeat_target=0)
    plan = plan_mod.build(call_events(["getpid"] * 300 + ["geteuid"]), engine=engine)
    result = runner.run(plan, options)
    df = runner.table(plan, result, options)
    summary = runner.summarize(df, plan, options, result)
    ref = summary["reference"]
    assert ref["syscall"]["samples"] == ref["page"]["samples"] == 12
    getpid = next(c for c in summary["classes"] if c["call_class"] == "getpid")
    assert 0.7 < getpid["syscall"]["cost_over_reference"] < 1.6
    assert 0.5 < getpid["page"]["cost_over_reference"] < 3.0
    # each sample over its own sample's reference, not over the run's median reference
    raw = json.loads(df.filter((df["call_class"] == "getpid") & (df["impl"] == "syscall"))["raw_ns_json"][0])
    own = runner.relative_to_reference(raw, runner.reference_values(result, "syscall", 4))
    assert getpid["syscall"]["cost_over_reference"] == pytest.approx(own, rel=1e-4)
    # the budget the CLI names: the most rounds any class needs, at this run's seconds per round
    needed = [c[i]["workers_for_target"] for c in summary["classes"] for i in ("syscall", "page")
              if c.get(i) and c[i].get("workers_for_target")]
    if needed:
        assert summary["seconds_for_target"] == math.ceil(max(needed) * result.seconds / len(result.rounds))
    else:
        assert summary["seconds_for_target"] is None
    meta = runner.metadata(plan, result, options, None, None, summary)
    assert json.loads(meta["reference"])["syscall"]["ns_median"] == ref["syscall"]["ns_median"]
