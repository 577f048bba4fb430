"""dtruss: golden rows from the real macOS and Solaris outputs, columns and -c built to the
dtruss script, fast path = grammar, generated and fuzzed lines."""
from __future__ import annotations

import random
from pathlib import Path

import polars as pl
from hypothesis import given, settings, strategies as st

from syspage import schema
from syspage.parse import detect_format, parse_file
from syspage.parse._base import ParseContext
from syspage.parse._dtruss import FORMAT, _fast_line, grammar_line, probe_error_syscall, read_line

DATA = Path(__file__).parent / "data"
MACOS = DATA / "dtruss_macos_keaganluttrell-dbserver.txt"
SOLARIS = DATA / "dtruss_solaris_dtracetoolkit-dtruss_example.txt"
CORPUS = [line for p in sorted(DATA.glob("*.txt")) if not p.name.endswith(".source.txt")
          for line in p.read_text(errors="replace").splitlines()]


def run(lines):
    out = FORMAT.parse(lines, ParseContext(source_file="t"))
    return out, schema.EVENTS.conform(out.events)


def row(ev, n, kind="call"):
    return ev.filter((pl.col("line_no") == n) & (pl.col("kind") == kind)).row(0, named=True)


def test_macos_golden_rows():
    out, ev = run(MACOS.read_text().splitlines())
    assert out.os == "macos"
    # the program's own stderr shares the terminal: rejected as prose, nothing else is
    assert [r[0] for r in out.rejects] == [3, 4]
    # line 10: munmap(0x10CBFF000, 0x91000)		 = 0 0
    r = row(ev, 10)
    assert (r["syscall"], r["args_raw"], r["ret"], r["errno"], r["duration_ns"]) == \
        ("munmap", "0x10CBFF000, 0x91000", 0, None, None)
    # line 20: csrctl(0x0, 0x7FF7B4DD249C, 0x4)		 = -1 1  (EPERM)
    r = row(ev, 20)
    assert (r["syscall"], r["ret"], r["errno"], r["errno_name"]) == ("csrctl", -1, 1, "EPERM")
    assert row(ev, 21)["syscall"] == "mac_syscall"            # __mac_syscall normalized
    # line 167 is cut by dtrace's own error messages; its tail ")\t\t = -1 2" is line 171
    r = row(ev, 167)
    assert (r["syscall"], r["line_no_end"], r["errno_name"]) == ("stat64", 171, "ENOENT")
    assert r["args_raw"] == '"/usr/lib/system/libsystem_darwindirectory.dylib\\0", 0x7FF7B4DCE990, 0x0'
    msgs = ev.filter(pl.col("kind") == "info")["args_raw"].to_list()
    assert len(msgs) == 10 and msgs[0].startswith("dtrace: system integrity protection is on")
    assert probe_error_syscall(msgs[1]) == "sysctl"
    assert detect_format(MACOS) == "dtruss"


def test_solaris_columns_and_prose():
    out, ev = run(SOLARIS.read_text().splitlines())
    assert out.os == "solaris" and ev.height == 21
    # " PID/LWP    ELAPSD    CPU SYSCALL(args)           = return" then
    # "  3911/1:  1001579     43 read(0x0, "s\0", 0x1)           = 1 0"
    r = row(ev, 58)
    assert (r["pid"], r["tid"], r["syscall"], r["duration_ns"], r["ret"]) == (3911, 1, "read", 1_001_579_000, 1)
    assert row(ev, 37)["ret"] == 0xFFBFFEFF                   # "= 0xFFBFFEFF 0"
    assert {r[2] for r in out.rejects} == {"prose around a pasted trace (or the traced program's own output)"}


def test_relative_column_tid_hex_and_counts(tmp_path):
    lines = [
        "PID/THRD  RELATIVE  ELAPSD    CPU SYSCALL(args) \t\t = return",
        "  812/0x1f3a:      1021      12       9 getpid(0x0, 0x0, 0x0)\t\t = 812 0",
        "  812/0x1f3a:      1100      30      20 open(\"/etc/hosts\\0\", 0x0, 0x0)\t\t = -1 13",
        "",
        "CALL                                        COUNT",
        "getpid                                          1",
        "open                                            1",
    ]
    trace = tmp_path / "d.txt"
    trace.write_text("\n".join(lines) + "\n")
    res = parse_file(trace, cache=False, os="macos")
    assert res.format == "dtruss" and res.rejects.height == 0
    r = res.events.row(0, named=True)
    # RELATIVE is vtimestamp/1000 in the dtruss script: the thread's on-CPU time, not a clock
    assert (r["pid"], r["tid"], r["ts_ns"], r["duration_ns"], r["ts_clock"], r["page_class"]) == \
        (812, 0x1F3A, None, 12_000, None, "proc_ro")
    assert res.events.row(1, named=True)["errno_name"] == "EACCES"
    assert res.summary.select("syscall", "calls").rows() == [("getpid", 1), ("open", 1)]


def test_fast_path_equals_grammar_on_every_corpus_line():
    hits = 0
    for line in CORPUS:
        fast = _fast_line(line)
        if fast is not None:
            hits += 1
            assert fast == grammar_line(line), line
    assert hits > 240


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(["", " 1234/1:  ", "  812/0x1f3a:  "]),
       cols=st.lists(st.integers(0, 10**7).map(str), max_size=3),
       name=st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
       args=st.from_regex(r'[a-zA-Z0-9_,|"\\ ]{0,40}', fullmatch=True),
       ret=st.one_of(st.integers(-1, 2**31).map(str), st.integers(0, 2**32).map(lambda v: f"0x{v:X}")),
       err=st.integers(0, 106))
def test_generated_lines_parse_back(prefix, cols, name, args, ret, err):
    line = prefix + "".join(c + " " for c in cols) + f"{name}({args})\t\t = {ret} {err}"
    got = grammar_line(line)
    assert not isinstance(got, str), (line, got)
    assert (got.call, got.ret, got.err, got.cols) == (f"{name}({args})", ret, str(err), tuple(cols))
    fast = _fast_line(line)
    assert fast is None or fast == got


def test_fuzz_never_crashes():
    rng = random.Random(5)
    lines = [l for l in MACOS.read_text().splitlines() if l.strip()]
    for _ in range(3000):
        line = rng.choice(lines)
        i = rng.randrange(len(line) + 1)
        line = rng.choice([line[:i], line[:i] + rng.choice("()=\t/0x:") + line[i:], line[:i] + line[i + 1:]])
        got = read_line(line)
        assert isinstance(got, str) or got.kind
        fast = _fast_line(line)
        if fast is not None:
            assert fast == grammar_line(line), line
    out, _ = run(["getpid(0x0, 0x0, 0x0)\t\t = 812 0", "open(\"/x\", 0x0"])
    assert out.rejects[-1][2] == "cut off mid-line"


def test_current_macos_dtruss_shapes(tmp_path):
    # Apple's dtruss: errno as "Err#N", sigprocmask's return in hex, sysctl's MIB decoded, -s frames
    lines = ["sysctl([CTL_KERN, 10, 0, 0, 0, 0] (2), 0x7FF7B4DD2090, 0x7FF7B4DD2088, 0x0, 0x0)\t\t = 0 0",
             "open(\"/etc/hosts\\0\", 0x0, 0x0)\t\t = -1 Err#13",
             "sigprocmask(0x1, 0x0, 0x7FF7B4DD2080)\t\t = 0xFFFFFFFF Err#22",
             "              libsystem_kernel.dylib`__open+0xa"]
    trace = tmp_path / "d.txt"
    trace.write_text("\n".join(lines) + "\n")
    res = parse_file(trace, format="dtruss", os="macos", cache=False)
    assert res.rejects.height == 0
    assert res.events.select("kind", "syscall", "ret", "errno", "errno_name", "sysctl_name", "page_class").rows() == [
        ("call", "sysctl", 0, None, None, "kern.hostname", "sys_ro"),
        ("call", "open", -1, 13, "EACCES", None, None),
        ("call", "sigprocmask", -1, 22, "EINVAL", None, None),
        ("info", None, None, None, None, None, None)]
