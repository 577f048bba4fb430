"""syspage parse: trace text -> events/1 Parquet (see parse/ and docs/parse.md)."""
from __future__ import annotations

HELP = "parse a trace (strace, kdump, truss, DTrace, dtruss, perf trace) into the event table"
EXAMPLE = (
    "  syspage parse trace.txt -o events.parquet\n"
    "  syspage parse RUNDIR -o events.parquet          # a collect run: meta.json gives format, OS, date\n"
    "  syspage parse --format kdump --strict dump.txt -o events.parquet\n"
    "  syspage parse --date 2026-11-28 strace-tt.txt -o events.parquet   # strace -t/-tt print no date"
)
SHOW_REJECTS = 5


def add_arguments(p):
    p.add_argument("trace", help="trace file (.gz too), a collect RUNDIR, or strace -ff files (directory or stem)")
    p.add_argument("-o", "--output", required=True,
                   help="events Parquet file to write (summary and rejects go beside it: STEM.summary.parquet, "
                        "STEM.rejects.parquet)")
    p.add_argument("--format", help="override format auto-detection (strace, perf_trace, kdump, truss, dtrace, dtruss)")
    p.add_argument("--os", help="the OS the trace was recorded on (default: meta.json, else the format's)")
    p.add_argument("--date", help="YYYY-MM-DD: the date of a strace -t/-tt trace, which prints no date")
    p.add_argument("--strict", action="store_true", help="exit 2 if any line is rejected, naming the first")
    p.add_argument("--no-cache", action="store_true", help="parse again even if this trace was parsed before")


def run(args, ui):
    from syspage import parse

    # parse_to_file: the events go to the file as they come, not held (issue 3's peak RSS)
    with ui.progress("parse") as progress:
        result = parse.parse_to_file(args.trace, args.output, format=args.format, os=args.os, date=args.date,
                                     strict=args.strict, progress=progress, cache=not args.no_cache)
    out = result.events_path
    ui.info(
        f"{result.source}: {result.format} ({result.os}), {result.lines_total:,} lines -> "
        f"{result.events:,} events, {result.summary.height:,} summary rows, "
        f"{result.rejects.height:,} lines rejected, {result.lines_ignored:,} ignored"
        + (" (cached)" if result.from_cache else "")
    )
    # calls read but without their return or their start (never resumed, strace detached, a half
    # the tracer lost): counted here, flagged in events.incomplete; not rejects (their lines read)
    if result.incomplete:
        ui.info(f"  {result.incomplete:,} incomplete calls (start or return not in the trace; events.incomplete)")
    if result.rejects.height:
        for row in result.rejects.head(SHOW_REJECTS).iter_rows(named=True):
            ui.info(f"  rejected {row['source_file']}:{row['line_no']}: {row['reason']}: {row['text'][:100]!r}")
        if result.rejects.height > SHOW_REJECTS:
            ui.info(f"  ... and {result.rejects.height - SHOW_REJECTS:,} more in "
                    f"{out.with_name(out.stem + '.rejects.parquet')}")
    ui.info(f"wrote {out}")
    return 0
