"""Find, read and check a trace: one file, a .gz, a collect RUNDIR, or strace -ff per-process files.

Everything a bad input can be is caught here, with a one-line InputError naming the file (and
the line, for non-UTF-8 text): missing, empty, binary, not UTF-8, an unreadable gzip.
"""
from __future__ import annotations

import codecs
import datetime as dt
import functools
import hashlib
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import polars as pl

from syspage.errors import InputError

# strace -ff -o NAME writes NAME.PID per process (strace(1), -ff).
CHECK_BLOCK = 1 << 22         # bytes read at a time when checking and hashing a plain file
_PER_PID = re.compile(r"^(?P<stem>.+)\.(?P<pid>\d+)$")


@dataclass(eq=False)
class TraceFile:
    """One checked trace file. A plain file's text stays on disk: the driver reads it in
    blocks (``blocks``), so a big trace is never held whole next to what it parses into
    (issue 3's memory target); ``data`` and ``lines`` read it whole for the formats that
    parse a file in one go. A gzip file's text is decompressed once and kept."""

    path: str                    # as shown to users and stored in source_file
    sha256: str                  # of the (decompressed) text
    line_count: int              # lines, the cut gzip line included
    terminated: bool             # the last line ended with a newline (else the tracer may have been cut off mid-line)
    pid: int | None = None       # strace -ff: the process the file belongs to
    # a gzip stream that ends early: the text of the line it was cut in (not in data; "" when
    # the cut fell on a line end); that line is counted (line_count) and rejected (GZIP_CUT)
    cut_tail: str | None = None
    disk: Path | None = None     # where the text is read from, on demand
    text: bytes | None = None    # the text, once read whole (checked to be UTF-8 without NUL bytes)
    gzipped: bool = False        # disk holds gzip: the text is decompressed as it is read
    size: int = 0                # bytes of text (a gzip stream cut mid-line: up to its last whole line)

    @property
    def data(self) -> bytes:
        """The whole text (read from disk on first use for a plain file)."""
        if self.text is None and self.disk is not None:
            raw = _read_plain(self.disk)
            self.text = _gunzip(self.disk, raw)[0] if self.gzipped else raw
        return self.text or b""

    def release(self) -> None:
        """Drop the text held in memory once it has been framed (it can be read again)."""
        self.text = None if self.disk is not None else b""
        self.__dict__.pop("lines", None)

    @functools.cached_property
    def lines(self) -> pl.Series:
        """The lines, without terminators, as a Polars Series (built on first use)."""
        return split_lines(self.data.decode("utf-8"))[0]

    def head(self, n: int) -> list[str]:
        """The first n lines (for sniffing), without reading the whole file."""
        if self.text is None and self.disk is not None:
            raw = next(self.blocks(1 << 18), (b"", 1))[0][: 1 << 18]
        else:
            raw = self.data[: 1 << 18]
        piece = raw.decode("utf-8", errors="replace")
        return [ln.removesuffix("\r") for ln in piece.split("\n")[:n]]

    def blocks(self, size: int) -> Iterator[tuple[bytes, int]]:
        """(text, number of its first line) of consecutive pieces of about SIZE bytes, each
        ending at a line end (the last may end unterminated): the whole text, in order, read
        (and decompressed) from disk as it goes unless it is in memory already."""
        line_no = 1
        if self.text is not None or self.disk is None:
            data = self.data
            start = 0
            while start < len(data):
                end = data.find(b"\n", min(len(data), start + size))
                end = len(data) if end < 0 else end + 1
                block = data[start:end]
                yield block, line_no
                line_no += block.count(b"\n")
                start = end
            return
        carry = b""
        for piece in _pieces(self.disk, self.gzipped, size, self.size):
            carry += piece
            start = 0
            while len(carry) - start >= size:   # (a decompressed piece can hold several blocks)
                end = carry.find(b"\n", start + size - 1) + 1
                if end == 0:   # a line longer than a block: read on
                    break
                yield carry[start:end], line_no
                line_no += carry.count(b"\n", start, end)
                start = end
            carry = carry[start:]
        if carry:   # the rest: whole lines, the last perhaps unterminated
            yield carry, line_no


@dataclass
class TraceInput:
    files: list[TraceFile]
    format: str | None = None    # from meta.json
    os: str | None = None        # from meta.json
    date: dt.date | None = None  # the local date the trace started (meta.json started.local)
    utc_offset_s: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        if len(self.files) == 1:
            return self.files[0].sha256
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.path}\0{f.sha256}\n".encode())
        return h.hexdigest()

    @property
    def lines_total(self) -> int:
        return sum(f.line_count for f in self.files)


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("trace"), dict):
        raise InputError(path, "not a collect meta.json (no 'trace' object; see docs/collect.md)")
    return meta


def _meta_fields(meta: dict) -> dict:
    started = meta.get("started") or {}
    date = None
    local = started.get("local")
    if isinstance(local, str):
        try:
            date = dt.datetime.fromisoformat(local.replace("Z", "+00:00")).date()
        except ValueError:
            date = None
    return {
        "format": (meta.get("trace") or {}).get("format"),
        "os": meta.get("os"),
        "date": date,
        "utc_offset_s": int(started.get("utc_offset_s") or 0),
        "meta": meta,
    }


def _check_text(path: Path, data: bytes) -> None:
    """Raise InputError unless data is non-empty UTF-8 text without NUL bytes (checked in
    blocks, so a big trace is not decoded into one more copy of itself)."""
    if not data or data.isspace():  # (no .strip(): that would copy a big trace)
        raise InputError(path, "empty file: no trace lines")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise InputError(path, f"binary file, not trace text (NUL byte on line {line})")
    decoder = codecs.getincrementaldecoder("utf-8")()
    block = 1 << 22
    offset = 0
    try:
        for offset in range(0, len(data), block):
            decoder.decode(data[offset:offset + block], final=offset + block >= len(data))
    except UnicodeDecodeError:
        try:  # only on the error path: decode it all for the exact offset
            data.decode("utf-8")
            bad = 0
        except UnicodeDecodeError as full:
            bad = full.start
        line = data.count(b"\n", 0, bad) + 1
        column = bad - (data.rfind(b"\n", 0, bad) + 1) + 1
        raise InputError(path, f"line {line}: not UTF-8 text (byte 0x{data[bad]:02x} at column {column})") from None


def _read_plain(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise InputError(path, "is a directory without collect's meta.json or strace -ff files") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None


class _TextCheck:
    """_check_text, block by block, for a text that is not held whole: NUL bytes, UTF-8 (a
    character may span blocks), blank only; and its sha256, newlines, size and last byte.
    ``whole`` gives the whole text on the error path only, for the exact line and column."""

    def __init__(self, path: Path, whole: Callable[[], bytes]):
        self.path, self.whole = path, whole
        self.digest = hashlib.sha256()
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.newlines, self.size, self.content, self.last = 0, 0, False, b""

    def feed(self, block: bytes, final: bool = False) -> None:
        nul = block.find(b"\x00")
        if nul >= 0:
            line = self.newlines + block.count(b"\n", 0, nul) + 1
            raise InputError(self.path, f"binary file, not trace text (NUL byte on line {line})")
        try:
            self.decoder.decode(block, final=final)
        except UnicodeDecodeError:
            _check_text(self.path, self.whole())
            raise
        self.digest.update(block)
        self.newlines += block.count(b"\n")
        self.size += len(block)
        self.content = self.content or (bool(block) and not block.isspace())
        self.last = block[-1:] or self.last

    def finish(self) -> tuple[str, int, bool, int]:
        """(sha256, newlines, ends with a newline, size) once every block is fed."""
        self.feed(b"", final=True)
        if not self.content:
            raise InputError(self.path, "empty file: no trace lines")
        return self.digest.hexdigest(), self.newlines, self.last == b"\n", self.size


def _read_pieces(path: Path, size: int) -> Iterator[bytes]:
    try:
        with path.open("rb") as fh:
            while piece := fh.read(size):
                yield piece
    except IsADirectoryError:
        raise InputError(path, "is a directory without collect's meta.json or strace -ff files") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None


def _inflate(path: Path, size: int, state: dict) -> Iterator[bytes]:
    """The text of a gzip file, piece by piece, as _gunzip reads it: member after member, an
    error in the first member an InputError, trailing garbage after a whole member the end.
    state["ended"]: False when the stream stops inside a member (the file was cut)."""
    state["ended"] = True
    members, inflater, fed = 0, zlib.decompressobj(wbits=31), False
    for data in _read_pieces(path, size):
        if members and not fed and data[:2] != b"\x1f\x8b":
            return   # trailing garbage after a whole member: gzip(1) warns and ignores it
        while data:
            fed = True
            try:
                out = inflater.decompress(data)
            except zlib.error as exc:
                if members:
                    return
                raise InputError(path, f"cannot decompress gzip: {exc}") from None
            if out:
                yield out
            if not inflater.eof:
                break   # it took all of data; the member goes on in the next piece
            members += 1
            data = inflater.unused_data
            inflater, fed = zlib.decompressobj(wbits=31), False
            if data and data[:2] != b"\x1f\x8b":
                return
    if fed:   # the input ended inside a member
        state["ended"] = False
        rest = inflater.flush()
        if rest:
            yield rest


def _pieces(path: Path, gzipped: bool, size: int, limit: int) -> Iterator[bytes]:
    """The text of a file on disk, piece by piece, up to LIMIT bytes (what was checked)."""
    left = limit
    for piece in (_inflate(path, size, {}) if gzipped else _read_pieces(path, size)):
        if len(piece) >= left:
            if left:
                yield piece[:left]
            return
        left -= len(piece)
        yield piece


def _scan_plain(path: Path) -> tuple[str, int, bool, int]:
    """(sha256, newlines, ends with a newline, size) of a plain text file, checked as
    _check_text does but block by block, so the text is not held whole (the driver reads it
    again, in blocks, to parse it)."""
    check = _TextCheck(path, lambda: _read_plain(path))
    for block in _read_pieces(path, CHECK_BLOCK):
        check.feed(block)
    return check.finish()


def _scan_gzip(path: Path) -> tuple[str, int, bool, int, str | None]:
    """_scan_plain for a gzip file, decompressed as it is read (not kept), and the text of
    the line a cut stream ends in (not part of the text; see _gunzip)."""
    state: dict = {}
    check = _TextCheck(path, lambda: _gunzip(path, _read_plain(path))[0])
    tail = b""   # decompressed after the last newline: checked once the line is known whole
    for piece in _inflate(path, CHECK_BLOCK, state):
        tail += piece
        cut = tail.rfind(b"\n") + 1
        if cut:
            check.feed(tail[:cut])
            tail = tail[cut:]
    if state["ended"]:
        check.feed(tail)
        return (*check.finish(), None)
    if check.size == 0:
        raise InputError(path, "cannot decompress gzip: the stream ends before its first line ended")
    # the cut may split a UTF-8 character: the tail is only shown in the reject
    return (*check.finish(), tail.decode("utf-8", errors="replace"))


def _gunzip(path: Path, data: bytes) -> tuple[bytes, str | None]:
    """The text of a gzip file, member after member (gzip(1) concatenates them), and the
    line the stream was cut in when it ends early (a collect killed while compressing, a
    copy cut short): what decompressed is kept, up to the last whole line."""
    pieces: list[bytes] = []
    rest = data
    ended = True
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            pieces.append(inflater.decompress(rest))
        except zlib.error as exc:
            if pieces:  # trailing garbage after a whole member: gzip(1) warns and ignores it
                break
            raise InputError(path, f"cannot decompress gzip: {exc}") from None
        if not inflater.eof:
            pieces.append(inflater.flush())
            ended = False
            break
        rest = inflater.unused_data
        if rest[:2] != b"\x1f\x8b":
            break
    text = b"".join(pieces)
    if ended:
        return text, None
    keep = text.rfind(b"\n") + 1
    if keep == 0:
        raise InputError(path, "cannot decompress gzip: the stream ends before its first line ended")
    # the cut may split a UTF-8 character: the tail is only shown in the reject
    return text[:keep], text[keep:].decode("utf-8", errors="replace")


def split_lines(text: str) -> tuple[pl.Series, bool]:
    """The lines of text as a Polars Series (split in Rust), and whether the last one ended."""
    terminated = text.endswith("\n")
    series = pl.Series("text", [text], dtype=pl.String)
    lines = series.str.split("\n").explode(empty_as_null=False)
    if terminated:
        lines = lines.head(lines.len() - 1)
    return lines.str.strip_suffix("\r").rename("text"), terminated


def read_file(path: Path, shown: str | None = None, pid: int | None = None) -> TraceFile:
    """Check and hash the file block by block; its text is read again when it is parsed."""
    magic = next(_read_pieces(path, 2), b"")
    if magic == b"\x1f\x8b":  # gzip, whatever the name says
        sha, newlines, terminated, size, cut_tail = _scan_gzip(path)
        return TraceFile(path=shown or str(path), sha256=sha,
                         line_count=newlines + (0 if terminated and cut_tail is None else 1),
                         terminated=terminated, pid=pid, cut_tail=cut_tail, disk=path, gzipped=True, size=size)
    sha, newlines, terminated, size = _scan_plain(path)
    return TraceFile(path=shown or str(path), sha256=sha, line_count=newlines + (0 if terminated else 1),
                     terminated=terminated, pid=pid, disk=path, size=size)


def _per_pid_files(directory: Path, stem: str | None = None) -> list[tuple[Path, int]]:
    found = []
    for p in sorted(directory.iterdir()):
        m = _PER_PID.match(p.name)
        if m and p.is_file() and (stem is None or m["stem"] == stem):
            found.append((p, int(m["pid"])))
    stems = {(_PER_PID.match(p.name)["stem"]) for p, _ in found}
    if stem is None and len(stems) > 1:
        raise InputError(directory, f"holds strace -ff files of several traces ({', '.join(sorted(stems))}); name one")
    return sorted(found, key=lambda item: item[1])


def open_trace(path: str | Path) -> TraceInput:
    """Resolve and read PATH: a trace file (.gz too), a collect RUNDIR, or strace -ff files."""
    path = Path(path)
    meta: dict = {}
    if path.is_dir():
        meta_path = path / "meta.json"
        if meta_path.is_file():
            meta = read_meta(meta_path)
            trace_name = str(meta["trace"].get("file") or "")
            trace = path / trace_name
            if not trace.is_file() and (path / (trace_name + ".gz")).is_file():
                trace = path / (trace_name + ".gz")
            if not trace_name or not trace.is_file():
                raise InputError(meta_path, f"names trace file {trace_name!r}, which is not in {path}")
            return TraceInput(files=[read_file(trace)], **_meta_fields(meta))
        per_pid = _per_pid_files(path)
        if not per_pid:
            raise InputError(path, "is a directory without collect's meta.json or strace -ff files (NAME.PID)")
        return TraceInput(files=[read_file(p, pid=pid) for p, pid in per_pid])
    if not path.exists():
        per_pid = _per_pid_files(path.parent, path.name) if path.parent.is_dir() else []
        if per_pid:  # strace -ff -o trace wrote trace.PID files: take them all
            return TraceInput(files=[read_file(p, pid=pid) for p, pid in per_pid])
        raise InputError(path, "no such file")
    beside = path.parent / "meta.json"
    if beside.is_file():
        try:
            candidate = read_meta(beside)
        except InputError:
            candidate = {}
        named = str((candidate.get("trace") or {}).get("file") or "")
        if named and (path.name in (named, named + ".gz") or named.removesuffix(".gz") == path.name):
            meta = candidate
    m = _PER_PID.match(path.name)  # one strace -ff file, given alone: the suffix is its pid
    trace = read_file(path, pid=int(m["pid"]) if m and len(m["pid"]) >= 2 else None)
    return TraceInput(files=[trace], **(_meta_fields(meta) if meta else {}))
