"""What every tracer backend shares: the Target to trace, the Plan a backend returns, helpers.

A backend module (``_strace``, ``_perf``, ``_bpftrace``, ``_ktrace``, ``_truss``, ``_dtrace``)
exposes the same names, psutil style: ``NAME``, ``FORMAT``, ``EXECUTABLE``, ``PLATFORMS``,
``version(exe) -> (version, version_text)``, ``check(exe)`` (raises CollectError when the kernel
or permissions deny the tracer) and ``plan(exe, rundir, target, summary) -> Plan``.
The facade (``_facade.py``) runs the Plan; backends never start processes except to ask
their tool for its version or to post-process (kdump).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from syspage.errors import CollectError

SCRIPTS = Path(__file__).resolve().parent / "scripts"


@dataclass(frozen=True)
class Target:
    """What to trace: a command (argv) or a running process (pid, for duration_s seconds)."""

    argv: tuple[str, ...] | None = None
    pid: int | None = None
    duration_s: float | None = None

    @property
    def mode(self) -> str:
        return "attach" if self.pid is not None else "command"


@dataclass
class Plan:
    """How to run one tracer: built by a backend, executed by the facade.

    ``launch``: ``"tracer"`` when the tracer starts the command itself (strace, perf trace,
    ktrace, truss, dtrace -c, dtruss); ``"release"`` when we start the command held on a FIFO
    (scripts/hold-until-released.sh), attach the tracer to its pid, and release it once the
    tracer said it is ready (bpftrace: its BEGIN header reaches the trace file).
    ``exit_from``: where the traced program's exit status comes from: ``"tracer"`` (the tracer
    exits with it, e.g. strace(1) "EXIT STATUS"), ``"launcher"`` (we are its parent) or
    ``"trace"`` (read from the trace's last exit_group, perf trace exits 0 whatever happens),
    ``"unknown"`` (dtruss: nothing tells).
    """

    argv: list[str]
    flags: list[str]
    trace_file: str
    format: str
    script: str | None = None
    trace_stream: str = "file"             # "file": the tracer writes it; "stdout"/"stderr": we redirect that stream into it
    env: dict = field(default_factory=dict)  # extra environment for the tracer
    launch: str = "tracer"
    ready_text: str | None = None          # with launch="release": text in the trace file meaning "attached"
    exit_from: str = "tracer"
    summary_in_trace: bool = False
    extra_files: list[dict] = field(default_factory=list)
    stop_argv: list[str] | None = None     # attach mode: a command that stops tracing (ktrace -c); else SIGINT
    postprocess: Callable[[Path], None] | None = None   # e.g. ktrace.out -> kdump text
    exit_from_trace: Callable[[Path], dict | None] | None = None


def which(name: str) -> str:
    """Absolute path of a tracer on PATH, or a CollectError saying it is missing."""
    path = shutil.which(name)
    if path is None:
        raise CollectError(f"{name}: not found on PATH (install it, e.g. see tools/debian-packages.txt)")
    return path


def first_line_of(argv: list[str], timeout: float = 20) -> str:
    """The first non-empty line a tool prints for its version flag (stdout or stderr)."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    for line in (res.stdout + "\n" + res.stderr).splitlines():
        if line.strip():
            return line.strip()
    return "unknown"


def version_number(text: str) -> str | None:
    """'strace -- version 6.1' -> '6.1'; 'bpftrace v0.17.0' -> '0.17.0'."""
    match = re.search(r"\bv?(\d+(?:\.\d+)+)", text)
    return match.group(1) if match else None


def script_path(name: str) -> Path:
    path = SCRIPTS / name
    if not path.is_file():
        raise CollectError(f"{path}: collect script missing from the installation")
    return path
