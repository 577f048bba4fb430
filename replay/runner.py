"""The runner: start the replay processes, gather their samples, make the replay/1 table.

Per worker round (pyperf's worker processes), one replay process per traced process, all
started together (they ran together in the trace); each replays its threads with one
thread per traced thread, the implementations interleaved inside it (replay/engine/sp_run.c).
Every raw sample is kept (``raw_ns_json``); the statistics are replay/stats.py's.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

import syspage
from syspage import machine, schema
from syspage.errors import ReplayError
from syspage.replay import adaptive, hostload, idlepoll, stats
from syspage.replay.plan import Plan

IMPLS = ("syscall", "page")
# page-kernel: the patched kernel's real pages, replayed inside its VM (replay/kernel/vm_replay.py)
KERNEL_IMPL = "page-kernel"
ENGINE_IMPLS = IMPLS + (KERNEL_IMPL,)  # the engine's enum sp_impl order
MODES = ("tight", "paced")
PLACEMENTS = ("pack", "spread", "free")
ProgressCallback = Callable[[int, int], None]


@dataclass
class Options:
    impls: tuple[str, ...] = IMPLS
    mode: str = "tight"
    # Many short worker processes rather than a few long ones: the cost of a call moves a few
    # per cent from one process to the next on a shared VM (placement, the host's other
    # guests), so a figure must average over processes spread in time (pyperf's workers).
    workers: int = 10
    samples: int = 6            # per worker and implementation
    # The worker rounds start evenly spread over at least this many seconds (the runner sleeps
    # between rounds). The machine's cost states last seconds (getpid 95/101/105/120+ ns
    # plateaus of 1-10 s, machine-wide, both vCPUs alike; bench/replay_states.py): rounds
    # packed into 1.5 s all land in one state and the run's median is that state's, while
    # rounds spread over many state lengths let the median take the usual one. 0 = back to back.
    spread_s: float = 0.0
    # Hold a 0-us CPU-latency request (/dev/cpu_dma_latency) while the rounds run, so idle vCPUs
    # poll instead of halting (replay/idlepoll.py). Off by default: tried because a quiet guest
    # measured every class slower than a busy one, but quiet runs with it held were as slow
    # (getpid 136-142 ns against 107 ns beside a busy neighbour; docs/replay.md), and it keeps
    # idle vCPUs spinning for the host.
    idle_poll: bool = False
    warmups: int = 1
    # whole samples taken first and discarded (pyperf's warm-up values), after the warm-up passes
    warmup_samples: int = 1
    # Loops per sample are calibrated to reach this. Short on purpose: on a busy machine a
    # long sample almost always contains a preemption; many short ones and their median
    # leave the preempted ones in the tail (the clock overhead is < 0.01 % of 0.5 ms).
    min_sample_ms: float = 0.5
    # pyperf calibrates until one *value* lasts long enough; a value here is per class, and a
    # class with one call per pass would be one clock pair per value: loops are raised until
    # each class has min_class_us of calls in a sample, but a sample stays under max_sample_ms.
    min_class_us: float = 5.0
    max_sample_ms: float = 2.0
    # Where a replay process's threads run (docs/replay.md, "Placement"):
    #   pack    all its threads and its kernel side on one CPU, the CPU rotating with the worker
    #           round and the parallel slot (default). Left to the scheduler, the threads shared one
    #           vCPU whenever another job kept the other busy, and spread over both when the guest
    #           was otherwise quiet; spread, every call measured 25-35 % slower (getpid 133-145 ns
    #           against 107-109 ns, geteuid's page read 67-88 ns against 24-27 ns), so a run's
    #           figures followed the other jobs. Packed, quiet runs measured as the busy ones.
    #   spread  thread k on the k-th CPU of a list rotated by round, when it has no more threads
    #           than CPUs (the kernel side on thread 0's CPU);
    #   free    the scheduler's choice (the method before).
    placement: str = "pack"
    max_gap_ms: float = 1.0     # paced mode: longer recorded gaps are cut to this
    locking: str = "page"
    timeout_s: float = 600.0
    # Adaptive rounds (replay/adaptive.py): after the `workers` rounds, more rounds while some
    # class's predicted run-to-run spread (5 runs, (max - min) / median) is above repeat_target,
    # until the whole replay has taken max_seconds. 0 = off. The default budget keeps a default
    # replay of a small trace well under a minute (docs/replay.md, "Adaptive rounds").
    repeat_target: float = 0.03
    max_seconds: float = 30.0
    repeat_safety: float = adaptive.SAFETY
    # Replay processes running at once. A trace with 75 short-lived processes (a make -j1
    # build) did not run them all together; more at once than CPUs would only measure the
    # scheduler. None = the CPU count.
    max_parallel: int | None = None

    def engine_config(self, check: bool) -> dict:
        bits = sum(1 << ENGINE_IMPLS.index(i) for i in self.impls)
        return {
            "mode": self.mode, "impls": bits, "samples": self.samples, "warmups": self.warmups,
            "min_sample_ns": int(self.min_sample_ms * 1e6), "max_gap_ns": int(self.max_gap_ms * 1e6),
            "locking": self.locking, "check": check,
            "min_class_ns": int(self.min_class_us * 1e3), "max_sample_ns": int(self.max_sample_ms * 1e6),
            "warmup_samples": self.warmup_samples,
        }


@dataclass
class RunResult:
    """What the replay processes returned, per worker round and traced process."""

    rounds: list[list[dict]] = field(default_factory=list)   # [worker][proc] -> engine result
    seconds: float = 0.0
    tracers_seen: list[str] = field(default_factory=list)     # system-wide tracers running meanwhile
    vm: dict | None = None    # page-kernel: the VM the replay ran in (accel, kernel, clocksource, note)
    host: list[dict] = field(default_factory=list)            # per worker round: steal, load, CPUs
    idle_poll: dict | None = None   # the CPU-latency request: asked, held, why not, idle halts meanwhile
    adaptive: dict | None = None    # what the adaptive rounds did (replay/adaptive.py Record.as_dict)


# Tracers that, attached system-wide (bpftrace on raw_syscalls, perf trace -a), slow every
# system call on the machine while they run: the replay cannot avoid them, it says so.
TRACER_COMMS = ("bpftrace", "perf", "strace", "ltrace", "sysdig", "dtrace", "trace-cmd")


def tracers_running() -> list[str]:
    """'comm(pid)' of every tracer process running now (from /proc/PID/comm)."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in TRACER_COMMS:
            found.append(f"{comm}({entry.name})")
    return found


def validate(options: Options, engine) -> None:
    unknown = [i for i in options.impls if i not in ENGINE_IMPLS]
    if unknown or not options.impls:
        raise ReplayError(f"unknown implementation(s) {unknown or options.impls}; known: {', '.join(ENGINE_IMPLS)}")
    if KERNEL_IMPL in options.impls:
        from syspage.replay import kernel

        missing = kernel.missing_tools()
        if missing:
            raise kernel.KernelUnavailable("--impl page-kernel boots the patched kernel under QEMU (replay/kernel/); "
                                           "missing: " + ", ".join(missing))
    if options.mode not in MODES:
        raise ReplayError(f"unknown mode {options.mode!r}; known: {', '.join(MODES)}")
    if options.locking not in engine.SCHEMES:
        raise ReplayError(f"unknown locking scheme {options.locking!r}; known: {', '.join(engine.SCHEMES)}")
    if options.workers < 1 or options.samples < 1 or options.warmups < 0 or options.warmup_samples < 0:
        raise ReplayError("workers and samples must be at least 1, warmups and warmup_samples at least 0")
    if options.placement not in PLACEMENTS:
        raise ReplayError(f"unknown placement {options.placement!r}; known: {', '.join(PLACEMENTS)}")
    if not (options.repeat_target >= 0 and math.isfinite(options.repeat_target)):
        raise ReplayError(f"repeat_target must be a finite fraction >= 0 (0 = off), not {options.repeat_target!r}")
    if not (options.max_seconds > 0 and math.isfinite(options.max_seconds)):
        raise ReplayError(f"max_seconds must be a finite number of seconds > 0, not {options.max_seconds!r}")
    if not (options.repeat_safety >= 1 and math.isfinite(options.repeat_safety)):
        raise ReplayError(f"repeat_safety must be a finite factor >= 1, not {options.repeat_safety!r}")
    if not (options.spread_s >= 0 and math.isfinite(options.spread_s)):
        raise ReplayError(f"spread_s must be a finite number of seconds >= 0, not {options.spread_s!r}")


def run(plan: Plan, options: Options, progress: ProgressCallback | None = None) -> RunResult:
    """Run the worker rounds of the plan (the default ones, then the adaptive ones while some class
    is predicted above options.repeat_target and the budget allows); raise ReplayError if a replay
    process fails."""
    if KERNEL_IMPL in options.impls:  # every implementation then runs in the patched kernel's VM
        from syspage.replay.kernel import vm_replay

        return vm_replay.run(plan, options, progress)
    result = RunResult()
    if not plan.threads:
        return result
    seen = set(tracers_running())
    t0 = time.perf_counter()
    record = adaptive.Record(options.repeat_target, options.max_seconds, options.repeat_safety, options.workers)
    total = [options.workers * plan.n_procs]
    with tempfile.TemporaryDirectory(prefix="syspage-replay-") as tmp, idlepoll.held(options.idle_poll) as qos:
        result.idle_poll = qos
        plan_path = plan.write(Path(tmp) / "plan.bin")

        def rounds(n: int) -> None:
            for _ in range(n):
                w = len(result.rounds)
                _run_round(plan, plan_path, options, w, t0, result, total, progress)
                seen.update(tracers_running())

        rounds(options.workers)
        predicted = _predicted(plan, result, options)
        record.initial = dict(predicted)
        while True:
            elapsed = time.perf_counter() - t0
            decision = adaptive.next_rounds(predicted, len(result.rounds), elapsed, elapsed / len(result.rounds),
                                            options.repeat_target, options.max_seconds)
            worst = max(((v, k) for k, v in predicted.items() if v is not None), default=(None, None))
            record.steps.append({"rounds": len(result.rounds), "elapsed_s": round(elapsed, 3),
                                 "worst": worst[1], "worst_predicted_spread": adaptive.rounded(worst[0]),
                                 "extra_rounds_next": decision.rounds})
            if decision.reason:
                record.stop_reason = decision.reason
                break
            total[0] += decision.rounds * plan.n_procs
            rounds(decision.rounds)
            predicted = _predicted(plan, result, options)
        record.final = predicted
        record.rounds = len(result.rounds)
    result.seconds = time.perf_counter() - t0
    result.tracers_seen = sorted(seen)
    result.adaptive = record.as_dict()
    return result


def _run_round(plan: Plan, plan_path: Path, options: Options, w: int, t0: float, result: RunResult,
               total: list[int], progress: ProgressCallback | None) -> None:
    """One worker round: a fresh replay process per traced process, max_parallel at a time."""
    _wait_for_round(t0, w, options)
    # the value check runs in the first round only: its result does not change
    config = json.dumps(options.engine_config(check=(w == 0)))
    parallel = max(1, options.max_parallel or os.cpu_count() or 1)
    outcomes: list[dict] = []
    order = _round_cpu_order(options, w)
    started_s = time.perf_counter() - t0
    before = hostload.snapshot()
    for start in range(0, plan.n_procs, parallel):
        batch = range(start, min(plan.n_procs, start + parallel))
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "syspage.replay._worker", str(plan_path), str(p), config,
                 json.dumps(_cpus_for(plan, options, p, p - start, order))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for p in batch
        ]
        for p, proc in zip(batch, procs):
            try:
                out, err = proc.communicate(timeout=options.timeout_s)
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                raise ReplayError(f"replay process {p} (worker {w}) did not finish in {options.timeout_s:.0f} s")
            outcomes.append(_outcome(out, err, proc.returncode, p, w))
            if progress:
                progress(w * plan.n_procs + len(outcomes), total[0])
    result.rounds.append(outcomes)
    result.host.append(_host_round(w, before, hostload.snapshot(), outcomes) | {"started_s": round(started_s, 3)})


def round_values(outcomes: list[dict], ci: int, impl: str, samples: int) -> list[float | None]:
    """One round's samples of class ci: per sample, the calls-weighted mean over its replay processes."""
    values: list[float | None] = []
    for s in range(samples):
        num = den = 0.0
        for out in outcomes:
            cr = out["classes"][ci]
            vals = cr["samples"].get(impl)
            if vals and s < len(vals):
                num += vals[s] * cr["replayed"]
                den += cr["replayed"]
        values.append(num / den if den else None)
    return values


def reference_kind(impl: str) -> str:
    """Which machine reference an implementation's costs are read against: the raw syscall loop
    for the system call, the bare page-read loop for either page."""
    return "syscall" if impl == "syscall" else "page"


def round_reference(outcomes: list[dict], kind: str, samples: int) -> list[float | None]:
    """One round's machine reference per sample (the mean over its replay processes), aligned
    with round_values."""
    values: list[float | None] = []
    for s in range(samples):
        refs = [out["reference"][kind][s] for out in outcomes
                if len(out.get("reference", {}).get(kind, [])) > s]
        values.append(sum(refs) / len(refs) if refs else None)
    return values


def reference_values(result: RunResult, kind: str, samples: int) -> list[float | None]:
    """The run's machine reference per (round, sample), in raw_ns_json's order."""
    out: list[float | None] = []
    for outcomes in result.rounds:
        out.extend(round_reference(outcomes, kind, samples))
    return out


def relative_to_reference(raw: list[float | None], reference: list[float | None]) -> float | None:
    """The median over samples of cost / the same sample's reference (None without pairs)."""
    ratios = [v / r for v, r in zip(raw, reference) if v is not None and r is not None and r > 0]
    return stats.median(ratios) if ratios else None


def reference_summary(result: RunResult, samples: int) -> dict | None:
    """The run's machine reference: per kind the median over every sample and the range of the
    rounds' medians (docs/replay.md "Machine reference")."""
    out = {}
    for kind in ("syscall", "page"):
        vals = [v for v in reference_values(result, kind, samples) if v is not None]
        if not vals:
            continue
        rounds = [stats.median(r) for r in (
            [v for v in round_reference(o, kind, samples) if v is not None] for o in result.rounds) if r]
        out[kind] = {"ns_median": round(stats.median(vals), 4), "samples": len(vals),
                     "round_medians_min": round(min(rounds), 4), "round_medians_max": round(max(rounds), 4)}
    if not out:
        return None
    out["what"] = ("timed at the start of every sample by each replay process's first thread: "
                   "syscall = a raw getpid(2) loop, page = the bare page-read loop; a class's "
                   "cost_over_reference is its cost over its own samples' reference")
    return out


def _predicted(plan: Plan, result: RunResult, options: Options) -> dict[str, float | None]:
    """Per "class (impl)", the predicted spread of 5 runs' medians from the worker rounds so far."""
    out: dict[str, float | None] = {}
    for ci, c in enumerate(plan.classes):
        for impl in options.impls:
            wm = []
            for outcomes in result.rounds:
                vals = [v for v in round_values(outcomes, ci, impl, options.samples) if v is not None]
                if vals:
                    wm.append(stats.median(vals))
            if wm:
                out[f"{c.call_class} ({impl})"] = adaptive.predicted_spread(wm, options.repeat_safety)
    return out


def round_start_s(worker: int, options: Options) -> float:
    """When worker round `worker` may start, seconds after the replay began (Options.spread_s)."""
    return options.spread_s * worker / options.workers


def _wait_for_round(t0: float, worker: int, options: Options) -> None:
    delay = t0 + round_start_s(worker, options) - time.perf_counter()
    if delay > 0:   # a round that ran late is not made up for: the next starts at once
        time.sleep(delay)


def _usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _round_cpu_order(options: Options, worker: int) -> list[int]:
    """This round's CPUs in the order replay processes take them. pack: idlest first (the CPU no
    other job is using, as the scheduler chose when one was busy), equally idle ones rotated by
    round; spread: rotated by round."""
    usable = _usable_cpus()
    if options.placement == "free" or not usable:
        return []
    if options.placement == "pack":
        return hostload.cpus_by_idleness(usable, rotate=worker)
    k = worker % len(usable)
    return usable[k:] + usable[:k]


def _cpus_for(plan: Plan, options: Options, proc: int, slot: int, order: list[int]) -> list[int]:
    """The CPUs replay process proc's threads are pinned to (thread k on cpus[k % len]), or []
    for the scheduler's choice (see Options.placement); slot = its place among the processes
    started together."""
    if not order:
        return []
    k = slot % len(order)
    if options.placement == "pack":
        return [order[k]]
    threads = sum(1 for t in plan.threads if t.proc == proc)
    if threads > len(order):
        return []
    return order[k:] + order[:k]


def _host_round(worker: int, before, after, outcomes: list[dict]) -> dict:
    """What the machine did during one worker round (steal, load), and where the threads ran."""
    steal, busy = hostload.steal_fraction(before, after), hostload.busy_fraction(before, after)
    others = hostload.others_fraction(before, after)
    running = [v for v in (before.procs_running, after.procs_running) if v is not None]
    loads = [v for v in (before.load_1min, after.load_1min) if v is not None]
    return {
        "worker": worker,
        "steal_pct": None if steal is None else round(100 * steal, 2),
        "busy_pct": None if busy is None else round(100 * busy, 1),
        "others_cpu_pct": None if others is None else round(100 * others, 1),
        "load_1min": max(loads) if loads else None,
        "procs_running": max(running) if running else None,
        "pinned": [o.get("pinned", False) for o in outcomes],
        "thread_cpus": [o.get("thread_cpus", []) for o in outcomes],
    }


def host_summary(result: RunResult) -> dict:
    """Steal and load over the whole replay (worst round), for the summary and the metadata."""
    steal = [h["steal_pct"] for h in result.host if h["steal_pct"] is not None]
    load = [h["load_1min"] for h in result.host if h["load_1min"] is not None]
    running = [h["procs_running"] for h in result.host if h["procs_running"] is not None]
    others = [h["others_cpu_pct"] for h in result.host if h.get("others_cpu_pct") is not None]
    return {
        "steal_pct_max": max(steal) if steal else None,
        "steal_pct_median": stats.median(steal) if steal else None,
        "load_1min_max": max(load) if load else None,
        "others_cpu_pct_max": max(others) if others else None,
        "others_cpu_pct_median": stats.median(others) if others else None,
        "procs_running_max": max(running) if running else None,
        "pinned": bool(result.host) and all(all(h["pinned"]) for h in result.host),
        "idle_poll": result.idle_poll,
        "rounds": result.host,
    }


def _outcome(out: str, err: str, code: int, proc: int, worker: int) -> dict:
    line = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        data = json.loads(line) if line else None
    except json.JSONDecodeError:
        data = None
    if code != 0 or not isinstance(data, dict) or "error" in data:
        why = (data or {}).get("error") if isinstance(data, dict) else None
        why = why or (err.strip().splitlines()[-1] if err.strip() else f"exit status {code}")
        raise ReplayError(f"replay process {proc} (worker {worker}) failed: {why}")
    return data


def _reason(c, impl: str, replayed: int, engine_reason: str | None, kernel_reason: str | None = None) -> str | None:
    """Why calls of the class were not issued (or, for a state change, not timed)."""
    if impl == KERNEL_IMPL and c.page_access != "follow":
        return None if replayed == c.calls else kernel_reason or "not on the kernel's pages"
    if c.page_access == "follow":
        if impl == "syscall" and replayed < c.calls:
            return f"{engine_reason or 'not issued'}; a state change: the kernel side applies it, not timed"
        return "state change: applied, not timed" if impl == "syscall" else "state change: the kernel side applies it, not timed"
    if replayed == c.calls:
        return None
    return engine_reason if impl == "syscall" else "no page field for this class"


def _page_op(c) -> str:
    from syspage.replay.plan import FIELD_ALIASES

    if c.host_op in ("read_proc_cmdline", "read_proc_args") and c.page_access == "read":
        return f"page:{c.page_class} title (bounded read, as ps)"
    fields = ",".join(FIELD_ALIASES.get(f, f) for f in c.fields)
    verb = {"read": "read", "write": "write", "follow": "follow"}[c.page_access]
    return f"page:{c.page_class} {verb} {fields}"


def table(plan: Plan, result: RunResult, options: Options) -> pl.DataFrame:
    """The replay/1 rows: one per call class and implementation."""
    rows = []
    for ci, c in enumerate(plan.classes):
        per_impl: dict[str, list[float | None]] = {}
        replayed: dict[str, int] = {}
        checked = mismatches = 0
        skip_reason = None
        kernel_checked = kernel_mismatches = 0  # page-kernel's own check against the syscall
        kernel_reason = None
        for impl in options.impls:
            values: list[float | None] = []
            for outcomes in result.rounds:
                values.extend(round_values(outcomes, ci, impl, options.samples))
            per_impl[impl] = values
        issued = dict.fromkeys(options.impls, 0)
        if result.rounds:
            for out in result.rounds[0]:
                cr = out["classes"][ci]
                checked += cr["checked"]
                mismatches += cr["mismatches"]
                skip_reason = skip_reason or cr["skip_reason"]
                kernel_checked += cr.get("kernel_checked", 0)
                kernel_mismatches += cr.get("kernel_mismatches", 0)
                kernel_reason = kernel_reason or cr.get("kernel_skip_reason")
                for impl in options.impls:
                    if not cr["skip"][ENGINE_IMPLS.index(impl)]:
                        issued[impl] += cr["replayed"]
        for impl in options.impls:
            replayed[impl] = issued[impl]
        for impl in options.impls:
            values = per_impl[impl]
            summary = stats.summarize([v for v in values if v is not None])
            saved = stats.Summary(0, None, None, None, None, None, False)
            if impl != "syscall" and "syscall" in per_impl:
                diffs = [a - b for a, b in zip(per_impl["syscall"], values) if a is not None and b is not None]
                saved = stats.summarize(diffs)
            rows.append({
                "call_class": c.call_class,
                "page_class": c.page_class,
                "page_access": c.page_access,
                "impl": impl,
                "host_op": c.host_op if impl == "syscall" else
                           f"kernel {_page_op(c)}" if impl == KERNEL_IMPL else _page_op(c),
                "mode": options.mode,
                "locking": options.locking,
                "calls": c.calls,
                "replayed": replayed[impl],
                "skipped": c.calls - replayed[impl],
                "skip_reason": _reason(c, impl, replayed[impl], skip_reason, kernel_reason),
                "checked": kernel_checked if impl == KERNEL_IMPL else checked,
                "mismatches": kernel_mismatches if impl == KERNEL_IMPL else mismatches,
                "samples": summary.n,
                "cost_ns_median": summary.median,
                "cost_ns_ci_low": summary.ci_low,
                "cost_ns_ci_high": summary.ci_high,
                "cost_ns_mad": summary.mad,
                "saved_ns_median": saved.median,
                "saved_ns_ci_low": saved.ci_low,
                "saved_ns_ci_high": saved.ci_high,
                "total_ns": c.calls * summary.median if summary.median is not None else None,
                "unstable": summary.unstable,
                "raw_ns_json": json.dumps([None if v is None else round(v, 4) for v in values]),
            })
    return pl.DataFrame(rows, schema=schema.REPLAY.columns) if rows else schema.REPLAY.empty()


METHOD = (
    "{mode} replay, {workers} worker rounds x {samples} samples per implementation, {warmups} warm-up "
    "pass(es) and {warmup_samples} discarded warm-up sample(s); one replay process per traced process and one thread per traced thread; implementations "
    "interleaved A B B A / B A A B in each sample, all threads starting each sample together; batched CLOCK_MONOTONIC timing around runs of same-class "
    "calls, clock-pair overhead ({overhead:.1f} ns) subtracted; each sample >= {min_ms} ms and >= {min_class_us} us "
    "of each class (<= {max_sample_ms} ms); placement {placement} (threads pinned: {pinned}); rounds spread over >= {spread_s:g} s; "
    "idle CPUs kept polling (0-us CPU-latency request): {idle_poll}; {adaptive}; median, MAD, order-statistic "
    "95% CI; locking {locking}"
)


def metadata(plan: Plan, result: RunResult, options: Options, trace_file: str | None,
             trace_sha256: str | None, summary: dict) -> dict[str, str]:
    m = machine.describe()
    overheads = [o["timer_overhead_ns"] for r in result.rounds for o in r]
    overhead = stats.median(overheads) if overheads else float("nan")
    meta = {
        "host": m["host"],
        "host_os": m["os"],
        "cpu": m["cpu_model"],
        "cpu_count": str(m["cpu_count"]),
        "kernel": m["kernel"],
        "mitigations": json.dumps(m["mitigations"], sort_keys=True),
        "method": METHOD.format(mode=options.mode, workers=len(result.rounds), samples=options.samples,
                                adaptive=_adaptive_text(result, options),
                                warmups=options.warmups, warmup_samples=options.warmup_samples, overhead=overhead, min_ms=options.min_sample_ms,
                                min_class_us=options.min_class_us, max_sample_ms=options.max_sample_ms,
                                pinned="yes" if host_summary(result)["pinned"] else "no", locking=options.locking,
                                placement=options.placement,
                                spread_s=options.spread_s, idle_poll=_idle_poll_text(result)),
        "mode": options.mode,
        "locking": options.locking,
        "workers": str(len(result.rounds)),
        "adaptive": json.dumps(result.adaptive, sort_keys=True) if result.adaptive else "",
        "samples_per_worker": str(options.samples),
        "warmups": str(options.warmups),
        "warmup_samples": str(options.warmup_samples),
        "timer_overhead_ns": f"{overhead:.3f}" if math.isfinite(overhead) else "",
        "trace_os": plan.trace_os,
        "trace_file": trace_file or "",
        "trace_sha256": trace_sha256 or "",
        "plan_sha256": plan.sha256,
        "engine_version": _engine_version(),
        "syspage_version": syspage.__version__,
        "replay_seconds": f"{result.seconds:.3f}",
        "tracers_running": ",".join(result.tracers_seen),
        "host_load": json.dumps(host_summary(result), sort_keys=True),
        "reference": json.dumps(summary.get("reference"), sort_keys=True),
        "summary": json.dumps(summary, sort_keys=True),
    }
    if result.vm:  # page-kernel: the replay ran in the patched kernel's VM, not on this host's kernel
        meta["replay_vm"] = json.dumps(result.vm, sort_keys=True)
        meta["kernel"] = f"{result.vm['kernel_release']} (syspage-patched, QEMU {result.vm['accel']} guest)"
        meta["cpu_count"] = f"{result.vm['vcpus']} (vCPU)"
        meta["method"] += "; " + result.vm["note"]
    return meta


def _adaptive_text(result: RunResult, options: Options) -> str:
    a = result.adaptive
    if not a or a["target"] <= 0:
        return f"adaptive rounds off ({options.workers} worker rounds)"
    return (f"adaptive rounds: {a['default_rounds']} worker rounds, then more while a class's predicted spread of "
            f"5 runs' medians ({a['safety_factor']:g} x the expected one) was above {a['target']:.1%}, within "
            f"{a['max_seconds']:g} s: {a['rounds']} rounds in all, stopped: {a['stop_reason']}")


def _idle_poll_text(result: RunResult) -> str:
    q = result.idle_poll or {}
    if q.get("held"):
        return "yes"
    return f"no ({q.get('reason') or 'not requested'})"


def _engine_version() -> str:
    from syspage.replay import engine

    return engine.EXPECTED_ENGINE_VERSION


REPEAT_TARGET = 0.03   # issue 4: per-class medians repeat within 3 % across runs


def worker_medians(raw_ns_json: str, samples: int) -> list[float]:
    """The median of each worker round's samples (raw_ns_json is worker-major, `samples` each)."""
    raw = json.loads(raw_ns_json) if raw_ns_json else []
    out = []
    for w in range(0, len(raw), max(1, samples)):
        vals = [v for v in raw[w:w + samples] if v is not None]
        if vals:
            out.append(stats.median(vals))
    return out


def repeatability(raw_ns_json: str, samples: int, target: float = REPEAT_TARGET, safety: float = 1.0) -> dict:
    """What the run's own workers say about repeating its median (stats.expected_run_spread).

    The cost of a cold, one-call class moves from one process to the next (geteuid's page read
    13-29 ns between the workers of one run, each worker's own samples within 2-8 %): that is
    the call's real cost moving, not the clock, and a median over 10 workers cannot repeat to
    3 % when its workers spread that far. Such a class is reported with its expected spread,
    never hidden or clamped. may_repeat and workers_for_target compare safety x expected with the
    target (replay/adaptive.py SAFETY)."""
    wm = worker_medians(raw_ns_json, samples)
    independent = stats.expected_run_spread(wm)
    expected = adaptive.expected_spread(wm)
    predicted = None if expected is None else safety * expected
    med = stats.median(wm) if wm else None
    mad = stats.median([abs(v - med) for v in wm]) if wm else None
    return {
        "workers": len(wm),
        "worker_medians_mad_pct": round(100 * mad / med, 2) if med else None,
        # the larger of the two estimates (replay/adaptive.py expected_spread)
        "expected_spread_5_runs": None if expected is None else round(expected, 4),
        "expected_spread_independent_workers": None if independent is None else round(independent, 4),
        # False: the workers alone rule the target out; True: they do not (a machine state that
        # outlasts the run can still move it: 1-3x the expected spread in 5 packed busy runs)
        "predicted_spread_5_runs": None if predicted is None else round(predicted, 4),
        "may_repeat": None if predicted is None else predicted <= target,
        # the spread narrows as 1/sqrt(workers): the workers this class would need for the target
        "workers_for_target": (None if not predicted or predicted <= target
                               else adaptive.workers_needed(len(wm), predicted, target)),
    }


def _target(options: Options) -> float:
    """The target the summary judges against: the adaptive one, or issue 4's 3 % when it is off."""
    return options.repeat_target if options.repeat_target > 0 else REPEAT_TARGET


def summarize(df: pl.DataFrame, plan: Plan, options: Options, result: RunResult | None = None) -> dict:
    """The JSON summary: per class the costs side by side, and the warnings."""
    classes = []
    # each kind's reference per (round, sample), once for every class
    refs = ({kind: reference_values(result, kind, options.samples) for kind in ("syscall", "page")}
            if result and result.rounds else {})
    for name in df.get_column("call_class").unique(maintain_order=True).to_list():
        sub = {r["impl"]: r for r in df.filter(pl.col("call_class") == name).iter_rows(named=True)}
        any_row = next(iter(sub.values()))
        entry = {"call_class": name, "page_class": any_row["page_class"], "calls": any_row["calls"],
                 "checked": any_row["checked"], "mismatches": any_row["mismatches"]}
        for impl, r in sub.items():
            entry[impl] = {k: r[k] for k in ("host_op", "replayed", "skipped", "skip_reason", "samples",
                                             "cost_ns_median", "cost_ns_ci_low", "cost_ns_ci_high",
                                             "cost_ns_mad", "saved_ns_median", "saved_ns_ci_low",
                                             "saved_ns_ci_high", "total_ns", "unstable")}
            entry[impl].update(repeatability(r["raw_ns_json"], options.samples, _target(options),
                                             options.repeat_safety))
            if refs:
                rel = relative_to_reference(json.loads(r["raw_ns_json"]), refs[reference_kind(impl)])
                entry[impl]["cost_over_reference"] = None if rel is None else round(rel, 5)
        ci = next((i for i, pc in enumerate(plan.classes) if pc.call_class == name), None)
        if result and result.rounds and ci is not None:
            first = next((o["classes"][ci]["first_mismatch"] for o in result.rounds[0]
                          if o["classes"][ci]["first_mismatch"]), None)
            if first:
                entry["first_mismatch"] = {"page": first["page"]["text"], "syscall": first["syscall"]["text"]}
        s, p = sub.get("syscall"), sub.get("page")
        if s and p and s["cost_ns_median"] and p["cost_ns_median"]:
            entry["ratio_syscall_over_page"] = s["cost_ns_median"] / p["cost_ns_median"]
        k = sub.get(KERNEL_IMPL)
        if k:  # the real kernel's page: its own value check, and side-by-side ratios
            entry["kernel_checked"], entry["kernel_mismatches"] = k["checked"], k["mismatches"]
            if p and k["cost_ns_median"] and p["cost_ns_median"]:
                entry["ratio_kernel_page_over_page"] = k["cost_ns_median"] / p["cost_ns_median"]
            if s and k["cost_ns_median"] and s["cost_ns_median"]:
                entry["ratio_syscall_over_kernel_page"] = s["cost_ns_median"] / k["cost_ns_median"]
        classes.append(entry)
    unstable = df.filter(pl.col("unstable")).select("call_class", "impl").rows()
    not_repeatable = [f"{c['call_class']} ({impl}): {c[impl]['predicted_spread_5_runs']:.1%}"
                      for c in classes for impl in options.impls
                      if c.get(impl) and c[impl].get("may_repeat") is False]
    mismatched = df.filter(pl.col("mismatches") > 0).get_column("call_class").unique().to_list()
    # What a replay of this trace would need for every class to be predicted within the target:
    # the most rounds any class needs, at this run's seconds per round (the CLI suggests it).
    needed = [c[impl]["workers_for_target"] for c in classes for impl in options.impls
              if c.get(impl) and c[impl].get("workers_for_target")]
    seconds_for_target = (math.ceil(max(needed) * result.seconds / len(result.rounds))
                          if needed and result and result.rounds and result.seconds > 0
                          and KERNEL_IMPL not in options.impls else None)   # page-kernel: one VM boot, no budget
    return {
        "format": "replay-summary/1",
        "impls": list(options.impls),
        "mode": options.mode,
        "trace_os": plan.trace_os,
        "host_os": plan.host_os,
        "threads": len(plan.threads),
        "processes": plan.n_procs,
        "ops": plan.n_ops,
        "classes": classes,
        "unstable": [f"{c} ({i})" for c, i in unstable],
        # classes whose own workers disagree too much for the median to repeat within
        # REPEAT_TARGET across runs (issue 4), with the expected spread of 5 runs' medians
        "not_repeatable": not_repeatable,
        "seconds_for_target": seconds_for_target,
        "mismatched_classes": sorted(mismatched),
        "repeat_target": _target(options),
        # what the adaptive rounds did: rounds run, per class the predicted spread after the
        # default rounds and at the end, reached or not, and why they stopped (budget hit or not)
        "adaptive": result.adaptive if result else None,
        "tracers_running": result.tracers_seen if result else [],
        "host_load": host_summary(result) if result else None,
        # the machine's speed while the samples ran, for comparing replays run at other times
        "reference": reference_summary(result, options.samples) if result and result.rounds else None,
        "vm": result.vm if result else None,
    }

