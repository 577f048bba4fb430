"""collect with perf trace, for real (skipped with perf's own reason when the kernel denies it)."""
from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from syspage.collect import TracedCommandFailed, collect
from syspage.errors import CollectError
from test_collect_programs import programs, python_getpid_cmd  # noqa: F401

# perf trace's default line: "     1.772 ( 0.021 ms): gp/5044 getpid()      = 5044";
# a call interrupted by another event prints its start, "gp/5044 getpid()   ...", and later
# "gp/5044  ... [continued]: getpid())   = 5044" (perf's builtin-trace.c "continued").
PERF_GETPID = re.compile(r"^\s*\d+\.\d{3} \(\s*\d+\.\d{3} ms\): (?P<comm>[^/]+)/(?P<tid>\d+) getpid\(\)\s+= (?P<ret>\d+)$")
PERF_GETPID_START = re.compile(r"^\s*\d+\.\d{3} \( +\): (?P<comm>[^/]+)/(?P<tid>\d+) getpid\(\)\s+\.\.\.$")
PERF_GETPID_CONT = re.compile(r"^\s*\d+\.\d{3} \(\s*\d+\.\d{3} ms\): (?P<comm>[^/]+)/(?P<tid>\d+)  \.\.\. "
                              r"\[continued\]: getpid\(\)\)\s+= (?P<ret>\d+)$")


def _perf_denied() -> str | None:
    if shutil.which("perf") is None:
        return "perf is not installed (linux-perf)"
    from syspage.collect import BACKENDS
    try:
        BACKENDS["perf"].check(shutil.which("perf"))
    except CollectError as exc:
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(_perf_denied() is not None, reason=str(_perf_denied()))


def perf_getpids(path: Path) -> list[tuple[str, int, int | None]]:
    """(comm, tid, ret) of every getpid call; every line naming getpid must match strictly.

    An interrupted call counts once, at its start line (ret None). Under load perf loses events:
    a [continued] line whose start was lost is still one call made, so it counts then (at the
    continued line); a start whose [continued] line was lost counts at its start.
    """
    found = []
    open_calls: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if "getpid(" not in line:
            continue
        if (match := PERF_GETPID.match(line)):
            found.append((match["comm"], int(match["tid"]), int(match["ret"])))
            # a thread makes one call at a time: a complete call means any start still open on
            # this thread lost its [continued] line
            open_calls[int(match["tid"])] = 0
        elif (match := PERF_GETPID_START.match(line)):
            found.append((match["comm"], int(match["tid"]), None))
            open_calls[int(match["tid"])] += 1
        elif (match := PERF_GETPID_CONT.match(line)):
            tid = int(match["tid"])
            if open_calls[tid] > 0:
                open_calls[tid] -= 1
            else:                                   # its start line was lost
                found.append((match["comm"], tid, None))
        elif "execve(" not in line:
            raise AssertionError(f"perf getpid line in an unexpected shape: {line!r}")
    return found


def test_c_program_shows_exactly_n_getpid_calls(programs, tmp_path):
    info = collect("perf", tmp_path / "run", cmd=[str(programs["getpid_n"]), "250"])
    calls = perf_getpids(info.trace_path)
    assert len(calls) == 250
    assert {(comm, tid) for comm, tid, _ in calls} == {("getpid_n", calls[0][1])}
    assert all(tid == ret for _, tid, ret in calls if ret is not None)
    assert info.meta["exit"] == {"status": 0, "signal": None, "signal_name": None, "source": "trace"}
    assert info.meta["trace"]["format"] == "perf_trace" and info.trace_path.name == "trace.perf.txt"
    assert info.meta["tool"]["argv"][1:4] == ["trace", "-o", str(info.trace_path)]


def test_python_program_shows_exactly_n_getpid_calls(tmp_path):
    info = collect("perf", tmp_path / "run", cmd=python_getpid_cmd(123))
    assert len(perf_getpids(info.trace_path)) == 123


def test_shell_pipeline_processes_are_all_traced(programs, tmp_path):
    gp = programs["getpid_n"]
    info = collect("perf", tmp_path / "run", cmd=["/bin/sh", "-c", f"{gp} 30 | {gp} 70 | cat >/dev/null"])
    calls = perf_getpids(info.trace_path)
    # Per thread, whatever comm perf printed: perf trace names a thread from its own thread map,
    # which can learn of the exec late, so a child's first calls (or most of them: 65 of 70 in
    # one run) may print as "sh/TID" (seen in a CI run; the calls are all there).
    per_tid = Counter(tid for _, tid, _ in calls)
    children = {tid for comm, tid, _ in calls if comm == "getpid_n"}
    assert sorted(per_tid[tid] for tid in children) == [30, 70]


def test_threads_are_traced_with_their_tids(programs, tmp_path):
    info = collect("perf", tmp_path / "run", cmd=[str(programs["threads"]), "4", "50"])
    calls = perf_getpids(info.trace_path)
    assert sorted(Counter(tid for _, tid, _ in calls).values()) == [50, 50, 50, 50]
    (pid,) = {ret for _, _, ret in calls if ret is not None}
    assert pid not in {tid for _, tid, _ in calls}


def test_exit_status_is_read_from_the_trace(tmp_path):
    # perf trace itself exits 0; the status comes from the root's exit_group(error_code: 3).
    info = collect("perf", tmp_path / "run", cmd=["/bin/sh", "-c", "exit 3"])
    assert info.meta["tracer_exit"]["returncode"] == 0
    assert info.meta["exit"] == {"status": 3, "signal": None, "signal_name": None, "source": "trace"}


def test_summary_is_appended(programs, tmp_path):
    info = collect("perf", tmp_path / "run", cmd=[str(programs["getpid_n"]), "40"], summary=True)
    row = re.search(r"^\s+getpid\s+(\d+)\s", info.trace_path.read_text(), re.M)
    assert row and int(row.group(1)) == 40


def test_overhead_is_recorded(programs, tmp_path):
    info = collect("perf", tmp_path / "run", cmd=[str(programs["getpid_n"]), "20000"], overhead_reps=3)
    assert len(perf_getpids(info.trace_path)) == 20000
    over = info.meta["overhead"]
    assert len(over["traced_s"]) == 3 and over["slowdown_median"] > 1
    assert over["slowdown_min"] <= over["slowdown_median"] <= over["slowdown_max"]


def test_command_that_crashes_is_an_error_without_exit_group(tmp_path):
    # perf trace cannot tell how a killed command ended: no exit_group, status not known.
    with pytest.raises(CollectError, match="no exit of the command in the trace") as caught:
        collect("perf", tmp_path / "run", cmd=["/bin/sh", "-c", "kill -SEGV $$"])
    assert not isinstance(caught.value, TracedCommandFailed)
    assert (tmp_path / "run" / "trace.perf.txt").stat().st_size > 0
