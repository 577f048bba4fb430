"""How long do the machine's cost states last, and whose are they? (issue 4, repeatability)

Not a benchmark with a target (bench/run.py does not run it): a measurement that decides the
replay's method. Three experiments, one after the other, each a timeline of short batches
(engine.bench_timeline: a batch = N raw getpid system calls and M bare seqlock reads of one
page, ns per call, with the batch's time and CPU):

  long      one process, one page, a batch every INTERVAL for SECONDS, unpinned;
  pinned    the same, batch i pinned to CPU i % ncpu (a state that belongs to one vCPU then
            shows as alternation, a machine-wide one as runs in both);
  fresh     many short processes one after the other (each its own page and placement),
            a few batches each: does a process keep its state for its whole life?

For each: the levels the values fall in, how long the system call stays in its slow state
(runs of consecutive batches), the spread of 1-s medians, and for `fresh` the spread inside
processes against the spread between them. usage:

  .venv/bin/python bench/replay_states.py [--seconds 60] [--interval-ms 50] [-o out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from syspage.replay import engine as engine_mod
from syspage.replay import hostload, stats

N_SYS, N_PAGE = 1000, 100_000   # ~0.1 ms of getpid, ~0.07 ms of page reads per batch


def timeline(seconds: float, interval_ms: float, cpus: list[int] | None = None) -> dict:
    engine = engine_mod.load()
    batches = max(1, int(seconds * 1000 / interval_ms))
    before = hostload.snapshot()
    r = engine.bench_timeline(batches=batches, interval_ms=interval_ms, n_sys=N_SYS, n_page=N_PAGE, cpus=cpus)
    after = hostload.snapshot()
    others = hostload.others_fraction(before, after)
    r["others_cpu_pct"] = None if others is None else round(100 * others, 1)
    return r


def fresh(seconds: float, batches: int, interval_ms: float) -> list[dict]:
    """Processes one after the other for `seconds`, each `batches` batches: per process its values."""
    out = []
    t0 = time.monotonic()
    code = ("import json,sys; from syspage.replay import engine; "
            f"print(json.dumps(engine.load().bench_timeline(batches={batches}, interval_ms={interval_ms}, "
            f"n_sys={N_SYS}, n_page={N_PAGE})))")
    while time.monotonic() - t0 < seconds:
        start = time.monotonic() - t0
        res = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                        text=True).stdout)
        res["start_s"] = start
        out.append(res)
    return out


def slow_runs(values: list[float], interval_ms: float, factor: float = 1.12) -> dict:
    """Batches above factor x the 10th percentile are 'slow'; lengths (ms) of consecutive runs."""
    s = sorted(values)
    floor = s[len(s) // 10]
    slow = [v > factor * floor for v in values]
    runs: dict[bool, list[int]] = {True: [], False: []}
    n = 1
    for a, b in zip(slow, slow[1:]):
        if a == b:
            n += 1
        else:
            runs[a].append(n)
            n = 1
    runs[slow[-1]].append(n)

    def desc(lens: list[int]) -> dict:
        if not lens:
            return {"count": 0}
        ms = sorted(x * interval_ms for x in lens)
        return {"count": len(ms), "median_ms": stats.median(ms), "max_ms": ms[-1],
                "p90_ms": ms[int(0.9 * (len(ms) - 1))]}

    return {"floor_ns": round(floor, 2), "threshold_ns": round(factor * floor, 2),
            "slow_fraction": round(sum(slow) / len(slow), 3), "slow_runs": desc(runs[True]),
            "fast_runs": desc(runs[False])}


def window_medians(t_ns: list[float], values: list[float], window_s: float = 1.0) -> list[float]:
    by: dict[int, list[float]] = {}
    for t, v in zip(t_ns, values):
        by.setdefault(int(t / 1e9 / window_s), []).append(v)
    return [stats.median(v) for _, v in sorted(by.items())]


def levels(values: list[float], step: float) -> dict[str, int]:
    """How many values fall near each multiple of `step` (e.g. page reads in 1/3-cycle steps)."""
    out: dict[str, int] = {}
    for v in values:
        key = f"{round(v / step) * step:.2f}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def describe_timeline(r: dict, interval_ms: float) -> dict:
    sys_ns, page_ns, cpu = r["syscall_ns"], r["page_ns"], r["cpu"]
    w_sys, w_page = window_medians(r["t_ns"], sys_ns), window_medians(r["t_ns"], page_ns)
    by_cpu = {}
    for c in sorted(set(cpu)):
        vs = [v for v, k in zip(sys_ns, cpu) if k == c]
        vp = [v for v, k in zip(page_ns, cpu) if k == c]
        by_cpu[str(c)] = {"batches": len(vs), "syscall_median": round(stats.median(vs), 2),
                          "page_median": round(stats.median(vp), 3)}
    return {
        "batches": len(sys_ns), "others_cpu_pct": r.get("others_cpu_pct"),
        "syscall_median": round(stats.median(sys_ns), 2), "page_median": round(stats.median(page_ns), 3),
        "syscall_state": slow_runs(sys_ns, interval_ms),
        "page_levels": levels(page_ns, 0.0833),   # ~1/3 cycle at ~4 GHz
        "syscall_1s_medians": [round(v, 1) for v in w_sys],
        "page_1s_medians": [round(v, 3) for v in w_page],
        "syscall_1s_spread": round(stats.spread(w_sys), 4), "page_1s_spread": round(stats.spread(w_page), 4),
        "by_cpu": by_cpu,
    }


def describe_fresh(procs: list[dict]) -> dict:
    med_sys = [stats.median(p["syscall_ns"]) for p in procs]
    med_page = [stats.median(p["page_ns"]) for p in procs]
    inside_sys = [stats.spread(p["syscall_ns"]) for p in procs]
    inside_page = [stats.spread(p["page_ns"]) for p in procs]
    return {
        "processes": len(procs),
        "per_process": [{"start_s": round(p["start_s"], 2), "syscall": round(a, 1), "page": round(b, 3),
                         "cpus": sorted(set(p["cpu"]))} for p, a, b in zip(procs, med_sys, med_page)],
        "between_process_spread": {"syscall": round(stats.spread(med_sys), 4), "page": round(stats.spread(med_page), 4)},
        "inside_process_spread_median": {"syscall": round(stats.median(inside_sys), 4),
                                         "page": round(stats.median(inside_page), 4)},
        "page_levels": levels(med_page, 0.0833),
        "syscall_state": slow_runs(med_sys, 1.0),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each experiment (60)")
    ap.add_argument("--interval-ms", type=float, default=50.0, help="time between batches (50)")
    ap.add_argument("--only", choices=("long", "pinned", "fresh"), action="append")
    ap.add_argument("-o", "--output", help="write the raw timelines and the summary as JSON")
    args = ap.parse_args(argv)
    which = args.only or ["long", "pinned", "fresh"]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    raw, summary = {}, {"started": started, "load_before": os.getloadavg()}
    if "long" in which:
        raw["long"] = timeline(args.seconds, args.interval_ms)
        summary["long"] = describe_timeline(raw["long"], args.interval_ms)
    if "pinned" in which:
        cpus = sorted(os.sched_getaffinity(0))
        raw["pinned"] = timeline(args.seconds, args.interval_ms, cpus)
        summary["pinned"] = describe_timeline(raw["pinned"], args.interval_ms)
    if "fresh" in which:
        raw["fresh"] = fresh(args.seconds, batches=5, interval_ms=20.0)
        summary["fresh"] = describe_fresh(raw["fresh"])
    summary["load_after"] = os.getloadavg()
    if args.output:
        with open(args.output, "w") as fh:
            json.dump({"summary": summary, "raw": raw}, fh)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
