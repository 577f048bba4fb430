"""Exports: the census and savings tables as Parquet and CSV, the eligible calls as a Chrome trace.

The Chrome Trace Event format (JSON object form, ``{"traceEvents": [...]}``) is what
Perfetto UI and chrome://tracing open: complete events ``"ph": "X"`` with ``ts``/``dur``
in microseconds, ``pid``/``tid``, and ``"M"`` metadata events naming processes and threads.
Spec: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
(Perfetto's importer: https://perfetto.dev/docs/getting-started/other-formats).
"""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from syspage.analyze import frames
from syspage.analyze.analysis import TraceAnalysis
from syspage.errors import AnalyzeError


def _write_both(df: pl.DataFrame, stem: Path) -> list[Path]:
    parquet, csv = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    df.write_parquet(parquet)
    df.write_csv(csv)
    return [parquet, csv]


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalyzeError(f"{out}: cannot create the export directory: {exc.strerror or exc}") from None


def write_tables(t: TraceAnalysis, out_dir: str | Path, prefix: str = "") -> list[Path]:
    """census_by_syscall, census_by_class, census_by_process, census_by_thread and savings (if any)."""
    out = Path(out_dir)
    _make_dir(out)
    written: list[Path] = []
    tables = {"census": t.census, "census_classes": t.by_class, "census_processes": t.by_process,
              "census_threads": t.by_thread}
    if t.savings is not None:
        tables["savings"] = t.savings
    for name, df in tables.items():
        written += _write_both(df, out / f"{prefix}{name}")
    return written


def chrome_trace(events: pl.DataFrame | pl.LazyFrame, label: str = "syspage") -> dict:
    """The eligible calls as a Chrome Trace Event document (a dict ready for json.dump).

    Timestamps are microseconds since the trace's first record (Perfetto wants a common
    origin, and relative times keep the numbers exact in a double). Calls with a traced
    duration become complete events (``X``); calls without one become thread-scoped instant
    events (``i``). A trace without timestamps gets no events, only its metadata.
    """
    lf = events.lazy() if isinstance(events, pl.DataFrame) else events
    start = lf.select(pl.col("ts_ns").min()).collect().item()
    calls = frames.call_rows(lf).filter(
        (pl.col("eligibility") == frames.ELIGIBLE) & pl.col("ts_ns").is_not_null()
    )
    pid = pl.col("pid").fill_null(pl.col("tid")).fill_null(0)
    tid = pl.col("tid").fill_null(pl.col("pid")).fill_null(0)
    ts_us = (pl.col("ts_ns") - (start or 0)) / 1000.0
    rows = calls.select(
        pl.col("call_class").alias("name"),
        pl.col("page_class").alias("cat"),
        pl.when(pl.col("duration_ns").is_not_null()).then(pl.lit("X")).otherwise(pl.lit("i")).alias("ph"),
        ts_us.alias("ts"),
        (pl.col("duration_ns") / 1000.0).alias("dur"),
        pid.alias("pid"),
        tid.alias("tid"),
        pl.when(pl.col("duration_ns").is_null()).then(pl.lit("t")).alias("s"),
        pl.struct(
            pl.col("syscall"), pl.col("args_raw").alias("args"), pl.col("ret_raw").alias("ret"),
            pl.col("page_access").alias("access"), pl.col("line_no"),
        ).alias("args"),
    ).collect()
    threads = calls.select(pid.alias("pid"), tid.alias("tid"), pl.col("comm")).unique(["pid", "tid"]).sort("pid", "tid").collect()
    meta = []
    for p in sorted(set(threads["pid"].to_list())):
        meta.append({"name": "process_name", "ph": "M", "pid": p, "tid": p, "args": {"name": f"pid {p}"}})
    for row in threads.iter_rows(named=True):
        name = f"{row['comm']} {row['tid']}" if row["comm"] else f"tid {row['tid']}"
        meta.append({"name": "thread_name", "ph": "M", "pid": row["pid"], "tid": row["tid"], "args": {"name": name}})
    # Drop the keys that do not apply to a row (dur on instants, s on complete events).
    records = [{k: v for k, v in r.items() if v is not None} for r in rows.iter_rows(named=True)]
    return {
        "traceEvents": meta + records,
        "displayTimeUnit": "ns",
        "otherData": {"generator": "syspage analyze", "trace": label, "origin_ts_ns": start,
                      "note": "ts and dur in microseconds since the trace's first record; eligible calls only"},
    }


def write_chrome_trace(events: pl.DataFrame | pl.LazyFrame, path: str | Path, label: str = "syspage") -> Path:
    path = Path(path)
    _make_dir(path.parent)
    doc = chrome_trace(events, label)
    try:
        with path.open("w", encoding="utf-8") as fh:
            json.dump(doc, fh, separators=(",", ":"))
    except OSError as exc:
        raise AnalyzeError(f"{path}: cannot write the Chrome trace: {exc.strerror or exc}") from None
    return path
