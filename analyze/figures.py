"""Plotly figures for the report: one function per chart, each reading a frames.py table.

No I/O here (report.py writes the HTML). Colours, names and the template are constants so
every chart agrees (the polars-benchmark habit, see /work/shared/STYLE.md). The template
is deliberately tiny: plotly's default template adds ~6 KB of JSON to every figure, and
the report must stay under 5 MB with plotly.js (4.8 MB) embedded.
"""
from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from syspage.analyze.frames import ELIGIBLE, FOLLOW, NOT_ELIGIBLE
from syspage.analyze.summary import fmt_ns as _fmt_ns

# Page classes and their colours (colour-blind safe, Okabe-Ito palette).
PAGE_NAMES = {
    "proc_ro": "per-process read-only page",
    "proc_rw": "per-process read-write (title) page",
    "sys_ro": "system-wide read-only page",
}
PAGE_COLOURS = {"proc_ro": "#0072B2", "proc_rw": "#D55E00", "sys_ro": "#009E73"}
FOLLOW_COLOUR = "#CC79A7"
NOT_ELIGIBLE_COLOUR = "#9E9E9E"
SYSCALL_COLOUR = "#E69F00"   # cost through the system call
PAGE_COLOUR = "#56B4E9"      # cost through the shared page
SAVED_COLOUR = "#009E73"
LOSS_COLOUR = "#D55E00"
TOTAL_COLOUR = "#000000"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

TOP_SYSCALLS = 30
_TEMPLATE = go.layout.Template(
    layout=dict(
        font=dict(family=FONT, size=13, color="#222"),
        paper_bgcolor="white",
        plot_bgcolor="white",
        xaxis=dict(showgrid=True, gridcolor="#e5e5e5", zeroline=False, automargin=True),
        yaxis=dict(showgrid=True, gridcolor="#e5e5e5", zeroline=False, automargin=True),
        margin=dict(l=10, r=10, t=40, b=40),
        hoverlabel=dict(align="left"),
    )
)


def _figure(title: str, height: int = 420) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template=_TEMPLATE, title=dict(text=title, x=0, xanchor="left"), height=height)
    return fig


def census_chart(census: pl.DataFrame, top: int = TOP_SYSCALLS) -> go.Figure:
    """Top syscalls by calls on a log axis, coloured by the page that would serve them.

    ``census`` is frames.census_by_syscall(). A syscall whose calls fall in several classes
    (``prctl(PR_SET_NAME)`` and other prctl calls) gets one bar per class, labelled by class.
    """
    rows = census.filter(pl.col("calls") > 0).head(top).with_columns(
        pl.when(pl.col("call_class").is_not_null() & (pl.col("call_class") != pl.col("syscall")))
        .then(pl.col("call_class")).otherwise(pl.col("syscall")).alias("label")
    )
    labels = rows["label"].to_list()
    fig = _figure(f"Top {len(labels)} system calls by number of calls (log scale)", height=max(320, 22 * len(labels) + 150))
    groups = [(ELIGIBLE, p) for p in PAGE_COLOURS] + [(FOLLOW, None), (NOT_ELIGIBLE, None)]
    for eligibility, page in groups:
        part = rows.filter(pl.col("eligibility") == eligibility)
        if page is not None:
            part = part.filter(pl.col("page_class") == page)
        if part.height == 0:
            continue
        name = {
            ELIGIBLE: f"eligible: {PAGE_NAMES.get(page, page)}",
            FOLLOW: "page must follow (state change)",
            NOT_ELIGIBLE: "not eligible",
        }[eligibility]
        colour = PAGE_COLOURS.get(page) if page else (FOLLOW_COLOUR if eligibility == FOLLOW else NOT_ELIGIBLE_COLOUR)
        fig.add_trace(go.Bar(
            name=name, orientation="h", marker_color=colour,
            x=part["calls"].to_list(), y=part["label"].to_list(),
            customdata=list(zip(part["syscall"].to_list(), part["errors"].to_list())),
            hovertemplate="%{y}: %{x:,} calls, %{customdata[1]:,} errors<br>syscall %{customdata[0]}<extra>" + name + "</extra>",
        ))
    fig.update_layout(
        barmode="overlay",
        yaxis=dict(categoryorder="array", categoryarray=list(reversed(labels)), title=None),
        xaxis=dict(title="calls that returned (log scale)", type="log"),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0),
        margin=dict(t=110),
    )
    return fig


def cost_chart(per_class: pl.DataFrame) -> go.Figure:
    """Cost per call through the syscall and through the page, with the replay's interval, log axis."""
    measured = per_class.filter(pl.col("measured")).sort("call_class")
    fig = _figure("Cost per call: system call vs shared page (replay, confidence interval)",
                  height=max(320, 40 * measured.height + 140))
    classes = measured["call_class"].to_list()
    for name, colour, mid, lo, hi in (
        ("system call", SYSCALL_COLOUR, "syscall_ns", "syscall_lo_ns", "syscall_hi_ns"),
        ("shared page", PAGE_COLOUR, "page_ns", "page_lo_ns", "page_hi_ns"),
    ):
        x = measured[mid].to_list()
        plus = [(h - m) if h is not None and m is not None else None for h, m in zip(measured[hi], x)]
        minus = [(m - lw) if lw is not None and m is not None else None for lw, m in zip(measured[lo], x)]
        fig.add_trace(go.Scatter(
            name=name, x=x, y=classes, mode="markers", marker=dict(color=colour, size=11, symbol="diamond"),
            error_x=dict(type="data", array=plus, arrayminus=minus, visible=True, color=colour, thickness=1.5),
            hovertemplate="%{y}: %{x:.3g} ns per call<extra>" + name + "</extra>",
        ))
    fig.update_layout(
        xaxis=dict(type="log", title="ns per call (log scale)"),
        yaxis=dict(title=None, categoryorder="array", categoryarray=list(reversed(classes))),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def savings_waterfall(per_class: pl.DataFrame) -> go.Figure:
    """Saved time per class adding up to the total (negative bars: the page path is slower)."""
    measured = per_class.filter(pl.col("measured")).sort(["saved_ns", "call_class"], descending=[True, False])
    names = measured["call_class"].to_list() + ["total"]
    values = [v / 1e6 for v in measured["saved_ns"].to_list()]
    fig = _figure("Time saved over the trace, per call class (ms): calls × median of paired differences")
    fig.add_trace(go.Waterfall(
        name="saved", orientation="v", x=names, y=values + [sum(values)],
        measure=["relative"] * len(values) + ["total"],
        increasing=dict(marker=dict(color=SAVED_COLOUR)),
        decreasing=dict(marker=dict(color=LOSS_COLOUR)),
        totals=dict(marker=dict(color=TOTAL_COLOUR)),
        connector=dict(line=dict(color="#bbb", width=1)),
        hovertemplate="%{x}: %{y:.4g} ms<extra></extra>",
    ))
    lo, hi = measured["saved_lo_ns"].sum() / 1e6, measured["saved_hi_ns"].sum() / 1e6
    fig.add_annotation(x="total", y=sum(values), yshift=12, showarrow=False,
                       text=f"{sum(values):.3g} ms (CI {lo:.3g} – {hi:.3g})")
    fig.update_layout(yaxis=dict(title="ms saved"), xaxis=dict(title=None), showlegend=False)
    return fig


def timeline_chart(timeline: pl.DataFrame, classes: pl.DataFrame) -> go.Figure:
    """Eligible calls over time: one row of markers per class, marker area = calls in the bin."""
    bin_s = timeline["bin_s"][0] if timeline.height else 0.0
    fig = _figure(f"Eligible calls over time (binned every {_fmt_ns(bin_s * 1e9)})", height=max(260, 36 * timeline["call_class"].n_unique() + 140))
    page_of = dict(zip(classes["call_class"].to_list(), classes["page_class"].to_list()))
    peak = max(timeline["calls"].max() or 1, 1)
    for name in sorted(timeline["call_class"].unique().to_list()):
        part = timeline.filter(pl.col("call_class") == name)
        counts = part["calls"].to_list()
        fig.add_trace(go.Scatter(
            name=name, x=part["t_s"].to_list(), y=[name] * part.height, mode="markers",
            marker=dict(color=PAGE_COLOURS.get(page_of.get(name), NOT_ELIGIBLE_COLOUR),
                        size=[4 + 14 * (c / peak) ** 0.5 for c in counts], opacity=0.7, line=dict(width=0)),
            customdata=counts,
            hovertemplate="%{y}<br>t = %{x:.4g} s: %{customdata} calls<extra></extra>",
        ))
    fig.update_layout(xaxis=dict(title="seconds since the first record"), yaxis=dict(title=None), showlegend=False)
    return fig


def compare_chart(comparison: pl.DataFrame, classes: pl.DataFrame) -> go.Figure:
    """Several traces side by side: eligible calls per class, grouped by trace."""
    fig = _figure("Eligible calls per class, trace by trace")
    for name in sorted(classes["call_class"].unique().to_list()):
        part = classes.filter(pl.col("call_class") == name)
        fig.add_trace(go.Bar(name=name, x=part["trace"].to_list(), y=part["calls"].to_list(),
                             hovertemplate="%{x}: %{y} calls<extra>" + name + "</extra>"))
    fig.update_layout(barmode="stack", yaxis=dict(title="eligible calls"), xaxis=dict(title=None,
                      categoryorder="array", categoryarray=comparison["trace"].to_list()))
    return fig


SCHEME_COLOURS = {"page": "#0072B2", "field": "#E69F00", "word": "#009E73", "ring": "#CC79A7"}
OP_NAMES = {"word": "one word (getppid)", "snapshot": "two words, one update (ppid+uid)", "string": "string (hostname)"}


def locking_chart(locking: pl.DataFrame) -> go.Figure:
    """Reader cost per read against the writer's rate, one panel per read operation, one line per scheme.

    Solid: one reader thread; dashed: more. Error bars: the 95 % interval of the median.
    """
    from plotly.subplots import make_subplots

    ops = [op for op in OP_NAMES if op in set(locking["op"].to_list())]
    fig = make_subplots(rows=1, cols=max(len(ops), 1), shared_yaxes=True,
                        subplot_titles=[OP_NAMES[o] for o in ops])
    fig.update_layout(template=_TEMPLATE, height=460, margin=dict(t=100),
                      title=dict(text="Reader cost vs writer rate, per locking scheme", x=0, xanchor="left"))
    rates = sorted(set(locking["rate_target_per_s"].to_list()))
    labels = [f"{r:,}/s" if r else "no writer" for r in rates]
    shown = set()
    for col, op in enumerate(ops, start=1):
        for (scheme, readers), part in sorted(locking.filter(pl.col("op") == op).group_by(["scheme", "readers"]),
                                              key=lambda kv: (kv[0][0], kv[0][1])):
            part = part.sort("rate_target_per_s")
            x = [labels[rates.index(r)] for r in part["rate_target_per_s"].to_list()]
            y = part["reader_ns_median"].to_list()
            name = f"{scheme}, {readers} reader{'s' if readers > 1 else ''}"
            fig.add_trace(go.Scatter(
                name=name, legendgroup=name, showlegend=name not in shown, x=x, y=y, mode="lines+markers",
                line=dict(color=SCHEME_COLOURS.get(scheme, NOT_ELIGIBLE_COLOUR), dash="solid" if readers == 1 else "dash"),
                error_y=dict(type="data", visible=True,
                             array=[(h - m) if h is not None and m is not None else None for h, m in zip(part["reader_ns_ci_high"], y)],
                             arrayminus=[(m - lo) if lo is not None and m is not None else None for lo, m in zip(part["reader_ns_ci_low"], y)]),
                hovertemplate="%{x}: %{y:.3g} ns per read<extra>" + name + "</extra>",
            ), row=1, col=col)
            shown.add(name)
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels, row=1, col=col)
    fig.update_yaxes(type="log", title_text="ns per read (log)", row=1, col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    return fig
