"""syspage.analyze: census, savings estimates and the interactive HTML report.

Public API (other stages and the CLI use only these):

* ``analyze_trace(events, label, replay=None, ...) -> TraceAnalysis``: every census table,
  the savings when a ``ReplayInfo`` is given, the trace's facts (analysis.py).
* ``analyze_files(events_path, replay_path, report_path, progress=None, export_dir=None) -> str``:
  file to file, returns the text summary (what ``syspage run`` calls).
* ``text_summary(analysis, replay)``: the terminal summary (summary.py).
* ``report.write(path, [analysis, ...], replay, locking=None, binaries=None)``: the HTML file.
* ``export.write_tables`` / ``export.write_chrome_trace``: Parquet/CSV and Perfetto exports.
* ``inputs.sort_inputs`` / ``inputs.load_trace`` / ``inputs.load_replay``: reading the files.
* ``frames``: the Polars tables themselves (census_by_syscall, savings, compare, ...).
"""
from syspage.analyze.analysis import ReplayInfo, TraceAnalysis, analyze_trace
from syspage.analyze.files import analyze_files
from syspage.analyze.summary import text_summary

__all__ = ["ReplayInfo", "TraceAnalysis", "analyze_files", "analyze_trace", "text_summary"]
