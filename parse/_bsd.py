"""Helpers shared by the BSD/macOS/Solaris format modules (kdump, truss, DTrace, dtruss).

Kept here so the four modules normalize names, numbers and times the same way
(docs/schema.md: ``syscall`` is lower case, without compatibility prefixes or leading underscores).
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

from lark import Lark, UnexpectedInput

# FreeBSD's syscall table names old ABIs "compat11.fstat", "compat.lseek" (sys/kern/syscalls.c,
# generated from syscalls.master); truss and DTrace show "freebsd11_fstat", "freebsd32_mmap".
_COMPAT_PREFIX = re.compile(r"^(?:compat\d*\.|freebsd\d+_|ofreebsd\d+_|o?linux_)")
# NetBSD renames a call when its ABI changes and keeps the old one: "__fstat50", "___lwp_park60"
# (the suffix is the NetBSD version, sys/kern/syscalls.master). Only stripped on NetBSD.
_NETBSD_VERSIONED = re.compile(r"^(_{2,}[a-z_0-9]*?[a-z_])(\d{2})$")


@functools.lru_cache(maxsize=4096)
def normalize_syscall(raw: str | None, os_name: str | None = None) -> str | None:
    """``__sysctl`` -> ``sysctl``, ``compat11.fstat`` -> ``fstat``, ``freebsd32_mmap`` -> ``mmap``."""
    if raw is None:
        return None
    name = raw.strip().lower()
    if name.startswith("["):          # kdump "[123]": a number outside the ABI's table
        return name
    if os_name == "netbsd":
        m = _NETBSD_VERSIONED.match(name)
        if m:
            name = m.group(1)
    name = _COMPAT_PREFIX.sub("", name)
    return name.lstrip("_") or raw


def to_int(text: str | None) -> int | None:
    """A decimal or 0x-hex integer as printed by a tracer, as a signed 64-bit value."""
    if text is None:
        return None
    t = text.strip()
    try:
        if t.lower().startswith(("0x", "-0x")):
            value = int(t, 16)
            if value >= 1 << 63:              # kdump -n prints returns as unsigned hex
                value -= 1 << 64
        else:
            value = int(t)
    except ValueError:
        return None
    if not -(1 << 63) <= value < (1 << 63):
        return None
    return value


def seconds_to_ns(text: str) -> int:
    """``"12.000345"`` or ``"-0.5"`` (seconds with any number of decimals) -> nanoseconds."""
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    sec, _, frac = text.partition(".")
    ns = int(sec or 0) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    return -ns if neg else ns


def lark_reject_reason(fmt: str, exc: UnexpectedInput) -> str:
    """A one-line reason for a line the grammar refused, with the column."""
    col = getattr(exc, "column", None)
    kind = exc.__class__.__name__
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None)
    hint = f"; expected {', '.join(sorted(expected)[:4])}" if expected else ""
    return f"{fmt} grammar: {kind} at column {col}{hint}"


def _lark_cache(grammar_text: str) -> str | bool:
    """Where Lark keeps its analysis of this grammar (building it costs about 0.2 s per process;
    Lark checks the file against the grammar's hash and its own version before using it). In
    syspage's cache directory, not Lark's default in the shared /tmp: the file is a pickle."""
    root = os.environ.get("SYSPAGE_CACHE")
    directory = (Path(root) if root else Path.home() / ".cache" / "syspage") / "lark"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return str(directory / f"{hashlib.sha256(grammar_text.encode()).hexdigest()[:16]}.lark")


def build_parser(grammar_text: str, start: str = "start") -> Lark:
    """LALR + contextual lexer, strict (terminal collisions are errors), as STYLE.md asks."""
    return Lark(grammar_text, parser="lalr", lexer="contextual", strict=True, start=start,
                maybe_placeholders=False, cache=_lark_cache(grammar_text + "\0" + start))
