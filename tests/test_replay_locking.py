"""The shared pages' layout and the four locking schemes (issue 8): layout, round trips,
the torture test (short here, long in bench/bench_locking.py), the stress sweep's table,
and the kernel-side title reader against hostile writers (run in a child with a timeout)."""
from __future__ import annotations

import json
import mmap
import struct
import subprocess
import sys
import tomllib

import pytest

from syspage.replay import locking
from syspage.schema import LOCKING

from conftest import REPO

eng = pytest.importorskip("syspage.replay._engine", reason="the C engine is not built (pip install -e .)")

SCHEMES = locking.SCHEMES
HEADER = struct.Struct("<IHHIBBBBIII")  # magic version header_size size kind scheme slots flags seq ring_current ring_gen


def _page(kind: str, scheme: str) -> mmap.mmap:
    size = next(r["map_bytes"] for r in eng.page_layout() if r["kind"] == kind and r["scheme"] == scheme)
    buf = mmap.mmap(-1, size)
    eng.page_init(buf, kind, scheme)
    return buf


# --- layout -----------------------------------------------------------------------------
def test_every_catalog_field_is_on_its_page():
    catalog = tomllib.loads((REPO / "syspage" / "catalog.toml").read_text())
    fields = {f["name"]: f for f in eng.page_fields()}
    aliases = {"nodename": "hostname", "release": "osrelease", "ostype": "sysname"}
    for entry in catalog["call"]:
        for name in entry.get("fields", []):
            field = fields[aliases.get(name, name)]
            assert field["page"] == entry["page"], (entry.get("name") or entry.get("names"), name)


def test_layout_sizes_and_header():
    layout = {(r["kind"], r["scheme"]): r for r in eng.page_layout()}
    # Every scheme fits the kernel-written pages into one 4 KiB page, the 4-slot ring included.
    for scheme in SCHEMES:
        assert layout[("proc_ro", scheme)]["map_bytes"] == 4096
        assert layout[("sys_ro", scheme)]["map_bytes"] == 4096
    # The title page holds 2048 bytes of title: four ring slots of it need three pages.
    assert layout[("proc_rw", "ring")]["used_bytes"] > 8192
    assert layout[("proc_rw", "page")]["map_bytes"] == 4096
    buf = _page("sys_ro", "ring")
    magic, version, header_size, size, kind, scheme, slots, flags, seq, current, gen = HEADER.unpack_from(buf)
    assert magic == 0x47505053 and version == eng.PAGE_LAYOUT_VERSION and header_size == 64
    assert size == layout[("sys_ro", "ring")]["used_bytes"]
    assert (kind, scheme, slots, flags) == (1, 3, eng.RING_SLOTS, 1)
    assert (seq, current, gen) == (0, 0, 1)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip_every_field(scheme):
    for field in eng.page_fields():
        buf = _page(field["page"], scheme)
        if field["string"]:
            value = ("v" * (field["size"] + 10)).encode()  # longer than the buffer: cut to size - 1
            eng.page_write(buf, scheme, field["name"], value)
            got, retries = eng.page_read(buf, scheme, field["name"])
            assert got == value[: field["size"] - 1] and retries == 0
            eng.page_write(buf, scheme, field["name"], "short")
            assert eng.page_read(buf, scheme, field["name"])[0] == b"short"
        else:
            eng.page_write(buf, scheme, field["name"], 0xDEADBEEF00000000 + field["offset"])
            assert eng.page_read(buf, scheme, field["name"]) == (0xDEADBEEF00000000 + field["offset"], 0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_writes_move_the_counter_the_scheme_uses(scheme):
    buf = _page("proc_ro", scheme)
    eng.page_write(buf, scheme, "ppid", 7)
    _, _, _, _, _, _, _, _, seq, current, gen = HEADER.unpack_from(buf)
    if scheme in ("page", "hybrid"):
        assert seq == 2                     # one write: odd then even again
    elif scheme == "ring":
        assert (current, gen, seq) == (1, 2, 0)  # the next slot, published with the next generation
    else:
        assert seq == 0                     # field: the field's own counter; word: no counter for words


# --- torture --------------------------------------------------------------------------------
def test_torture_no_scheme_ever_tears():
    results = locking.run_torture(duration_s=0.3)
    assert len(results) == len(SCHEMES) * len(locking.OPS)
    for r in results:
        assert r["checked"] > 1000 and r["writer_updates"] > 1000, r
        assert r["torn"] == 0, r
        if r["op"] == "snapshot" and r["scheme"] in ("page", "ring", "hybrid"):
            assert r["mixed"] == 0, r


def test_torture_detects_tearing_without_a_lock():
    """The negative control: the same checker on a reader that ignores the counter finds torn
    hostnames, so a zero above means something."""
    r = eng.lock_stress("page", "string_nolock", 1, -1.0, 1.0, check_every=1, long_strings=True)
    assert r["torn"] > 0, r


def test_word_scheme_gives_no_two_field_snapshot():
    r = eng.lock_stress("word", "snapshot", 1, -1.0, 1.0, check_every=1)
    assert r["torn"] == 0 and r["mixed"] > 0, r


# --- the stress sweep's table ---------------------------------------------------------------
def test_run_stress_table(tmp_path):
    seen = []
    df = locking.run_stress(rates=(0, 10_000), readers=(1, 2), duration_s=0.04, rounds=1,
                            progress=lambda d, t: seen.append((d, t)))
    LOCKING.validate(df)
    assert df.height == len(SCHEMES) * 2 * 2 * len(locking.OPS)
    assert seen[-1] == (df.height, df.height)
    assert (df["torn"] == 0).all() and (df["reads"] > 0).all() and (df["reader_ns_median"] > 0).all()
    idle = df.filter(df["rate_target_per_s"] == 0)
    assert idle["writer_ns_median"].is_null().all() and (idle["writer_updates"] == 0).all()
    busy = df.filter(df["rate_target_per_s"] == 10_000)
    assert (busy["writer_updates"] > 0).all()
    # each row times the updates of the page it reads (every other update): at least one of them
    assert busy.filter(busy["writer_updates"] >= 2)["writer_ns_median"].is_not_null().all()
    assert (df["reader_ns_ci_low"] <= df["reader_ns_median"]).all()
    assert (df["reader_ns_median"] <= df["reader_ns_ci_high"]).all()
    assert all(len(json.loads(raw)) == n for raw, n in zip(df["raw_ns_json"], df["samples"]))
    path = locking.write_stress(df, tmp_path / "locking.parquet")
    assert LOCKING.read(path).height == df.height


def test_run_stress_rejects_unknown_scheme():
    from syspage.errors import ReplayError

    with pytest.raises(ReplayError, match="unknown locking scheme 'mutex'"):
        locking.run_stress(schemes=("mutex",), duration_s=0.01)


# --- the kernel-side title reader ------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_title_read_from_page_and_fallback(scheme):
    buf = _page("proc_rw", scheme)
    empty = eng.title_read(buf, scheme, fallback="postgres")
    assert empty["title"] == b"[postgres]" and empty["source"] == "fallback"
    eng.page_write(buf, scheme, "title", "postgres: checkpointer")
    got = eng.title_read(buf, scheme, fallback="postgres")
    assert got["title"] == b"postgres: checkpointer" and got["source"] == "page" and got["retries"] == 0
    cut = eng.title_read(buf, scheme, outsz=9)
    assert cut["title"] == b"postgres" and cut["len"] == 8


def test_title_read_gives_up_on_an_odd_counter():
    buf = _page("proc_rw", "page")
    eng.page_write(buf, "page", "title", "half written")
    struct.pack_into("<I", buf, 16, 3)  # the process began a write and never finished it
    got = eng.title_read(buf, "page", max_retries=5, fallback="sshd")
    assert got == {"title": b"[sshd]", "source": "fallback", "retries": 5, "len": 6,
                   "unterminated": False, "bad_header": False}


def test_title_read_refuses_a_mapping_smaller_than_the_layout():
    small = mmap.mmap(-1, 4096)
    eng.page_init(small, "proc_ro", "ring")  # a valid header, but the title ring needs 3 pages
    got = eng.title_read(small, "ring", fallback="x")
    assert got["bad_header"] and got["title"] == b"[x]"


_HOSTILE_CHILD = """
import json, sys
from syspage.replay import locking
outsz = int(sys.argv[1])
print(json.dumps(locking.run_hostile(calls=3000, max_retries=8, outsz=outsz)))
"""


@pytest.mark.parametrize("outsz", [4096, 100, 1])
def test_hostile_title_writer_never_hangs_overruns_or_leaves_it_unterminated(outsz):
    proc = subprocess.run([sys.executable, "-c", _HOSTILE_CHILD, str(outsz)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = {(r["scheme"], r["mode"]): r for r in json.loads(proc.stdout)}
    assert len(results) == len(SCHEMES) * len(locking.HOSTILE_MODES)
    for (scheme, mode), r in results.items():
        assert r["calls"] == 3000 and r["from_page"] + r["from_fallback"] == 3000, r
        assert r["overruns"] == 0 and r["unterminated_out"] == 0, r
        assert r["max_retries_seen"] <= 8 and r["max_len"] <= outsz - 1, r
        if mode == "never_finish":
            assert r["from_fallback"] == 3000 and r["max_retries_seen"] == 8, r
            assert r["last"] == "[hostile]"[: outsz - 1], r
        if mode == "bad_header":
            assert r["from_fallback"] == 3000 and r["bad_header"] == 3000, r
        if mode == "no_terminator":
            assert r["from_page"] == 3000 and r["unterminated"] == 3000, r
            assert r["max_len"] == min(outsz - 1, 2048), r
        if mode == "well_behaved":
            assert r["torn"] == 0, r


def test_instruction_counts_rank_the_readers():
    """Callgrind's instruction counts (deterministic, unlike time on a shared machine): the lock-free
    word read is the cheapest, the ring pays for its index and generation loads."""
    import importlib.util
    import shutil

    if not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed (tools/debian-packages.txt lists it)")
    spec = importlib.util.spec_from_file_location("bench_locking", REPO / "bench" / "bench_locking.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    counts = bench.instruction_counts()
    assert set(counts) == {(s, o) for s in SCHEMES for o in locking.OPS}
    assert counts[("word", "word")] < counts[("page", "word")] <= counts[("ring", "word")]
    assert counts[("page", "word")] < 30 and counts[("word", "word")] < 10
    assert counts[("page", "snapshot")] < counts[("ring", "snapshot")]
    # hybrid: the word scheme's one-load read, the page scheme's snapshot
    assert counts[("hybrid", "word")] == pytest.approx(counts[("word", "word")], abs=0.5)
    assert counts[("hybrid", "snapshot")] == pytest.approx(counts[("page", "snapshot")], abs=0.5)
