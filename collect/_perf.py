"""perf trace backend (Linux), run for real in the tests when the kernel permits.

perf trace reads the raw_syscalls tracepoints, so it needs tracefs (mounted here at
/sys/kernel/tracing when it is not) and perf_event_paranoid permission (root passes any level)
(https://man7.org/linux/man-pages/man1/perf-trace.1.html).
Flags: only ``-o FILE``; the default output (relative ms, duration in ms, ``comm/tid``, decoded
arguments) is what parse's perf_trace grammar reads. With ``-- CMD`` perf inherits the events
into every child and thread, so comm/tid is printed on each line; with ``-p PID`` perf traces
that process's existing threads only, without its later children, and prints no comm/tid when
it has one thread (builtin-trace.c prints them only for "multiple_threads").
perf trace exits 0 whatever the command did, so the exit status is read from the trace: the
root process's last ``exit_group(error_code: N)`` (perf omits a zero argument:
``exit_group()`` means 0). A command killed by a signal makes no exit_group: status null.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from syspage.collect._common import Plan, Target, first_line_of, version_number
from syspage.errors import CollectError

NAME = "perf"
FORMAT = "perf_trace"
EXECUTABLE = "perf"
PLATFORMS = ("linux",)
TRACE_FILE = "trace.perf.txt"
TRACEFS = Path("/sys/kernel/tracing")
PARANOID = Path("/proc/sys/kernel/perf_event_paranoid")

# "     1.976 (         ): true/5044 exit_group()   = ?"
_CALL = re.compile(r"^\s*[\d.]+\s+\(\s*[\d.]*\s*(?:ms)?\):\s+(?:(?P<comm>.*?)/(?P<tid>\d+)\s+)?(?P<name>\w+)\((?P<args>.*?)\)")
_EXIT_CODE = re.compile(r"error_code:\s*(-?\d+)")
_TIMESTAMP = re.compile(r"^\s*(\d+\.\d+)")


def _timestamp(line: str) -> float:
    match = _TIMESTAMP.match(line)
    return float(match.group(1)) if match else float("-inf")


def version(exe: str) -> tuple[str | None, str]:
    text = first_line_of([exe, "--version"])
    return version_number(text), text


def _syscall_events_dir() -> Path | None:
    for base in (TRACEFS, Path("/sys/kernel/debug/tracing")):
        if (base / "events" / "raw_syscalls").is_dir():
            return base
    return None


def check(exe: str) -> None:
    """Mount tracefs if we may; refuse with the reason when perf cannot open the tracepoints."""
    if _syscall_events_dir() is None and os.geteuid() == 0:
        # mount(8) tracefs the way the kernel documents it (Documentation/trace/ftrace.rst).
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True)
    if _syscall_events_dir() is None:
        raise CollectError(f"perf trace: tracefs is not mounted at {TRACEFS} and could not be mounted "
                           f"(as root: mount -t tracefs nodev {TRACEFS})")
    try:
        paranoid = int(PARANOID.read_text())
    except (OSError, ValueError):
        paranoid = None
    if os.geteuid() != 0 and paranoid is not None and paranoid > -1:
        raise CollectError(f"perf trace: {PARANOID} is {paranoid}; tracing syscalls as a user needs "
                           "-1 (sysctl kernel.perf_event_paranoid=-1) or root")


def plan(exe: str, rundir: Path, target: Target, summary: bool) -> Plan:
    trace = rundir / TRACE_FILE
    flags = ["-S"] if summary else []
    argv = [exe, "trace", *flags, "-o", str(trace)]
    if target.mode == "attach":
        argv += ["-p", str(target.pid)]
    else:
        argv += ["--", *target.argv]
    return Plan(argv=argv, flags=["trace", *flags, "-o", TRACE_FILE], trace_file=TRACE_FILE,
                format=FORMAT, exit_from="trace", summary_in_trace=summary,
                exit_from_trace=exit_status_from_trace)


def exit_status_from_trace(path: Path) -> dict | None:
    """The command's exit_group code, read from the trace.

    perf does not print events in tid order: a thread's events can come first (seen here: a
    trace opening with a thread's ``[continued]: clone3()``), so "the first tid" is not the
    command. The command is the tid of the first ``execve`` when perf caught it; otherwise the
    process whose exit_group comes last (a parent that waits for its children exits after
    them).
    """
    exec_tid = None
    exits: list[tuple[float, int, int]] = []        # (timestamp, tid, code)
    try:
        with open(path, errors="replace") as fh:
            for line in fh:
                match = _CALL.match(line)
                if not match or match.group("tid") is None:
                    continue
                tid = int(match.group("tid"))
                name = match.group("name")
                if name == "execve" and exec_tid is None:
                    exec_tid = tid
                elif name == "exit_group":
                    code = _EXIT_CODE.search(match.group("args"))
                    exits.append((_timestamp(line), tid, int(code.group(1)) if code else 0))
    except OSError:
        return None
    chosen = [e for e in exits if e[1] == exec_tid] if exec_tid is not None else []
    if not chosen:
        chosen = sorted(exits)
    if not chosen:
        return None
    status = chosen[-1][2]
    return {"status": status, "signal": None, "signal_name": None, "source": "trace"}
