"""syspage replay: reissue page-eligible calls via syscalls and via a shared page (see replay/, docs/replay.md)."""
from __future__ import annotations

from syspage.errors import ReplayError

HELP = "replay a trace's page-eligible calls against the syscall path and the shared-page scheme"
EXAMPLE = (
    "  syspage replay events.parquet --impl syscall,page -o replay.parquet\n"
    "  syspage replay events.parquet -o replay.parquet --mode paced --workers 5 --samples 20\n"
    "  syspage replay events.parquet -o replay.parquet --max-seconds 120   # more rounds for one-call classes\n"
    "  syspage replay events.parquet -o replay.parquet --repeat-target 0   # 10 fixed rounds, no adaptive ones\n"
    "  syspage replay events.parquet -o replay.parquet --locking ring\n"
    "  syspage replay events.parquet -o replay.parquet --impl syscall,page,page-kernel   # in the patched kernel's VM\n"
    "  syspage replay events.parquet -o replay.parquet --stress      # the locking schemes under a writer"
)


def add_arguments(p):
    p.add_argument("events", help="events Parquet file from 'syspage parse'")
    p.add_argument("-o", "--output", required=True,
                   help="replay Parquet file to write (the JSON summary goes beside it: STEM.json)")
    p.add_argument("--impl", default="syscall,page",
                   help="comma-separated implementations: syscall, page, page-kernel (default: syscall,page); "
                        "page-kernel replays all of them inside the patched kernel under QEMU (docs/kernel.md)")
    p.add_argument("--mode", choices=("tight", "paced"), default="tight",
                   help="tight: calls back to back; paced: the trace's gaps spin-waited (default tight)")
    p.add_argument("--workers", type=int, default=10, help="worker rounds, each a fresh set of replay processes (10)")
    p.add_argument("--samples", type=int, default=6, help="samples per implementation per worker (6)")
    p.add_argument("--warmups", type=int, default=1, help="unmeasured passes per implementation first (1)")
    p.add_argument("--min-sample-ms", type=float, default=0.5, help="loops calibrated so one sample lasts this (0.5)")
    p.add_argument("--placement", choices=("pack", "spread", "free"), default="pack",
                   help="where a replay process's threads run: pack (all on one CPU, rotating by round; default), "
                        "spread (one per CPU), free (the scheduler's choice); docs/replay.md")
    p.add_argument("--spread-seconds", type=float, default=0.0,
                   help="start the worker rounds evenly over at least this many seconds (default 0: back to back)")
    p.add_argument("--idle-poll", action="store_true",
                   help="hold a 0-us CPU-latency request (/dev/cpu_dma_latency, root) while measuring, so idle CPUs "
                        "poll instead of halting (off by default: it did not make a quiet VM repeat; docs/replay.md)")
    p.add_argument("--repeat-target", type=float, default=3.0, metavar="PCT",
                   help="after the --workers rounds, run more rounds (within --max-seconds) while some class's "
                        "predicted spread of 5 runs' medians is above PCT %% (default 3, issue 4's target; 0 = off); "
                        "docs/replay.md, \"Adaptive rounds\"")
    p.add_argument("--max-seconds", type=float, default=30.0, metavar="S",
                   help="time budget of the whole replay for the adaptive rounds (default 30; the --workers "
                        "rounds always run)")
    p.add_argument("--max-gap-ms", type=float, default=1.0, help="paced mode: longer recorded gaps are cut (1)")
    p.add_argument("--max-parallel", type=int, default=None,
                   help="replay processes at once (default: the CPU count)")
    p.add_argument("--locking", default="page",
                   choices=("page", "field", "word", "ring", "hybrid"),
                   help="page locking scheme: page (one seqlock per page, default), field (one per field), "
                        "word (lock-free words), ring (generation ring), hybrid (page counter, lock-free words); "
                        "docs/locking.md")
    p.add_argument("--stress", action="store_true",
                   help="also run the locking schemes under a concurrent writer (syspage.replay.locking)")


def run(args, ui):
    from syspage import replay

    impls = tuple(i.strip() for i in args.impl.split(",") if i.strip())
    with ui.progress("replay") as progress:
        result = replay.replay_file(
            args.events, args.output, impls=impls, progress=progress, mode=args.mode,
            workers=args.workers, samples=args.samples, warmups=args.warmups,
            min_sample_ms=args.min_sample_ms, max_gap_ms=args.max_gap_ms, locking=args.locking,
            max_parallel=args.max_parallel, spread_s=args.spread_seconds, idle_poll=args.idle_poll,
            placement=args.placement, repeat_target=args.repeat_target / 100.0, max_seconds=args.max_seconds,
        )
    df = result.table
    s = result.summary
    ui.info(f"{args.events}: {s['ops']:,} eligible calls in {s['threads']} thread(s) of {s['processes']} "
            f"process(es), trace OS {s['trace_os']}, replayed on {s['host_os']} ({args.mode}, locking {args.locking})")
    if not s["ops"]:
        ui.info("nothing to replay: the trace has no page-eligible call (the table is written, empty)")
    rows = []
    for c in s["classes"]:
        sc, pg = c.get("syscall") or {}, c.get("page") or {}

        def cost(r):
            if not r or r.get("cost_ns_median") is None:
                return "-" if not r or not r.get("skip_reason") else "skipped"
            return f"{r['cost_ns_median']:.1f} [{r['cost_ns_ci_low']:.1f}, {r['cost_ns_ci_high']:.1f}]"

        ratio = c.get("ratio_syscall_over_page")
        rows.append([c["call_class"], f"{c['calls']:,}", sc.get("host_op", "-"), cost(sc), cost(pg),
                     f"{ratio:.0f}x" if ratio else "-", f"{c['mismatches']}/{c['checked']}"])
        if "page-kernel" in impls:  # the real kernel's page beside the simulated one
            kr = c.get("ratio_kernel_page_over_page")
            rows[-1] += [cost(c.get("page-kernel")), f"{kr:.2f}" if kr else "-",
                         f"{c.get('kernel_mismatches', 0)}/{c.get('kernel_checked', 0)}"]
    if rows:
        columns = ["call class", "calls", "host op", "syscall", "page", "ratio", "mismatch/checked"]
        if "page-kernel" in impls:
            columns += ["page-kernel", "kernel/page", "kernel mismatch/checked"]
        ui.table("cost per call, ns (median [95% CI])", columns, rows)
    if s.get("vm"):
        ui.warn(s["vm"]["note"] + f" (kernel {s['vm']['kernel_release']}, clocksource {s['vm']['clocksource']})")
    for c in s["classes"]:
        for impl in ("syscall", "page", "page-kernel"):
            r = c.get(impl)
            if r and r.get("skipped") and r.get("skip_reason"):
                ui.info(f"  {c['call_class']} ({impl}): {r['skipped']:,} not timed: {r['skip_reason']}")
                break
    if s["mismatched_classes"]:
        ui.warn("page value differs from the system call's for: " + ", ".join(s["mismatched_classes"])
                + f" (see {result.summary_path})")
        for c in s["classes"]:
            if c.get("first_mismatch"):
                ui.warn(f"  {c['call_class']}: {c['mismatches']} of {c['checked']} reads differ; first: page "
                        f"{c['first_mismatch']['page']!r}, syscall {c['first_mismatch']['syscall']!r}")
    if s["unstable"]:
        ui.warn("unstable (MAD > 10% of the median; a busy machine?): " + ", ".join(s["unstable"])
                + ". Re-run with more --workers/--samples on a quiet machine.")
    a = s.get("adaptive")
    if a and a["target"] > 0 and a["extra_rounds"]:
        ui.info(f"adaptive rounds: {a['rounds']} worker rounds ({a['default_rounds']} + {a['extra_rounds']}) in "
                f"{float(result.metadata['replay_seconds']):.1f} s; stopped: {a['stop_reason']}")
    ref = s.get("reference") or {}
    if ref.get("syscall") and ref.get("page"):
        sc, pg = ref["syscall"], ref["page"]
        ui.info(f"machine reference: raw getpid {sc['ns_median']:.1f} ns (rounds {sc['round_medians_min']:.1f}-"
                f"{sc['round_medians_max']:.1f}), bare page read {pg['ns_median']:.3f} ns; compare replays made at "
                "other times by cost_over_reference (summary), as the machine's speed moves")
    if s.get("not_repeatable"):
        target = s.get("repeat_target", 0.03)
        budget = (f" after {a['rounds']} worker rounds, the --max-seconds {a['max_seconds']:g} budget spent"
                  if a and a.get("budget_hit") else "")
        ui.warn(f"not repeatable within {target:.0%} across runs, from this run's own workers (predicted spread of "
                f"5 runs' medians{budget}): " + ", ".join(s["not_repeatable"]) + ". The cost of these calls moves "
                "from one process to the next; more rounds narrow it as 1/sqrt(rounds) (workers_for_target in the "
                "summary)" + (f"; this trace would need about --max-seconds {s['seconds_for_target']}"
                              if s.get("seconds_for_target") else "; raise --max-seconds") + ".")
    if s.get("tracers_running"):
        ui.warn("tracers were running during the replay (" + ", ".join(s["tracers_running"]) + "): attached "
                "system-wide they slow every system call, so the syscall costs are inflated")
    _warn_busy_host(s.get("host_load") or {}, ui)
    if args.stress:
        _stress(args, ui)
    ui.info(f"wrote {result.output} and {result.summary_path} ({df.height} rows)")
    return 0


# Beyond these, other jobs' CPU use or the hypervisor's steal moved run medians by well over the
# issue-4 target of 3 % on our shared VM (docs/replay.md, "Timing method"): say so beside the figures.
BUSY_OTHERS_PCT = 25.0
BUSY_STEAL_PCT = 5.0


def _warn_busy_host(host: dict, ui) -> None:
    others, steal = host.get("others_cpu_pct_median"), host.get("steal_pct_max")
    if others is not None and others >= BUSY_OTHERS_PCT:
        ui.warn(f"other jobs used {others:.0f} % of the CPUs during the replay (median per worker round): "
                "costs may not repeat across runs; re-run on a quiet machine before publishing")
    if steal is not None and steal >= BUSY_STEAL_PCT:
        ui.warn(f"the hypervisor stole up to {steal:.1f} % of the CPU time during the replay: costs may not repeat")


def _stress(args, ui):
    """The locking schemes under a concurrent writer (issue 8's sweep), written beside the output."""
    from pathlib import Path

    try:
        from syspage.replay import locking
    except ImportError:
        raise ReplayError("--stress needs syspage.replay.locking (issue 8), which this build lacks") from None
    if not hasattr(locking, "run_stress") or not hasattr(locking, "write_stress"):
        raise ReplayError("--stress: syspage.replay.locking has no run_stress()/write_stress() yet (issue 8)")
    with ui.progress("stress") as progress:
        table = locking.run_stress(progress=progress)
    out = Path(args.output)
    path = locking.write_stress(table, out.with_name(out.stem + ".locking.parquet"))
    ui.info(f"stress: {table.height} rows (scheme x readers x writer rate x read) -> {path}")
