"""DTrace: our sp1 line (DTrace and bpftrace), the default CPU/ID/FUNCTION:NAME listing,
probefunc count() aggregations and procsystime tables as summaries; fast path = grammar,
generated and fuzzed lines."""
from __future__ import annotations

import random
from pathlib import Path

import polars as pl
from hypothesis import given, settings, strategies as st

from syspage import schema
from syspage.parse import detect_format, parse_file
from syspage.parse._base import ParseContext
from syspage.parse._dtrace import FORMAT, _fast_sp1, grammar_line, read_line

DATA = Path(__file__).parent / "data"
ONELINERS = DATA / "dtrace_solaris_dtracetoolkit-oneliners_examples.txt"
PROCSYSTIME = DATA / "dtrace_solaris_dtracetoolkit-procsystime_example.txt"
CORPUS = [line for p in sorted(DATA.glob("*.txt")) if not p.name.endswith(".source.txt")
          for line in p.read_text(errors="replace").splitlines()]
# The real line docs/dtrace-line-format.md shows (bpftrace running collect/scripts/syscalls.bt here).
REAL_SP1 = "sp1\t1099062324820\t26165\t26165\tgp\tgetpid\t26165\t0\t1228\t0xa,0x32,0x0,0x7f21483c5210,0x1999999999999999,0x0"


def run(lines, os=None):
    out = FORMAT.parse(lines, ParseContext(source_file="t", os=os))
    return out, schema.EVENTS.conform(out.events)


def test_bpftrace_sp1_through_the_driver(tmp_path):
    trace = tmp_path / "bt.txt"
    trace.write_text("\n".join([
        "sp1-clock\tboot", "sp1-start\t26165", REAL_SP1,
        "sp1\t1099062330000\t26165\t26166\tgp worker\topenat\t-1\t2\t5000\t0xffffff9c,0x5616,0x0,0x0,0x0,0x0",
    ]) + "\n")
    res = parse_file(trace, cache=False)
    assert res.format == "dtrace" and res.os == "linux" and res.rejects.height == 0
    ev = res.events
    assert ev["source_format"].unique().to_list() == ["bpftrace"]
    r = ev.row(0, named=True)
    assert (r["ts_ns"], r["ts_clock"], r["pid"], r["tid"], r["comm"], r["syscall"], r["ret"], r["duration_ns"],
            r["page_class"]) == (0, "relative", 26165, 26165, "gp", "getpid", 26165, 1228, "proc_ro")
    r = ev.row(1, named=True)
    assert (r["ts_ns"], r["comm"], r["errno"], r["errno_name"], r["ret"]) == \
        (1099062330000 - 1099062324820, "gp worker", 2, "ENOENT", -1)
    assert res.lines_ignored == 2


def test_dtrace_sp1_epoch_exit_and_tab_in_execname():
    lines = ["sp1-clock\tepoch", "sp1-start\t500",
             "sp1\t1700000000123456789\t500\t100200\tmy\tprog\t__sysctl\t0\t0\t3000\t0x1,0x2,0x3,0x4,0x0,0x0",
             "sp1-exit\t500\t100200\t3"]
    out, ev = run(lines)
    assert out.os == "freebsd" and out.rejects == []
    r = ev.row(0, named=True)
    assert (r["ts_ns"], r["ts_clock"], r["comm"], r["syscall"], r["syscall_raw"]) == \
        (1700000000123456789, "epoch", "my\tprog", "sysctl", "__sysctl")
    assert ev.row(1, named=True)["kind"] == "exit" and ev.row(1, named=True)["ret"] == 3
    assert ev["source_format"].unique().to_list() == ["dtrace"]


def test_oneliners_listing_and_probefunc_counts():
    out, ev = run(ONELINERS.read_text().splitlines())
    assert out.os == "solaris"
    calls = ev.filter(pl.col("kind") == "call")
    # "  0     14                       openat:entry gnome-netstatus- /dev/kstat" under syscall::openat*:entry
    first = calls.row(0, named=True)
    assert (first["line_no"], first["syscall"], first["args_raw"], first["incomplete"]) == \
        (27, "openat", "gnome-netstatus- /dev/kstat", True)
    assert calls.height == 17
    # proc:::exec-success and io:::start rows are not calls
    assert ev.filter(pl.col("kind") == "info").height == 24
    s = schema.SUMMARY.conform(out.summary)
    assert s.height == 15 and s.row(0, named=True)["syscall"] == "fstat"
    assert s.filter(pl.col("syscall") == "ioctl")["calls"].to_list() == [579]
    reasons = {r[2] for r in out.rejects}
    assert "DTrace aggregation keyed by execname (count), not a syscall count" in reasons
    assert "DTrace quantize() distribution row (not a syscall record)" in reasons
    assert "DTrace quantize() key line (not a syscall record)" in reasons       # "  gnome-terminal"
    assert sum(1 for r in out.rejects if r[1] == "[...]") == 4
    assert detect_format(ONELINERS) == "dtrace"


def test_procsystime_tables_become_summaries():
    out, _ = run(PROCSYSTIME.read_text().splitlines())
    s = schema.SUMMARY.conform(out.summary)
    first = s.row(0, named=True)
    assert (first["line_no"], first["syscall"], first["time_ns"], first["calls"]) == (13, "setpgrp", 27768, None)
    counts = s.filter(pl.col("calls").is_not_null())
    assert counts.filter(pl.col("syscall") == "total")["calls"].to_list() == [16, 28113]
    assert sum(1 for r in out.rejects if r[2].startswith("procsystime CPU-time")) == 20


def test_fast_path_equals_grammar():
    lines = CORPUS + [REAL_SP1]
    hits = 0
    for line in lines:
        fast = _fast_sp1(line)
        if fast is not None:
            hits += 1
            assert fast == grammar_line(line), line
    assert hits >= 1


@settings(max_examples=300, deadline=None)
@given(ts=st.integers(0, 2**63 - 1), pid=st.integers(1, 2**22), tid=st.integers(1, 2**22),
       execname=st.from_regex(r"[ -~]{1,15}(\t[ -~]{1,5})?", fullmatch=True).filter(lambda s: s.strip() == s and s),
       name=st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True), ret=st.integers(-4095, 2**40),
       err=st.integers(0, 133), lat=st.integers(0, 2**40),
       args=st.lists(st.integers(0, 2**64 - 1).map(hex), min_size=6, max_size=6).map(",".join))
def test_generated_sp1_lines_parse_back(ts, pid, tid, execname, name, ret, err, lat, args):
    line = f"sp1\t{ts}\t{pid}\t{tid}\t{execname}\t{name}\t{ret}\t{err}\t{lat}\t{args}"
    got = grammar_line(line)
    assert not isinstance(got, str), (line, got)
    assert got.fields == (str(ts), str(pid), str(tid), execname, name, str(ret), str(err), str(lat), args)
    fast = _fast_sp1(line)
    assert fast is None or fast == got


def test_fuzz_never_crashes():
    rng = random.Random(3)
    lines = [REAL_SP1] + [l for l in ONELINERS.read_text().splitlines() if l.strip()]
    for _ in range(3000):
        line = rng.choice(lines)
        i = rng.randrange(len(line) + 1)
        line = rng.choice([line[:i], line[:i] + rng.choice("\t:@|-0x ") + line[i:], line[:i] + line[i + 1:]])
        got = read_line(line)
        assert isinstance(got, str) or got.kind
        fast = _fast_sp1(line)
        if fast is not None:
            assert fast == grammar_line(line), line
    out, _ = run(["sp1-clock\tepoch", REAL_SP1[:40]])
    assert out.rejects[-1][2] == "cut off mid-line"
