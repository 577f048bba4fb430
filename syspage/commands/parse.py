"""syspage parse: trace text -> events/1 Parquet (see parse/)."""
from syspage.errors import InputError

HELP = "parse a trace (strace, kdump, truss, DTrace, dtruss, perf trace) into the event table"
EXAMPLE = "  syspage parse trace.txt -o events.parquet\n  syspage parse --format kdump --strict dump.txt -o events.parquet"


def add_arguments(p):
    p.add_argument("trace", help="trace file (or a collect RUNDIR)")
    p.add_argument("-o", "--output", required=True, help="events Parquet file to write")
    p.add_argument("--format", help="override format auto-detection")
    p.add_argument("--strict", action="store_true", help="exit 2 if any line is rejected")


def run(args, ui):
    raise InputError(args.trace, "parse is not built yet (issue 3)")
