"""DTrace (and bpftrace running our script) text -> events/1 rows and summary/1 rows.

Three shapes, one grammar (``grammars/dtrace.lark``):

- our ``sp1`` line (docs/dtrace-line-format.md), one completed call per line. source_format is
  ``bpftrace`` when the trace says ``sp1-clock<TAB>boot`` (our bpftrace script, Linux: ts_ns is
  then made relative to the first record, as docs/schema.md defines ``relative``), else
  ``dtrace`` (``walltimestamp``: epoch);
- the default listing ``CPU ID FUNCTION:NAME ...``: rows of a ``syscall`` provider probe (known
  from the ``dtrace: description '...'`` line) are ``call`` rows with only the entry or the return
  seen (incomplete); other providers' rows are ``info``;
- aggregations: a ``@x[probefunc] = count()`` table (known from the ``# dtrace -n '...'`` line
  that precedes it, as in the DTraceToolkit examples) becomes summary/1 rows, and so do the
  DTraceToolkit procsystime tables (elapsed times and counts). Tables keyed by anything else
  (execname, pid, cpu) and quantize() distributions are not syscall records and are rejected
  with that reason; so are the CPU-time tables of procsystime (summary/1 keeps one time).

The sp1 line has a fast path (``_fast_sp1``: split on TAB) that tests/test_parse_dtrace.py proves
equal to the grammar on every corpus line.
"""
from __future__ import annotations

import errno as _host_errno
import functools
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import polars as pl
from lark import Tree, UnexpectedInput

from syspage.parse._base import FormatOutput, ParseContext
from syspage.parse._bsd import build_parser, lark_reject_reason, normalize_syscall
from syspage.parse._errno_bsd import errno_name

GRAMMAR_PATH = Path(__file__).with_name("grammars") / "dtrace.lark"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_UINT = re.compile(r"\d+")
_SINT = re.compile(r"-?\d+")
_AGG_CMD = re.compile(r"@\w*\[\s*([^\]]+?)\s*\]\s*=\s*(\w+)\(")
# dtrace -q prints only what the script's printf()s say: such lines cannot be told from prose.
PROSE = "prose around a pasted trace, or free-form printf() output of dtrace -q"
_QUANT_HEAD = re.compile(r" *value +-+ Distribution -+ count")
_PROVIDER = re.compile(r"dtrace: description '([^:']*):")
_MACOS = re.compile(r"_nocancel$|^(?:bsdthread_|__mac_syscall|psynch_|kevent_|workq_|ulock_|proc_info|csops|shared_region)")
_FREEBSD = re.compile(r"^(?:__sysctl|_umtx_op|thr_|cap_|freebsd\d+_|sysarch|cpuset)")
_SOLARIS = re.compile(r"^(?:exece|lwp_|pollsys|gtime|p_online|sysconfig|schedctl|fdsync|llseek|resolvepath|memcntl)")


class DtRec(NamedTuple):
    kind: str                     # sp1, sp1_header, comment, description, dtrace_msg, listing_head, ...
    fields: tuple[str | None, ...] = ()
    text: str | None = None


@functools.lru_cache(maxsize=1)
def parser():
    return build_parser(GRAMMAR_PATH.read_text())


def record_from_tree(tree: Tree) -> DtRec:
    if tree.data == "sp1":
        toks = {t.type: [] for t in tree.children}
        for t in tree.children:
            toks[t.type].append(str(t))
        ts, pid, tid = toks["UINT"][:3]
        latency = toks["UINT"][3]
        ret, err = toks["SINT"]
        execname = toks.get("EXECNAME", [""])[0]
        args = toks.get("ARGS", [None])[0]
        return DtRec("sp1", (ts, pid, tid, execname, toks["NAME"][0], ret, err, latency, args))
    if tree.data == "interrupt":
        return DtRec("interrupt")
    return DtRec(tree.data, text=str(tree.children[0]))


def _fast_sp1(line: str) -> DtRec | None:
    if not line.startswith("sp1\t"):
        return None
    f = line.split("\t")
    if len(f) < 10:
        return None
    # first 4 fields, the last 5 (or 4 when the line stops after latency), execname between
    tail = f[-5:] if len(f) >= 10 else None
    ts, pid, tid = f[1:4]
    name, ret, err, latency, args = tail
    execname = "\t".join(f[4:-5])
    if not (_UINT.fullmatch(ts) and _UINT.fullmatch(pid) and _UINT.fullmatch(tid) and _NAME.fullmatch(name)
            and _SINT.fullmatch(ret) and _SINT.fullmatch(err) and _UINT.fullmatch(latency)):
        return None
    if not execname or execname[0] == " " or (args and args[0] == " "):
        return None                 # rare shapes: let the grammar decide
    return DtRec("sp1", (ts, pid, tid, execname, name, ret, err, latency, args or None))


def grammar_line(line: str) -> DtRec | str:
    try:
        return record_from_tree(parser().parse(line))
    except UnexpectedInput as exc:
        if line.startswith("sp1"):
            return "sp1 line: " + lark_reject_reason("dtrace", exc)
        return PROSE


def read_line(line: str) -> DtRec | str:
    return _fast_sp1(line) or grammar_line(line)


def _errno_name(os_name: str, number: int) -> str | None:
    if os_name == "linux":
        return _host_errno.errorcode.get(number)    # bpftrace traces: this Linux host's table
    return errno_name(os_name, number)


_EV_SCHEMA = {"line_no": pl.Int64, "ts_ns": pl.Int64, "pid": pl.Int64, "tid": pl.Int64, "comm": pl.String,
              "kind": pl.String, "syscall": pl.String, "syscall_raw": pl.String, "args_raw": pl.String,
              "ret": pl.Int64, "ret_raw": pl.String, "errno": pl.Int32, "errno_name": pl.String,
              "duration_ns": pl.Int64, "incomplete": pl.Boolean}


class DtraceFormat:
    name = "dtrace"

    def sniff(self, head: Sequence[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        if any(h.startswith(("sp1\t", "sp1-clock\t", "sp1-start\t")) for h in lines):
            return 1.0
        hits = sum(1 for h in lines if h.startswith("dtrace: description '") or re.match(r" *CPU +ID +FUNCTION:NAME", h)
                   or re.match(r" *\d+ +\d+ +[^\s:]*:[^\s:]+", h) or re.match(r" *SYSCALL +(?:TIME \(ns\)|COUNT)", h))
        return 0.0 if hits == 0 else min(0.9, 0.3 + hits / len(lines))

    def parse(self, lines: Sequence[str], ctx: ParseContext) -> FormatOutput:
        first = ctx.first_line_no
        grammar_only = getattr(ctx, "grammar_only", False)
        read = grammar_line if grammar_only else read_line
        rejects: list[tuple[int, str, str]] = []
        ignored = 0
        recs: list[tuple[int, DtRec]] = []
        n = len(lines)
        for i, line in enumerate(lines):
            if not line.strip():
                ignored += 1
                continue
            got = read(line)
            if isinstance(got, str):
                if i == n - 1 and got.startswith("sp1 line"):
                    got = "cut off mid-line"
                rejects.append((first + i, line, got))
                continue
            recs.append((first + i, got))
        rejects = [self._quantize_key(r, lines, first) for r in rejects]
        boot = any(r.kind == "sp1_header" and r.text.split("\t")[:2] == ["sp1-clock", "boot"] for _, r in recs)
        source_format = "bpftrace" if boot else "dtrace"
        os_name = ctx.os or ("linux" if boot else self._detect_os(recs))
        events, summary, more_ignored = self._rows(recs, os_name, boot, rejects, lines, first)
        rejects.sort()
        events = events.with_columns(pl.lit(source_format).alias("source_format"), pl.lit(os_name).alias("os"))
        summary = summary.with_columns(pl.lit(source_format).alias("source_format"), pl.lit(os_name).alias("os"))
        return FormatOutput(events=events, summary=summary, rejects=rejects, ignored=ignored + more_ignored,
                            os=os_name)

    @staticmethod
    def _quantize_key(reject, lines, first):
        """A quantize() table starts with its key alone on a line: say so rather than "prose"."""
        ln, text, reason = reject
        for nxt in lines[ln - first + 1:ln - first + 3]:
            if nxt.strip():
                if _QUANT_HEAD.match(nxt) and reason == PROSE:
                    return ln, text, "DTrace quantize() key line (not a syscall record)"
                break
        return reject

    @staticmethod
    def _detect_os(recs) -> str:
        votes = {"macos": 0, "freebsd": 0, "solaris": 0}
        for _, r in recs:
            name = None
            if r.kind == "sp1":
                name = r.fields[4]
            elif r.kind in ("listing_row", "agg_row"):
                name = r.text.split()[2].split(":")[0] if r.kind == "listing_row" else r.text.split()[0]
            if name:
                votes["macos"] += bool(_MACOS.search(name))
                votes["freebsd"] += bool(_FREEBSD.search(name))
                votes["solaris"] += bool(_SOLARIS.search(name))
        best = max(votes, key=votes.get)
        return best if votes[best] else "unknown"

    def _rows(self, recs, os_name, boot, rejects, lines, first):
        ev = {c: [] for c in _EV_SCHEMA}
        summ = {"line_no": [], "syscall": [], "calls": [], "time_ns": []}
        ignored = 0
        provider = None            # from "dtrace: description 'syscall::...'"
        agg = None                 # (key, function) of the last "# dtrace -n '... @x[key] = fn(...)'"
        table = None               # procsystime: "elapsed", "cpu", "counts"
        base_ts = None

        def add(ln, **kw):
            for c in _EV_SCHEMA:
                ev[c].append(kw.get(c, ln if c == "line_no" else (False if c == "incomplete" else None)))

        for idx, (ln, r) in enumerate(recs):
            k = r.kind
            if k == "sp1":
                ts, pid, tid, execname, name, ret, err, latency, args = r.fields
                ts_ns = int(ts)
                if boot:
                    base_ts = ts_ns if base_ts is None else base_ts
                    ts_ns -= base_ts
                e = int(err)
                add(ln, ts_ns=ts_ns, pid=int(pid), tid=int(tid), comm=execname, kind="call",
                    syscall=normalize_syscall(name, os_name), syscall_raw=name, args_raw=args, ret=int(ret),
                    ret_raw=ret, errno=e or None, errno_name=_errno_name(os_name, e) if e else None,
                    duration_ns=int(latency))
            elif k == "sp1_header":
                parts = r.text.split("\t")
                if parts[0] == "sp1-exit" and len(parts) == 4 and all(p.lstrip("-").isdigit() for p in parts[1:]):
                    add(ln, pid=int(parts[1]), tid=int(parts[2]), kind="exit", ret=int(parts[3]), ret_raw=parts[3],
                        args_raw=r.text)
                else:
                    ignored += 1
            elif k == "comment":
                ignored += 1
                if "dtrace" in r.text or "procsystime" in r.text:
                    m = _AGG_CMD.search(r.text)
                    agg = (m.group(1), m.group(2)) if m else None
                    table = None
            elif k == "description":
                ignored += 1
                m = _PROVIDER.match(r.text)
                provider = m.group(1) if m else None
            elif k in ("listing_head", "interrupt", "tracing", "procsystime_head", "quantize_head"):
                ignored += 1
            elif k == "procsystime_title":
                ignored += 1
                table = "elapsed" if r.text.startswith("Elapsed") else "cpu" if r.text.startswith("CPU") else "counts"
            elif k == "dtrace_msg":
                add(ln, kind="info", args_raw=r.text)
            elif k == "listing_row":
                cpu, probe_id, probe, *rest = r.text.split(None, 3)
                func, _, pname = probe.rpartition(":")
                text = rest[0] if rest else None
                if provider == "syscall" and pname in ("entry", "return"):
                    add(ln, kind="call", syscall=normalize_syscall(func, os_name), syscall_raw=func,
                        args_raw=text, incomplete=True)
                else:
                    add(ln, kind="info", args_raw=r.text)
            elif k == "agg_row":
                *keys, value = r.text.split()
                key = " ".join(keys)
                if table in ("elapsed", "counts"):
                    name = "total" if key == "TOTAL:" else normalize_syscall(key, os_name)
                    summ["line_no"].append(ln)
                    summ["syscall"].append(name)
                    summ["calls"].append(int(value) if table == "counts" else None)
                    summ["time_ns"].append(int(value) if table == "elapsed" else None)
                elif table == "cpu":
                    rejects.append((ln, lines[ln - first], "procsystime CPU-time row (summary/1 keeps elapsed time)"))
                elif agg is not None and agg[0] == "probefunc" and agg[1] == "count" and len(keys) == 1:
                    summ["line_no"].append(ln)
                    summ["syscall"].append(normalize_syscall(key, os_name))
                    summ["calls"].append(int(value))
                    summ["time_ns"].append(None)
                else:
                    why = (f"DTrace aggregation keyed by {agg[0]} ({agg[1]}), not a syscall count" if agg
                           else "DTrace aggregation row with no '# dtrace' command line naming its key")
                    rejects.append((ln, lines[ln - first], why))
            elif k == "quantize_row":
                rejects.append((ln, lines[ln - first], "DTrace quantize() distribution row (not a syscall record)"))
        events = pl.DataFrame(ev, schema=_EV_SCHEMA).with_columns(
            pl.col("line_no").alias("line_no_end"),
            pl.when(pl.col("ts_ns").is_not_null()).then(pl.lit("relative" if boot else "epoch")).alias("ts_clock"),
        )
        summary = pl.DataFrame(summ, schema={"line_no": pl.Int64, "syscall": pl.String, "calls": pl.Int64,
                                             "time_ns": pl.Int64})
        return events, summary, ignored


FORMAT = DtraceFormat()
