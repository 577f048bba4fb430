"""The fast paths are proven equal to the grammar: every line of the strace test corpus goes
through the C framer, the Polars regex framer and Lark; every record a fast path produces must
be the grammar's record for that line, column for column, and a fast path must never accept a
line the grammar rejects."""
from __future__ import annotations

import functools
import gzip
import itertools

import polars as pl
import pytest

from conftest import DATA, REPO
from syspage.parse import _native, _strace

SHARED = REPO.parent / "shared" / "traces"
BUNDLED_LINES = 20_000  # per bundled data/linux trace (the whole files would only repeat shapes)


def _corpus() -> list[tuple[str, list[str]]]:
    files = sorted(DATA.glob("strace_*.txt")) + sorted((DATA / "strace_linux_syspage-ff-ttt-T").glob("trace.*"))
    if SHARED.is_dir():
        files += [p for p in sorted(SHARED.glob("strace_*.txt")) if not p.name.endswith(".source.txt")]
    corpus = [(p.name, p.read_text().splitlines()) for p in files if not p.name.endswith(".source.txt")]
    for gz in sorted((REPO / "data" / "linux").glob("*/trace.strace.txt.gz")):
        with gzip.open(gz, "rt") as fh:
            corpus.append((f"{gz.parent.name}/{gz.name}", list(itertools.islice((ln.rstrip("\n") for ln in fh), BUNDLED_LINES))))
    return corpus


CORPUS = _corpus()


@functools.cache
def _grammar_of(name: str) -> tuple[dict[int, dict], set[int]]:
    return _grammar(dict(CORPUS)[name])


def _grammar(lines: list[str]) -> tuple[dict[int, dict], set[int]]:
    records, rejects = _strace.grammar_records(lines, range(1, len(lines) + 1))
    return {r["line_no"]: r for r in records}, {r[0] for r in rejects}


def _compare(fast: pl.DataFrame, grammar: dict[int, dict], rejected: set[int], name: str, lines: list[str]) -> None:
    for rec in fast.iter_rows(named=True):
        n = rec["line_no"]
        assert n not in rejected, f"{name}:{n}: a fast path accepts a line the grammar rejects: {lines[n - 1][:200]!r}"
        want = grammar[n]
        diff = {k: (rec[k], want[k]) for k in _strace.RECORD_COLUMNS if rec[k] != want[k]}
        assert not diff, f"{name}:{n}: fast path differs from the grammar {diff}: {lines[n - 1][:200]!r}"


pytestmark = pytest.mark.slow


@pytest.mark.skipif(_native.strace_framer() is None, reason="no C compiler to build the strace framer")
@pytest.mark.parametrize("name, lines", CORPUS, ids=[c[0] for c in CORPUS])
def test_c_framer_equals_grammar(name, lines):
    grammar, rejected = _grammar_of(name)
    data = "".join(ln + "\n" for ln in lines).encode()
    framed, _other, count, _blank = _native.strace_framer()(data, 0, len(data), 1)
    assert count == len(lines)
    fast = _strace.read_framed(framed)
    _compare(fast, grammar, rejected, name, lines)
    # the framer should take the bulk of a real trace, or it is not a fast path
    # ("<detached ...>" endings, at most one per thread at the end of a -p trace, are left to Lark)
    calls = sum(1 for n, r in grammar.items() if r["rec"] in ("call", "unfinished", "resumed")
                and not lines[n - 1].rstrip().endswith("<detached ...>"))
    assert fast.height >= 0.95 * calls, (fast.height, calls)


@pytest.mark.parametrize("name, lines", CORPUS, ids=[c[0] for c in CORPUS])
def test_polars_regex_framer_equals_grammar(name, lines):
    grammar, rejected = _grammar_of(name)
    frame = pl.DataFrame({"text": lines}).with_row_index("line_no", offset=1).with_columns(pl.col("line_no").cast(pl.Int64))
    fast, _rest = _strace.fast_records(frame)
    _compare(fast, grammar, rejected, name, lines)


def test_corpus_is_big_and_varied():
    total = sum(len(lines) for _, lines in CORPUS)
    assert total > 50_000
    assert any("<unfinished ...>" in ln for _, lines in CORPUS for ln in lines)
