"""The contract every format module in parse/ fulfils.

A format module (parse/_strace.py, parse/_kdump.py, ...) defines FORMAT: a TraceFormat.
The driver (parse/__init__.py) reads and checks the file, picks the format (sniff, or
--format), hands the lines to ``parse``, then adds source_file, classifies the events with
the catalog (page_class/page_access) and conforms every table to its schema.

Rules for ``parse``:
- every input line ends up in exactly one place: an event row (``line_no``..``line_no_end``
  covers it), a summary row, a rejects row, or is a line the format defines as ignorable
  (blank line, header) and counted in ``ignored``; nothing is silently dropped;
- it never raises on bad lines: they become rejects with a reason; a line cut off at the
  end of the file (tracer killed) is a reject with reason "cut off mid-line";
- it does not fill page_class/page_access (the driver does) nor source_file.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, Sequence

import polars as pl


@dataclass
class ParseContext:
    source_file: str
    os: str | None = None             # from meta.json or --os; None: the format decides (or "unknown")
    date: dt.date | None = None       # for strace -t/-tt, which print no date (meta.json or --date)
    utc_offset_s: int = 0             # local-time offset of -t/-tt clocks (meta.json), seconds east of UTC
    first_line_no: int = 1            # line number of lines[0] (chunked parsing)
    progress: Callable[[int, int], None] | None = None
    # Optional, added by the driver (parse/__init__.py); formats may ignore them:
    pid: int | None = None            # the process of a per-process file (strace -ff trace.PID)
    grammar_only: bool = False        # skip any fast path: every line through the Lark grammar
                                      # (the differential tests and the benchmark's baseline)


@dataclass
class FormatOutput:
    events: pl.DataFrame              # events/1 columns (any subset; the driver conforms them)
    summary: pl.DataFrame             # summary/1 columns (any subset), may be empty
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (line_no, text, reason)
    ignored: int = 0                  # lines the format defines as noise (blank, headers)
    os: str | None = None             # the OS the format detected, when the context gave none
    # Optional: the events as consecutive pieces instead of one frame (``events`` is then
    # ignored). The driver classifies and conforms them piece by piece, so a big trace's
    # table is never copied whole (issue 3's memory target). None: use ``events``.
    event_chunks: list[pl.DataFrame] | None = None
    # Optional, instead of both: the events as pieces made one at a time (a streaming format
    # whose assembler was asked to spill its rows to disk, see parse/_strace.py spill_to), for
    # a driver that writes each piece and drops it (parse_to_file).
    event_pieces: Iterator[pl.DataFrame] | None = None
    # Optional, instead of ``rejects``: the rejects as a frame (source_file, line_no, text,
    # reason), for a streaming format whose rejects are many (parse/_kdump_stream.py SpillingAssembler:
    # a frame's strings take a fraction of the memory of Python tuples). A LazyFrame when the
    # format spilled them too (read back by parse_to_file after the events are written).
    rejects_frame: pl.DataFrame | pl.LazyFrame | None = None


# The driver turns the reason of a rejected last line that has no line terminator into this
# one, whatever the format said (the tracer was killed mid-line).
CUT_OFF = "cut off mid-line"
# a gzip trace whose stream ends before its end marker (parse/_reader.py _gunzip)
GZIP_CUT = "cut off mid-line (gzip stream ends early)"


def normalize_syscall(raw: pl.Expr) -> pl.Expr:
    """docs/schema.md's normalized name: lower case, without OS compatibility prefixes
    (``freebsd11_``, ``compat.``, ``linux_``) or leading underscores
    (``__sysctl`` -> ``sysctl``, ``_llseek`` -> ``llseek``)."""
    return (
        raw.str.to_lowercase()
        .str.replace(r"^(?:compat\.|freebsd\d+_|linux_)", "")
        .str.replace(r"^_+", "")
    )


class TraceFormat(Protocol):
    name: str                         # one of syspage.schema.SOURCE_FORMATS

    def sniff(self, head: Sequence[str]) -> float:
        """Confidence 0..1 that these first lines (up to 200) are this format."""

    def parse(self, lines: Sequence[str], ctx: ParseContext) -> FormatOutput:
        """Parse the lines (without their line terminators)."""


class ChunkedFormat(TraceFormat, Protocol):
    # Optional too: ``assembler(ctx)`` returning an object with ``feed(part: Framed)`` and
    # ``finish() -> FormatOutput``, the streaming form of ``assemble``: the driver then reads
    # the file in blocks and feeds each framed block as it comes (parse/_strace.py Assembler).

    """Optional, for big traces: a format that also has these two methods is parsed in chunks
    on all cores. ``frame`` turns any slice of lines into per-line records (no state carried
    from one line to the next), ``assemble`` turns all records, in line order, into the
    output (joins, clocks). parse(lines, ctx) must equal assemble([frame(lines, ctx)], ctx)."""

    def frame(self, lines: pl.Series, ctx: ParseContext) -> "Framed": ...

    def assemble(self, parts: list["Framed"], ctx: ParseContext) -> FormatOutput: ...


@dataclass
class Framed:
    """What ``frame`` returns for one chunk: its records, rejects and ignored-line count."""

    records: pl.DataFrame
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    ignored: int = 0
    carry: dict | None = None         # optional: what the chunk leaves open for the next one (a
                                      # streaming assembler's business; strace: a call cut mid-line)
