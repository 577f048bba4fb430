"""Exports and the CLI: Parquet/CSV tables, the Chrome trace for Perfetto, input handling."""
from __future__ import annotations

import json

import polars as pl
import pytest

from conftest import DATA
from syspage.analyze import analyze_trace, export, frames, inputs

TRACE = DATA / "strace_linux_wperron-go-f-unfinished.txt"
LOGGING = DATA.parent.parent / "data" / "linux" / "python-logging" / "trace.strace.txt.gz"


@pytest.fixture(scope="module")
def logging_events(tmp_path_factory):
    import gzip
    import shutil
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("logging-export")
    trace = tmp / "trace.strace.txt"
    with gzip.open(LOGGING, "rb") as fin, trace.open("wb") as fout:
        shutil.copyfileobj(fin, fout)
    events = tmp / "events.parquet"
    res = subprocess.run([sys.executable, "-m", "syspage", "parse", "--format", "strace", str(trace), "-o", str(events)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return events


def _check_chrome_trace(doc: dict, n_eligible: int) -> None:
    """The structure Perfetto's JSON importer and chrome://tracing accept (Trace Event Format)."""
    assert set(doc) >= {"traceEvents"}
    events = doc["traceEvents"]
    assert isinstance(events, list)
    calls = [e for e in events if e["ph"] in ("X", "i")]
    meta = [e for e in events if e["ph"] == "M"]
    assert len(calls) == n_eligible
    for e in calls:
        assert isinstance(e["name"], str) and e["name"]
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "X":
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0
        else:
            assert e["s"] in ("g", "p", "t")
        assert isinstance(e["args"], dict)
    named_threads = {(e["pid"], e["tid"]) for e in meta if e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in calls} <= named_threads
    assert all(isinstance(e["args"]["name"], str) for e in meta)
    ts = [e["ts"] for e in calls]
    assert min(ts) >= 0


def test_chrome_trace_and_tables(logging_events, tmp_path):
    files = inputs.load_trace(logging_events)
    a = analyze_trace(files.events, "python-logging")
    path = export.write_chrome_trace(files.events, tmp_path / "eligible.trace.json", "python-logging")
    doc = json.loads(path.read_text())
    _check_chrome_trace(doc, a.facts["eligible_calls"])
    assert sum(1 for e in doc["traceEvents"] if e.get("name") == "getpid") == 6000
    written = export.write_tables(a, tmp_path / "tables")
    names = sorted(p.name for p in written)
    assert "census.parquet" in names and "census.csv" in names and "census_processes.csv" in names
    back = pl.read_parquet(tmp_path / "tables" / "census.parquet")
    assert back.equals(a.census)
    csv = pl.read_csv(tmp_path / "tables" / "census.csv")
    assert csv["calls"].sum() == a.facts["calls"]


def test_cli_exports_and_summary(logging_events, tmp_path, run_cli):
    out = tmp_path / "report.html"
    res = run_cli("analyze", logging_events, "-o", out, "--export", tmp_path / "exp")
    assert res.returncode == 0, res.stderr
    assert "getpid" in res.stdout and "6,000 calls" in res.stdout
    assert "no replay given" in res.stdout
    assert (tmp_path / "exp" / "eligible.trace.json").is_file()
    assert out.is_file() and out.stat().st_size > 4_000_000


def test_cli_compare(logging_events, tmp_path, run_cli):
    out = tmp_path / "compare.html"
    res = run_cli("analyze", "--compare", logging_events, logging_events, "--label", "first", "--label", "second",
                  "-o", out)
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    assert 'id="sp-compare"' in html and 'id="sp-census-2"' in html
    assert ">first<" in html and ">second<" in html


def test_cli_refuses_what_it_cannot_read(logging_events, tmp_path, run_cli):
    res = run_cli("analyze", TRACE, "-o", tmp_path / "r.html")
    assert res.returncode == 2
    assert str(TRACE) in res.stderr and "not a Parquet file" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run_cli("analyze", logging_events, logging_events, "-o", tmp_path / "r.html")
    assert res.returncode == 2 and "--compare" in res.stderr
    other = tmp_path / "other.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(other, metadata={"syspage.schema": "widgets/3"})
    res = run_cli("analyze", logging_events, other, "-o", tmp_path / "r.html")
    assert res.returncode == 2 and "widgets/3" in res.stderr and str(other) in res.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = run_cli("analyze", logging_events, "-o", blocker / "r.html")
    assert res.returncode == 2 and f"{blocker / 'r.html'}: cannot write the report" in res.stderr


def test_trace_without_eligible_calls(tmp_path, run_cli):
    """A real trace with no page-eligible call still gets a census and an honest, empty timeline."""
    events = tmp_path / "events.parquet"
    res = run_cli("parse", "--format", "strace", TRACE, "-o", events)
    assert res.returncode == 0, res.stderr
    a = analyze_trace(inputs.load_trace(events).events, "wperron")
    assert a.facts["eligible_calls"] == 0
    assert a.timeline.height == 0
    assert frames.census_totals_by_name(a.census)["calls"].sum() == a.facts["calls"]


def test_header_names_where_the_trace_was_recorded(tmp_path, run_cli):
    """collect's meta.json beside the trace gives the header its host and tracer, only when its SHA-256 matches."""
    import gzip
    import shutil

    meta_src = LOGGING.parent / "meta.json"
    meta = json.loads(meta_src.read_text())
    trace = tmp_path / "trace.strace.txt"
    with gzip.open(LOGGING, "rb") as fin, trace.open("wb") as fout:
        shutil.copyfileobj(fin, fout)
    shutil.copy(meta_src, tmp_path / "meta.json")
    events = tmp_path / "events.parquet"
    assert run_cli("parse", "--format", "strace", trace, "-o", events).returncode == 0
    files = inputs.load_trace(events)
    assert files.metadata["host"].startswith(meta["machine"]["host"])
    assert files.metadata["tracer"] == f"{meta['tool']['name']} {meta['tool']['version']}"
    # With collect's untraced runs (--overhead), the saving is also set against the untraced run time.
    from syspage.analyze import ReplayInfo

    meta["overhead"] = {"untraced_s": [0.30, 0.25, 0.35], "untraced_median_s": 0.30, "slowdown_median": 7.0}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    files = inputs.load_trace(events)
    costs = pl.DataFrame({"call_class": ["getpid"], "host_op": ["getpid"], "syscall_ns": [100.0], "syscall_lo_ns": [90.0],
                          "syscall_hi_ns": [110.0], "page_ns": [2.0], "page_lo_ns": [1.0], "page_hi_ns": [3.0],
                          "saved_per_call_ns": [98.0], "saved_per_call_lo_ns": [88.0], "saved_per_call_hi_ns": [108.0]})
    a = analyze_trace(files.events, "logging", replay=ReplayInfo(costs=costs), metadata=files.metadata)
    assert a.totals["untraced_ns"] == pytest.approx(0.30e9)
    assert a.totals["share_of_untraced"] == pytest.approx(6000 * 98.0 / 0.30e9)
    assert files.metadata["untraced_runs"] == "3"
    # Another run's meta.json (different trace hash) is not used.
    meta["trace"]["sha256"] = "0" * 64
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert "host" not in inputs.load_trace(events).metadata
