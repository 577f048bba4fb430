"""One trace's analysis: every table the report, the text summary and the exports read.

``analyze_trace`` runs the frames.py pipelines once and keeps the results together, so the
HTML report, the terminal summary and the exported files all show the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import polars as pl

from syspage.analyze import frames


@dataclass
class ReplayInfo:
    """What the report says about the replay: where and how the costs were measured."""

    costs: pl.DataFrame                       # frames.COST_COLUMNS, one row per call class
    host: str | None = None
    host_os: str | None = None
    cpu: str | None = None
    kernel: str | None = None
    mitigations: str | None = None
    method: str | None = None
    confidence: float | None = None          # e.g. 0.95
    source_file: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    tracers: list[str] = field(default_factory=list)   # replay/1 ``tracers_running``: 'comm(pid)' seen during the replay
    impls: tuple[str, ...] = ()                         # implementations in the table (syscall, page, ...)
    trace_sha256: str | None = None                     # the trace the replay measured (as parse recorded it)
    reference: str | None = None                        # the machine reference, one line (docs/replay.md)

    @property
    def machine(self) -> str:
        """host, CPU model, kernel (and OS) on one line."""
        return ", ".join(x for x in (self.host, self.cpu, f"kernel {self.kernel}" if self.kernel else None,
                                     self.host_os) if x) or "unknown machine"


@dataclass
class TraceAnalysis:
    label: str
    facts: dict[str, object]
    census: pl.DataFrame          # frames.census_by_syscall
    by_class: pl.DataFrame        # frames.census_by_class
    by_process: pl.DataFrame      # frames.census_by_process
    by_thread: pl.DataFrame       # frames.census_by_thread
    timeline: pl.DataFrame        # frames.eligible_timeline
    savings: pl.DataFrame | None  # frames.savings, when a replay was given
    totals: dict[str, object] | None
    metadata: dict[str, str] = field(default_factory=dict)   # syspage.* metadata of the events file
    rejected_lines: int | None = None                         # from the parse's rejects table
    tracer_summary: pl.DataFrame | None = None                # summary/1 rows, when the trace had one
    summary_check: pl.DataFrame | None = None                 # census vs the tracer's own summary
    warnings: list[str] = field(default_factory=list)         # replay_warnings(): shown first, everywhere

    @property
    def summary_only(self) -> bool:
        """The trace holds only the tracer's per-syscall summary (strace -c): no per-call events."""
        return self.facts["records"] == 0 and self.tracer_summary is not None and self.tracer_summary.height > 0


def analyze_trace(
    events: pl.DataFrame | pl.LazyFrame,
    label: str,
    replay: ReplayInfo | None = None,
    metadata: dict[str, str] | None = None,
    rejected_lines: int | None = None,
    tracer_summary: pl.DataFrame | None = None,
    timeline_points: int = 1500,
    progress: Callable[[int, int], None] | None = None,
) -> TraceAnalysis:
    """Census (and savings when ``replay`` is given) of one events/1 table.

    ``progress(done, total)`` is called after each of the steps (reading and classifying the
    calls, the censuses, the whole-trace facts, the timeline, the savings).
    """
    steps = 5

    def step(done: int) -> None:
        if progress is not None:
            progress(done, steps)

    lf = events.lazy() if isinstance(events, pl.DataFrame) else events
    # One pass over the call rows feeds every census: materialise them once.
    calls = frames.call_rows(lf).collect()
    step(1)
    census = frames.census_by_syscall(calls)
    by_class = frames.census_by_class(calls)
    by_thread = frames.census_by_thread(calls)
    by_process = frames.census_by_process(calls)
    step(2)
    facts = frames.trace_facts(lf, calls)
    step(3)
    timeline = frames.eligible_timeline(calls, max_points=timeline_points, start_ns=facts["start_ns"])
    step(4)
    per_class = totals = None
    if replay is not None:
        per_class = frames.savings(by_class, replay.costs)
        untraced = (metadata or {}).get("untraced_median_s")
        totals = frames.savings_totals(per_class, facts, untraced_ns=float(untraced) * 1e9 if untraced else None)
    check = None
    # A summary-only trace (strace -c) has no calls to check against its summary: the summary
    # is the census then, never compared with an empty one.
    if tracer_summary is not None and tracer_summary.height and facts["records"]:
        check = frames.summary_check(census, tracer_summary)
    step(5)
    result = TraceAnalysis(
        label=label, facts=facts, census=census, by_class=by_class, by_process=by_process,
        by_thread=by_thread, timeline=timeline, savings=per_class, totals=totals,
        metadata=dict(metadata or {}), rejected_lines=rejected_lines, tracer_summary=tracer_summary,
        summary_check=check,
    )
    result.warnings = replay_warnings(result, replay)
    return result


def replay_warnings(t: TraceAnalysis, replay: ReplayInfo | None) -> list[str]:
    """What makes the savings untrustworthy, one sentence each: the text summary prints them as
    WARNING lines, the report in its header and caveats.

    * a tracer attached system-wide during the replay slows every system call (docs/replay.md,
      "A shared machine moves syscall costs": about 2-3x here), so the syscall side, and with it
      the saving, is inflated;
    * a replay of another trace (its ``trace_sha256`` differs from the events file's) applies
      that trace's per-call costs to this trace's counts;
    * a replay without the syscall implementation (``replay --impl page``) measured no saving.
    """
    if replay is None:
        return []
    found = []
    if replay.tracers:
        who = ", ".join(replay.tracers)
        found.append(f"syscall costs measured while {who} {'was' if len(replay.tracers) == 1 else 'were'} tracing "
                     "system calls system-wide: they are inflated, and so is the saving (re-run the replay with no "
                     "tracer running)")
    ours = t.metadata.get("trace_sha256")
    if replay.trace_sha256 and ours and replay.trace_sha256 != ours:
        found.append(f"replay measured on another trace (sha {replay.trace_sha256[:12]}…, this trace is "
                     f"sha {ours[:12]}…): its per-call costs are applied to this trace's call counts")
    if replay.impls and "syscall" not in replay.impls:
        found.append(f"the replay measured no system call (implementations: {', '.join(replay.impls)}): "
                     "the saving is not measured")
    return found
