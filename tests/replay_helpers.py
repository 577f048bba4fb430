"""Helpers shared by tests/test_replay_*.py: parse real traces once, replay them quickly."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
BUNDLED = REPO / "data" / "linux"

# Small and quick: enough samples to exercise the statistics, not to publish figures.
QUICK = {"workers": 1, "samples": 3, "warmups": 1, "min_sample_ms": 0.2}


def parse_to(trace: Path, out: Path) -> Path:
    from syspage import parse

    result = parse.parse_file(trace)
    return parse.write(result, out)


def record_strace(script: str, out: Path, *extra: str) -> Path:
    """Trace a real command with strace -f -ttt -T (skips when strace cannot trace here)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    cmd = ["strace", "-f", "-ttt", "-T", "-o", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, input=script)
    if proc.returncode != 0 or not out.exists():
        pytest.skip(f"strace could not trace here: {proc.stderr.strip()[-200:]}")
    return out


def call_events(names: list[str]):
    """A minimal events/1-shaped frame: one thread of one process calling NAMES, 1 µs apart."""
    import polars as pl

    n = len(names)
    return pl.DataFrame({
        "kind": ["call"] * n, "os": ["linux"] * n, "syscall": names, "args_raw": [""] * n,
        "sysctl_name": [None] * n, "pid": [1] * n, "tid": [1] * n,
        "ts_ns": list(range(0, n * 1000, 1000)), "duration_ns": [100] * n,
    }, schema_overrides={"sysctl_name": pl.String})
