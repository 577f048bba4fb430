"""Reading analyze's inputs: tell the files apart by their schema tag, find the parse's side tables.

Every stage writes Parquet with a ``syspage.schema`` tag (syspage/schema.py), so the CLI can
take its inputs in any order: ``events/1`` is a trace, ``replay/1`` the replay result, and
so on. A file with an unknown tag is refused with its name and what it holds.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from syspage import schema
from syspage.analyze.analysis import ReplayInfo
from syspage.analyze.frames import COST_COLUMNS
from syspage.errors import SchemaError

# Tables analyze reads, by table name (the part of the tag before "/").
TRACE_TABLES = ("events",)
SIDE_TABLES = ("summary", "rejects", "scan_problems")  # side tables of parse and scan
REPLAY_TABLES = ("replay",)
LOCKING_TABLES = ("locking",)               # issue 8, optional
SCAN_TABLES = ("scan",)                     # issue 9, optional


@dataclass
class Inputs:
    traces: list[Path] = field(default_factory=list)
    replays: list[Path] = field(default_factory=list)
    locking: list[Path] = field(default_factory=list)
    scans: list[Path] = field(default_factory=list)
    side: list[Path] = field(default_factory=list)


def sort_inputs(paths: list[str | Path]) -> Inputs:
    """Put each file in its slot by the table name in its schema tag."""
    found = Inputs()
    for raw in paths:
        path = Path(raw)
        tag = schema.read_tag(path)
        name = (tag or "").split("/")[0]
        if name in TRACE_TABLES:
            found.traces.append(path)
        elif name in REPLAY_TABLES:
            found.replays.append(path)
        elif name in LOCKING_TABLES:
            found.locking.append(path)
        elif name in SCAN_TABLES:
            found.scans.append(path)
        elif name in SIDE_TABLES:
            found.side.append(path)
        else:
            raise SchemaError(
                f"{path}: holds a {tag or 'untagged'} table; analyze reads events/1 (syspage parse), "
                "replay/1 (syspage replay), locking and scan tables"
            )
    return found


@dataclass
class TraceFiles:
    events: pl.LazyFrame
    metadata: dict[str, str]
    rejected_lines: int | None
    summary: pl.DataFrame | None


def _side_table(events_path: Path, table: str, explicit: list[Path]) -> Path | None:
    """The parse's summary/rejects file for this events file: given on the command line, or beside it."""
    stem = events_path.name.removesuffix(".parquet")
    candidates = [p for p in explicit if (schema.read_tag(p) or "").startswith(table + "/")]
    candidates += [
        events_path.with_name(f"{stem}.{table}.parquet"),
        events_path.with_name(f"{stem}-{table}.parquet"),
        events_path.with_name(f"{stem}_{table}.parquet"),
        events_path.with_name(f"{table}.parquet"),
    ]
    for cand in candidates:
        if cand.is_file() and (schema.read_tag(cand) or "").startswith(table + "/"):
            return cand
    return None


def load_trace(path: str | Path, side: list[Path] | None = None) -> TraceFiles:
    """The events (lazily), their metadata, the rejected-line count and the tracer's summary."""
    path = Path(path)
    tag = schema.read_tag(path)
    if tag != schema.EVENTS.tag:
        raise SchemaError(f"{path}: holds a {tag or 'untagged'} table, this syspage reads {schema.EVENTS.tag}")
    events = pl.scan_parquet(path)
    got = events.collect_schema()
    if dict(got) != schema.EVENTS.columns:
        schema.EVENTS.validate(pl.DataFrame(schema=dict(got)), origin=str(path))
    rejects_path = _side_table(path, "rejects", side or [])
    summary_path = _side_table(path, "summary", side or [])
    metadata = schema.read_metadata(path)
    rejected = None
    if rejects_path is not None:
        rejected = int(pl.scan_parquet(rejects_path).select(pl.len()).collect().item())
    elif metadata.get("rejects", "").isdigit():
        rejected = int(metadata["rejects"])  # parse records the count in the events file too
    summary = schema.SUMMARY.read(summary_path) if summary_path is not None else None
    metadata.update(_collect_meta(path, metadata))
    return TraceFiles(events=events, metadata=metadata, rejected_lines=rejected, summary=summary)


def _collect_meta(events_path: Path, metadata: dict[str, str]) -> dict[str, str]:
    """Where and how the trace was recorded, from collect's meta.json (collect-meta/1, docs/collect.md).

    Looked for beside the events file and beside the trace; used only when its trace SHA-256
    equals the one parse recorded, so another run's machine is never shown.
    """
    sha = metadata.get("trace_sha256")
    if not sha:
        return {}
    # Beside the events; in the trace/ folder syspage run writes; beside the trace parse read.
    candidates = [events_path.with_name("meta.json"), events_path.parent / "trace" / "meta.json"]
    if metadata.get("trace"):
        candidates.append(Path(metadata["trace"]).with_name("meta.json"))
    for cand in candidates:
        try:
            meta = json.loads(cand.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or (meta.get("trace") or {}).get("sha256") != sha:
            continue
        machine, tool, target = meta.get("machine") or {}, meta.get("tool") or {}, meta.get("target") or {}
        found = {
            "host": " / ".join(str(x) for x in (machine.get("host"), machine.get("kernel"), machine.get("cpu_model")) if x),
            "tracer": " ".join(str(x) for x in (tool.get("name"), tool.get("version")) if x),
            "tracer_argv": " ".join(map(str, tool.get("argv") or [])),
            "target": " ".join(map(str, target.get("argv") or [])),
            "recorded_utc": (meta.get("started") or {}).get("utc"),
            "collect_meta": str(cand),
        }
        overhead = meta.get("overhead") or {}
        if isinstance(overhead, dict) and overhead.get("untraced_median_s"):
            runs = overhead.get("untraced_s") or []
            found.update({
                "untraced_median_s": str(overhead["untraced_median_s"]),
                "untraced_runs": str(len(runs)),
                "untraced_range_s": f"{min(runs):.4g}–{max(runs):.4g}" if runs else "",
                "tracer_slowdown": f"{overhead['slowdown_median']:.3g}" if overhead.get("slowdown_median") else "",
            })
        return {k: v for k, v in found.items() if v}
    return {}


def load_table(path: str | Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def load_replay(path: str | Path, impl: str = "page") -> ReplayInfo:
    """A replay/1 file as the per-class cost table analyze needs (frames.COST_COLUMNS)."""
    path = Path(path)
    df = schema.REPLAY.read(path)
    meta = schema.read_metadata(path)
    return replay_info(df, meta, source_file=str(path), impl=impl)


def replay_info(df: pl.DataFrame, meta: dict[str, str], source_file: str | None = None, impl: str = "page") -> ReplayInfo:
    """One row per class with both costs, from replay/1 rows (one per class and implementation)."""
    mode = meta.get("mode")
    if mode and mode in df["mode"].to_list():
        df = df.filter(pl.col("mode") == mode)
    elif df["mode"].n_unique() > 1:
        # Several modes in one file: use the first in sort order, and say which.
        mode = sorted(m for m in df["mode"].unique().to_list() if m is not None)[0]
        df = df.filter(pl.col("mode") == mode)
    costs = costs_from_replay(df, impl)
    return ReplayInfo(
        costs=costs, source_file=source_file, metadata=meta,
        host=meta.get("host"), host_os=meta.get("host_os"), cpu=meta.get("cpu"), kernel=meta.get("kernel"),
        mitigations=_mitigations(meta.get("mitigations")),
        method=_method(meta, mode, impl),
        confidence=0.95,  # replay/1: distribution-free 95 % intervals of the median (docs/schema.md)
        tracers=tracer_list(meta.get("tracers_running")),
        impls=tuple(sorted(i for i in df["impl"].unique().to_list() if i is not None)),
        trace_sha256=meta.get("trace_sha256") or None,
        reference=reference_line(meta.get("reference")),
    )


def reference_line(raw: str | None) -> str | None:
    """replay/1 ``reference`` (JSON: the raw getpid loop and the bare page-read loop timed in every
    sample, docs/replay.md "Machine reference") as one line; None when the replay had none."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return raw
    if not isinstance(data, dict):
        return None
    parts = []
    for kind, what, digits in (("syscall", "raw getpid", 1), ("page", "bare page read", 3)):
        r = data.get(kind)
        if isinstance(r, dict) and r.get("ns_median") is not None:
            parts.append(f"{what} {r['ns_median']:.{digits}f} ns (rounds {r['round_medians_min']:.{digits}f}–"
                         f"{r['round_medians_max']:.{digits}f}, {r['samples']:,} samples)")
    return "; ".join(parts) + "; replays run at other times compare by cost over it" if parts else None


def _method(meta: dict[str, str], mode: str | None, impl: str) -> str:
    """The replay's one-line method, with the mode, locking and page implementation analyze used
    (each added only when the replay's own line does not already say it)."""
    line = meta.get("method") or ""
    extra = [f"mode {mode}" if mode and not line.startswith(f"{mode} replay") else None,
             f"locking {meta['locking']}" if meta.get("locking") and f"locking {meta['locking']}" not in line else None,
             f"page implementation {impl}"]
    return "; ".join(x for x in [line, *extra] if x)


def tracer_list(raw: str | None) -> list[str]:
    """replay/1 ``tracers_running``: "bpftrace(3101),perf(77)" (replay/runner.py), or a JSON or
    Python list of the same strings; empty when no tracer was seen."""
    if not raw or not raw.strip():
        return []
    text = raw.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = ast.literal_eval(text) if text.endswith("]") else [text]
        return [str(x) for x in items if str(x).strip()]
    return [x.strip() for x in text.split(",") if x.strip()]


def _mitigations(raw: str | None) -> str | None:
    """The replay host's CPU mitigations, one short line (the full JSON stays in the metadata)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(data, dict):
        return str(data)
    active = [f"{k}: {v}" for k, v in sorted(data.items()) if not str(v).startswith("Not affected")]
    unaffected = len(data) - len(active)
    return "; ".join(active + ([f"{unaffected} others: Not affected"] if unaffected else []))


# How the per-call saving was estimated (COST_COLUMNS ``saved_estimator``).
PAIRED = "paired"
DIFFERENCE_OF_MEDIANS = "difference of medians"


def costs_from_replay(df: pl.DataFrame, impl: str = "page") -> pl.DataFrame:
    """Join each class's ``syscall`` row with its ``impl`` row into frames.COST_COLUMNS.

    The per-call saving and its interval come from the replay's paired difference
    (``saved_ns_*`` on the page row: syscall minus page, sample by sample), which is tighter
    and more honest than combining two separate intervals. Only when the replay has no paired
    value does the saving fall back to the difference of medians, with the conservative
    interval [syscall low - page high, syscall high - page low]. The paired median is not
    syscall median - page median (the median of differences is not the difference of medians),
    so every place that shows it says which it is (``saved_estimator``).

    A table without ``syscall`` rows (``replay --impl page``), or with null costs, gives null
    savings: not measured, never 0.
    """
    sys_rows = df.filter(pl.col("impl") == "syscall").select(
        "call_class",
        pl.col("host_op"),
        pl.col("cost_ns_median").alias("syscall_ns"),
        pl.col("cost_ns_ci_low").alias("syscall_lo_ns"),
        pl.col("cost_ns_ci_high").alias("syscall_hi_ns"),
        pl.col("unstable").alias("sys_unstable"),
        pl.col("skip_reason").alias("sys_skip"),
        pl.col("replayed").alias("sys_replayed"),
    )
    page_rows = df.filter(pl.col("impl") == impl).select(
        "call_class",
        pl.col("cost_ns_median").alias("page_ns"),
        pl.col("cost_ns_ci_low").alias("page_lo_ns"),
        pl.col("cost_ns_ci_high").alias("page_hi_ns"),
        "saved_ns_median", "saved_ns_ci_low", "saved_ns_ci_high",
        pl.col("mismatches"),
        pl.col("unstable").alias("page_unstable"),
        pl.col("skip_reason").alias("page_skip"),
    )
    joined = sys_rows.join(page_rows, on="call_class", how="full", coalesce=True)
    # A class the engine did not issue through the syscall has no syscall cost to save.
    measured = pl.col("syscall_ns").is_not_null() & pl.col("page_ns").is_not_null() & (pl.col("sys_replayed").fill_null(0) > 0)
    paired = pl.col("saved_ns_median").is_not_null()
    return joined.select(
        "call_class", "host_op",
        "syscall_ns", "syscall_lo_ns", "syscall_hi_ns", "page_ns", "page_lo_ns", "page_hi_ns",
        pl.when(measured).then(pl.when(paired).then("saved_ns_median").otherwise(pl.col("syscall_ns") - pl.col("page_ns")))
        .alias("saved_per_call_ns"),
        pl.when(measured).then(pl.when(paired).then("saved_ns_ci_low").otherwise(pl.col("syscall_lo_ns") - pl.col("page_hi_ns")))
        .alias("saved_per_call_lo_ns"),
        pl.when(measured).then(pl.when(paired).then("saved_ns_ci_high").otherwise(pl.col("syscall_hi_ns") - pl.col("page_lo_ns")))
        .alias("saved_per_call_hi_ns"),
        pl.when(measured).then(pl.when(paired).then(pl.lit(PAIRED)).otherwise(pl.lit(DIFFERENCE_OF_MEDIANS)))
        .alias("saved_estimator"),
        pl.col("mismatches").fill_null(0),
        (pl.col("sys_unstable").fill_null(False) | pl.col("page_unstable").fill_null(False)).alias("unstable"),
        pl.coalesce("sys_skip", "page_skip").alias("skip_reason"),
    ).cast(COST_COLUMNS).sort("call_class")
