"""What else the machine was doing while the replay ran: steal time, load, runnable tasks.

On a shared VM a syscall's cost moves with the host: time the hypervisor gave another guest
shows as *steal* in /proc/stat (proc(5): the 8th value of each ``cpu`` line, in USER_HZ
ticks), and the other jobs of this guest as the load average and ``procs_running``. The
replay cannot stop either; it records them per worker round, next to the figures they can
move (docs/replay.md "Timing method"). Linux only: elsewhere every reading is None.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
PROC_LOADAVG = Path("/proc/loadavg")
# /proc/stat cpu line: user nice system idle iowait irq softirq steal [guest guest_nice];
# guest time is already counted in user, so the total stops at steal.
_TOTAL_FIELDS = 8
_STEAL = 7


@dataclass(frozen=True)
class Snapshot:
    cpu_ticks: dict[str, tuple[int, ...]]   # "cpu" (all) and "cpu0", "cpu1" ...: the first 8 counters
    load_1min: float | None
    procs_running: int | None               # runnable tasks now, this reader included
    children_cpu_s: float = 0.0             # user + system time of this process's waited-for descendants


def snapshot() -> Snapshot:
    ticks: dict[str, tuple[int, ...]] = {}
    running = None
    try:
        for line in PROC_STAT.read_text().splitlines():
            parts = line.split()
            if parts and parts[0].startswith("cpu") and len(parts) > _TOTAL_FIELDS:
                ticks[parts[0]] = tuple(int(v) for v in parts[1:_TOTAL_FIELDS + 1])
            elif parts and parts[0] == "procs_running":
                running = int(parts[1])
    except (OSError, ValueError):
        ticks = {}
    try:
        load = float(PROC_LOADAVG.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        load = None
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Snapshot(ticks, load, running, children.ru_utime + children.ru_stime)


def steal_fraction(before: Snapshot, after: Snapshot, cpu: str = "cpu") -> float | None:
    """Share of the CPU time between the snapshots that the hypervisor gave elsewhere."""
    a, b = before.cpu_ticks.get(cpu), after.cpu_ticks.get(cpu)
    if a is None or b is None:
        return None
    total = sum(b) - sum(a)
    if total <= 0:
        return None   # shorter than one tick (USER_HZ, usually 10 ms): nothing to say
    return (b[_STEAL] - a[_STEAL]) / total


def busy_fraction(before: Snapshot, after: Snapshot, cpu: str = "cpu") -> float | None:
    """Share of the CPU time between the snapshots that was not idle (ours and everyone's)."""
    a, b = before.cpu_ticks.get(cpu), after.cpu_ticks.get(cpu)
    if a is None or b is None:
        return None
    total = sum(b) - sum(a)
    if total <= 0:
        return None
    idle = (b[3] - a[3]) + (b[4] - a[4])   # idle + iowait
    return 1.0 - idle / total


def others_fraction(before: Snapshot, after: Snapshot) -> float | None:
    """Share of the machine's CPU time between the snapshots used by anything but our children.

    The busy time of all CPUs (/proc/stat) minus the CPU time of the replay processes waited for
    in between (getrusage(2) RUSAGE_CHILDREN, which includes their kernel sides): the other jobs
    that competed with the replay, measured over exactly its round, where the load average is a
    1-minute decaying mean.
    """
    a, b = before.cpu_ticks.get("cpu"), after.cpu_ticks.get("cpu")
    if a is None or b is None:
        return None
    total = sum(b) - sum(a)
    if total <= 0:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = total - (b[3] - a[3]) - (b[4] - a[4])
    ours = (after.children_cpu_s - before.children_cpu_s) * hz
    return max(0.0, busy - ours) / total


def wait_for_quiet(max_busy: float = 0.10, window_s: float = 1.0, timeout_s: float = 60.0) -> dict:
    """Wait until the machine's CPUs were at most max_busy busy over one window (the caller
    sleeping meanwhile, so what is busy is someone else), or until timeout_s.

    For benchmarks that want a quiet machine rather than an average over whatever else runs:
    it chooses *when* to measure, never which results to keep; the caller records what it
    returns beside the figures. Returns {"waited_s", "busy_pct" (last window), "quiet"}.
    """
    import time

    start = time.monotonic()
    while True:
        before = snapshot()
        time.sleep(window_s)
        busy = busy_fraction(before, snapshot())
        waited = time.monotonic() - start
        if busy is None or busy <= max_busy or waited >= timeout_s:
            return {"waited_s": round(waited, 1), "busy_pct": None if busy is None else round(100 * busy, 1),
                    "quiet": busy is not None and busy <= max_busy}


CPUIDLE = Path("/sys/devices/system/cpu")


def cpu_idle_us(cpus: list[int]) -> dict[int, int] | None:
    """Microseconds each CPU has spent idle so far, from cpuidle's per-state `time` (exact,
    where /proc/stat counts in 10-ms ticks), or None where cpuidle is not there."""
    out = {}
    for cpu in cpus:
        states = list((CPUIDLE / f"cpu{cpu}" / "cpuidle").glob("state[0-9]*"))
        if not states:
            return None
        try:
            out[cpu] = sum(int((s / "time").read_text()) for s in states)
        except (OSError, ValueError):
            return None
    return out


def cpus_by_idleness(cpus: list[int], window_s: float = 0.03, rotate: int = 0,
                     busy_threshold: float = 0.10) -> list[int]:
    """The CPUs ordered idlest first over a short window (the caller sleeping meanwhile, so what
    runs is someone else). CPUs busy less than busy_threshold count as equally idle and keep a
    rotation by `rotate` (so a quiet machine's rounds still visit every CPU); without cpuidle the
    rotation alone."""
    import time

    rotated = cpus[rotate % len(cpus):] + cpus[:rotate % len(cpus)] if cpus else []
    before = cpu_idle_us(cpus)
    if before is None:
        return rotated
    t0 = time.perf_counter()
    time.sleep(window_s)
    after = cpu_idle_us(cpus)
    elapsed_us = (time.perf_counter() - t0) * 1e6
    if after is None or elapsed_us <= 0:
        return rotated
    busy = {c: max(0.0, 1.0 - (after[c] - before[c]) / elapsed_us) for c in cpus}
    # stable sort: equally idle CPUs keep their rotated order
    return sorted(rotated, key=lambda c: 0.0 if busy[c] < busy_threshold else busy[c])
