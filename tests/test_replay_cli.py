"""`syspage replay` for real: a subprocess, a real trace, the files it writes, its errors."""
from __future__ import annotations

import json

import polars as pl

from syspage import schema
from tests.replay_helpers import BUNDLED, parse_to


def test_cli_replays_a_real_trace_and_writes_table_and_summary(run_cli, tmp_path):
    events = parse_to(BUNDLED / "redis-benchmark", tmp_path / "events.parquet")
    out = tmp_path / "replay.parquet"
    proc = run_cli("replay", events, "--impl", "syscall,page", "-o", out,
                   "--workers", "1", "--samples", "3", "--min-sample-ms", "0.2")
    assert proc.returncode == 0, proc.stderr
    assert "getpid" in proc.stdout and "wrote" in proc.stdout
    assert "machine reference: raw getpid" in proc.stdout
    df = schema.REPLAY.read(out)
    meta = schema.read_metadata(out)
    assert meta["schema"] == "replay/1"
    assert meta["trace_sha256"] and meta["host_os"] == "linux" and meta["trace_os"] == "linux"
    assert "mitigations" in meta and meta["cpu"]
    getpid = df.filter(pl.col("call_class") == "getpid")
    assert set(getpid["impl"]) == {"syscall", "page"}
    assert (getpid["calls"] == 26).all()
    raw = json.loads(getpid.filter(pl.col("impl") == "page")["raw_ns_json"][0])
    assert len(raw) == 3 and all(v > 0 for v in raw)
    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["format"] == "replay-summary/1"
    assert summary["reference"]["syscall"]["ns_median"] > summary["reference"]["page"]["ns_median"] > 0
    assert summary["metadata"]["trace_sha256"] == meta["trace_sha256"]
    assert any(c["call_class"] == "prctl(PR_SET_NAME)" for c in summary["classes"])


def test_cli_names_a_file_that_is_not_an_events_table(run_cli, tmp_path):
    bad = tmp_path / "not-events.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(bad)
    proc = run_cli("replay", bad, "-o", tmp_path / "r.parquet")
    assert proc.returncode == 2
    assert str(bad) in proc.stderr


def test_cli_refuses_an_unknown_implementation(run_cli, tmp_path):
    events = parse_to(BUNDLED / "redis-benchmark", tmp_path / "events.parquet")
    proc = run_cli("replay", events, "-o", tmp_path / "r.parquet", "--impl", "syscall,vdso")
    assert proc.returncode == 2
    assert "unknown implementation" in proc.stderr and "vdso" in proc.stderr
    proc = run_cli("replay", events, "-o", tmp_path / "r.parquet", "--locking", "bogus")
    assert proc.returncode == 2 and "locking" in proc.stderr


def test_cli_warns_when_other_jobs_keep_the_cpus_busy(run_cli, tmp_path):
    """Two real busy loops (one per CPU of this machine) run beside the replay: host_load
    records their share and the CLI says the costs may not repeat (docs/replay.md)."""
    import os
    import subprocess
    import sys

    events = parse_to(BUNDLED / "redis-benchmark", tmp_path / "events.parquet")
    spin = "import time\nend = time.time() + 60\nwhile time.time() < end: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    try:
        proc = run_cli("replay", events, "--impl", "syscall,page", "-o", tmp_path / "r.parquet",
                       "--workers", "2", "--samples", "3", "--min-sample-ms", "0.2")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert proc.returncode == 0, proc.stderr
    host = json.loads((tmp_path / "r.json").read_text())["host_load"]
    assert host["others_cpu_pct_median"] >= 25, host
    assert "other jobs used" in proc.stderr and "re-run on a quiet machine" in proc.stderr
