"""DTrace backends: our D script (FreeBSD, macOS) and dtruss (macOS).

NOT RUN HERE: there is no FreeBSD or macOS machine in this environment. Built to dtrace(1)
(https://man.freebsd.org/cgi/man.cgi?query=dtrace), the syscall provider
(https://man.freebsd.org/cgi/man.cgi?query=dtrace_syscall) and dtruss(1m) (the DTraceToolkit
script shipped by macOS; its trace goes to stderr).

dtrace flags:
  -q            quiet: only what the script prints
  -s FILE       collect/scripts/syscalls.d, which prints `sp1` lines (docs/dtrace-line-format.md)
  -o FILE       the trace
  -c CMD | -p PID   run the command ($target) or grab a running process
dtrace exits with its own status, not the command's: the script prints an `sp1-exit` header
from syscall::exit:entry, read back here (exit_from="trace").

dtruss flags:
  -f            follow children (adds the PID/THRD column)
  -d            relative timestamps, microseconds since dtruss started (RELATIVE column)
  -e            elapsed time of each call, microseconds (ELAPSD column)
dtruss is a shell script around dtrace and does not pass the command's exit status on, so
meta.json's exit is null for dtruss runs.
"""
from __future__ import annotations

import re
from pathlib import Path

from syspage.collect._common import Plan, Target, first_line_of, script_path, version_number
from syspage.errors import CollectError

NAME = "dtrace"
FORMAT = "dtrace"
EXECUTABLE = "dtrace"
PLATFORMS = ("freebsd", "macos", "solaris")
TRACE_FILE = "trace.dtrace.txt"
SCRIPT = "syscalls.d"

_EXIT = re.compile(r"^sp1-exit\t(\d+)\t\d+\t(-?\d+)$")
_START = re.compile(r"^sp1-start\t(\d+)$")


def version(exe: str) -> tuple[str | None, str]:
    text = first_line_of([exe, "-V"])
    return version_number(text), text


def check(exe: str) -> None:
    """dtrace needs root (or dtrace privileges); denial shows in its stderr."""


def plan(exe: str, rundir: Path, target: Target, summary: bool) -> Plan:
    if summary:
        raise CollectError("dtrace: --summary is strace/perf only (our D script prints one line per call)")
    script = script_path(SCRIPT)
    flags = ["-q", "-s", str(script), "-o", TRACE_FILE]
    argv = [exe, "-q", "-s", str(script), "-o", str(rundir / TRACE_FILE)]
    # dtrace -c takes the command as one string and splits it on blanks (dtrace(1)): quote-free
    # arguments only; a command with blanks inside an argument is refused rather than mangled.
    if target.mode == "attach":
        argv += ["-p", str(target.pid)]
    else:
        if any(not arg or any(c.isspace() for c in arg) for arg in target.argv):
            raise CollectError("dtrace -c splits its command on blanks: an argument with blanks cannot be "
                               "passed; wrap the command in a script")
        argv += ["-c", " ".join(target.argv)]
    return Plan(argv=argv, flags=flags, trace_file=TRACE_FILE, format=FORMAT, script=f"scripts/{SCRIPT}",
                exit_from="trace", exit_from_trace=exit_status_from_trace)


def exit_status_from_trace(path: Path) -> dict | None:
    """The `sp1-exit` status of the `sp1-start` pid."""
    root = None
    try:
        with open(path, errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\n")
                if root is None and (match := _START.match(line)):
                    root = int(match.group(1))
                elif (match := _EXIT.match(line)) and int(match.group(1)) == root:
                    return {"status": int(match.group(2)), "signal": None, "signal_name": None, "source": "trace"}
    except OSError:
        return None
    return None


class dtruss:
    """dtruss(1m), macOS: a backend module in all but file (it shares this module's sources)."""

    NAME = "dtruss"
    FORMAT = "dtruss"
    EXECUTABLE = "dtruss"
    PLATFORMS = ("macos",)
    TRACE_FILE = "trace.dtruss.txt"
    FLAGS = ["-f", "-d", "-e"]

    @staticmethod
    def version(exe: str) -> tuple[str | None, str]:
        # dtruss has no version flag; it is the DTraceToolkit script shipped with macOS.
        text = first_line_of(["sw_vers", "-productVersion"])
        return text, f"dtruss shipped with macOS {text}"

    @staticmethod
    def check(exe: str) -> None:
        """dtruss runs dtrace as root; SIP denial shows in its stderr."""

    @staticmethod
    def plan(exe: str, rundir: Path, target: Target, summary: bool) -> Plan:
        flags = list(dtruss.FLAGS) + (["-c"] if summary else [])
        argv = [exe, *flags]
        argv += ["-p", str(target.pid)] if target.mode == "attach" else list(target.argv)
        # dtruss prints its trace on stderr (the command keeps stdout): stderr -> the trace file.
        return Plan(argv=argv, flags=flags + ["2>", dtruss.TRACE_FILE], trace_file=dtruss.TRACE_FILE,
                    format=dtruss.FORMAT, trace_stream="stderr", exit_from="unknown", summary_in_trace=summary)
