"""What makes the replay's figures repeat from run to run (issue 4: per-class medians within
3 % across runs): the spread statistic, the per-class calibration, CPU pinning and the host
load recorded beside the figures."""
from __future__ import annotations

import math
import os

import pytest

from syspage.replay import engine as engine_mod
from syspage.replay import hostload, stats
from syspage.replay import plan as plan_mod
from tests.replay_helpers import call_events


@pytest.fixture(scope="module")
def engine():
    return engine_mod.load()


@pytest.fixture(scope="module")
def one_rare_class(engine):
    """One getuid and 400 getpids per pass: getuid is a class timed one call at a time."""
    return plan_mod.build(call_events(["getuid"] + ["getpid"] * 400), engine=engine)


def test_spread_is_range_over_median():
    assert stats.spread([100.0, 103.0, 97.0]) == pytest.approx(0.06)
    assert stats.spread([5.0, 5.0, 5.0]) == 0.0
    assert stats.spread([100.0, None, 110.0, float("nan")]) == pytest.approx(10.0 / 105.0)
    assert math.isnan(stats.spread([]))
    assert math.isnan(stats.spread([0.0, 0.0]))


def _snap(**cpus) -> hostload.Snapshot:
    return hostload.Snapshot({k: tuple(v) for k, v in cpus.items()}, 0.5, 2)


def test_steal_and_busy_fractions_from_proc_stat_counters():
    # user nice system idle iowait irq softirq steal
    before = _snap(cpu=[100, 0, 50, 800, 10, 0, 0, 40])
    after = _snap(cpu=[160, 0, 70, 880, 10, 0, 0, 80])   # +200 ticks: 60 user, 20 sys, 80 idle, 40 steal
    assert hostload.steal_fraction(before, after) == pytest.approx(40 / 200)
    assert hostload.busy_fraction(before, after) == pytest.approx(1 - 80 / 200)
    assert hostload.steal_fraction(before, before) is None          # no tick elapsed
    assert hostload.steal_fraction(before, after, "cpu7") is None    # no such CPU


def test_snapshot_reads_this_machine():
    s = hostload.snapshot()
    if not s.cpu_ticks:
        pytest.skip("no /proc/stat here")
    assert "cpu" in s.cpu_ticks and len(s.cpu_ticks["cpu"]) == 8
    assert s.procs_running is not None and s.procs_running >= 1   # this reader runs
    assert s.load_1min is not None and s.load_1min >= 0


def test_per_class_calibration_raises_loops_for_a_rare_class_and_respects_the_cap(engine, one_rare_class):
    data = one_rare_class.data
    plain = engine.run_process(data, 0, samples=2, warmups=1, min_sample_ns=100_000, check=False)
    per_class = engine.run_process(data, 0, samples=2, warmups=1, min_sample_ns=100_000, check=False,
                                   min_class_ns=50_000, max_sample_ns=20_000_000)
    capped = engine.run_process(data, 0, samples=2, warmups=1, min_sample_ns=100_000, check=False,
                                min_class_ns=50_000, max_sample_ns=200_000)
    # one getuid (~100-400 ns) per pass needs >= 125 passes to reach 50 us; the pass-length
    # rule alone (100 us over a ~40 us pass of 400 getpids) asks for a handful
    assert per_class["loops"]["syscall"] >= 100 > plain["loops"]["syscall"]
    # a 200 us cap over a pass of >= 20 us allows at most 10 passes (and never fewer than the
    # pass-length rule)
    assert capped["loops"]["syscall"] <= max(10, plain["loops"]["syscall"])
    getuid = next(i for i, c in enumerate(one_rare_class.classes) if c.call_class == "getuid")
    assert all(v > 0 for v in per_class["classes"][getuid]["samples"]["syscall"])


def test_pinned_threads_run_where_asked_and_the_value_check_still_agrees(engine, one_rare_class):
    usable = sorted(os.sched_getaffinity(0))
    cpu = usable[-1]
    r = engine.run_process(one_rare_class.data, 0, samples=2, warmups=1, min_sample_ns=50_000, check=True,
                           cpus=[cpu])
    assert r["pinned"] is True
    assert r["thread_cpus"] == [cpu]
    assert sum(c["checked"] for c in r["classes"]) == 401
    assert sum(c["mismatches"] for c in r["classes"]) == 0
    # the caller's own mask is untouched (only the replay threads and the kernel side are pinned)
    assert sorted(os.sched_getaffinity(0)) == usable
    unpinned = engine.run_process(one_rare_class.data, 0, samples=2, warmups=1, min_sample_ns=50_000, check=False)
    assert unpinned["pinned"] is False


def test_a_replay_records_host_load_and_rotates_pinned_cpus(engine):
    from syspage import replay

    res = replay.replay_events(call_events(["getpid"] * 200), replay.Options(workers=2, samples=2, placement="spread"))
    host = res.summary["host_load"]
    assert len(host["rounds"]) == 2
    assert host["load_1min_max"] is not None and host["procs_running_max"] >= 1
    usable = sorted(os.sched_getaffinity(0))
    cpus = [r["thread_cpus"][0][0] for r in host["rounds"]]
    assert host["pinned"] is True
    if len(usable) >= 2:
        assert cpus[0] != cpus[1]   # round w starts at the w-th usable CPU
    assert set(cpus) <= set(usable)
    assert "placement spread (threads pinned: yes)" in res.metadata["method"]
    unpinned = replay.replay_events(call_events(["getpid"] * 200), replay.Options(workers=1, samples=2, placement="free"))
    assert unpinned.summary["host_load"]["pinned"] is False


def test_others_share_subtracts_our_childrens_cpu_time():
    hz = os.sysconf("SC_CLK_TCK")
    # 2 CPUs over 1 s = 2 * hz ticks; 1.5 s busy of which our children used 0.5 s
    before = hostload.Snapshot({"cpu": (0, 0, 0, 0, 0, 0, 0, 0)}, 0.1, 1, children_cpu_s=10.0)
    after = hostload.Snapshot({"cpu": (int(1.5 * hz), 0, 0, int(0.5 * hz), 0, 0, 0, 0)}, 0.1, 1,
                              children_cpu_s=10.5)
    assert hostload.others_fraction(before, after) == pytest.approx(1.0 / 2.0)
    # our children's time is never counted as someone else's, even when ticks round down
    after_ours = hostload.Snapshot({"cpu": (hz, 0, 0, hz, 0, 0, 0, 0)}, 0.1, 1, children_cpu_s=11.2)
    assert hostload.others_fraction(before, after_ours) == 0.0


def test_warm_up_samples_are_taken_and_discarded_and_samples_are_four_quarters(engine, one_rare_class):
    import time

    data = one_rare_class.data
    kw = dict(samples=2, warmups=0, min_sample_ns=5_000_000, check=False)
    # CPU time of this process (the replay threads spin), not wall time: a busy machine
    # preempts us but does not add CPU time
    t0 = time.process_time()
    none = engine.run_process(data, 0, warmup_samples=0, **kw)
    t1 = time.process_time()
    four = engine.run_process(data, 0, warmup_samples=4, **kw)
    t2 = time.process_time()
    for r in (none, four):
        assert all(len(c["samples"]["syscall"]) == 2 for c in r["classes"])
        # A B B A B A A B: each implementation's sample is four equal quarters
        assert r["loops"]["syscall"] % 4 == 0 and r["loops"]["page"] % 4 == 0
    # 2 samples of ~5 ms per implementation (20 ms) against 6 (60 ms): the warm-up ones ran.
    # A margin, not 3x: on a busy machine a preempted calibration pass gives shorter samples.
    assert (t2 - t1) > 1.4 * (t1 - t0)


def test_wait_for_quiet_returns_at_once_when_any_load_is_allowed_and_times_out_otherwise():
    if not hostload.snapshot().cpu_ticks:
        pytest.skip("no /proc/stat here")
    r = hostload.wait_for_quiet(max_busy=1.0, window_s=0.05, timeout_s=5)
    assert r["quiet"] is True and r["waited_s"] < 1.0
    # no machine is ever below -1 % busy: waits out the timeout and says it was not quiet
    r = hostload.wait_for_quiet(max_busy=-0.01, window_s=0.05, timeout_s=0.3)
    assert r["quiet"] is False and r["waited_s"] >= 0.3
