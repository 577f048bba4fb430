"""What `syspage run` says about its result: warnings from the replay, summary-only traces.

Real stages on bundled traces (data/linux/redis-benchmark, the smallest; tests/data's strace -c
summary), a real system-wide bpftrace where it can attach.
"""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from conftest import REPO
from syspage import pipeline
from syspage.analyze.summary import SUMMARY_ONLY_NOTE

REDIS = REPO / "data" / "linux" / "redis-benchmark" / "trace.strace.txt.gz"
SUMMARY_ONLY = REPO / "tests" / "data" / "strace_linux_renlord-zoom-c-summary.txt"


class Recorder(pipeline.QuietListener):
    def __init__(self):
        self.notes = []

    def note(self, text):
        self.notes.append(text)


def test_run_on_a_summary_only_trace(run_cli, tmp_path):
    out = tmp_path / "o"
    done = run_cli("run", "-o", out, "--trace", SUMMARY_ONLY)
    assert done.returncode == 0, done.stderr
    summary = (out / "summary.txt").read_text()
    assert SUMMARY_ONLY_NOTE in summary and SUMMARY_ONLY_NOTE in done.stdout
    assert "None" not in summary and "differs from the tracer's own summary" not in summary
    assert "7,144,759 calls" in summary            # gettid, the summary's top row
    assert "saved 0 ns" not in done.stdout


def test_run_warns_about_a_tracer_during_the_replay(tmp_path):
    if not shutil.which("bpftrace"):
        pytest.skip("bpftrace is not installed")
    proc = subprocess.Popen(["bpftrace", "-e", "tracepoint:raw_syscalls:sys_enter{@[comm]=count();}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        if "Attaching" not in first:
            proc.kill()
            pytest.skip(f"bpftrace cannot attach here: {(first + proc.communicate(timeout=10)[1]).strip()[:300]}")
        time.sleep(0.5)
        listener = Recorder()
        result = pipeline.run(tmp_path / "o", trace=REDIS, listener=listener)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    words = "tracing system calls system-wide: they are inflated"
    assert any("bpftrace(" in n and words in n for n in listener.notes), listener.notes
    assert "WARNING: syscall costs measured while bpftrace(" in result.summary_text
    assert "WARNING: syscall costs measured while bpftrace(" in (tmp_path / "o" / "summary.txt").read_text()
