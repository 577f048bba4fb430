"""The C engine's own guarantees, checked for real: the kernel-written pages are read-only
to the replayer (the VM system enforces it), the kernel side fills them with the
replayer's real identity, and the kernel side's title read survives a hostile writer."""
from __future__ import annotations

import errno
import os
import signal
import socket

import pytest

from syspage.errors import ReplayError
from syspage.replay import engine as engine_mod


@pytest.fixture(scope="module")
def engine():
    return engine_mod.load()


@pytest.mark.parametrize("page", ["proc_ro", "sys_ro"])
def test_kernel_written_page_is_read_only_and_a_write_is_sigsegv(engine, page):
    r = engine.probe_protection("page", engine.PAGE_KINDS[page])
    # F_SEAL_FUTURE_WRITE: no new writable shared mapping, no write(2) (memfd_create(2))
    assert r["mmap_write_errno"] == errno.EPERM
    assert r["write_errno"] == errno.EPERM
    # the read-only mapping cannot be upgraded (VM_MAYWRITE cleared)
    assert r["mprotect_errno"] == errno.EACCES
    # a store through it kills the writer
    assert r["child_signal"] == signal.SIGSEGV
    assert r["pid_before"] == r["pid_after"]


def test_kernel_side_fills_the_pages_with_the_replayers_real_identity(engine):
    snap = engine.page_snapshot("page")
    f = snap["fields"]
    assert snap["kside_pid"] not in (0, os.getpid())
    assert f["pid"] == os.getpid()
    assert f["ppid"] == os.getppid()
    assert (f["uid"], f["euid"], f["suid"]) == os.getresuid()
    assert (f["gid"], f["egid"], f["sgid"]) == os.getresgid()
    assert f["pgid"] == os.getpgrp()
    assert f["sid"] == os.getsid(0)
    assert f["hostname"] == socket.gethostname()
    u = os.uname()
    assert (f["sysname"], f["osrelease"], f["version"], f["machine"]) == (u.sysname, u.release, u.version, u.machine)
    assert f["ncpu"] == len(os.sched_getaffinity(0))
    assert f["pagesize"] == os.sysconf("SC_PAGESIZE")


@pytest.mark.parametrize("scheme", ["page", "field", "word", "ring"])
def test_every_locking_scheme_serves_the_same_identity(engine, scheme):
    f = engine.page_snapshot(scheme)["fields"]
    assert f["pid"] == os.getpid() and f["hostname"] == socket.gethostname()


def test_title_read_by_the_kernel_side_as_ps_would(engine):
    r = engine.probe_title("plain")
    assert (r["text"], r["source"]) == ("syspage: replay title", 0)


def test_hostile_title_writer_unterminated_title_is_cut_not_overrun(engine):
    r = engine.probe_title("unterminated")
    assert r["kside_alive"]
    assert r["len"] < 2048 and r["len"] == len(r["text"])
    assert set(r["text"]) == {"A"}


@pytest.mark.parametrize("how", ["odd_seq", "bad_header"])
def test_hostile_title_writer_cannot_hang_the_kernel_side(engine, how):
    r = engine.probe_title(how)
    assert r["kside_alive"]
    assert r["source"] == 1            # SP_TITLE_FROM_FALLBACK
    assert "replay" in r["text"]       # the kernel's own name for the process


def test_a_corrupt_plan_is_refused_with_a_message(engine):
    with pytest.raises(ValueError, match="not a syspage plan"):
        engine.run_process(b"not a plan at all, just bytes", 0)


def test_a_truncated_plan_is_refused(engine, tmp_path):
    import polars as pl

    from syspage.replay import plan as plan_mod

    events = pl.DataFrame({
        "kind": ["call"], "os": ["linux"], "syscall": ["getpid"], "args_raw": [""], "sysctl_name": [None],
        "pid": [1], "tid": [1], "ts_ns": [0], "duration_ns": [100],
    }, schema_overrides={"sysctl_name": pl.String})
    data = plan_mod.build(events, engine=engine).data
    with pytest.raises(ValueError, match="truncated or corrupt"):
        engine.run_process(data[:-3], 0)
    with pytest.raises(OSError, match="no thread for replay process 5"):
        engine.run_process(data, 5)


def test_engine_version_is_checked():
    assert engine_mod.load().ENGINE_VERSION == engine_mod.EXPECTED_ENGINE_VERSION
    assert issubclass(ReplayError, Exception)


def test_static_program_replays_a_plan_like_the_extension(tmp_path):
    """sp_replay (gcc -static) for the kernel VM: same plan file, same result shape and values."""
    import polars as pl

    from syspage.replay import plan as plan_mod
    from syspage.replay import static

    try:
        program = static.build(tmp_path)
    except ReplayError as exc:
        pytest.skip(f"no static toolchain here: {exc}")
    events = pl.DataFrame({
        "kind": ["call"] * 4, "os": ["linux"] * 4, "syscall": ["getpid", "getppid", "uname", "getuid"],
        "args_raw": [""] * 4, "sysctl_name": [None] * 4, "pid": [7] * 4, "tid": [7, 7, 8, 8],
        "ts_ns": [0, 10, 20, 30], "duration_ns": [1] * 4,
    }, schema_overrides={"sysctl_name": pl.String})
    plan = plan_mod.build(events)
    path = plan.write(tmp_path / "plan.bin")
    out = static.run(program, path, samples=2, min_sample_ns=100_000)
    assert out["n_threads"] == 2
    assert [c["checked"] for c in out["classes"]] == [1, 1, 1, 1]
    assert all(c["mismatches"] == 0 for c in out["classes"])
    assert all(len(c["samples"]["page"]) == 2 and len(c["samples"]["syscall"]) == 2 for c in out["classes"])
    assert len(out["reference"]["syscall"]) == len(out["reference"]["page"]) == 2
    with pytest.raises(ReplayError, match="no thread for replay process 3"):
        static.run(program, path, proc=3)


def test_paced_mode_spins_the_recorded_gaps_and_tight_mode_does_not(engine):
    """100 getpid 1 ms apart: paced passes take >= 99 ms each (4 passes at least: one
    calibration and one sample per implementation), tight ones a fraction of that (the best
    of three, so a loaded machine's slow fork does not decide)."""
    import time

    import polars as pl

    from syspage.replay import plan as plan_mod

    n, gap = 100, 1_000_000
    events = pl.DataFrame({
        "kind": ["call"] * n, "os": ["linux"] * n, "syscall": ["getpid"] * n, "args_raw": [""] * n,
        "sysctl_name": [None] * n, "pid": [3] * n, "tid": [3] * n,
        "ts_ns": [i * gap for i in range(n)], "duration_ns": [0] * n,
    }, schema_overrides={"sysctl_name": pl.String})
    plan = plan_mod.build(events, engine=engine)
    assert plan.threads[0].gaps[1:] == [gap] * (n - 1)

    def wall(mode):
        t0 = time.perf_counter()
        engine.run_process(plan.data, 0, mode=mode, samples=1, warmups=0, min_sample_ns=0, check=False)
        return time.perf_counter() - t0

    spun = 4 * (n - 1) * gap / 1e9
    assert wall("paced") >= spun
    assert min(wall("tight") for _ in range(3)) < 0.5 * spun
