"""The HTML report: deterministic, self-contained, and drawn by a real headless Chromium.

The trace is the bundled real python-logging trace (data/linux/python-logging), parsed by the
real parser. The savings path uses the real replay stage when it is built (replay/1 in
syspage.schema); the rendering of savings is also checked with a cost table given here
(the numbers are inputs of the test, the arithmetic on them is what is checked).
"""
from __future__ import annotations

import gzip
import re
import shutil

import polars as pl
import pytest

from conftest import REPO
from syspage.analyze import ReplayInfo, analyze_trace, browser, inputs, report

CHROMIUM = browser.find_chromium()


@pytest.fixture(scope="module")
def logging_events(tmp_path_factory):
    """data/linux/python-logging parsed with `syspage parse` into events.parquet."""
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("logging")
    trace = tmp / "trace.strace.txt"
    with gzip.open(REPO / "data" / "linux" / "python-logging" / "trace.strace.txt.gz", "rb") as fin, trace.open("wb") as fout:
        shutil.copyfileobj(fin, fout)
    events = tmp / "events.parquet"
    res = subprocess.run([sys.executable, "-m", "syspage", "parse", "--format", "strace", str(trace), "-o", str(events)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return events


@pytest.fixture(scope="module")
def real_replay(logging_events):
    """The real replay stage on the same events (few samples: the numbers' size is not under test)."""
    import subprocess
    import sys

    out = logging_events.parent / "replay.parquet"
    res = subprocess.run([sys.executable, "-m", "syspage", "replay", str(logging_events), "-o", str(out),
                          "--workers", "1", "--samples", "3", "--repeat-target", "0"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


def test_savings_from_the_real_replay(logging_events, real_replay, tmp_path, run_cli):
    replay = inputs.load_replay(real_replay)
    raw = pl.read_parquet(real_replay)
    page = raw.filter((pl.col("call_class") == "getpid") & (pl.col("impl") == "page")).row(0, named=True)
    a = analyze_trace(inputs.load_trace(logging_events).events, "python-logging", replay=replay)
    getpid = a.savings.filter(pl.col("call_class") == "getpid").row(0, named=True)
    assert getpid["measured"] and getpid["calls"] == 6000
    # The replay's paired per-call saving and its interval, times the exact call count.
    assert getpid["saved_ns"] == pytest.approx(6000 * page["saved_ns_median"])
    assert getpid["saved_lo_ns"] == pytest.approx(6000 * page["saved_ns_ci_low"])
    assert getpid["saved_hi_ns"] == pytest.approx(6000 * page["saved_ns_ci_high"])
    assert getpid["saved_ns"] > 0, "a shared-page getpid should be cheaper than the system call"
    assert replay.host_os == "linux" and replay.cpu
    assert replay.reference.startswith("raw getpid ") and "bare page read" in replay.reference
    # Follow classes (clone3, exit) are never savings.
    assert set(a.savings["call_class"]) <= set(a.by_class.filter(pl.col("eligibility") == "eligible")["call_class"])
    out = tmp_path / "report.html"
    res = run_cli("analyze", real_replay, logging_events, "-o", out)
    assert res.returncode == 0, res.stderr
    assert "saved " in res.stdout and "95% CI" in res.stdout
    html = out.read_text()
    assert 'id="fig-cost"' in html and 'id="fig-waterfall"' in html
    assert "<dt>machine reference</dt><dd>raw getpid " in html
    assert "recorded on linux but the replay ran on" not in html   # same OS: no cross-OS caveat


def _given_costs() -> ReplayInfo:
    """A cost table for three classes (inputs of the test, in the replay's units)."""
    costs = pl.DataFrame({
        "call_class": ["getpid", "getppid", "gettid-not-in-trace"],
        "host_op": ["getpid", "getppid", "gettid"],
        "syscall_ns": [100.0, 110.0, 90.0], "syscall_lo_ns": [95.0, 105.0, 85.0], "syscall_hi_ns": [105.0, 115.0, 95.0],
        "page_ns": [2.0, 2.5, 2.0], "page_lo_ns": [1.5, 2.0, 1.5], "page_hi_ns": [2.5, 3.0, 2.5],
        "saved_per_call_ns": [98.0, 107.5, 88.0], "saved_per_call_lo_ns": [93.0, 102.0, 83.0],
        "saved_per_call_hi_ns": [103.0, 113.0, 93.0],
    })
    return ReplayInfo(costs=costs, host="testhost", host_os="freebsd", cpu="test cpu", kernel="14.0",
                      method="given in the test", confidence=0.95)


def test_savings_arithmetic_carries_the_interval(logging_events):
    files = inputs.load_trace(logging_events)
    replay = _given_costs()
    a = analyze_trace(files.events, "python-logging", replay=replay)
    getpid = a.savings.filter(pl.col("call_class") == "getpid").row(0, named=True)
    assert getpid["calls"] == 6000
    assert getpid["saved_ns"] == pytest.approx(6000 * 98.0)
    assert getpid["saved_lo_ns"] == pytest.approx(6000 * 93.0)
    assert getpid["saved_hi_ns"] == pytest.approx(6000 * 103.0)
    measured = a.savings.filter(pl.col("measured"))
    assert a.totals["saved_ns"] == pytest.approx(float(measured["saved_ns"].sum()))
    assert a.totals["saved_lo_ns"] <= a.totals["saved_ns"] <= a.totals["saved_hi_ns"]
    assert a.totals["share_of_wall"] == pytest.approx(a.totals["saved_ns"] / a.facts["wall_ns"])
    assert a.totals["share_of_syscall_time"] == pytest.approx(a.totals["saved_ns"] / a.facts["syscall_ns"])
    # Eligible classes the replay did not measure stay, marked, with no saving.
    unmeasured = a.savings.filter(~pl.col("measured"))
    assert a.totals["unmeasured_classes"] == unmeasured.height
    assert unmeasured["saved_ns"].null_count() == unmeasured.height
    # A class the replay measured but the trace never made does not appear.
    assert "gettid-not-in-trace" not in a.savings["call_class"].to_list()


def test_report_is_deterministic_and_self_contained(logging_events, tmp_path, run_cli):
    replay = _given_costs()
    files = inputs.load_trace(logging_events)
    html_a = report.render([analyze_trace(files.events, "python-logging", replay=replay)], replay)
    html_b = report.render([analyze_trace(inputs.load_trace(logging_events).events, "python-logging", replay=replay)], replay)
    assert html_a == html_b
    # plotly.js once, no script or link from elsewhere.
    assert html_a.count("<script>") == 1 + html_a.count("Plotly.newPlot(")
    assert html_a.count("Plotly.newPlot(") == 4
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html_a)
    for sid in ("sp-header", "sp-headline", "sp-census", "sp-cost", "sp-waterfall", "sp-timeline", "sp-processes", "sp-caveats"):
        assert f'id="{sid}"' in html_a
    # Cross-OS caveat: trace from linux, replay host freebsd.
    assert "recorded on linux but the replay ran on freebsd" in html_a
    # The CLI twice on the same input: byte-identical files.
    out1, out2 = tmp_path / "a.html", tmp_path / "b.html"
    for out in (out1, out2):
        res = run_cli("analyze", logging_events, "-o", out)
        assert res.returncode == 0, res.stderr
    assert out1.read_bytes() == out2.read_bytes()
    assert out1.stat().st_size < 5_000_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
def test_report_renders_in_chromium_offline(logging_events, real_replay, tmp_path):
    replay = inputs.load_replay(real_replay)
    files = inputs.load_trace(logging_events)
    a = analyze_trace(files.events, "python-logging", replay=replay)
    b = analyze_trace(files.events.filter(pl.col("tid") != pl.col("pid")), "threads-only", replay=replay)
    # A short real locking-scheme sweep (replay, issue 8) for the locking section.
    from syspage.replay import locking as replay_locking

    lock = replay_locking.run_stress(rates=(0, 100_000), readers=(1,), duration_s=0.05, rounds=1)
    path = report.write(tmp_path / "report.html", [a, b], replay, locking=lock)
    check = browser.open_report(path, screenshot=tmp_path / "report.png")
    assert check.figure_ids == ["fig-compare", "fig-census", "fig-cost", "fig-waterfall", "fig-timeline",
                                "fig-census-2", "fig-locking"]
    assert check.all_drawn, f"not drawn: {set(check.figure_ids) - set(check.drawn_ids)}"
    assert check.console_errors == []
    assert check.network_requests == []
    assert {"sp-compare", "sp-locking", "sp-caveats"} <= set(check.section_ids)
    png = check.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
def test_network_requests_are_seen(tmp_path):
    """The no-network check can fail: a page that loads a remote script is caught."""
    page = tmp_path / "remote.html"
    page.write_text('<!DOCTYPE html><html><head><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>'
                    '</head><body><div class="plotly-graph-div" id="x"></div></body></html>')
    check = browser.open_report(page, timeout=60, figure_timeout=1)
    assert any("cdn.plot.ly" in url for url in check.network_requests)
    assert not check.all_drawn


def test_binaries_section_from_a_real_scan(logging_events, tmp_path, run_cli):
    """syspage scan of real binaries on this machine, passed to analyze beside the events."""
    binaries = [p for p in ("/usr/bin/python3.11", "/bin/ls", "/bin/busybox") if shutil.os.path.exists(p)]
    scan = tmp_path / "scan.parquet"
    res = run_cli("scan", *binaries, "--all", "-o", scan)
    assert res.returncode == 0, res.stderr
    table = pl.read_parquet(scan)
    out = tmp_path / "report.html"
    res = run_cli("analyze", scan, logging_events, "-o", out)   # any order: told apart by schema tag
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    assert 'id="sp-binaries"' in html
    assert f"{table.height} ELF files scanned; {int(table['uses_page_calls'].sum())} import" in html


def test_locking_section_from_a_real_sweep(logging_events, tmp_path, run_cli):
    """A short real writer-stress sweep written as locking/1, passed to the CLI beside the events."""
    from syspage.analyze import frames
    from syspage.replay import locking as replay_locking

    table = replay_locking.run_stress(rates=(0, 100_000), readers=(1,), duration_s=0.05, rounds=1)
    path = replay_locking.write_stress(table, tmp_path / "locking.parquet")
    out = tmp_path / "report.html"
    res = run_cli("analyze", logging_events, path, "-o", out)
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    assert 'id="sp-locking"' in html and 'id="fig-locking"' in html
    summary = frames.locking_summary(table)
    assert sorted(summary["scheme"]) == sorted(set(table["scheme"]))
    assert int(summary["torn"].sum()) == int(table["torn"].sum()) == 0
    best = frames.locking_recommendation(summary)
    assert best in frames.SNAPSHOT_SCHEMES
    assert f"The data supports the &#x27;{best}&#x27; scheme" in html
