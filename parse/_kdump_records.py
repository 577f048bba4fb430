"""kdump step 1: one line -> a record (``KRec``; in columns, RECORD_SCHEMA), a data line, or the
reason it was rejected.

``grammars/kdump.lark`` is the parser of record. Fast paths give exactly what it gives: the C
framer (native/kdump_frame.c, via _native.kdump_framer; read here by ``read_framed``) for the
common shapes, then ``_fast_record``/``_fast_unframed`` (compiled regexes) for the lines the C left,
then Lark for the rest (tests/test_parse_kdump_differential.py compares them on every line of the
test corpus, on mutated and on generated lines).

The other steps: parse/_kdump_detect.py (the OS and the timestamp columns), parse/_kdump_join.py
(records -> rows); parse/_kdump.py is the format that runs them, parse/_kdump_stream.py the
block-by-block join of parse_to_file.
"""
from __future__ import annotations

import functools
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import polars as pl
from lark import Token, Tree, UnexpectedInput

from syspage.parse._base import Framed
from syspage.parse._bsd import build_parser, lark_reject_reason, seconds_to_ns, to_int

GRAMMAR_PATH = Path(__file__).with_name("grammars") / "kdump.lark"
_intern = sys.intern

RECORD_TYPES = ("CALL", "RET", "NAMI", "GIO", "PSIG", "CSW", "SCTL", "STRU", "USER", "CAP", "PFLT", "PRET",
                "EMUL", "ARGS", "ENV", "PLDG", "PINS", "STRT", "MISC", "MIB", "EXEC", "FD", "ARG", "SAU", "XPND")
_TYPES_ALT = "|".join(RECORD_TYPES) + r"|UNKNOWN\(\d+\)"
# The header, as in grammars/kdump.lark HEADER, with groups: pid, tid (DragonFly "pid:tid", OpenBSD
# -H "pid/tid", NetBSD/FreeBSD -H "pid tid"), comm, timestamps, cpu (-c), record type. The command
# name is at most 32 characters (MAXCOMLEN is 19 on FreeBSD, 23 on OpenBSD) and there are at most
# three timestamps: bounds that keep a long line of prose from backtracking for ever.
_HEADER = (r" *(\d+)(?:[:/](\d+)| +(\d+)(?= ))? +(\S(?:[^\n]{0,30}?\S)??) +((?:-?\d+\.\d+ +){0,3})(?:(\d+) +)?"
           rf"({_TYPES_ALT})(?= |$)")
HEADER_RE = re.compile(_HEADER)
# The fast path: header, then the body of the common record shapes.
_FAST_RE = re.compile(_HEADER + r" *(.*)$")
_FAST_CALL = re.compile(r"(?:\(via syscall\) +)?(\[\d+\]|[A-Za-z_][A-Za-z0-9_.]*) *(\([^\n]*\))? *$")
_FAST_RET = re.compile(
    r"(\[\d+\]|[A-Za-z_][A-Za-z0-9_.]*) +(?:(-?(?:0x[0-9a-fA-F]+|\d+))(?: */ *(-?(?:0x[0-9a-fA-F]+|\d+)))?"
    r"|(-?(?:0x[0-9a-fA-F]+|\d+)) +errno +(-?(?:0x[0-9a-fA-F]+|\d+))(?: +([^ \n][^\n]*))?"
    r"|(JUSTRETURN|RESTART)) *$")
_FAST_GIO = re.compile(r"fd +(-?(?:0x[0-9a-fA-F]+|\d+)) +(read|wrote) +(-?(?:0x[0-9a-fA-F]+|\d+)) +(bytes|byte) *$")
_FAST_QUOTED = re.compile(r'"[^\n]*"$')


class KRec(NamedTuple):
    """One kdump record as the grammar reads it (header fields, then the body's parts)."""
    rtype: str                    # CALL, RET, NAMI, ... or "DUMP" for a data line
    pid: int | None
    tid: int | None
    comm: str | None
    stamps: tuple[str, ...]
    cpu: int | None
    name: str | None = None       # CALL/RET: the syscall as printed
    text: str | None = None       # CALL: "(args)"; RET: the return text; others: the body
    ret: str | None = None        # RET: first number ("-1", "4096") or JUSTRETURN/RESTART
    errno: str | None = None      # RET: the errno number after "errno"
    errmsg: str | None = None     # RET: strerror text


@functools.lru_cache(maxsize=1)
def parser():
    return build_parser(GRAMMAR_PATH.read_text())


def _split_header(header: str) -> tuple:
    m = HEADER_RE.match(header + "CALL")       # the terminal stops before the type
    pid, tid_a, tid_b, comm, stamps, cpu = m.group(1, 2, 3, 4, 5, 6)
    tid = tid_a or tid_b
    return (int(pid), int(tid) if tid else None, comm, tuple(stamps.split()), int(cpu) if cpu else None)


def _tok(children, name):
    for c in children:
        if isinstance(c, Token) and c.type == name:
            return str(c)
    return None


def record_from_tree(tree: Tree) -> KRec:
    """The grammar's tree for one line -> KRec (the parser of record)."""
    node = tree.children[0] if tree.data == "start" else tree
    if isinstance(node, Token) or node.data == "dump_line":
        return KRec("DUMP", None, None, None, (), None, text=str(node.children[0] if isinstance(node, Tree) else node))
    header, body = node.children
    pid, tid, comm, stamps, cpu = _split_header(str(header))
    kind = body.data
    ch = body.children
    if kind == "call":
        return KRec("CALL", pid, tid, comm, stamps, cpu, name=_tok(ch, "SYSCALL"), text=_tok(ch, "CALL_ARGS"))
    if kind == "ret":
        name, val = str(ch[0]), ch[1]
        nums = [str(t) for t in val.children if isinstance(t, Token) and t.type == "NUM"]
        if val.data == "ret_value":
            text = nums[0] + (f"/{nums[1]}" if len(nums) > 1 else "")
            return KRec("RET", pid, tid, comm, stamps, cpu, name=name, text=text, ret=nums[0])
        if val.data == "ret_errno":
            msg = _tok(val.children, "TEXT")
            text = f"{nums[0]} errno {nums[1]}" + (f" {msg}" if msg else "")
            return KRec("RET", pid, tid, comm, stamps, cpu, name=name, text=text, ret=nums[0], errno=nums[1], errmsg=msg)
        word = "JUSTRETURN" if val.data == "ret_justreturn" else "RESTART"
        return KRec("RET", pid, tid, comm, stamps, cpu, name=name, text=word, ret=word)
    if kind == "genio":
        fd, direction, count, unit = (str(t) for t in ch)
        return KRec("GIO", pid, tid, comm, stamps, cpu, text=f"fd {fd} {direction} {count} {unit}")
    if kind == "csw":
        return KRec("CSW", pid, tid, comm, stamps, cpu, text=" ".join(str(t) for t in ch))
    if kind == "info":
        rtype = str(ch[0])
        return KRec(rtype, pid, tid, comm, stamps, cpu, text=str(ch[1]) if len(ch) > 1 else None)
    rtype = "NAMI" if kind == "namei" else kind.upper()      # stru, sctl, user, cap, pflt, pret, emul, psig
    return KRec(rtype, pid, tid, comm, stamps, cpu, text=str(ch[0]) if ch else None)


def _fast_record(line: str) -> KRec | None:
    """The common record shapes by regex; None when the grammar must decide (or reject)."""
    m = _FAST_RE.match(line)
    if m is None:
        return None                         # data lines, rare records, prose: the grammar decides
    pid, tid_a, tid_b, comm, stamps, cpu, rtype, body = m.groups()
    tid = tid_a or tid_b
    # command and call names repeat on every line: one string object each (memory of big traces)
    head = (int(pid), int(tid) if tid else None, _intern(comm), tuple(stamps.split()) if stamps else (),
            int(cpu) if cpu else None)
    if rtype == "CALL":
        b = _FAST_CALL.match(body)
        if b is None:
            return None
        return KRec("CALL", *head, name=_intern(b.group(1)), text=b.group(2))
    if rtype == "RET":
        b = _FAST_RET.match(body)
        if b is None:
            return None
        name, v1, v2, e1, e2, msg, word = b.groups()
        name = _intern(name)
        if v1 is not None:
            return KRec("RET", *head, name=name, text=v1 + (f"/{v2}" if v2 else ""), ret=v1)
        if e1 is not None:
            text = f"{e1} errno {e2}" + (f" {msg}" if msg else "")
            return KRec("RET", *head, name=name, text=text, ret=e1, errno=e2, errmsg=msg)
        return KRec("RET", *head, name=name, text=word, ret=word)
    if rtype in ("NAMI", "SCTL", "EMUL"):
        if _FAST_QUOTED.match(body) is None:
            return None
        return KRec(rtype, *head, text=body)
    if rtype == "GIO":
        b = _FAST_GIO.match(body)
        if b is None:
            return None
        return KRec("GIO", *head, text="fd " + " ".join(b.groups()))
    if rtype in ("STRU", "CAP", "PFLT", "PRET", "PSIG"):
        if not body:
            return None
        return KRec(rtype, *head, text=body)
    return None


# The grammar's data-line terminals (DUMP_VIS, DUMP_TAB, DUMP_HEX, DUMP_ARG) after its ignored
# spaces, each running to the end of the line.
_FAST_DUMP = re.compile(r' *("[^\n]*|\t[^\n]*|0x[0-9a-fA-F]{4,} [^\n]*|\[\d+\] = [^\n]*)\Z')
PROSE = "prose around a pasted trace"


def _fast_unframed(line: str) -> KRec | str | None:
    """Lines without a record header: a data line, or prose (the grammar's reject reason for a
    line with no header does not depend on where Lark stopped); None when a header is there."""
    m = _FAST_DUMP.match(line)
    if m is not None:
        return KRec("DUMP", None, None, None, (), None, text=m.group(1))
    if HEADER_RE.match(line) is None:
        return PROSE
    return None


def read_line(line: str) -> KRec | str:
    """One line -> KRec, or the reason it was rejected (fast paths first, then the grammar)."""
    rec = _fast_record(line)
    if rec is not None:
        return rec
    rec = _fast_unframed(line)
    if rec is not None:
        return rec
    return grammar_line(line)


def grammar_line(line: str) -> KRec | str:
    """One line through the Lark grammar only: KRec or a reject reason."""
    try:
        return record_from_tree(parser().parse(line))
    except UnexpectedInput as exc:
        m = HEADER_RE.match(line)
        if m is None:
            return PROSE
        return f"kdump {m.group(7)} record: " + lark_reject_reason("kdump", exc)


# --- records: one row per non-blank line ---------------------------------------------------------
# What step 1 gives for one chunk of lines, in columns (the C framer writes them as text; lines it
# leaves to Python are read with read_line and added). rtype BAD is a rejected line; DUMP and BAD
# rows keep the whole line as their text (the join may still take a BAD line as visdump data).
# A RET's return value, errno and message are not columns: its text holds them (ret_parts).
# sep: the code of the character after the pid when there is a thread id (OS detection).
RECORD_SCHEMA = {"line_no": pl.Int64, "rtype": pl.String, "pid": pl.Int64, "tid": pl.Int64, "comm": pl.String,
                 "stamps": pl.String, "name": pl.String, "text": pl.String, "sep": pl.UInt8}
RECORD_COLUMNS = tuple(RECORD_SCHEMA)


@dataclass
class KdumpFramed(Framed):
    """One chunk's records, with what the join needs to know about the chunk."""

    source_file: str | None = None
    last_line_no: int = 0              # the chunk's last line: in the file's last chunk, the file's


def _header_sep(line: str) -> int:
    """The character after the pid in a record header: ':' (DragonFly), '/' (OpenBSD -H), ' '."""
    m = HEADER_RE.match(line)
    return ord(line[m.end(1)]) if m else ord(" ")


def ret_parts(text: str) -> tuple[str, str | None, str | None]:
    """A RET record's text (as record_from_tree builds it: "N", "N/N", "N errno N[ message]",
    "JUSTRETURN", "RESTART") -> (return value, errno, message), as the grammar gave them."""
    if " errno " in text:
        parts = text.split(" ", 3)
        return parts[0], parts[2], parts[3] if len(parts) > 3 else None
    return text.split("/", 1)[0], None, None


_INT64 = 1 << 63


def _out_of_range(rec: KRec) -> str | None:
    """Why a record's numbers do not fit the events table (Int64 pid, tid, ts_ns; Int32 errno)."""
    if not (-_INT64 <= (rec.pid or 0) < _INT64 and -_INT64 <= (rec.tid or 0) < _INT64):
        return "kdump record: pid or thread id does not fit 64 bits"
    for stamp in rec.stamps:
        if not -_INT64 <= seconds_to_ns(stamp) < _INT64:
            return f"kdump record: timestamp {stamp} does not fit 64-bit nanoseconds"
    if rec.errno is not None:
        number = to_int(rec.errno)
        if number is None or not -(1 << 31) <= number < (1 << 31):
            return f"kdump RET record: errno {rec.errno} does not fit 32 bits"
    return None


def _ascii_stamps(stamps: tuple[str, ...]) -> str:
    """The stamps joined by a space, in ASCII digits (the header's \\d also takes other Unicode
    decimal digits, which int() reads and Polars does not): the same seconds either way."""
    text = " ".join(stamps)
    if text.isascii():
        return text
    return " ".join("".join(str(int(ch)) if ch.isdecimal() else ch for ch in s) for s in stamps)


def read_records(numbered, read) -> tuple[dict[str, list], list[tuple[int, str, str]], int]:
    """(line_no, text) pairs -> record columns, rejects and the number of blank lines, in Python
    (``read`` is read_line, or grammar_line for the grammar-only baseline)."""
    cols = {c: [] for c in RECORD_COLUMNS}
    c_ln, c_type, c_pid, c_tid, c_comm, c_stamps, c_name, c_text, c_sep = cols.values()
    rejects = []
    ignored = 0
    for ln, line in numbered:
        if not line.strip():
            ignored += 1
            continue
        got = read(line)
        if not isinstance(got, str) and got.pid is not None:
            got = _out_of_range(got) or got
        c_ln.append(ln)
        if isinstance(got, str):
            rejects.append((ln, line, got))
            got = KRec("BAD", None, None, None, (), None)
        c_type.append(got.rtype)
        c_pid.append(got.pid)
        c_tid.append(got.tid)
        c_comm.append(got.comm)
        c_stamps.append(_ascii_stamps(got.stamps) if got.stamps else None)
        c_name.append(got.name)
        c_text.append(line if got.rtype in ("DUMP", "BAD") else got.text)
        c_sep.append(_header_sep(line) if got.tid is not None else None)
    return cols, rejects, ignored


def read_framed(framed: bytes) -> pl.DataFrame:
    """The C framer's output (0x1f-separated fields, one line per record) as record columns."""
    if not framed:
        return pl.DataFrame(schema=RECORD_SCHEMA)
    # every field the C leaves empty is an absent value (no kdump field it frames can be "")
    return pl.read_csv(io.BytesIO(framed), has_header=False, separator="\x1f", quote_char=None,
                       new_columns=list(RECORD_COLUMNS), schema=RECORD_SCHEMA)

