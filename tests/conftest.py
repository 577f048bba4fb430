"""Shared test helpers: where the fixtures are, and how to run the CLI for real."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


@pytest.fixture
def run_cli():
    """Run ``python -m syspage ARGS`` in a real subprocess; return the CompletedProcess."""

    def _run(*args, cwd=None, timeout=600, input=None):
        return subprocess.run(
            [sys.executable, "-m", "syspage", *map(str, args)],
            capture_output=True, text=True, cwd=cwd, timeout=timeout, input=input,
        )

    return _run
