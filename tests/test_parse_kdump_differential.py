"""kdump: every fast path gives exactly what the Lark grammar (the parser of record) gives.

Line by line over every line of every trace in tests/data and ../shared/traces (not only the kdump
files: prose, strace and truss lines must be rejected with the grammar's reason too), over
mutated kdump lines, and file by file: FORMAT.parse with its fast paths equals FORMAT.parse with
``grammar_only`` (rows and rejects).
"""
from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from syspage.parse._base import ParseContext
from syspage.parse._kdump import FORMAT, grammar_line, read_line

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"


def _texts(directory: Path, pattern: str) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(pattern) if not p.name.endswith(".source.txt"))


ALL_FILES = _texts(DATA, "*.txt") + _texts(SHARED, "*.txt")
KDUMP_FILES = _texts(DATA, "kdump_*.txt") + _texts(SHARED, "kdump_*.txt")


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def test_fast_paths_equal_grammar_on_every_corpus_line():
    lines = [line for p in ALL_FILES for line in _lines(p) if line.strip()]
    assert len(lines) > 5000
    for line in lines:
        assert read_line(line) == grammar_line(line), line


def test_fast_paths_equal_grammar_on_mutated_lines():
    rng = random.Random(20261128)
    kdump = [line for p in KDUMP_FILES for line in _lines(p) if line.strip()]
    for _ in range(6000):
        line = rng.choice(kdump)
        i = rng.randrange(len(line) + 1)
        op = rng.randrange(4)
        if op == 0:
            line = line[:i]
        elif op == 1:
            line = line[:i] + rng.choice(' \t"()<>/:0x[]=aZ\x00é') + line[i:]
        elif op == 2:
            line = line[:i] + line[i + 1:]
        else:
            line = " " * rng.randrange(4) + line.lstrip()
        if line.strip():
            assert read_line(line) == grammar_line(line), line


@pytest.mark.parametrize("path", KDUMP_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_file_rows_equal_grammar_only(path):
    lines = _lines(path)
    fast = FORMAT.parse(lines, ParseContext(source_file=path.name))
    lark = FORMAT.parse(lines, ParseContext(source_file=path.name, grammar_only=True))
    assert fast.events.height > 0
    assert_frame_equal(fast.events, lark.events)
    assert fast.rejects == lark.rejects
    assert (fast.ignored, fast.os) == (lark.ignored, lark.os)
