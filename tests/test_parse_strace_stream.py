"""strace is parsed as a stream (issue 3's memory target): the file is read, framed and
assembled block by block (parse/__init__.py BLOCK_BYTES, parse/_strace.py Assembler). The rows
must not depend on where the blocks are cut: every strace trace of the corpus parses to the same
tables with blocks of a few lines (unfinished calls resumed blocks later, clocks and -k stack
lines carried across) as in one block; and the reader hands over every byte exactly once."""
from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import syspage.parse as parse
from conftest import DATA
from syspage.errors import InputError
from syspage.parse import _reader
from parse_harness import late_resumption_lines

STRACE_TRACES = sorted(p for p in DATA.glob("strace_*") if not p.name.endswith(".source.txt"))
ONE_BLOCK = 1 << 30


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYSPAGE_CACHE", str(tmp_path / "cache"))


def _parse_in_blocks(monkeypatch, path, block_bytes, **options):
    monkeypatch.setattr(parse, "BLOCK_BYTES", block_bytes)
    return parse.parse_file(path, cache=False, date="2026-11-28", **options)


def _assert_same(a: parse.ParseResult, b: parse.ParseResult) -> None:
    assert_frame_equal(a.events, b.events)
    assert_frame_equal(a.summary, b.summary)
    assert_frame_equal(a.rejects, b.rejects)
    assert (a.lines_total, a.lines_ignored) == (b.lines_total, b.lines_ignored)


@pytest.mark.parametrize("path", STRACE_TRACES, ids=lambda p: p.name)
@pytest.mark.parametrize("block_bytes", [400, 8192])   # about 3 and 60 lines a block
def test_rows_do_not_depend_on_the_blocks(monkeypatch, path, block_bytes):
    whole = _parse_in_blocks(monkeypatch, path, ONE_BLOCK)
    assert whole.events.height or whole.summary.height
    _assert_same(_parse_in_blocks(monkeypatch, path, block_bytes), whole)


def test_grammar_only_in_blocks(monkeypatch):
    """The Lark-only path (the differential tests' and the benchmark's baseline) streams too."""
    path = DATA / "strace_linux_syspage-f-tt-T-y.txt"
    whole = _parse_in_blocks(monkeypatch, path, ONE_BLOCK, grammar_only=True)
    _assert_same(_parse_in_blocks(monkeypatch, path, 2000, grammar_only=True), whole)
    _assert_same(whole, _parse_in_blocks(monkeypatch, path, ONE_BLOCK))


def test_pairs_across_blocks(monkeypatch, tmp_path):
    """Unfinished calls resumed many blocks later, a thread whose next call is complete (its
    half stays incomplete), clock wrap at midnight and -k frames at block starts."""
    lines = late_resumption_lines()
    path = tmp_path / "t.strace.txt"
    path.write_text("\n".join(lines) + "\n")
    whole = _parse_in_blocks(monkeypatch, path, ONE_BLOCK)
    for block in (40, 100, 333):
        _assert_same(_parse_in_blocks(monkeypatch, path, block), whole)
    ev = whole.events
    futex = ev.filter(pl.col("syscall") == "futex").row(0, named=True)
    assert (futex["line_no"], futex["line_no_end"], futex["ret"], futex["incomplete"]) == (1, len(lines), 0, False)
    read = ev.filter(pl.col("syscall") == "read").sort("line_no")
    assert read["incomplete"].to_list() == [True, True] and read["line_no_end"].to_list() == [2, 44]
    clone = ev.filter(pl.col("syscall") == "clone").row(0, named=True)
    assert (clone["ret"], clone["line_no_end"], clone["incomplete"]) == (4, 86, False)
    # clone with CLONE_THREAD: 4 is a thread of 3's group, also for its rows above the clone's return
    assert ev.filter(pl.col("tid") == 4)["pid"].unique().to_list() == [3]
    assert ev.filter(pl.col("kind") == "info")["tid"].to_list() == [3]   # the frame of the clone above it
    assert clone["ts_ns"] - futex["ts_ns"] == 2_100_000_000   # 23:59:58.0 -> 00:00:00.1 the next day


def test_call_cut_by_an_attach_message_at_a_block_end(monkeypatch, tmp_path):
    """strace on stderr prints "strace: Process N attached" inside the clone line and the rest
    of that line (" => {parent_tid=[N]}, 88) = N") on the next one: a block ending between
    the two still joins them (tests/data/strace_linux_syspage-stderr-f-t-xx.txt lines 590-640)."""
    src = (DATA / "strace_linux_syspage-stderr-f-t-xx.txt").read_bytes().split(b"\n")
    text = b"\n".join(src[589:640]) + b"\n"
    path = tmp_path / "t.strace.txt"
    path.write_bytes(text)
    whole = _parse_in_blocks(monkeypatch, path, ONE_BLOCK)
    clone = whole.events.filter(pl.col("syscall") == "clone3").sort("line_no").row(0, named=True)
    assert (clone["line_no"], clone["line_no_end"], clone["ret"]) == (11, 12, 16909)
    cut = text.index(b" => {parent_tid") # the first block ends with the cut clone3 line
    for block in (cut, cut + 40):
        _assert_same(_parse_in_blocks(monkeypatch, path, block), whole)


def test_blocks_cover_the_file_once(tmp_path):
    text = b"a\n" + b"b" * 5000 + b"\n\nc\nlast line without newline"
    path = tmp_path / "t.txt"
    path.write_bytes(text)
    f = _reader.read_file(path)
    assert (f.line_count, f.terminated) == (5, False)
    for size in (1, 3, 100, 1 << 20):
        blocks = list(f.blocks(size))
        assert b"".join(b for b, _ in blocks) == text
        assert all(b.endswith(b"\n") for b, _ in blocks[:-1])
        assert [first for _, first in blocks] == [1 + b"".join(b for b, _ in blocks[:i]).count(b"\n")
                                                  for i in range(len(blocks))]
    assert f.head(2) == ["a", "b" * 5000]
    assert f.text is None   # a plain file's text stays on disk until someone asks for all of it
    assert f.data == text


def test_checks_in_blocks_name_the_line(tmp_path, monkeypatch):
    monkeypatch.setattr(_reader, "CHECK_BLOCK", 4)
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"one\ntwo\nthr\x00ee\n")
    with pytest.raises(InputError, match="NUL byte on line 3"):
        _reader.read_file(nul)
    bad = tmp_path / "bad.txt"   # a 2-byte UTF-8 character cut by the block edge, then a bad byte
    bad.write_bytes("ab\u00e9\n".encode() + b"ok\n\xff\n")
    with pytest.raises(InputError, match=r"line 3: not UTF-8 text \(byte 0xff at column 1\)"):
        _reader.read_file(bad)
    good = tmp_path / "good.txt"
    good.write_bytes("ab\u00e9\u00e9\u00e9\n".encode())
    f = _reader.read_file(good)
    assert (f.line_count, f.terminated) == (1, True)
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b" \n\n\t\n" * 3)
    with pytest.raises(InputError, match="empty file"):
        _reader.read_file(blank)


def test_progress_follows_the_blocks(monkeypatch):
    path = DATA / "strace_linux_syspage-f-tt-T-y.txt"
    calls = []
    monkeypatch.setattr(parse, "BLOCK_BYTES", 4096)
    r = parse.parse_file(path, cache=False, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 10
    assert all(total == r.lines_total for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1] == (r.lines_total, r.lines_total)


def test_gzip_is_read_as_a_stream_too(tmp_path):
    """A gzip trace is checked, hashed and parsed as it decompresses (twice, never held whole):
    same text as decompressing it at once, for several members, a cut stream and trailing
    garbage; a block never holds much more than its size even when one compressed read
    inflates to many blocks."""
    import gzip

    real = (DATA.parent.parent / "data" / "linux" / "redis-benchmark" / "trace.strace.txt.gz").read_bytes()
    text = gzip.decompress(real)
    cases = {
        "members": (gzip.compress(text[:100_000]) + gzip.compress(text[100_000:]), text, None),
        "garbage": (real + b"trailing garbage", text, None),
        "cut": (real[:30_000], None, "cut"),
    }
    for name, (blob, expected, cut) in cases.items():
        path = tmp_path / f"{name}.gz"
        path.write_bytes(blob)
        f = _reader.read_file(path)
        assert f.text is None
        whole = f.data   # decompressed at once (_gunzip), as the non-streaming formats read it
        if expected is not None:
            assert whole == expected and f.cut_tail is None
        else:
            assert whole.endswith(b"\n") and f.cut_tail and len(whole) < len(text)
        f.release()
        for size in (4096, 1 << 16):
            blocks = list(f.blocks(size))
            assert b"".join(b for b, _ in blocks) == whole, (name, size)
            assert max(len(b) for b, _ in blocks) < size + 4096   # a line at most past the size
        assert f.sha256 == __import__("hashlib").sha256(whole).hexdigest()
