"""The bundled traces in data/: each has its provenance, and each Linux trace its meta.json.

These check the files against themselves (the meta.json facts against the trace they
describe), so a regenerated trace with a stale meta.json, or a copied trace without its
.source.txt, fails here.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess

import pytest

from conftest import REPO

DATA = REPO / "data"
LINUX_WORKLOADS = ["postgresql-pgbench", "redis-benchmark", "nginx-wrk", "python-logging", "make-gcc"]
# The flags the collect stage runs strace with (docs/collect.md).
COLLECT_STRACE_FLAGS = ["-f", "-ttt", "-T", "-xx", "-s", "128"]
FOREIGN = sorted(p for p in DATA.glob("*/*.txt") if not p.name.endswith(".source.txt"))


def test_data_stays_small():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024, f"data/ is {total / 2**20:.1f} MiB; keep it to a few MB"


@pytest.mark.parametrize("workload", LINUX_WORKLOADS)
def test_linux_trace_matches_its_meta(workload):
    folder = DATA / "linux" / workload
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format"] == "collect-meta/1"
    assert meta["os"] == "linux"
    assert meta["tool"]["name"] == "strace"
    assert meta["tool"]["flags"][:6] == COLLECT_STRACE_FLAGS
    assert meta["error"] is None and meta["tracer_exit"]["returncode"] == 0
    assert meta["trace"]["compression"] == "gzip"
    assert meta["machine"]["cpu_count"] >= 1 and meta["machine"]["kernel"]
    raw = gzip.decompress((folder / meta["trace"]["file"]).read_bytes())
    # trace.bytes/lines/sha256 are collect's, of the text strace wrote before compression.
    assert meta["trace"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert meta["trace"]["bytes"] == len(raw)
    assert meta["trace"]["lines"] == raw.count(b"\n")
    # -ttt puts epoch seconds after the pid: the first record must fall inside the
    # window meta.json says the tracer ran in (a stale meta.json fails here).
    first = re.match(rb"(\d+) +(\d+\.\d+) ", raw)
    assert first, raw[:200]
    ts_ns = int(float(first.group(2)) * 1e9)
    assert meta["started"]["epoch_ns"] - 5e9 <= ts_ns <= meta["ended"]["epoch_ns"]
    assert meta["data"]["workload"] == workload


@pytest.mark.parametrize("workload", LINUX_WORKLOADS)
def test_linux_trace_says_how_to_regenerate(workload):
    readme = (DATA / "linux" / workload / "README.md").read_text()
    script = DATA / "regenerate" / f"{workload}.sh"
    assert f"data/regenerate/{workload}.sh" in readme
    assert script.is_file() and script.stat().st_mode & 0o111
    assert workload in (DATA / "README.md").read_text()


def test_regenerate_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (tools/debian-packages.txt lists it)")
    scripts = sorted(str(p) for p in (DATA / "regenerate").glob("*.sh"))
    assert len(scripts) >= 6
    done = subprocess.run(["shellcheck", "-x", *scripts], capture_output=True, text=True,
                          cwd=DATA / "regenerate")
    assert done.returncode == 0, done.stdout


def test_every_foreign_os_is_bundled():
    folders = {p.parent.name for p in FOREIGN}
    assert {"freebsd", "openbsd", "macos"} <= folders


@pytest.mark.parametrize("trace", FOREIGN, ids=lambda p: p.name)
def test_foreign_trace_has_provenance(trace):
    source = trace.with_name(trace.name + ".source.txt")
    assert source.is_file(), f"{trace} has no {source.name}"
    text = source.read_text()
    assert f"file: {trace.name}" in text
    assert re.search(r"^url: https://", text, re.M), f"{source} names no URL"
    assert trace.stat().st_size > 0
    assert f"{trace.parent.name}/{trace.name}" in (DATA / "README.md").read_text()
