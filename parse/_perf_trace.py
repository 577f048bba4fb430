"""perf trace output -> events/1 and summary/1 (grammar: grammars/perf_trace.lark).

Every line goes through the Lark grammar (no fast path: perf trace is not the format the
collect stage records big traces with, and there is no speed target for it). The records
then go through the same steps as strace's (parse/_strace.py): an unfinished call (``...``)
is joined with the next ``... [continued]:`` line of the same thread, thread ids are mapped
to their thread group through clone's THREAD flag, and clocks are converted.

What perf prints (tools/perf/builtin-trace.c): the time in ms since the first event
(``?`` when the start was not seen), the duration in ms, ``comm/tid``, the call with perf's
own argument names, and the return; ``-s`` prints one summary block per thread instead
(calls, errors, total/min/avg/max in ms, stddev %). Choices: ts_clock is ``relative``;
a summary row's ``pct_time`` is its share of its thread's total time (perf prints none).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Sequence

import polars as pl
from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedInput

from syspage.parse._base import FormatOutput, Framed, ParseContext, normalize_syscall
from syspage.parse._strace import (LINUX_ERRNOS, join_resumed, normalized_names, seconds_to_ns, thread_groups,
                                   with_file_id)

NAME = "perf_trace"
GRAMMAR_PATH = Path(__file__).with_name("grammars") / "perf_trace.lark"

RECORD_SCHEMA = {
    "line_no": pl.Int64,
    "rec": pl.String,        # call unfinished resumed title summary
    "comm": pl.String,
    "pid_text": pl.String,   # the tid after comm/, or the pid of a summary block title
    "ts_text": pl.String,    # ms since the first event, or "?"
    "dur_text": pl.String,   # ms
    "name": pl.String,
    "args": pl.String,
    "ret_raw": pl.String,
    "retval": pl.String,
    "errname": pl.String,
}
RECORD_COLUMNS = list(RECORD_SCHEMA)

# The -s summary's headings and rules, and blank lines.
IGNORABLE = re.compile(
    r"^\s*$|^\s*Summary of events:\s*$|^\s*syscall\s+calls\s+(errors\s+)?total\s+min|^\s*\(msec\)|^\s*-{5,}[ -]*$"
)
_TITLE = re.compile(r"^\s*(?P<comm>.*) \((?P<pid>\d+)\), \d+ events, [\d.]+%\s*$")


@functools.lru_cache(maxsize=1)
def grammar() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", lexer="contextual", strict=True,
                maybe_placeholders=False)


def _result(result: Tree, line: str) -> dict:
    out = {"ret_raw": "", "retval": None, "errname": None}
    if not result.children:
        return out
    first = result.children[0]
    end = first.end_pos
    if first.type == "RET_FLAGS":
        return {"ret_raw": first.value, "retval": None, "errname": None}
    out["retval"] = first.value.split("<", 1)[0]
    for child in result.children[1:]:
        if isinstance(child, Tree):
            end = child.children[-1].end_pos
        elif child.type == "ERRNAME":
            out["errname"] = child.value
            end = child.end_pos
    out["ret_raw"] = line[first.start_pos:end]
    return out


def record_from_tree(tree: Tree, line: str) -> dict:
    rec = dict.fromkeys(RECORD_COLUMNS)
    node = tree.children[0]
    if node.data == "summary_title":
        m = _TITLE.match(line)
        rec.update(rec="title", comm=m["comm"], pid_text=m["pid"])
        return rec
    if node.data == "summary_row":
        toks = node.children
        numbers = [t.value for t in toks[1:]]
        rec.update(rec="summary", name=toks[0].value, args=" ".join(numbers))
        return rec
    # event: TIME ( [DURATION] ) : COMM_TID body
    toks = [c for c in node.children if isinstance(c, Token)]
    body = node.children[-1]
    rec["ts_text"] = toks[0].value
    duration = next((t for t in toks if t.type == "DURATION"), None)
    rec["dur_text"] = duration.value[:-3].strip() if duration else None
    comm_tid = next(t for t in toks if t.type == "COMM_TID")
    comm, _, tid = comm_tid.value.rpartition("/")
    rec.update(comm=comm, pid_text=tid)
    if body.data == "call":
        name, lpar, _args, rpar, result = body.children
        rec.update(rec="call", name=name.value, args=line[lpar.end_pos:rpar.start_pos], **_result(result, line))
    elif body.data == "unfinished":
        name, lpar, _args, rpar, _dots = body.children
        rec.update(rec="unfinished", name=name.value, args=line[lpar.end_pos:rpar.start_pos])
    else:  # continued: ... [continued]: NAME ( args ) ) result
        _cont, name, lpar, _args, rpar, _close, result = body.children
        rec.update(rec="resumed", name=name.value, args=line[lpar.end_pos:rpar.start_pos], **_result(result, line))
    return rec


def _reason(exc: LarkError) -> str:
    if isinstance(exc, UnexpectedInput):
        token = getattr(exc, "token", None)
        near = repr(str(token)[:30]) if token is not None and str(token) else "end of line"
        return f"no perf trace grammar rule matches at column {getattr(exc, 'column', '?')} (near {near})"
    return f"no perf trace grammar rule matches ({exc.__class__.__name__})"


class PerfTraceFormat:
    name = NAME

    def sniff(self, head: Sequence[str]) -> float:
        shape = re.compile(r"^\s*(?:\d+\.\d+|\?) \(\s*(?:\d+\.\d+ ms)?\s*\): .+/\d+ ")
        lines = [ln for ln in head if ln.strip()]
        if not lines:
            return 0.0
        if any(re.match(r"^\s*Summary of events:", ln) for ln in lines):
            return 0.9
        return sum(1 for ln in lines if shape.match(ln)) / len(lines)

    def frame(self, lines: pl.Series, ctx: ParseContext) -> Framed:
        parser = grammar()
        records, rejects, ignored = [], [], 0
        for offset, line in enumerate(lines.to_list()):
            line_no = ctx.first_line_no + offset
            line = line.removesuffix("\r")
            if IGNORABLE.match(line):
                ignored += 1
                continue
            try:
                rec = record_from_tree(parser.parse(line), line)
            except LarkError as exc:
                rejects.append((line_no, line, _reason(exc)))
                continue
            rec["line_no"] = line_no
            records.append(rec)
        frame = pl.DataFrame(records, schema=RECORD_SCHEMA) if records else pl.DataFrame(schema=RECORD_SCHEMA)
        return Framed(records=frame, rejects=rejects, ignored=ignored)

    def assemble(self, parts: list[Framed], ctx: ParseContext) -> FormatOutput:
        records = pl.concat([p.records for p in parts]) if parts else pl.DataFrame(schema=RECORD_SCHEMA)
        if "source_file" not in records.columns:
            records = records.with_columns(pl.lit(ctx.source_file, dtype=pl.String).alias("source_file"))
        records = records.sort(["source_file", "line_no"], maintain_order=True)
        summary = _summary(records, ctx)
        events = _events(records.filter(pl.col("rec").is_in(["call", "unfinished", "resumed"])), ctx)
        titles = records.filter(pl.col("rec") == "title").height  # block headings: ignorable
        return FormatOutput(events=events, summary=summary, rejects=[r for p in parts for r in p.rejects],
                            ignored=sum(p.ignored for p in parts) + titles, os=ctx.os or "linux")

    def parse(self, lines: Sequence[str], ctx: ParseContext) -> FormatOutput:
        series = lines if isinstance(lines, pl.Series) else pl.Series("text", list(lines), dtype=pl.String)
        return self.assemble([self.frame(series, ctx)], ctx)


def _ms_to_ns(text: pl.Expr) -> pl.Expr:
    return seconds_to_ns(text) // 1000


def _events(records: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    names = normalized_names(records["name"])
    lf = records.lazy().with_columns(
        pl.col("pid_text").cast(pl.Int64).alias("tid"),
        pl.col("source_file").alias("_file"),
        pl.col("dur_text").alias("dur"),
        pl.lit(None, dtype=pl.String).alias("retval") if "retval" not in records.columns else pl.col("retval"),
    ).with_columns(pl.col("tid").alias("_key"))
    lf = join_resumed(with_file_id(lf, records))
    retval = pl.col("retval")
    ret = (
        pl.when(retval.str.starts_with("0x")).then(retval.str.slice(2).str.to_integer(base=16, strict=False))
        .otherwise(retval.str.to_integer(base=10, strict=False))
    )
    df = lf.with_columns(
        pl.lit(NAME).alias("source_format"),
        pl.lit(ctx.os or "linux").alias("os"),
        pl.when(pl.col("ts_text") == "?").then(None).otherwise(_ms_to_ns(pl.col("ts_text"))).alias("ts_ns"),
        pl.lit("relative").alias("ts_clock"),
        pl.lit("call").alias("kind"),
        pl.col("name").replace_strict(names, default=None, return_dtype=pl.String).alias("syscall"),
        pl.col("name").alias("syscall_raw"),
        pl.col("args").alias("args_raw"),
        ret.alias("ret"),
        pl.col("errname").replace_strict(LINUX_ERRNOS, default=None, return_dtype=pl.Int32).alias("errno"),
        pl.col("errname").alias("errno_name"),
        _ms_to_ns(pl.col("dur")).alias("duration_ns"),
        pl.col("_unpaired").alias("incomplete"),
    ).select(
        "source_format", "os", "source_file", "line_no", "line_no_end", "ts_ns", "ts_clock", "tid", "comm", "kind",
        "syscall", "syscall_raw", "args_raw", "ret", "ret_raw", "errno", "errno_name", "duration_ns", "incomplete",
    ).collect()
    df = df.with_columns(pl.when(pl.col("ts_clock").is_not_null() & pl.col("ts_ns").is_null().all())
                         .then(None).otherwise(pl.col("ts_clock")).alias("ts_clock"))
    return df.with_columns(thread_groups(df, thread_flag="THREAD").alias("pid")).sort(["source_file", "line_no"])


def _summary(records: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """perf trace -s rows, each with the pid of the block title above it."""
    blocks = records.filter(pl.col("rec").is_in(["title", "summary"])).with_columns(
        pl.when(pl.col("rec") == "title").then(pl.col("pid_text")).otherwise(None)
        .forward_fill().over("source_file").cast(pl.Int64).alias("pid")
    ).filter(pl.col("rec") == "summary")
    nums = pl.col("args").str.split(" ")
    has_errors = nums.list.len() == 7  # calls [errors] total min avg max stddev%
    total = pl.when(has_errors).then(nums.list.get(2, null_on_oob=True)).otherwise(nums.list.get(1, null_on_oob=True))
    out = blocks.select(
        pl.lit(NAME).alias("source_format"),
        pl.lit(ctx.os or "linux").alias("os"),
        "source_file", "line_no", "pid",
        normalize_syscall(pl.col("name")).alias("syscall"),
        nums.list.get(0).cast(pl.Int64).alias("calls"),
        pl.when(has_errors).then(nums.list.get(1, null_on_oob=True).cast(pl.Int64)).otherwise(None).alias("errors"),
        _ms_to_ns(total).alias("time_ns"),
    )
    return out.with_columns(
        (pl.col("time_ns") / pl.col("time_ns").sum().over(["source_file", "pid"]) * 100).alias("pct_time")
    )


FORMAT = PerfTraceFormat()
