"""Property and fuzz tests of the strace parser (hypothesis).

Property: lines generated from strace's line shapes (prefixes, timestamps, strings with escapes
and look-alike text such as ') = 3 <0.1>', nested parentheses, -y decorations, errno notes,
durations) parse back to exactly the parts they were built from, through the C framer, the
Polars framer and the Lark grammar alike.
Fuzz: lines mutated from real ones (cut, spliced, noise) never crash the parser: they are
rejected with a reason or parsed; and wherever a fast path accepts one, it agrees with Lark.
"""
from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA
from parse_harness import assert_only_documented_errors, mutations
from syspage.parse import _native, _strace

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

pids = st.integers(1, 4_194_304).map(str)
digits = st.text("0123456789", min_size=1, max_size=9)
timestamps = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)).map(lambda t: "%02d:%02d:%02d" % t),
    st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999999)).map(
        lambda t: "%02d:%02d:%02d.%06d" % t),
    st.tuples(st.integers(10**9, 2 * 10**9), st.integers(0, 999999)).map(lambda t: "%d.%06d" % t),
    st.tuples(st.integers(0, 99), digits).map(lambda t: f"{t[0]}.{t[1]}"),
)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
string_body = st.lists(st.sampled_from(list("abc xyz/=<>)(0123,.-_") + ['\\"', "\\\\", "\\x2f", "\\n", ") = 3", " <0.1>"]),
                       max_size=12).map("".join)
strings = st.tuples(string_body, st.booleans()).map(lambda t: f'"{t[0]}"' + ("..." if t[1] else ""))
plain = st.lists(st.sampled_from(list("abcXYZ0189_|/ =.*[]{}:-,>") + ["<x>", "/* 3 vars */", "->"]),
                min_size=1, max_size=10).map("".join)


def _args(depth: int):
    atom = st.one_of(strings, plain)
    if depth == 0:
        return st.lists(atom, max_size=4).map(", ".join)
    nested = _args(depth - 1).map(lambda a: f"{{x=({a})}}")
    return st.lists(st.one_of(atom, nested), max_size=4).map(", ".join)


args_text = _args(2)
retvals = st.one_of(st.integers(-4095, 2**40).map(str), st.integers(0, 2**47).map(hex), st.just("?"))
decorations = st.one_of(st.none(), st.sampled_from(["</etc/ld.so.cache>", "<TCP:[127.0.0.1:80->127.0.0.1:5555]>",
                                                     "<socket:[246808]>", "<python3>"]))
errnames = st.one_of(st.none(), st.sampled_from(["ENOENT", "EAGAIN", "ERESTARTSYS", "ERESTART_RESTARTBLOCK", "E2BIG"]))
notes = st.one_of(st.none(), st.sampled_from(["No such file or directory", "flags O_RDONLY|O_LARGEFILE",
                                              "[{fd=3, revents=POLLIN}]", "in [3], left {tv_sec=0, tv_usec=1}",
                                              "To be restarted if SA_RESTART is set"]))
durations = st.one_of(st.none(), st.tuples(st.integers(0, 99), st.integers(0, 999999)).map(lambda t: "%d.%06d" % t),
                      st.just("unavailable"))


@st.composite
def strace_lines(draw):
    shape = draw(st.sampled_from(["call", "unfinished", "resumed"]))
    pid_style = draw(st.sampled_from(["none", "bare", "bracket"]))
    pid = draw(pids)
    prefix = {"none": "", "bare": f"{pid} ", "bracket": f"[pid {pid:>5}] "}[pid_style]
    ts = draw(timestamps)
    if ts:
        prefix += ts + " "
    name, args = draw(names), draw(args_text)
    want = dict.fromkeys(c for c in _strace.RECORD_COLUMNS if c != "line_no")
    want.update(rec=shape, pid_text=None if pid_style == "none" else pid, ts_text=ts, name=name, args=args)
    if shape == "unfinished":
        return f"{prefix}{name}({args} <unfinished ...>", {**want, "args": args + " "}
    retval, deco = draw(retvals), draw(decorations)
    ret_raw = retval + (deco if deco and retval != "?" and not retval.startswith("-") else "")
    errname = draw(errnames)
    if errname:
        ret_raw += " " + errname
    note = draw(notes)
    if note:
        ret_raw += f" ({note})"
    dur = draw(durations)
    tail = f" <{dur}>" if dur else ""
    pad = " " * draw(st.integers(1, 8))
    want.update(ret_raw=ret_raw, retval=retval, errname=errname, dur=dur)
    if shape == "call":
        return f"{prefix}{name}({args}){pad}= {ret_raw}{tail}", want
    return f"{prefix}<... {name} resumed>{args}){pad}= {ret_raw}{tail}", want


def _via_grammar(line):
    records, rejects = _strace.grammar_records([line], [1])
    assert not rejects, rejects
    rec = records[0]
    rec.pop("line_no")
    return rec


@FAST
@given(strace_lines())
def test_generated_lines_parse_back_through_the_grammar(case):
    line, want = case
    assert _via_grammar(line) == want, line


@pytest.mark.skipif(_native.strace_framer() is None, reason="no C compiler to build the strace framer")
@FAST
@given(strace_lines())
def test_generated_lines_parse_back_through_the_c_framer(case):
    line, want = case
    data = (line + "\n").encode()
    framed, other, _n, _blank = _native.strace_framer()(data, 0, len(data), 1)
    assert other == b"", (line, other)
    rec = _strace.read_framed(framed).drop("line_no").row(0, named=True)
    assert rec == want, line


@FAST
@given(strace_lines())
def test_generated_lines_parse_back_through_the_polars_framer(case):
    line, want = case
    fast, rest = _strace.fast_records(pl.DataFrame({"line_no": [1], "text": [line]}))
    if fast.height:  # the regex path may leave a line to Lark, never frame it differently
        assert fast.drop("line_no").row(0, named=True) == want, line


SEEDS = [ln for p in sorted(DATA.glob("strace_*.txt")) if not p.name.endswith(".source.txt")
         for ln in p.read_text().splitlines()[:300]]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(mutations(SEEDS), min_size=1, max_size=20))
def test_fuzzed_lines_are_rejected_or_parsed_never_crash(tmp_path, lines):
    assert_only_documented_errors(tmp_path, lines, "strace")


@pytest.mark.skipif(_native.strace_framer() is None, reason="no C compiler to build the strace framer")
@settings(max_examples=300, deadline=None)
@given(st.lists(mutations(SEEDS), min_size=1, max_size=30))
def test_fuzzed_lines_c_framer_never_disagrees_with_grammar(lines):
    lines = [ln.replace("\r", "") for ln in lines]
    records, rejects = _strace.grammar_records(lines, range(1, len(lines) + 1))
    grammar = {r["line_no"]: r for r in records}
    rejected = {r[0] for r in rejects}
    data = "".join(ln + "\n" for ln in lines).encode()
    framed, _other, _n, _blank = _native.strace_framer()(data, 0, len(data), 1)
    for rec in _strace.read_framed(framed).iter_rows(named=True):
        n = rec["line_no"]
        assert n not in rejected, lines[n - 1]
        assert rec == grammar[n], lines[n - 1]
