"""syspage scan: find ELF binaries that call what a shared page would serve."""
from syspage.errors import ScanError

HELP = "scan ELF binaries for the page-eligible calls they import or define"
EXAMPLE = "  syspage scan /usr/bin /usr/lib -o scan.parquet"


def add_arguments(p):
    p.add_argument("paths", nargs="+", help="files or directories (recursive)")
    p.add_argument("-o", "--output", help="Parquet or CSV file to write")


def run(args, ui):
    raise ScanError("scan is not built yet (issue 9)")
