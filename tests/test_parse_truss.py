"""FreeBSD truss: golden rows from the real traces, the variants built to truss's source
(print_line_prefix, print_summary), fast path = grammar, generated and fuzzed lines."""
from __future__ import annotations

import random
from pathlib import Path

import polars as pl
from hypothesis import given, settings, strategies as st

from syspage import schema
from syspage.parse import detect_format, parse_file
from syspage.parse._base import ParseContext
from syspage.parse._truss import FORMAT, _fast_line, grammar_line, read_line

DATA = Path(__file__).parent / "data"
RANT = DATA / "truss_freebsd_anton2920-rant.txt"
VALGRIND = DATA / "truss_freebsd_valgrind-issue189-f-chunk.txt"
CORPUS = [line for p in sorted(DATA.glob("*.txt")) if not p.name.endswith(".source.txt")
          for line in p.read_text(errors="replace").splitlines()]


def run(lines):
    out = FORMAT.parse(lines, ParseContext(source_file="t"))
    return out, schema.EVENTS.conform(out.events)


def row(ev, n):
    return ev.filter(pl.col("line_no") == n).row(0, named=True)


def test_rant_golden_rows():
    lines = RANT.read_text().splitlines()
    out, ev = run(lines)
    assert out.rejects == [] and ev.height == len(lines) and out.os == "freebsd"
    # line 2: __sysctl("sysctl.name2oid kern.smp.maxcpus",2,...) = 0 (0x0)
    r = row(ev, 2)
    assert (r["syscall"], r["syscall_raw"], r["ret"], r["ret_raw"], r["pid"]) == ("sysctl", "__sysctl", 0, "0 (0x0)", None)
    assert r["args_raw"].startswith('"sysctl.name2oid kern.smp.maxcpus",2,')
    assert (r["sysctl_name"], row(ev, 3)["sysctl_name"]) == ("sysctl.name2oid", "kern.smp.maxcpus")
    # line 5: mmap(...) = 34920833024 (0x82171a000)
    assert row(ev, 5)["ret"] == 34920833024
    # line 365: open("tweets/2",O_RDONLY,023200000)		 ERR#2 'No such file or directory'
    r = row(ev, 365)
    assert (r["syscall"], r["ret"], r["errno"], r["errno_name"]) == ("open", -1, 2, "ENOENT")
    # line 235: SIGNAL 16 (SIGURG) code=SI_LWP pid=8207 uid=1001
    r = row(ev, 235)
    assert (r["kind"], r["args_raw"]) == ("signal", "SIGNAL 16 (SIGURG) code=SI_LWP pid=8207 uid=1001")
    # line 238: sigreturn(0x86c00ba00)				 EJUSTRETURN
    assert (row(ev, 238)["errno_name"], row(ev, 238)["ret"]) == ("EJUSTRETURN", None)
    last = row(ev, len(lines))
    assert (last["kind"], last["args_raw"]) == ("killed", "signal = 2")
    assert ev.filter(pl.col("kind") == "info")["args_raw"].str.contains(r"^<(?:new )?thread \d+(?: exited)?>$").all()
    errs = ev.filter(pl.col("errno").is_not_null()).select("errno", "errno_name").rows()
    assert errs == [(2, "ENOENT"), (32, "EPIPE"), (57, "ENOTCONN")]


def test_pid_prefix_and_driver(tmp_path):
    res = parse_file(VALGRIND, cache=False)
    assert res.format == "truss" and res.rejects.height == 0
    assert res.events["pid"].unique().to_list() == [2021]
    last = res.events.row(-1, named=True)
    assert (last["syscall"], last["errno"], last["errno_name"]) == ("sigtimedwait", 35, "EAGAIN")
    assert detect_format(RANT) == "truss"


def test_sysctl_names_decoded_by_truss_are_classified(tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_text('__sysctl("kern.hostname",2,0x7fffffffe4bc,0x7fffffffe4b0,0x0,0) = 0 (0x0)\n'
                     '__sysctl("kern.proc.args.501",4,0x0,0,0x800a0b000,30) = 0 (0x0)\n'
                     'getppid()\t\t\t\t\t = 1 (0x1)\n')
    res = parse_file(trace, cache=False)
    assert res.format == "truss"
    assert res.events.select("sysctl_name", "page_class", "page_access").rows() == [
        ("kern.hostname", "sys_ro", "read"), ("kern.proc.args", "proc_rw", "write"), (None, "proc_ro", "read")]


def test_threads_timestamps_exit_and_summary():
    # -f -H -d -D: "%5d %6d: " then "%jd.%09ld " since start and in the call (setup.c print_line_prefix)
    lines = [
        " 4321 100777: 0.000100000 0.000002000 getpid()\t\t\t\t = 4321 (0x10e1)",
        " 4321 100777: 0.000300000 0.000050000 __sysctl(0x7fffffffe4a0,2,0x7fffffffe4bc,0x7fffffffe4b0,0x0,0) = 0 (0x0)",
        " 4321 100777: 0.000400000 0.000000000 exit(0x0)",
        " 4321 100777: 0.000401000 0.000000000 process exit, rval = 0",
        "syscall                     seconds   calls  errors",
        "getpid                  0.000002000       1       0",
        "__sysctl                0.000050000       1       0",
        "                      ------------- ------- -------",
        "                        0.000052000       2       0",
    ]
    out, ev = run(lines)
    assert out.rejects == [] and out.ignored == 2
    g = row(ev, 1)
    assert (g["pid"], g["tid"], g["ts_ns"], g["duration_ns"], g["ts_clock"], g["ret"]) == \
        (4321, 100777, 98_000, 2_000, "relative", 4321)
    assert row(ev, 3)["incomplete"] is True
    assert (row(ev, 4)["kind"], row(ev, 4)["ret"]) == ("exit", 0)
    s = schema.SUMMARY.conform(out.summary)
    assert s.select("syscall", "calls", "errors", "time_ns").rows() == [
        ("getpid", 1, 0, 2_000), ("sysctl", 1, 0, 50_000), ("total", 2, 0, 52_000)]
    assert abs(s["pct_time"][1] - 50_000 * 100 / 52_000) < 1e-9


def test_fast_path_equals_grammar_on_every_corpus_line():
    hits = 0
    for line in CORPUS:
        fast = _fast_line(line)
        if fast is not None:
            hits += 1
            assert fast == grammar_line(line), line
    assert hits > 4900


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(["", " 1234: ", " 1234 100001: ", "100001: "]),
       stamps=st.lists(st.from_regex(r"[0-9]{1,3}\.[0-9]{9}", fullmatch=True), max_size=2),
       name=st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
       args=st.from_regex(r'[a-zA-Z0-9_,|"(). ]{0,40}', fullmatch=True),
       ret=st.one_of(st.integers(-5, 2**40).map(lambda v: ("value", v)), st.integers(1, 97).map(lambda e: ("err", e)),
                     st.just(("EJUSTRETURN", None))),
       tabs=st.integers(1, 6))
def test_generated_call_lines_parse_back(prefix, stamps, name, args, ret, tabs):
    tail = {"value": lambda v: f"= {v} ({v & (2**64 - 1):#x})", "err": lambda e: f"ERR#{e} 'Some error'",
            "EJUSTRETURN": lambda _: "EJUSTRETURN"}[ret[0]](ret[1])
    line = prefix + "".join(s + " " for s in stamps) + f"{name}({args})" + "\t" * tabs + " " + tail
    got = grammar_line(line)
    assert not isinstance(got, str), (line, got)
    assert (got.name, got.args, got.stamps) == (name, args, tuple(stamps))
    if ret[0] == "value":
        assert got.ret == str(ret[1])
    elif ret[0] == "err":
        assert got.errno == str(ret[1])
    fast = _fast_line(line)
    assert fast is None or fast == got


def test_fuzz_never_crashes():
    rng = random.Random(7)
    lines = [l for l in RANT.read_text().splitlines()[:400]]
    for _ in range(3000):
        line = rng.choice(lines)
        i = rng.randrange(len(line) + 1)
        line = rng.choice([line[:i], line[:i] + rng.choice("()=\t'#x0") + line[i:], line[:i] + line[i + 1:]])
        got = read_line(line)
        assert isinstance(got, str) or got.kind
        fast = _fast_line(line)
        if fast is not None:
            assert fast == grammar_line(line), line
    out, _ = run(["garbage ( line", "", "write(1,\"x\",1) = 1 (0x1"])
    assert [r[2] for r in out.rejects][0] == "prose around a pasted trace"
    assert out.rejects[-1][2] == "cut off mid-line" and out.ignored == 1
