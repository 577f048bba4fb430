"""bpftrace backend (Linux), run for real in the tests when the kernel permits.

Runs our script collect/scripts/syscalls.bt, which prints the stable `sp1` line of
docs/dtrace-line-format.md (the same line as syscalls.d under DTrace). The script follows a
root pid and its descendants, so the command is started held on a FIFO
(scripts/hold-until-released.sh), bpftrace is attached to its pid, and the command is released
once the script's ``sp1-start`` header is in the trace: no call of the command is missed, and
we stay its parent, so its exit status comes from waitpid.
Flags (https://github.com/iovisor/bpftrace/blob/master/man/adoc/bpftrace.adoc):
  -q        quiet: no "Attaching N probes..." line in the trace, only the script's lines
  -B line   line-buffered output: the facade watches the trace file for the header
            (bpftrace's own -o FILE stays fully buffered until exit, so stdout is redirected to
            the trace file instead).
BPFTRACE_PERF_RB_PAGES=1024 (4 MiB per CPU) makes the event ring deep enough that a burst of
calls is not lost; bpftrace reports losses as "Lost N events" on stderr, which the facade
counts into meta.json (trace.lost_events).
The syscall-name table inside the script is x86_64's, so other architectures are refused.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

from syspage.collect._common import Plan, Target, first_line_of, script_path, version_number
from syspage.errors import CollectError

NAME = "bpftrace"
FORMAT = "bpftrace"
EXECUTABLE = "bpftrace"
PLATFORMS = ("linux",)
TRACE_FILE = "trace.bpftrace.txt"
SCRIPT = "syscalls.bt"
ENV = {"BPFTRACE_PERF_RB_PAGES": "1024"}
READY = "sp1-start\t"


def version(exe: str) -> tuple[str | None, str]:
    text = first_line_of([exe, "--version"])
    return version_number(text), text


def check(exe: str) -> None:
    if platform.machine() != "x86_64":
        raise CollectError(f"bpftrace: {SCRIPT} names syscalls from the x86_64 table; "
                           f"this machine is {platform.machine()}")
    if os.geteuid() != 0:
        raise CollectError("bpftrace: loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)")
    if not Path("/sys/kernel/tracing/events/raw_syscalls").is_dir() and \
            not Path("/sys/kernel/debug/tracing/events/raw_syscalls").is_dir():
        # bpftrace resolves tracepoint formats through tracefs; the perf backend mounts it the
        # same way when it is missing.
        from syspage.collect import _perf
        _perf.check(exe)


def plan(exe: str, rundir: Path, target: Target, summary: bool) -> Plan:
    if summary:
        raise CollectError("bpftrace: --summary is strace/perf only (our script prints one line per call)")
    script = script_path(SCRIPT)
    flags = ["-q", "-B", "line"]
    # The pid is filled in by the facade once the held command exists (ROOT_PID placeholder).
    pid = str(target.pid) if target.mode == "attach" else "{ROOT_PID}"
    argv = [exe, *flags, str(script), pid]
    return Plan(argv=argv, flags=flags, trace_file=TRACE_FILE, format=FORMAT,
                script=f"scripts/{SCRIPT}", trace_stream="stdout",
                launch="release" if target.mode == "command" else "tracer",
                ready_text=READY, exit_from="launcher", env=dict(ENV))
