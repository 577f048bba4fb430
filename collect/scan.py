"""Scan files and directories for ELF binaries and the page-eligible functions they use.

``syspage scan`` (issue 9). Every file is accounted for: an ELF file becomes a scan/1 row,
a file that cannot be read becomes a scan_problems/1 row with a one-line reason, and
non-ELF files are counted. Nothing a file contains can crash the scan: each file is read
in a worker that turns any failure into a problem row.
"""
from __future__ import annotations

import os
import stat
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import polars as pl

from syspage import catalog, schema
from syspage.collect import elfinfo
from syspage.errors import ScanError

# Functions that mean "this binary may enter the kernel for page fields without going
# through a libc wrapper the page can replace" (the phase-out question).
_RAW_SYSCALL = ("syscall",)
_RAW_SYSCTL = ("sysctl", "__sysctl", "sysctlbyname", "__sysctlbyname")
_CHUNK = 16


@dataclass
class ScanResult:
    binaries: pl.DataFrame      # scan/1
    problems: pl.DataFrame      # scan_problems/1
    files_seen: int             # regular files looked at (ELF or not)
    not_elf: int                # regular files that are not ELF


def iter_files(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[str, str | None]]:
    """Yield (path, problem) for every file under paths; problem is None for a regular file.

    Directories are walked without following symlinks (so no loop can form); a symlink
    given or found is resolved once, and a loop or dangling link is a problem. Hard links
    and repeated paths are yielded once (by device and inode).
    """
    paths = [os.fspath(p) for p in paths]
    seen: set[tuple[int, int]] = set()

    def visit(path: str) -> Iterator[tuple[str, str | None]]:
        try:
            st = os.stat(path)              # follows symlinks: ELOOP / ENOENT for bad ones
        except OSError as exc:
            yield path, _os_reason(exc)
            return
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
        if stat.S_ISDIR(st.st_mode):
            if os.path.islink(path) and path not in top:
                return                      # do not descend through links: they can form loops
            yield from walk(path, st.st_dev)
        elif stat.S_ISREG(st.st_mode):
            yield path, None
        else:
            yield path, "not a regular file (device, FIFO or socket): skipped"

    def walk(directory: str, dev: int) -> Iterator[tuple[str, str | None]]:
        # scandir's d_type and inode spare a stat per plain file (most of /usr/lib's 60,000).
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            yield directory, _os_reason(exc)
            return
        for entry in entries:
            try:
                if entry.is_symlink():
                    yield from visit(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    key = (dev, entry.inode())
                    if key not in seen:
                        seen.add(key)
                        yield from walk(entry.path, entry.stat(follow_symlinks=False).st_dev)
                elif entry.is_file(follow_symlinks=False):
                    key = (dev, entry.inode())
                    if key not in seen:
                        seen.add(key)
                        yield entry.path, None
                else:
                    yield entry.path, "not a regular file (device, FIFO or socket): skipped"
            except OSError as exc:
                yield entry.path, _os_reason(exc)

    top = set(paths)
    for p in paths:
        yield from visit(p)


def _os_reason(exc: OSError) -> str:
    import errno as errno_mod

    if exc.errno == errno_mod.ELOOP:
        return "symlink loop"
    if exc.errno == errno_mod.ENOENT:
        return "no such file (or a dangling symlink)"
    if exc.errno in (errno_mod.EACCES, errno_mod.EPERM):
        return f"unreadable: {exc.strerror}"
    return f"unreadable: {exc.strerror or exc}"


def _scan_one(path: str, functions: frozenset[str]) -> tuple[str, dict | str | None]:
    """("elf", row) | ("problem", reason) | ("not_elf", None) for one file, never raising."""
    try:
        ident = elfinfo.identify(path, functions)
    except elfinfo.NotElfError:
        return "not_elf", None
    except OSError as exc:
        return "problem", _os_reason(exc)
    except Exception as exc:  # noqa: BLE001 - any failure of a corrupt file is a problem row
        return "problem", f"truncated or corrupt ELF: {exc.__class__.__name__}: {str(exc)[:160]}".replace("\n", " ")
    return "elf", _row(ident)


def _scan_chunk(paths: list[str], functions: frozenset[str]) -> list[tuple[str, str, dict | str | None]]:
    return [(p, *_scan_one(p, functions)) for p in paths]


def _row(ident: elfinfo.ElfIdentity) -> dict:
    row = ident.as_row()
    imported = {name.split("@", 1)[0] for name in ident.imports}
    page_calls = imported - set(_RAW_SYSCALL) - set(_RAW_SYSCTL)
    row["uses_page_calls"] = bool(page_calls)
    if ident.static:
        row["old_path"] = "static binary: its embedded libc makes the system calls itself"
    elif imported & set(_RAW_SYSCTL):
        row["old_path"] = "imports sysctl(3) directly: the MIB names are only known at run time"
    elif imported & set(_RAW_SYSCALL):
        row["old_path"] = "imports syscall(2): may issue eligible calls by number"
    else:
        row["old_path"] = None
    for drop in ("needed", "soname"):
        row.pop(drop, None)
    return row


def scan_paths(paths: Iterable[str | os.PathLike], workers: int | None = None,
               progress: Callable[[int, int], None] | None = None,
               functions: Iterable[str] | None = None) -> ScanResult:
    """Scan files and directories (recursively); see the module docstring."""
    paths = list(paths)
    if not paths:
        raise ScanError("nothing to scan: give at least one file or directory")
    wanted = frozenset(functions if functions is not None else catalog.load().scan_functions) | frozenset(_RAW_SYSCALL)
    files: list[str] = []
    problems: list[dict] = []
    for path, problem in iter_files(paths):
        if problem is None:
            files.append(path)
        else:
            problems.append({"path": path, "reason": problem})

    rows: list[dict] = []
    not_elf = 0
    chunks = [files[i:i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    workers = workers or os.cpu_count() or 1
    done = 0

    def consume(results):
        nonlocal not_elf, done
        for path, status, payload in results:
            if status == "elf":
                rows.append(payload)
            elif status == "problem":
                problems.append({"path": path, "reason": payload})
            else:
                not_elf += 1
        done += len(results)
        if progress:
            progress(done, len(files))

    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            consume(_scan_chunk(chunk, wanted))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for results in pool.map(_scan_chunk, chunks, [wanted] * len(chunks)):
                consume(results)

    binaries = schema.SCAN.conform(pl.DataFrame(rows, schema=schema.SCAN.columns)) if rows else schema.SCAN.empty()
    binaries = binaries.sort("path")
    problem_frame = (schema.SCAN_PROBLEMS.conform(pl.DataFrame(problems, schema=schema.SCAN_PROBLEMS.columns))
                     if problems else schema.SCAN_PROBLEMS.empty()).sort("path")
    return ScanResult(binaries=binaries, problems=problem_frame, files_seen=len(files), not_elf=not_elf)


def write(result: ScanResult, output: str | os.PathLike) -> list[Path]:
    """Write the scan as Parquet (scan/1 + scan_problems/1 beside it) or CSV, by the suffix."""
    out = Path(output)
    problems_out = out.with_name(out.stem + ".problems" + out.suffix)
    if out.suffix == ".parquet":
        meta = {"files_seen": result.files_seen, "not_elf": result.not_elf}
        schema.SCAN.write(result.binaries, out, extra_metadata=meta)
        schema.SCAN_PROBLEMS.write(result.problems, problems_out)
    elif out.suffix == ".csv":
        out.parent.mkdir(parents=True, exist_ok=True)
        flat = result.binaries.with_columns(pl.col("imports").list.join(" "), pl.col("defines").list.join(" "))
        flat.write_csv(out)
        result.problems.write_csv(problems_out)
    else:
        raise ScanError(f"{out}: write .parquet or .csv")
    return [out, problems_out]
