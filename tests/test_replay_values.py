"""Replays of real traces: the page's value equals the system call's for every checked
read, nothing on the host changes, and sethostname only ever runs in a private UTS
namespace."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import polars as pl
import pytest

from syspage import replay, schema
from tests.replay_helpers import BUNDLED, DATA, QUICK, parse_to, record_strace

# Bundled real traces (data/linux/*, with provenance) and one from tests/data.
TRACES = {
    "python-logging": BUNDLED / "python-logging",          # 4 threads, 6,000 getpid
    "postgresql-pgbench": BUNDLED / "postgresql-pgbench",  # 13 processes, setsid/setresuid follows
    "redis-benchmark": BUNDLED / "redis-benchmark",        # prctl(PR_SET_NAME) title writes
    "go-build": DATA / "strace_linux_goenpt-f-ttt-xx-gobuild.txt",  # clone/exec, several processes
}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    out = tmp_path_factory.mktemp("parsed")
    return {name: parse_to(path, out / f"{name}.parquet") for name, path in TRACES.items()}


def _host_state():
    with open("/proc/self/comm") as fh:
        comm = fh.read().strip()
    return socket.gethostname(), os.uname().nodename, comm


@pytest.mark.parametrize("name", list(TRACES))
def test_real_trace_replays_with_equal_values_and_no_host_change(parsed, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _host_state()
    files_before = set(os.listdir(tmp_path))
    result = replay.replay_file(parsed[name], tmp_path / "replay.parquet", **QUICK)
    assert _host_state() == before
    assert set(os.listdir(tmp_path)) - files_before == {"replay.parquet", "replay.json"}

    df = schema.REPLAY.read(tmp_path / "replay.parquet")
    events = pl.read_parquet(parsed[name])
    eligible = events.filter(pl.col("page_class").is_not_null())
    # every eligible call is accounted for: replayed or skipped with a reason
    per_class = df.filter(pl.col("impl") == "syscall")
    assert per_class["calls"].sum() == eligible.height
    assert (per_class["replayed"] + per_class["skipped"] == per_class["calls"]).all()
    assert per_class.filter((pl.col("skipped") > 0) & pl.col("skip_reason").is_null()).height == 0
    # the value check ran and found no difference
    reads = df.filter((pl.col("page_access") == "read") & (pl.col("impl") == "page"))
    assert reads["mismatches"].sum() == 0
    comparable = reads.filter(~pl.col("call_class").is_in(["issetugid", "getlogin"]))
    assert (comparable["checked"] == comparable["calls"]).all(), comparable.select("call_class", "checked", "calls")
    # both implementations were measured for every read, the page cheaper than the syscall
    timed = df.filter((pl.col("page_access") == "read") & (pl.col("replayed") > 0))
    if name == "go-build":  # only state changes (clone, execve, exit): nothing to time
        assert timed.height == 0 and df.filter(pl.col("page_access") == "follow").height > 0
        return
    assert timed["samples"].min() == QUICK["workers"] * QUICK["samples"]
    costs = timed.pivot(on="impl", index="call_class", values="cost_ns_median")
    assert (costs["page"] < costs["syscall"]).all(), costs
    assert result.summary["mismatched_classes"] == []


def test_logging_trace_replays_one_thread_per_traced_thread(parsed):
    plan = replay.build_plan(pl.read_parquet(parsed["python-logging"]))
    getpid = [c for c in plan.classes if c.call_class == "getpid"][0]
    assert getpid.calls == 6000
    assert plan.n_procs == 1
    assert len(plan.threads) == 5
    # per-thread order is the trace's order
    events = pl.read_parquet(parsed["python-logging"]).filter(pl.col("page_class").is_not_null())
    first_tid = plan.threads[0].trace_tid
    names = [plan.classes[i].call_class for i in plan.threads[0].classes]
    assert names == events.filter(pl.col("tid").fill_null(pl.col("pid")) == first_tid)["syscall"].to_list()


def test_pgbench_trace_replays_one_process_per_traced_process(parsed, tmp_path):
    plan = replay.build_plan(pl.read_parquet(parsed["postgresql-pgbench"]))
    assert plan.n_procs == 13


def test_sethostname_runs_only_in_a_private_uts_namespace(tmp_path):
    """A real trace of `hostname NAME` in a new UTS namespace, then uname: on replay the page
    follows the change and agrees with uname(2) in the replayer's own namespace, while the
    host's hostname stays as it was."""
    if os.geteuid() != 0:
        pytest.skip("a private UTS namespace needs CAP_SYS_ADMIN (run as root)")
    trace = record_strace("", tmp_path / "trace.txt", "unshare", "-u", "sh", "-c",
                          "hostname syspage-replay-test && hostname")
    events = parse_to(trace, tmp_path / "events.parquet")
    before = socket.gethostname()
    result = replay.replay_file(events, tmp_path / "replay.parquet", **QUICK)
    assert socket.gethostname() == before
    df = result.table
    sethost = df.filter(pl.col("call_class") == "sethostname")
    assert sethost.height == 2 and (sethost["calls"] >= 1).all()
    unames = df.filter((pl.col("call_class") == "uname") & (pl.col("impl") == "page"))
    assert unames["checked"][0] >= 1 and unames["mismatches"][0] == 0


def test_paced_mode_replays_with_the_recorded_gaps(parsed, tmp_path):
    result = replay.replay_file(parsed["go-build"], tmp_path / "replay.parquet", mode="paced", **QUICK)
    assert set(result.table["mode"]) == {"paced"}
    assert "paced replay" in result.metadata["method"]
    assert result.metadata["trace_sha256"]


def test_a_page_that_disagrees_with_the_syscall_is_reported(tmp_path):
    """The check can fail: without CAP_SYS_ADMIN the host cannot follow a sethostname (no
    private UTS namespace), the kernel side still does, so uname's page value differs from
    uname(2)'s. The mismatch must be counted and named, never hidden."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to drop CAP_SYS_ADMIN from a child")
    events = pl.DataFrame({
        "kind": ["call"] * 3, "os": ["linux"] * 3, "syscall": ["uname", "sethostname", "uname"],
        "args_raw": ["", '"syspage-mismatch", 17', ""], "sysctl_name": [None] * 3,
        "pid": [5] * 3, "tid": [5] * 3, "ts_ns": [0, 10, 20], "duration_ns": [1] * 3,
    }, schema_overrides={"sysctl_name": pl.String})
    events_path = tmp_path / "events.parquet"
    events.write_parquet(events_path)
    code = (
        "import json, polars as pl, sys\n"
        "from syspage import replay\n"
        "r = replay.replay_events(pl.read_parquet(sys.argv[1]), replay.Options(workers=1, samples=2, min_sample_ms=0.1))\n"
        "print(json.dumps(r.summary))\n"
    )
    proc = subprocess.run(["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin",
                           sys.executable, "-c", code, str(events_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json

    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    uname = next(c for c in summary["classes"] if c["call_class"] == "uname")
    assert uname["checked"] == 2
    assert uname["mismatches"] == 1          # the read after the sethostname
    assert summary["mismatched_classes"] == ["uname"]
    assert uname["first_mismatch"]["page"] == "syspage-mismatch"   # the first field rendered: hostname
    sethost = next(c for c in summary["classes"] if c["call_class"] == "sethostname")
    assert "no private UTS namespace" in sethost["syscall"]["skip_reason"]
    assert socket.gethostname() != "syspage-mismatch"


@pytest.mark.parametrize("scheme", ["field", "word", "ring"])
def test_every_locking_scheme_replays_with_equal_values(parsed, scheme, tmp_path):
    result = replay.replay_file(parsed["redis-benchmark"], tmp_path / "replay.parquet", locking=scheme, **QUICK)
    df = result.table
    assert set(df["locking"]) == {scheme}
    page = df.filter(pl.col("impl") == "page")
    assert page["mismatches"].sum() == 0
    assert page.filter(pl.col("call_class") == "getpid")["checked"][0] == 26
    assert f"locking {scheme}" in result.metadata["method"]
