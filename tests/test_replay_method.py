"""The replay's answers to the machine's cost states (issue 4, repeatability; docs/replay.md):
worker rounds spread over time (spread_s), the expected run-to-run spread a run reports from its
own workers, and the optional idle-poll request."""
from __future__ import annotations

import json
import os
import time

import polars as pl
import pytest

from syspage.errors import ReplayError
from syspage.replay import idlepoll, runner, stats
from syspage.replay.api import replay_events
from syspage.replay.runner import Options
from tests.replay_helpers import call_events


def test_expected_run_spread_follows_the_workers_spread_and_their_number():
    tight = [100.0, 100.5, 99.5, 100.2, 99.8, 100.1, 99.9, 100.3, 99.7, 100.0]
    wide = [80.0, 120.0, 95.0, 105.0, 90.0, 110.0, 85.0, 115.0, 100.0, 100.0]
    t, w = stats.expected_run_spread(tight), stats.expected_run_spread(wide)
    assert t < 0.01 < 0.03 < w
    # by hand for `wide`: median 100, MAD 10 -> sigma 14.826, SE 1.2533*14.826/sqrt(10), x d2(5)=2.326
    assert w == pytest.approx(2.326 * 1.2533 * 14.826 / 10 ** 0.5 / 100, rel=1e-3)
    # four times the workers with the same spread: half the expected spread
    assert stats.expected_run_spread(wide * 4) == pytest.approx(w / 2, rel=1e-3)
    # more runs compared, a wider expected range
    assert stats.expected_run_spread(wide, runs=10) > w
    assert stats.expected_run_spread([1.0, 2.0]) is None
    assert stats.expected_run_spread([5.0, None, float("nan")]) is None


def test_repeatability_takes_worker_medians_and_says_how_many_workers_the_target_needs():
    # 4 workers x 3 samples, worker-major, one missing sample
    raw = [10.0, 11.0, 12.0, 20.0, 20.0, None, 9.0, 10.0, 11.0, 10.0, 10.5, 10.0]
    assert runner.worker_medians(json.dumps(raw), 3) == [11.0, 20.0, 10.0, 10.0]
    rep = runner.repeatability(json.dumps(raw), 3)
    assert rep["workers"] == 4 and rep["may_repeat"] is False
    expected = stats.expected_run_spread([11.0, 20.0, 10.0, 10.0])
    assert rep["expected_spread_5_runs"] == pytest.approx(expected, abs=1e-4)
    assert rep["workers_for_target"] == pytest.approx(4 * (expected / runner.REPEAT_TARGET) ** 2, abs=1)
    steady = runner.repeatability(json.dumps([100.0, 100.1, 99.9] * 10), 3)
    assert steady["may_repeat"] is True and steady["workers_for_target"] is None


def test_round_starts_are_spread_evenly():
    opts = Options(workers=4, spread_s=2.0)
    assert [runner.round_start_s(w, opts) for w in range(4)] == [0.0, 0.5, 1.0, 1.5]
    assert runner.round_start_s(3, Options(workers=4)) == 0.0


def test_a_spread_replay_starts_its_rounds_on_time_and_reports_its_repeatability():
    events = call_events(["getuid"] + ["getpid"] * 200)
    opts = Options(workers=3, samples=2, spread_s=0.9, min_sample_ms=0.1, repeat_target=0.0)
    t0 = time.perf_counter()
    res = replay_events(events, opts)
    took = time.perf_counter() - t0
    starts = [r["started_s"] for r in res.summary["host_load"]["rounds"]]
    assert len(starts) == 3
    assert starts[1] >= 0.3 and starts[2] >= 0.6 and took >= 0.6
    assert "spread over >= 0.9 s" in res.metadata["method"]
    getpid = next(c for c in res.summary["classes"] if c["call_class"] == "getpid")
    assert getpid["page"]["workers"] == 3 and getpid["page"]["expected_spread_5_runs"] is not None
    flagged = {s.split(":")[0] for s in res.summary["not_repeatable"]}
    for c in res.summary["classes"]:
        for impl in ("syscall", "page"):
            if c[impl]["may_repeat"] is False:
                assert f"{c['call_class']} ({impl})" in flagged


def test_a_negative_spread_is_refused():
    from syspage.replay import engine as engine_mod

    with pytest.raises(ReplayError, match="spread_s"):
        runner.validate(Options(spread_s=-1.0), engine_mod.load())


def test_idle_poll_request_stops_idle_halts_while_held():
    if idlepoll.halts() is None:
        pytest.skip("no cpuidle states in /sys/devices/system/cpu/cpu*/cpuidle")
    if not os.access(idlepoll.QOS_PATH, os.W_OK):
        pytest.skip(f"{idlepoll.QOS_PATH} is not writable here (needs root)")
    with idlepoll.held(True) as info:
        time.sleep(0.3)
    assert info["held"] and info["reason"] is None
    # unheld, an idle vCPU halts hundreds of times in 0.3 s; held, the governor polls instead
    assert info["halts"] is not None and info["halts"] <= 10


def test_idle_poll_says_why_it_could_not_hold(tmp_path):
    missing = tmp_path / "no-such-qos-node"
    with idlepoll.held(True, path=str(missing)) as info:
        pass
    assert info["held"] is False and str(missing) in info["reason"]
    with idlepoll.held(False) as off:
        pass
    assert off == off | {"requested": False, "held": False, "reason": "not requested"}


def test_pack_puts_all_threads_of_a_replay_process_on_one_cpu_and_visits_every_cpu():
    usable = sorted(os.sched_getaffinity(0))
    # three threads (three tids) of one process
    events = call_events(["getpid"] * 300).with_columns(tid=pl.Series([1, 2, 3] * 100))
    res = replay_events(events, Options(workers=4, samples=1, min_sample_ms=0.1, repeat_target=0.0))   # placement: the default
    rounds = res.summary["host_load"]["rounds"]
    assert res.summary["host_load"]["pinned"] is True and "placement pack" in res.metadata["method"]
    cpus = []
    for r in rounds:
        (threads,) = r["thread_cpus"]     # one replay process per round
        assert len(threads) == 3 and len(set(threads)) == 1, threads
        cpus.append(threads[0])
    assert set(cpus) <= set(usable)
    free = replay_events(events, Options(workers=1, samples=1, min_sample_ms=0.1, placement="free"))
    assert free.summary["host_load"]["pinned"] is False
    with pytest.raises(ReplayError, match="placement"):
        from syspage.replay import engine as engine_mod
        runner.validate(Options(placement="everywhere"), engine_mod.load())


def test_cpus_by_idleness_rotates_idle_cpus_and_puts_a_busy_one_last(monkeypatch):
    from syspage.replay import hostload

    readings = []

    def fake_idle(cpus):   # before, after: CPU 1 idle throughout or never, CPU 0 always idle
        return readings.pop(0)

    monkeypatch.setattr(hostload, "cpu_idle_us", fake_idle)
    for rotate in range(3):
        readings[:] = [{0: 0, 1: 0}, {0: 10**9, 1: 0}]          # CPU 1 100 % busy
        assert hostload.cpus_by_idleness([0, 1], window_s=0.01, rotate=rotate) == [0, 1]
    readings[:] = [{0: 0, 1: 0}, {0: 10**9, 1: 10**9}]           # both idle: the rotation
    assert hostload.cpus_by_idleness([0, 1], window_s=0.01, rotate=1) == [1, 0]
    readings[:] = [None]                                          # no cpuidle: the rotation
    assert hostload.cpus_by_idleness([0, 1, 2], window_s=0.01, rotate=2) == [2, 0, 1]


def test_cpu_idle_time_sees_a_spinning_cpu_as_busy():
    from syspage.replay import hostload

    usable = sorted(os.sched_getaffinity(0))
    if hostload.cpu_idle_us(usable) is None:
        pytest.skip("no cpuidle statistics in /sys/devices/system/cpu/cpu*/cpuidle")
    cpu = usable[-1]
    import multiprocessing as mp

    def spin(stop):
        os.sched_setaffinity(0, {cpu})
        while not stop.is_set():
            pass

    ctx = mp.get_context("fork")
    stop = ctx.Event()
    child = ctx.Process(target=spin, args=(stop,))
    child.start()
    try:
        time.sleep(0.05)
        before, t0 = hostload.cpu_idle_us([cpu]), time.perf_counter()
        time.sleep(0.2)
        after, elapsed_us = hostload.cpu_idle_us([cpu]), (time.perf_counter() - t0) * 1e6
    finally:
        stop.set()
        child.join(5)
    # the spinner never lets its CPU go idle (another job may share it, but it is not idle either)
    assert (after[cpu] - before[cpu]) / elapsed_us < 0.2
