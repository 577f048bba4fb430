"""syspage.pipeline: the parts of the main job that are its own (not the stages it calls)."""
from __future__ import annotations

import gzip
import json

import pytest

from syspage import pipeline
from syspage.errors import InputError, SyspageError

from conftest import REPO


def test_bundled_trace_is_the_logging_workload():
    path = pipeline.bundled_trace()
    assert path == REPO / "data" / "linux" / "python-logging" / "trace.strace.txt.gz"


def test_unknown_workload_names_the_bundled_ones():
    with pytest.raises(InputError, match="bundled: make-gcc, nginx-wrk"):
        pipeline.bundled_trace("no-such-workload")


def test_stage_trace_decompresses_and_points_meta_at_the_copy(tmp_path):
    src = pipeline.bundled_trace()
    trace, meta = pipeline.stage_trace(src, tmp_path / "trace")
    assert trace == tmp_path / "trace" / "trace.strace.txt"
    assert trace.read_bytes() == gzip.decompress(src.read_bytes())
    copied = json.loads(meta.read_text())
    original = json.loads((src.parent / "meta.json").read_text())
    assert copied["trace"]["file"] == "trace.strace.txt"
    assert "compression" not in copied["trace"]
    assert copied["trace"]["sha256"] == original["trace"]["sha256"]
    assert copied["started"] == original["started"]


def test_stage_trace_accepts_a_rundir(tmp_path):
    trace, meta = pipeline.stage_trace(REPO / "data" / "linux" / "redis-benchmark", tmp_path / "t")
    assert trace.name == "trace.strace.txt" and trace.stat().st_size > 100_000
    assert meta is not None


def test_stage_trace_without_meta_copies_only_the_trace(tmp_path):
    src = REPO / "data" / "openbsd" / "kdump_openbsd_cY81x-attended-w.txt"
    trace, meta = pipeline.stage_trace(src, tmp_path / "t")
    assert meta is None
    assert trace.read_text() == src.read_text()


def test_stage_trace_names_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.txt: no such trace file"):
        pipeline.stage_trace(tmp_path / "nope.txt", tmp_path / "t")


def test_stage_trace_names_a_broken_gzip(tmp_path):
    bad = tmp_path / "trace.strace.txt.gz"
    bad.write_bytes(gzip.compress(b"1 2.0 getpid() = 1 <0.1>\n")[:-12])
    with pytest.raises(InputError, match="trace.strace.txt.gz: cannot decompress"):
        pipeline.stage_trace(bad, tmp_path / "t")


def test_run_needs_exactly_one_source(tmp_path):
    with pytest.raises(SyspageError, match="either a command"):
        pipeline.run(tmp_path, cmd=None, trace=None)
    with pytest.raises(SyspageError, match="either a command"):
        pipeline.run(tmp_path, cmd=["true"], trace="x")


def test_cli_refuses_nothing_to_run(run_cli, tmp_path):
    done = run_cli("run", "-o", tmp_path)
    assert done.returncode == 2
    assert "nothing to run: give -- CMD ARGS, --trace FILE or --demo" in done.stderr


def test_cli_refuses_bundled_without_demo(run_cli, tmp_path):
    done = run_cli("run", "--bundled", "-o", tmp_path)
    assert done.returncode == 2 and "--bundled goes with --demo" in done.stderr
