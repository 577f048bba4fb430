"""What machine a measurement ran on: recorded with every trace, replay and benchmark.

Numbers without their machine cannot be compared (pyperf records the same:
https://pyperf.readthedocs.io/en/latest/api.html#metadata).
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import syspage

_VULN_DIR = Path("/sys/devices/system/cpu/vulnerabilities")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mitigations() -> dict[str, str]:
    """CPU vulnerability mitigations as the kernel reports them (they change syscall cost)."""
    if not _VULN_DIR.is_dir():
        return {}
    out = {}
    for entry in sorted(_VULN_DIR.iterdir()):
        try:
            out[entry.name] = entry.read_text().strip()
        except OSError:
            out[entry.name] = "unreadable"
    return out


def describe() -> dict[str, object]:
    """Host, OS, kernel, CPU, CPU count, mitigations, Python and syspage versions."""
    uname = platform.uname()
    return {
        "host": uname.node,
        "os": uname.system.lower(),
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "mitigations": mitigations(),
        "python": platform.python_version(),
        "syspage": syspage.__version__,
    }
