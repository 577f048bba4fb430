"""truss(1) backend (FreeBSD).

NOT RUN HERE: no FreeBSD machine in this environment. Built to FreeBSD's truss(1) man page and
usr.bin/truss source, read through the search tool (https://man.freebsd.org/cgi/man.cgi?query=truss).
Flags:
  -f         follow descendants created by fork(2)/vfork(2)
  -H         thread id of each event (FreeBSD 11+)
  -d         timestamps: time elapsed since the trace started (parse adds meta.json's start)
  -s 128     strings up to 128 characters (default 32)
  -o FILE    the trace (default is stderr, shared with the command)
truss prints "process exit, rval = N" when the command exits: the exit status is read from
the trace (exit_from="trace"); "--summary" (truss -c) is refused because -c drops the
individual calls.
"""
from __future__ import annotations

import re
from pathlib import Path

from syspage.collect._common import Plan, Target, first_line_of
from syspage.errors import CollectError

NAME = "truss"
FORMAT = "truss"
EXECUTABLE = "truss"
PLATFORMS = ("freebsd",)
TRACE_FILE = "trace.truss.txt"
FLAGS = ["-f", "-H", "-d", "-s", "128"]

_EXIT = re.compile(r"process exit, rval = (-?\d+)")
_KILLED = re.compile(r"process killed, signal = (\d+)")


def version(exe: str) -> tuple[str | None, str]:
    text = first_line_of(["uname", "-r"])
    return text, f"truss from the base system of {text}"


def check(exe: str) -> None:
    """truss uses ptrace(2); a denial shows in its stderr, reported by the facade."""


def plan(exe: str, rundir: Path, target: Target, summary: bool) -> Plan:
    if summary:
        raise CollectError("truss: --summary is refused (truss -c prints only the summary, no calls)")
    argv = [exe, *FLAGS, "-o", str(rundir / TRACE_FILE)]
    argv += ["-p", str(target.pid)] if target.mode == "attach" else list(target.argv)
    return Plan(argv=argv, flags=[*FLAGS, "-o", TRACE_FILE], trace_file=TRACE_FILE, format=FORMAT,
                exit_from="trace", exit_from_trace=exit_status_from_trace)


def exit_status_from_trace(path: Path) -> dict | None:
    """The first process's exit line: truss -f prints one per traced process, the root's last."""
    status = None
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        if (match := _EXIT.search(line)):
            status = {"status": int(match.group(1)), "signal": None, "signal_name": None, "source": "trace"}
            break
        if (match := _KILLED.search(line)):
            status = {"status": None, "signal": int(match.group(1)), "signal_name": None, "source": "trace"}
            break
    return status
