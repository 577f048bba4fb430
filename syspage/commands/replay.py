"""syspage replay: reissue page-eligible calls via syscalls and via a shared page (see replay/)."""
from syspage.errors import ReplayError

HELP = "replay a trace's page-eligible calls against the syscall path and the shared-page scheme"
EXAMPLE = "  syspage replay events.parquet --impl syscall,page -o replay.parquet"


def add_arguments(p):
    p.add_argument("events", help="events Parquet file from 'syspage parse'")
    p.add_argument("-o", "--output", required=True, help="replay Parquet file to write")
    p.add_argument("--impl", default="syscall,page", help="comma-separated implementations")


def run(args, ui):
    raise ReplayError("replay is not built yet (issue 4)")
