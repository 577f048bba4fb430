"""syspage.parse: trace text -> the normalized events/1 table (see syspage.schema, docs/parse.md).

Public API (the other stages use only these):

    parse_file(path, format=None, os=None, date=None, strict=False, progress=None) -> ParseResult
    detect_format(path) -> str
    write(result, events_path) -> Path          # events + <stem>.summary + <stem>.rejects Parquet
    parse_to_file(path, events_path, ...) -> WrittenParse   # parse_file + write without holding
                                                # the events (strace: written as they come; the CLI)
    parse_to_files(trace, outdir, ...) -> ParseCounts   # parse_file + write, for syspage run

``path`` is a trace file (gzip too), a collect RUNDIR (its meta.json gives the file, format,
OS, and the date strace -t/-tt lacks), a directory of strace -ff files, or the -ff stem.
One module per format (parse/_formats.py) turns lines into rows; this driver reads and checks
the input, picks the format, frames big traces in chunks on all cores (strace: reads, frames
and assembles them as a stream of blocks, see docs/parse.md "Memory"), adds source_file,
classifies the calls with the catalog, conforms every table to its schema, and caches the
result by the trace's SHA-256.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os as _os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from syspage import __version__
from syspage import catalog
from syspage.errors import InputError, ParseError
from syspage.parse import _formats, _reader
from syspage.parse._base import CUT_OFF, GZIP_CUT, FormatOutput, ParseContext
from syspage.schema import EVENTS, METADATA_KEY, OSES, REJECTS, SUMMARY, read_tag

ProgressCallback = Callable[[int, int], None]

__all__ = ["ParseResult", "ParseCounts", "WrittenParse", "parse_file", "detect_format", "write", "parse_to_file",
           "parse_to_files",
           "formats", "parser_version"]

SNIFF_LINES = 200
MIN_CONFIDENCE = 0.3
CHUNK_LINES = 100_000          # lines per chunk when framing a big trace on several cores
                               # (small enough that a chunk's transient buffers stay small)
REJECT_TEXT_MAX = 4096         # rejects/1 keeps at most 4 KiB of a line
BLOCK_BYTES = 1 << 21          # text read, framed and assembled at a time by a streaming format
                               # (about 23k strace lines): bounds what parsing holds besides its result
_HERE = Path(__file__).resolve().parent


@dataclass
class ParseResult:
    events: pl.DataFrame         # events/1, classified
    summary: pl.DataFrame        # summary/1
    rejects: pl.DataFrame        # rejects/1
    format: str
    os: str
    lines_total: int
    lines_ignored: int
    sha256: str
    source: str                  # the path as given
    from_cache: bool = False


@dataclass
class ParseCounts:
    """What parse_to_files wrote (numbers, for one-line reports)."""

    events: int
    summary: int
    rejects: int
    lines_total: int
    format: str
    events_path: Path
    summary_path: Path
    rejects_path: Path


@dataclass
class WrittenParse:
    """What parse_to_file wrote: ParseResult without the events table (only its counts)."""

    events_path: Path
    events: int                  # rows of events_path
    incomplete: int              # of which incomplete calls (events.incomplete)
    summary: pl.DataFrame
    rejects: pl.DataFrame
    format: str
    os: str
    lines_total: int
    lines_ignored: int
    sha256: str
    source: str
    from_cache: bool = False


def formats() -> list[str]:
    """Names of the registered formats, in sniffing order."""
    return _formats.names()


@functools.lru_cache(maxsize=1)
def parser_version() -> str:
    """syspage version + a hash of the parse code and grammars: the cache key changes with them."""
    h = hashlib.sha256()
    for p in sorted(list(_HERE.glob("*.py")) + list((_HERE / "grammars").glob("*.lark"))):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


# -- format detection -------------------------------------------------------------------------

def _sniff(head: list[str], source: str) -> str:
    scores = []
    for name in _formats.names():
        try:
            score = float(_formats.load(name).sniff(head))
        except ImportError:  # a registered module not there yet must not break the others
            continue
        scores.append((score, name))
    best = max(scores, key=lambda s: s[0], default=(0.0, None))
    if best[1] is None or best[0] < MIN_CONFIDENCE:
        shown = ", ".join(f"{n} {s:.2f}" for s, n in sorted(scores, reverse=True)[:3])
        raise InputError(source, f"cannot tell the trace format from the first {len(head)} lines "
                                 f"(best guesses: {shown}); give --format ({', '.join(_formats.names())})")
    return best[1]


def detect_format(path: str | Path) -> str:
    """The format of the trace at PATH: meta.json's when a RUNDIR says, else the best sniff."""
    trace = _reader.open_trace(path)
    if trace.format:
        return trace.format
    return _sniff(trace.files[0].head(SNIFF_LINES), str(path))


# -- parsing ----------------------------------------------------------------------------------

def _chunk_bounds(data: bytes, pieces: int) -> list[tuple[int, int, int]]:
    """(start, end, first line number) of about equal byte ranges cut at line ends."""
    bounds, start, line_no = [], 0, 1
    size = max(1, len(data) // pieces)
    while start < len(data):
        end = data.find(b"\n", min(len(data), start + size))
        end = len(data) if end < 0 else end + 1
        bounds.append((start, end, line_no))
        line_no += data.count(b"\n", start, end)
        start = end
    return bounds


def _frame_file(fmt, f: _reader.TraceFile, ctx: ParseContext, progress: ProgressCallback | None,
                done: int, total: int) -> list:
    """Frame one file in chunks on all cores: fmt.frame_bytes (C, GIL released) when the
    format has it and it runs here, else fmt.frame over the lines (Polars, GIL released too).
    The few lines left to Lark are the Python part."""
    workers = max(1, _os.cpu_count() or 1)
    n_lines = f.line_count
    pieces = 1 if n_lines <= CHUNK_LINES else max(workers, -(-n_lines // CHUNK_LINES))
    bounds = _chunk_bounds(f.data, pieces)
    use_bytes = hasattr(fmt, "frame_bytes")

    def one(bound):
        start, end, first = bound
        sub = dataclasses.replace(ctx, first_line_no=first)
        part = fmt.frame_bytes(f.data, start, end, sub) if use_bytes else None
        if part is None:
            lines = f.lines.slice(first - 1, f.data.count(b"\n", start, end) + (0 if f.data.endswith(b"\n") or end < len(f.data) else 1))
            part = fmt.frame(lines, sub)
        return part, f.data.count(b"\n", start, end)

    parts = [None] * len(bounds)
    finished = done
    if len(bounds) == 1:
        parts[0], _ = one(bounds[0])
        if progress:
            progress(done + n_lines, total)
        return parts
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(one, b): i for i, b in enumerate(bounds)}
        for fut in concurrent.futures.as_completed(futures):
            parts[futures[fut]], count = fut.result()
            finished += count
            if progress:
                progress(min(finished, done + n_lines), total)
    return parts


def _stream_file(fmt, asm, f: _reader.TraceFile, ctx: ParseContext, progress: ProgressCallback | None,
                 done: int, total: int) -> None:
    """Read one file in blocks, frame them on all cores (C with the GIL released, or Polars)
    and feed each framed block, in order, to the format's assembler: only a few blocks of
    text and records are held at a time."""
    workers = max(1, _os.cpu_count() or 1)

    def one(block: bytes, first: int):
        sub = dataclasses.replace(ctx, first_line_no=first)
        part = fmt.frame_bytes(block, 0, len(block), sub) if hasattr(fmt, "frame_bytes") else None
        if part is None:
            part = fmt.frame(_reader.split_lines(block.decode("utf-8"))[0], sub)
        part.records = part.records.with_columns(pl.lit(f.path, dtype=pl.String).alias("source_file"))
        part.rejects = [(ln, text, reason, f.path) for ln, text, reason in part.rejects]
        return part

    in_flight: collections.deque = collections.deque()

    def take() -> None:
        future, first = in_flight.popleft()
        asm.feed(future.result())
        if progress:   # the lines before the next block are done
            progress(done + (in_flight[0][1] - 1 if in_flight else f.line_count), total)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for block, first in f.blocks(BLOCK_BYTES):
            in_flight.append((pool.submit(one, block, first), first))
            del block
            if len(in_flight) > workers:
                take()
        while in_flight:
            take()


def _run_format(fmt, trace: _reader.TraceInput, base_ctx: ParseContext, progress: ProgressCallback | None,
                spill: Path | None = None) -> tuple[FormatOutput, list[pl.DataFrame]]:
    """Parse every file of the trace with fmt; return the output and the per-file rejects.
    spill: a directory where a streaming format keeps its rows of a one-file trace instead of
    memory (the output then has event_pieces, see parse_to_file)."""
    total = trace.lines_total
    chunked = hasattr(fmt, "frame") and hasattr(fmt, "assemble")
    done = 0
    if spill is not None and len(trace.files) == 1 and hasattr(fmt, "spilling_assembler"):
        # kdump in parse_to_file: one file, block by block, rows spilled (parse/_kdump_stream.py)
        asm = fmt.spilling_assembler(base_ctx, spill)
        if asm is not None:
            f = trace.files[0]
            ctx = dataclasses.replace(base_ctx, source_file=f.path, pid=f.pid)
            _stream_file(fmt, asm, f, ctx, progress, done, total)
            f.release()
            out = asm.finish()
            frame, out.rejects_frame = out.rejects_frame, None
            return out, [_rejects_table(frame, trace)]
    if hasattr(fmt, "assembler"):   # streaming: the file is read block by block
        asm = fmt.assembler(base_ctx)
        if spill is not None and len(trace.files) == 1 and hasattr(asm, "spill_to"):
            asm.spill_to(spill)
        for f in trace.files:
            ctx = dataclasses.replace(base_ctx, source_file=f.path, pid=f.pid)
            _stream_file(fmt, asm, f, ctx, progress, done, total)
            done += f.line_count
            f.release()
        out = asm.finish()
        rejects = out.rejects + _gzip_cut_rejects(trace)
        out.rejects = []
        return out, [_rejects_frame(rejects, trace)]
    if chunked:
        parts = []
        for f in trace.files:
            ctx = dataclasses.replace(base_ctx, source_file=f.path, pid=f.pid)
            for part in _frame_file(fmt, f, ctx, progress, done, total):
                part.records = part.records.with_columns(pl.lit(f.path, dtype=pl.String).alias("source_file"))
                part.rejects = [(ln, text, reason, f.path) for ln, text, reason in part.rejects]
                parts.append(part)
            done += f.line_count
            f.release()  # the records hold what is needed; the text can go before assembling
        out = fmt.assemble(parts, base_ctx)
        rejects = out.rejects + _gzip_cut_rejects(trace)
        out.rejects = []
        return out, [_rejects_frame(rejects, trace)]
    outs, reject_frames = [], []
    for f in trace.files:
        ctx = dataclasses.replace(base_ctx, source_file=f.path, pid=f.pid)
        out = fmt.parse(f.lines.to_list(), ctx)
        out.events = (out.events if out.events.width else EVENTS.empty()).with_columns(
            pl.lit(f.path, dtype=pl.String).alias("source_file"))
        out.summary = (out.summary if out.summary.width else SUMMARY.empty()).with_columns(
            pl.lit(f.path, dtype=pl.String).alias("source_file"))
        reject_frames.append(_rejects_frame([(ln, t, r, f.path) for ln, t, r in out.rejects]
                                            + _gzip_cut_rejects(trace, f), trace))
        outs.append(out)
        done += f.line_count
        if progress:
            progress(done, total)
    merged = FormatOutput(
        events=pl.concat([EVENTS.conform(o.events) for o in outs], how="vertical"),
        summary=pl.concat([SUMMARY.conform(o.summary) for o in outs], how="vertical"),
        ignored=sum(o.ignored for o in outs),
        os=next((o.os for o in outs if o.os), None),
    )
    return merged, reject_frames


def _gzip_cut_rejects(trace: _reader.TraceInput, only: _reader.TraceFile | None = None) -> list[tuple]:
    """One reject per gzip file whose stream ends early: its last, cut line (see TraceFile.cut_tail)."""
    return [(f.line_count, f.cut_tail, GZIP_CUT, f.path) for f in trace.files
            if f.cut_tail is not None and (only is None or f is only)]


def _rejects_frame(rejects: list[tuple], trace: _reader.TraceInput) -> pl.DataFrame:
    """rejects/1 rows; a rejected last line without a newline is a line cut off mid-way."""
    unterminated = {(f.path, f.line_count) for f in trace.files if not f.terminated}
    rows = {
        "source_file": [r[3] for r in rejects],
        "line_no": [r[0] for r in rejects],
        "text": [r[1][:REJECT_TEXT_MAX] for r in rejects],
        "reason": [CUT_OFF if (r[3], r[0]) in unterminated else r[2] for r in rejects],
    }
    return pl.DataFrame(rows, schema=REJECTS.columns).sort(["source_file", "line_no"])


def _rejects_table(frame: pl.DataFrame | pl.LazyFrame, trace: _reader.TraceInput) -> pl.DataFrame | pl.LazyFrame:
    """_rejects_frame for rejects given as a frame (source_file, line_no, text, reason): the same
    rows, without a Python tuple per reject (parse/_kdump_stream.py SpillingAssembler). A LazyFrame
    (rejects spilled) stays lazy."""
    gzip_cut = _gzip_cut_rejects(trace)
    if gzip_cut:
        cut_rows = pl.DataFrame([(p, ln, t, r) for ln, t, r, p in gzip_cut], schema=frame.collect_schema(),
                                orient="row")
        frame = pl.concat([frame, cut_rows.lazy() if isinstance(frame, pl.LazyFrame) else cut_rows])
    cut = pl.lit(False)
    for f in trace.files:
        if not f.terminated:
            cut = cut | ((pl.col("source_file") == f.path) & (pl.col("line_no") == f.line_count))
    table = frame.select(
        "source_file", "line_no", pl.col("text").str.slice(0, REJECT_TEXT_MAX),
        pl.when(cut).then(pl.lit(CUT_OFF)).otherwise(pl.col("reason")).alias("reason"),
    ).cast(REJECTS.columns).select(list(REJECTS.columns))
    if isinstance(frame, pl.LazyFrame):
        # spilled rejects of one file come in line order (SpillingAssembler sorts them when not),
        # the gzip cut line last: a sort would hold them all to find what is already first
        return table
    return table.sort(["source_file", "line_no"])


def _check_arguments(format: str | None, os: str | None, date) -> dt.date | None:
    if format is not None and format not in _formats.names():
        raise InputError(format, f"unknown trace format (known: {', '.join(_formats.names())})")
    if os is not None and os not in OSES:
        raise InputError(os, f"unknown OS (known: {', '.join(OSES)})")
    if isinstance(date, str):
        try:
            return dt.date.fromisoformat(date)
        except ValueError:
            raise InputError(date, "not a date (want YYYY-MM-DD)") from None
    return date


# -- the cache --------------------------------------------------------------------------------

def cache_dir() -> Path:
    """$SYSPAGE_CACHE/parse, else ~/.cache/syspage/parse."""
    root = _os.environ.get("SYSPAGE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "syspage") / "parse"


def _cache_key(trace: _reader.TraceInput, fmt: str, ctx: ParseContext) -> str:
    key = {
        "sha256": trace.sha256, "files": [f.path for f in trace.files], "format": fmt, "os": ctx.os,
        "date": ctx.date.isoformat() if ctx.date else None, "utc_offset_s": ctx.utc_offset_s,
        "parser": parser_version(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _cache_load(key: str, source: str, sha: str, events: bool = True) -> ParseResult | None:
    """The cached result; events=False: with an empty events table (read it from
    cache_dir()/key/events.parquet)."""
    d = cache_dir() / key
    try:
        info = json.loads((d / "info.json").read_text())
        if not events and read_tag(d / "events.parquet") != EVENTS.tag:
            return None
        return ParseResult(
            events=EVENTS.read(d / "events.parquet") if events else EVENTS.empty(), summary=SUMMARY.read(d / "summary.parquet"),
            rejects=REJECTS.read(d / "rejects.parquet"), format=info["format"], os=info["os"],
            lines_total=info["lines_total"], lines_ignored=info["lines_ignored"], sha256=sha,
            source=source, from_cache=True,
        )
    except Exception:  # a missing, partial or stale entry is just a miss
        return None


def _cache_store(key: str, result: ParseResult, events_file: Path | None = None) -> None:
    """Store result; events_file: its events already written there (result.events is not used)."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        if events_file is not None:
            shutil.copyfile(events_file, tmp / "events.parquet")
        else:
            EVENTS.write(result.events, tmp / "events.parquet")
        SUMMARY.write(result.summary, tmp / "summary.parquet")
        REJECTS.write(result.rejects, tmp / "rejects.parquet")
        (tmp / "info.json").write_text(json.dumps({
            "format": result.format, "os": result.os, "lines_total": result.lines_total,
            "lines_ignored": result.lines_ignored,
        }))
        final = root / key
        if final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            _os.replace(tmp, final)
    except OSError:  # a read-only or full cache must not fail the parse
        pass


# -- the public entry points -------------------------------------------------------------------

def parse_file(path: str | Path, format: str | None = None, os: str | None = None,
               date: dt.date | str | None = None, strict: bool = False,
               progress: ProgressCallback | None = None, cache: bool = True,
               grammar_only: bool = False) -> ParseResult:
    """Parse the trace at PATH into events/summary/rejects tables (see the module doc).

    strict: raise ParseError naming the first rejected line instead of returning rejects.
    cache: reuse (and store) the result of an identical earlier parse (same text, format,
    OS, date and parser version) under cache_dir().
    grammar_only: every line through the Lark grammar (no fast path; for tests and benchmarks).
    Raises InputError for unusable input, ParseError when no line is FORMAT output (or strict).
    """
    source = str(path)
    trace, fmt_name, ctx, key = _prepare(path, format, os, date, progress, grammar_only)
    result = _cache_load(key, source, trace.sha256) if cache and not grammar_only else None
    if result is None:
        result, _ = _parse(trace, fmt_name, ctx, source, progress)
        if cache and not grammar_only:
            _cache_store(key, result)
    _check(result, fmt_name, strict)
    return result


@dataclass
class _Spilled:
    """The events of a parse written as finished pieces (Parquet files, in order) instead of
    held: what parse_to_file concatenates into the output."""

    parts: list[Path]
    events: int
    incomplete: int


def _prepare(path, format, os, date, progress, grammar_only=False):
    """The checked arguments, the opened trace, its format, the context and the cache key."""
    date = _check_arguments(format, os, date)
    source = str(path)
    trace = _reader.open_trace(path)
    fmt_name = format or trace.format or _sniff(trace.files[0].head(SNIFF_LINES), source)
    if fmt_name not in _formats.names():
        raise InputError(source, f"meta.json names format {fmt_name!r}, which this syspage does not parse")
    ctx = ParseContext(source_file=trace.files[0].path, os=os or trace.os, date=date or trace.date,
                       utc_offset_s=trace.utc_offset_s, progress=progress, grammar_only=grammar_only)
    return trace, fmt_name, ctx, _cache_key(trace, fmt_name, ctx)


def _parse(trace: _reader.TraceInput, fmt_name: str, ctx: ParseContext, source: str,
           progress: ProgressCallback | None, spill: Path | None = None) -> tuple[ParseResult, _Spilled | None]:
    """The parse; with spill, a streaming format's events go to finished pieces in that
    directory (returned as _Spilled, result.events then empty) when the trace allows it."""
    fmt = _formats.load(fmt_name)
    out, reject_frames = _run_format(fmt, trace, ctx, progress, spill)
    os_name = ctx.os or out.os or "unknown"
    spilled = None
    if out.event_pieces is not None:
        spilled = _Spilled(parts=[], events=0, incomplete=0)
        for i, piece in enumerate(out.event_pieces):
            if piece.height == 0:
                continue
            piece = _finish_chunk(piece, os_name, ctx)
            part = spill / f"events-{i:06d}.arrow"   # Arrow IPC: see Assembler._spilled
            piece.write_ipc(part)
            spilled.parts.append(part)
            spilled.events += piece.height
            spilled.incomplete += int(piece["incomplete"].sum())
        events = EVENTS.empty()
    elif out.event_chunks is not None:
        chunks, out.event_chunks = out.event_chunks, None   # _finish_chunks empties the list as it goes
        events = _finish_chunks(chunks, os_name, ctx)
    else:
        # a format with nothing to say may return a frame without columns: literals would give it a row
        events = out.events if out.events.width else EVENTS.empty()
        events = _finish_chunk(events, os_name, ctx)
    summary = out.summary if out.summary.width else SUMMARY.empty()
    if "source_file" not in summary.columns:
        summary = summary.with_columns(pl.lit(ctx.source_file).alias("source_file"))
    summary = SUMMARY.conform(summary.with_columns(
        pl.col("os").fill_null(os_name) if "os" in summary.columns else pl.lit(os_name).alias("os"),
        pl.col("source_format").fill_null(fmt_name) if "source_format" in summary.columns
        else pl.lit(fmt_name).alias("source_format"),
    ))
    if any(isinstance(f, pl.LazyFrame) for f in reject_frames):   # spilled: parse_to_file collects them
        rejects = pl.concat([f.lazy() for f in reject_frames])
    else:
        rejects = pl.concat(reject_frames) if reject_frames else REJECTS.empty()
    return ParseResult(events=events, summary=summary, rejects=rejects, format=fmt_name, os=os_name,
                       lines_total=trace.lines_total, lines_ignored=out.ignored, sha256=trace.sha256,
                       source=source), spilled


def _finish_chunk(events: pl.DataFrame, os_name: str, ctx: ParseContext) -> pl.DataFrame:
    """Fill source_file and os, classify the calls with the catalog, conform to events/1
    (EVENTS.conform's columns, types and order), as one query.

    The catalog sees only the columns it reads; its page_class and page_access are put beside
    the others, which are not copied (its join would copy every column it is given)."""
    have = events.columns
    fill = {
        "source_file": pl.col("source_file") if "source_file" in have else pl.lit(ctx.source_file),
        "os": pl.col("os").fill_null(os_name) if "os" in have else pl.lit(os_name),
    }
    extra = [c for c in have if c not in EVENTS.columns]
    if extra:   # as EVENTS.conform would
        return EVENTS.conform(events)
    conformed = events.lazy().select(
        (fill[c] if c in fill else pl.col(c) if c in have else pl.lit(None)).cast(t, strict=True).alias(c)
        for c, t in EVENTS.columns.items()
    )
    needed = ["kind", "os", "syscall", "args_raw", "sysctl_name", "page_class", "page_access"]
    pages = catalog.load().classify(conformed.select(needed)).select("page_class", "page_access")
    rest = conformed.select(pl.exclude("page_class", "page_access"))
    return pl.concat([rest, pages], how="horizontal", strict=True).select(list(EVENTS.columns)).collect()


def _finish_chunks(chunks: list[pl.DataFrame], os_name: str, ctx: ParseContext) -> pl.DataFrame:
    """_finish_chunk on each piece in turn (only one piece is copied at a time), then one
    table of those pieces (not copied again)."""
    chunks[:] = [c for c in chunks if c.height]
    if not chunks:
        return _finish_chunk(EVENTS.empty(), os_name, ctx)
    for i, chunk in enumerate(chunks):
        chunks[i] = _finish_chunk(chunk, os_name, ctx)
    events = pl.concat(chunks) if len(chunks) > 1 else chunks[0]
    chunks.clear()
    return events


def _check(result: ParseResult, fmt_name: str, strict: bool, events: int | None = None,
           rejects: tuple[int, pl.DataFrame] | None = None) -> None:
    """ParseError when nothing read as FMT_NAME, or (strict) anything was rejected. events:
    the number of events when they are not in result (written as they came); rejects: their
    number and first row when they are not in result either (spilled, see _reject_counts)."""
    n_rejects, head = rejects if rejects is not None else (result.rejects.height, result.rejects)
    if n_rejects == 0:
        return
    first = head.row(0, named=True)
    if (result.events.height if events is None else events) == 0 and result.summary.height == 0:
        raise ParseError(first["source_file"], first["line_no"], None, first["text"],
                         f"nothing in this file reads as {fmt_name} output ({n_rejects} lines "
                         f"rejected; wrong --format?); first: {first['reason']}")
    if strict:
        raise ParseError(first["source_file"], first["line_no"], None, first["text"],
                         f"{first['reason']} (--strict; {n_rejects} lines rejected)")


def _reject_counts(rejects: pl.DataFrame | pl.LazyFrame) -> tuple[int, pl.DataFrame]:
    """The number of rejects and the first one, without holding them all when they are spilled."""
    if isinstance(rejects, pl.DataFrame):
        return rejects.height, rejects.head(1)
    return rejects.select(pl.len()).collect().item(), rejects.head(1).collect()


def _companion(events_path: Path, table: str) -> Path:
    return events_path.with_name(f"{events_path.stem}.{table}.parquet")


def _metadata(result: ParseResult, events: int, rejects: int | None = None) -> dict:
    """The syspage.* key-value metadata of the three files (docs/schema.md)."""
    return {
        "trace": result.source, "trace_sha256": result.sha256, "format": result.format, "os": result.os,
        "parser_version": parser_version(), "lines_total": result.lines_total,
        "lines_ignored": result.lines_ignored, "events": events,
        "summary_rows": result.summary.height, "rejects": result.rejects.height if rejects is None else rejects,
    }


def write(result: ParseResult, events_path: str | Path) -> Path:
    """Write events_path, and beside it <stem>.summary.parquet and <stem>.rejects.parquet."""
    events_path = Path(events_path)
    meta = _metadata(result, result.events.height)
    EVENTS.write(result.events, events_path, meta)
    SUMMARY.write(result.summary, _companion(events_path, "summary"), meta)
    REJECTS.write(result.rejects, _companion(events_path, "rejects"), meta)
    return events_path


def parse_to_file(path: str | Path, events_path: str | Path, format: str | None = None, os: str | None = None,
                  date: dt.date | str | None = None, strict: bool = False,
                  progress: ProgressCallback | None = None, cache: bool = True) -> WrittenParse:
    """parse_file(path, ...) then write(result, events_path), the same files, without holding
    the events table (issue 3's peak RSS target: the table is most of a parse's memory).

    A one-file strace or kdump trace's events are written as they come, each finished piece to a
    temporary Arrow IPC file in events_path's directory, then concatenated into events_path by a
    streaming query (Polars sink_parquet); a cached parse is copied the same way. Other traces
    (other formats, strace -ff files) are parsed in memory and written. The files appear only
    when the parse succeeded (strict included)."""
    source = str(path)
    trace, fmt_name, ctx, key = _prepare(path, format, os, date, progress)
    events_path = Path(events_path)
    try:
        events_path.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{events_path.name}.", dir=events_path.parent))
    except OSError as exc:
        raise InputError(str(events_path), f"cannot write here: {exc.strerror or exc}") from None
    try:
        result = _cache_load(key, source, trace.sha256, events=False) if cache else None
        if result is not None:
            sources = pl.scan_parquet(cache_dir() / key / "events.parquet")
            counts = sources.select(pl.len(), pl.col("incomplete").sum()).collect()
            events, incomplete = int(counts[0, 0]), int(counts[0, 1] or 0)
        else:
            result, spilled = _parse(trace, fmt_name, ctx, source, progress, spill=work)
            if spilled is None:   # parsed in memory
                if cache:
                    _cache_store(key, result)
                _check(result, fmt_name, strict)
                write(result, events_path)
                return _written(result, events_path, result.events.height,
                                int(result.events["incomplete"].sum()) if result.events.height else 0)
            sources = pl.scan_ipc(spilled.parts, memory_map=False) if spilled.parts else None
            events, incomplete = spilled.events, spilled.incomplete
        counts = _reject_counts(result.rejects)
        _check(result, fmt_name, strict, events=events, rejects=counts)
        meta = _metadata(result, events, rejects=counts[0])
        tmp = work / "events.parquet"
        if sources is not None:
            sources.sink_parquet(
                tmp, metadata={METADATA_KEY: EVENTS.tag, **{f"syspage.{k}": str(v) for k, v in meta.items()}})
        else:
            EVENTS.write(EVENTS.empty(), tmp, meta)
        if isinstance(result.rejects, pl.LazyFrame):   # spilled: held only now, the events written
            result = dataclasses.replace(result, rejects=result.rejects.collect())
        if cache and not result.from_cache:
            _cache_store(key, result, events_file=tmp)
        SUMMARY.write(result.summary, _companion(events_path, "summary"), meta)
        REJECTS.write(result.rejects, _companion(events_path, "rejects"), meta)
        _os.replace(tmp, events_path)
        return _written(result, events_path, events, incomplete)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _written(result: ParseResult, events_path: Path, events: int, incomplete: int) -> WrittenParse:
    return WrittenParse(
        events_path=events_path, events=events, incomplete=incomplete, summary=result.summary,
        rejects=result.rejects, format=result.format, os=result.os, lines_total=result.lines_total,
        lines_ignored=result.lines_ignored, sha256=result.sha256, source=result.source,
        from_cache=result.from_cache)


def parse_to_files(trace: str | Path, outdir: str | Path, progress: ProgressCallback | None = None,
                   **options) -> ParseCounts:
    """parse_to_file(trace, OUTDIR/events.parquet, **options) (+ .summary, .rejects)."""
    result = parse_to_file(trace, Path(outdir) / "events.parquet", progress=progress, **options)
    events_path = result.events_path
    return ParseCounts(
        events=result.events, summary=result.summary.height, rejects=result.rejects.height,
        lines_total=result.lines_total, format=result.format, events_path=events_path,
        summary_path=_companion(events_path, "summary"), rejects_path=_companion(events_path, "rejects"),
    )
