"""syspage run: collect, parse, replay and analyze in one command (syspage/pipeline.py does the work)."""
from __future__ import annotations

import contextlib

from syspage import pipeline
from syspage.errors import SyspageError

HELP = "the whole pipeline on one command: collect, parse, replay, analyze"
EXAMPLE = (
    "  syspage run -o out -- python3 -c 'import os; [os.getpid() for _ in range(1000)]'\n"
    "  syspage run -o out --trace data/linux/python-logging/trace.strace.txt.gz\n"
    "  syspage run --demo          # README command 1: a live CPython logging workload, else its bundled trace"
)


def add_arguments(p):
    p.add_argument("-o", "--output", default="out", metavar="OUTDIR", help="directory for every stage's output (default: out)")
    p.add_argument("--trace", metavar="FILE", help="skip collect and start from this trace (.gz is fine; a collect RUNDIR too)")
    p.add_argument("--demo", action="store_true",
                   help="trace the CPython logging workload live (a few seconds); without a usable tracer, use its bundled trace")
    p.add_argument("--bundled", action="store_true", help="with --demo: use the bundled trace, do not trace anything")
    p.add_argument("--overhead", type=int, default=0, metavar="N",
                   help="also run CMD N times untraced and N times traced (interleaved) to set the saving "
                        "against its untraced runtime (--demo does 3)")
    p.add_argument("cmd", nargs="*", metavar="-- CMD ARGS", help="the command to trace")


class _TerminalListener:
    """Prints one line per stage and draws the stage's progress bar while it runs."""

    def __init__(self, ui):
        self.ui = ui
        self.bars = contextlib.ExitStack()

    def stage_started(self, stage, detail):
        n = pipeline.STAGES.index(stage) + 1
        self.ui.info(f"[{n}/{len(pipeline.STAGES)}] {stage}: {detail}")
        return self.bars.enter_context(self.ui.progress(stage))

    def stage_done(self, stage, seconds, detail):
        self.bars.close()
        self.ui.info(f"      done in {seconds:.1f} s: {detail}")

    def note(self, text):
        self.bars.close()
        self.ui.warn(text)


def run(args, ui):
    if args.bundled and not args.demo:
        raise SyspageError("--bundled goes with --demo")
    listener = _TerminalListener(ui)
    try:
        if args.demo:
            if args.cmd or args.trace:
                raise SyspageError("--demo runs its own workload: give no command and no --trace")
            result = pipeline.demo(args.output, listener, live=not args.bundled)
        else:
            if not args.cmd and not args.trace:
                raise SyspageError("nothing to run: give -- CMD ARGS, --trace FILE or --demo")
            if args.overhead and args.trace:
                raise SyspageError("--overhead re-runs the traced command: it needs -- CMD, not --trace")
            result = pipeline.run(args.output, cmd=args.cmd or None, trace=args.trace, listener=listener,
                                  overhead_reps=args.overhead)
    finally:
        listener.bars.close()
    ui.info("")
    # The analyze summary already holds the warnings, the machine, the method, the per-class
    # costs and the untraced share (once: analyze/summary.py): printed as it is in summary.txt.
    ui.info(result.summary_text)
    ui.info("")
    where = {"live": "traced live", "trace": "from the given trace", "bundled": "from the bundled trace"}[result.source]
    stages = ", ".join(f"{s} {t:.1f} s" for s, t in result.seconds.items())
    ui.info(f"{where}; {result.total_seconds:.1f} s in all ({stages})")
    if result.fallback_reason:
        ui.info(f"bundled trace used because: {result.fallback_reason}")
    ui.info(f"report: {result.report.resolve()}")
    return 0

