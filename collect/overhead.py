"""The tracer's slowdown on one workload: the same command run untraced and traced.

Method (pyperf's habits, https://pyperf.readthedocs.io/en/latest/run_benchmark.html, and the
house rule of interleaving): N pairs, each an untraced run then a traced run, so machine noise
hits both alike; every raw wall time is kept; medians, the paired ratios' min/max as the
spread, and an "unstable" flag when the ratios spread more than 10 % around their median.
What is timed (wall time, and user+system CPU time from wait4(2), which a busy machine disturbs
much less):
  untraced: fork+exec of the command to its exit (stdout/stderr to /dev/null);
  traced:   as collect runs it: tracer start to tracer exit when the tracer starts the command
            (strace, perf: includes the tracer's own start-up and its writing of the trace);
            release to exit when the command is held until the tracer is ready (bpftrace: its
            seconds of script compilation are excluded, as they do not slow the command).
For tracers that start the command, each pair also times the tracer on /bin/true
(``tracer_startup_s``: start-up, attach and exit with nearly no work), so a short command's
slowdown can be read without the tracer's fixed start-up cost (``slowdown_excl_startup_*``:
(traced - startup) / untraced per pair). perf trace's start-up is ~0.5 s on this machine.
The trace of each traced run goes to a temporary directory, deleted afterwards.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from syspage.collect._common import Target

UNSTABLE_SPREAD = 0.10


def measure(backend, exe: str, target: Target, summary: bool, reps: int, progress=None) -> dict:
    from syspage.collect._facade import _run   # the same runner collect() uses

    untraced: list[float] = []
    traced: list[float] = []
    startup: list[float] = []
    untraced_cpu: list[float] = []
    traced_cpu: list[float] = []
    true_target = Target(argv=(shutil.which("true") or "/bin/true",))
    for i in range(reps):
        started = time.perf_counter()
        proc = subprocess.Popen(list(target.argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        _pid, _status, usage = os.wait4(proc.pid, 0)
        untraced.append(time.perf_counter() - started)
        proc.returncode = os.waitstatus_to_exitcode(_status)
        untraced_cpu.append(usage.ru_utime + usage.ru_stime)
        with tempfile.TemporaryDirectory(prefix="syspage-overhead-") as tmp:
            rundir = Path(tmp)
            plan = backend.plan(exe, rundir, target, summary)
            result = _run(plan, target, rundir, rundir / "stderr.txt", None,
                          subprocess.DEVNULL, subprocess.DEVNULL)
        traced.append(result.workload_s)
        traced_cpu.append(result.cpu_s)
        if plan.launch == "tracer":
            with tempfile.TemporaryDirectory(prefix="syspage-overhead-") as tmp:
                rundir = Path(tmp)
                result = _run(backend.plan(exe, rundir, true_target, summary), true_target, rundir,
                              rundir / "stderr.txt", None, subprocess.DEVNULL, subprocess.DEVNULL)
            startup.append(result.workload_s)
        if progress:
            progress(i + 1, reps)
    summary_ = summarize(untraced, traced, backend.NAME, startup or None)
    summary_.update(cpu_summary(untraced_cpu, traced_cpu, plan.launch))
    return summary_


def cpu_summary(untraced_cpu: list[float], traced_cpu: list[float], launch: str) -> dict:
    """CPU time is far less disturbed than wall time by other work on a busy machine."""
    ratios = [t / u for u, t in zip(untraced_cpu, traced_cpu) if u > 0]
    median_u = statistics.median(untraced_cpu)
    median_t = statistics.median(traced_cpu)
    return {
        "cpu_what": ("tracer + command (the tracer reaps the command, wait4 counts both)" if launch == "tracer"
                     else "command only (BPF probe time is charged to it as system time; bpftrace's "
                          "user-space printing is not)"),
        "untraced_cpu_s": untraced_cpu,
        "traced_cpu_s": traced_cpu,
        "cpu_slowdown_median": median_t / median_u if median_u > 0 else None,
        "cpu_slowdown_min": min(ratios) if ratios else None,
        "cpu_slowdown_max": max(ratios) if ratios else None,
    }


def summarize(untraced: list[float], traced: list[float], tool: str, startup: list[float] | None = None) -> dict:
    ratios = [t / u for u, t in zip(untraced, traced) if u > 0]
    median_ratio = statistics.median(ratios) if ratios else None
    unstable = bool(ratios) and (max(ratios) > median_ratio * (1 + UNSTABLE_SPREAD)
                                 or min(ratios) < median_ratio * (1 - UNSTABLE_SPREAD))
    untraced_median = statistics.median(untraced)
    traced_median = statistics.median(traced)
    # The start-up time is measured on its own run, so on a noisy machine it can exceed a
    # short traced run: such pairs say nothing about the steady-state slowdown (a negative
    # "slowdown" would be nonsense) and are left out, counted in slowdown_excl_startup_dropped.
    pairs = [(u, t, s) for u, t, s in zip(untraced, traced, startup or []) if u > 0]
    excl = [(t - s) / u for u, t, s in pairs if t > s]
    return {
        "method": (f"{len(untraced)} interleaved pairs (untraced run, then run under {tool} as collect "
                   "runs it); wall time per run; see collect/overhead.py"),
        "repetitions": len(untraced),
        "untraced_s": untraced,
        "traced_s": traced,
        "untraced_median_s": untraced_median,
        "traced_median_s": traced_median,
        "slowdown_median": traced_median / untraced_median if untraced_median > 0 else None,
        "slowdown_min": min(ratios) if ratios else None,
        "slowdown_max": max(ratios) if ratios else None,
        "unstable": unstable,
        "tracer_startup_s": startup,
        "slowdown_excl_startup_median": statistics.median(excl) if excl else None,
        "slowdown_excl_startup_min": min(excl) if excl else None,
        "slowdown_excl_startup_max": max(excl) if excl else None,
        "slowdown_excl_startup_dropped": len(pairs) - len(excl),
    }
