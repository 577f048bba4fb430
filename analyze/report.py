"""The HTML report: the only module of analyze that writes HTML.

One self-contained file: plotly.js is embedded once (``plotly.offline.get_plotlyjs()``),
every figure is a ``to_html(full_html=False, include_plotlyjs=False, div_id=...)`` fragment
with a stable id, and nothing in the page refers to the network. No clock, random id or
absolute machine state goes into the page, so the same inputs give a byte-identical file
(tests/test_analyze_report.py checks it). See docs/report.md for the sections.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable

import plotly.offline
import polars as pl

import syspage
from syspage.analyze import figures, frames
from syspage.analyze.analysis import ReplayInfo, TraceAnalysis
from syspage.analyze.summary import PAIRED_NOTE, SUMMARY_ONLY_NOTE, fmt_count, fmt_ns, fmt_share
from syspage.catalog import load as load_catalog
from syspage.errors import AnalyzeError

# Every figure's div id (tests and docs/report.md refer to them).
FIG_CENSUS = "fig-census"
FIG_COST = "fig-cost"
FIG_WATERFALL = "fig-waterfall"
FIG_TIMELINE = "fig-timeline"
FIG_COMPARE = "fig-compare"
FIG_LOCKING = "fig-locking"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["sendDataToCloud"]}
TABLE_ROWS = 50   # rows shown in a HTML table; the exports hold all of them

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:1rem 1.5rem 3rem}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:1rem 1.25rem;margin:1rem 0}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.2rem;margin:.2rem 0 .6rem}
table{border-collapse:collapse;font-size:.88rem;width:100%}
th,td{border-bottom:1px solid #eee;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0}td.l,th.l{text-align:left}
.headline{display:flex;flex-wrap:wrap;gap:1rem}.kpi{flex:1 1 200px;border-left:4px solid #009E73;padding:.3rem .8rem}
.kpi b{display:block;font-size:1.4rem}.kpi span{color:#555;font-size:.85rem}
.note{color:#555;font-size:.9rem}.warn{border-left:4px solid #D55E00;padding-left:.6rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dt{color:#555}dd{margin:0;word-break:break-all}
.scroll{max-height:28rem;overflow:auto}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _figure_html(fig, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG)


def _table(df: pl.DataFrame, columns: dict[str, str], left: Iterable[str] = (), formats: dict | None = None,
           limit: int = TABLE_ROWS) -> str:
    """A plain HTML table of the first ``limit`` rows (column -> header), values escaped."""
    formats = formats or {}
    left = set(left)
    head = "".join(f'<th class="{"l" if c in left else ""}">{_e(h)}</th>' for c, h in columns.items())
    rows = []
    for row in df.head(limit).iter_rows(named=True):
        cells = []
        for c in columns:
            v = row.get(c)
            text = formats[c](v) if c in formats and v is not None else ("" if v is None else v)
            cells.append(f'<td class="{"l" if c in left else ""}">{_e(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="note">{df.height - limit} more rows in the exports (--export).</p>' if df.height > limit else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{more}'


def _dl(items: list[tuple[str, object]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items if v not in (None, "")) + "</dl>"


def _plural(n: int, one: str, many: str) -> str:
    return f"{fmt_count(n)} {one if n == 1 else many}"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


# --- sections ----------------------------------------------------------------------------
def _header(traces: list[TraceAnalysis], replay: ReplayInfo | None) -> str:
    items: list[tuple[str, object]] = []
    for t in traces:
        f = t.facts
        prefix = f"{t.label}: " if len(traces) > 1 else ""
        items += [
            (f"{prefix}trace", f.get("source_file")),
            (f"{prefix}trace SHA-256", t.metadata.get("trace_sha256")),
            (f"{prefix}format / OS", f"{f.get('source_format')} / {f.get('os')}"),
            (f"{prefix}recorded on", t.metadata.get("host")),
            (f"{prefix}recorded", t.metadata.get("recorded_utc")),
            (f"{prefix}tracer", " — ".join(x for x in (t.metadata.get("tracer"), t.metadata.get("tracer_argv")) if x)),
            (f"{prefix}traced command", t.metadata.get("target")),
            (f"{prefix}lines / records", f"{fmt_count(int(t.metadata['lines_total']))} lines, {fmt_count(f['records'])} records"
             if t.metadata.get("lines_total", "").isdigit() else fmt_count(f["records"])),
            (f"{prefix}parser", t.metadata.get("parser_version")),
        ]
    if replay is not None:
        items += [
            ("replay host", replay.host),
            ("replay OS / kernel", " / ".join(x for x in (replay.host_os, replay.kernel) if x)),
            ("replay CPU", replay.cpu),
            ("mitigations", replay.mitigations),
            ("method", replay.method),
            ("machine reference", replay.reference),
            ("tracers during the replay", ", ".join(replay.tracers) if replay.tracers else "none seen"),
            ("replay of trace SHA-256", replay.trace_sha256),
            ("replay file", replay.source_file),
        ]
    else:
        items.append(("replay", "none given: census only, no savings (run syspage replay, then pass replay.parquet)"))
    items.append(("syspage", syspage.__version__))
    # The warnings that make the savings untrustworthy (analysis.replay_warnings), first thing on the page.
    warnings = [(f"{t.label}: " if len(traces) > 1 else "") + w for t in traces for w in t.warnings]
    warn = "".join(f'<p class="note warn" id="sp-warning-{i}"><b>Warning:</b> {_e(w)}.</p>' for i, w in enumerate(warnings))
    return f'<header id="sp-header"><h1>syspage report</h1>{warn}{_dl(items)}</header>'


def _headline(t: TraceAnalysis, replay: ReplayInfo | None, sid: str = "sp-headline") -> str:
    f = t.facts
    if t.summary_only:
        rows = t.tracer_summary.filter(pl.col("pid").is_null() & (pl.col("syscall") != "total"))
        kpis = [(fmt_count(int(rows["calls"].sum())), f"system calls in the tracer's own summary "
                 f"({fmt_count(int(rows['errors'].fill_null(0).sum()))} errors, {rows.height} syscalls)")]
        body = '<div class="headline">' + "".join(f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
                                                  for v, k in kpis) + "</div>"
        body += f'<p class="note warn">{_e(SUMMARY_ONLY_NOTE)}.</p>'
        return _section(sid, "Headline" + (f": {t.label}" if sid != "sp-headline" else ""), body)
    kpis = [
        (fmt_count(f["calls"]), f"system calls returned ({fmt_count(f['errors'])} errors)"),
        (f"{fmt_count(f['eligible_calls'])} ({fmt_share(f['eligible_calls'] / f['calls'] if f['calls'] else None)})",
         "page-eligible calls"),
        (fmt_ns(f.get("wall_ns")), "traced wall time"),
    ]
    tot = t.totals
    if tot is not None and tot["saved_ns"] is None:
        kpis.insert(0, ("not measured", "saved over the trace: the replay measured no eligible class through both "
                                        "the system call and the page"))
    elif tot is not None:
        ci = f"{fmt_ns(tot['saved_lo_ns'])} – {fmt_ns(tot['saved_hi_ns'])}"
        conf = f"{replay.confidence:.0%} " if replay and replay.confidence else ""
        kpis.insert(0, (fmt_ns(tot["saved_ns"]), f"saved over the trace ({conf}CI {ci})"))
        kpis.append((fmt_share(tot["share_of_wall"]),
                     f"of wall time ({fmt_share(tot['share_of_wall_lo'])} – {fmt_share(tot['share_of_wall_hi'])})"))
        kpis.append((fmt_share(tot["share_of_syscall_time"]), "of traced syscall time"))
        if tot.get("share_of_untraced") is not None:
            runs = t.metadata.get("untraced_runs", "?")
            kpis.append((fmt_share(tot["share_of_untraced"]),
                         f"of the untraced run time, {fmt_ns(tot['untraced_ns'])} (median of {runs} runs, "
                         f"{t.metadata.get('untraced_range_s', '')} s; the tracer slowed it ×{t.metadata.get('tracer_slowdown', '?')})"))
        rate = tot["eligible_calls_per_s"]
        kpis.append((f"{rate:,.0f}/s" if rate is not None else "n/a", "eligible calls per second"))
        if tot["unmeasured_classes"]:
            kpis.append((str(tot["unmeasured_classes"]), "eligible classes the replay did not measure (no saving counted)"))
    body = '<div class="headline">' + "".join(f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in kpis) + "</div>"
    if tot is None:
        body += '<p class="note">No replay result given: this report counts calls but does not estimate savings.</p>'
    return _section(sid, "Headline" + (f": {t.label}" if sid != "sp-headline" else ""), body)


def _census_section(t: TraceAnalysis, sid: str, fig_id: str) -> str:
    if t.summary_only:
        return _section(sid, "Census: the tracer's own summary", _tracer_summary_census(t))
    body = _figure_html(figures.census_chart(t.census), fig_id)
    body += "<h3>Page-eligible and follow classes</h3>" + _table(
        t.by_class,
        {"call_class": "class", "syscalls": "syscalls", "eligibility": "kind", "page_class": "page", "page_access": "access",
         "calls": "calls", "errors": "errors", "unreturned": "unreturned", "mean_traced_ns": "mean traced"},
        left=("call_class", "syscalls", "eligibility", "page_class", "page_access"),
        formats={"mean_traced_ns": fmt_ns, "calls": fmt_count, "errors": fmt_count},
    ) if t.by_class.height else '<p class="note">No call in this trace is served by a page in the catalog.</p>'
    if t.summary_check is not None:
        bad = t.summary_check.filter(~pl.col("agrees"))
        verdict = ("The census's call and error counts equal the tracer's own summary for every syscall."
                   if bad.height == 0 else
                   f"{bad.height} syscalls differ from the tracer's own summary (table below).")
        body += f'<p class="note">{_e(verdict)}</p>'
        if bad.height:
            body += _table(bad, {"syscall": "syscall", "census_calls": "census calls", "tracer_calls": "tracer calls",
                                 "census_errors": "census errors", "tracer_errors": "tracer errors"}, left=("syscall",))
    return _section(sid, "Census: top system calls", body)


def _tracer_summary_census(t: TraceAnalysis) -> str:
    """A summary-only trace (strace -c): its summary is the census; nothing to compare it with."""
    rows = (t.tracer_summary.filter(pl.col("pid").is_null() & (pl.col("syscall") != "total"))
            .sort(["calls", "syscall"], descending=[True, False]))
    body = f'<p class="note warn">{_e(SUMMARY_ONLY_NOTE)}.</p>'
    body += _table(rows, {"syscall": "syscall", "calls": "calls", "errors": "errors", "time_ns": "tracer time",
                          "pct_time": "% time"}, left=("syscall",),
                   formats={"calls": fmt_count, "errors": fmt_count, "time_ns": fmt_ns, "pct_time": lambda v: f"{v:.2f}"},
                   limit=max(TABLE_ROWS, rows.height))
    return body


def _cost_section(t: TraceAnalysis, replay: ReplayInfo) -> str:
    s = t.savings
    body = _figure_html(figures.cost_chart(s), FIG_COST)
    body += _table(
        s, {"call_class": "class", "host_op": "host op", "calls": "calls", "syscall_ns": "syscall ns/call",
            "page_ns": "page ns/call", "saved_per_call_ns": "saved ns/call (median of paired differences)",
            "saved_per_call_lo_ns": "lo", "saved_per_call_hi_ns": "hi", "saved_estimator": "estimator",
            "saved_ns": "saved total"},
        left=("call_class", "host_op", "saved_estimator"),
        formats={"syscall_ns": lambda v: f"{v:.1f}", "page_ns": lambda v: f"{v:.1f}", "saved_per_call_ns": lambda v: f"{v:.1f}",
                 "saved_per_call_lo_ns": lambda v: f"{v:.1f}", "saved_per_call_hi_ns": lambda v: f"{v:.1f}",
                 "saved_ns": fmt_ns, "calls": fmt_count},
    )
    body += (f'<p class="note">{_e(PAIRED_NOTE[0].upper() + PAIRED_NOTE[1:])}: syscall and page were timed '
             "in the same worker and repetition, and the median of those paired differences, with its 95 % interval, "
             "is a tighter and less biased estimate than the difference of the two medians, which it need not equal. "
             "A class whose replay gave no paired value uses the difference of medians (estimator column).</p>")
    missing = s.filter(~pl.col("measured"))
    if missing.height:
        why = [f"{r['call_class']} ({r['skip_reason']})" if r["skip_reason"] else r["call_class"]
               for r in missing.iter_rows(named=True)]
        body += f'<p class="note warn">Not measured by the replay (no saving counted): {_e(", ".join(why))}.</p>'
    bad = s.filter(pl.col("mismatches").fill_null(0) > 0)
    if bad.height:
        body += ('<p class="note warn">The page returned a different value than the system call on some replayed reads: '
                 + _e(", ".join(f"{r['call_class']}: {r['mismatches']:,}" for r in bad.iter_rows(named=True))) + ".</p>")
    shaky = s.filter(pl.col("unstable").fill_null(False))["call_class"].to_list()
    if shaky:
        body += (f'<p class="note warn">Unstable measurements (spread above 10 % of the median): {_e(", ".join(shaky))}; '
                 "re-run the replay on a quieter machine.</p>")
    return _section("sp-cost", "Cost per call: system call vs shared page", body)


def _waterfall_section(t: TraceAnalysis) -> str:
    return _section("sp-waterfall", "Savings by class", _figure_html(figures.savings_waterfall(t.savings), FIG_WATERFALL))


def _timeline_section(t: TraceAnalysis) -> str:
    if t.timeline.height == 0:
        why = "no page-eligible calls" if t.facts["eligible_calls"] == 0 else "no timestamps in the trace"
        return _section("sp-timeline", "Eligible calls over time", f'<p class="note">Nothing to draw: {why}.</p>')
    body = _figure_html(figures.timeline_chart(t.timeline, t.by_class), FIG_TIMELINE)
    body += (f'<p class="note">{fmt_count(int(t.timeline["calls"].sum()))} eligible calls in '
             f'{fmt_count(t.timeline.height)} bins; the eligible calls one by one are in the Chrome trace export '
             f'(--export), which Perfetto UI opens.</p>')
    return _section("sp-timeline", "Eligible calls over time", body)


def _process_section(t: TraceAnalysis) -> str:
    f = t.facts
    body = f'<p class="note">{_plural(f["processes"], "process", "processes")}, {_plural(f["threads"], "thread", "threads")}.</p>'
    columns = {"pid": "pid", "comm": "command", "threads": "threads", "calls": "calls", "errors": "errors",
               "eligible_calls": "eligible", "eligible_share": "eligible share", "traced_ns": "traced time"}
    if t.by_process["comm"].null_count() == t.by_process.height:
        del columns["comm"]  # strace prints no command names
    body += _table(
        t.by_process, columns, left=("comm",),
        formats={"eligible_share": fmt_share, "traced_ns": fmt_ns, "calls": fmt_count, "errors": fmt_count,
                 "eligible_calls": fmt_count},
    )
    if t.by_thread.height > 1:
        body += "<details><summary>Per thread</summary>" + _table(
            t.by_thread,
            {"pid": "pid", "tid": "tid", "calls": "calls", "errors": "errors", "unreturned": "unreturned",
             "eligible_calls": "eligible", "traced_ns": "traced time"},
            formats={"traced_ns": fmt_ns, "calls": fmt_count, "errors": fmt_count, "eligible_calls": fmt_count},
        ) + "</details>"
    return _section("sp-processes", "Per process and thread", body)


def _locking_section(locking: pl.DataFrame) -> str:
    summary = frames.locking_summary(locking)
    best = frames.locking_recommendation(summary)
    if best is None:
        verdict = ("No scheme passed the correctness check (no torn read and no mixed two-field snapshot): "
                   "the data supports none of them as measured.")
    else:
        verdict = (f"The data supports the '{best}' scheme: of the schemes that give a consistent two-field "
                   f"snapshot by design ({', '.join(frames.SNAPSHOT_SCHEMES)}), it had no torn read, no mixed snapshot, "
                   "and the lowest worst-case median reader cost over every writer rate measured. The per-field and "
                   "lock-free word schemes can be cheaper for one word but cannot give getresuid-style snapshots.")
    oversub = bool(locking["oversubscribed"].any())
    body = f'<p><b>{_e(verdict)}</b></p>'
    if oversub:
        body += ('<p class="note warn">Some runs had more threads than CPUs: a reader can then wait a whole scheduler '
                 "slice for a descheduled writer, which shows in the tail, not in the median.</p>")
    body += _figure_html(figures.locking_chart(locking), FIG_LOCKING)
    body += _table(summary, {"scheme": "scheme", "torn": "torn reads", "mixed_snapshots": "mixed snapshots",
                             "idle_reader_ns": "reader ns (no writer)", "worst_reader_ns": "reader ns (worst)",
                             "worst_tail_ns": "p99 ns (worst)", "max_retries": "max retries", "writer_ns": "writer ns/update",
                             "any_unstable": "unstable"},
                   left=("scheme",), formats={c: (lambda v: f"{v:.3g}") for c in
                                              ("idle_reader_ns", "worst_reader_ns", "worst_tail_ns", "writer_ns")})
    return _section("sp-locking", "Locking scheme", body)


def _binaries_section(scan: pl.DataFrame) -> str:
    """scan/1 (syspage scan): which binaries would benefit, and which would keep entering the kernel."""
    users = scan.filter(pl.col("uses_page_calls").fill_null(False))
    old = scan.filter(pl.col("old_path").is_not_null())
    body = (f'<p class="note">{fmt_count(scan.height)} ELF files scanned; {fmt_count(users.height)} import a function a '
            f'page would serve; {fmt_count(old.height)} would still enter the kernel after the page lands.</p>')
    reasons = old.group_by("old_path").agg(pl.len().alias("files")).sort(["files", "old_path"], descending=[True, False])
    if reasons.height:
        body += "<h3>Why some would keep the old path</h3>" + _table(reasons, {"old_path": "reason", "files": "files"},
                                                                      left=("old_path",))
    shown = users.sort("path").with_columns(pl.col("imports").list.join(", ").alias("imports_text"))
    body += "<h3>Binaries that import page-served functions</h3>" + _table(
        shown, {"path": "path", "kind": "kind", "os": "OS", "imports_text": "imports"}, left=("path", "kind", "os", "imports_text"))
    return _section("sp-binaries", "Binaries", body)


def _compare_section(traces: list[TraceAnalysis]) -> str:
    items = [(t.label, t.facts, t.by_class, t.totals) for t in traces]
    table = frames.compare(items)
    classes = frames.compare_classes([(t.label, t.by_class) for t in traces])
    body = _figure_html(figures.compare_chart(table, classes), FIG_COMPARE)
    body += _table(table, {"trace": "trace", "os": "OS", "calls": "calls", "eligible_calls": "eligible",
                           "eligible_share": "share", "top_eligible_class": "top class", "wall_s": "wall s",
                           "eligible_calls_per_s": "eligible/s", "saved_ns": "saved", "share_of_wall": "of wall"},
                   left=("trace", "os", "top_eligible_class"),
                   formats={"eligible_share": fmt_share, "share_of_wall": fmt_share, "saved_ns": fmt_ns,
                            "wall_s": lambda v: f"{v:.3f}", "eligible_calls_per_s": lambda v: f"{v:,.0f}"})
    return _section("sp-compare", "Traces side by side", body)


def _caveats(traces: list[TraceAnalysis], replay: ReplayInfo | None) -> str:
    notes: list[str] = []
    notes.append(
        "Tracer overhead inflates traced durations: a traced call's time (strace -T, dtruss, perf trace) includes "
        "the tracer's stops, often microseconds for a call the kernel serves in about a hundred nanoseconds. "
        "The traced wall time and syscall time are inflated the same way, so the shares above are of the traced "
        "run and understate the share of an untraced run. Savings use the replay's costs, not traced durations. "
        "When collect timed the workload without the tracer (collect --overhead), the headline also sets the saving "
        "against that untraced run time: the figure the tracer does not dilute."
    )
    for t in traces:
        # Tracer during the replay, replay of another trace, no syscall side (analysis.replay_warnings).
        notes += [(f"{t.label}: " if len(traces) > 1 else "") + w[0].upper() + w[1:] + "." for w in t.warnings]
        if t.summary_only:
            notes.append((f"{t.label}: " if len(traces) > 1 else "") + SUMMARY_ONLY_NOTE[0].upper() + SUMMARY_ONLY_NOTE[1:]
                         + "; the census is the tracer's summary, so nothing is compared with it and no saving is estimated.")
    if replay is not None:
        catalog = load_catalog().by_class()
        for t in traces:
            trace_os = t.facts.get("os")
            if replay.host_os and trace_os and trace_os != replay.host_os:
                maps = []
                for cls in t.savings["call_class"].to_list() if t.savings is not None else []:
                    entry = catalog.get(cls)
                    op = (entry.linux_op if replay.host_os == "linux" else entry.freebsd_op) if entry else None
                    maps.append(f"{cls} → {op or 'not in catalog'}")
                notes.append(
                    f"{t.label}: the trace was recorded on {trace_os} but the replay ran on {replay.host_os}. "
                    "Each class was replayed as the host operation the catalog maps it to: "
                    + ("; ".join(maps) if maps else "no classes") + ". A class mapped to 'none' has no host call and is not measured."
                )
        notes.append("Savings = calls × per-call saving per class. The per-call saving is the median of the paired "
                     "differences (syscall − page, timed in the same worker and repetition), not the syscall median "
                     "minus the page median: the two can differ by several ns. The interval is the replay's "
                     "confidence interval of that paired median times the exact call count. The total's interval "
                     "adds the lower bounds and the upper bounds (conservative). Follow calls (fork, setuid, "
                     "sethostname...) are state changes the page must track; they are not savings and their extra cost "
                     "is not subtracted unless the replay measured it.")
    for t in traces:
        prefix = f"{t.label}: " if len(traces) > 1 else ""
        if t.rejected_lines is None:
            notes.append(f"{prefix}no rejects table was found beside the events file, so the number of trace lines the parser could not read is unknown.")
        elif t.rejected_lines:
            notes.append(f"{prefix}{fmt_count(t.rejected_lines)} trace lines could not be read by the parser (rejects table); "
                         "calls on those lines are missing from the census.")
        else:
            notes.append(f"{prefix}the parser read every line of the trace (0 rejected lines).")
        if t.facts["unreturned"]:
            notes.append(f"{prefix}{fmt_count(t.facts['unreturned'])} calls never returned in the trace (exit_group, "
                         "calls cut off when the tracer stopped); like strace -c, the census does not count them as calls.")
        if t.facts.get("wall_ns") is None:
            notes.append(f"{prefix}the trace has no timestamps: wall time, calls per second and the timeline are unavailable.")
        if t.tracer_summary is not None and t.tracer_summary.height and not t.summary_only:
            notes.append(f"{prefix}the tracer's own summary times (strace -c) are system CPU time by default, not the "
                         "wall-clock -T durations in the census; only counts are compared.")
    return _section("sp-caveats", "Caveats", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")


# --- the page ----------------------------------------------------------------------------
def render(
    traces: list[TraceAnalysis],
    replay: ReplayInfo | None = None,
    locking: pl.DataFrame | None = None,
    binaries: pl.DataFrame | None = None,
) -> str:
    """The whole report as one HTML string (deterministic for the same inputs)."""
    if not traces:
        raise ValueError("render() needs at least one trace analysis")
    parts = [_header(traces, replay)]
    if len(traces) > 1:
        parts.append(_compare_section(traces))
    main = traces[0]
    parts.append(_headline(main, replay))
    parts.append(_census_section(main, "sp-census", FIG_CENSUS))
    if main.savings is not None and replay is not None:
        if main.savings.filter(pl.col("measured")).height:
            parts.append(_cost_section(main, replay))
            parts.append(_waterfall_section(main))
        else:
            parts.append(_section("sp-cost", "Cost per call", '<p class="note warn">The replay measured none of this trace\'s eligible classes.</p>'))
    parts.append(_timeline_section(main))
    parts.append(_process_section(main))
    for i, t in enumerate(traces[1:], start=2):
        parts.append(_headline(t, replay, sid=f"sp-headline-{i}"))
        parts.append(_census_section(t, f"sp-census-{i}", f"{FIG_CENSUS}-{i}"))
    if locking is not None:
        parts.append(_locking_section(locking))
    if binaries is not None:
        parts.append(_binaries_section(binaries))
    parts.append(_caveats(traces, replay))
    title = "syspage report: " + ", ".join(t.label for t in traces)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<style>{_CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head>\n"
        "<body><main>\n" + "\n".join(parts) + "\n</main></body></html>\n"
    )


def write(path: str | Path, traces: list[TraceAnalysis], replay: ReplayInfo | None = None,
          locking: pl.DataFrame | None = None, binaries: pl.DataFrame | None = None) -> Path:
    """Write the report; returns its path."""
    path = Path(path)
    page = render(traces, replay, locking, binaries)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise AnalyzeError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    return path
