"""Build the replay engine's C core as a static program (sp_replay) for the patched
kernel's VM (issue 10, ``--impl page-kernel``), and run it on a plan.

The program takes the plan file this package writes (docs/replay.md "The plan file") and
prints the same result ``_engine.run_process`` returns, as JSON.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from syspage.errors import ReplayError

ENGINE_DIR = Path(__file__).resolve().parent / "engine"
# The same sources and flags as replay/engine/Makefile's sp_replay (sp_bench.c: the machine reference)
SOURCES = ("sp_replay_main.c", "sp_plan.c", "sp_run.c", "sp_kside.c", "sp_page.c", "sp_host_linux.c",
           "sp_kernel_page.c", "sp_bench.c")


def build(out_dir: str | Path, cc: str = "gcc") -> Path:
    """Compile ENGINE_DIR's core with ``cc -static``; return the program's path."""
    from syspage.replay import engine

    if shutil.which(cc) is None:
        raise ReplayError(f"{cc} is not installed: cannot build the static replay program")
    out = Path(out_dir) / "sp_replay"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [cc, "-O2", "-falign-loops=64", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
           f'-DSP_ENGINE_VERSION="{engine.EXPECTED_ENGINE_VERSION}"', "-static", "-pthread",
           "-o", str(out), *(str(ENGINE_DIR / s) for s in SOURCES)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReplayError(f"building {out} failed: {proc.stderr.strip()[-500:]}")
    return out


def run(program: str | Path, plan_file: str | Path, proc: int = 0, mode: str = "tight", samples: int = 5,
        warmups: int = 1, min_sample_ns: int = 1_000_000, locking: str = "page", timeout_s: float = 600) -> dict:
    """Run the static program on one traced process of a plan file; return its JSON result."""
    cmd = [str(program), str(plan_file), str(proc), mode, str(samples), str(warmups), str(min_sample_ns), locking]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise ReplayError(f"{program}: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return json.loads(done.stdout)
