"""The demo workload does what data/ says it does: one getpid(2) per logging record.

Runs the real script under real strace (the claim rests on CPython's logging and glibc,
not on our code, so it is checked against them, not assumed).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "data" / "regenerate" / "python_logging_load.py"


def _strace_works() -> str | None:
    if not shutil.which("strace"):
        return "strace is not installed"
    probe = subprocess.run(["strace", "-o", "/dev/null", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.strip()[:200]}"
    return None


@pytest.mark.parametrize("records,threads", [(100, 1), (50, 4)])
def test_every_record_asks_for_the_pid(tmp_path, records, threads):
    why = _strace_works()
    if why:
        pytest.skip(why)
    log = tmp_path / "service.log"
    out = tmp_path / "trace.txt"
    subprocess.run(["strace", "-f", "-e", "trace=getpid", "-o", str(out), "--",
                    sys.executable, str(SCRIPT), str(log), str(records), str(threads)], check=True)
    # With threads, strace may split a call: "getpid( <unfinished ...>" then "<... getpid resumed>)".
    # Count each call once: the whole line, or its resumed half.
    getpids = [line for line in out.read_text().splitlines()
               if re.search(r"\bgetpid\(\)|<\.\.\. getpid resumed>", line)]
    lines = log.read_text().splitlines()
    assert len(lines) == records * threads
    # Each line shows the pid the record asked for; the interpreter itself asks a
    # handful more times at start-up, never fewer than once per record.
    pid = lines[0].split()[2]
    assert all(line.split()[2] == pid for line in lines)
    assert records * threads <= len(getpids) <= records * threads + 20
