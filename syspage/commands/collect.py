"""syspage collect: trace a command or a running process (see collect/ and docs/collect.md)."""
from syspage.errors import CollectError

HELP = "trace a command (or attach to a PID) and write the raw trace plus meta.json"
EXAMPLE = ("  syspage collect -o run1 -- python3 -c 'import os; os.getpid()'\n"
           "  syspage collect --tool perf --overhead 5 -o run2 -- ls -l /\n"
           "  syspage collect --tool strace -p 1234 --duration 5 -o run3")


def add_arguments(p):
    p.add_argument("-o", "--output", required=True, metavar="RUNDIR", help="directory for the trace and meta.json (must not hold a run yet)")
    p.add_argument("--tool", help="tracer: strace, perf, bpftrace (Linux); ktrace, truss, dtrace (FreeBSD); "
                   "dtruss, dtrace (macOS). Default: the first of these found on PATH")
    p.add_argument("-p", "--pid", type=int, help="attach to this process instead of running a command")
    p.add_argument("--duration", type=float, metavar="S", help="seconds to stay attached with -p")
    p.add_argument("--summary", action="store_true", help="also append the tracer's per-syscall summary "
                   "(strace -C, perf trace -S, dtruss -c)")
    p.add_argument("--overhead", type=int, default=0, metavar="N",
                   help="also measure the tracer's slowdown: run the command N more times untraced and N "
                   "times traced, interleaved, and record it in meta.json (runs the command 2N more times)")
    p.add_argument("cmd", nargs="*", metavar="-- CMD ARGS", help="the command to trace")


def run(args, ui):
    from syspage.collect import TracedCommandFailed, collect, default_tool, ensure_new_rundir

    if args.overhead < 0:
        raise CollectError(f"--overhead {args.overhead}: must be 0 or more")
    tool = args.tool or default_tool()
    ensure_new_rundir(args.output)   # before the "tracing" line, so a refusal comes alone
    what = f"pid {args.pid} for {args.duration:g} s" if args.pid is not None else " ".join(args.cmd)
    ui.info(f"collect: tracing {what} with {tool}")
    try:
        with ui.progress(f"tracing with {tool}") as progress:
            info = collect(tool, args.output, cmd=args.cmd or None, pid=args.pid, duration=args.duration,
                           progress=progress, summary=args.summary, overhead_reps=args.overhead)
    except TracedCommandFailed as exc:
        _report(ui, exc.run)
        raise
    _report(ui, info)
    return 0


def _median(values):
    import statistics
    return statistics.median(values)


def _report(ui, info):
    meta = info.meta
    trace = meta.get("trace") or {}
    exit_ = meta.get("exit")
    if exit_ is None:
        ended = "not known" if meta["target"]["mode"] == "command" else "still running (attached)"
    elif exit_.get("signal") is not None:
        ended = f"killed by {exit_.get('signal_name') or exit_['signal']}"
    else:
        ended = f"exit status {exit_['status']}"
    ui.info(f"command: {ended}; trace: {trace.get('lines', 0)} lines, {trace.get('bytes', 0)} bytes "
            f"({info.format}), wall {meta.get('wall_s') or 0:.3f} s")
    if trace.get("lost_events"):
        ui.warn(f"the tracer reported {trace['lost_events']} lost events: the trace is incomplete")
    if exit_ and exit_.get("status") not in (None, 0):
        ui.warn(f"the traced command exited with status {exit_['status']}")
    overhead = meta.get("overhead")
    if overhead:
        ui.info(f"tracer overhead: x{overhead['slowdown_median']:.2f} median over {overhead['repetitions']} pairs "
                f"(min x{overhead['slowdown_min']:.2f}, max x{overhead['slowdown_max']:.2f})"
                + (" UNSTABLE" if overhead["unstable"] else ""))
        if overhead.get("cpu_slowdown_median") is not None:
            ui.info(f"  CPU time ({overhead['cpu_what']}): x{overhead['cpu_slowdown_median']:.2f} median "
                    f"(min x{overhead['cpu_slowdown_min']:.2f}, max x{overhead['cpu_slowdown_max']:.2f})")
        if overhead.get("slowdown_excl_startup_median") is not None:
            ui.info(f"  without the tracer's start-up (median {_median(overhead['tracer_startup_s']):.3f} s): "
                    f"x{overhead['slowdown_excl_startup_median']:.2f} median "
                    f"(min x{overhead['slowdown_excl_startup_min']:.2f}, max x{overhead['slowdown_excl_startup_max']:.2f})"
                    + (f"; {overhead['slowdown_excl_startup_dropped']} pair(s) left out: start-up longer than the run"
                       if overhead.get("slowdown_excl_startup_dropped") else ""))
    ui.info(f"rundir: {info.rundir}")
    ui.info(f"trace:  {info.trace_path}")
