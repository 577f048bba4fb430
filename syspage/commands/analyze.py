"""syspage analyze: census, savings and the HTML report (see analyze/)."""
from syspage.errors import AnalyzeError

HELP = "census, savings estimate and a self-contained HTML report"
EXAMPLE = "  syspage analyze events.parquet replay.parquet -o report.html"


def add_arguments(p):
    p.add_argument("inputs", nargs="+", help="events Parquet file(s), optionally followed by replay Parquet file(s)")
    p.add_argument("-o", "--output", required=True, help="HTML report to write")


def run(args, ui):
    raise AnalyzeError("analyze is not built yet (issue 5)")
