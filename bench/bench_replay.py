"""Replay engine benchmark (issue 4): in one run, side by side,

  A. a bare seqlock read loop (sp_page.h's reader on the kernel side's real page, nothing else);
  B. the engine replaying an all-page plan (one thread; runs of getpid, getppid, getuid, uname);
  C. the engine replaying the same plan through the system calls;
  D. an independent syscall microbenchmark (raw syscall(2) in a C loop, and `perf bench syscall
     basic` when perf is installed);
  E. three full replays (the public replay_events, 3 worker rounds each) of the bundled real
     python-logging trace, for the repeatability of the per-class medians.

A/B/C/D are interleaved in every round (several rounds, several fresh processes for B/C),
so a noisy neighbour hits all of them alike. Targets (issue 4): engine page replay <= 1.5x
the bare loop per call; engine syscall cost within 10 % of the microbenchmark; per-class
medians repeat within 3 % across runs.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import polars as pl

from syspage.replay import engine as engine_mod
from syspage.replay import plan as plan_mod
from syspage.replay import runner as runner_mod
from syspage.replay import stats

NAME = "replay"
REPO = Path(__file__).resolve().parent.parent
WHICH = {"getpid": 0, "getppid": 1, "getuid": 2}


def _all_page_events(n_words: int, n_uname: int) -> pl.DataFrame:
    names = ["getpid"] * n_words + ["getppid"] * n_words + ["getuid"] * n_words + ["uname"] * n_uname
    n = len(names)
    return pl.DataFrame({
        "kind": ["call"] * n, "os": ["linux"] * n, "syscall": names, "args_raw": [""] * n,
        "sysctl_name": [None] * n, "pid": [1] * n, "tid": [1] * n,
        "ts_ns": list(range(0, n * 1000, 1000)), "duration_ns": [100] * n,
    }, schema_overrides={"sysctl_name": pl.String})


def _perf_bench_getppid(loops: int) -> float | None:
    """`perf bench syscall basic`: getppid() in a loop, usecs/op (tools/perf/bench/syscall.c)."""
    if shutil.which("perf") is None:
        return None
    try:
        out = subprocess.run(["perf", "bench", "syscall", "basic", "-l", str(loops)],
                             capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"([\d.]+)\s+usecs/op", out)
    return float(m.group(1)) * 1000.0 if m else None


def _spread(values: list[float]) -> float:
    m = stats.median(values)
    return (max(values) - min(values)) / m if m else float("nan")


def run(quick: bool = False) -> dict:
    engine = engine_mod.load()
    rounds = 3 if quick else 8
    # small runs: a sample of ~0.5 ms (calibrated loops over a ~0.6 ms syscall pass) mostly
    # escapes preemption on a busy machine; the page side is looped to the same length
    n_words, n_uname = 2000, 400
    plan = plan_mod.build(_all_page_events(n_words, n_uname), engine=engine)
    classes = [c.call_class for c in plan.classes]

    bare: dict[str, list[float]] = {k: [] for k in WHICH}
    micro: dict[str, list[float]] = {k: [] for k in WHICH} | {"uname": []}
    eng: dict[str, dict[str, list[float]]] = {impl: {c: [] for c in classes} for impl in ("syscall", "page")}
    perf_ns: list[float] = []
    overheads = []
    paired: dict[str, list[float]] = {}   # per round: engine syscall median / microbench median
    for r in range(rounds):
        round_micro: dict[str, list[float]] = {}
        # A and D: alternated inside one process, 5 values each
        for name, which in list(WHICH.items()) + [("uname", 3)]:
            b = engine.bench_baselines(100000, 7 if quick else 15, which)
            overheads.append(b["timer_overhead_ns"])
            micro[name].extend(b["syscall_loop_ns"])
            round_micro[name] = b["syscall_loop_ns"]
            if name in bare:
                bare[name].extend(b["page_loop_ns"])
        # B and C: the engine, interleaved A/B then B/A inside run_process, a fresh kernel side
        res = engine.run_process(plan.data, 0, samples=10 if quick else 20, warmups=1, min_sample_ns=500_000,
                                 check=(r == 0))
        for ci, c in enumerate(classes):
            cr = res["classes"][ci]
            if r == 0:
                assert cr["mismatches"] == 0, f"{c}: page and syscall values differ"
            for impl in ("syscall", "page"):
                eng[impl][c].extend(cr["samples"].get(impl, []))
            if cr["samples"].get("syscall") and c in round_micro:
                paired.setdefault(c, []).append(
                    stats.median(cr["samples"]["syscall"]) / stats.median(round_micro[c]) - 1.0)
        p = _perf_bench_getppid(20000 if quick else 100000)
        if p is not None:
            perf_ns.append(p)

    rows = []
    for c in classes:
        s, p = stats.summarize(eng["syscall"][c]), stats.summarize(eng["page"][c])
        m = stats.summarize(micro[c])
        row = {
            "class": c,
            "engine_syscall_ns": s.median, "engine_syscall_ci": [s.ci_low, s.ci_high], "engine_syscall_mad": s.mad,
            "engine_page_ns": p.median, "engine_page_ci": [p.ci_low, p.ci_high], "engine_page_mad": p.mad,
            "ratio_syscall_over_page": s.median / p.median if p.median else None,
            "microbench_syscall_ns": m.median, "microbench_ci": [m.ci_low, m.ci_high],
            "engine_vs_microbench": stats.median(paired[c]) if paired.get(c) else None,
            "engine_vs_microbench_per_round": paired.get(c),
            "samples": s.n,
        }
        if c in bare:
            bl = stats.summarize(bare[c])
            row.update({"bare_loop_ns": bl.median, "bare_loop_ci": [bl.ci_low, bl.ci_high], "bare_loop_mad": bl.mad,
                        "page_over_bare": p.median / bl.median if bl.median else None})
        rows.append(row)
    if perf_ns:
        ps = stats.summarize(perf_ns)
        rows.append({"class": "getppid (perf bench syscall basic)", "microbench_syscall_ns": ps.median,
                     "microbench_ci": [ps.ci_low, ps.ci_high], "samples": ps.n})

    # E: repeatability of full replays of a real trace (fresh worker processes each time)
    from syspage import parse, replay

    logging_events = parse.parse_file(REPO / "data" / "linux" / "python-logging").events
    options = replay.Options(workers=2 if quick else 3, samples=10 if quick else 20)
    repeats: dict[tuple[str, str], list[float]] = {}
    calls: dict[str, int] = {}
    for _ in range(3):
        res = replay.replay_events(logging_events, options)
        for row in res.table.filter(pl.col("cost_ns_median").is_not_null()).iter_rows(named=True):
            repeats.setdefault((row["call_class"], row["impl"]), []).append(row["cost_ns_median"])
            calls[row["call_class"]] = row["calls"]
    for (c, impl), vals in sorted(repeats.items()):
        rows.append({"class": f"repeat: {c} ({impl}), python-logging trace, {calls[c]} calls", "medians_ns": vals,
                     "spread": _spread(vals)})
    # Classes with a single call per pass are timed one call at a time (a clock pair each):
    # their medians carry the clock pair's jitter (docs/replay.md "Limits"); the target is
    # for the classes a trace has many of.
    big = {k: v for k, v in repeats.items() if calls[k[0]] >= 1000}

    words = [r for r in rows if r.get("page_over_bare") is not None]
    worst_bare = max(r["page_over_bare"] for r in words)
    worst_micro = max(abs(r["engine_vs_microbench"]) for r in rows if r.get("engine_vs_microbench") is not None)
    getpid = next(r for r in rows if r["class"] == "getpid")
    worst_repeat = max(_spread(v) for v in big.values()) if big else float("nan")
    worst_repeat_all = max(_spread(v) for v in repeats.values()) if repeats else float("nan")
    bare_ci = getpid["bare_loop_ci"]
    page_ci = getpid["engine_page_ci"]
    targets = [
        {"name": "engine page replay / bare seqlock loop, per call (worst class)", "target": "<= 1.5",
         "value": round(worst_bare, 3), "met": worst_bare <= 1.5},
        {"name": "engine syscall cost vs raw-syscall microbenchmark (worst class)", "target": "within 10%",
         "value": f"{worst_micro:.1%}", "met": worst_micro <= 0.10},
        {"name": "per-class medians across 3 full replays, classes with >= 1000 calls (worst (max-min)/median)",
         "target": "<= 3%", "value": f"{worst_repeat:.1%}", "met": worst_repeat <= 0.03},
        {"name": "per-class medians across 3 full replays, every class incl. 1-call classes", "target": "report",
         "value": f"{worst_repeat_all:.1%}", "met": True},
        {"name": "engine page replay of getpid resolved to +-0.2 ns (95% CI half-width)", "target": "<= 0.2 ns",
         "value": round((page_ci[1] - page_ci[0]) / 2, 3), "met": (page_ci[1] - page_ci[0]) / 2 <= 0.2},
        {"name": "bare loop getpid read, 95% CI half-width", "target": "report",
         "value": round((bare_ci[1] - bare_ci[0]) / 2, 3), "met": True},
        {"name": "getpid syscall / page (engine)", "target": "report", "value": round(getpid["ratio_syscall_over_page"], 1),
         "met": True},
    ]
    return {
        "tracers_running": runner_mod.tracers_running(),
        "rows": rows,
        "targets": targets,
        "method": (
            f"{rounds} rounds in one process; in each, the bare page-read loop (100,000 reads) and the raw "
            "syscall loop (2,001 calls) alternate 15 times per class (each timed by one CLOCK_MONOTONIC pair, overhead "
            f"~{stats.median(overheads):.0f} ns subtracted), then the engine replays a one-thread plan of "
            f"{n_words} getpid, getppid, getuid and {n_uname} uname through both implementations "
            "(20 samples each, A/B interleaved, >= 0.5 ms per sample, a fresh kernel-side process), then "
            "the engine-vs-microbenchmark difference is taken per round (paired, so slow load changes "
            "cancel) and its median reported; then "
            "`perf bench syscall basic` (getppid). Medians with order-statistic 95% CIs. Repeatability: "
            "three full replays of data/linux/python-logging (fresh worker processes each). The machine "
            "is shared (see machine metadata): absolute costs move with its load, ratios measured side "
            "by side are the figures to trust."
        ),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
