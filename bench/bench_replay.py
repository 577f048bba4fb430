"""Replay engine benchmark (issue 4): in one run, side by side,

  A. a bare seqlock read loop (sp_page.h's reader on the kernel side's real page, nothing else);
  B. the engine replaying an all-page plan (one thread; runs of getpid, getppid, getuid, uname);
  C. the engine replaying the same plan through the system calls;
  D. an independent syscall microbenchmark (raw syscall(2) in a C loop, and `perf bench syscall
     basic` when perf is installed);
  E. separate full `syspage replay` runs (each its own process) of the bundled real
     python-logging trace, for the repeatability of the per-class medians: (max - min) / median
     of each class's median across the runs, every class reported, with the steal time, load and
     runnable tasks each run saw (replay/hostload.py); the CLI's default (adaptive rounds: more
     worker rounds while a class is predicted above 3 %, within 30 s) and the same with a 150-s
     budget (--max-seconds 150) alternate, so both are measured in the same machine states; per
     class the spread each run predicted against the one the runs showed; beside each run's
     medians its machine reference (a raw getpid loop and the bare page-read loop timed in every
     sample) and each class's cost over it.

A/B/C/D are interleaved in every round (several rounds, several fresh processes for B/C),
so a noisy neighbour hits all of them alike. Targets (issue 4): engine page replay <= 1.5x
the bare loop per call; engine syscall cost within 10 % of the microbenchmark; per-class
medians repeat within 3 % across runs: judged on the 150-s budget (what a user who asks for
repeatable figures runs; the default's 30 s is reported beside it) and on each class's cost over
the machine reference of its own samples (the shared VM's own speed moves 1-5 % between runs,
which no replay can remove; the raw medians and the reference's own spread are reported beside).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from syspage.replay import engine as engine_mod
from syspage.replay import hostload
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
    return stats.spread(values)


# The replay's method and the one before it, run alternately in the same bench (A B / B A per pair),
# so the repeatability of each is measured in the same machine states.
# The judged variant: the budget the one-call classes of the logging trace need (bench/replay_budget.py,
# 15:41-15:58 UTC: ~1,000 rounds brought every class within 3 % over the reference, 200 did not).
JUDGED = "150 s budget"
VARIANTS = {
    "default (30 s budget)": [],
    JUDGED: ["--max-seconds", "150"],
}
QUICK_VARIANTS = {"default (30 s budget)": ["--max-seconds", "5"], JUDGED: ["--max-seconds", "10"]}


def _cli_replay_runs(n_runs: int, quiet_wait_s: float, variants: dict[str, list[str]] = VARIANTS) -> list[dict]:
    """n_runs separate `syspage replay` processes of the bundled logging trace per variant.

    Variants alternate A B / B A. Returns per run: the variant, the replay/1 rows that have a cost,
    its host_load summary, its tracers and the run's wall time. Runs are sequential: two at once
    would measure each other. Before each pair it waits (up to quiet_wait_s) for a second in which
    other jobs kept the CPUs at most 10 % busy: that picks when to measure, never which runs to
    keep, and what it found is recorded with the run.
    """
    cli = [sys.executable, "-m", "syspage"]
    runs = []
    names = list(variants)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        events = Path(tmp) / "events.parquet"
        subprocess.run(cli + ["parse", str(REPO / "data" / "linux" / "python-logging"), "-o", str(events)],
                       check=True, capture_output=True, text=True)
        for i in range(n_runs):
            quiet = hostload.wait_for_quiet(timeout_s=quiet_wait_s) if quiet_wait_s > 0 else None
            for name in (names if i % 2 == 0 else names[::-1]):
                out = Path(tmp) / f"replay{i}.parquet"
                t0 = time.perf_counter()
                subprocess.run(cli + ["replay", str(events), "-o", str(out)] + variants[name], check=True,
                               capture_output=True, text=True)
                seconds = time.perf_counter() - t0
                summary = json.loads(out.with_suffix(".json").read_text())
                table = pl.read_parquet(out).filter(pl.col("cost_ns_median").is_not_null())
                predicted = {(c["call_class"], impl): (c[impl].get("expected_spread_5_runs"),
                                                       c[impl].get("predicted_spread_5_runs"))
                             for c in summary["classes"] for impl in ("syscall", "page") if c.get(impl)}
                over_reference = {(c["call_class"], impl): c[impl].get("cost_over_reference")
                                  for c in summary["classes"] for impl in ("syscall", "page") if c.get(impl)}
                runs.append({"variant": name, "pair": i, "rows": table.to_dicts(), "predicted": predicted,
                             "over_reference": over_reference, "reference": summary.get("reference") or {},
                             "adaptive": {k: v for k, v in (summary.get("adaptive") or {}).items()
                                          if k in ("rounds", "stop_reason", "budget_hit")},
                             "host_load": summary.get("host_load") or {},
                             "tracers_running": summary.get("tracers_running", []), "seconds": seconds,
                             "quiet_wait": quiet, "utc": time.strftime("%H:%M:%S", time.gmtime()),
                             "workers": int(summary["metadata"]["workers"]),
                             "samples": int(summary["metadata"]["samples_per_worker"])})
    return runs


def _repeatability(runs: list[dict]) -> tuple[list[dict], dict]:
    """Rows per variant, class and implementation; and per variant its worst spreads."""
    rows, worst = [], {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        repeats: dict[tuple[str, str], list[float]] = {}
        worker_spread: dict[tuple[str, str], list] = {}
        med_of_wmed: dict[tuple[str, str], list[float]] = {}   # the alternative estimator, for comparison
        calls: dict[str, int] = {}
        for run_ in mine:
            for row in run_["rows"]:
                key = (row["call_class"], row["impl"])
                repeats.setdefault(key, []).append(row["cost_ns_median"])
                wm = _worker_medians(row, run_["workers"], run_["samples"])
                worker_spread.setdefault(key, []).append(_spread(wm) if len(wm) > 1 else None)
                if wm:
                    med_of_wmed.setdefault(key, []).append(stats.median(wm))
                calls[row["call_class"]] = row["calls"]
        relative = {key: [r["over_reference"].get(key) for r in mine] for key in repeats}
        relative = {key: [v for v in vals if v is not None] for key, vals in relative.items()}
        for (c, impl), vals in sorted(repeats.items(), key=lambda kv: (-calls[kv[0][0]], kv[0])):
            # calibration: what each run's own workers predicted for 5 runs, against what 5 runs showed
            expected = [r["predicted"].get((c, impl), (None, None))[0] for r in mine]
            expected = [v for v in expected if v is not None]
            exp_med = stats.median(expected) if expected else None
            rows.append({
                "expected_spread_median_of_runs": exp_med,
                "actual_over_expected": _spread(vals) / exp_med if exp_med else None,"class": f"repeat [{variant}]: {c} ({impl}), python-logging trace, {calls[c]} calls per pass",
                         "variant": variant, "medians_ns": [round(v, 3) for v in vals], "spread": _spread(vals),
                         "met": _spread(vals) <= 0.03,
                         # the same runs, each class's cost over its own samples' machine reference
                         "over_reference": [round(v, 5) for v in relative[(c, impl)]],
                         "spread_over_reference": (_spread(relative[(c, impl)])
                                                   if len(relative[(c, impl)]) == len(vals) else None),
                         # pyperf-style alternative: each run's median of its per-worker medians
                         "spread_of_median_of_worker_medians": _spread(med_of_wmed.get((c, impl), [])),
                         "worker_median_spread_per_run": [None if v is None else round(v, 4)
                                                          for v in worker_spread[(c, impl)]]})
        big = [_spread(v) for k, v in repeats.items() if calls[k[0]] >= 1000]
        key = max(repeats, key=lambda k: _spread(repeats[k])) if repeats else None
        ratios = [r["actual_over_expected"] for r in rows if r["variant"] == variant and r["actual_over_expected"]]
        rel_spreads = {k: _spread(v) for k, v in relative.items() if len(v) == len(mine)}
        key_rel = max(rel_spreads, key=rel_spreads.get) if rel_spreads else None
        reference = {kind: [r["reference"][kind]["ns_median"] for r in mine if r["reference"].get(kind)]
                     for kind in ("syscall", "page")}
        worst[variant] = {"all": _spread(repeats[key]) if key else float("nan"), "key": key,
                          "big": max(big) if big else float("nan"),
                          "seconds": stats.median([r["seconds"] for r in mine]), "runs": len(mine),
                          "calibration": sorted(round(v, 2) for v in ratios),
                          "rounds": [r["adaptive"].get("rounds") for r in mine],
                          "all_rel": rel_spreads[key_rel] if key_rel else float("nan"), "key_rel": key_rel,
                          "big_rel": max((v for k, v in rel_spreads.items() if calls[k[0]] >= 1000), default=float("nan")),
                          "reference": {k: [round(x, 4) for x in v] for k, v in reference.items()},
                          "reference_spread": {k: _spread(v) if len(v) == len(mine) else None
                                               for k, v in reference.items()}}
    return rows, worst


def _worker_medians(row: dict, workers: int, samples: int) -> list[float]:
    """The median of each worker round's samples (raw_ns_json is worker-major)."""
    raw = json.loads(row["raw_ns_json"])
    out = []
    for w in range(workers):
        vals = [v for v in raw[w * samples:(w + 1) * samples] if v is not None]
        if vals:
            out.append(stats.median(vals))
    return out


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

    # E: repeatability of separate full `syspage replay` runs of a real trace (issue 4's target),
    # the replay's default budget and the judged one alternated in the same bench
    n_runs = 3 if quick else 5
    # a few minutes at most: up to 30 s per pair waiting for a quiet second (0 in quick mode)
    runs = _cli_replay_runs(n_runs, quiet_wait_s=0.0 if quick else 30.0,
                            variants=QUICK_VARIANTS if quick else VARIANTS)
    repeat_rows, worst = _repeatability(runs)
    rows.extend(repeat_rows)
    host = [{"run": i, "variant": r["variant"], "pair": r["pair"], "utc": r["utc"], "seconds": round(r["seconds"], 2),
             "tracers_running": r["tracers_running"], "quiet_wait": r["quiet_wait"],
             **{k: v for k, v in r["host_load"].items() if k != "rounds"}} for i, r in enumerate(runs)]
    rows.append({"class": "repeat: host during each run (steal, load, runnable tasks, tracers)", "runs": host})

    words = [r for r in rows if r.get("page_over_bare") is not None]
    worst_bare = max(r["page_over_bare"] for r in words)
    worst_micro = max(abs(r["engine_vs_microbench"]) for r in rows if r.get("engine_vs_microbench") is not None)
    getpid = next(r for r in rows if r["class"] == "getpid")
    steal_max = max((h.get("steal_pct_max") or 0.0) for h in host) if host else None
    load_max = max((h.get("load_1min_max") or 0.0) for h in host) if host else None
    others_max = max((h.get("others_cpu_pct_max") or 0.0) for h in host) if host else None
    n_quiet = sum(1 for r in runs if r["variant"] == JUDGED and (r["quiet_wait"] or {}).get("quiet"))
    bare_ci = getpid["bare_loop_ci"]
    page_ci = getpid["engine_page_ci"]
    targets = [
        {"name": "engine page replay / bare seqlock loop, per call (worst class)", "target": "<= 1.5",
         "value": round(worst_bare, 3), "met": worst_bare <= 1.5},
        {"name": "engine syscall cost vs raw-syscall microbenchmark (worst class)", "target": "within 10%",
         "value": f"{worst_micro:.1%}", "met": worst_micro <= 0.10},
        *[t for variant, w in worst.items() for t in (
            {"name": f"[{variant}] per-class cost over the machine reference of its own samples across {w['runs']} "
                     "separate `syspage replay` runs, every class (worst (max-min)/median)",
             "target": "<= 3%" if variant == JUDGED else "report",
             "value": (f"{w['all_rel']:.1%} ({w['key_rel'][0]} {w['key_rel'][1]}; classes with >= 1000 calls per "
                       f"pass: {w['big_rel']:.1%}; steal <= {steal_max}%, load <= {load_max}, other jobs <= "
                       f"{others_max}% of the CPUs; {n_quiet}/{n_runs} pairs started after a quiet second)")
                      if w["key_rel"] else "n/a",
             "met": (w["all_rel"] <= 0.03) if variant == JUDGED else True},
            {"name": f"[{variant}] per-class medians (ns) across the same runs, every class (worst (max-min)/median)",
             "target": "report (the machine's own move is the next row)",
             "value": (f"{w['all']:.1%} ({w['key'][0]} {w['key'][1]}); classes with >= 1000 calls per pass: "
                       f"{w['big']:.1%}") if w["key"] else "n/a", "met": True},
            {"name": f"[{variant}] the machine reference across the same runs (raw getpid loop; bare page read), "
                     "(max-min)/median of the runs' medians", "target": "report",
             "value": (f"{w['reference_spread']['syscall']:.1%} ({w['reference']['syscall']} ns); "
                       f"{w['reference_spread']['page']:.1%} ({w['reference']['page']} ns)")
                      if w["reference_spread"].get("syscall") is not None and w["reference_spread"].get("page") is not None
                      else "n/a", "met": True},
            {"name": f"[{variant}] `syspage replay` wall time per run (median)", "target": "report",
             "value": f"{w['seconds']:.2f} s (worker rounds per run: {w['rounds']})", "met": True},
            {"name": f"[{variant}] calibration: actual 5-run spread / expected spread (median over the runs' "
                     "own estimates), per class and implementation, sorted", "target": "report (<= 2 = the safety factor covers it)",
             "value": w["calibration"], "met": True},
        )],
        {"name": "engine page replay of getpid resolved to +-0.2 ns (95% CI half-width)", "target": "<= 0.2 ns",
         "value": round((page_ci[1] - page_ci[0]) / 2, 3), "met": (page_ci[1] - page_ci[0]) / 2 <= 0.2},
        {"name": "bare loop getpid read, 95% CI half-width", "target": "report",
         "value": round((bare_ci[1] - bare_ci[0]) / 2, 3), "met": True},
        {"name": "getpid syscall / page (engine)", "target": "report", "value": round(getpid["ratio_syscall_over_page"], 1),
         "met": True},
    ]
    return {
        "tracers_running": runner_mod.tracers_running(),
        "repeat_runs": host,
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
            f"{n_runs} pairs of separate `syspage replay` processes of data/linux/python-logging, each pair "
            "the default method (adaptive rounds: 10 worker rounds, then more while a class's predicted spread of 5 runs' "
            "medians, 2x the expected one, is above 3 %, within a 30 s budget) and the same with a 150 s budget "
            "(--max-seconds 150; the judged one), alternated A B / B A, one after the "
            "other, each pair started after a second with the CPUs <= 10 % busy (waiting up to 30 s; "
            "recorded as quiet_wait); per variant, class "
            "and implementation (max - min) / median of the runs' medians, with the steal time, load, "
            "runnable tasks and the CPUs the threads ran on each run recorded (host_load) and the spread of the per-worker medians inside "
            "each run (process-to-process noise); beside them each run's machine reference (a raw getpid loop and "
            "the bare page-read loop timed in every sample by the replay itself) and each class's cost over the "
            "reference of its own samples, whose spread across the runs says how much of the medians' spread was "
            "the machine's speed moving: the target is judged on that, for the 150 s budget. The machine "
            "is shared (see machine metadata): absolute costs move with its load, ratios measured side "
            "by side are the figures to trust."
        ),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
