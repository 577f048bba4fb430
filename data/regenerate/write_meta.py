"""Write meta.json (collect-meta/1, docs/collect.md) for a trace taken by the scripts here.

The scripts attach strace to running servers (several pids at once, which
`syspage collect -p` does not do) or run a command under it, with the flags the
collect stage uses, so the traces read exactly like `syspage collect` output.
This writes the same keys collect writes, plus a `data` object saying which
script took the trace and what load drove it. The bundled trace is gzip
compressed: `trace.file` names the .gz, `trace.bytes/lines/sha256` describe the
uncompressed text (what strace wrote), `trace.compression` says "gzip".

Usage: write_meta.py --dir D --workload W --started EPOCH --ended EPOCH
                     (--pids "P1 P2 ..." --load "LOAD COMMAND" | --command-rc RC) -- [CMD...]
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import syspage
from syspage.machine import describe

FLAGS = ["-f", "-ttt", "-T", "-xx", "-s", "128"]


def when(epoch: float) -> dict:
    utc = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    local = utc.astimezone()
    offset = local.utcoffset() or datetime.timedelta(0)
    return {
        "utc": utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "local": local.isoformat(),
        "utc_offset_s": int(offset.total_seconds()),
        "timezone": time.strftime("%Z", time.localtime(epoch)),
        "epoch_ns": int(epoch * 1e9),
    }


def trace_facts(path: Path) -> dict:
    digest, size, lines = hashlib.sha256(), 0, 0
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    return {"file": path.name, "format": "strace", "bytes": size, "lines": lines,
            "sha256": digest.hexdigest(), "summary_in_trace": False, "compression": "gzip"}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--started", type=float, required=True)
    p.add_argument("--ended", type=float, required=True)
    p.add_argument("--pids", help="attach mode: the pids strace attached to")
    p.add_argument("--load", help="attach mode: the command that drove the load")
    p.add_argument("--command-rc", type=int, help="command mode: the traced command's exit status")
    p.add_argument("cmd", nargs="*")
    a = p.parse_args(argv)
    out = Path(a.dir)
    strace = shutil.which("strace")
    version_text = subprocess.run([strace, "-V"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    attach = a.pids is not None
    pids = [int(x) for x in a.pids.split()] if attach else []
    target_args = [x for pid in pids for x in ("-p", str(pid))] if attach else ["--", *a.cmd]
    executable = None
    if not attach and a.cmd:
        executable = shutil.which(a.cmd[0]) or a.cmd[0]
    elif attach:
        executable = str(Path(f"/proc/{pids[0]}/exe").resolve()) if Path(f"/proc/{pids[0]}/exe").exists() else None
    meta = {
        "format": "collect-meta/1",
        "syspage": syspage.__version__,
        "os": "linux",
        "machine": describe(),
        "tool": {
            "name": "strace", "path": strace, "version": version_text.rsplit(" ", 1)[-1],
            "version_text": version_text,
            "argv": [strace, *FLAGS, "-o", "trace.strace.txt", *target_args],
            "flags": FLAGS, "script": None,
        },
        "trace": trace_facts(out / "trace.strace.txt.gz"),
        "extra_files": [{"file": "README.md", "role": "what this trace is and how to regenerate it"}],
        "target": {
            "mode": "attach" if attach else "command",
            "argv": None if attach else a.cmd,
            "executable": executable,
            "pid": pids[0] if attach else None,
            "cwd": str(Path.cwd()),
            "duration_s": round(a.ended - a.started, 3) if attach else None,
        },
        "started": when(a.started),
        "ended": when(a.ended),
        "wall_s": round(a.ended - a.started, 3),
        "exit": None if attach else {"status": a.command_rc, "signal": None, "signal_name": None, "source": "tracer"},
        "tracer_exit": {"returncode": 0, "stderr_tail": ""},
        "elf": None,
        "elf_error": "not recorded by data/regenerate (see the workload's README.md for versions)",
        "overhead": None,
        "overhead_skipped": "not measured for the bundled traces",
        "error": None,
        "data": {
            "workload": a.workload,
            "regenerate": f"data/regenerate/{a.workload}.sh",
            "load_command": a.load,
            "attached_pids": pids or None,
        },
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
