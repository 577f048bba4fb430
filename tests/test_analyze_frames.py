"""The counting rules of the census, row by row, on events/1 rows shaped like real strace lines.

Each row below is what parse makes of the strace line in its comment (events/1 columns); the
golden tests in test_analyze_census.py check the same rules end to end on real traces.
"""
from __future__ import annotations

import polars as pl
import pytest

from syspage.analyze import frames
from syspage.schema import EVENTS


def _row(line_no, syscall, ret, ret_raw, errno=None, errno_name=None, incomplete=False, tid=100, ts=None, dur=None,
         args="", kind="call"):
    return dict(source_format="strace", os="linux", source_file="t.txt", line_no=line_no, line_no_end=line_no,
                ts_ns=ts, ts_clock="epoch" if ts is not None else None, pid=100, tid=tid, kind=kind, syscall=syscall,
                syscall_raw=syscall, args_raw=args, ret=ret, ret_raw=ret_raw, errno=errno, errno_name=errno_name,
                duration_ns=dur, incomplete=incomplete)


@pytest.fixture
def events():
    rows = [
        _row(1, "getpid", 100, "100", ts=1_000, dur=500),                                    # getpid() = 100 <0.000000500>
        _row(2, "openat", -1, "-1 ENOENT (No such file or directory)", 2, "ENOENT", ts=2_000, dur=700),
        _row(3, "futex", None, "? ERESTARTSYS (To be restarted if SA_RESTART is set)", 512, "ERESTARTSYS", ts=3_000),
        _row(4, "exit_group", None, "?", ts=4_000),                                          # exit_group(0) = ?
        _row(5, "nanosleep", None, None, incomplete=True, tid=101, ts=5_000),               # <unfinished ...>, never resumed
        _row(6, "read", None, "? <unavailable>", incomplete=True, tid=101, ts=6_000),       # = ? <unavailable>
        _row(7, "prctl", 0, "0", args="PR_SET_NAME, \"worker\"", tid=101, ts=7_000, dur=900),
        _row(8, "prctl", 0, "0", args="PR_SET_PDEATHSIG, SIGKILL", tid=101, ts=8_000),
        _row(9, None, None, None, kind="signal", ts=9_000),                                  # --- SIGCHLD ---
    ]
    df = EVENTS.conform(pl.DataFrame(rows, infer_schema_length=None))
    from syspage.catalog import load
    return load().classify(df)


def test_what_counts_as_a_call_and_an_error(events):
    census = frames.census_totals_by_name(frames.census_by_syscall(events))
    got = {r["syscall"]: (r["calls"], r["errors"], r["unreturned"]) for r in census.iter_rows(named=True)}
    assert got["getpid"] == (1, 0, 0)
    assert got["openat"] == (1, 1, 0)
    assert got["futex"] == (1, 1, 0)           # strace -c counts ERESTARTSYS as a call and an error
    assert got["exit_group"] == (0, 0, 1)      # never returned: not a call for strace -c
    assert got["nanosleep"] == (0, 0, 1)
    assert got["read"] == (1, 0, 0)            # <unavailable>: strace counted it at syscall exit
    assert got["prctl"] == (2, 0, 0)
    assert None not in got                     # the signal is not a call


def test_eligibility_follows_the_catalog(events):
    by_class = frames.census_by_class(events)
    rows = {r["call_class"]: r for r in by_class.iter_rows(named=True)}
    assert rows["getpid"]["eligibility"] == frames.ELIGIBLE and rows["getpid"]["page_class"] == "proc_ro"
    assert rows["prctl(PR_SET_NAME)"]["calls"] == 1 and rows["prctl(PR_SET_NAME)"]["page_access"] == "write"
    assert rows["exit_group"]["eligibility"] == frames.FOLLOW
    assert "openat" not in rows


def test_facts(events):
    f = frames.trace_facts(events)
    assert (f["records"], f["calls"], f["errors"], f["unreturned"]) == (9, 6, 2, 2)
    assert f["eligible_calls"] == 2 and f["follow_calls"] == 0
    assert f["wall_ns"] == 9_000 - 1_000
    assert f["syscall_ns"] == 500 + 700 + 900
    assert f["threads"] == 2 and f["processes"] == 1


def test_timeline_bins_cover_every_eligible_call(events):
    tl = frames.eligible_timeline(events, max_points=4)
    assert tl["calls"].sum() == 2
    assert tl.height <= 4


def test_savings_totals_without_timestamps(events):
    no_ts = events.with_columns(pl.lit(None, dtype=pl.Int64).alias("ts_ns"))
    f = frames.trace_facts(no_ts)
    assert f["wall_ns"] is None
    costs = pl.DataFrame({"call_class": ["getpid"], "host_op": ["getpid"], "syscall_ns": [100.0], "syscall_lo_ns": [90.0],
                          "syscall_hi_ns": [110.0], "page_ns": [1.0], "page_lo_ns": [0.5], "page_hi_ns": [1.5],
                          "saved_per_call_ns": [99.0], "saved_per_call_lo_ns": [88.5], "saved_per_call_hi_ns": [109.5]},
                         )
    per_class = frames.savings(frames.census_by_class(no_ts), costs)
    totals = frames.savings_totals(per_class, f)
    assert totals["saved_ns"] == pytest.approx(99.0)
    assert (totals["saved_lo_ns"], totals["saved_hi_ns"]) == pytest.approx((88.5, 109.5))
    assert totals["share_of_wall"] is None and totals["eligible_calls_per_s"] is None
    assert totals["unmeasured_classes"] == 1       # prctl(PR_SET_NAME) is eligible but not in the costs
