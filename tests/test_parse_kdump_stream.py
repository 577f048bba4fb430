"""`syspage parse -o` joins a one-file kdump trace block by block and writes its rows as they come
(parse/_kdump_stream.py SpillingAssembler, issue 3's peak RSS target): what crosses a block (a thread's
open CALL waiting for its RET, that call's SCTL, a record's data lines, the -R sum) is carried
into the next block, and the rows written before are fixed when read back. The files must be
exactly what parse_file + write give, whatever the blocks: checked here with blocks of a few
lines over every kdump trace of tests/data and a trace built to cross blocks everywhere."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import syspage.parse as parse
from syspage.parse import _kdump_detect, _kdump_stream
from syspage.parse._base import CUT_OFF

DATA = Path(__file__).parent / "data"
KDUMP_FILES = sorted(p for p in DATA.glob("kdump_*.txt") if not p.name.endswith(".source.txt"))
TABLES = ("", ".summary", ".rejects")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYSPAGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def blocks(monkeypatch):
    """The blocks the spilling assembler joined (the streamed path was taken)."""
    seen = []
    original = _kdump_stream.SpillingAssembler._block

    def block(self, records, rejects):
        seen.append(records.height)
        return original(self, records, rejects)

    monkeypatch.setattr(_kdump_stream.SpillingAssembler, "_block", block)
    return seen


def _metadata(path):
    meta = pl.read_parquet_metadata(path)
    meta.pop("ARROW:schema", None)
    return meta


def _same_files(a: Path, b: Path) -> None:
    for suffix in TABLES:
        fa, fb = a.with_name(a.stem + suffix + ".parquet"), b.with_name(b.stem + suffix + ".parquet")
        assert_frame_equal(pl.read_parquet(fa), pl.read_parquet(fb))
        assert _metadata(fa) == _metadata(fb)


def _compare(monkeypatch, tmp_path, trace: Path, block_bytes: int) -> pl.DataFrame:
    """parse_file + write (in memory) against parse_to_file with blocks of BLOCK_BYTES."""
    held = tmp_path / "held" / "events.parquet"
    held.parent.mkdir()
    parse.write(parse.parse_file(trace, format="kdump", cache=False), held)
    monkeypatch.setattr(parse, "BLOCK_BYTES", block_bytes)
    streamed = tmp_path / "streamed" / "events.parquet"
    written = parse.parse_to_file(trace, streamed, format="kdump", cache=False)
    _same_files(held, streamed)
    events = pl.read_parquet(streamed)
    assert written.events == events.height
    assert not list(streamed.parent.glob(".events.parquet.*")), "the spilled pieces were not removed"
    return events


@pytest.mark.parametrize("block_bytes", [40, 700])
@pytest.mark.parametrize("path", KDUMP_FILES, ids=lambda p: p.name)
def test_every_kdump_trace_same_files_with_small_blocks(monkeypatch, tmp_path, blocks, path, block_bytes):
    # the OS and the clock are decided on the first DETECT_RECORDS records (in both paths): a few
    # here, so that the blocks after them are joined one by one
    monkeypatch.setattr(_kdump_detect, "DETECT_RECORDS", 3)
    _compare(monkeypatch, tmp_path, path, block_bytes)
    assert len(blocks) > 1 or path.stat().st_size <= block_bytes * 2


def hdr(pid, comm, rtype, body, tid=None, stamps=()):
    """kdump.c dumpheader()'s "%6jd %6jd %-8.*s " (-H), "%jd.%06ld " per timestamp, "%s  " type."""
    h = f"{pid:6d} " + (f"{tid:6d} " if tid is not None else "") + f"{comm:<8} "
    return h + "".join(f"{s} " for s in stamps) + f"{rtype:<4}  " + body


def _crossing_trace(tmp_path: Path) -> Path:
    """-H -R records where everything crosses blocks: a __sysctl open over hundreds of lines whose
    first SCTL comes early and a second later (the first names it), a thread blocked in read whose
    RET comes at the end, hex and quoted data lines spread over blocks, a data line after a RET (an
    orphan, rejected), prose in the middle, and a last line cut off mid-record."""
    lines = [hdr(5, "d", "CALL", "__sysctl(0x7fffffffe4a0,0x2,0x7fffffffe4bc,0x7fffffffe4b0,0,0)", 101, ["0.000010"]),
             hdr(5, "d", "CALL", "read(0x3,0x7fffffffe000,0x400)", 102, ["0.000001"]),
             hdr(5, "d", "SCTL", '"kern.hostname"', 101, ["0.000002"])]
    for i in range(60):
        lines += [hdr(5, "d", "CALL", "getpid", 103, ["0.000003"]),
                  hdr(5, "d", "RET", "getpid 5/0x5", 103, ["0.000004"]),
                  hdr(5, "d", "CALL", "write(0x1,0x800a00000,0x20)", 103, ["0.000001"]),
                  hdr(5, "d", "GIO", "fd 1 wrote 32 bytes", 103, ["0.000001"]),
                  "       0x0000 7f45 4c46 0201 0109 0000 0000 0000 0000  |.ELF............|",
                  "       0x0010 7f45 4c46 0201 0109 0000 0000 0000 0000  |.ELF............|",
                  hdr(5, "d", "RET", "write 32/0x20", 103, ["0.000002"])]
        if i == 20:
            lines += [hdr(5, "d", "SCTL", '"kern.ostype"', 101, ["0.000001"]),
                      "       0x0020 7f45 4c46 0201 0109 0000 0000 0000 0000  |.ELF............|",
                      "this is prose pasted into the trace"]
        if i == 30:
            lines += [hdr(5, "d", "GIO", "fd 1 wrote 12 bytes", 103, ["0.000001"]),
                      '       "hello',
                      '       world',
                      '       again"',
                      hdr(5, "d", "RET", "__sysctl 0", 101, ["0.000005"])]
    lines += [hdr(5, "d", "RET", "read 1024/0x400", 102, ["0.000007"]),
              hdr(5, "d", "CALL", "getppid", 103, ["0.000003"])[:-len("getppid")]]   # cut off
    path = tmp_path / "crossing.kdump.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("block_bytes", [60, 333, 4096])
def test_records_crossing_blocks(monkeypatch, tmp_path, blocks, block_bytes):
    monkeypatch.setattr(_kdump_detect, "DETECT_RECORDS", 3)
    trace = _crossing_trace(tmp_path)
    events = _compare(monkeypatch, tmp_path, trace, block_bytes)
    assert len(blocks) > 3
    lines = trace.read_text().splitlines()
    # the __sysctl of line 1: its first SCTL names it, its RET is hundreds of lines later
    ret_line = next(i for i, t in enumerate(lines, 1) if "RET   __sysctl 0" in t)
    sysctl = events.filter(pl.col("line_no") == 1).row(0, named=True)
    assert (sysctl["sysctl_name"], sysctl["line_no_end"], sysctl["incomplete"]) == ("kern.hostname", ret_line, False)
    # -R: every record's delta summed; the duration is the sum of the deltas after the CALL
    stamps = [float(t.split()[3]) for t in lines if t.startswith("     5 ")]
    stamps_ns = [round(s * 1e9) for s in stamps]
    ret_index = [i for i, t in enumerate(lines) if t.startswith("     5 ")].index(ret_line - 1)
    assert sysctl["ts_ns"] == stamps_ns[0]
    assert sysctl["duration_ns"] == sum(stamps_ns[1:ret_index + 1])
    read = events.filter(pl.col("line_no") == 2).row(0, named=True)
    assert (read["ret"], read["line_no_end"], read["incomplete"]) == (1024, len(lines) - 1, False)
    # the quoted GIO's data lines, the middle one without its quote
    gio = next(i for i, t in enumerate(lines, 1) if "wrote 12 bytes" in t)
    assert events.filter(pl.col("line_no") == gio)["line_no_end"].item() == gio + 3
    rejects = pl.read_parquet(trace.parent / "streamed" / "events.rejects.parquet")
    reasons = dict(zip(rejects["line_no"].to_list(), rejects["reason"].to_list()))
    prose = next(i for i, t in enumerate(lines, 1) if t.startswith("this is prose"))
    assert prose in reasons and prose - 1 in reasons   # the orphan data line before it too
    assert reasons[len(lines)] == CUT_OFF


def test_rejects_are_spilled_block_by_block_not_held(monkeypatch, tmp_path, blocks):
    """Prose pasted around a trace is a fifth of the benchmark's lines: held, its rejects made the
    peak RSS grow with the trace. Each block's rejects go to disk when the next block comes, and
    come back, complete and in line order, only once the rows are written."""
    monkeypatch.setattr(_kdump_detect, "DETECT_RECORDS", 3)
    spilled = []
    original = _kdump_stream.SpillingAssembler._keep_rejects

    def keep(self, block):
        original(self, block)
        spilled.append(len(self.reject_parts))

    monkeypatch.setattr(_kdump_stream.SpillingAssembler, "_keep_rejects", keep)
    trace = DATA / "kdump_multi-os_linuxthor-uul_README.md.txt"   # prose between the samples
    _compare(monkeypatch, tmp_path, trace, 700)
    assert spilled and spilled[-1] == len(spilled) - 1 > 2   # all but the latest block's on disk
    rejects = pl.read_parquet(tmp_path / "streamed" / "events.rejects.parquet")
    assert rejects["line_no"].is_sorted() and rejects.height > 10


def test_spilled_rejects_out_of_line_order_are_sorted(tmp_path):
    """Should a block ever reject a line before the previous block's last reject, the rejects are
    sorted as a whole (as assemble sorts them) instead of trusting the block order."""
    asm = _kdump_stream.SpillingAssembler(parse.ParseContext(source_file="t.txt"), tmp_path)
    frame = lambda rows: pl.DataFrame(rows, schema=_kdump_stream._REJECT_SCHEMA, orient="row")
    asm._keep_rejects(frame([(10, "b", "r"), (12, "c", "r")]))
    assert asm.rejects_in_order
    asm._keep_rejects(frame([(11, "a", "r"), (30, "d", "r")]))
    assert not asm.rejects_in_order and len(asm.reject_parts) == 1
    asm.last_line_no = 40
    out = asm.finish()
    assert out.rejects_frame.collect()["line_no"].to_list() == [10, 11, 12, 30]


def test_open_visdump_string_carried_into_the_next_block(monkeypatch, tmp_path, blocks):
    """A block that ends inside a quoted (visdump) GIO string: the next block's continuation lines
    that a pager turned from TAB into spaces frame as BAD, and only the carried "string still
    open" state makes them the GIO's data instead of rejects (_data_lines' stream state)."""
    monkeypatch.setattr(_kdump_detect, "DETECT_RECORDS", 1)
    head = [hdr(5, "d", "CALL", "write(0x1,0x800a00000,0xc)", 103, ["0.000001"]),
            hdr(5, "d", "GIO", "fd 1 wrote 12 bytes", 103, ["0.000001"]),
            '       "hello']
    tail = ['       world', '       again"', hdr(5, "d", "RET", "write 12/0xc", 103, ["0.000002"])]
    trace = tmp_path / "visdump.kdump.txt"
    trace.write_text("\n".join(head + tail) + "\n")
    first_block = len("\n".join(head) + "\n")   # the block ends right after the opening quote
    events = _compare(monkeypatch, tmp_path, trace, first_block)
    assert blocks[0] == 3 and len(blocks) == 2
    gio = events.filter(pl.col("line_no") == 2).row(0, named=True)
    assert gio["line_no_end"] == 5
    assert pl.read_parquet(tmp_path / "streamed" / "events.rejects.parquet").height == 0
