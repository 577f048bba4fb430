"""kdump, truss, DTrace and dtruss: every fixture of tests/data (copied from ../shared/traces)
through the driver, and the whole-file differential: the fast path on and off give the same
tables. One parametrized file for the four formats (they share the contract in parse/_base.py)."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from syspage import schema
from syspage.parse import parse_file
from syspage.parse._base import ParseContext

DATA = Path(__file__).parent / "data"
FORMATS = ("kdump", "truss", "dtrace", "dtruss")
FILES = [(fmt, p) for fmt in FORMATS
         for p in sorted(DATA.glob(f"{fmt}_*.txt")) if not p.name.endswith(".source.txt")]


def _ids(case):
    return case[1].name if isinstance(case, tuple) else str(case)


@pytest.mark.parametrize("case", FILES, ids=_ids)
def test_file_through_the_driver(case):
    fmt, path = case
    res = parse_file(path, format=fmt, cache=False)
    schema.EVENTS.validate(res.events)
    schema.SUMMARY.validate(res.summary)
    assert res.events.height + res.summary.height > 0
    assert (res.rejects["reason"].str.len_chars() > 0).all()        # every reject says why
    covered = set()
    for a, b in res.events.select("line_no", "line_no_end").iter_rows():
        covered.update(range(a, b + 1))
    covered.update(res.summary["line_no"].to_list())
    covered.update(res.rejects["line_no"].to_list())
    assert len(covered) + res.lines_ignored >= res.lines_total, "a line is neither a row, a reject nor ignored"


@pytest.mark.parametrize("case", FILES, ids=_ids)
def test_fast_path_and_grammar_give_the_same_tables(case):
    fmt, path = case
    module = importlib.import_module(f"syspage.parse._{fmt}")
    lines = path.read_text().splitlines()
    fast = module.FORMAT.parse(lines, ParseContext(source_file="t"))
    slow = module.FORMAT.parse(lines, ParseContext(source_file="t", grammar_only=True))
    assert_frame_equal(schema.EVENTS.conform(fast.events), schema.EVENTS.conform(slow.events))
    assert fast.rejects == slow.rejects and fast.ignored == slow.ignored and fast.os == slow.os
    if fast.summary.width or slow.summary.width:
        assert_frame_equal(fast.summary, slow.summary)


def test_cli_writes_the_tables_and_strict_fails_on_prose(tmp_path, run_cli):
    src = DATA / "kdump_openbsd_cY81x-attended-w.txt"
    out = tmp_path / "events.parquet"
    done = run_cli("parse", src, "-o", out, "--no-cache")
    assert done.returncode == 0, done.stderr
    events = schema.EVENTS.read(out)
    assert events.height == 146 and events["os"].unique().to_list() == ["openbsd"]
    rejects = schema.REJECTS.read(tmp_path / "events.rejects.parquet")
    assert rejects["line_no"].to_list() == [1]                     # the "foo# kdump -f ..." prompt
    strict = run_cli("parse", src, "-o", tmp_path / "s.parquet", "--strict", "--no-cache")
    assert strict.returncode == 2 and ":1" in strict.stderr + strict.stdout


# Auto-detection must tell the formats apart: every fixture of these four formats, and every
# strace fixture, is taken for its own format by the driver's sniffing.
DETECT = sorted(p for p in DATA.glob("*.txt") if not p.name.endswith(".source.txt")
                and p.name.split("_")[0] in ("kdump", "truss", "dtrace", "dtruss", "strace"))


@pytest.mark.parametrize("path", DETECT, ids=lambda p: p.name)
def test_auto_detection_picks_the_right_format(path):
    from syspage.parse import detect_format
    assert detect_format(path) == path.name.split("_")[0]


def test_format_bpftrace_as_collect_names_it(tmp_path):
    # collect's meta.json says trace.format "bpftrace" for bpftrace runs (docs/collect.md)
    from syspage.parse import _formats
    assert "bpftrace" in _formats.names()
    trace = tmp_path / "trace.sp1.txt"
    trace.write_text("sp1-clock\tboot\nsp1\t5\t7\t7\tsh\tgetppid\t1\t0\t900\t0x0,0x0,0x0,0x0,0x0,0x0\n")
    res = parse_file(trace, format="bpftrace", cache=False)
    assert res.events.select("source_format", "os", "syscall", "page_class").rows() == [
        ("bpftrace", "linux", "getppid", "proc_ro")]
