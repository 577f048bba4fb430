"""`syspage parse -o` writes a one-file strace trace's events as they come (parse.parse_to_file,
issue 3's peak RSS target): each finished piece goes to a temporary Parquet file, the calls
resumed blocks later and the thread groups are applied when the pieces are read back, and the
pieces are concatenated into the output. The files must be exactly what parse_file + write
give (rows, types, order, metadata), whatever the blocks."""
from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import syspage.parse as parse
from conftest import DATA
from syspage.cli import main
from syspage.errors import ParseError
from syspage.parse import _strace
from parse_harness import late_resumption_lines

STRACE_TRACES = sorted(p for p in DATA.glob("strace_*") if not p.name.endswith(".source.txt"))
ONE_BLOCK = 1 << 30
TABLES = ("", ".summary", ".rejects")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYSPAGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def spills(monkeypatch):
    """The number of assemblers told to spill their rows to disk (the streamed path was taken)."""
    calls = []
    original = _strace.Assembler.spill_to

    def spill_to(self, directory):
        calls.append(directory)
        return original(self, directory)

    monkeypatch.setattr(_strace.Assembler, "spill_to", spill_to)
    return calls


def _metadata(path):
    meta = pl.read_parquet_metadata(path)
    meta.pop("ARROW:schema", None)
    return meta


def _assert_same_files(a, b):
    for suffix in TABLES:
        fa, fb = a.with_name(a.stem + suffix + ".parquet"), b.with_name(b.stem + suffix + ".parquet")
        assert_frame_equal(pl.read_parquet(fa), pl.read_parquet(fb))
        assert _metadata(fa) == _metadata(fb)


def _in_memory(monkeypatch, path, dest):
    """Today's reference: the whole trace in one block, parsed in memory, then written."""
    monkeypatch.setattr(parse, "BLOCK_BYTES", ONE_BLOCK)
    result = parse.parse_file(path, cache=False, date="2026-11-28")
    parse.write(result, dest)
    return result


def _late_resumptions(tmp_path):
    """Calls resumed many blocks later: a futex across the whole trace, a clone(CLONE_THREAD)
    whose return (and so thread 4's group) comes after thread 4's own calls, a read whose
    thread makes another call first (both halves stay incomplete), a midnight wrap."""
    lines = late_resumption_lines()
    path = tmp_path / "late.strace.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, len(lines)


@pytest.mark.parametrize("block_bytes", [40, 333, 2000])
def test_streamed_file_equals_the_in_memory_parse(monkeypatch, tmp_path, spills, block_bytes):
    path, n_lines = _late_resumptions(tmp_path)
    whole = _in_memory(monkeypatch, path, tmp_path / "memory" / "events.parquet")
    monkeypatch.setattr(parse, "BLOCK_BYTES", block_bytes)
    out = tmp_path / "streamed" / "events.parquet"
    written = parse.parse_to_file(path, out, cache=False, date="2026-11-28")
    assert len(spills) == 1
    _assert_same_files(out, tmp_path / "memory" / "events.parquet")
    assert (written.events, written.incomplete) == (whole.events.height, int(whole.events["incomplete"].sum()))
    # the late halves were applied to the rows written blocks before them
    ev = pl.read_parquet(out)
    futex = ev.filter(pl.col("syscall") == "futex").row(0, named=True)
    assert (futex["line_no"], futex["line_no_end"], futex["ret"], futex["incomplete"]) == (1, n_lines, 0, False)
    clone = ev.filter(pl.col("syscall") == "clone").row(0, named=True)
    assert (clone["ret"], clone["line_no_end"], clone["incomplete"]) == (4, 86, False)
    assert ev.filter(pl.col("tid") == 4)["pid"].unique().to_list() == [3]
    # nothing left beside the three files (the pieces were in a temporary directory)
    assert sorted(p.name for p in out.parent.iterdir()) == ["events.parquet", "events.rejects.parquet",
                                                            "events.summary.parquet"]


@pytest.mark.parametrize("path", STRACE_TRACES, ids=lambda p: p.name)
def test_every_strace_trace_streams_to_the_same_file(monkeypatch, tmp_path, spills, path):
    _in_memory(monkeypatch, path, tmp_path / "memory" / "events.parquet")
    monkeypatch.setattr(parse, "BLOCK_BYTES", 8192)
    out = tmp_path / "streamed" / "events.parquet"
    parse.parse_to_file(path, out, cache=False, date="2026-11-28")
    assert len(spills) == (0 if path.is_dir() else 1)   # strace -ff files are merged in memory
    _assert_same_files(out, tmp_path / "memory" / "events.parquet")


def test_the_cli_streams_and_its_cache_gives_the_same_file(monkeypatch, tmp_path, spills, capsys):
    path, _ = _late_resumptions(tmp_path)
    _in_memory(monkeypatch, path, tmp_path / "memory" / "events.parquet")
    monkeypatch.setattr(parse, "BLOCK_BYTES", 333)
    first, second = tmp_path / "a" / "events.parquet", tmp_path / "b" / "events.parquet"
    assert main(["parse", str(path), "-o", str(first), "--date", "2026-11-28"]) == 0
    assert main(["parse", str(path), "-o", str(second), "--date", "2026-11-28"]) == 0
    assert len(spills) == 1   # the second came from the cache
    said = capsys.readouterr()
    said = said.out + said.err
    assert said.count("2 incomplete calls") == 2 and said.count("(cached)") == 1
    _assert_same_files(first, tmp_path / "memory" / "events.parquet")
    _assert_same_files(second, tmp_path / "memory" / "events.parquet")


def test_strict_writes_nothing(monkeypatch, tmp_path):
    path = tmp_path / "t.strace.txt"
    path.write_text("1 getpid() = 1\nthis is not strace\n1 getppid() = 0\n")
    monkeypatch.setattr(parse, "BLOCK_BYTES", 20)
    out = tmp_path / "out" / "events.parquet"
    with pytest.raises(ParseError, match="--strict"):
        parse.parse_to_file(path, out, strict=True, cache=False)
    assert list(out.parent.iterdir()) == []
    written = parse.parse_to_file(path, out, cache=False)
    assert (written.events, written.rejects["line_no"].to_list()) == (2, [2])
    assert pl.read_parquet(out)["syscall"].to_list() == ["getpid", "getppid"]
