"""Reading analyze's inputs: tell the files apart by their schema tag, find the parse's side tables.

Every stage writes Parquet with a ``syspage.schema`` tag (syspage/schema.py), so the CLI can
take its inputs in any order: ``events/1`` is a trace, ``replay/1`` the replay result, and
so on. A file with an unknown tag is refused with its name and what it holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from syspage import schema
from syspage.analyze.analysis import ReplayInfo
from syspage.analyze.frames import COST_COLUMNS
from syspage.errors import SchemaError

# Tables analyze reads, by table name (the part of the tag before "/").
TRACE_TABLES = ("events",)
SIDE_TABLES = ("summary", "rejects")       # written by parse beside the events
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


def load_trace(path: Path, side: list[Path] | None = None) -> TraceFiles:
    """The events (lazily), their metadata, the rejected-line count and the tracer's summary."""
    tag = schema.read_tag(path)
    if tag != schema.EVENTS.tag:
        raise SchemaError(f"{path}: holds a {tag or 'untagged'} table, this syspage reads {schema.EVENTS.tag}")
    events = pl.scan_parquet(path)
    got = events.collect_schema()
    if dict(got) != schema.EVENTS.columns:
        schema.EVENTS.validate(pl.DataFrame(schema=dict(got)), origin=str(path))
    rejects_path = _side_table(path, "rejects", side or [])
    summary_path = _side_table(path, "summary", side or [])
    rejected = None
    if rejects_path is not None:
        rejected = int(pl.scan_parquet(rejects_path).select(pl.len()).collect().item())
    summary = schema.SUMMARY.read(summary_path) if summary_path is not None else None
    return TraceFiles(events=events, metadata=schema.read_metadata(path), rejected_lines=rejected, summary=summary)


def load_table(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def load_replay(path: Path) -> ReplayInfo:
    """A replay/1 file as the per-class cost table analyze needs (frames.COST_COLUMNS)."""
    spec = schema.TABLES.get("replay")
    if spec is None:
        raise SchemaError(f"{path}: this syspage has no replay table spec yet (issue 4)")
    df = spec.read(path)
    meta = schema.read_metadata(path)
    return replay_info(df, meta, source_file=str(path))


def replay_info(df: pl.DataFrame, meta: dict[str, str], source_file: str | None = None) -> ReplayInfo:
    """Adapt replay/1 rows (one per class and implementation) to one row per class with both costs."""
    costs = costs_from_replay(df)
    return ReplayInfo(costs=costs, source_file=source_file, metadata=meta, **replay_meta(df, meta))


def costs_from_replay(df: pl.DataFrame) -> pl.DataFrame:  # pragma: no cover - replaced when replay/1 lands
    missing = [c for c in COST_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"replay table lacks {missing}")
    return df.select(list(COST_COLUMNS))


def replay_meta(df: pl.DataFrame, meta: dict[str, str]) -> dict[str, object]:
    return {k: meta.get(k) for k in ("host", "host_os", "cpu", "kernel", "mitigations", "method")}
