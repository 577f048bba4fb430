"""The locking schemes of the shared pages, measured (issue 8).

Three things, all run in the C engine (replay/engine/sp_torture.c) with the GIL released:

* ``run_stress``: the writer-stress sweep. A writer thread plays the kernel and updates the
  process page (ppid and uid in one update) and the system page (hostname) in turn, at each
  target rate, while 1 or 2 reader threads read back to back in timed batches; per scheme,
  rate, reader count and read operation it gives the reader cost per read (median, MAD, 95 %
  interval, tail), the retries and the writer's cost per update: a ``locking/1`` table.
* ``run_torture``: the same harness with the writer flat out and every read checked against
  the writer's pattern: torn values and mixed two-field snapshots are counted.
* ``run_hostile``: the kernel-side bounded reader of the user-written title page against a
  hostile writer (flips the counter, never finishes a write, writes no terminator, writes
  garbage over the header).

The schemes, their memory-ordering argument and the measured figures: docs/locking.md.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import polars as pl

from syspage import machine
from syspage.errors import ReplayError
from syspage import schema
from syspage.schema import LOCKING

SCHEMES = ("page", "field", "word", "ring", "hybrid")
# The schemes whose multi-field reads are one snapshot (field and word read each field alone).
SNAPSHOT_SCHEMES = schema.LOCKING_SNAPSHOT_SCHEMES
RECOMMENDED = "hybrid"  # what bench/bench_locking.py's data supports on this machine: docs/locking.md
OPS = ("word", "snapshot", "string")
DEFAULT_RATES = (0, 1_000, 10_000, 100_000, 1_000_000)
DEFAULT_READERS = (1, 2)
HOSTILE_MODES = ("well_behaved", "never_finish", "flip", "no_terminator", "garbage", "bad_header")

_OP_PAGE = {"word": ("proc_ro", "ppid"), "snapshot": ("proc_ro", "ppid+uid"), "string": ("sys_ro", "hostname")}
UNSTABLE_RATIO = 0.10   # MAD / median above this: flag, as pyperf warns on spread
TAIL_QUANTILE = 0.99

METHOD = (
    "One writer thread (the kernel side) updates proc_ro (ppid+uid, one update) and sys_ro (hostname) in turn at "
    "the target rate (deadline-paced: sleep, then spin the last 60 us); 1 or 2 reader threads read back to back in "
    "batches of >= 20 us (calibrated with no writer), each batch timed with CLOCK_MONOTONIC, the median clock-pair "
    "overhead subtracted, divided by the batch's reads. Threads pinned: reader i on CPU i, writer on the last CPU. "
    "Schemes interleaved round-robin within every rate/reader/op cell over several rounds; every batch kept. "
    "Writer cost: each update timed alone, overhead subtracted. One read per 64 checked against the writer's pattern."
)


def _engine():
    from syspage.replay.engine import load

    return load()


# --- statistics ------------------------------------------------------------------------
def _median(s: Sequence[float]) -> float:
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def _median_ci(s: Sequence[float]) -> tuple[float, float]:
    """Distribution-free 95 % interval of the median from order statistics (s sorted).

    The count of samples below the median is Binomial(n, 1/2); for n >= 30 its normal
    approximation gives the ranks, below that the exact binomial does.
    """
    n = len(s)
    if n < 6:
        return s[0], s[-1]
    if n >= 30:
        k = int(math.floor(n / 2.0 - 1.96 * math.sqrt(n) / 2.0))
    else:
        k = 0
        for j in range(n // 2):
            tail = sum(math.comb(n, i) for i in range(j + 1)) / 2.0 ** n
            if 1.0 - 2.0 * tail >= 0.95:
                k = j
            else:
                break
    k = max(0, min(k, n - 1))
    return s[k], s[n - 1 - k]


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "mad": None, "ci_low": None, "ci_high": None, "tail": None}
    s = sorted(values)
    med = _median(s)
    mad = _median(sorted(abs(v - med) for v in s))
    lo, hi = _median_ci(s)
    tail = s[min(len(s) - 1, int(math.ceil(TAIL_QUANTILE * len(s))) - 1)]
    return {"median": med, "mad": mad, "ci_low": lo, "ci_high": hi, "tail": tail}


# --- the sweep -------------------------------------------------------------------------
def _check_names(schemes: Iterable[str], ops: Iterable[str]) -> None:
    for s in schemes:
        if s not in SCHEMES:
            raise ReplayError(f"unknown locking scheme {s!r}; choose from {', '.join(SCHEMES)}")
    for o in ops:
        if o not in OPS:
            raise ReplayError(f"unknown stress operation {o!r}; choose from {', '.join(OPS)}")


def _stress_once(eng, scheme: str, op: str, readers: int, rate: float, duration_s: float,
                 check_every: int, pin: bool, long_strings: bool = False) -> dict:
    try:
        return eng.lock_stress(scheme, op, readers, float(rate), float(duration_s),
                               check_every=check_every, pin=pin, long_strings=long_strings)
    except OSError as exc:
        raise ReplayError(f"locking stress run ({scheme}, {op}, {readers} readers, {rate}/s) failed: {exc}") from None


def run_stress(
    schemes: Sequence[str] = SCHEMES,
    rates: Sequence[int] = DEFAULT_RATES,
    readers: Sequence[int] = DEFAULT_READERS,
    duration_s: float = 1.0,
    ops: Sequence[str] = OPS,
    rounds: int = 4,
    check_every: int = 64,
    pin: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> pl.DataFrame:
    """The writer-stress sweep as a locking/1 table (one row per scheme, readers, rate, op).

    ``duration_s`` is the measuring time of one cell per scheme, split over ``rounds``
    rounds; within a round the schemes run one after the other in a rotating order, so a
    burst of noise from the rest of the machine lands on every scheme alike.
    """
    _check_names(schemes, ops)
    if duration_s <= 0 or rounds < 1:
        raise ReplayError("run_stress: duration_s must be > 0 and rounds >= 1")
    for r in readers:
        if not 1 <= int(r) <= 64:
            raise ReplayError(f"run_stress: {r} reader threads (1..64)")
    for rate in rates:
        if rate < 0:
            raise ReplayError(f"run_stress: writer rate {rate}/s (0 = no writer, else updates per second)")
    eng = _engine()
    cpus = os.cpu_count() or 1
    cells = [(n, rate, op) for n in readers for rate in rates for op in ops]
    total = len(cells) * len(schemes) * rounds
    done = 0
    acc: dict[tuple, dict] = {}
    slice_s = duration_s / rounds
    for rnd in range(rounds):
        for n, rate, op in cells:
            order = list(schemes[rnd % len(schemes):]) + list(schemes[:rnd % len(schemes)])
            for scheme in order:
                res = _stress_once(eng, scheme, op, int(n), float(rate), slice_s, check_every, pin)
                a = acc.setdefault((scheme, int(n), int(rate), op), {
                    "reads": 0, "retries": 0, "max_retries": 0, "checked": 0, "torn": 0, "mixed": 0,
                    "samples": [], "writer": [], "writer_updates": 0, "writer_time": 0.0,
                    "duration_s": 0.0, "batch_reads": res["batch_reads"],
                })
                for key in ("reads", "retries", "checked", "torn", "mixed", "writer_updates"):
                    a[key] += res[key]
                a["max_retries"] = max(a["max_retries"], res["max_retries"])
                a["samples"].extend(res["samples_ns"])
                # Updates alternate: odd n (even index) is the proc_ro ppid+uid update, even n
                # the sys_ro hostname update. Each row reports the update of the page it reads.
                w = res["writer_ns"]
                a["writer"].extend(w[1::2] if op == "string" else w[0::2])
                if res["rate_per_s"] > 0:
                    a["writer_time"] += res["writer_updates"] / res["rate_per_s"]
                a["duration_s"] += res["duration_s"]
                a["batch_reads"] = max(a["batch_reads"], res["batch_reads"])
                done += 1
                if progress:
                    progress(done, total)
    rows = []
    for (scheme, n, rate, op), a in acc.items():
        rs = _summary(a["samples"])
        ws = _summary(a["writer"])
        med = rs["median"]
        page, fields = _OP_PAGE[op]
        rows.append({
            "scheme": scheme, "readers": n, "rate_target_per_s": rate,
            "rate_per_s": a["writer_updates"] / a["writer_time"] if a["writer_time"] > 0 else 0.0,
            "op": op, "page": page, "fields": fields,
            "reads": a["reads"], "batch_reads": a["batch_reads"], "samples": len(a["samples"]),
            "reader_ns_median": med, "reader_ns_ci_low": rs["ci_low"], "reader_ns_ci_high": rs["ci_high"],
            "reader_ns_mad": rs["mad"], "reader_ns_tail": rs["tail"],
            "retries": a["retries"],
            "retries_per_mread": a["retries"] / a["reads"] * 1e6 if a["reads"] else 0.0,
            "max_retries": a["max_retries"], "checked": a["checked"], "torn": a["torn"], "mixed": a["mixed"],
            "writer_updates": a["writer_updates"],
            "writer_ns_median": ws["median"] if rate else None, "writer_ns_mad": ws["mad"] if rate else None,
            "duration_s": a["duration_s"], "cpus": cpus, "oversubscribed": n + (1 if rate else 0) > cpus,
            "unstable": bool(med and rs["mad"] is not None and rs["mad"] / med > UNSTABLE_RATIO),
            "raw_ns_json": json.dumps([round(v, 4) for v in a["samples"]]),
        })
    order = {s: i for i, s in enumerate(SCHEMES)}
    df = LOCKING.conform(pl.DataFrame(rows, infer_schema_length=None))
    return df.sort([pl.col("readers"), pl.col("rate_target_per_s"), pl.col("op"),
                    pl.col("scheme").replace_strict(order, return_dtype=pl.Int64)])


def write_stress(df: pl.DataFrame, path: str | Path) -> Path:
    """Write a locking/1 table with the machine and the method in its metadata."""
    desc = machine.describe()
    eng = _engine()
    return LOCKING.write(df, path, extra_metadata={
        "host": desc["host"], "cpu": desc["cpu_model"], "kernel": desc["kernel"],
        "mitigations": json.dumps(desc["mitigations"]), "method": METHOD,
        "timer_overhead_ns": eng.lock_timer_overhead_ns(), "engine_version": eng.ENGINE_VERSION,
        "syspage_version": desc["syspage"],
    })


# --- torture and hostile title writer -----------------------------------------------------
def run_torture(schemes: Sequence[str] = SCHEMES, ops: Sequence[str] = OPS, readers: int = 1,
                duration_s: float = 0.5, pin: bool = True) -> list[dict]:
    """Writer flat out, every read checked, hostnames of 1 to 250 bytes (a long copy is a wide
    window for a tear). One dict per scheme and op (counts, no timings)."""
    _check_names(schemes, ops)
    eng = _engine()
    out = []
    for scheme in schemes:
        for op in ops:
            res = _stress_once(eng, scheme, op, readers, -1.0, duration_s, 1, pin, long_strings=True)
            out.append({k: v for k, v in res.items() if k not in ("samples_ns", "writer_ns")})
    return out


def run_hostile(schemes: Sequence[str] = SCHEMES, modes: Sequence[str] = HOSTILE_MODES,
                max_retries: int = 8, calls: int = 20_000, outsz: int = 4096) -> list[dict]:
    """The bounded kernel-side title read against each hostile writer. One dict per scheme and mode."""
    _check_names(schemes, ())
    eng = _engine()
    out = []
    for scheme in schemes:
        for mode in modes:
            if mode not in HOSTILE_MODES:
                raise ReplayError(f"unknown hostile mode {mode!r}; choose from {', '.join(HOSTILE_MODES)}")
            try:
                res = eng.title_hostile(scheme, mode, max_retries=max_retries, calls=calls, outsz=outsz)
            except OSError as exc:
                raise ReplayError(f"hostile title run ({scheme}, {mode}) failed: {exc}") from None
            res["last"] = res["last"].decode("latin-1")
            out.append(res)
    return out
