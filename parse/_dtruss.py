"""dtruss(1m) text -> events/1 rows, and its -c counts -> summary/1 rows.

dtruss is the DTraceToolkit script macOS and Solaris ship (https://github.com/opendtrace/toolkit/blob/master/dtruss).
Each line is one completed call ``name(arg0, arg1, arg2) = return errno``; ``-f``/``-l`` add a
``PID/LWP:`` (Solaris) or ``PID/THRD:`` (macOS, thread id in hex) prefix, ``-d`` a RELATIVE
column (µs since dtruss started), ``-e`` ELAPSD (µs in the call), ``-o`` CPU (µs on CPU, not kept:
events/1 has no column for it). The header line names the columns present; without one,
three numbers are RELATIVE ELAPSD CPU and fewer are left uninterpreted (said in docs/formats-bsd.md).

``dtrace: error on enabled probe ... (ID n: syscall::NAME:return): ...`` lines mean the probe's
action failed, so that call's line was never printed: they become ``info`` rows (args_raw keeps
the message; the census can count them), as do other ``dtrace:`` messages (SIP warnings).
Program output mixed into the trace (macOS dtruss shares the terminal) is rejected as prose.
"""
from __future__ import annotations

import errno as _host_errno
import functools
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import polars as pl
from lark import Token, Tree, UnexpectedInput

from syspage.parse._base import FormatOutput, ParseContext
from syspage.parse._bsd import build_parser, lark_reject_reason, normalize_syscall, to_int
from syspage.parse._errno_bsd import errno_name

GRAMMAR_PATH = Path(__file__).with_name("grammars") / "dtruss.lark"

_FAST_RE = re.compile(
    r"[ \t]*(?:(\d+)/(0x[0-9a-fA-F]+|\d+)[ \t]*:[ \t]*)?((?:\d+[ \t]+){0,3})"
    r"([A-Za-z_][A-Za-z0-9_.]*\([^\n]*?\))(?=[ \t]+= -?(?:0x[0-9a-fA-F]+|\d+) (?:Err#)?-?\d+[ \t]*$)"
    r"[ \t]+= (-?(?:0x[0-9a-fA-F]+|\d+)) ((?:Err#)?-?\d+)[ \t]*$")
_SNIFF_RE = re.compile(r"\)[ \t]+= -?(?:0x[0-9a-fA-F]+|\d+) (?:Err#)?-?\d+[ \t]*$|SYSCALL\(args\)[ \t]+= return|^ *PID/(?:LWP|THRD) ")
_PROBE_ERROR = re.compile(r"dtrace: error on enabled probe ID \d+ \(ID \d+: syscall::([\w.]+):(?:entry|return)\)")
_MACOS_CALLS = {"__mac_syscall", "csrctl", "fsgetpath", "shared_region_check_np", "getattrlist", "bsdthread_register",
                "bsdthread_create", "proc_info", "workq_kernreturn", "kevent_qos", "kevent_id", "psynch_cvwait",
                "thread_selfid", "getentropy", "sysctlbyname", "csops", "csops_audittoken", "ulock_wait", "ulock_wake"}
_SOLARIS_CALLS = {"lwp_sigmask", "llseek", "fdsync", "pollsys", "lwp_park", "gtime", "sysconfig", "schedctl", "p_online",
                  "lwp_self", "resolvepath", "memcntl", "exece", "brk", "getpid", "setcontext"}


class DRec(NamedTuple):
    kind: str                      # call, header, dtrace_msg, count_head, count_row
    pid: int | None = None
    tid: int | None = None
    cols: tuple[str, ...] = ()     # RELATIVE/ELAPSD/CPU numbers, as printed
    call: str | None = None        # name(args)
    ret: str | None = None
    err: str | None = None
    text: str | None = None


@functools.lru_cache(maxsize=1)
def parser():
    return build_parser(GRAMMAR_PATH.read_text())


def _tid(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def record_from_tree(tree: Tree) -> DRec:
    if tree.data == "syscall":
        pid = tid = None
        cols: list[str] = []
        call = ret = err = None
        nums: list[str] = []
        for c in tree.children:
            if isinstance(c, Tree):          # prefix
                p, t = str(c.children[0]).split("/")
                pid, tid = int(p), _tid(t)
            elif c.type == "INT":
                cols.append(str(c))
            elif c.type == "CALL":
                call = str(c)
            elif c.type in ("NUM", "ERRNO"):
                nums.append(str(c))
        ret, err = nums
        return DRec("call", pid, tid, tuple(cols), call, ret, err)
    return DRec(tree.data, text=str(tree.children[0]))


def _fast_line(line: str) -> DRec | None:
    m = _FAST_RE.match(line)
    if m is None:
        return None
    p, t, cols, call, ret, err = m.groups()
    return DRec("call", int(p) if p else None, _tid(t) if t else None, tuple(cols.split()), call, ret, err)


def grammar_line(line: str) -> DRec | str:
    try:
        return record_from_tree(parser().parse(line))
    except UnexpectedInput as exc:
        if re.search(r"\)[ \t]+= ", line) or re.match(r"[ \t]*(?:\d+/\w+:[ \t]*)?(?:\d+[ \t]+){0,3}[A-Za-z_]\w*\(", line):
            return "dtruss call line: " + lark_reject_reason("dtruss", exc)
        return "prose around a pasted trace (or the traced program's own output)"


def read_line(line: str) -> DRec | str:
    return _fast_line(line) or grammar_line(line)


# Apple's dtruss prints sysctl's MIB as "[CTL_KERN, 10, 0, 0, 0, 0] (2)": the 4.4BSD numbers of
# <sys/sysctl.h> that macOS keeps name the nodes the catalog knows.
_MIB = re.compile(r"\[(CTL_KERN|CTL_HW), (\d+), [^\]]*\] \((\d+)\)")
_MACOS_MIB = {("CTL_KERN", 1): "kern.ostype", ("CTL_KERN", 2): "kern.osrelease", ("CTL_KERN", 3): "kern.osrevision",
              ("CTL_KERN", 4): "kern.version", ("CTL_KERN", 10): "kern.hostname", ("CTL_KERN", 21): "kern.boottime",
              ("CTL_KERN", 22): "kern.domainname", ("CTL_HW", 1): "hw.machine", ("CTL_HW", 3): "hw.ncpu",
              ("CTL_HW", 7): "hw.pagesize"}


def _macos_mib(args: str | None) -> str | None:
    m = _MIB.match(args or "")
    if m is None or int(m.group(3)) != 2:
        return None
    return _MACOS_MIB.get((m.group(1), int(m.group(2))))


def _columns_from_header(text: str) -> tuple[str, ...]:
    return tuple(c for c in ("RELATIVE", "ELAPSD", "CPU") if re.search(rf"\b{c}\b", text))


def _errno_name(os_name: str, number: int | None) -> str | None:
    if number is None or number == 0:
        return None
    if os_name == "linux":
        return _host_errno.errorcode.get(number)
    return errno_name(os_name, number)


class DtrussFormat:
    name = "dtruss"

    def sniff(self, head: Sequence[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        hits = sum(1 for h in lines if _SNIFF_RE.search(h))
        return 0.0 if hits == 0 else min(1.0, 0.4 + 0.6 * hits / len(lines))

    def parse(self, lines: Sequence[str], ctx: ParseContext) -> FormatOutput:
        first = ctx.first_line_no
        grammar_only = getattr(ctx, "grammar_only", False)
        rejects: list[tuple[int, str, str]] = []
        ignored = 0
        recs: list[tuple[int, DRec]] = []
        ends: dict[int, int] = {}      # line_no -> line_no_end of a call split by a dtrace message
        split: tuple[int, str] | None = None
        n = len(lines)
        read = grammar_line if grammar_only else read_line
        for i, line in enumerate(lines):
            if not line.strip():
                ignored += 1
                continue
            if split is not None and line.lstrip().startswith(")"):
                # dtrace wrote an error message into the middle of a call's line (its output
                # and the trace share stdout); the call's tail follows on a later line.
                start, head = split
                joined = read(head + line.lstrip())
                if not isinstance(joined, str):
                    rejects[:] = [r for r in rejects if r[0] != first + start]
                    recs.append((first + start, joined))
                    ends[first + start] = first + i
                    split = None
                    continue
            got = read(line)
            if isinstance(got, str):
                cut = line.find("dtrace: ")
                if cut > 0:
                    split = (i, line[:cut])
                    recs.append((first + i, DRec("dtrace_msg", text=line[cut:])))
                if i == n - 1 and got.startswith("dtruss call line"):
                    got = "cut off mid-line"
                rejects.append((first + i, line, got))
                continue
            recs.append((first + i, got))
        recs.sort(key=lambda r: (r[0], r[1].kind != "call"))
        os_name = ctx.os or self._detect_os(recs)
        events, summary = self._rows(recs, os_name, rejects, ends)
        rejects.sort()
        ignored += sum(1 for _, r in recs if r.kind in ("header", "count_head"))
        return FormatOutput(events=events, summary=summary, rejects=rejects, ignored=ignored, os=os_name)

    @staticmethod
    def _detect_os(recs) -> str:
        mac = sol = 0
        for _, r in recs:
            if r.kind == "header":
                mac += 5 * ("PID/THRD" in r.text)
                sol += 5 * ("PID/LWP" in r.text)
            elif r.kind == "dtrace_msg" and "system integrity protection" in r.text:
                mac += 5
            elif r.kind == "call":
                name = r.call.partition("(")[0]
                mac += name in _MACOS_CALLS or name.endswith("_nocancel")
                sol += name in _SOLARIS_CALLS
        if mac == sol == 0:
            return "unknown"
        return "macos" if mac >= sol else "solaris"

    def _rows(self, recs, os_name, rejects, ends):
        columns: tuple[str, ...] | None = None
        ev = {c: [] for c in ("sysctl_name", "line_no", "line_no_end", "ts_ns", "pid", "tid", "kind", "syscall", "syscall_raw", "args_raw", "ret",
                              "ret_raw", "errno", "errno_name", "duration_ns")}
        summ = {"line_no": [], "syscall": [], "calls": []}
        in_counts = False
        for ln, r in recs:
            if r.kind == "header":
                columns = _columns_from_header(r.text)
                continue
            if r.kind == "count_head":
                in_counts = True
                continue
            if r.kind == "count_row":
                if not in_counts:
                    rejects.append((ln, r.text, "a name and a count outside a dtruss -c table"))
                    continue
                name, count = r.text.split()
                summ["line_no"].append(ln)
                summ["syscall"].append(normalize_syscall(name, os_name))
                summ["calls"].append(int(count))
                continue
            in_counts = False
            ts = dur = None
            name = args = ret = err = sysctl_name = None
            kind = "info"
            if r.kind == "call":
                kind = "call"
                name, _, args = r.call.partition("(")
                args = args[:-1]
                roles = columns if columns is not None else (("RELATIVE", "ELAPSD", "CPU") if len(r.cols) == 3 else ())
                if len(roles) == len(r.cols):
                    for role, v in zip(roles, r.cols):
                        if role == "ELAPSD":
                            dur = int(v) * 1000
                        # RELATIVE is vtimestamp/1000, the thread's on-CPU time, not a clock: not kept
                err = int(r.err.removeprefix("Err#"))
                ret = to_int(r.ret)
                if err and ret == 0xFFFFFFFF:
                    ret = -1       # "= 0x%X" of (int)-1 (sigprocmask's clause prints the return in hex)
                if name == "sysctl":
                    sysctl_name = _macos_mib(args)
            ev["line_no"].append(ln)
            ev["line_no_end"].append(ends.get(ln, ln) if kind == "call" else ln)
            ev["ts_ns"].append(ts)
            ev["pid"].append(r.pid)
            ev["tid"].append(r.tid)
            ev["kind"].append(kind)
            ev["syscall"].append(normalize_syscall(name, os_name) if name else None)
            ev["syscall_raw"].append(name)
            ev["args_raw"].append(args if kind == "call" else r.text)
            ev["ret"].append(ret)
            ev["ret_raw"].append(f"{r.ret} {r.err}" if kind == "call" else None)
            ev["errno"].append(err if err else None)
            ev["errno_name"].append(_errno_name(os_name, err))
            ev["duration_ns"].append(dur)
            ev["sysctl_name"].append(sysctl_name)
        events = pl.DataFrame(ev, schema={"sysctl_name": pl.String, "line_no": pl.Int64, "line_no_end": pl.Int64, "ts_ns": pl.Int64, "pid": pl.Int64, "tid": pl.Int64,
                                          "kind": pl.String, "syscall": pl.String, "syscall_raw": pl.String,
                                          "args_raw": pl.String, "ret": pl.Int64, "ret_raw": pl.String,
                                          "errno": pl.Int32, "errno_name": pl.String, "duration_ns": pl.Int64})
        events = events.with_columns(
            pl.lit("dtruss").alias("source_format"),
            pl.lit(os_name).alias("os"),
            pl.lit(None, dtype=pl.String).alias("ts_clock"),
            pl.lit(False).alias("incomplete"),
        )
        summary = pl.DataFrame(summ, schema={"line_no": pl.Int64, "syscall": pl.String, "calls": pl.Int64}).with_columns(
            pl.lit("dtruss").alias("source_format"), pl.lit(os_name).alias("os"))
        return events, summary


def probe_error_syscall(text: str) -> str | None:
    """The syscall whose record a ``dtrace: error on enabled probe`` line lost, if it names one."""
    m = _PROBE_ERROR.match(text)
    return m.group(1) if m else None


FORMAT = DtrussFormat()
