"""Census, savings and comparison tables from the versioned files: pure Polars, no I/O.

Everything here takes events/1 rows (syspage.schema.EVENTS) and, for savings, the replay
costs, and returns DataFrames. The figures (figures.py) and the report (report.py) only
read these tables, so every number a user sees comes from one place.

Definitions (docs/report.md explains them):

* a **call** is an events row with ``kind == "call"`` that the trace saw return: a return
  value or an error (``= 0``, ``= -1 ENOENT``, ``= ? ERESTARTSYS``, ``= ? <unavailable>``).
  This is what ``strace -c`` counts: strace counts a call in ``count_syscall()`` at syscall
  exit (strace src/syscall.c, syscall_exiting_trace), so a call whose exit it never saw
  (``exit_group(0) = ?``, an ``<unfinished ...>`` never resumed) is not counted. We keep
  those as ``unreturned`` instead of dropping them. A format that never prints returns
  (ret_raw always null, not incomplete) counts every call record.
* an **error** is a call with an errno (strace's ``syserror()``: any error return,
  including the ERESTART* family).
* **eligible**: the catalog (syspage/catalog.toml) gives the call a page it could be served
  by, to read or write (page_access ``read``/``write``). ``follow`` calls (fork, setuid,
  sethostname, ...) are state changes the page must track: they are counted apart and never
  counted as savings.
"""
from __future__ import annotations

import polars as pl

from syspage import schema
from syspage.catalog import load as load_catalog

ELIGIBLE = "eligible"
FOLLOW = "follow"
NOT_ELIGIBLE = "not eligible"

_IS_CALL = pl.col("kind") == "call"
_HAS_ERROR = pl.col("errno").is_not_null() | pl.col("errno_name").is_not_null()
# "= ?" alone: the process left during the call (exit_group, execve in a dying thread).
_BARE_QUESTION = pl.col("ret_raw").fill_null("").str.strip_chars() == "?"
_NEVER_RESUMED = pl.col("incomplete").fill_null(False) & pl.col("ret_raw").is_null() & ~_HAS_ERROR
RETURNED = ~(_BARE_QUESTION | _NEVER_RESUMED)


def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def call_rows(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """The call records with the columns every census needs.

    Adds ``call_class`` (catalog label, null when no page serves the call), ``eligibility``,
    ``returned`` and ``failed``.
    """
    lf = _lazy(events)
    if "eligibility" in lf.collect_schema().names():
        return lf  # already prepared by an earlier call_rows()
    calls = lf.filter(_IS_CALL).with_row_index("_row")
    # parse fills page_class/page_access from the catalog; the class label comes from the same
    # catalog. The catalog's expression is a long when/then chain, so it runs only on the rows
    # that can match (a name in the catalog, or a sysctl with its MIB name) and is joined back:
    # 3x faster on a 1M-event trace where most calls are not candidates.
    catalog = load_catalog()
    names = sorted({c.syscall for c in catalog.classes if c.syscall} | set(catalog.aliases))
    candidates = catalog.with_call_class(
        calls.filter(pl.col("syscall").is_in(names) | pl.col("sysctl_name").is_not_null())
    ).select("_row", "call_class")
    calls = calls.join(candidates, on="_row", how="left", maintain_order="left").drop("_row").with_columns(
        # A row parse classified that the catalog cannot label keeps its syscall name.
        pl.coalesce(
            "call_class", pl.when(pl.col("page_class").is_not_null()).then(pl.col("syscall"))
        ).alias("call_class")
    )
    access = pl.col("page_access")
    eligibility = (
        pl.when(pl.col("call_class").is_not_null() & access.is_in(["read", "write"])).then(pl.lit(ELIGIBLE))
        .when(pl.col("call_class").is_not_null() & (access == "follow")).then(pl.lit(FOLLOW))
        .otherwise(pl.lit(NOT_ELIGIBLE))
    )
    return calls.with_columns(
        eligibility.alias("eligibility"),
        RETURNED.alias("returned"),
        (RETURNED & _HAS_ERROR).alias("failed"),
    )


def _counts() -> list[pl.Expr]:
    """Aggregations shared by every census grouping."""
    returned = pl.col("returned")
    return [
        returned.sum().cast(pl.Int64).alias("calls"),
        pl.col("failed").sum().cast(pl.Int64).alias("errors"),
        (~returned).sum().cast(pl.Int64).alias("unreturned"),
        pl.col("duration_ns").filter(returned).sum().alias("traced_ns"),
        pl.col("duration_ns").filter(returned).count().alias("timed_calls"),
    ]


def census_by_syscall(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per syscall name and call class: calls, errors, unreturned, traced time.

    A syscall name can appear on several rows when only some of its calls are page-eligible
    (``prctl(PR_SET_NAME)`` vs other prctl options, ``sysctl kern.hostname`` vs other MIBs).
    Sorted by calls, descending, then name, so the order is stable.
    """
    return (
        call_rows(events)
        .group_by("syscall", "call_class", "eligibility", "page_class", "page_access")
        .agg(_counts())
        .with_columns(
            pl.when(pl.col("timed_calls") > 0).then(pl.col("traced_ns") / pl.col("timed_calls")).alias("mean_traced_ns"),
        )
        .sort(["calls", "syscall", "call_class"], descending=[True, False, False], nulls_last=True)
        .collect()
    )


def census_totals_by_name(census: pl.DataFrame) -> pl.DataFrame:
    """census_by_syscall summed over call classes: one row per syscall name (as strace -c shows)."""
    return (
        census.group_by("syscall")
        .agg(pl.col("calls").sum(), pl.col("errors").sum(), pl.col("unreturned").sum(), pl.col("traced_ns").sum())
        .sort(["calls", "syscall"], descending=[True, False])
    )


def census_by_class(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per page-eligible (or follow) call class: the catalog's page and the counts."""
    return (
        call_rows(events)
        .filter(pl.col("call_class").is_not_null())
        .group_by("call_class", "eligibility", "page_class", "page_access")
        .agg(_counts() + [pl.col("syscall").unique().sort().str.join(", ").alias("syscalls")])
        .with_columns(pl.when(pl.col("timed_calls") > 0).then(pl.col("traced_ns") / pl.col("timed_calls")).alias("mean_traced_ns"))
        .sort(["calls", "call_class"], descending=[True, False])
        .collect()
    )


def census_by_thread(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One row per (pid, tid): calls, errors, eligible calls, traced time, first and last record."""
    eligible = (pl.col("eligibility") == ELIGIBLE) & pl.col("returned")
    return (
        call_rows(events)
        .group_by("pid", "tid")
        .agg(
            _counts()
            + [
                eligible.sum().cast(pl.Int64).alias("eligible_calls"),
                pl.col("duration_ns").filter(eligible).sum().alias("eligible_traced_ns"),
                pl.col("comm").drop_nulls().first().alias("comm"),
                pl.col("ts_ns").min().alias("first_ts_ns"),
                pl.col("ts_ns").max().alias("last_ts_ns"),
            ]
        )
        .sort(["calls", "pid", "tid"], descending=[True, False, False], nulls_last=True)
        .collect()
    )


def census_by_process(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """census_by_thread summed per process (pid = thread group when the trace knows it)."""
    threads = census_by_thread(events)
    return (
        threads.group_by("pid")
        .agg(
            pl.col("tid").n_unique().alias("threads"),
            pl.col("comm").drop_nulls().first().alias("comm"),
            *(pl.col(c).sum() for c in ("calls", "errors", "unreturned", "eligible_calls", "traced_ns", "eligible_traced_ns")),
            pl.col("first_ts_ns").min(),
            pl.col("last_ts_ns").max(),
        )
        .with_columns((pl.col("eligible_calls") / pl.col("calls")).alias("eligible_share"))
        .sort(["calls", "pid"], descending=[True, False], nulls_last=True)
    )


def trace_facts(events: pl.DataFrame | pl.LazyFrame, calls: pl.DataFrame | pl.LazyFrame | None = None) -> dict[str, object]:
    """Whole-trace numbers: records, calls, errors, wall span, traced syscall time, eligible calls.

    ``wall_ns`` is from the first record's start to the last record's end (ts_ns +
    duration_ns); None when the trace has no timestamps. ``syscall_ns`` sums the traced
    durations of returned calls; None when the trace has none. ``calls`` is call_rows(events)
    when the caller already has it.
    """
    lf = _lazy(events)
    span = lf.filter(pl.col("ts_ns").is_not_null()).select(
        pl.col("ts_ns").min().alias("start"),
        (pl.col("ts_ns") + pl.col("duration_ns").fill_null(0)).max().alias("end"),
        pl.col("ts_clock").drop_nulls().first().alias("clock"),
    )
    calls = call_rows(calls if calls is not None else lf).select(
        pl.col("returned").sum().alias("calls"),
        pl.col("failed").sum().alias("errors"),
        (~pl.col("returned")).sum().alias("unreturned"),
        ((pl.col("eligibility") == ELIGIBLE) & pl.col("returned")).sum().alias("eligible_calls"),
        ((pl.col("eligibility") == FOLLOW) & pl.col("returned")).sum().alias("follow_calls"),
        pl.col("duration_ns").filter(pl.col("returned")).sum().alias("syscall_ns"),
        pl.col("duration_ns").filter(pl.col("returned")).count().alias("timed_calls"),
        pl.struct("pid", "tid").n_unique().alias("threads"),
        pl.col("pid").n_unique().alias("processes"),
    )
    meta = lf.select(
        pl.len().alias("records"),
        pl.col("source_format").drop_nulls().first().alias("source_format"),
        pl.col("os").drop_nulls().first().alias("os"),
        pl.col("source_file").drop_nulls().first().alias("source_file"),
    )
    span_row, calls_row, meta_row = (f.row(0, named=True) for f in pl.collect_all([span, calls, meta]))
    facts: dict[str, object] = {**meta_row, **{k: int(v or 0) for k, v in calls_row.items()}}
    start, end = span_row["start"], span_row["end"]
    facts["wall_ns"] = int(end - start) if start is not None and end is not None and end > start else None
    facts["start_ns"] = start
    facts["ts_clock"] = span_row["clock"]
    if facts["timed_calls"] == 0:
        facts["syscall_ns"] = None
    return facts


def summary_check(census: pl.DataFrame, tracer_summary: pl.DataFrame) -> pl.DataFrame:
    """The census next to the tracer's own per-syscall summary (strace -c/-C), name by name.

    Only global summary rows are compared (pid null; perf trace's per-thread rows are not).
    ``agrees`` is true when calls and errors are equal. Tracer times are not compared:
    strace -c reports system CPU time by default, not the -T wall time in the events.
    """
    ours = census_totals_by_name(census).select("syscall", pl.col("calls").alias("census_calls"),
                                                pl.col("errors").alias("census_errors"))
    theirs = (
        tracer_summary.filter(pl.col("pid").is_null() & (pl.col("syscall") != "total"))
        .group_by("syscall")
        .agg(pl.col("calls").sum().alias("tracer_calls"), pl.col("errors").fill_null(0).sum().alias("tracer_errors"))
    )
    return (
        ours.join(theirs, on="syscall", how="full", coalesce=True)
        .with_columns(pl.col(c).fill_null(0) for c in ("census_calls", "census_errors", "tracer_calls", "tracer_errors"))
        .with_columns(
            ((pl.col("census_calls") == pl.col("tracer_calls")) & (pl.col("census_errors") == pl.col("tracer_errors"))).alias("agrees")
        )
        .sort(["tracer_calls", "syscall"], descending=[True, False])
    )


# --- savings --------------------------------------------------------------------------------
# The replay costs come in as one row per call class with the syscall-path and page-path
# cost per call and each one's confidence interval (see costs_from_replay in savings.py).
COST_COLUMNS = {
    "call_class": pl.String,
    "host_op": pl.String,
    "syscall_ns": pl.Float64,
    "syscall_lo_ns": pl.Float64,
    "syscall_hi_ns": pl.Float64,
    "page_ns": pl.Float64,
    "page_lo_ns": pl.Float64,
    "page_hi_ns": pl.Float64,
    "saved_per_call_ns": pl.Float64,      # point estimate of syscall - page
    "saved_per_call_lo_ns": pl.Float64,   # lower confidence bound of the difference
    "saved_per_call_hi_ns": pl.Float64,
    "saved_estimator": pl.String,         # "paired" (median of paired differences) or "difference of medians"
    "mismatches": pl.Int64,               # replayed page reads that differed from the syscall's value
    "unstable": pl.Boolean,               # the replay's spread was high (MAD / median > 10 %)
    "skip_reason": pl.String,             # why the class was not (fully) replayed
}


def savings(by_class: pl.DataFrame, costs: pl.DataFrame) -> pl.DataFrame:
    """Per eligible class: calls x (syscall cost - page cost), with the interval carried through.

    ``by_class`` is census_by_class(); ``costs`` has COST_COLUMNS. The confidence interval of
    the per-call saving is scaled by the (exact) call count, so ``saved_lo_ns``/``saved_hi_ns``
    have the same confidence level as the replay's interval. Eligible classes the replay did
    not measure stay in the table with null costs (``measured`` false), never dropped.
    """
    eligible = by_class.filter(pl.col("eligibility") == ELIGIBLE).select(
        "call_class", "page_class", "page_access", "syscalls", "calls", "traced_ns", "mean_traced_ns"
    )
    costs = costs.with_columns(
        pl.lit(None, dtype=t).alias(c) for c, t in COST_COLUMNS.items() if c not in costs.columns
    ).select(list(COST_COLUMNS)).cast(COST_COLUMNS)
    joined = eligible.join(costs, on="call_class", how="left")
    n = pl.col("calls").cast(pl.Float64)
    return joined.with_columns(
        pl.col("saved_per_call_ns").is_not_null().alias("measured"),
        (n * pl.col("saved_per_call_ns")).alias("saved_ns"),
        (n * pl.col("saved_per_call_lo_ns")).alias("saved_lo_ns"),
        (n * pl.col("saved_per_call_hi_ns")).alias("saved_hi_ns"),
    ).sort(["saved_ns", "call_class"], descending=[True, False], nulls_last=True)


def savings_totals(per_class: pl.DataFrame, facts: dict[str, object], untraced_ns: float | None = None) -> dict[str, object]:
    """Total saved time with its interval, and its share of wall time and traced syscall time.

    ``untraced_ns`` is the workload's run time without the tracer (collect --overhead), when
    known: the saving's share of it is the one that tracer overhead does not dilute.

    The total's interval adds the classes' lower bounds and their upper bounds: a
    conservative interval (it assumes the classes' errors all lean the same way, as they do
    when one host's noise moves every measurement together).
    """
    measured = per_class.filter(pl.col("measured"))
    # No class measured (a replay without the syscall side, or of none of these classes):
    # the saving is unknown, not zero.
    total = float(measured["saved_ns"].sum()) if measured.height else None
    lo = float(measured["saved_lo_ns"].sum()) if measured.height else None
    hi = float(measured["saved_hi_ns"].sum()) if measured.height else None
    wall = facts.get("wall_ns")
    sysns = facts.get("syscall_ns")
    calls = int(measured["calls"].sum()) if measured.height else 0
    return {
        "saved_ns": total,
        "saved_lo_ns": lo,
        "saved_hi_ns": hi,
        "measured_classes": measured.height,
        "unmeasured_classes": per_class.height - measured.height,
        "saved_calls": calls,
        "share_of_wall": _ratio(total, wall),
        "share_of_wall_lo": _ratio(lo, wall),
        "share_of_wall_hi": _ratio(hi, wall),
        "share_of_syscall_time": _ratio(total, sysns),
        "share_of_syscall_time_lo": _ratio(lo, sysns),
        "share_of_syscall_time_hi": _ratio(hi, sysns),
        "eligible_calls_per_s": calls / (wall / 1e9) if wall else None,
        "untraced_ns": untraced_ns,
        "share_of_untraced": _ratio(total, untraced_ns),
        "share_of_untraced_lo": _ratio(lo, untraced_ns),
        "share_of_untraced_hi": _ratio(hi, untraced_ns),
    }


def _ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


# --- timeline -------------------------------------------------------------------------------
def eligible_timeline(events: pl.DataFrame | pl.LazyFrame, max_points: int = 1500,
                      start_ns: int | None = None) -> pl.DataFrame:
    """Eligible calls over time, binned so the chart stays small on big traces.

    One row per (call class, time bin) with the number of calls in the bin; the bin width
    is chosen so there are at most ``max_points`` rows in total (at least one bin per
    class). ``t_s`` is the bin start in seconds since the trace's first record. Empty
    when the trace has no timestamps.
    """
    lf = call_rows(events)
    start = start_ns if start_ns is not None else _lazy(events).select(pl.col("ts_ns").min()).collect().item()
    eligible = lf.filter((pl.col("eligibility") == ELIGIBLE) & pl.col("ts_ns").is_not_null()).select(
        "call_class", (pl.col("ts_ns") - start).alias("t_ns")
    ).collect()
    if eligible.height == 0 or start is None:
        return pl.DataFrame(schema={"call_class": pl.String, "t_s": pl.Float64, "calls": pl.Int64, "bin_s": pl.Float64})
    span = max(int(eligible["t_ns"].max()), 1)
    classes = eligible["call_class"].n_unique()
    bins = max(1, max_points // classes)
    width = max(1, -(-span // bins))  # ceil, so the last record lands in the last bin
    return (
        eligible.group_by("call_class", (pl.col("t_ns") // width).alias("bin"))
        .agg(pl.len().cast(pl.Int64).alias("calls"))
        .with_columns((pl.col("bin") * width / 1e9).alias("t_s"), pl.lit(width / 1e9).alias("bin_s"))
        .sort("call_class", "bin")
        .select("call_class", "t_s", "calls", "bin_s")
    )


# --- compare --------------------------------------------------------------------------------
def compare(traces: list[tuple[str, dict[str, object], pl.DataFrame, dict[str, object] | None]]) -> pl.DataFrame:
    """Several traces side by side: one row per trace.

    Each item is (label, trace_facts, census_by_class, savings_totals or None).
    """
    rows = []
    for label, facts, by_class, totals in traces:
        eligible = by_class.filter(pl.col("eligibility") == ELIGIBLE)
        top = eligible.row(0, named=True)["call_class"] if eligible.height else None
        calls = facts["calls"] or 0
        rows.append({
            "trace": label,
            "source_format": facts.get("source_format"),
            "os": facts.get("os"),
            "calls": calls,
            "errors": facts["errors"],
            "eligible_calls": facts["eligible_calls"],
            "eligible_share": facts["eligible_calls"] / calls if calls else None,
            "follow_calls": facts["follow_calls"],
            "top_eligible_class": top,
            "wall_s": facts["wall_ns"] / 1e9 if facts.get("wall_ns") else None,
            "eligible_calls_per_s": facts["eligible_calls"] / (facts["wall_ns"] / 1e9) if facts.get("wall_ns") else None,
            "saved_ns": totals["saved_ns"] if totals else None,
            "saved_lo_ns": totals["saved_lo_ns"] if totals else None,
            "saved_hi_ns": totals["saved_hi_ns"] if totals else None,
            "share_of_wall": totals["share_of_wall"] if totals else None,
        })
    return pl.DataFrame(rows, schema_overrides={"wall_s": pl.Float64, "eligible_calls_per_s": pl.Float64,
                                                "eligible_share": pl.Float64, "saved_ns": pl.Float64,
                                                "saved_lo_ns": pl.Float64, "saved_hi_ns": pl.Float64,
                                                "share_of_wall": pl.Float64, "top_eligible_class": pl.String})


def compare_classes(traces: list[tuple[str, pl.DataFrame]]) -> pl.DataFrame:
    """Eligible calls per class and trace, long format (trace, call_class, calls)."""
    parts = [
        by_class.filter(pl.col("eligibility") == ELIGIBLE).select(pl.lit(label).alias("trace"), "call_class", "calls")
        for label, by_class in traces
    ]
    if not parts:
        return pl.DataFrame(schema={"trace": pl.String, "call_class": pl.String, "calls": pl.Int64})
    return pl.concat(parts).sort("trace", "call_class")


# --- locking schemes (locking/1, issue 8) ----------------------------------------------------
def locking_summary(locking: pl.DataFrame) -> pl.DataFrame:
    """Per scheme: correctness (torn, mixed snapshots) and reader cost without and under the writer.

    ``worst_reader_ns`` is the highest median reader cost over every writer rate, op and
    reader count; ``idle_reader_ns`` the lowest median with no writer (rate target 0).
    """
    return (
        locking.group_by("scheme")
        .agg(
            pl.col("torn").sum(),
            pl.col("mixed").filter(pl.col("op") == "snapshot").sum().alias("mixed_snapshots"),
            pl.col("reader_ns_median").filter(pl.col("rate_target_per_s") == 0).min().alias("idle_reader_ns"),
            pl.col("reader_ns_median").max().alias("worst_reader_ns"),
            pl.col("reader_ns_tail").max().alias("worst_tail_ns"),
            pl.col("max_retries").max(),
            pl.col("writer_ns_median").median().alias("writer_ns"),
            pl.col("unstable").any().alias("any_unstable"),
        )
        .sort("scheme")
    )


# Schemes that give a consistent multi-field snapshot by design (docs/schema.md, locking/1
# "mixed"): one counter per page, or a generation ring. Per-field counters and lock-free words
# cannot, however few mixed reads a short run happened to catch.
SNAPSHOT_SCHEMES = schema.LOCKING_SNAPSHOT_SCHEMES  # the contract in syspage/schema.py


def locking_recommendation(summary: pl.DataFrame) -> str | None:
    """The scheme the data supports: snapshot-safe by design, no torn read and no mixed snapshot
    measured, and the lowest worst-case median reader cost. None when no scheme qualifies.
    """
    ok = summary.filter(pl.col("scheme").is_in(SNAPSHOT_SCHEMES) & (pl.col("torn") == 0)
                        & (pl.col("mixed_snapshots") == 0) & pl.col("worst_reader_ns").is_not_null())
    if ok.height == 0:
        return None
    return ok.sort(["worst_reader_ns", "scheme"]).row(0, named=True)["scheme"]
