"""Golden tests of the strace parser on real traces (expected rows read off the files by hand,
line numbers given), and a live run of the real strace with the flags collect uses."""
from __future__ import annotations

import datetime as dt
import shutil
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

import syspage.parse as parse
from conftest import DATA
from parse_harness import assert_every_line_accounted, parse_text

STRACE = shutil.which("strace")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYSPAGE_CACHE", str(tmp_path / "cache"))


def _row(result, line_no, kind=None):
    rows = result.events.filter(pl.col("line_no") == line_no)
    if kind:
        rows = rows.filter(pl.col("kind") == kind)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_unfinished_resumed_joined_per_thread():
    """wperron: -f, threads interleave nanosleep halves (lines 3-6, 7-9)."""
    r = parse.parse_file(DATA / "strace_linux_wperron-go-f-unfinished.txt", cache=False)
    first = _row(r, 3)
    assert (first["tid"], first["line_no_end"], first["syscall"], first["ret"], first["incomplete"]) == (51904, 5, "nanosleep", 0, False)
    assert first["args_raw"] == "{tv_sec=0, tv_nsec=20000}, NULL"
    assert _row(r, 4)["line_no_end"] == 6 and _row(r, 4)["tid"] == 51907
    assert _row(r, 7)["line_no_end"] == 9
    # line 8: 51903's call resumes on line 24 only to end with the process: "<unfinished ...>) = ?"
    assert (_row(r, 8)["line_no_end"], _row(r, 8)["incomplete"], _row(r, 8)["ret"]) == (24, True, None)
    assert _row(r, 32)["kind"] == "exit" and _row(r, 32)["ret"] == 2
    assert r.events.filter(pl.col("line_no").is_in([5, 6, 9])).height == 0
    assert_every_line_accounted(r)


def test_signals_and_killed():
    """demurgos: plain strace, a SIGSEGV twice, then killed (lines 511, 514, 515)."""
    r = parse.parse_file(DATA / "strace_linux_demurgos-git2-segfault-sigsegv.txt", cache=False)
    sig = _row(r, 511)
    assert sig["kind"] == "signal" and sig["args_raw"] == "SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL}"
    assert sig["syscall"] is None and sig["pid"] is None
    killed = _row(r, 515)
    assert killed["kind"] == "killed" and killed["args_raw"] == "SIGSEGV (core dumped)"
    first = _row(r, 1)
    assert first["syscall"] == "execve" and first["ret"] == 0 and first["ts_ns"] is None and first["ts_clock"] is None
    assert _row(r, 3)["errno"] == 22 and _row(r, 3)["errno_name"] == "EINVAL"  # arch_prctl(0x3001 /* ARCH_??? */...)


def test_i386_and_old_style_args():
    r = parse.parse_file(DATA / "strace_linux_jodpers-plain-i386.txt", cache=False)
    assert _row(r, 1)["args_raw"] == '"./kstrace", ["./kstrace"], [/* 39 vars */]'
    assert _row(r, 2)["ret"] == 0x8892000 and _row(r, 2)["ret_raw"] == "0x8892000"
    assert r.rejects.height == 0


def test_c_summary_table_and_attach_lines():
    """renlord: a bare -c table; jhanssen: -p attach/detach lines, then the -c table."""
    r = parse.parse_file(DATA / "strace_linux_renlord-zoom-c-summary.txt", cache=False)
    assert r.events.height == 0 and r.summary.height == 112 and r.lines_ignored == 2
    poll = r.summary.row(0, named=True)   # " 59.63 1271.830170        1981    641698        19 poll"
    assert (poll["syscall"], poll["calls"], poll["errors"], poll["time_ns"], poll["pct_time"]) == (
        "poll", 641698, 19, 1271_830_170_000, 59.63)
    total = r.summary.row(-1, named=True)  # "100.00 2133.047293  224   9519789    105855 total"
    assert (total["syscall"], total["calls"], total["errors"], total["line_no"]) == ("total", 9519789, 105855, 114)
    r = parse.parse_file(DATA / "strace_linux_jhanssen-overdraw-c-p-threads.txt", cache=False)
    kinds = r.events.group_by("kind").len().sort("kind").rows()
    assert kinds == [("attach", 1), ("detach", 12)]
    assert _row(r, 1)["args_raw"] == "Process 54168 attached with 12 threads" and _row(r, 1)["pid"] == 54168
    write = r.summary.filter(pl.col("syscall") == "write").row(0, named=True)  # blank errors column
    assert (write["calls"], write["errors"]) == (33152, 0)


def test_f_tt_T_y_recorded_here():
    """Our own strace -f -tt -T -y of tests/data/syspage_parse_workload.py (date given)."""
    r = parse.parse_file(DATA / "strace_linux_syspage-f-tt-T-y.txt", date="2026-11-28", cache=False)
    assert r.rejects.height == 0
    ev = r.events
    assert ev.filter(pl.col("syscall") == "getpid").height == 4      # lines 585-587, 665
    assert ev.filter(pl.col("syscall") == "getppid").height == 40    # 2 threads x 20
    row = _row(r, 4)   # access("/etc/ld.so.preload", R_OK) = -1 ENOENT (...) <0.000006>
    start = int(dt.datetime(2026, 11, 28, 6, 59, 54, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert (row["ts_ns"], row["duration_ns"], row["ret"], row["errno"]) == (start + 400_113_000, 6_000, -1, 2)
    assert row["ret_raw"] == "-1 ENOENT (No such file or directory)"
    fd = _row(r, 5)    # = 3</etc/ld.so.cache> <0.000006>
    assert (fd["ret"], fd["ret_raw"]) == (3, "3</etc/ld.so.cache>")
    send = _row(r, 592)  # the data holds ') = 3 <0.1>': it stays in the arguments
    assert send["args_raw"] == '3<socket:[246808]>, "ping)\\" = 3 <0.1>", 16, 0, NULL, 0'
    assert (send["ret"], send["duration_ns"]) == (16, 10_000)
    kill = _row(r, 666)
    assert kill["syscall"] == "kill" and kill["line_no_end"] > 666 and kill["ret"] == 0
    assert _row(r, 670)["kind"] == "signal" and _row(r, 670)["tid"] == 16770
    child = _row(r, 859)
    assert (child["kind"], child["ret"], child["tid"], child["pid"]) == ("exit", 3, 16772, 16772)
    # the workers are threads of 16769 (clone3 with CLONE_THREAD); the forked child is not
    assert set(ev.filter(pl.col("syscall") == "getppid")["pid"]) == {16769}
    assert _row(r, 872)["kind"] == "exit" and _row(r, 871)["ret"] is None and _row(r, 871)["ret_raw"] == "?"
    # page classes from the catalog
    assert set(ev.filter(pl.col("syscall") == "getpid")["page_class"]) == {"proc_ro"}


def test_relative_r_accumulates_and_X_verbose_yy():
    r = parse.parse_file(DATA / "strace_linux_syspage-f-r-yy-Xverbose.txt", cache=False)
    assert r.rejects.height == 0
    ts = r.events.head(3)["ts_ns"].to_list()
    assert ts == [0, 213_000, 213_000 + 5_228_000]          # 0.000000, 0.000213, 0.005228
    assert set(r.events["ts_clock"]) == {"relative"}
    pair = _row(r, 589)
    assert pair["args_raw"].startswith("0x1 /* AF_UNIX */, 0x1 /* SOCK_STREAM */|0x80000 /* SOCK_CLOEXEC */, 0, [3<UNIX-STREAM:[246823->246824]>")


def test_k_stack_frames_are_info_rows_of_the_call_above():
    r = parse.parse_file(DATA / "strace_linux_syspage-f-ttt-k-Xraw-head.txt", cache=False)
    assert r.rejects.height == 0
    frame = _row(r, 2)
    assert frame["kind"] == "info" and frame["tid"] == 16786 and frame["syscall"] is None
    assert frame["args_raw"] == "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2(_dl_catch_error+0x26f0) [0x1ab70]"
    assert _row(r, 3)["args_raw"] == "NULL" and _row(r, 3)["ts_clock"] == "epoch"
    assert _row(r, 3)["ts_ns"] == 1795849194_622724_000


def test_stderr_mode_prefixes_and_attach_inside_a_clone_line():
    r = parse.parse_file(DATA / "strace_linux_syspage-stderr-f-t-xx.txt", cache=False)
    assert r.rejects.height == 0
    clone = _row(r, 600, kind="call")
    assert clone["syscall"] == "clone3" and clone["line_no_end"] == 601 and clone["ret"] == 16909
    assert clone["args_raw"].endswith("tls=0x7fd8bd9fa6c0} => {parent_tid=[16909]}, 88")
    attach = _row(r, 600, kind="attach")
    assert attach["tid"] == 16909
    assert _row(r, 602)["tid"] == 16909  # [pid 16909] prefix


def test_C_summary_agrees_with_the_events():
    """strace -C appends its own counts: the parsed calls and errors must match them."""
    r = parse.parse_file(DATA / "strace_linux_syspage-f-C.txt", cache=False)
    census = r.events.filter(pl.col("kind") == "call").group_by("syscall").agg(
        pl.len().alias("n"), (pl.col("ret") < 0).sum().alias("e"))
    table = r.summary.filter(pl.col("syscall") != "total").join(census, on="syscall", how="left")
    mismatched = table.filter((pl.col("calls") != pl.col("n")) | (pl.col("errors") != pl.col("e")))
    assert mismatched.height == 0, mismatched.select("syscall", "calls", "n", "errors", "e")


def test_midnight_wrap_and_dates(tmp_path):
    text = "1 23:59:59.900000 getpid() = 1\n1 00:00:00.100000 getpid() = 1\n1 00:00:01 getpid() = 1\n"
    r = parse_text(tmp_path, text, date="2026-12-31")
    base = int(dt.datetime(2026, 12, 31, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    day = 86400 * 10**9
    assert r.events["ts_ns"].to_list() == [base + day - 100_000_000, base + day + 100_000_000, base + day + 10**9]


def test_unavailable_erestartsys_and_resumed_without_start(tmp_path):
    text = (
        "7 read(3,  <unfinished ...>\n"
        "7 <... read resumed>0x7ffd, 10)      = ? ERESTARTSYS (To be restarted if SA_RESTART is set)\n"
        "8 <... futex resumed>)             = 0\n"
        "9 <... wait4 resumed> <unfinished ...>) = ? <unavailable>\n"
        "9 exit_group(0)                     = ?\n"
        "[ Process PID=9 runs in 32 bit mode. ]\n"
    )
    r = parse_text(tmp_path, text)
    read = _row(r, 1)
    assert (read["ret"], read["ret_raw"], read["errno_name"], read["errno"], read["line_no_end"]) == (
        None, "? ERESTARTSYS (To be restarted if SA_RESTART is set)", "ERESTARTSYS", 512, 2)
    assert _row(r, 3)["incomplete"] is True   # its start is not in the trace
    gone = _row(r, 4)  # the process died in the call: strace could not read its return
    assert (gone["incomplete"], gone["ret"], gone["ret_raw"], gone["duration_ns"]) == (True, None, "?", None)
    assert r.rejects.height == 0
    assert _row(r, 5)["incomplete"] is False and _row(r, 5)["ret"] is None
    mode = _row(r, 6)
    assert mode["kind"] == "info" and mode["tid"] == 9


def test_syscall_names_normalized(tmp_path):
    r = parse_text(tmp_path, "_llseek(3, 0, [0], SEEK_SET) = 0\n_newselect(0, NULL, NULL, NULL, {tv_sec=1}) = 0\n")
    assert r.events.select("syscall", "syscall_raw").rows() == [("llseek", "_llseek"), ("newselect", "_newselect")]


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_live_strace_with_collects_flags(tmp_path):
    """The real strace, with the flags collect uses (-f -ttt -T -xx -s 128 -o)."""
    out = tmp_path / "trace.strace.txt"
    proc = subprocess.run([STRACE, "-f", "-ttt", "-T", "-xx", "-s", "128", "-o", str(out), sys.executable,
                           str(DATA / "syspage_parse_workload.py")], capture_output=True, text=True, cwd=tmp_path)
    if proc.returncode != 0 and not out.exists():
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    r = parse.parse_file(out, cache=False)
    assert r.rejects.height == 0, r.rejects.head(3).to_dicts()
    ev = r.events
    assert ev.filter(pl.col("syscall") == "getppid").height == 40
    assert ev.filter((pl.col("kind") == "exit") & (pl.col("ret") == 3)).height == 1
    assert ev.filter((pl.col("syscall") == "openat") & (pl.col("errno_name") == "ENOENT")).height >= 1
    returned = ev.filter((pl.col("kind") == "call") & (pl.col("ret_raw") != "?"))
    assert returned["duration_ns"].null_count() == 0 and returned.height > 1000
    assert ev.filter(pl.col("kind") == "call")["pid"].n_unique() == 2   # the process and its forked child
    grammar = parse.parse_file(out, cache=False, grammar_only=True)
    assert grammar.events.equals(r.events)


def test_attach_detached_idle_process():
    """strace -p of an idle sleep(1) (recorded here): the one line is a restart_syscall strace
    detached from, "<... resuming interrupted read ...>" its argument; an incomplete call."""
    r = parse.parse_file(DATA / "strace_linux_syspage-p-idle-detached.txt", cache=False)
    assert r.format == "strace" and r.rejects.height == 0 and r.events.height == 1
    row = _row(r, 1)
    assert (row["tid"], row["syscall"], row["kind"], row["incomplete"], row["ret"], row["line_no_end"]) == (
        9788, "restart_syscall", "call", True, None, 1)
    assert row["args_raw"].strip() == "<... resuming interrupted read ...>"


def test_attach_detached_busy_process():
    """strace -p of a busy process (recorded here): the last line, cut by the detach, is an
    incomplete clock_nanosleep; every other line is a complete call."""
    r = parse.parse_file(DATA / "strace_linux_syspage-p-busy-detached.txt", cache=False)
    assert r.rejects.height == 0 and r.events.height == 347
    assert_every_line_accounted(r)
    last = _row(r, 347)
    assert (last["syscall"], last["incomplete"], last["ret"]) == ("clock_nanosleep", True, None)
    assert last["args_raw"].strip() == "CLOCK_MONOTONIC, TIMER_ABSTIME, {tv_sec=6436, tv_nsec=889346162},"
    assert r.events.filter(pl.col("incomplete")).height == 1
    assert r.events.filter(pl.col("syscall") == "getpid").height == 173


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_live_strace_attach_to_idle_and_busy(tmp_path):
    """The real strace -p with collect's flags, detached by SIGINT as collect --duration does."""
    for name, argv in (("idle", ["sleep", "100"]),
                       ("busy", [sys.executable, str(DATA / "syspage_parse_busy_workload.py")])):
        target = subprocess.Popen(argv)
        try:
            time.sleep(0.5)
            out = tmp_path / f"{name}.strace.txt"
            tracer = subprocess.Popen([STRACE, "-f", "-ttt", "-T", "-xx", "-s", "128", "-o", str(out), "-p", str(target.pid)],
                                      stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
            tracer.send_signal(signal.SIGINT)
            _, err = tracer.communicate(timeout=10)
        finally:
            target.kill()
            target.wait()
        if not out.exists() or not out.stat().st_size:
            pytest.skip(f"strace cannot attach here: {err.strip()[:200]}")
        r = parse.parse_file(out, cache=False)
        assert r.rejects.height == 0, r.rejects.head(3).to_dicts()
        last = r.events.sort("line_no").row(-1, named=True)
        if name == "idle" or last["incomplete"]:
            assert last["incomplete"] and last["ret"] is None and last["tid"] == target.pid, last
        else:  # busy: SIGINT can land while the tracee is between two calls; its last call completed
            assert last["ret"] is not None and last["tid"] == target.pid, last
        if name == "idle":
            assert r.events.height == 1 and last["syscall"] == "restart_syscall"
            assert last["args_raw"].startswith("<... resuming interrupted ")
        else:
            assert r.events.filter(pl.col("syscall") == "getpid").height > 10
