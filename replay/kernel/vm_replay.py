"""``syspage replay --impl ...,page-kernel``: the replay runs inside the patched kernel's VM.

The runner (syspage.replay.runner) hands a plan here when page-kernel is asked for. One
boot replays every worker round and traced process with the static engine (sp_replay,
syspage.replay.static), the implementations interleaved inside each replay process as on
the host: syscall, page (the simulated page) and page-kernel (the kernel's real pages,
replay/engine/sp_kernel_page.c). The results have the host engine's shape, so the runner
builds the same replay/1 table from them.

The guest runs under QEMU's software emulation (TCG) with one vCPU: every absolute cost
is distorted (a system call costs ~450 ns here against ~60-100 ns natively), so read the
ratios between implementations measured side by side (docs/kernel.md).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from syspage.replay.kernel import harness

VM_NOTE = ("replayed inside the patched Linux kernel under QEMU {accel} with 1 vCPU: absolute costs are "
           "distorted by the emulation; compare ratios between implementations of the same run")


def run(plan, options, progress: Callable[[int, int], None] | None = None):
    """Run the plan's worker rounds in one boot; return a runner.RunResult with ``vm`` set."""
    from syspage.replay.runner import RunResult

    result = RunResult()
    if not plan.threads:
        return result
    runs = options.workers * plan.n_procs
    spec = harness.PlanRun(
        procs=tuple(range(plan.n_procs)),
        rounds=options.workers,
        mode=options.mode,
        samples=options.samples,
        warmups=options.warmups,
        min_sample_ns=int(options.min_sample_ms * 1e6),
        locking=options.locking,
        impls=tuple(options.impls),
        min_class_ns=int(getattr(options, "min_class_us", 0) * 1e3),
        max_sample_ns=int(getattr(options, "max_sample_ms", 0) * 1e6),
        timeout_s=int(options.timeout_s),
    )
    if progress:
        progress(0, runs)
    with tempfile.TemporaryDirectory(prefix="syspage-vm-replay-") as tmp:
        plan_path = plan.write(Path(tmp) / "plan.bin")
        out = harness.run_plan_in_vm(plan_path, spec, timeout=options.timeout_s * runs + 600)
    if progress:
        progress(runs, runs)
    result.rounds = out.pop("rounds")
    result.seconds = out["boot_seconds"]
    result.vm = {**out, "note": VM_NOTE.format(accel=out["accel"].upper())}
    return result
