"""What analyze says about the replay it was given: tracers that inflated it, another trace's
replay, no syscall side, the paired saving, the machine and method, summary-only traces.

Real inputs: bundled traces (data/linux/...) parsed by the real parser, replayed by the real
engine (few samples: the size of the numbers is not under test, what is said about them is).
Where a replay property cannot be produced on demand here (the other engineer's null savings),
the real replay table is rewritten and the rewrite is named in the test.
"""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import time

import polars as pl
import pytest

from conftest import REPO
from syspage import schema
from syspage.analyze import analyze_trace, inputs, report, text_summary
from syspage.analyze.summary import PAIRED_NOTE, SUMMARY_ONLY_NOTE, fmt_ns, fmt_share

TRACER_WORDS = "tracing system calls system-wide: they are inflated"


def _parse(tmp, workload: str):
    trace = tmp / f"{workload}.strace.txt"
    with gzip.open(REPO / "data" / "linux" / workload / "trace.strace.txt.gz", "rb") as fin, trace.open("wb") as fout:
        shutil.copyfileobj(fin, fout)
    events = tmp / f"{workload}.parquet"
    res = subprocess.run([sys.executable, "-m", "syspage", "parse", "--format", "strace", str(trace), "-o", str(events)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return events


def _replay(events, out, *extra):
    res = subprocess.run([sys.executable, "-m", "syspage", "replay", str(events), "-o", str(out),
                          "--workers", "1", "--samples", "3", *extra], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def logging(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("warn")
    events = _parse(tmp, "python-logging")
    return events, _replay(events, tmp / "replay.parquet")


def _analysis(events, replay_path):
    replay = inputs.load_replay(replay_path) if replay_path else None
    files = inputs.load_trace(events)
    a = analyze_trace(files.events, events.stem, replay=replay, metadata=files.metadata,
                      rejected_lines=files.rejected_lines, tracer_summary=files.summary)
    return a, replay


def _with_metadata(src, dest, **changes):
    """The real replay table, rewritten with some metadata values changed."""
    meta = {k: v for k, v in schema.read_metadata(src).items() if k != "schema"}
    meta.update(changes)
    schema.REPLAY.write(schema.REPLAY.read(src), dest, extra_metadata=meta)
    return dest


# --- 1. a system-wide tracer during the replay ------------------------------------------------

def test_tracer_warning_follows_the_replay_metadata(logging, tmp_path):
    # Other jobs on this shared machine may run a tracer during the fixture's replay: the warning
    # must then be there, and only then.
    events, replay_path = logging
    a, replay = _analysis(events, replay_path)
    seen = schema.read_metadata(replay_path).get("tracers_running", "")
    assert replay.tracers == [t for t in seen.split(",") if t]
    assert bool(replay.tracers) == any(TRACER_WORDS in w for w in a.warnings)
    clean = _with_metadata(replay_path, tmp_path / "clean.parquet", tracers_running="")
    a, replay = _analysis(events, clean)
    assert replay.tracers == [] and not any(TRACER_WORDS in w for w in a.warnings)
    assert "WARNING: syscall costs" not in text_summary(a, replay)
    html = report.render([a], replay)
    assert "tracers during the replay" in html and "none seen" in html


def test_tracer_in_real_metadata_rewritten_is_shown_everywhere(logging, tmp_path, run_cli):
    # The real replay.parquet, its metadata rewritten to list a tracer as replay/runner.py writes it.
    events, replay_path = logging
    traced = _with_metadata(replay_path, tmp_path / "replay.parquet", tracers_running="bpftrace(3101)")
    a, replay = _analysis(events, traced)
    assert replay.tracers == ["bpftrace(3101)"]
    text = text_summary(a, replay)
    line = f"WARNING: syscall costs measured while bpftrace(3101) was {TRACER_WORDS}"
    assert line in text.splitlines()[1], text      # right after the first line, not buried
    html = report.render([a], replay)
    header = html[html.index('<header id="sp-header">'):html.index("</header>")]
    caveats = html[html.index('id="sp-caveats"'):]
    assert "bpftrace(3101) was tracing system calls system-wide" in header
    assert "Syscall costs measured while bpftrace(3101) was tracing system calls system-wide: they are inflated" in caveats
    # The list forms (a JSON or Python list) mean the same.
    assert inputs.tracer_list("['bpftrace(3101)']") == inputs.tracer_list('["bpftrace(3101)"]') == ["bpftrace(3101)"]
    # And the CLI prints it.
    res = run_cli("analyze", events, traced, "-o", tmp_path / "r.html")
    assert res.returncode == 0, res.stderr
    assert line in res.stdout


def _start_bpftrace():
    """A real system-wide bpftrace on raw_syscalls; (process, None) once attached, else (None, why)."""
    if not shutil.which("bpftrace"):
        return None, "bpftrace is not installed"
    proc = subprocess.Popen(["bpftrace", "-e", "tracepoint:raw_syscalls:sys_enter{@[comm]=count();}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()      # "Attaching 1 probe..." once the probe is in
    if "Attaching" not in line:
        proc.kill()
        err = proc.communicate(timeout=10)[1]
        return None, f"bpftrace cannot attach here: {(line + err).strip()[:300]}"
    time.sleep(0.5)
    return proc, None


def test_tracer_seen_by_a_real_replay_is_warned(logging, tmp_path):
    events, _ = logging
    proc, why = _start_bpftrace()
    if proc is None:
        pytest.skip(why)
    try:
        out = _replay(events, tmp_path / "replay.parquet")
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    a, replay = _analysis(events, out)
    assert any(t.startswith("bpftrace(") for t in replay.tracers), schema.read_metadata(out).get("tracers_running")
    assert any(TRACER_WORDS in w and "bpftrace(" in w for w in a.warnings)
    assert "WARNING: syscall costs measured while bpftrace(" in text_summary(a, replay)


# --- 2. the per-call saving is the paired median --------------------------------------------------

def test_per_call_saving_is_labelled_paired(logging):
    events, replay_path = logging
    a, replay = _analysis(events, replay_path)
    raw = schema.REPLAY.read(replay_path)
    page = raw.filter((pl.col("call_class") == "getpid") & (pl.col("impl") == "page")).row(0, named=True)
    sysc = raw.filter((pl.col("call_class") == "getpid") & (pl.col("impl") == "syscall")).row(0, named=True)
    row = a.savings.filter(pl.col("call_class") == "getpid").row(0, named=True)
    assert row["saved_per_call_ns"] == page["saved_ns_median"] and row["saved_estimator"] == "paired"
    text = text_summary(a, replay)
    assert PAIRED_NOTE in text
    getpid = next(line for line in text.splitlines() if line.strip().startswith("getpid"))
    assert f"syscall {fmt_ns(sysc['cost_ns_median'])}, page {fmt_ns(page['cost_ns_median'])}" in getpid
    assert f"saved {fmt_ns(page['saved_ns_median'])}/call" in getpid
    html = report.render([a], replay)
    cost = html[html.index('id="sp-cost"'):html.index('id="sp-waterfall"')]
    assert "saved ns/call (median of paired differences)" in cost
    assert "not syscall median − page median" in cost
    assert "median of the paired differences" in html[html.index('id="sp-caveats"'):]


# --- 3. a replay of another trace ------------------------------------------------------------------

def test_replay_of_another_trace_is_warned(logging, tmp_path, run_cli):
    events, replay_path = logging
    redis = _parse(tmp_path, "redis-benchmark")
    replay_sha = schema.read_metadata(replay_path)["trace_sha256"]
    redis_sha = schema.read_metadata(redis)["trace_sha256"]
    assert replay_sha != redis_sha
    a, replay = _analysis(redis, replay_path)
    want = f"replay measured on another trace (sha {replay_sha[:12]}"
    assert any(w.startswith(want) and redis_sha[:12] in w for w in a.warnings), a.warnings
    res = run_cli("analyze", redis, replay_path, "-o", tmp_path / "r.html")
    assert res.returncode == 0, res.stderr
    assert f"WARNING: {want}" in res.stdout
    caveats = (tmp_path / "r.html").read_text()
    assert f"Replay measured on another trace (sha {replay_sha[:12]}" in caveats[caveats.index('id="sp-caveats"'):]
    # Its own trace: no such warning.
    own, _ = _analysis(events, replay_path)
    assert not any("another trace" in w for w in own.warnings)


# --- 4. the text summary ------------------------------------------------------------------------------

def test_summary_names_machine_and_method(logging):
    events, replay_path = logging
    a, replay = _analysis(events, replay_path)
    meta = schema.read_metadata(replay_path)
    lines = text_summary(a, replay).splitlines()
    machine = next(line for line in lines if line.startswith("  replay machine:"))
    for key in ("host", "cpu", "kernel"):
        assert meta[key] in machine
    method = [line for line in lines if line.startswith("  replay method:")]
    assert len(method) == 1 and meta["method"] in method[0]
    assert method[0].count(f"locking {meta['locking']}") == 1


def test_summary_lists_every_eligible_class(tmp_path):
    events = _parse(tmp_path, "make-gcc")      # 6 eligible classes: more than the old cut at 5
    a, _ = _analysis(events, None)
    classes = a.by_class.filter(pl.col("eligibility") == "eligible")["call_class"].to_list()
    assert len(classes) > 5
    text = text_summary(a)
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("    ")]
    assert listed == classes


def test_shares_are_plain_percentages():
    assert fmt_share(5.9e-07) == "0.0000590 %"
    assert fmt_share(0.1234) == "12.3 %"
    assert fmt_share(0.000486) == "0.0486 %"
    assert fmt_share(0.0) == "0 %" and fmt_share(None) == "n/a"
    for x in (1e-12, 3.3e-9, 4.2e-5, 0.5, 1.0, 2.5):
        assert "e" not in fmt_share(x)


# --- 5. a summary-only trace ---------------------------------------------------------------------------

def test_summary_only_trace(tmp_path, run_cli):
    trace = REPO / "tests" / "data" / "strace_linux_renlord-zoom-c-summary.txt"
    events = tmp_path / "events.parquet"
    res = run_cli("parse", trace, "-o", events)
    assert res.returncode == 0, res.stderr
    a, _ = _analysis(events, None)
    assert a.summary_only and a.summary_check is None
    text = text_summary(a)
    assert SUMMARY_ONLY_NOTE in text
    assert "None" not in text and "differs from the tracer's own summary" not in text
    assert text.startswith("events: strace trace from linux")
    # The tracer's own rows are the census: gettid is its top syscall (7,144,759 calls in the file).
    assert "gettid" in text.splitlines()[3] and "7,144,759 calls" in text.splitlines()[3]
    assert "+101 more syscalls" in text
    html = report.render([a])
    census = html[html.index('id="sp-census"'):html.index('id="sp-timeline"')]
    assert "the tracer&#x27;s own per-syscall summary is shown" in census and "7,144,759" in census
    assert "differ from the tracer" not in census


# --- 6. a replay without the syscall side -----------------------------------------------------------------

def _assert_not_measured(a, replay):
    assert a.totals["saved_ns"] is None and a.totals["share_of_wall"] is None
    text = text_summary(a, replay)
    assert "saved: not measured" in text
    assert "saved 0 ns" not in text and "0 ns – 0 ns" not in text
    html = report.render([a], replay)
    assert "not measured" in html[html.index('id="sp-headline"'):html.index('id="sp-census"')]


def test_page_only_replay_is_not_measured(logging, tmp_path):
    events, _ = logging
    out = _replay(events, tmp_path / "page.parquet", "--impl", "page")
    a, replay = _analysis(events, out)
    assert replay.impls == ("page",)
    _assert_not_measured(a, replay)
    assert any("measured no system call" in w for w in a.warnings)


def test_null_syscall_costs_are_not_measured(logging, tmp_path):
    # The real replay table with the syscall side's costs and the paired savings set to null,
    # as a replay that could not time the system call writes them.
    events, replay_path = logging
    raw = schema.REPLAY.read(replay_path)
    cost = ["cost_ns_median", "cost_ns_ci_low", "cost_ns_ci_high", "cost_ns_mad", "total_ns"]
    saved = ["saved_ns_median", "saved_ns_ci_low", "saved_ns_ci_high"]
    nulled = raw.with_columns(
        [pl.when(pl.col("impl") == "syscall").then(None).otherwise(pl.col(c)).alias(c) for c in cost]
        + [pl.lit(None, dtype=pl.Float64).alias(c) for c in saved]
    )
    out = tmp_path / "nulls.parquet"
    schema.REPLAY.write(nulled, out, extra_metadata={k: v for k, v in schema.read_metadata(replay_path).items()
                                                      if k != "schema"})
    a, replay = _analysis(events, out)
    _assert_not_measured(a, replay)
