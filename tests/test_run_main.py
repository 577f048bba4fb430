"""The main job end to end: `syspage run` on a bundled trace, on a live command, and --demo.

Real stages, real files: the report must hold the analyze stage's sections, and the
figures in the text summary must agree with what the trace holds (counted here
independently with a regular expression over the strace text).
"""
from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys

import pytest

from syspage import schema
from syspage.analyze.summary import fmt_ns

from conftest import REPO

LOGGING = REPO / "data" / "linux" / "python-logging" / "trace.strace.txt.gz"
# The report's section ids (analyze/report.py) that a trace with a replay always has.
SECTIONS = ("sp-header", "sp-headline", "sp-census", "sp-cost", "sp-waterfall", "sp-timeline",
            "sp-processes", "sp-caveats")


def _strace_why_not() -> str | None:
    if not shutil.which("strace"):
        return "strace is not installed"
    probe = subprocess.run(["strace", "-o", "/dev/null", "true"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"strace cannot trace here: {probe.stderr.strip()[:200]}"


def _getpid_calls(trace_text: str) -> int:
    """getpid calls that returned, counted straight from strace -f -ttt lines."""
    return len(re.findall(r"^\d+ +\d+\.\d+ (?:getpid\(\)|<\.\.\. getpid resumed>)[^\n]*= \d+", trace_text, re.M))


def _check_outdir(out, expected_getpid: int):
    for name in ("events.parquet", "replay.parquet", "report.html", "summary.txt", "trace/meta.json"):
        assert (out / name).is_file(), f"{name} missing from {out}"
    assert schema.read_tag(out / "events.parquet") == "events/1"
    assert schema.read_tag(out / "replay.parquet") == "replay/1"
    html = (out / "report.html").read_text()
    for sid in SECTIONS:
        assert f'id="{sid}"' in html, f"report lacks section {sid}"
    events = schema.EVENTS.read(out / "events.parquet")
    getpid = events.filter((events["syscall"] == "getpid") & events["ret"].is_not_null())
    assert getpid.height == expected_getpid
    assert set(getpid["page_class"].unique()) == {"proc_ro"}
    replay = schema.REPLAY.read(out / "replay.parquet")
    row = replay.filter((replay["call_class"] == "getpid") & (replay["impl"] == "page"))
    assert row.height >= 1 and row["calls"][0] == expected_getpid
    # A page read must be cheaper than entering the kernel, or the whole premise is off.
    syscall = replay.filter((replay["call_class"] == "getpid") & (replay["impl"] == "syscall"))
    assert row["cost_ns_median"][0] < syscall["cost_ns_median"][0]
    summary = (out / "summary.txt").read_text()
    assert "getpid" in summary


@pytest.mark.slow
def test_run_on_the_bundled_logging_trace(run_cli, tmp_path):
    out = tmp_path / "out"
    done = run_cli("run", "-o", out, "--trace", LOGGING)
    assert done.returncode == 0, done.stderr
    expected = _getpid_calls(gzip.decompress(LOGGING.read_bytes()).decode())
    assert expected >= 6000          # 4 threads x 1500 records, one getpid each
    _check_outdir(out, expected)
    last = done.stdout.strip().splitlines()[-1]
    assert last == f"report: {(out / 'report.html').resolve()}"
    for stage in ("[1/4] collect", "[2/4] parse", "[3/4] replay", "[4/4] analyze"):
        assert stage in done.stdout
    assert json.loads((out / "trace" / "meta.json").read_text())["trace"]["file"] == "trace.strace.txt"


@pytest.mark.slow
def test_demo_bundled_is_the_logging_trace(run_cli, tmp_path):
    out = tmp_path / "demo"
    done = run_cli("run", "--demo", "--bundled", "-o", out)
    assert done.returncode == 0, done.stderr
    assert "from the bundled trace" in done.stdout
    expected = _getpid_calls(gzip.decompress(LOGGING.read_bytes()).decode())
    _check_outdir(out, expected)


@pytest.mark.slow
def test_run_traces_a_live_command(run_cli, tmp_path):
    why = _strace_why_not()
    if why:
        pytest.skip(why)
    out = tmp_path / "live"
    code = "import os\nfor _ in range(2000): os.getpid()"
    done = run_cli("run", "-o", out, "--overhead", "2", "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert "traced live" in done.stdout
    meta = json.loads((out / "trace" / "meta.json").read_text())
    assert meta["format"] == "collect-meta/1" and meta["target"]["argv"][0] == sys.executable
    # --overhead: collect timed the command untraced, and the saving is set against that time.
    assert meta["overhead"]["repetitions"] == 2
    untraced = meta["overhead"]["untraced_median_s"]
    # Said once (analyze's summary; run no longer adds its own line), with the runs' median.
    lines = [l for l in done.stdout.splitlines() if "untraced" in l]
    assert len(lines) == 1, lines
    assert f"of the untraced run time ({fmt_ns(untraced * 1e9)}, median of 2 runs without the tracer" in lines[0]
    assert "e-" not in lines[0]
    trace_text = (out / "trace" / meta["trace"]["file"]).read_text()
    expected = _getpid_calls(trace_text)
    assert 2000 <= expected <= 2100
    _check_outdir(out, expected)


@pytest.mark.slow
def test_run_analyses_the_trace_of_a_killed_command(run_cli, tmp_path):
    why = _strace_why_not()
    if why:
        pytest.skip(why)
    out = tmp_path / "killed"
    code = "import os, signal\nfor _ in range(500): os.getpid()\nos.kill(os.getpid(), signal.SIGKILL)"
    done = run_cli("run", "-o", out, "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert "traced command was killed by SIGKILL" in done.stderr
    assert "analysing the trace up to then" in done.stderr
    meta = json.loads((out / "trace" / "meta.json").read_text())
    assert meta["exit"]["signal_name"] == "SIGKILL"
    expected = _getpid_calls((out / "trace" / meta["trace"]["file"]).read_text())
    assert 500 <= expected <= 520
    _check_outdir(out, expected)


def test_saving_sums_the_replay_table(tmp_path):
    # saving_of on a real run's replay file equals the sum done here by hand.
    out = tmp_path / "o"
    from syspage import pipeline
    result = pipeline.run(out, trace=REPO / "data" / "linux" / "redis-benchmark" / "trace.strace.txt.gz")
    replay = schema.REPLAY.read(result.replay).to_dicts()
    page = [r for r in replay if r["impl"] == "page" and r["saved_ns_median"] is not None]
    assert {r["call_class"] for r in page} == {"getpid", "prctl(PR_SET_NAME)"}
    assert result.saving.saved_ns == pytest.approx(sum(r["calls"] * r["saved_ns_median"] for r in page))
    assert result.saving.saved_lo_ns <= result.saving.saved_ns <= result.saving.saved_hi_ns
    assert result.saving.eligible_calls == sum(r["calls"] for r in page) == 30
    assert result.saving.untraced_s is None      # a bundled trace: nothing was timed untraced
    assert (out / "summary.txt").read_text().startswith("redis-benchmark: strace trace from linux")


def test_overhead_needs_a_command(run_cli, tmp_path):
    done = run_cli("run", "-o", tmp_path, "--overhead", "2", "--trace", LOGGING)
    assert done.returncode == 2 and "--overhead re-runs the traced command" in done.stderr


def test_run_names_a_missing_trace(run_cli, tmp_path):
    done = run_cli("run", "-o", tmp_path / "o", "--trace", tmp_path / "missing.txt")
    assert done.returncode == 2
    assert done.stderr.strip() == f"syspage: error: {tmp_path / 'missing.txt'}: no such trace file"


@pytest.mark.slow
def test_demo_falls_back_to_the_bundled_trace_without_a_tracer(tmp_path):
    # A real environment with no tracer on PATH (not a mock): collect finds none, the demo
    # says why and carries on with the same workload's bundled trace.
    out = tmp_path / "fallback"
    done = subprocess.run([sys.executable, "-m", "syspage", "run", "--demo", "-o", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": str(tmp_path / "empty-bin"), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "using the bundled trace instead: the live trace could not be taken" in done.stderr
    assert "bundled trace used because: the live trace could not be taken (no tracer found on PATH" in done.stdout
    expected = _getpid_calls(gzip.decompress(LOGGING.read_bytes()).decode())
    _check_outdir(out, expected)
