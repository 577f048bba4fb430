"""No leak over 1,000 replays: the engine forks a kernel side, maps three memfd pages and
starts threads every time; RSS, file descriptors and child processes must stay flat."""
from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from syspage.replay import engine as engine_mod
from syspage.replay import plan as plan_mod


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _children() -> int:
    return sum(len(Path(t, "children").read_text().split()) for t in Path("/proc/self/task").iterdir()
               if Path(t, "children").exists())


@pytest.mark.slow
def test_no_leak_over_1000_replays():
    engine = engine_mod.load()
    # two threads in one process, reads, a title write, a state change
    events = pl.DataFrame({
        "kind": ["call"] * 6, "os": ["linux"] * 6,
        "syscall": ["getpid", "uname", "prctl", "getppid", "setsid", "getuid"],
        "args_raw": ["", "", 'PR_SET_NAME, "leak-test"', "", "", ""],
        "sysctl_name": [None] * 6, "pid": [10] * 6, "tid": [10, 10, 10, 11, 11, 11],
        "ts_ns": [0, 100, 200, 300, 400, 500], "duration_ns": [10] * 6,
    }, schema_overrides={"sysctl_name": pl.String})
    plan = plan_mod.build(events, engine=engine)
    assert plan.n_ops == 6 and len(plan.threads) == 2

    def once():
        r = engine.run_process(plan.data, 0, samples=1, warmups=0, min_sample_ns=0, check=True)
        assert r["classes"][0]["mismatches"] == 0

    for _ in range(50):
        once()
    fds, rss, kids = len(os.listdir("/proc/self/fd")), _rss_kib(), _children()
    for _ in range(1000):
        once()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert _children() == kids == 0
    assert _rss_kib() - rss < 2048, f"RSS grew from {rss} KiB to {_rss_kib()} KiB"
