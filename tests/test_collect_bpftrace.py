"""collect with bpftrace and our sp1 script, for real (skipped with the reason when denied).

bpftrace compiles the script before it attaches (seconds on this machine), so these are slow.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from syspage.collect import TracedCommandFailed, collect
from syspage.errors import CollectError
from test_collect_programs import programs, python_getpid_cmd  # noqa: F401

# docs/dtrace-line-format.md: sp1 ts pid tid execname syscall ret errno latency args(6 hex)
SP1 = re.compile(r"^sp1\t(?P<ts>\d+)\t(?P<pid>\d+)\t(?P<tid>\d+)\t(?P<comm>[^\t]*)\t(?P<syscall>\w+)\t"
                 r"(?P<ret>-?\d+)\t(?P<errno>\d+)\t(?P<lat>\d+)\t(?P<args>(?:0x[0-9a-f]+,){5}0x[0-9a-f]+)$")


def _bpftrace_denied() -> str | None:
    if shutil.which("bpftrace") is None:
        return "bpftrace is not installed"
    from syspage.collect import BACKENDS
    try:
        BACKENDS["bpftrace"].check(shutil.which("bpftrace"))
    except CollectError as exc:
        return str(exc)
    return None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_bpftrace_denied() is not None, reason=str(_bpftrace_denied()))]


def sp1_lines(path: Path) -> list[re.Match]:
    """Every line of the trace: headers first, then only strict sp1 lines.

    bpftrace ends its output with one empty line when it exits; nothing else is allowed.
    """
    lines = path.read_text().splitlines()
    while lines and lines[-1] == "":
        lines.pop()
    assert lines[0] == "sp1-clock\tboot" and re.fullmatch(r"sp1-start\t\d+", lines[1]), lines[:2]
    matches = []
    for line in lines[2:]:
        match = SP1.match(line)
        assert match, f"not an sp1 line: {line!r}"
        matches.append(match)
    return matches


def getpids(path: Path) -> list[re.Match]:
    return [m for m in sp1_lines(path) if m["syscall"] == "getpid"]


def test_c_program_shows_exactly_n_getpid_calls(programs, tmp_path):
    info = collect("bpftrace", tmp_path / "run", cmd=[str(programs["getpid_n"]), "250"])
    calls = getpids(info.trace_path)
    assert len(calls) == 250
    root = info.meta["target"]["pid"]
    assert {(m["comm"], int(m["pid"]), int(m["tid"]), int(m["ret"]), m["errno"]) for m in calls} == \
        {("getpid_n", root, root, root, "0")}
    # The command's exec is traced (the held shell exec()s it), and the clock only goes forward.
    lines = sp1_lines(info.trace_path)
    assert any(m["syscall"] == "execve" and m["comm"] == "getpid_n" for m in lines)
    stamps = [int(m["ts"]) for m in lines if m["tid"] == str(root)]
    assert stamps == sorted(stamps)
    assert info.meta["exit"] == {"status": 0, "signal": None, "signal_name": None, "source": "waitpid"}
    assert info.meta["tool"]["script"] == "scripts/syscalls.bt"
    assert info.meta["trace"]["lost_events"] is None


def test_failed_calls_carry_their_errno(tmp_path):
    info = collect("bpftrace", tmp_path / "run", cmd=[sys.executable, "-c",
                                                      "import os\nfor _ in range(3):\n"
                                                      "    try: os.close(987)\n    except OSError: pass"])
    closes = [m for m in sp1_lines(info.trace_path) if m["syscall"] == "close" and m["args"].startswith("0x3db,")]
    assert len(closes) == 3
    assert {(m["ret"], m["errno"]) for m in closes} == {("-9", "9")}   # EBADF


def test_python_program_shows_exactly_n_getpid_calls(tmp_path):
    info = collect("bpftrace", tmp_path / "run", cmd=python_getpid_cmd(123))
    assert len(getpids(info.trace_path)) == 123


def test_shell_pipeline_processes_are_all_traced(programs, tmp_path):
    gp = programs["getpid_n"]
    info = collect("bpftrace", tmp_path / "run", cmd=["/bin/sh", "-c", f"{gp} 30 | {gp} 70 | cat >/dev/null"])
    per_process = Counter((m["comm"], m["pid"]) for m in getpids(info.trace_path))
    assert sorted(n for (comm, _), n in per_process.items() if comm == "getpid_n") == [30, 70]


def test_threads_are_traced_with_their_tids(programs, tmp_path):
    info = collect("bpftrace", tmp_path / "run", cmd=[str(programs["threads"]), "4", "50"])
    calls = getpids(info.trace_path)
    assert sorted(Counter(m["tid"] for m in calls).values()) == [50, 50, 50, 50]
    (pid,) = {m["pid"] for m in calls}
    assert {m["ret"] for m in calls} == {pid} and pid not in {m["tid"] for m in calls}


def test_crash_is_reported_and_trace_kept(tmp_path):
    with pytest.raises(TracedCommandFailed, match="killed by SIGSEGV"):
        collect("bpftrace", tmp_path / "run", cmd=["/bin/sh", "-c", "kill -SEGV $$"])
    lines = sp1_lines(tmp_path / "run" / "trace.bpftrace.txt")
    assert any(m["syscall"] == "kill" for m in lines)


def test_attach_to_a_running_process(tmp_path):
    loop = subprocess.Popen([sys.executable, "-c",
                             "import os, time\nwhile True:\n    os.getpid(); time.sleep(0.01)"])
    try:
        time.sleep(0.3)
        info = collect("bpftrace", tmp_path / "run", pid=loop.pid, duration=1.0)
        calls = getpids(info.trace_path)
        assert calls and {m["pid"] for m in calls} == {str(loop.pid)}
        assert loop.poll() is None and info.meta["exit"] is None
    finally:
        loop.kill()
        loop.wait()
