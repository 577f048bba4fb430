"""Keep idle CPUs polling instead of halting while the replay measures (a PM QoS request).

Why: on this project's Firecracker guest (cpuidle driver haltpoll, guest_halt_poll_ns=0) an idle
vCPU halts at once, and a halted vCPU's host thread is descheduled; every replay round spawns
processes and waits for them, so the vCPUs halt between and inside rounds. When no other job kept
the guest busy, the same replay measured getpid 134-146 ns against 106-110 ns beside a busy
neighbour, every one-call class 1.2-4x (docs/replay.md, "Repeatability"): the quiet machine was
the slow one. Holding a CPU-latency request of 0 us keeps the cpuidle governor in its polling
state (state0 POLL, exit latency 0), so the vCPUs never halt while the replay runs.

The interface (Linux Documentation/power/pm_qos_interface.rst): open /dev/cpu_dma_latency and
write an s32 target in microseconds; the request holds while the file stays open and is dropped
when it is closed (also when the process dies). It needs root (the node is mode 0600). The cost:
idle CPUs spin for the replay's duration (the host sees this guest's vCPUs busy). Tuned's
latency-performance profile makes the same request.
"""
from __future__ import annotations

import os
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

QOS_PATH = "/dev/cpu_dma_latency"
CPUIDLE = Path("/sys/devices/system/cpu")


def cpuidle_driver() -> str | None:
    try:
        return (CPUIDLE / "cpuidle" / "current_driver").read_text().strip()
    except OSError:
        return None


def halts() -> int | None:
    """Entries into every non-polling idle state of every CPU so far (cpuidle's `usage`), or None."""
    total, seen = 0, False
    for state in CPUIDLE.glob("cpu[0-9]*/cpuidle/state[0-9]*"):
        try:
            if (state / "name").read_text().strip() == "POLL":
                continue
            total += int((state / "usage").read_text())
            seen = True
        except (OSError, ValueError):
            continue
    return total if seen else None


@contextmanager
def held(enabled: bool, path: str = QOS_PATH) -> Iterator[dict]:
    """Hold a 0-us CPU-latency request while the block runs (when enabled and permitted).

    Yields what happened, for the replay's metadata: {"requested", "held", "reason",
    "cpuidle_driver", "halts"}; "halts" (filled on exit) counts idle-state entries that were not
    polling during the block: near 0 when the request worked."""
    info = {"requested": enabled, "held": False, "reason": None, "cpuidle_driver": cpuidle_driver(), "halts": None}
    fd = None
    if enabled:
        try:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, struct.pack("=i", 0))
            info["held"] = True
        except OSError as exc:
            info["reason"] = f"{path}: {exc.strerror or exc}"
            if fd is not None:
                os.close(fd)
                fd = None
    else:
        info["reason"] = "not requested"
    before = halts()
    try:
        yield info
    finally:
        after = halts()
        info["halts"] = after - before if before is not None and after is not None else None
        if fd is not None:
            os.close(fd)
