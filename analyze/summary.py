"""The plain-text summary the CLI prints, and the number formats the report shares with it."""
from __future__ import annotations

import math

import polars as pl

from syspage.analyze.analysis import ReplayInfo, TraceAnalysis

# What the per-call saving is (analyze/inputs.py costs_from_replay): said wherever it is shown,
# because it is not the syscall median minus the page median.
PAIRED_NOTE = ("saved per call = median of the paired differences (syscall − page, sample by sample), "
               "not syscall median − page median")
SUMMARY_ONLY_NOTE = ("summary-only trace: the tracer's own per-syscall summary is shown; "
                     "no per-call events to replay")
SUMMARY_ROWS = 10   # syscalls of a summary-only trace printed (the report has them all)


def fmt_ns(ns: float | None) -> str:
    """A duration in the unit that keeps three significant digits (12.3 ms, 456 ns)."""
    if ns is None:
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_share(x: float | None) -> str:
    """A fraction as a percentage with three significant digits, never in exponent notation
    (5.9e-07 -> "0.0000590 %", 0.1234 -> "12.3 %")."""
    if x is None:
        return "n/a"
    pct = x * 100
    if pct == 0 or not math.isfinite(pct):
        return f"{pct:g} %"
    decimals = max(0, 2 - math.floor(math.log10(abs(pct))))
    return f"{pct:.{decimals}f} %"


def fmt_count(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


def _source(t: TraceAnalysis) -> str:
    f = t.facts
    fmt = f.get("source_format") or t.metadata.get("format") or "unknown-format"
    os_name = f.get("os") or t.metadata.get("os") or "an unknown OS"
    return f"{fmt} trace from {os_name}"


def _summary_only_lines(t: TraceAnalysis) -> list[str]:
    """The tracer's own summary as the census (strace -c): no per-call events, no comparison."""
    rows = (t.tracer_summary.filter(pl.col("pid").is_null() & (pl.col("syscall") != "total"))
            .sort(["calls", "syscall"], descending=[True, False]))
    lines = [
        f"{t.label}: {_source(t)}, tracer summary only",
        f"  {SUMMARY_ONLY_NOTE}",
        f"  tracer summary: {fmt_count(int(rows['calls'].sum()))} calls, "
        f"{fmt_count(int(rows['errors'].fill_null(0).sum()))} errors, {rows.height} syscalls",
    ]
    for row in rows.head(SUMMARY_ROWS).iter_rows(named=True):
        lines.append(f"    {row['syscall']:<28} {row['calls']:>12,} calls {row['errors'] or 0:>10,} errors")
    if rows.height > SUMMARY_ROWS:
        lines.append(f"    +{rows.height - SUMMARY_ROWS} more syscalls (all in the report)")
    return lines


def _class_line(row: dict) -> str:
    """One eligible class: its calls and, when measured, the per-call costs and the saving."""
    head = f"    {row['call_class']:<28} {row['page_class'] or '':<8} {row['calls']:>12,} calls"
    if "measured" not in row:
        return head
    if not row["measured"]:
        why = row.get("skip_reason") or "not timed through both the system call and the page"
        return f"{head}  not measured ({why})"
    estimator = "" if row.get("saved_estimator") in (None, "paired") else f" [{row['saved_estimator']}]"
    return (f"{head}  syscall {fmt_ns(row['syscall_ns'])}, page {fmt_ns(row['page_ns'])}, "
            f"saved {fmt_ns(row['saved_per_call_ns'])}/call ({fmt_ns(row['saved_per_call_lo_ns'])} – "
            f"{fmt_ns(row['saved_per_call_hi_ns'])}){estimator}, total {fmt_ns(row['saved_ns'])}")


def text_summary(t: TraceAnalysis, replay: ReplayInfo | None = None) -> str:
    """What the trace did, where and how the replay measured, and what a page would save.

    Every eligible class is listed (no cut); warnings (a tracer during the replay, a replay
    of another trace, no syscall side) come right after the first line.
    """
    if t.summary_only:
        return "\n".join(_summary_only_lines(t) + [f"  WARNING: {w}" for w in t.warnings])
    f = t.facts
    lines = [
        f"{t.label}: {_source(t)}, {fmt_count(f['records'])} records, "
        f"{fmt_count(f['processes'])} process{'' if f['processes'] == 1 else 'es'}, "
        f"{fmt_count(f['threads'])} thread{'' if f['threads'] == 1 else 's'}",
    ]
    lines += [f"  WARNING: {w}" for w in t.warnings]
    lines += [
        f"  calls {fmt_count(f['calls'])}, errors {fmt_count(f['errors'])}, never returned {fmt_count(f['unreturned'])}; "
        f"wall {fmt_ns(f.get('wall_ns'))}, traced syscall time {fmt_ns(f.get('syscall_ns'))}",
        f"  page-eligible calls {fmt_count(f['eligible_calls'])}"
        f" ({fmt_share(f['eligible_calls'] / f['calls'] if f['calls'] else None)}), follow calls {fmt_count(f['follow_calls'])}",
    ]
    if replay is not None:
        lines.append(f"  replay machine: {replay.machine}")
        lines.append(f"  replay method: {replay.method or 'not recorded'}")
        if t.savings is not None and t.savings.height:
            lines.append(f"  per call class, syscall vs page cost ({PAIRED_NOTE}; 95% CI):")
    rows = t.savings if t.savings is not None else t.by_class.filter(t.by_class["eligibility"] == "eligible")
    for row in rows.iter_rows(named=True):
        lines.append(_class_line(row))
    if replay is not None and replay.host_os and f.get("os") and replay.host_os != f.get("os"):
        lines.append(f"  note: the trace is from {f.get('os')} but the replay ran on {replay.host_os}; each class was "
                     "replayed as the host operation the catalog maps it to (see the report's caveats)")
    if t.savings is not None:
        bad = t.savings.filter(t.savings["mismatches"].fill_null(0) > 0)
        for row in bad.iter_rows(named=True):
            lines.append(f"  WARNING: {row['call_class']}: {row['mismatches']:,} replayed page reads differed from the system call")
    if t.totals is not None:
        tot = t.totals
        if tot["saved_ns"] is None:
            lines.append("  saved: not measured (the replay measured no eligible class through both the system call and the page)")
        else:
            conf = f"{replay.confidence:.0%} " if replay and replay.confidence else ""
            lines.append(
                f"  saved {fmt_ns(tot['saved_ns'])} ({conf}CI {fmt_ns(tot['saved_lo_ns'])} – {fmt_ns(tot['saved_hi_ns'])}; "
                f"sum over classes of calls × paired median saving), "
                f"{fmt_share(tot['share_of_wall'])} of wall time, {fmt_share(tot['share_of_syscall_time'])} of traced syscall time"
            )
        if tot.get("share_of_untraced") is not None:
            m = t.metadata
            extra = "".join([f", {m['untraced_range_s']} s" if m.get("untraced_range_s") else "",
                             f"; the tracer slowed it ×{m['tracer_slowdown']}" if m.get("tracer_slowdown") else ""])
            lines.append(f"  {fmt_share(tot['share_of_untraced'])} of the untraced run time ({fmt_ns(tot['untraced_ns'])}, "
                         f"median of {m.get('untraced_runs', '?')} runs without the tracer{extra})")
        if tot["unmeasured_classes"]:
            lines.append(f"  {tot['unmeasured_classes']} eligible classes not measured by the replay (no saving counted)")
    else:
        lines.append("  no replay given: census only (pass replay.parquet for savings)")
    if t.rejected_lines:
        lines.append(f"  {fmt_count(t.rejected_lines)} trace lines were rejected by the parser (not in the census)")
    if t.summary_check is not None:
        bad = int((~t.summary_check["agrees"]).sum())
        lines.append("  census equals the tracer's own summary" if bad == 0 else
                     f"  census differs from the tracer's own summary on {bad} syscalls")
    return "\n".join(lines)
