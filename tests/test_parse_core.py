"""The parse driver: input checks, format detection, RUNDIRs, -ff files, rejects, --strict,
the cache, chunked framing, the written files, and every real trace in the corpus."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

import syspage.parse as parse
from conftest import DATA, REPO
from parse_harness import assert_every_line_accounted, parse_text
from syspage.errors import InputError, ParseError
from syspage.schema import EVENTS, REJECTS, SUMMARY, read_metadata

SHARED = REPO.parent / "shared" / "traces"
STRACE_LINES = (
    "123 1795847430.362746 getpid()      = 123 <0.000004>\n"
    "123 1795847430.362800 openat(AT_FDCWD, \"/x\", O_RDONLY) = -1 ENOENT (No such file or directory) <0.000005>\n"
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYSPAGE_CACHE", str(tmp_path / "cache"))


# -- bad input: one line naming the file (and the line) --------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "empty file: no trace lines"),
    (b"\n  \n\t\n", "empty file: no trace lines"),
    (b"123 getpid() = 1\n\x00\x01\x02", "binary file, not trace text (NUL byte on line 2)"),
    (b"123 getpid() = 1\n123 getppid() = 1\nok \xff\xfe here\n", "line 3: not UTF-8 text (byte 0xff at column 4)"),
])
def test_unusable_input_is_one_line_error_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        parse.parse_file(path)
    assert str(err.value) == f"{path}: {message}"


def test_missing_file_and_corrupt_gzip(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        parse.parse_file(tmp_path / "nope.txt")
    bad = tmp_path / "t.txt.gz"
    bad.write_bytes(gzip.compress(STRACE_LINES.encode())[:20])
    with pytest.raises(InputError, match="cannot decompress gzip"):
        parse.parse_file(bad)


def test_gzip_cut_mid_stream_keeps_what_decompresses(tmp_path):
    """A real gzip trace cut at 30,000 bytes (head -c): the decompressed lines are parsed, the
    line the stream ends in is one reject naming it, and every call that ended before the cut
    reads as in the whole trace."""
    whole_gz = REPO / "data" / "linux" / "redis-benchmark" / "trace.strace.txt.gz"
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(whole_gz.read_bytes()[:30000])
    r = parse.parse_file(cut, cache=False)
    whole_lines = gzip.decompress(whole_gz.read_bytes()).decode().split("\n")
    assert r.format == "strace" and r.rejects.height == 1
    last = r.rejects.row(0, named=True)
    assert last["reason"] == "cut off mid-line (gzip stream ends early)"
    assert last["line_no"] == r.lines_total and r.lines_total > 3000
    assert whole_lines[last["line_no"] - 1].startswith(last["text"]) and whole_lines[last["line_no"] - 1] != last["text"]
    assert_every_line_accounted(r)
    whole = parse.parse_file(whole_gz, cache=False).events
    cols = ["line_no", "line_no_end", "tid", "syscall", "ret", "errno_name", "duration_ns"]
    done = r.events.filter(~pl.col("incomplete")).select(cols)
    assert done.height > 3000
    assert done.equals(whole.filter(pl.col("line_no") < last["line_no"]).filter(
        pl.col("line_no_end") < last["line_no"]).select(cols))


def test_cli_errors_exit_2_with_one_line(run_cli, tmp_path):
    path = tmp_path / "bin.txt"
    path.write_bytes(b"\x00\x01")
    res = run_cli("parse", path, "-o", tmp_path / "e.parquet")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"syspage: error: {path}: binary file, not trace text (NUL byte on line 1)"]


def test_prose_only_is_a_parse_error_not_a_crash(tmp_path):
    with pytest.raises(ParseError, match=r"trace.txt:1: nothing in this file reads as strace output"):
        parse_text(tmp_path, "Dear reader,\nthis is not a trace.\n", format="strace")


# -- detection and override -------------------------------------------------------------------

def test_detect_format_on_real_samples():
    assert parse.detect_format(DATA / "strace_linux_wperron-go-f-unfinished.txt") == "strace"
    assert parse.detect_format(DATA / "strace_linux_renlord-zoom-c-summary.txt") == "strace"
    assert parse.detect_format(DATA / "strace_linux_syspage-f-ttt-k-Xraw-head.txt") == "strace"
    assert parse.detect_format(DATA / "perf_trace_linux_syspage-threads.txt") == "perf_trace"
    assert parse.detect_format(DATA / "perf_trace_linux_syspage-threads-s.txt") == "perf_trace"


def test_format_override_and_unknown_format(tmp_path):
    with pytest.raises(ParseError, match="nothing in this file reads as perf_trace output"):
        parse_text(tmp_path, STRACE_LINES, format="perf_trace")
    with pytest.raises(InputError, match="unknown trace format"):
        parse_text(tmp_path, STRACE_LINES, format="ltrace")


def test_undetectable_text_says_give_format(tmp_path):
    with pytest.raises(InputError, match="cannot tell the trace format.*give --format"):
        parse_text(tmp_path, "hello\nworld\n")


# -- where a trace comes from ------------------------------------------------------------------

def test_gzip_and_rundir_with_meta(tmp_path):
    rundir = tmp_path / "run"
    rundir.mkdir()
    (rundir / "t.strace.txt.gz").write_bytes(gzip.compress(b"12:00:01.5 getpid() = 7\n23:59:59 getppid() = 1\n00:00:02 getuid() = 0\n"))
    (rundir / "meta.json").write_text(json.dumps({
        "format": "collect-meta/1", "os": "linux",
        "trace": {"file": "t.strace.txt", "format": "strace"},
        "started": {"local": "2026-11-27T11:59:00+01:00", "utc_offset_s": 3600},
    }))
    r = parse.parse_file(rundir, cache=False)
    assert r.format == "strace" and r.os == "linux"
    # -tt times are local (UTC+1) on 2026-11-27; the third line wrapped past midnight
    tz = dt.timezone(dt.timedelta(hours=1))
    expected = [dt.datetime(2026, 11, 27, 12, 0, 1, 500000, tzinfo=tz), dt.datetime(2026, 11, 27, 23, 59, 59, tzinfo=tz),
                dt.datetime(2026, 11, 28, 0, 0, 2, tzinfo=tz)]
    assert r.events["ts_ns"].to_list() == [int(t.timestamp()) * 10**9 + t.microsecond * 1000 for t in expected]
    assert set(r.events["ts_clock"]) == {"epoch"}


def test_date_flag_without_meta_and_relative_without_date(tmp_path):
    text = "10:00:00.000001 getpid() = 7\n10:00:01.000002 getpid() = 7\n"
    r = parse_text(tmp_path, text, date="2026-01-02")
    ten = int(dt.datetime(2026, 1, 2, 10, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert r.events["ts_ns"].to_list() == [ten + 1_000, ten + 1_000_002_000]
    r = parse_text(tmp_path, text)
    assert r.events["ts_ns"].to_list() == [0, 1_000_001_000]
    assert r.events["ts_clock"].to_list() == ["relative", "relative"]
    with pytest.raises(InputError, match="not a date"):
        parse_text(tmp_path, text, date="02/01/2026")


def test_ff_directory_and_stem_merge_processes_in_time_order(tmp_path):
    ff = DATA / "strace_linux_syspage-ff-ttt-T"
    r = parse.parse_file(ff, cache=False)
    files = sorted(ff.glob("trace.*"))
    assert r.lines_total == sum(len(p.read_text().splitlines()) for p in files)
    assert set(r.events["source_file"]) == {str(p) for p in files}
    ts = r.events["ts_ns"]
    assert ts.is_sorted()
    # each file's pid fills tid; threads (CLONE_THREAD) map to the main pid
    main = int(files[0].name.split(".")[1])
    assert r.events.filter(pl.col("source_file") == str(files[0]))["tid"].unique().to_list() == [main]
    assert set(r.events["pid"].unique()) <= {main} | {int(p.name.split(".")[1]) for p in files}
    stem = parse.parse_file(ff / "trace", cache=False)
    assert stem.events.equals(r.events)


# -- rejects, --strict, cut-off lines ------------------------------------------------------------

PASTED = (
    "Here is what strace printed:\n"
    "123 getpid() = 123\n"
    "and then it crashed, see\n"
    "123 +++ killed by SIGSEGV (core dumped) +++\n"
    "123 read(3, \"abc"
)


def test_prose_lines_rejected_one_by_one_and_cut_line(tmp_path):
    r = parse_text(tmp_path, PASTED, format="strace")
    assert r.events["kind"].to_list() == ["call", "killed"]
    rej = r.rejects.select("line_no", "reason").rows()
    assert [n for n, _ in rej] == [1, 3, 5]
    assert rej[2][1] == "cut off mid-line"
    assert all(reason.startswith("no strace grammar rule matches") for _, reason in rej[:2])
    assert_every_line_accounted(r)


def test_strict_raises_on_first_reject(tmp_path):
    with pytest.raises(ParseError) as err:
        parse_text(tmp_path, PASTED, format="strace", strict=True)
    assert str(err.value).startswith(f"{tmp_path / 'trace.txt'}:1: no strace grammar rule matches")


def test_cli_counts_rejects_and_strict_exit_2(run_cli, tmp_path):
    trace = tmp_path / "pasted.txt"
    trace.write_text(PASTED)
    out = tmp_path / "ev.parquet"
    res = run_cli("parse", trace, "-o", out, "--format", "strace")
    assert res.returncode == 0, res.stderr
    assert "2 events, 0 summary rows, 3 lines rejected" in res.stdout
    assert f"rejected {trace}:5: cut off mid-line" in res.stdout
    res = run_cli("parse", trace, "-o", out, "--format", "strace", "--strict")
    assert res.returncode == 2
    assert f"{trace}:1: no strace grammar rule" in res.stderr


def test_very_long_line_and_reject_text_cut_to_4k(tmp_path):
    long_arg = "x" * 300_000
    text = f'1 write(1, "{long_arg}", 300000) = 300000\n1 {"garbage " * 1000}\n'
    r = parse_text(tmp_path, text, format="strace")
    assert r.events["args_raw"][0] == f'1, "{long_arg}", 300000'
    assert r.rejects["text"].str.len_bytes().to_list() == [4096]


# -- writing, metadata, cache, chunks -------------------------------------------------------------

def test_write_files_and_metadata(tmp_path):
    r = parse.parse_file(DATA / "strace_linux_syspage-f-C.txt", cache=False)
    out = parse.write(r, tmp_path / "ev.parquet")
    assert EVENTS.read(out).equals(r.events)
    assert SUMMARY.read(tmp_path / "ev.summary.parquet").equals(r.summary)
    assert REJECTS.read(tmp_path / "ev.rejects.parquet").height == 0
    meta = read_metadata(out)
    assert meta["trace_sha256"] == r.sha256 and meta["format"] == "strace" and meta["os"] == "linux"
    assert int(meta["events"]) == r.events.height and meta["parser_version"] == parse.parser_version()


def test_cache_returns_the_same_tables(tmp_path):
    src = tmp_path / "t.txt"
    shutil.copy(DATA / "strace_linux_wperron-go-f-unfinished.txt", src)
    first = parse.parse_file(src)
    second = parse.parse_file(src)
    assert not first.from_cache and second.from_cache
    assert second.events.equals(first.events) and second.rejects.equals(first.rejects)
    src.write_text(src.read_text() + "51904 getpid() = 51904\n")  # new text, new hash: parsed again
    third = parse.parse_file(src)
    assert not third.from_cache and third.events.height == first.events.height + 1


def test_chunked_framing_equals_one_chunk(monkeypatch):
    path = DATA / "strace_linux_syspage-stderr-f-t-xx.txt"
    whole = parse.parse_file(path, cache=False)
    monkeypatch.setattr(parse, "CHUNK_LINES", 100)
    chunked = parse.parse_file(path, cache=False)
    assert chunked.events.equals(whole.events)
    assert chunked.lines_ignored == whole.lines_ignored and chunked.rejects.equals(whole.rejects)


def test_parse_to_files_for_the_pipeline(tmp_path):
    counts = parse.parse_to_files(DATA / "strace_linux_demurgos-git2-segfault-sigsegv.txt", tmp_path)
    assert counts.events == 515 and counts.rejects == 0 and counts.events_path == tmp_path / "events.parquet"
    assert counts.summary_path.is_file() and counts.rejects_path.is_file()


# -- every real trace in the corpus: no crash, every line accounted for, rejects explained -------

def _corpus():
    files = sorted(p for p in DATA.glob("*.txt") if not p.name.endswith(".source.txt"))
    if SHARED.is_dir():
        files += sorted(p for p in SHARED.glob("*.txt") if not p.name.endswith(".source.txt"))
    return files


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_trace_parses_with_lines_accounted(path):
    fmt = path.name.split("_linux_")[0].split("_")[0] if not path.name.startswith("perf_trace") else "perf_trace"
    if fmt not in parse.formats():
        pytest.skip(f"format {fmt} is not registered in parse/_formats.py")
    r = parse.parse_file(path, format=fmt, cache=False)
    assert r.events.height + r.summary.height > 0
    assert_every_line_accounted(r)
    assert r.rejects.filter(pl.col("reason").str.len_chars() == 0).height == 0
    EVENTS.validate(r.events)
    # a real strace/perf trace we recorded ourselves has no rejects at all
    if "_syspage-" in path.name:
        assert r.rejects.height == 0, r.rejects.head(3).to_dicts()
