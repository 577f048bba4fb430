"""ktrace(1) + kdump(1) backend (FreeBSD; also the BSDs' ktrace family).

NOT RUN HERE: there is no FreeBSD machine in this project's environment. Built to FreeBSD's
man pages and source, read through the search tool: usr.bin/ktrace/ktrace.1, ktrace.c,
usr.bin/kdump/kdump.1 (https://man.freebsd.org/cgi/man.cgi?query=ktrace,
https://man.freebsd.org/cgi/man.cgi?query=kdump).

ktrace flags:
  -i          inherit: every future child of the command is traced too
  -t cnstuy   the record types parse reads: c system calls (CALL/RET), n namei(9) path lookups
              (NAMI), s signals (PSIG), t structures (STRU), u utrace(2) records (USER),
              y sysctl(3) requests (SCTL, which names the MIB of each __sysctl call, e.g.
              kern.proc.args for setproctitle). Not i (GIO: every byte of I/O, far too big)
              nor w (context switches).
  -f FILE     the binary dump (ktrace.out in RUNDIR)
ktrace execvp(3)s the command itself after enabling tracing on its own pid (ktrace.c), so
its exit status is the command's.
kdump flags, run after the command ended:
  -H          thread id column (tid) on every record
  -T          absolute timestamps, seconds since the epoch (events.ts_clock = epoch)
  -f FILE     read ktrace.out; stdout goes to trace.kdump.txt
Attach mode: ``ktrace -i -t cnstuy -f FILE -p PID`` returns at once; after the duration
``ktrace -c -f FILE`` clears every trace point that writes to FILE (ktrace(1) EXAMPLES).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from syspage.collect._common import Plan, Target, first_line_of
from syspage.errors import CollectError

NAME = "ktrace"
FORMAT = "kdump"
EXECUTABLE = "ktrace"
PLATFORMS = ("freebsd", "dragonfly", "netbsd", "openbsd")
TRACE_FILE = "trace.kdump.txt"
DUMP_FILE = "ktrace.out"
KTRACE_FLAGS = ["-i", "-t", "cnstuy"]
KDUMP_FLAGS = ["-H", "-T"]


def version(exe: str) -> tuple[str | None, str]:
    # ktrace has no version flag: the base system's release is its version.
    text = first_line_of(["uname", "-r"])
    return text, f"ktrace from the base system of {text}"


def check(exe: str) -> None:
    if shutil.which("kdump") is None:
        raise CollectError("kdump: not found on PATH (ktrace.out cannot be decoded without it)")


def plan(exe: str, rundir: Path, target: Target, summary: bool) -> Plan:
    if summary:
        raise CollectError("ktrace: --summary is strace/perf only (kdump prints no summary)")
    dump = rundir / DUMP_FILE
    argv = [exe, *KTRACE_FLAGS, "-f", str(dump)]
    if target.mode == "attach":
        argv += ["-p", str(target.pid)]
    else:
        argv += list(target.argv)
    return Plan(argv=argv, flags=[*KTRACE_FLAGS, "-f", DUMP_FILE, "|", "kdump", *KDUMP_FLAGS],
                trace_file=TRACE_FILE, format=FORMAT, exit_from="tracer",
                extra_files=[{"file": DUMP_FILE, "role": "ktrace binary dump, decoded by kdump into " + TRACE_FILE}],
                postprocess=_kdump, stop_argv=[exe, "-c", "-f", str(dump)] if target.mode == "attach" else None)


def _kdump(rundir: Path) -> None:
    """Decode ktrace.out with kdump -H -T into the text trace parse reads."""
    kdump = shutil.which("kdump")
    dump = rundir / DUMP_FILE
    if kdump is None or not dump.exists():
        raise CollectError(f"{dump}: cannot decode (kdump missing or no dump written)")
    with open(rundir / TRACE_FILE, "wb") as out:
        res = subprocess.run([kdump, *KDUMP_FLAGS, "-f", str(dump)], stdout=out, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise CollectError(f"{dump}: kdump failed: {res.stderr.decode(errors='replace').strip()[-200:]}")
