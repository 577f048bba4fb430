"""The main job: collect -> parse -> replay -> analyze in one call, each stage through its
public API, each stage's output a file in one output directory.

    OUTDIR/trace/            collect's RUNDIR: the raw trace and meta.json (or a copy of --trace)
    OUTDIR/events.parquet    parse: events/1 (events.rejects.parquet, events.summary.parquet beside it)
    OUTDIR/replay.parquet    replay: replay/1, cost per call class, syscall vs shared page (replay.json beside it)
    OUTDIR/report.html       analyze: the interactive report
    OUTDIR/summary.txt       analyze: the text summary the CLI prints

This module never prints: it tells a ``Listener`` when a stage starts (and gets a
``progress(done, total)`` callback back) and when it ends, and raises the typed errors of
syspage.errors. The CLI (syspage/commands/run.py) turns those into lines on the terminal.
"""
from __future__ import annotations

import gzip
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import syspage
from syspage.errors import CollectError, InputError, SyspageError

ProgressCallback = Callable[[int, int], None]

STAGES = ("collect", "parse", "replay", "analyze")

# The demo's live workload: CPython's logging, 4 threads, each record asks for the pid
# (data/regenerate/python_logging_load.py says why). Sized to trace in a few seconds here.
DEMO_WORKLOAD = "python-logging"
DEMO_RECORDS_PER_THREAD = 1500
DEMO_THREADS = 4
# Untraced/traced pairs the demo times (collect --overhead), so its saving can be set against the
# untraced runtime: strace slows this workload ~10x, which would shrink the share tenfold.
DEMO_OVERHEAD_REPS = 3


class Listener(Protocol):
    """What the pipeline tells its caller; every method is optional to act on."""

    def stage_started(self, stage: str, detail: str) -> ProgressCallback | None: ...

    def stage_done(self, stage: str, seconds: float, detail: str) -> None: ...

    def note(self, text: str) -> None: ...


class QuietListener:
    """A Listener that ignores everything (library use, tests)."""

    def stage_started(self, stage: str, detail: str) -> ProgressCallback | None:
        return None

    def stage_done(self, stage: str, seconds: float, detail: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class Saving:
    """The replay's saving summed over classes, and what it is against the untraced runtime.

    ``saved_ns`` sums calls x median saving per call over the classes the replay measured
    (replay/1 ``page`` rows); the interval sums the per-class interval ends, which is wider
    than a joint interval (conservative). ``untraced_s`` is collect's median untraced wall
    time of the same command (``overhead.untraced_median_s``), when it was measured.
    """

    saved_ns: float | None        # None: the replay measured no class (not a saving of 0)
    saved_lo_ns: float | None
    saved_hi_ns: float | None
    eligible_calls: int
    untraced_s: float | None = None
    untraced_min_s: float | None = None
    untraced_max_s: float | None = None
    overhead_reps: int | None = None
    tracer_slowdown: float | None = None

    @property
    def share_of_untraced(self) -> float | None:
        return self.saved_ns / (self.untraced_s * 1e9) if self.untraced_s and self.saved_ns is not None else None


@dataclass
class RunResult:
    """Where everything went, how long each stage took, and the text summary."""

    outdir: Path
    source: str                          # "live" (collected now), "trace" (--trace) or "bundled"
    trace: Path
    meta: Path | None
    events: Path
    replay: Path
    report: Path
    summary_text: str
    seconds: dict[str, float] = field(default_factory=dict)
    fallback_reason: str | None = None   # why the demo used a bundled trace instead of a live one
    saving: Saving | None = None

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


# --- where the bundled data is -------------------------------------------------------------

def data_dir() -> Path:
    """The repository's data/ folder (syspage runs from its checkout: tools/bootstrap installs it editable)."""
    path = Path(syspage.__file__).resolve().parent.parent / "data"
    if not (path / "linux").is_dir():
        raise InputError(path, "bundled data not found (run syspage from its repository checkout)")
    return path


def bundled_trace(workload: str = DEMO_WORKLOAD) -> Path:
    """The bundled Linux trace of one workload (data/linux/WORKLOAD/trace.strace.txt.gz)."""
    path = data_dir() / "linux" / workload / "trace.strace.txt.gz"
    if not path.is_file():
        known = sorted(p.name for p in (data_dir() / "linux").iterdir() if p.is_dir())
        raise InputError(path, f"no bundled trace for workload {workload!r} (bundled: {', '.join(known)})")
    return path


def demo_command(outdir: Path) -> list[str]:
    """The live demo workload: this CPython running the logging load script from data/regenerate/."""
    script = data_dir() / "regenerate" / "python_logging_load.py"
    return [sys.executable, str(script), str(outdir / "demo-service.log"),
            str(DEMO_RECORDS_PER_THREAD), str(DEMO_THREADS)]


# --- the stages, each through its public API --------------------------------------------------

def _collect(cmd: Sequence[str], rundir: Path, progress: ProgressCallback | None,
             overhead_reps: int = 0) -> tuple[Path, Path]:
    """Trace CMD into RUNDIR with syspage.collect (its default tracer here); return (trace, meta.json).

    With overhead_reps > 0 collect also times CMD untraced and traced, interleaved
    (docs/collect.md "overhead"): the untraced time is what a saving should be compared with.
    """
    from syspage import collect

    _clear_previous_run(rundir)
    info = collect.collect(None, rundir, cmd=list(cmd), progress=progress, overhead_reps=overhead_reps)
    return Path(info.trace_path), Path(info.meta_path)


def _collect_keeping_partial(listener: Listener, cmd: Sequence[str], rundir: Path,
                             progress: ProgressCallback | None, overhead_reps: int) -> tuple[Path, Path]:
    """_collect, but a command killed by a signal still leaves a trace worth analysing: say so, go on."""
    from syspage.collect import TracedCommandFailed

    try:
        return _collect(cmd, rundir, progress, overhead_reps)
    except TracedCommandFailed as exc:
        listener.note(f"{exc}; analysing the trace up to then")
        return Path(exc.run.trace_path), Path(exc.run.meta_path)


def _clear_previous_run(rundir: Path) -> None:
    """OUTDIR/trace is the pipeline's own: a re-run replaces it, but never a folder we did not write."""
    if not rundir.exists():
        return
    if not (rundir / "meta.json").is_file() and any(rundir.iterdir()):
        raise InputError(rundir, "exists and is not a previous run's trace folder (no meta.json); choose another -o")
    shutil.rmtree(rundir)


def _parse(trace: Path, outdir: Path, progress: ProgressCallback | None) -> tuple[Path, str]:
    """Parse the trace into OUTDIR/events.parquet with syspage.parse; return (path, detail)."""
    from syspage import parse

    events_path = outdir / "events.parquet"
    result = parse.parse_to_files(trace, outdir, progress=progress)
    detail = f"{result.events:,} events, {result.rejects:,} lines rejected"
    return events_path, detail


def _replay(events: Path, outdir: Path, listener: Listener,
            progress: ProgressCallback | None) -> tuple[Path, str]:
    """Replay the eligible calls (syscall vs page) into OUTDIR/replay.parquet with syspage.replay.

    Says what was measured; page values that differed from the system call's are never
    hidden (docs/schema.md replay/1 ``mismatches``): they go to the listener as a note.
    """
    import polars as pl

    from syspage import replay

    replay_path = outdir / "replay.parquet"
    result = replay.replay_file(events, replay_path, impls=("syscall", "page"), progress=progress)
    measured = result.table.filter((pl.col("impl") == "page") & (pl.col("samples") > 0))
    mismatches = int(result.table["mismatches"].sum() or 0)
    unstable = int(measured["unstable"].sum() or 0)
    if mismatches:
        listener.note(f"{replay_path}: {mismatches:,} replayed reads returned another value from the page "
                      "than from the system call (see the report's caveats)")
    tracers = result.summary.get("tracers_running") or []
    if tracers:
        # A system-wide tracer slows every system call while it runs (docs/replay.md, Limits).
        listener.note(f"{replay_path}: syscall costs measured while {', '.join(tracers)} "
                      f"{'was' if len(tracers) == 1 else 'were'} tracing system calls system-wide: they are inflated")
    detail = (f"{measured.height} call classes measured, {int(measured['calls'].sum() or 0):,} calls; "
              f"{unstable} unstable (MAD > 10% of median), {mismatches} value mismatches")
    return replay_path, detail


def _analyze(events: Path, replay_file: Path | None, outdir: Path, label: str,
             progress: ProgressCallback | None) -> tuple[Path, str]:
    """Write OUTDIR/report.html with syspage.analyze; return (report path, text summary)."""
    from syspage.analyze import analyze_files

    report = outdir / "report.html"
    summary = analyze_files(events, replay_file, report, progress=progress, label=label)
    return report, summary


# --- the trace a run starts from ----------------------------------------------------------------

def stage_trace(trace: Path, rundir: Path) -> tuple[Path, Path | None]:
    """Copy a given trace (and its meta.json, if beside it) into RUNDIR, decompressing .gz.

    The copy keeps OUTDIR self-contained and lets parse read plain text; meta.json's
    ``trace`` entry is updated to name the decompressed file.
    """
    trace = Path(trace)
    if trace.is_dir():
        meta_path = trace / "meta.json"
        if not meta_path.is_file():
            raise InputError(trace, "a directory given as --trace must hold collect's meta.json")
        trace = trace / json.loads(meta_path.read_text())["trace"]["file"]
    if not trace.is_file():
        raise InputError(trace, "no such trace file")
    if rundir.exists() and trace.resolve().is_relative_to(rundir.resolve()):
        raise InputError(trace, f"is inside {rundir}, which this run rewrites; copy it elsewhere first")
    _clear_previous_run(rundir)
    rundir.mkdir(parents=True)
    name = trace.name[:-3] if trace.name.endswith(".gz") else trace.name
    dest = rundir / name
    if trace.name.endswith(".gz"):
        try:
            with gzip.open(trace, "rb") as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        except (OSError, EOFError) as exc:
            raise InputError(trace, f"cannot decompress: {exc}") from None
    else:
        shutil.copyfile(trace, dest)
    meta_src = trace.parent / "meta.json"
    if not meta_src.is_file():
        return dest, None
    try:
        meta = json.loads(meta_src.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(meta_src, f"not valid JSON: line {exc.lineno}: {exc.msg}") from None
    if isinstance(meta.get("trace"), dict):
        meta["trace"] = {**meta["trace"], "file": dest.name}
        meta["trace"].pop("compression", None)
    meta_dest = rundir / "meta.json"
    meta_dest.write_text(json.dumps(meta, indent=2) + "\n")
    return dest, meta_dest


# --- the whole job -----------------------------------------------------------------------------------

def run(
    outdir: str | Path,
    cmd: Sequence[str] | None = None,
    trace: str | Path | None = None,
    listener: Listener | None = None,
    overhead_reps: int = 0,
) -> RunResult:
    """Collect CMD (or start from TRACE), parse, replay and analyze; everything lands in OUTDIR.

    overhead_reps > 0 also times CMD that many times untraced and traced (collect --overhead),
    so the saving can be set against the untraced runtime.
    """
    if bool(cmd) == (trace is not None):
        raise SyspageError("give either a command to trace or --trace FILE, not both or neither")
    listener = listener or QuietListener()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    rundir = outdir / "trace"
    if cmd:
        shown = shlex.join(cmd).replace("\n", "\\n")
        trace_path, meta_path = _timed(listener, seconds, "collect", shown if len(shown) < 200 else shown[:197] + "...",
                                       lambda p: _collect_keeping_partial(listener, cmd, rundir, p, overhead_reps),
                                       lambda r: f"{r[0]}")
        source = "live"
    else:
        trace_path, meta_path = _timed(listener, seconds, "collect", f"using {trace}",
                                       lambda p: stage_trace(Path(trace), rundir), lambda r: f"copied to {r[0]}")
        source = "trace"
    return _rest(outdir, source, trace_path, meta_path, seconds, listener)


def demo(outdir: str | Path, listener: Listener | None = None, live: bool = True) -> RunResult:
    """The README's first command: trace the logging workload live when a tracer can run here,
    else start from its bundled trace; then parse, replay and report."""
    listener = listener or QuietListener()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    rundir = outdir / "trace"
    fallback = None if live else "asked for the bundled trace (--bundled)"
    if live:
        cmd = demo_command(outdir)
        try:
            trace_path, meta_path = _timed(listener, seconds, "collect",
                                           f"CPython logging workload, live: {' '.join(cmd[1:3])} ...",
                                           lambda p: _collect(cmd, rundir, p, DEMO_OVERHEAD_REPS),
                                           lambda r: f"{r[0]}")
        except CollectError as exc:
            # No tracer on PATH, ptrace denied, or the workload itself failed: the bundled
            # trace of the same workload still tells the story.
            fallback = f"the live trace could not be taken ({exc})"
            listener.note(f"using the bundled trace instead: {fallback}")
        else:
            return _rest(outdir, "live", trace_path, meta_path, seconds, listener,
                         label=f"{DEMO_WORKLOAD} (live)")
    bundled = bundled_trace(DEMO_WORKLOAD)
    trace_path, meta_path = _timed(listener, seconds, "collect", f"bundled trace {bundled}",
                                   lambda p: stage_trace(bundled, rundir), lambda r: f"copied to {r[0]}")
    result = _rest(outdir, "bundled", trace_path, meta_path, seconds, listener)
    result.fallback_reason = fallback
    return result


def _rest(outdir: Path, source: str, trace_path: Path, meta_path: Path | None,
          seconds: dict[str, float], listener: Listener, label: str | None = None) -> RunResult:
    events, _ = _timed(listener, seconds, "parse", str(trace_path),
                       lambda p: _parse(trace_path, outdir, p), lambda r: r[1])
    replay_path, _ = _timed(listener, seconds, "replay", "syscall vs shared page",
                            lambda p: _replay(events, outdir, listener, p), lambda r: r[1])
    label = label or _label(trace_path, meta_path)
    report, summary = _timed(listener, seconds, "analyze", "census, savings, report",
                             lambda p: _analyze(events, replay_path, outdir, label, p), lambda r: str(r[0]))
    (outdir / "summary.txt").write_text(summary + "\n")
    return RunResult(outdir=outdir, source=source, trace=trace_path, meta=meta_path, events=events,
                     replay=replay_path, report=report, summary_text=summary, seconds=seconds,
                     saving=saving_of(replay_path, meta_path))


def saving_of(replay_path: Path, meta_path: Path | None) -> Saving:
    """Sum the replay/1 table's page savings; attach collect's untraced timing if meta.json has it."""
    import polars as pl

    from syspage.schema import REPLAY

    rows = REPLAY.read(replay_path).filter((pl.col("impl") == "page") & pl.col("saved_ns_median").is_not_null())
    totals = rows.select(
        (pl.col("calls") * pl.col("saved_ns_median")).sum().alias("mid"),
        (pl.col("calls") * pl.col("saved_ns_ci_low")).sum().alias("lo"),
        (pl.col("calls") * pl.col("saved_ns_ci_high")).sum().alias("hi"),
        pl.col("calls").sum().alias("calls"),
    ).row(0, named=True)
    # No page row with a paired saving (a replay without the syscall side, or of nothing): not measured.
    saving = Saving(saved_ns=totals["mid"] if rows.height else None, saved_lo_ns=totals["lo"] if rows.height else None,
                    saved_hi_ns=totals["hi"] if rows.height else None, eligible_calls=int(totals["calls"] or 0))
    overhead = (json.loads(meta_path.read_text()).get("overhead") or {}) if meta_path else {}
    if overhead.get("untraced_median_s"):
        saving.untraced_s = overhead["untraced_median_s"]
        saving.untraced_min_s = min(overhead["untraced_s"])
        saving.untraced_max_s = max(overhead["untraced_s"])
        saving.overhead_reps = overhead.get("repetitions")
        saving.tracer_slowdown = overhead.get("slowdown_median")
    return saving


def _label(trace_path: Path, meta_path: Path | None) -> str:
    """Name the trace in the report: the bundled workload's name, else the traced command."""
    if meta_path is not None:
        meta = json.loads(meta_path.read_text())
        workload = (meta.get("data") or {}).get("workload")
        argv = (meta.get("target") or {}).get("argv")
        if workload:
            return workload
        if argv:
            words = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)).split()
            return " ".join(words)[:80]
    return trace_path.name


def _timed(listener: Listener, seconds: dict[str, float], stage: str, detail: str,
           work: Callable[[ProgressCallback | None], object], describe: Callable[[object], str]):
    """Run one stage between the listener's started/done calls and record its wall time."""
    progress = listener.stage_started(stage, detail)
    start = time.perf_counter()
    result = work(progress)
    seconds[stage] = time.perf_counter() - start
    listener.stage_done(stage, seconds[stage], describe(result))
    return result
