"""syspage analyze: census, savings and the HTML report (see analyze/ and docs/report.md).

Inputs are told apart by the schema tag inside each Parquet file (syspage.schema.read_tag),
so their order does not matter: events/1 files are traces, replay/1 the replay result,
locking and scan tables add their sections, summary/1 and rejects/1 files are the parse's
side tables (found beside the events file when not given).
"""
from __future__ import annotations

from pathlib import Path

from syspage.errors import AnalyzeError

HELP = "census, savings estimate and a self-contained HTML report"
EXAMPLE = (
    "  syspage analyze events.parquet replay.parquet -o report.html\n"
    "  syspage analyze --compare a/events.parquet b/events.parquet replay.parquet -o compare.html\n"
    "  syspage analyze events.parquet -o report.html --export out/"
)


def add_arguments(p):
    p.add_argument("inputs", nargs="+", help="events Parquet file(s) from syspage parse, optionally a replay "
                   "Parquet file from syspage replay, locking or scan tables (told apart by their schema tag)")
    p.add_argument("-o", "--output", required=True, help="HTML report to write")
    p.add_argument("--compare", action="store_true", help="several events files side by side in one report")
    p.add_argument("--export", metavar="DIR", help="also write census and savings (Parquet and CSV) and the "
                   "eligible calls as Chrome trace JSON (Perfetto UI) into DIR")
    p.add_argument("--label", action="append", default=[], help="name a trace in the report (once per events file, in order)")


def _label(path: Path, given: list[str], index: int) -> str:
    if index < len(given):
        return given[index]
    return path.parent.name + "/" + path.name if path.parent.name else path.name


def run(args, ui):
    # imported here, not at the top: the CLI imports every command to build its help, and the
    # analyze stage's Plotly costs every other command ~20 MB of RSS (issue 3's parse memory)
    from syspage.analyze import analyze_trace, export, inputs, report, text_summary

    found = inputs.sort_inputs(args.inputs)
    if not found.traces:
        raise AnalyzeError(f"no events/1 file among {', '.join(args.inputs)} (run syspage parse first)")
    if len(found.traces) > 1 and not args.compare:
        raise AnalyzeError(f"{len(found.traces)} events files given: add --compare to put them side by side")
    if len(found.replays) > 1:
        raise AnalyzeError(f"{len(found.replays)} replay files given ({', '.join(map(str, found.replays))}): pass one")
    replay = inputs.load_replay(found.replays[0]) if found.replays else None
    locking = inputs.load_table(found.locking[0]) if found.locking else None
    binaries = inputs.load_table(found.scans[0]) if found.scans else None

    analyses = []
    labels = []
    for i, path in enumerate(found.traces):
        files = inputs.load_trace(path, found.side)
        label = _label(path, args.label, i)
        if label in labels:
            label = f"{label} ({i + 1})"
        labels.append(label)
        with ui.progress(f"analyze {label}") as progress:
            analysis = analyze_trace(files.events, label, replay=replay, metadata=files.metadata,
                                     rejected_lines=files.rejected_lines, tracer_summary=files.summary,
                                     progress=progress)
        analyses.append(analysis)
        ui.info(text_summary(analysis, replay))
        if args.export:
            out = Path(args.export)
            prefix = "" if len(found.traces) == 1 else f"{i + 1}-"
            written = export.write_tables(analysis, out, prefix=prefix)
            written.append(export.write_chrome_trace(files.events, out / f"{prefix}eligible.trace.json", label))
            ui.info(f"  exported {len(written)} files to {out}")
    path = report.write(args.output, analyses, replay, locking=locking, binaries=binaries)
    size = path.stat().st_size
    ui.info(f"wrote {path} ({size / 1e6:.2f} MB)")
    return 0
