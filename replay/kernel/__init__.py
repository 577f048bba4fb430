"""syspage.replay.kernel: the shared-page scheme in a real Linux kernel, booted under QEMU.

The patch series (patches/), the config fragment (syspage.config), the user-side
reader and test programs (user/) and the harness that builds and boots them
(harness.py). Design: docs/kernel.md.
"""
from __future__ import annotations

from .harness import (
    BootResult,
    KernelUnavailable,
    PlanRun,
    Section,
    boot,
    build_initramfs,
    build_kernel,
    build_user,
    missing_tools,
    replay_files,
    run_in_vm,
    run_plan_in_vm,
    series_hash,
)

__all__ = [
    "BootResult", "KernelUnavailable", "PlanRun", "Section", "boot", "build_initramfs", "build_kernel",
    "build_user", "missing_tools", "replay_files", "run_in_vm", "run_plan_in_vm", "series_hash",
]
