"""syspage.collect: capture real syscall traces (strace, perf trace, bpftrace; ktrace, truss, DTrace, dtruss).

Public API (the rest of the package is private to this stage):
  collect(tool, rundir, cmd=None, pid=None, duration=None, progress=None, summary=False,
          overhead_reps=0, stdout=None, stdin=None) -> RunInfo
  RunInfo(rundir, trace_path, format, meta), TracedCommandFailed (a CollectError with .run)
  available_tools(os_name=None), default_tool(os_name=None), BACKENDS
  read_meta(rundir) -> dict (meta.json, checked to be collect-meta/1), META_FORMAT
See docs/collect.md.
"""
from syspage.collect._facade import BACKENDS, RunInfo, TracedCommandFailed, available_tools, collect, default_tool, ensure_new_rundir  # noqa: F401
from syspage.collect.meta import FORMAT as META_FORMAT, read as read_meta  # noqa: F401
