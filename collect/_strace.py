"""strace(1) backend (Linux): the tracer of record, run for real in the tests.

Flags, chosen so parse reads every field back (https://man7.org/linux/man-pages/man1/strace.1.html):
  -f        follow forks and threads (lines get a "[pid N]" prefix, N being the thread id)
  -ttt      absolute time since the epoch, microseconds: no date needed from meta.json
  -T        time spent in each call (<0.000012>): events.duration_ns
  -xx       every string byte as \\xNN: no ambiguity with quotes, commas or non-UTF-8 bytes
  -s 128    print up to 128 bytes of each string (the default 32 cuts hostnames and titles)
  -C        (with summary=True) also append the -c summary table to the same file
  -o FILE   the trace goes to FILE, the command's own stderr stays its own
strace exits with the traced command's exit status, and kills itself with the same signal when
the command was killed (strace(1) "EXIT STATUS"), so exit_from is "tracer".
"""
from __future__ import annotations

import re
import signal
from pathlib import Path

from syspage.collect._common import Plan, Target, first_line_of, version_number

NAME = "strace"
FORMAT = "strace"
EXECUTABLE = "strace"
PLATFORMS = ("linux",)
TRACE_FILE = "trace.strace.txt"
FLAGS = ["-f", "-ttt", "-T", "-xx", "-s", "128"]


def version(exe: str) -> tuple[str | None, str]:
    text = first_line_of([exe, "-V"])
    return version_number(text), text


def check(exe: str) -> None:
    """strace needs ptrace; denial shows up as a failed run, reported from its stderr."""


def plan(exe: str, rundir: Path, target: Target, summary: bool) -> Plan:
    flags = list(FLAGS) + (["-C"] if summary else [])
    trace = rundir / TRACE_FILE
    argv = [exe, *flags, "-o", str(trace)]
    if target.mode == "attach":
        argv += ["-p", str(target.pid)]
    else:
        argv += ["--", *target.argv]
    return Plan(argv=argv, flags=flags + ["-o", TRACE_FILE], trace_file=TRACE_FILE, format=FORMAT,
                exit_from="tracer", summary_in_trace=summary, exit_from_trace=exit_status_from_trace)


# "1795847928.060074 +++ exited with 3 +++", "12345 1795847928.06 +++ killed by SIGSEGV (core dumped) +++"
_END = re.compile(r"^(?:(?:\[pid\s+)?(?P<pid>\d+)\]?\s+)?(?:[\d.:]+\s+)?\+\+\+ (?:exited with (?P<status>\d+)|killed by (?P<sig>SIG\w+))")


def exit_status_from_trace(path: Path) -> dict | None:
    """The last "+++ exited with N +++" / "+++ killed by SIGX +++" line of the trace.

    The facade takes the command's status from strace's own exit status (exact for the root
    process); this line only proves the command ran and ended: a trace without one means
    strace failed before or while starting it (or was killed itself).
    """
    last = None
    try:
        with open(path, errors="replace") as fh:
            for line in fh:
                if "+++ " in line and (match := _END.match(line)):
                    last = match
    except OSError:
        return None
    if last is None:
        return None
    if last.group("sig"):
        name = last.group("sig")
        return {"status": None, "signal": _signal_number(name), "signal_name": name, "source": "trace"}
    return {"status": int(last.group("status")), "signal": None, "signal_name": None, "source": "trace"}


def _signal_number(name: str) -> int | None:
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None
