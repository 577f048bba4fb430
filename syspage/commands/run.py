"""syspage run: collect, parse, replay and analyze in one command."""
from syspage.errors import SyspageError

HELP = "the whole pipeline on one command: collect, parse, replay, analyze"
EXAMPLE = "  syspage run -o out -- python3 -c 'import os; [os.getpid() for _ in range(1000)]'\n  syspage run -o out --trace data/linux/python-logging.strace.txt.gz"


def add_arguments(p):
    p.add_argument("-o", "--output", default="out", metavar="OUTDIR", help="directory for every stage's output")
    p.add_argument("--trace", help="skip collect and start from this trace")
    p.add_argument("cmd", nargs="*", metavar="-- CMD ARGS", help="the command to trace")


def run(args, ui):
    raise SyspageError("run is not built yet (issue 7)")
