"""File to file and frame to table: the replay stage's public functions (see __init__)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from syspage import schema
from syspage.errors import ReplayError
from syspage.replay import engine as engine_mod
from syspage.replay import plan as plan_mod
from syspage.replay import runner
from syspage.replay.plan import Plan
from syspage.replay.runner import Options, ProgressCallback


@dataclass
class Result:
    table: pl.DataFrame          # replay/1
    summary: dict                # the JSON summary
    metadata: dict[str, str]     # the Parquet metadata (syspage.* keys)
    plan: Plan
    output: Path | None = None
    summary_path: Path | None = None


def build_plan(events: pl.DataFrame) -> Plan:
    return plan_mod.build(events)


def replay_events(events: pl.DataFrame, options: Options | None = None,
                  progress: ProgressCallback | None = None, trace_file: str | None = None,
                  trace_sha256: str | None = None) -> Result:
    options = options or Options()
    engine = engine_mod.load()
    runner.validate(options, engine)
    plan = plan_mod.build(events, engine=engine)
    result = runner.run(plan, options, progress=progress)
    df = runner.table(plan, result, options)
    summary = runner.summarize(df, plan, options, result)
    meta = runner.metadata(plan, result, options, trace_file, trace_sha256, summary)
    return Result(table=df, summary=summary, metadata=meta, plan=plan)


def _trace_identity(events_path: Path) -> tuple[str, str]:
    """The trace's file and SHA-256 as parse recorded them, else the events file's own."""
    meta = schema.read_metadata(events_path)
    sha = next((v for k, v in meta.items() if "sha256" in k and v), None)
    source = next((v for k, v in meta.items() if k in ("trace", "trace_file", "source_file", "trace_path") and v), None)
    if sha is None:
        sha = hashlib.sha256(events_path.read_bytes()).hexdigest()
        source = source or str(events_path)
    return source or str(events_path), sha


def replay_file(events: str | Path, output: str | Path, impls=("syscall", "page"),
                progress: ProgressCallback | None = None, **options) -> Result:
    """Replay an events/1 file; write replay/1 Parquet to output and the JSON summary beside it."""
    events = Path(events)
    output = Path(output)
    df = schema.EVENTS.read(events)
    fields = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ReplayError(f"unknown replay option(s) {unknown}")
    opts = Options(impls=tuple(impls), **options)
    trace_file, trace_sha = _trace_identity(events)
    res = replay_events(df, opts, progress=progress, trace_file=trace_file, trace_sha256=trace_sha)
    res.output = schema.REPLAY.write(res.table, output, extra_metadata=res.metadata)
    res.summary_path = output.with_suffix(".json")
    res.summary_path.write_text(json.dumps({"metadata": {k: v for k, v in res.metadata.items() if k != "summary"},
                                            **res.summary}, indent=2, default=str))
    return res
