"""Scan /usr/bin, /usr/lib and /usr/local/lib: syspage scan against a `readelf --dyn-syms`
baseline over the same ELF files, in the same run (issue 9).

Method: the file list is fixed first (one walk, which also warms the page cache); then the
two are run alternately, REPEATS times each (A, B, A, B, ...), so drift on this shared VM
hits both. The baseline runs readelf once per ELF file with `xargs -P <cores>`, the same
parallelism our scan uses. Wall-clock seconds; median and min/max of the repeats.
Target: the whole syspage scan (walk + read) in <= 30 s.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import time

from syspage.collect import elfinfo
from syspage.collect.scan import iter_files, scan_paths

NAME = "scan"
ROOTS = ["/usr/bin", "/usr/lib", "/usr/local/lib"]
TARGET_S = 30.0


def _elf_files(roots):
    return [p for p, problem in iter_files(roots) if problem is None and _is_elf(p)]


def _is_elf(path):
    try:
        return elfinfo.is_elf(path)
    except OSError:
        return False


def _readelf_all(files, jobs):
    t0 = time.perf_counter()
    subprocess.run(["xargs", "-0", "-P", str(jobs), "-n", "32", "readelf", "--dyn-syms", "-W"],
                   input=b"\0".join(f.encode() for f in files), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def _ours(roots):
    t0 = time.perf_counter()
    result = scan_paths(roots)
    return time.perf_counter() - t0, result


def run(quick: bool = False) -> dict:
    roots = ["/usr/bin"] if quick else [r for r in ROOTS if os.path.isdir(r)]
    repeats = 1 if quick else 3
    jobs = os.cpu_count() or 1
    files = _elf_files(roots)
    ours, base = [], []
    result = None
    for _ in range(repeats):
        seconds, result = _ours(roots)
        ours.append(seconds)
        base.append(_readelf_all(files, jobs))
    med_ours, med_base = statistics.median(ours), statistics.median(base)
    rows = [
        {"impl": "syspage scan (walk + identify + symbols)", "files": len(files), "median_s": round(med_ours, 2),
         "min_s": round(min(ours), 2), "max_s": round(max(ours), 2), "files_per_s": round(len(files) / med_ours, 1)},
        {"impl": "baseline: readelf --dyn-syms (xargs -P)", "files": len(files), "median_s": round(med_base, 2),
         "min_s": round(min(base), 2), "max_s": round(max(base), 2), "files_per_s": round(len(files) / med_base, 1)},
    ]
    return {
        "rows": rows,
        "roots": roots,
        "elf_rows": result.binaries.height,
        "problems": result.problems.height,
        "targets": [{"name": "whole scan of " + " ".join(roots), "target": f"<= {TARGET_S} s",
                     "value": f"{med_ours:.1f} s (readelf baseline {med_base:.1f} s)", "met": med_ours <= TARGET_S}],
        "method": __doc__,
    }
