"""Several threads of one traced process write the per-process title page (redis names its
bio threads with prctl(PR_SET_NAME) from four threads). The replay runs one thread per
traced thread, so the page's writers run concurrently: they must be serialised (or the
sequence counter loses an increment, stays odd, and every reader spins for ever), and the
value check must not see another thread's timed writes (or it reports false mismatches).

The unit test at the end checks the writers alone (no lost counter increment).

Each replay below runs under a timeout in its own process group: a hang is a failure
with a message, never a stuck test run. Before the fix, 3 of 6 tight and 1 of 3 paced
replays of the redis trace reported mismatches, and about one in a dozen hung."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import polars as pl
import pytest

from syspage import replay, schema
from tests.replay_helpers import BUNDLED, QUICK, parse_to, record_strace

RUNS = 10
TIMEOUT_S = 120

# Four threads, each naming itself 40 times: 160 concurrent title writes per pass.
NAMER_C = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/prctl.h>

static void *namer(void *arg)
{
    char name[16];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "w%ld-%d", (long)arg, i);
        prctl(PR_SET_NAME, name, 0, 0, 0);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, namer, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    return 0;
}
"""


def _replay_cli(events, out, *args):
    """Run `syspage replay` in its own session; kill the whole group if it hangs."""
    cmd = [sys.executable, "-m", "syspage", "replay", str(events), "-o", str(out), *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"replay of {events} {' '.join(map(str, args))} hung (> {TIMEOUT_S} s)")
    return proc.returncode, stdout, stderr


def _assert_clean(events, tmp_path, mode, runs, *extra):
    outcomes = []
    for i in range(runs):
        out = tmp_path / f"{mode}-{i}.parquet"
        # --repeat-target 0: the default 10 rounds, without the adaptive ones (more rounds of the
        # same kind, up to 30 s per replay: 10 minutes over RUNS replays for no extra overlap)
        rc, stdout, stderr = _replay_cli(events, out, "--mode", mode, "--repeat-target", "0", *extra)
        assert rc == 0, stderr
        df = schema.REPLAY.read(out)
        title = df.filter(pl.col("call_class") == "prctl(PR_SET_NAME)")
        assert title.height > 0
        # Every title write was read back and compared in every round ...
        assert (title["checked"] > 0).all(), title
        mismatched = df.filter(pl.col("mismatches") > 0)
        outcomes.append((i, mismatched.select("call_class", "impl", "checked", "mismatches").rows(),
                         "differ" in stdout + stderr))
    bad = [o for o in outcomes if o[1] or o[2]]
    # ... and none differed from what PR_GET_NAME returned.
    assert not bad, f"{len(bad)} of {runs} {mode} replays reported mismatches: {bad}"


@pytest.fixture(scope="module")
def redis_events(tmp_path_factory):
    return parse_to(BUNDLED / "redis-benchmark", tmp_path_factory.mktemp("redis") / "events.parquet")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tight", "paced"])
def test_redis_title_writers_never_hang_or_mismatch(redis_events, tmp_path, mode):
    # The default rounds and samples: the timed passes must overlap the check passes' window.
    _assert_clean(redis_events, tmp_path, mode, RUNS)


@pytest.fixture(scope="module")
def namer_events(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("namer")
    (d / "namer.c").write_text(NAMER_C)
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(d / "namer"), str(d / "namer.c")], check=True)
    trace = record_strace("", d / "namer.strace.txt", str(d / "namer"))
    events = parse_to(trace, d / "events.parquet")
    df = pl.read_parquet(events)
    # The trace really has four threads naming themselves.
    names = df.filter(pl.col("syscall") == "prctl")
    assert names.height >= 160 and names["tid"].n_unique() >= 4
    return events


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tight", "paced"])
def test_four_threads_setting_their_names_never_hang_or_mismatch(namer_events, tmp_path, mode):
    _assert_clean(namer_events, tmp_path, mode, RUNS, "--workers", "2", "--samples", "5")


def test_page_only_replay_does_not_claim_a_saving(redis_events, tmp_path):
    """--impl page alone measures no syscall: the saving is "not measured" (null), not 0."""
    res = replay.replay_file(redis_events, tmp_path / "page.parquet", impls=("page",), **QUICK)
    df = schema.REPLAY.read(tmp_path / "page.parquet")
    assert set(df["impl"]) == {"page"}
    measured = df.filter(pl.col("cost_ns_median").is_not_null())
    assert measured.height > 0  # getpid was timed on the page ...
    for col in ("saved_ns_median", "saved_ns_ci_low", "saved_ns_ci_high"):
        assert df[col].null_count() == df.height, df.select("call_class", col)  # ... but no saving
    summary = json.loads((tmp_path / "page.json").read_text())
    assert res.summary["impls"] == ["page"] == summary["impls"]
    for c in summary["classes"]:
        for col in ("saved_ns_median", "saved_ns_ci_low", "saved_ns_ci_high"):
            assert c.get(col) is None, c


@pytest.mark.parametrize("scheme", ["page", "field", "word", "ring", "hybrid"])
def test_concurrent_title_writers_lose_no_counter_increment(scheme):
    """Four threads write the title page flat out. Unserialised (plain load + store on the
    counter), the pre-fix writer lost increments every run here (seq 1,393,884 for
    1,600,000 after 4 x 200,000 writes); an odd leftover makes every reader spin for ever."""
    from syspage.replay import _engine

    r = _engine.title_writers(scheme, threads=4, writes_each=100_000)
    assert r["expected"] == 400_000
    assert r["updates"] == r["expected"], r
    if scheme == "ring":
        assert r["counter"] == r["expected"] + 1, r  # generation 1 is the initial slot
    else:
        assert r["counter"] == 2 * r["expected"], r  # even: no write left open
    assert r["read_retries"] == 0 and r["read_whole"], r
