"""The plain-text summary the CLI prints, and the number formats the report shares with it."""
from __future__ import annotations

from syspage.analyze.analysis import ReplayInfo, TraceAnalysis


def fmt_ns(ns: float | None) -> str:
    """A duration in the unit that keeps three significant digits (12.3 ms, 456 ns)."""
    if ns is None:
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_share(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x != 0 and abs(x) < 0.0001:
        return f"{x * 100:.2g}%"
    return f"{x:.3%}" if abs(x) < 0.01 else f"{x:.1%}"


def fmt_count(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


def text_summary(t: TraceAnalysis, replay: ReplayInfo | None = None, top: int = 5) -> str:
    """A few lines on the terminal: what the trace did and what a page would save."""
    f = t.facts
    lines = [
        f"{t.label}: {f.get('source_format')} trace from {f.get('os')}, {fmt_count(f['records'])} records, "
        f"{fmt_count(f['processes'])} process{'' if f['processes'] == 1 else 'es'}, "
        f"{fmt_count(f['threads'])} thread{'' if f['threads'] == 1 else 's'}",
        f"  calls {fmt_count(f['calls'])}, errors {fmt_count(f['errors'])}, never returned {fmt_count(f['unreturned'])}; "
        f"wall {fmt_ns(f.get('wall_ns'))}, traced syscall time {fmt_ns(f.get('syscall_ns'))}",
        f"  page-eligible calls {fmt_count(f['eligible_calls'])}"
        f" ({fmt_share(f['eligible_calls'] / f['calls'] if f['calls'] else None)}), follow calls {fmt_count(f['follow_calls'])}",
    ]
    eligible = t.by_class.filter(t.by_class["eligibility"] == "eligible").head(top)
    for row in eligible.iter_rows(named=True):
        lines.append(f"    {row['call_class']:<28} {row['page_class']:<8} {row['calls']:>12,} calls")
    if replay is not None and replay.host_os and f.get("os") and replay.host_os != f.get("os"):
        lines.append(f"  note: the trace is from {f.get('os')} but the replay ran on {replay.host_os}; each class was "
                     "replayed as the host operation the catalog maps it to (see the report's caveats)")
    if t.savings is not None:
        bad = t.savings.filter(t.savings["mismatches"].fill_null(0) > 0)
        for row in bad.iter_rows(named=True):
            lines.append(f"  WARNING: {row['call_class']}: {row['mismatches']:,} replayed page reads differed from the system call")
    if t.totals is not None:
        tot = t.totals
        conf = f"{replay.confidence:.0%} " if replay and replay.confidence else ""
        lines.append(
            f"  saved {fmt_ns(tot['saved_ns'])} ({conf}CI {fmt_ns(tot['saved_lo_ns'])} – {fmt_ns(tot['saved_hi_ns'])}), "
            f"{fmt_share(tot['share_of_wall'])} of wall time, {fmt_share(tot['share_of_syscall_time'])} of traced syscall time"
        )
        if tot.get("share_of_untraced") is not None:
            lines.append(f"  {fmt_share(tot['share_of_untraced'])} of the untraced run time ({fmt_ns(tot['untraced_ns'])}, "
                         f"median of {t.metadata.get('untraced_runs', '?')} runs without the tracer)")
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
