"""File to file: events (and replay) Parquet in, HTML report (and exports) out.

The one call ``syspage run`` (syspage/pipeline.py) makes; the CLI does the same steps with
more options (several traces, labels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from syspage.analyze import export, inputs, report
from syspage.analyze.analysis import analyze_trace
from syspage.analyze.summary import text_summary

_STEPS = 4


def analyze_files(
    events: str | Path,
    replay: str | Path | None,
    report_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
    export_dir: str | Path | None = None,
    label: str | None = None,
) -> str:
    """Write the report for one events/1 file (and a replay/1 file, if given); return the text summary."""
    def step(done: int) -> None:
        if progress is not None:
            progress(done, _STEPS)

    events = Path(events)
    step(0)
    files = inputs.load_trace(events)
    replay_info = inputs.load_replay(Path(replay)) if replay is not None and Path(replay).is_file() else None
    step(1)
    analysis = analyze_trace(files.events, label or events.name, replay=replay_info, metadata=files.metadata,
                             rejected_lines=files.rejected_lines, tracer_summary=files.summary)
    step(2)
    report.write(report_path, [analysis], replay_info)
    step(3)
    if export_dir is not None:
        export.write_tables(analysis, export_dir)
        export.write_chrome_trace(files.events, Path(export_dir) / "eligible.trace.json", analysis.label)
    step(4)
    return text_summary(analysis, replay_info)
