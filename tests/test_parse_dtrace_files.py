"""dtrace: every dtrace file of tests/data (copied from ../shared/traces) through the driver, and
the whole-file differential: the fast path on and off give the same tables."""
from __future__ import annotations

from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from syspage import schema
from syspage.parse import parse_file
from syspage.parse._base import ParseContext
from syspage.parse._dtrace import FORMAT

DATA = Path(__file__).parent / "data"
FILES = sorted(p for p in DATA.glob("dtrace_*.txt") if not p.name.endswith(".source.txt"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_through_the_driver(path):
    res = parse_file(path, format="dtrace", cache=False)
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


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_fast_path_and_grammar_give_the_same_tables(path):
    lines = path.read_text().splitlines()
    fast = FORMAT.parse(lines, ParseContext(source_file="t"))
    slow = FORMAT.parse(lines, ParseContext(source_file="t", grammar_only=True))
    assert_frame_equal(schema.EVENTS.conform(fast.events), schema.EVENTS.conform(slow.events))
    assert fast.rejects == slow.rejects and fast.ignored == slow.ignored and fast.os == slow.os
    if fast.summary.width or slow.summary.width:
        assert_frame_equal(fast.summary, slow.summary)


def test_format_bpftrace_as_collect_names_it(tmp_path):
    # collect's meta.json says trace.format "bpftrace" for bpftrace runs (docs/collect.md)
    import json
    from syspage.parse import _formats
    assert "bpftrace" in _formats.names()
    trace = tmp_path / "trace.sp1.txt"
    trace.write_text("sp1-clock\tboot\nsp1\t5\t7\t7\tsh\tgetppid\t1\t0\t900\t0x0,0x0,0x0,0x0,0x0,0x0\n")
    res = parse_file(trace, format="bpftrace", cache=False)
    assert res.events.select("source_format", "os", "syscall", "page_class").rows() == [
        ("bpftrace", "linux", "getppid", "proc_ro")]
