"""The C fast path of the strace parser (native/strace_frame.c), built at first use.

The shared object is compiled with the system C compiler ($CC, else cc) into the cache
directory, named by the hash of its source, and loaded with ctypes (no Python API in the C,
so nothing to match against the interpreter). When no compiler is there, ``strace_framer()``
is None and the parser uses its Polars regex path instead (same records, slower).
ctypes releases the GIL during the call, so chunks frame in parallel threads.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("native") / "strace_frame.c"


class _FrameResult(ctypes.Structure):
    _fields_ = [
        ("framed", ctypes.c_void_p), ("framed_len", ctypes.c_size_t),
        ("other", ctypes.c_void_p), ("other_len", ctypes.c_size_t),
        ("lines", ctypes.c_int64), ("blank", ctypes.c_int64),
    ]


def _build_dir() -> Path:
    root = os.environ.get("SYSPAGE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "syspage") / "native"


def _compile(source: Path) -> Path | None:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = _build_dir() / f"{source.stem}-{digest}.so"
    if target.is_file():
        return target
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        proc = subprocess.run([cc, "-O2", "-std=c99", "-shared", "-fPIC", "-o", tmp, str(source)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            os.unlink(tmp)
            return None
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError):
        return None
    return target


def _load_framer(source: Path, name: str):
    """Build and load one C framer (native/<name>_frame.c: sp_<name>_frame / sp_<name>_free with
    the _FrameResult layout) and return its Python callable, or None when it cannot be built."""
    if os.environ.get("SYSPAGE_NO_NATIVE"):
        return None
    path = _compile(source)
    if path is None:
        return None
    lib = ctypes.CDLL(str(path))
    frame_c, free_c = getattr(lib, f"sp_{name}_frame"), getattr(lib, f"sp_{name}_free")
    frame_c.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64, ctypes.POINTER(_FrameResult)]
    frame_c.restype = ctypes.c_int
    free_c.argtypes = [ctypes.POINTER(_FrameResult)]
    free_c.restype = None

    def frame(data: bytes, start: int, end: int, first_line_no: int) -> tuple[bytes, bytes, int, int]:
        """Frame data[start:end] (whole lines): (framed records, other lines, lines, blank lines)."""
        res = _FrameResult()
        base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
        if frame_c(base + start, end - start, first_line_no, ctypes.byref(res)) != 0:
            raise MemoryError(f"{name} framer: out of memory")
        try:
            framed = ctypes.string_at(res.framed, res.framed_len) if res.framed_len else b""
            other = ctypes.string_at(res.other, res.other_len) if res.other_len else b""
            return framed, other, res.lines, res.blank
        finally:
            free_c(ctypes.byref(res))

    return frame


@functools.lru_cache(maxsize=1)
def strace_framer():
    """The loaded C strace framer (a callable) or None when it cannot be built here."""
    return _load_framer(SOURCE, "strace")


KDUMP_SOURCE = Path(__file__).with_name("native") / "kdump_frame.c"


@functools.lru_cache(maxsize=1)
def kdump_framer():
    """The loaded C kdump framer (native/kdump_frame.c) or None when it cannot be built here."""
    return _load_framer(KDUMP_SOURCE, "kdump")


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        libc = ctypes.CDLL(None)
        return libc.malloc_trim            # glibc only
    except (OSError, AttributeError):
        return None


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc malloc_trim(3); a no-op elsewhere).

    glibc keeps what the framers' threads freed (their output buffers, the copies ctypes made) in
    its arenas, resident; what is assembled next comes from Polars' own allocator, so without
    this the freed buffers would add to the peak."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
