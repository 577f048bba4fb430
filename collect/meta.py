"""RUNDIR/meta.json: what a trace needs to be read and trusted (docs/collect.md, collect-meta/1).

Written for every run, also a failed one, so a partial trace keeps its context.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import time
from pathlib import Path

import syspage
from syspage import machine

FORMAT = "collect-meta/1"
META_FILE = "meta.json"
STDERR_FILE = "tracer.stderr.txt"
_TAIL_BYTES = 2048


def os_name() -> str:
    """The OS as the events table names it (platform.system() says 'darwin' for macOS)."""
    system = platform.system().lower()
    return {"darwin": "macos", "sunos": "solaris", "dragonflybsd": "dragonfly"}.get(system, system or "unknown")


def wall_clock(epoch_ns: int | None = None) -> dict:
    """One instant as UTC, local time with its offset, and ns since the epoch."""
    epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
    utc = _dt.datetime.fromtimestamp(epoch_ns / 1e9, tz=_dt.timezone.utc)
    local = utc.astimezone()
    offset = local.utcoffset() or _dt.timedelta(0)
    return {
        "utc": utc.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "local": local.isoformat(timespec="microseconds"),
        "utc_offset_s": int(offset.total_seconds()),
        "timezone": local.tzname(),
        "epoch_ns": epoch_ns,
    }


def exit_info(returncode: int | None, source: str) -> dict | None:
    """A Popen returncode (negative = killed by that signal) as meta.json's exit object."""
    if returncode is None:
        return None
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = None
        return {"status": None, "signal": sig, "signal_name": name, "source": source}
    return {"status": returncode, "signal": None, "signal_name": None, "source": source}


def describe_exit(exit: dict | None) -> str:
    if not exit:
        return "unknown"
    if exit.get("signal") is not None:
        return f"killed by {exit.get('signal_name') or 'signal ' + str(exit['signal'])}"
    return f"exit status {exit['status']}"


# What tracers print into their output when their ring buffer overflowed:
# perf trace "LOST 12 events!" (builtin-trace.c), bpftrace "Lost 12 events" (output.cpp).
_LOST = re.compile(rb"^(?:LOST|Lost) (\d+) events", re.M)


def file_facts(path: Path) -> dict:
    """bytes, lines, SHA-256 and the tracer's own lost-event reports of a trace (streamed)."""
    digest = hashlib.sha256()
    size = lines = lost = 0
    lost_seen = False
    carry = b""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
            lines += block.count(b"\n")
            text = carry + block
            cut = text.rfind(b"\n") + 1
            for match in _LOST.finditer(text, 0, cut):
                lost += int(match.group(1))
                lost_seen = True
            carry = text[cut:]
    for match in _LOST.finditer(carry):
        lost += int(match.group(1))
        lost_seen = True
    return {"bytes": size, "lines": lines, "sha256": digest.hexdigest(), "lost_events": lost if lost_seen else None}


def stderr_tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _TAIL_BYTES))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def script_interpreter(executable: str | None) -> str | None:
    """For a "#!" script, the interpreter the kernel runs (``/usr/bin/env NAME`` resolved on PATH)."""
    if not executable:
        return None
    try:
        with open(executable, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env":
        names = [w for w in words[1:] if not w.startswith("-")]
        return shutil.which(names[0]) if names else None
    return words[0]


def elf_identity(executable: str | None) -> tuple[dict | None, str | None]:
    """The traced executable's ELF identity via the scan stage's elfinfo (issue 9), if present.

    For a script, the identity of its interpreter (the ELF file the kernel actually maps).
    """
    if not executable:
        return None, "no executable known (attach target vanished, or command not found)"
    seen = set()
    while (interpreter := script_interpreter(executable)) and executable not in seen:
        seen.add(executable)
        executable = interpreter
    try:
        from syspage.collect import elfinfo
    except ImportError as exc:
        return None, f"syspage.collect.elfinfo is not available ({exc})"
    try:
        info = elfinfo.identify(executable)
    except Exception as exc:  # a bad ELF file must not lose the trace: record why instead
        return None, f"{executable}: {type(exc).__name__}: {exc}"
    if info is None:
        return None, f"{executable}: not an ELF file"
    if hasattr(info, "as_row"):
        info = info.as_row()
    elif hasattr(info, "__dataclass_fields__"):
        import dataclasses
        info = dataclasses.asdict(info)
    return json.loads(json.dumps(info, default=_jsonable)), None


def _jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def new(tool: str, target, rundir: Path) -> dict:
    """The skeleton every run starts from; the facade fills it as the run goes."""
    return {
        "format": FORMAT,
        "syspage": syspage.__version__,
        "os": os_name(),
        "machine": machine.describe(),
        "tool": {"name": tool, "path": None, "version": None, "version_text": None,
                 "argv": None, "flags": None, "script": None},
        "trace": None,
        "extra_files": [],
        "target": {"mode": target.mode, "argv": list(target.argv) if target.argv else None,
                   "executable": None, "interpreter": None, "pid": target.pid, "cwd": os.getcwd(),
                   "duration_s": target.duration_s},
        "started": None,
        "ended": None,
        "wall_s": None,
        "exit": None,
        "tracer_exit": None,
        "elf": None,
        "elf_error": None,
        "overhead": None,
        "overhead_skipped": "not requested (--overhead N)",
        "error": None,
    }


def write(rundir: Path, meta: dict) -> Path:
    path = rundir / META_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def read(rundir: Path) -> dict:
    """meta.json of a RUNDIR (for parse and run): raises InputError on a missing or foreign file."""
    from syspage.errors import InputError
    path = Path(rundir) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(path, f"not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise InputError(path, f"holds {found!r}, this syspage reads {FORMAT!r}")
    return meta
