"""kdump(1) text -> events/1 rows (FreeBSD, and OpenBSD, NetBSD, DragonFly where samples exist).

This module is the format (KdumpFormat: sniff, frame/frame_bytes, assemble, parse) and the join of
reference; each step has its own module beside it.

Three steps, as strace-process-tree does it: lines -> records -> joined rows.

1. Each line becomes a record (``KRec``; in columns, RECORD_SCHEMA) or a data line.
   ``grammars/kdump.lark`` is the parser of record. Fast paths give exactly what it gives: the C
   framer (native/kdump_frame.c, via _native.kdump_framer; chunks on all cores) for the common
   shapes, then ``_fast_record``/``_fast_unframed`` (compiled regexes) for the lines the C left,
   then Lark for the rest (tests/test_parse_kdump_differential.py compares them on every line of
   the test corpus, on mutated and on generated lines). parse/_kdump_records.py.
2. The OS and the timestamp columns (-T absolute, -E elapsed, -R relative, any combination:
   kdump.c dumpheader() prints them in that order) are told apart over the first records.
   parse/_kdump_detect.py.
3. CALL and RET of the same thread are joined into one ``call`` row (line_no of CALL, line_no_end of
   RET); SCTL names are attached to their call's ``sysctl_name``; GIO/ARGS data lines extend the
   record they belong to. ``join_frame`` does it in Polars (parse/_kdump_join.py);
   ``KdumpFormat._join``, record by record, is the reference the grammar-only path uses.

parse_to_file joins a one-file trace block by block, its rows spilled to disk as they come:
parse/_kdump_stream.py.

Sources: FreeBSD usr.bin/kdump/kdump.c (https://github.com/freebsd/freebsd-src/blob/main/usr.bin/kdump/kdump.c),
kdump(1) https://man.freebsd.org/cgi/man.cgi?query=kdump . docs/formats-bsd.md has the details.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import polars as pl

from syspage.parse import _kdump_detect, _native   # _kdump_detect.DETECT_RECORDS: read when used (tests set it)
from syspage.parse._base import CUT_OFF, FormatOutput, ParseContext
from syspage.parse._bsd import normalize_syscall, seconds_to_ns, to_int
from syspage.parse._errno_bsd import errno_name
from syspage.parse._kdump_detect import _stamp_roles, detect_os, detect_os_frame, separator_counts
from syspage.parse._kdump_join import (_COLUMNS, _DATA_ORPHAN, _DTYPES, _HAS_DATA_LINES, _OPENBSD_MIB, KIND_OF_TYPE, join_frame,
                                       mib_node)
from syspage.parse._kdump_records import (HEADER_RE, PROSE, RECORD_COLUMNS, RECORD_SCHEMA, KdumpFramed,
                                          grammar_line, read_framed, read_line, read_records, ret_parts)
from syspage.parse._kdump_stream import SpillingAssembler


class KdumpFormat:
    """kdump in two steps, as parse/_base.py's ChunkedFormat: ``frame_bytes`` (C, chunks on all
    cores) or ``frame`` (Python) reads the lines of a chunk into records; ``assemble`` detects the
    OS and the timestamp columns from the first DETECT_RECORDS records of each file and joins."""

    name = "kdump"

    def sniff(self, head: Sequence[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        hits = sum(1 for h in lines if HEADER_RE.match(h))
        if hits == 0:
            return 0.0
        return min(1.0, 0.5 + 0.5 * hits / len(lines)) if hits >= 2 or hits == len(lines) else 0.3

    def frame(self, lines: pl.Series, ctx: ParseContext) -> KdumpFramed:
        texts = lines.to_list() if isinstance(lines, pl.Series) else list(lines)
        first = ctx.first_line_no
        read = grammar_line if ctx.grammar_only else read_line
        cols, rejects, ignored = read_records(zip(range(first, first + len(texts)), texts), read)
        return KdumpFramed(records=pl.DataFrame(cols, schema=RECORD_SCHEMA), rejects=rejects, ignored=ignored,
                           source_file=ctx.source_file, last_line_no=first + len(texts) - 1)

    def frame_bytes(self, data: bytes, start: int, end: int, ctx: ParseContext) -> KdumpFramed | None:
        """Frame data[start:end] (whole lines, UTF-8 already checked) with the C framer; None when
        it is not available here (the driver then uses ``frame``)."""
        framer = None if ctx.grammar_only else _native.kdump_framer()
        if framer is None:
            return None
        framed, other, n_lines, blank = framer(data, start, end, ctx.first_line_no)
        records = read_framed(framed)
        del framed
        rejects = [(ln, line, PROSE) for ln, line in
                   records.filter(pl.col("rtype") == "BAD").select("line_no", "text").iter_rows()]
        numbered = []
        for row in other.decode("utf-8").split("\n")[:-1]:
            line_no, _, text = row.partition("\x1f")
            numbered.append((int(line_no), text))
        cols, slow_rejects, ignored = read_records(numbered, read_line)
        if numbered:
            records = pl.concat([records, pl.DataFrame(cols, schema=RECORD_SCHEMA)]).sort("line_no")
            rejects = sorted(rejects + slow_rejects)
        return KdumpFramed(records=records, rejects=rejects, ignored=blank + ignored, source_file=ctx.source_file,
                           last_line_no=ctx.first_line_no + n_lines - 1)

    def assemble(self, parts: list[KdumpFramed], ctx: ParseContext) -> FormatOutput:
        """Join each file's records (the driver hands over every chunk of every file, in order;
        when it has tagged them with source_file, rows and rejects keep it)."""
        files: list[list[KdumpFramed]] = []
        for part in parts:
            if files and files[-1][0].source_file == part.source_file:
                files[-1].append(part)
            else:
                files.append([part])
        _native.trim_heap()               # the framers' freed buffers: not part of the peak
        events, rejects, os_names = [], [], []
        for chunks in files:
            tagged = "source_file" in chunks[0].records.columns
            path = chunks[0].source_file
            records = pl.concat([p.records.select(RECORD_COLUMNS) for p in chunks])
            if ctx.grammar_only:          # the parser of record, step by step (the baseline)
                records = {c: records.get_column(c).to_list() for c in RECORD_COLUMNS}
            file_rejects = [r[:3] for p in chunks for r in p.rejects]
            frame, os_name = self._assemble_file(records, file_rejects, chunks[-1].last_line_no, ctx)
            del records
            if tagged:
                frame = frame.with_columns(pl.lit(path, dtype=pl.String).alias("source_file"))
                file_rejects = [(*r, path) for r in file_rejects]
            events.append(frame)
            rejects += file_rejects
            os_names.append(os_name)
        if not events:
            events.append(self._assemble_file({c: [] for c in RECORD_COLUMNS}, [], 0, ctx)[0])
        return FormatOutput(events=pl.concat(events) if len(events) > 1 else events[0], summary=pl.DataFrame(),
                            rejects=rejects, ignored=sum(p.ignored for p in parts),
                            os=next((o for o in os_names if o), None))

    def spilling_assembler(self, ctx: ParseContext, directory: Path) -> SpillingAssembler | None:
        """For parse_to_file: one file's rows joined block by block and written to DIRECTORY
        (None for the grammar-only parse, which joins record by record in memory)."""
        return None if ctx.grammar_only else SpillingAssembler(ctx, directory)

    def parse(self, lines: Sequence[str], ctx: ParseContext) -> FormatOutput:
        lines = lines.to_list() if isinstance(lines, pl.Series) else list(lines)
        part = None
        text = "".join(line + "\n" for line in lines)
        if "\r" not in text:              # the C drops a line's trailing CR as the driver's reader does
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:    # lone surrogates (undecodable input handed over as str)
                data = None
            if data is not None:
                part = self.frame_bytes(data, 0, len(data), ctx)
        del text
        if part is not None:
            out = self.assemble([part], ctx)
        else:
            # in Python lists, not a DataFrame: a str from the caller may hold what Polars cannot
            first = ctx.first_line_no
            read = grammar_line if ctx.grammar_only else read_line
            cols, rejects, ignored = read_records(zip(range(first, first + len(lines)), lines), read)
            events, os_name = self._assemble_file(cols, rejects, first + len(lines) - 1, ctx)
            out = FormatOutput(events=events, summary=pl.DataFrame(), rejects=rejects, ignored=ignored, os=os_name)
        if ctx.progress:
            ctx.progress(len(lines), len(lines))
        return out

    def _assemble_file(self, records: pl.DataFrame | dict[str, list], rejects: list, last_line_no: int,
                       ctx: ParseContext) -> tuple[pl.DataFrame, str]:
        """One file's records (in line order) -> its events; completes and sorts its rejects.

        A DataFrame is joined by ``join_frame`` (Polars); a dict of lists by ``_join``, record by
        record: the reference, which the grammar-only path uses and the differential tests
        compare with the fast path."""
        # the last line of the file, rejected with a record header: the tracer stopped mid-line
        rejects[:] = [(ln, text, CUT_OFF if ln == last_line_no and HEADER_RE.match(text) else reason)
                      for ln, text, reason in rejects]
        heads = ("rtype", "name", "text", "tid", "stamps", "sep") if isinstance(records, dict) else ("tid", "stamps", "sep")
        if isinstance(records, pl.DataFrame):
            head = {c: records.get_column(c).head(_kdump_detect.DETECT_RECORDS).to_list() for c in heads}
        else:
            head = {c: records[c][:_kdump_detect.DETECT_RECORDS] for c in heads}
        counts = separator_counts(head["tid"], head["sep"])
        if ctx.os:
            os_name = ctx.os
        elif isinstance(records, pl.DataFrame):
            os_name = detect_os_frame(records.head(_kdump_detect.DETECT_RECORDS), counts)
        else:
            os_name = detect_os(head["rtype"], head["name"], head["text"], head["tid"], counts)
        stamps = _stamp_roles(head["stamps"])
        del head
        if isinstance(records, pl.DataFrame):
            events = join_frame(records, stamps, os_name, rejects)
        else:
            events = self._join(records, stamps, os_name, rejects)
        rejects.sort()
        return events, os_name

    def _join(self, records: dict[str, list], stamps, os_name, rejects) -> pl.DataFrame:
        k, roles = stamps
        pick = None
        for want in ("abs", "elapsed", "rel"):
            if want in roles:
                pick = (roles.index(want), want)
                break
        clock = None if pick is None else ("epoch" if pick[1] == "abs" else "relative")
        cols = {c: [] for c in _COLUMNS}
        (c_line, c_end, c_ts, c_pid, c_tid, c_comm, c_kind, c_sys, c_raw, c_args, c_ret, c_retraw, c_errno,
         c_ename, c_dur, c_inc, c_sctl) = (cols[c] for c in _COLUMNS)
        open_calls: dict[tuple, int] = {}
        last_row = -1            # the row data lines extend
        last_type = None
        vis_open = False         # inside a visdump "..." block that has not closed yet
        cum = 0
        dropped: set[int] = set()    # rejected lines that turned out to be visdump data
        columns = [records.pop(c) for c in RECORD_COLUMNS]
        for (ln, rtype, pid, tid, comm, stamp_text, name, text, _sep) in zip(*columns):
            if rtype == "DUMP" or rtype == "BAD":
                line = text                      # the whole line; a DUMP's data starts after its spaces
                if rtype == "DUMP" and last_type in _HAS_DATA_LINES and last_row >= 0:
                    c_end[last_row] = ln
                    text = text.lstrip(" ")
                    if text.startswith('"'):
                        vis_open = not (len(text) > 1 and text.endswith('"'))
                    elif vis_open and text.endswith('"'):
                        vis_open = False
                    continue
                if rtype == "BAD" and vis_open and last_row >= 0 and line[:1].isspace():
                    # a data line of an open visdump that a pager turned from TAB into spaces
                    c_end[last_row] = ln
                    dropped.add(ln)
                    if line.rstrip().endswith('"'):
                        vis_open = False
                    continue
                if rtype == "DUMP":
                    rejects.append((ln, line, _DATA_ORPHAN))
                vis_open = False
                last_type = None
                continue
            vis_open = False
            last_type = rtype
            ts = None
            if pick is not None and stamp_text is not None:
                parts = stamp_text.split(" ")
                if len(parts) == k:
                    ts = seconds_to_ns(parts[pick[0]])
                    if pick[1] == "rel":
                        cum += ts
                        ts = cum
            key = (pid, tid)
            if rtype == "RET":
                ret, errno, errmsg = ret_parts(text)
                idx = open_calls.pop(key, None)
                if idx is not None and c_raw[idx] == name:
                    c_end[idx] = ln
                    c_inc[idx] = False
                    if ts is not None and c_ts[idx] is not None:
                        c_dur[idx] = ts - c_ts[idx]
                else:
                    # a RET without its CALL (the trace began inside the call, or another call's RET)
                    idx = len(c_line)
                    _new_row(cols, ln, ts, pid, tid, comm, "call")
                    c_sys[idx] = normalize_syscall(name, os_name)
                    c_raw[idx] = name
                c_retraw[idx] = text
                if ret in ("JUSTRETURN", "RESTART"):
                    # kernel pseudo-errors (sys/sys/errno.h: ERESTART -1, EJUSTRETURN -2): no user errno
                    c_ename[idx] = "E" + ret
                else:
                    c_ret[idx] = to_int(ret)
                    if errno is not None:
                        number = to_int(errno)
                        c_errno[idx] = number
                        c_ename[idx] = errno_name(os_name, number, errmsg)
                last_row = idx
                continue
            idx = len(c_line)
            if rtype == "CALL":
                open_calls.pop(key, None)      # an earlier CALL with no RET stays incomplete
                _new_row(cols, ln, ts, pid, tid, comm, "call")
                c_sys[idx] = normalize_syscall(name, os_name)
                c_raw[idx] = name
                args = text[1:-1] if text else None
                c_args[idx] = args
                if args and name == "sysctl":
                    m = _OPENBSD_MIB.match(args)
                    if m:
                        c_sctl[idx] = mib_node(m.group(1))
                open_calls[key] = idx
                last_row = idx
                continue
            _new_row(cols, ln, ts, pid, tid, comm, KIND_OF_TYPE.get(rtype, "info"))
            c_args[idx] = text if rtype in KIND_OF_TYPE else (f"{rtype} {text}" if text else rtype)
            if rtype == "SCTL":
                sysctl = mib_node(text.strip('"')) if text else None
                c_sctl[idx] = sysctl
                call = open_calls.get(key)
                if call is not None and c_sctl[call] is None:
                    c_sctl[call] = sysctl
            last_row = idx
        del columns
        if dropped:
            rejects[:] = [r for r in rejects if r[0] not in dropped]
        # one column at a time, each Python list freed once it is a Series (peak memory)
        del (c_line, c_end, c_ts, c_pid, c_tid, c_comm, c_kind, c_sys, c_raw, c_args, c_ret, c_retraw, c_errno,
             c_ename, c_dur, c_inc, c_sctl, open_calls)
        series = []
        for c in _COLUMNS:
            series.append(pl.Series(c, cols.pop(c), dtype=_DTYPES[c]))
        frame = pl.DataFrame(series)
        return frame.with_columns(
            pl.lit("kdump").alias("source_format"),
            pl.lit(os_name).alias("os"),
            pl.when(pl.col("ts_ns").is_not_null()).then(pl.lit(clock, dtype=pl.String)).alias("ts_clock"),
        )


def _new_row(cols, ln, ts, pid, tid, comm, kind) -> None:
    cols["line_no"].append(ln)
    cols["line_no_end"].append(ln)
    cols["ts_ns"].append(ts)
    cols["pid"].append(pid)
    cols["tid"].append(tid)
    cols["comm"].append(comm)
    cols["kind"].append(kind)
    for c in ("syscall", "syscall_raw", "args_raw", "ret", "ret_raw", "errno", "errno_name", "duration_ns",
              "sysctl_name"):
        cols[c].append(None)
    cols["incomplete"].append(kind == "call")


FORMAT = KdumpFormat()
