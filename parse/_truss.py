"""FreeBSD truss(1) text -> events/1 rows, and its -c table -> summary/1 rows.

truss prints one line per system call when the call returns (so there is nothing to join),
``SIGNAL n (SIGx)`` notes, ``process exit, rval = n`` and the ``-c`` summary. Prefixes: ``-f``
adds the pid (``%5d: ``), ``-H`` the thread id, ``-d`` the time since the trace started and
``-D`` the time the call took (``t->after - t->before`` in print_line_prefix(), although
truss(1) words it "since the last recorded event"): so -D goes to ``duration_ns``.

Sources: usr.bin/truss/syscalls.c and setup.c
(https://github.com/freebsd/freebsd-src/tree/main/usr.bin/truss), truss(1)
https://man.freebsd.org/cgi/man.cgi?query=truss . ``grammars/truss.lark`` is the parser of
record; ``_fast_line`` reads the common call line with one regex and must agree with it
(tests/test_parse_truss.py checks every corpus line through both).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import polars as pl
from lark import Token, Tree, UnexpectedInput

from syspage.parse._base import FormatOutput, ParseContext
from syspage.parse._bsd import build_parser, lark_reject_reason, normalize_syscall, seconds_to_ns, to_int
from syspage.parse._errno_bsd import errno_name

GRAMMAR_PATH = Path(__file__).with_name("grammars") / "truss.lark"

_TAIL = r"(?:= -?\d+ \(0x[0-9a-fA-F]+\)|ERR#-?\d+ '[^\n]*'|EJUSTRETURN|ERESTART)"
_FAST_RE = re.compile(
    r"[ \t]*(?:(\d+)(?:[ \t]+(\d+))?[ \t]*:[ \t]*)?((?:\d+\.\d+[ \t]+)*)"
    r"([A-Za-z_][A-Za-z0-9_.]*)\(([^\n]*?)\)(?=[ \t]+" + _TAIL + r"[ \t]*$|[ \t]*$)"
    r"[ \t]*(?:= (-?\d+) \((0x[0-9a-fA-F]+)\)|ERR#(-?\d+) '([^\n]*)'|(EJUSTRETURN|ERESTART))?[ \t]*$")
_SNIFF_RE = re.compile(r"(?:\)[ \t]+= -?\d+ \(0x[0-9a-fA-F]+\)|\)[ \t]+ERR#-?\d+ '|^ *SIGNAL \d+ \(SIG|process exit, rval = )")
_FREEBSD_TID_MIN = 100000      # FreeBSD thread ids start above PID_MAX (99999): sys/sys/proc.h
# truss decodes a sysctl MIB into its name: __sysctl("kern.smp.maxcpus",3,...), and the lookup of
# a sysctlbyname as "sysctl.name2oid kern.smp.maxcpus" (syscalls.c, print_arg case Sysctl).
_SYSCTL_ARG = re.compile(r'^"([^" ]+)')
_MIB_ARGS_TAIL = re.compile(r"(?:\.-?\d+)+$")


class TRec(NamedTuple):
    kind: str                     # call, signal, exit, killed, info, sum_row, sum_total, sum_noise
    prefix: tuple[int, ...]
    stamps: tuple[str, ...]
    name: str | None = None
    args: str | None = None
    ret_raw: str | None = None
    ret: str | None = None
    errno: str | None = None
    errmsg: str | None = None
    text: str | None = None


@functools.lru_cache(maxsize=1)
def parser():
    return build_parser(GRAMMAR_PATH.read_text())


def record_from_tree(tree: Tree) -> TRec:
    if tree.data == "summary_row":
        name, secs, calls, errors = str(tree.children[0]).split()
        return TRec("sum_row", (), (secs,), name=name, text=f"{calls} {errors}")
    if tree.data == "summary_total":
        secs, calls, errors = (str(t) for t in tree.children)
        return TRec("sum_total", (), (secs,), text=f"{calls} {errors}")
    if tree.data in ("summary_head", "summary_rule"):
        return TRec("sum_noise", (), ())
    prefix: tuple[int, ...] = ()
    stamps: list[str] = []
    event = None
    for c in tree.children:
        if isinstance(c, Tree) and c.data in ("prefix_one", "prefix_two"):
            prefix = tuple(int(t) for t in c.children)
        elif isinstance(c, Token) and c.type == "STAMP":
            stamps.append(str(c))
        else:
            event = c
    st = tuple(stamps)
    if event.data == "syscall":
        call = str(event.children[0])
        name, _, args = call.partition("(")
        args = args[:-1]
        if len(event.children) == 1:
            return TRec("call", prefix, st, name=name, args=args)
        val = event.children[1]
        if val.data == "ret_value":
            r, h = (str(t) for t in val.children)
            return TRec("call", prefix, st, name=name, args=args, ret_raw=f"{r} ({h})", ret=r)
        if val.data == "ret_errno":
            e, msg = (str(t) for t in val.children)
            return TRec("call", prefix, st, name=name, args=args, ret_raw=f"{e} {msg}", errno=e[4:], errmsg=msg[1:-1])
        word = "EJUSTRETURN" if val.data == "ret_justreturn" else "ERESTART"
        return TRec("call", prefix, st, name=name, args=args, ret_raw=word)
    if event.data == "signal":
        ch = [str(t) for t in event.children]
        text = f"SIGNAL {ch[0]} ({ch[1]})" + (f" {ch[2]}" if len(ch) > 2 else "")
        return TRec("signal", prefix, st, text=text)
    if event.data == "exit":
        return TRec("exit", prefix, st, ret=str(event.children[0]), text=f"process exit, rval = {event.children[0]}")
    if event.data == "killed":
        ch = [str(t) for t in event.children]
        return TRec("killed", prefix, st, text=f"signal = {' '.join(ch)}")
    return TRec("info", prefix, st, text=str(event.children[0]))


def _fast_line(line: str) -> TRec | None:
    m = _FAST_RE.match(line)
    if m is None:
        return None
    p1, p2, stamps, name, args, r, h, e, msg, word = m.groups()
    prefix = (int(p1), int(p2)) if p2 else ((int(p1),) if p1 else ())
    st = tuple(stamps.split())
    if r is not None:
        return TRec("call", prefix, st, name=name, args=args, ret_raw=f"{r} ({h})", ret=r)
    if e is not None:
        return TRec("call", prefix, st, name=name, args=args, ret_raw=f"ERR#{e} '{msg}'", errno=e, errmsg=msg)
    if word is not None:
        return TRec("call", prefix, st, name=name, args=args, ret_raw=word)
    return TRec("call", prefix, st, name=name, args=args)


def grammar_line(line: str) -> TRec | str:
    try:
        return record_from_tree(parser().parse(line))
    except UnexpectedInput as exc:
        if re.match(r"[ \t]*(?:\d+(?:[ \t]+\d+)?:[ \t]*)?(?:\d+\.\d+[ \t]+)*[A-Za-z_]\w*\(", line):
            return "truss call line: " + lark_reject_reason("truss", exc)
        return "prose around a pasted trace"


def read_line(line: str) -> TRec | str:
    return _fast_line(line) or grammar_line(line)


_EVENT_COLS = {"line_no": pl.Int64, "ts_ns": pl.Int64, "pid": pl.Int64, "tid": pl.Int64, "kind": pl.String,
               "syscall": pl.String, "syscall_raw": pl.String, "args_raw": pl.String, "ret": pl.Int64,
               "ret_raw": pl.String, "errno": pl.Int32, "errno_name": pl.String, "duration_ns": pl.Int64,
               "incomplete": pl.Boolean, "sysctl_name": pl.String}


class TrussFormat:
    name = "truss"

    def sniff(self, head: Sequence[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        hits = sum(1 for h in lines if _SNIFF_RE.search(h))
        if hits == 0:
            return 0.0
        return min(1.0, 0.4 + 0.6 * hits / len(lines))

    def parse(self, lines: Sequence[str], ctx: ParseContext) -> FormatOutput:
        first = ctx.first_line_no
        grammar_only = getattr(ctx, "grammar_only", False)
        os_name = ctx.os or "freebsd"
        rejects: list[tuple[int, str, str]] = []
        ignored = 0
        recs: list[tuple[int, TRec]] = []
        n = len(lines)
        for i, line in enumerate(lines):
            if not line.strip():
                ignored += 1
                continue
            got = grammar_line(line) if grammar_only else read_line(line)
            if isinstance(got, str):
                if i == n - 1 and got.startswith("truss call line"):
                    got = "cut off mid-line"
                rejects.append((first + i, line, got))
                continue
            if got.kind == "sum_noise":
                ignored += 1
                continue
            recs.append((first + i, got))
        events, summary = self._rows(recs, os_name)
        return FormatOutput(events=events, summary=summary, rejects=rejects, ignored=ignored, os=os_name)

    def _rows(self, recs, os_name):
        stamped = [r.stamps for _, r in recs if r.stamps and r.kind not in ("sum_row", "sum_total")]
        k = len(stamped[0]) if stamped else 0
        roles: tuple[str, ...] = ()
        if k >= 2:
            roles = ("since_start", "in_call")
        elif k == 1:
            vals = [seconds_to_ns(s[0]) for s in stamped if len(s) == 1]
            roles = ("since_start",) if all(a <= b for a, b in zip(vals, vals[1:])) else ("in_call",)
        ev = {c: [] for c in _EVENT_COLS}
        summ = {"line_no": [], "syscall": [], "calls": [], "errors": [], "time_ns": []}
        for ln, r in recs:
            if r.kind in ("sum_row", "sum_total"):
                calls, errors = r.text.split()
                summ["line_no"].append(ln)
                summ["syscall"].append("total" if r.kind == "sum_total" else normalize_syscall(r.name, os_name))
                summ["calls"].append(int(calls))
                summ["errors"].append(int(errors))
                summ["time_ns"].append(seconds_to_ns(r.stamps[0]))
                continue
            pid = tid = None
            if len(r.prefix) == 2:
                pid, tid = r.prefix
            elif len(r.prefix) == 1:
                if r.prefix[0] >= _FREEBSD_TID_MIN:
                    tid = r.prefix[0]          # -H alone prints the thread id
                else:
                    pid = r.prefix[0]
            ts = dur = None
            if len(r.stamps) == k and k:
                for role, s in zip(roles, r.stamps):
                    if role == "since_start":
                        ts = seconds_to_ns(s)
                    else:
                        dur = seconds_to_ns(s)
                if ts is not None and dur is not None and r.kind == "call":
                    ts -= dur                  # -d stamps the return; the row starts at the entry
            ev["line_no"].append(ln)
            ev["ts_ns"].append(ts)
            ev["pid"].append(pid)
            ev["tid"].append(tid)
            ev["kind"].append(r.kind)
            ev["syscall"].append(normalize_syscall(r.name, os_name) if r.name else None)
            ev["syscall_raw"].append(r.name)
            ev["args_raw"].append(r.args if r.kind == "call" else r.text)
            ev["ret_raw"].append(r.ret_raw if r.kind == "call" else None)
            number = to_int(r.errno)
            ev["errno"].append(number)
            if r.ret_raw in ("EJUSTRETURN", "ERESTART"):
                ev["errno_name"].append(r.ret_raw)
            else:
                ev["errno_name"].append(errno_name(os_name, number, r.errmsg))
            ev["ret"].append(-1 if number is not None else to_int(r.ret))
            ev["duration_ns"].append(dur if r.kind == "call" else None)
            ev["incomplete"].append(r.kind == "call" and r.ret_raw is None)
            sysctl_name = None
            if r.kind == "call" and r.args and ev["syscall"][-1] in ("sysctl", "sysctlbyname"):
                m = _SYSCTL_ARG.match(r.args)
                if m:
                    sysctl_name = _MIB_ARGS_TAIL.sub("", m.group(1)) or m.group(1)
            ev["sysctl_name"].append(sysctl_name)
        events = pl.DataFrame(ev, schema=_EVENT_COLS).with_columns(
            pl.col("line_no").alias("line_no_end"),
            pl.lit("truss").alias("source_format"),
            pl.lit(os_name).alias("os"),
            pl.when(pl.col("ts_ns").is_not_null()).then(pl.lit("relative")).alias("ts_clock"),
        )
        summary = pl.DataFrame(summ, schema={"line_no": pl.Int64, "syscall": pl.String, "calls": pl.Int64,
                                             "errors": pl.Int64, "time_ns": pl.Int64})
        total = summary.filter(pl.col("syscall") == "total")["time_ns"]
        denom = total[0] if total.len() and total[0] else None
        summary = summary.with_columns(
            pl.lit("truss").alias("source_format"),
            pl.lit(os_name).alias("os"),
            (pl.col("time_ns") * 100.0 / denom if denom else pl.lit(None, dtype=pl.Float64)).alias("pct_time"),
        )
        return events, summary


FORMAT = TrussFormat()
