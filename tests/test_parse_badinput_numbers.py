"""Bad input the streaming/fast parse paths must name, not crash on (issue 3)."""
from __future__ import annotations

from pathlib import Path

from syspage import parse

REAL = Path(__file__).parent / "data" / "kdump_cheribsd_issue223-chunk.txt"


def test_kdump_numbers_too_big_for_the_table_are_rejects_with_the_reason(tmp_path):
    lines = REAL.read_text().splitlines()
    # a real record with its pid widened past 64 bits, then the real lines again
    big = "   99999999999999999999999 ktrace   CALL  getpid"
    trace = tmp_path / "kdump.txt"
    trace.write_text("\n".join(lines[1:5] + [big] + lines[5:]) + "\n")
    result = parse.parse_file(trace, format="kdump", cache=False)
    bad = result.rejects.filter(result.rejects["text"] == big)
    assert bad.height == 1
    assert bad["reason"][0] == "kdump record: pid or thread id does not fit 64 bits"
    assert result.events.height > 0   # the rest of the trace is still read


def test_parse_to_an_unwritable_place_is_one_line_exit_2(run_cli):
    trace = Path(__file__).parent / "data" / "strace_cat_short.txt"
    if not trace.exists():
        trace = sorted((Path(__file__).parent / "data").glob("strace*.txt"))[0]
    for output in ("/proc/x.parquet", "/etc/passwd/x.parquet"):
        res = run_cli("parse", trace, "-o", output)
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("syspage: error:") and output in res.stderr
