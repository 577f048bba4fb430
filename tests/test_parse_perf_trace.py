"""perf trace: golden rows from traces recorded here (perf 6.1), the public sample, fuzzing,
and a live run of the real perf trace."""
from __future__ import annotations

import shutil
import subprocess
import sys

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import syspage.parse as parse
from conftest import DATA
from parse_harness import assert_every_line_accounted, assert_only_documented_errors, mutations, parse_text

PERF = shutil.which("perf")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYSPAGE_CACHE", str(tmp_path / "cache"))


def _row(result, line_no):
    rows = result.events.filter(pl.col("line_no") == line_no)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_event_lines_recorded_here():
    r = parse.parse_file(DATA / "perf_trace_linux_syspage-threads.txt", cache=False)
    assert r.format == "perf_trace" and r.rejects.height == 0
    assert_every_line_accounted(r)
    brk = _row(r, 2)   # 0.048 ( 0.019 ms): python3/22268 brk() = 0x9801000
    assert (brk["ts_ns"], brk["ts_clock"], brk["duration_ns"], brk["tid"], brk["comm"], brk["ret"]) == (
        48_000, "relative", 19_000, 22268, "python3", 0x9801000)
    access = _row(r, 4)
    assert (access["syscall"], access["args_raw"], access["ret"], access["errno"], access["errno_name"]) == (
        "access", "filename: 0xa14752a0, mode: R", -1, 2, "ENOENT")
    assert r.events.filter(pl.col("syscall") == "getppid").height == 40
    first = _row(r, 1)  # "? ( ): ... [continued]: execve()) = 0": the start is before the trace
    assert (first["ts_ns"], first["incomplete"], first["syscall"], first["ret"]) == (None, True, "execve", 0)
    clone = _row(r, 848)
    assert (clone["ret"], clone["ret_raw"]) == (22294, "22294 (python3)")
    child_exit = _row(r, 854)
    assert (child_exit["tid"], child_exit["pid"], child_exit["ret"], child_exit["ret_raw"]) == (22294, 22294, None, "?")
    assert set(r.events.filter(pl.col("syscall") == "getpid")["page_class"]) == {"proc_ro"}


def test_unfinished_and_continued_joined(tmp_path):
    text = (
        "   140.682 (         ): bash/8505 read(fd: 4<pipe:[232453]>, buf: 0x7ffdd59f0f00, count: 4096)       ...\n"
        "   144.561 (         ): bash/8538 exit_group()                                                          = ?\n"
        "   140.682 ( 3.982 ms): bash/8505  ... [continued]: read())                                             = 18\n"
        "    63.917 ( 0.019 ms): bash/8505 fcntl(fd: 255</root/x>, cmd: GETFL)                = RDONLY|LARGEFILE\n"
        "    50.190 ( 0.018 ms): bash/8505 getppid()                                                             = \n"
    )
    path = tmp_path / "t.txt"
    path.write_text(text)
    r = parse.parse_file(path, format="perf_trace", cache=False)
    read = _row(r, 1)
    assert (read["line_no_end"], read["duration_ns"], read["ret"], read["incomplete"]) == (3, 3_982_000, 18, False)
    assert read["args_raw"] == "fd: 4<pipe:[232453]>, buf: 0x7ffdd59f0f00, count: 4096"
    assert _row(r, 4)["ret_raw"] == "RDONLY|LARGEFILE" and _row(r, 4)["ret"] is None
    assert _row(r, 5)["ret_raw"] == "" and _row(r, 5)["ret"] is None


def test_summary_blocks_per_thread():
    r = parse.parse_file(DATA / "perf_trace_linux_syspage-threads-s.txt", cache=False)
    assert r.events.height == 0 and r.rejects.height == 0
    assert_every_line_accounted(r)
    futex = r.summary.row(0, named=True)  # line 9: futex 9 1 60.807 ... under "python3 (22321)"
    assert (futex["line_no"], futex["pid"], futex["syscall"], futex["calls"], futex["errors"], futex["time_ns"]) == (
        9, 22321, "futex", 9, 1, 60_807_000)
    assert set(r.summary["pid"]) == {22321, 22322, 22323, 22325}
    shares = r.summary.group_by("pid").agg(pl.col("pct_time").sum())
    assert shares["pct_time"].round(6).to_list() == [100.0] * 4


def test_public_sample_with_prose():
    """nanxiao's perf book: markdown around the output; prose lines are rejected one by one."""
    r = parse.parse_file(DATA / "perf_trace_linux_nanxiao-perf-little-book.md.txt", cache=False)
    assert r.events.height == 12 and r.rejects.height == 4
    assert _row(r, 8)["errno_name"] == "EINVAL"


def test_lost_continuation_is_not_joined_across_complete_calls():
    """perf trace of 20,000 getpid calls under load (recorded here): perf lost the resumption of
    the getpid started at line 6317 and the start of the one continued at 7593, with 1,275
    complete getpids of the thread between them. They are two calls, both incomplete, never one
    call spanning 6317-7593: the trace holds exactly the 20,000 calls the program made."""
    r = parse.parse_file(DATA / "perf_trace_linux_syspage-getpid-lost-continued.txt.gz", cache=False)
    assert r.rejects.height == 0
    getpid = r.events.filter(pl.col("syscall") == "getpid")
    assert getpid.height == 20_000
    assert (getpid["line_no_end"] - getpid["line_no"]).max() == 0  # no call spans other calls
    lost = getpid.filter(pl.col("incomplete"))
    assert lost["line_no"].to_list() == [6064, 6277, 6317, 7593, 7655, 9490, 11603, 13769, 15881, 19802]
    start, cont = _row(r, 6317), _row(r, 7593)
    assert (start["ret"], start["duration_ns"], start["line_no_end"]) == (None, None, 6317)
    assert (cont["ret"], cont["duration_ns"]) == (17851, 68_000)
    assert r.events.filter(pl.col("incomplete")).height == 11  # and the execve continued at line 1


def test_unfinished_then_continued_of_the_same_thread_still_joined(tmp_path):
    """The normal case around it: a start, another thread's call, then the continued line."""
    r = parse_text(tmp_path, "\n".join([
        "   140.682 (         ): bash/8505 read(fd: 4<pipe:[232453]>, buf: 0x7ffdd59f0f00, count: 4096)       ...",
        "   141.000 ( 0.003 ms): ls/14593 brk()                                           = 0x55699fe1a000",
        "   144.682 ( 3.982 ms): bash/8505  ... [continued]: read())                       = 18",
    ]) + "\n", format="perf_trace")
    assert r.events.height == 2
    read = _row(r, 1)
    assert (read["line_no_end"], read["ret"], read["incomplete"]) == (3, 18, False)


SEEDS = (DATA / "perf_trace_linux_syspage-threads.txt").read_text().splitlines()[:400]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(mutations(SEEDS), min_size=1, max_size=20))
def test_fuzzed_lines_never_crash(tmp_path, lines):
    assert_only_documented_errors(tmp_path, lines, "perf_trace")


@pytest.mark.skipif(PERF is None, reason="perf is not installed")
def test_live_perf_trace(tmp_path):
    out = tmp_path / "trace.perf.txt"
    proc = subprocess.run([PERF, "trace", "-o", str(out), "--", sys.executable, str(DATA / "syspage_parse_workload.py")],
                          capture_output=True, text=True, cwd=tmp_path)
    if proc.returncode != 0 or not out.exists() or not out.stat().st_size:
        pytest.skip(f"perf trace cannot run here: {proc.stderr.strip()[:200]}")
    r = parse.parse_file(out, cache=False)
    assert r.format == "perf_trace" and r.rejects.height == 0, r.rejects.head(3).to_dicts()
    assert r.events.filter(pl.col("syscall") == "getppid").height == 40
    assert r.events.filter(pl.col("syscall") == "exit_group").height == 2
