"""The plan: every traced thread's ordered page-eligible calls and state changes, with the
gaps between them, packed into the binary file the C engine reads (docs/replay.md
"The plan file"; the layout is sp_engine.h's struct sp_plan_*).

Steps, each one pass over the events (strace-process-tree's events -> model -> output):
1. classify: the catalog's call class of every call (``Catalog.with_call_class``);
2. map each class to its host operation on this OS and its page fields;
3. order per thread (trace order), number the traced processes (one replay process each);
4. pack: header, classes, threads, ops, strings.
"""
from __future__ import annotations

import hashlib
import platform
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from syspage import catalog as catalog_mod
from syspage.errors import ReplayError

PLAN_MAGIC = b"SPPLAN1\0"
PLAN_VERSION = 1
_HEADER = struct.Struct("<8sIIIIQQ")
_CLASS = struct.Struct("<HBBIII")
_THREAD = struct.Struct("<IIqqQQ")
_OP = "HHIq"
ACCESS_CODES = {"read": 0, "write": 1, "follow": 2}
# Catalog field names that sp_page.h spells differently (uname(2)'s struct utsname names).
FIELD_ALIASES = {"nodename": "hostname", "release": "osrelease", "ostype": "sysname"}
DEFAULT_TITLE = "syspage-replay"
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class PlanClass:
    call_class: str
    page_class: str
    page_access: str
    fields: tuple[str, ...]
    host_op: str
    calls: int = 0                    # calls of this class in the trace
    sysctl_name: str | None = None


@dataclass
class PlanThread:
    proc: int
    trace_pid: int
    trace_tid: int
    classes: list[int] = field(default_factory=list)
    args: list[int] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)


@dataclass
class Plan:
    """A plan in Python terms (for the report) plus its packed bytes (for the engine)."""

    classes: list[PlanClass]
    threads: list[PlanThread]
    strings: list[str]
    trace_os: str
    host_os: str
    n_procs: int
    data: bytes = b""

    @property
    def n_ops(self) -> int:
        return sum(len(t.classes) for t in self.threads)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.data)
        return path


def host_os() -> str:
    """The replay host's OS in the catalog's terms (linux, freebsd)."""
    name = platform.system().lower()
    if name not in catalog_mod.HOSTS:
        raise ReplayError(f"replay runs on {', '.join(catalog_mod.HOSTS)}; this host is {name}")
    return name


def _first_quoted(args: str | None) -> str | None:
    if not args:
        return None
    m = _QUOTED.search(args)
    if not m:
        return None
    # strace escapes: keep it readable, never longer than a title page holds
    return bytes(m.group(1), "utf-8").decode("unicode_escape", errors="replace")[:2047]


def eligible_calls(events: pl.DataFrame) -> pl.DataFrame:
    """The trace's page-eligible calls and state changes, in trace order, with their class."""
    cat = catalog_mod.load()
    needed = ("kind", "os", "syscall", "args_raw", "sysctl_name", "pid", "tid", "ts_ns", "duration_ns")
    missing = [c for c in needed if c not in events.columns]
    if missing:
        raise ReplayError(f"events table lacks columns {missing} (not an events/1 table?)")
    return (
        cat.with_call_class(events.with_row_index("_row"))
        .filter(pl.col("call_class").is_not_null())
        .sort("_row")
    )


def build(events: pl.DataFrame, host: str | None = None, engine=None) -> Plan:
    """Build the plan of an events/1 table for this host (engine: the loaded C module)."""
    from syspage.replay import engine as engine_mod

    engine = engine or engine_mod.load()
    host = host or host_os()
    cat = catalog_mod.load()
    by_class = cat.by_class()
    calls = eligible_calls(events)
    oses = events.get_column("os").drop_nulls().unique().to_list() if events.height else []
    trace_os = oses[0] if len(oses) == 1 else ("mixed:" + ",".join(sorted(oses)) if oses else "unknown")

    strings: list[str] = [""]
    string_index: dict[str, int] = {"": 0}

    def intern(s: str | None) -> int:
        if not s:
            return 0
        if s not in string_index:
            string_index[s] = len(strings)
            strings.append(s)
        return string_index[s]

    classes: list[PlanClass] = []
    class_index: dict[str, int] = {}
    for name in calls.get_column("call_class").unique(maintain_order=True).to_list():
        entry = by_class[name]
        class_index[name] = len(classes)
        classes.append(PlanClass(
            call_class=name, page_class=entry.page_class, page_access=entry.page_access,
            fields=entry.fields, host_op=cat.host_op(name, host), sysctl_name=entry.sysctl_name,
        ))

    frame = calls.with_columns(
        pl.col("pid").fill_null(0).alias("_pid"),
        pl.coalesce("tid", "pid").fill_null(0).alias("_tid"),
    )
    # The gap: from the end of the thread's previous eligible call to the start of this one.
    end = pl.col("ts_ns") + pl.col("duration_ns").fill_null(0)
    frame = frame.with_columns(
        (pl.col("ts_ns") - end.shift(1).over("_tid")).clip(lower_bound=0).fill_null(0).alias("_gap")
    )
    procs: dict[int, int] = {}
    threads: dict[int, PlanThread] = {}
    for row in frame.select("_pid", "_tid", "call_class", "args_raw", "_gap").iter_rows():
        pid, tid, name, args, gap = row
        proc = procs.setdefault(pid, len(procs))
        thread = threads.get(tid)
        if thread is None:
            thread = threads[tid] = PlanThread(proc=proc, trace_pid=pid, trace_tid=tid)
        cls = class_index[name]
        classes[cls].calls += 1
        arg = 0
        if classes[cls].page_access in ("write", "follow") and classes[cls].host_op in (
            "prctl_set_name", "setproctitle", "sethostname"
        ):
            arg = intern(_first_quoted(args) or DEFAULT_TITLE)
        thread.classes.append(cls)
        thread.args.append(arg)
        thread.gaps.append(int(gap))

    plan = Plan(classes=classes, threads=list(threads.values()), strings=strings,
                trace_os=trace_os, host_os=host, n_procs=len(procs))
    plan.data = pack(plan, engine)
    return plan


def _field_bits(entry: PlanClass, engine) -> int:
    if entry.page_access == "follow":
        return 0
    bits = 0
    for name in entry.fields:
        name = FIELD_ALIASES.get(name, name)
        if name not in engine.FIELDS:
            raise ReplayError(f"catalog field {name!r} of {entry.call_class!r} has no place on the pages (sp_page.h)")
        bits |= 1 << engine.FIELDS[name]
    return bits


def pack(plan: Plan, engine) -> bytes:
    """The plan file's bytes (little-endian, the structs of sp_engine.h)."""
    class_blobs = []
    sysctl_args = [0] * len(plan.classes)
    for i, c in enumerate(plan.classes):
        if c.sysctl_name:
            # FreeBSD replays sysctls by their traced name (sysctlbyname(3))
            sysctl_args[i] = len(plan.strings)
            plan.strings.append(c.sysctl_name)
    for i, c in enumerate(plan.classes):
        if c.host_op not in engine.HOST_OPS:
            raise ReplayError(f"catalog host op {c.host_op!r} of {c.call_class!r} is unknown to the engine")
        class_blobs.append(_CLASS.pack(
            engine.HOST_OPS[c.host_op], engine.PAGE_KINDS[c.page_class], ACCESS_CODES[c.page_access],
            _field_bits(c, engine), sysctl_args[i], 0,
        ))
    thread_blobs = []
    op_values: list[int] = []
    first = 0
    for t in plan.threads:
        n = len(t.classes)
        thread_blobs.append(_THREAD.pack(t.proc, 0, t.trace_pid, t.trace_tid, first, n))
        for cls, arg, gap in zip(t.classes, t.args, t.gaps):
            op_values.extend((cls, 0, arg, gap))
        first += n
    ops = struct.pack("<" + _OP * first, *op_values) if first else b""
    blob = bytearray()
    offsets = []
    for s in plan.strings:
        offsets.append(len(blob))
        blob += s.encode("utf-8", errors="replace").replace(b"\0", b"?") + b"\0"
    header = _HEADER.pack(PLAN_MAGIC, PLAN_VERSION, len(plan.classes), len(plan.threads),
                          len(plan.strings), first, len(blob))
    return b"".join([header, *class_blobs, *thread_blobs, ops,
                     struct.pack(f"<{len(offsets)}I", *offsets), bytes(blob)])
