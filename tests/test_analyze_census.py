"""Golden tests of the census on real traces, parsed by the real parser (syspage parse).

The strongest check: a real `strace -f -C` run, recorded here, carries both the trace and
strace's own per-syscall summary in one output; the census's calls and errors must equal
strace's, syscall by syscall.
"""
from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys

import polars as pl
import pytest

from conftest import DATA, REPO
from syspage.analyze import analyze_trace, frames, inputs

STRACE = shutil.which("strace")

# A workload with processes, threads, known eligible calls and known failures.
WORKLOAD = r"""
import os, threading
for _ in range(500):
    os.getpid()
for _ in range(7):
    try:
        open("/nonexistent/syspage-golden", "rb")
    except FileNotFoundError:
        pass
def worker():
    for _ in range(300):
        os.getppid()
threads = [threading.Thread(target=worker) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
pid = os.fork()
if pid == 0:
    for _ in range(40):
        os.getuid()
    os._exit(0)
os.waitpid(pid, 0)
"""


def _strace_works() -> str | None:
    if STRACE is None:
        return "strace is not installed"
    probe = subprocess.run([STRACE, "-o", "/dev/null", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.strip()[:200]}"
    return None


def _parse(run_cli, trace, out_dir):
    # --format: these tests are about the census; format sniffing is parse's own test subject.
    events = out_dir / "events.parquet"
    res = run_cli("parse", "--format", "strace", trace, "-o", events)
    assert res.returncode == 0, res.stderr
    return events


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory):
    why = _strace_works()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("strace-golden")
    trace = tmp / "trace.txt"
    # -C: the trace and the summary in one output; -f: follow threads and the fork.
    subprocess.run([STRACE, "-f", "-C", "-ttt", "-T", "-o", str(trace), sys.executable, "-c", WORKLOAD],
                   check=True, capture_output=True)
    return tmp, trace


def test_census_equals_strace_summary(golden_run, run_cli):
    tmp, trace = golden_run
    events_path = _parse(run_cli, trace, tmp)
    files = inputs.load_trace(events_path)
    assert files.summary is not None and files.summary.height > 10, "parse wrote no summary/1 table for strace -C"
    analysis = analyze_trace(files.events, "golden", tracer_summary=files.summary)
    check = analysis.summary_check
    disagree = check.filter(~pl.col("agrees"))
    assert disagree.height == 0, f"census differs from strace -C summary:\n{disagree}"
    # And the totals line strace prints.
    total = files.summary.filter((pl.col("syscall") == "total") & pl.col("pid").is_null())
    if total.height:
        assert analysis.facts["calls"] == total["calls"][0]
        assert analysis.facts["errors"] == total["errors"][0]
    # The workload's own calls are there, in the right class and page.
    by_class = {r["call_class"]: r for r in analysis.by_class.iter_rows(named=True)}
    assert by_class["getpid"]["calls"] >= 500 and by_class["getpid"]["page_class"] == "proc_ro"
    assert by_class["getppid"]["calls"] >= 900
    assert by_class["getuid"]["calls"] >= 40
    assert by_class["getpid"]["eligibility"] == frames.ELIGIBLE
    opens = analysis.census.filter(pl.col("syscall") == "openat")
    assert opens["errors"].sum() >= 7
    # 3 worker threads + the main thread + the forked child.
    assert analysis.facts["threads"] >= 5
    assert analysis.facts["processes"] >= 2


def _count_lines(path, pattern) -> int:
    rx = re.compile(pattern)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", errors="replace") as fh:
        return sum(1 for line in fh if rx.search(line))


def test_python_logging_getpid_per_record(tmp_path, run_cli):
    """data/linux/python-logging: 4 threads x 1500 log records, one getpid each (see its README)."""
    src = REPO / "data" / "linux" / "python-logging" / "trace.strace.txt.gz"
    trace = tmp_path / "trace.strace.txt"
    with gzip.open(src, "rb") as fin, trace.open("wb") as fout:
        shutil.copyfileobj(fin, fout)
    events = _parse(run_cli, trace, tmp_path)
    files = inputs.load_trace(events)
    analysis = analyze_trace(files.events, "python-logging")
    getpid = analysis.by_class.filter(pl.col("call_class") == "getpid").row(0, named=True)
    assert getpid["calls"] == 6000 == _count_lines(trace, r" getpid\(")
    assert getpid["errors"] == 0
    # Independent count of every failed call: lines ending in an errno return (-1 ENOENT ...) or ? ERESTART*.
    errors = _count_lines(trace, r"= (-1|\?) E[A-Z0-9]+ ")
    assert analysis.facts["errors"] == errors
    # 4 logging threads and the main thread.
    assert analysis.facts["threads"] == 5
    assert analysis.facts["wall_ns"] and analysis.facts["wall_ns"] > 0


def test_unfinished_calls_are_counted_apart(tmp_path, run_cli):
    """strace -f with <unfinished ...>/<... resumed>: calls that returned vs those cut off (= ?)."""
    trace = DATA / "strace_linux_wperron-go-f-unfinished.txt"
    events = _parse(run_cli, trace, tmp_path)
    analysis = analyze_trace(inputs.load_trace(events).events, "wperron")
    nanosleep = frames.census_totals_by_name(analysis.census).filter(pl.col("syscall") == "nanosleep").row(0, named=True)
    assert nanosleep["calls"] == _count_lines(trace, r"= 0$")        # every returned call printed "= 0"
    assert nanosleep["unreturned"] == _count_lines(trace, r"= \?$")  # cut off by the exit
    assert nanosleep["errors"] == 0


# --- the census against an independent count of the trace text ------------------------------
# A returned call is a line with ") = VALUE" whose VALUE is not a bare "?"; its name is the
# token before "(" or the NAME in "<... NAME resumed>"; it failed when VALUE is "-1 E..." or
# "? E...". This regex count shares no code with the parser or the census.
_RETURNED = re.compile(r"\)\s+= (.*)$")
_NAME = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(?:[\d:.]+\s+)?(?:<\.\.\. (\w+) resumed>|(\w+)\()")
_FAILED = re.compile(r"^(-1|\?) E[A-Z0-9]+")
BUNDLED = sorted(p.parent.name for p in (REPO / "data" / "linux").glob("*/trace.strace.txt.gz"))
SMALL = ["strace_linux_goenpt-f-ttt-xx-gobuild.txt", "strace_linux_demurgos-git2-segfault-sigsegv.txt",
         "strace_linux_morenbach-ttt-xx.txt", "strace_linux_wperron-go-f-unfinished.txt"]


def _text_count(path) -> dict[str, tuple[int, int]]:
    calls, errors = {}, {}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", errors="replace") as fh:
        for line in fh:
            m = _RETURNED.search(line.rstrip("\n"))
            if not m or m.group(1).strip() == "?":
                continue
            n = _NAME.match(line)
            name = (n.group(1) or n.group(2)).lstrip("_") if n else "?"
            calls[name] = calls.get(name, 0) + 1
            if _FAILED.match(m.group(1).strip()):
                errors[name] = errors.get(name, 0) + 1
    return {k: (v, errors.get(k, 0)) for k, v in calls.items()}


def _census_by_name(run_cli, trace, tmp_path) -> dict[str, tuple[int, int]]:
    events = _parse(run_cli, trace, tmp_path)
    census = frames.census_by_syscall(inputs.load_trace(events).events)
    totals = frames.census_totals_by_name(census)
    return {r["syscall"]: (r["calls"], r["errors"]) for r in totals.iter_rows(named=True) if r["calls"]}


@pytest.mark.parametrize("name", SMALL)
def test_census_equals_text_count_small(name, tmp_path, run_cli):
    trace = DATA / name
    assert _census_by_name(run_cli, trace, tmp_path) == _text_count(trace)


@pytest.mark.slow
@pytest.mark.parametrize("workload", BUNDLED)
def test_census_equals_text_count_bundled(workload, tmp_path, run_cli):
    """The bundled real Linux traces (data/linux/*): every syscall's calls and errors."""
    trace = tmp_path / "trace.strace.txt"
    with gzip.open(REPO / "data" / "linux" / workload / "trace.strace.txt.gz", "rb") as fin, trace.open("wb") as fout:
        shutil.copyfileobj(fin, fout)
    got = _census_by_name(run_cli, trace, tmp_path)
    assert sum(c for c, _ in got.values()) > 10_000
    assert got == _text_count(trace)
