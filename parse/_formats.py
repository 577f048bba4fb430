"""The registry of trace formats: (name, module) pairs, imported only when used.

Each module defines FORMAT, an object satisfying parse/_base.py's TraceFormat. To add a
format, add one line here; auto-detection asks every format's ``sniff`` in this order and
keeps the most confident (ties: the first listed).
"""
from __future__ import annotations

import functools
import importlib

from syspage.errors import InputError

FORMATS: list[tuple[str, str]] = [
    ("truss", "syspage.parse._truss"),    # before strace: its lines also match strace's sniff; truss's
    ("dtruss", "syspage.parse._dtruss"),  # "= N (0xN)", dtruss's "= N errno" never appear in strace
    ("strace", "syspage.parse._strace"),
    ("perf_trace", "syspage.parse._perf_trace"),
    ("kdump", "syspage.parse._kdump"),
    ("dtrace", "syspage.parse._dtrace"),
    ("bpftrace", "syspage.parse._dtrace"),  # collect's bpftrace runs: the same sp1 line (docs/dtrace-line-format.md)
]


def names() -> list[str]:
    return [name for name, _ in FORMATS]


@functools.lru_cache(maxsize=None)
def load(name: str):
    """The FORMAT object of the named format (imports its module on first use)."""
    modules = dict(FORMATS)
    if name not in modules:
        raise InputError(name, f"unknown trace format (known: {', '.join(names())})")
    return importlib.import_module(modules[name]).FORMAT
