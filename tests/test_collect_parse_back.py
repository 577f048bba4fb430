"""Collected traces parsed back through syspage.parse (issue 3): the events table shows the
programs' known behaviour. A format parse cannot read yet is skipped with that reason."""
from __future__ import annotations

import shutil

import polars as pl
import pytest

from syspage.collect import TracedCommandFailed, collect
from syspage.errors import InputError
from test_collect_bpftrace import _bpftrace_denied
from test_collect_perf import _perf_denied
from test_collect_programs import programs, python_getpid_cmd  # noqa: F401

parse = pytest.importorskip("syspage.parse", reason="syspage.parse (issue 3) is not there yet")


def _denied(tool: str) -> str | None:
    from syspage.collect import BACKENDS
    if _parse_format(tool) not in parse.formats():
        return f"syspage.parse has no {BACKENDS[tool].FORMAT!r} format yet (it has {parse.formats()})"
    if tool == "strace":
        return None if shutil.which("strace") else "strace is not installed"
    return _perf_denied() if tool == "perf" else _bpftrace_denied()


def _parse_format(tool: str) -> str:
    """The parse format for a tool's trace: parse reads bpftrace's sp1 lines with its dtrace
    format (one grammar for both, docs/dtrace-line-format.md) unless it registers "bpftrace"."""
    from syspage.collect import BACKENDS
    name = BACKENDS[tool].FORMAT
    if name == "bpftrace" and name not in parse.formats():
        return "dtrace"
    return name


def _parse(rundir, tool: str = "strace"):
    fmt = _parse_format(tool)
    try:
        return parse.parse_file(rundir, format=None if fmt == BACKENDS_FORMAT[tool] else fmt, cache=False)
    except ImportError as exc:
        pytest.skip(f"syspage.parse cannot read this format yet: {exc}")
    except InputError as exc:
        if "does not parse" in str(exc):
            pytest.skip(str(exc))
        raise


BACKENDS_FORMAT = {"strace": "strace", "perf": "perf_trace", "bpftrace": "bpftrace"}
TOOLS = [pytest.param("strace"), pytest.param("perf"), pytest.param("bpftrace", marks=pytest.mark.slow)]


@pytest.mark.parametrize("tool", TOOLS)
def test_getpid_n_parses_back_to_n_rows(tool, programs, tmp_path):
    if _denied(tool):
        pytest.skip(_denied(tool))
    info = collect(tool, tmp_path / "run", cmd=[str(programs["getpid_n"]), "250"])
    result = _parse(tmp_path / "run", tool)
    assert result.rejects.height == 0, result.rejects.head(5)
    calls = result.events.filter(pl.col("syscall") == "getpid")
    assert calls.height == 250
    assert calls["ret"].unique().to_list() == calls["tid"].unique().to_list()
    assert result.os == "linux" and calls["source_format"].unique().to_list() == [info.format]


@pytest.mark.parametrize("tool", TOOLS)
def test_threads_parse_back_per_thread(tool, programs, tmp_path):
    if _denied(tool):
        pytest.skip(_denied(tool))
    collect(tool, tmp_path / "run", cmd=[str(programs["threads"]), "4", "50"])
    result = _parse(tmp_path / "run", tool)
    calls = result.events.filter(pl.col("syscall") == "getpid")
    per_thread = calls.group_by("tid").len()["len"].sort().to_list()
    assert per_thread == [50, 50, 50, 50]


def test_python_and_pipeline_parse_back_with_strace(programs, tmp_path):
    collect("strace", tmp_path / "py", cmd=python_getpid_cmd(77))
    assert _parse(tmp_path / "py").events.filter(pl.col("syscall") == "getpid").height == 77
    gp = programs["getpid_n"]
    collect("strace", tmp_path / "pipe", cmd=["/bin/sh", "-c", f"{gp} 30 | {gp} 70 | cat >/dev/null"])
    events = _parse(tmp_path / "pipe").events
    per_pid = events.filter(pl.col("syscall") == "getpid").group_by("tid").len()["len"].sort().to_list()
    assert [n for n in per_pid if n > 1] == [30, 70]


def test_crashed_command_trace_still_parses(tmp_path):
    with pytest.raises(TracedCommandFailed):
        collect("strace", tmp_path / "run", cmd=["/bin/sh", "-c", "kill -SEGV $$"])
    events = _parse(tmp_path / "run").events
    assert events.filter(pl.col("syscall") == "kill").height == 1
    assert events.filter(pl.col("kind") == "killed").height == 1
