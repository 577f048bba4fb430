"""syspage collect: trace a command or a running process (see collect/)."""
from syspage.errors import CollectError

HELP = "trace a command (or attach to a PID) and write the raw trace plus meta.json"
EXAMPLE = "  syspage collect -o run1 -- python3 -c 'import os; os.getpid()'\n  syspage collect --tool strace -p 1234 --duration 5 -o run2"


def add_arguments(p):
    p.add_argument("-o", "--output", required=True, metavar="RUNDIR", help="directory for the trace and meta.json")
    p.add_argument("--tool", help="tracer to use (default: the best one available here)")
    p.add_argument("-p", "--pid", type=int, help="attach to this process instead of running a command")
    p.add_argument("--duration", type=float, help="seconds to stay attached with -p")
    p.add_argument("cmd", nargs="*", metavar="-- CMD ARGS", help="the command to trace")


def run(args, ui):
    raise CollectError("collect is not built yet (issue 6)")
