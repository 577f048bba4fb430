"""kdump(1) text -> events/1 rows (FreeBSD, and OpenBSD, NetBSD, DragonFly where samples exist).

Three steps, as strace-process-tree does it: lines -> records -> joined rows.

1. Each line becomes a record (``KRec``; in columns, RECORD_SCHEMA) or a data line.
   ``grammars/kdump.lark`` is the parser of record. Fast paths give exactly what it gives: the C
   framer (native/kdump_frame.c, via _native.kdump_framer; chunks on all cores) for the common
   shapes, then ``_fast_record``/``_fast_unframed`` (compiled regexes) for the lines the C left,
   then Lark for the rest (tests/test_parse_kdump_differential.py compares them on every line of
   the test corpus, on mutated and on generated lines).
2. The OS and the timestamp columns (-T absolute, -E elapsed, -R relative, any combination:
   kdump.c dumpheader() prints them in that order) are told apart over the first records.
3. CALL and RET of the same thread are joined into one ``call`` row (line_no of CALL, line_no_end of
   RET); SCTL names are attached to their call's ``sysctl_name``; GIO/ARGS data lines extend the
   record they belong to. ``join_frame`` does it in Polars; ``KdumpFormat._join``, record by
   record, is the reference the grammar-only path uses.

Sources: FreeBSD usr.bin/kdump/kdump.c (https://github.com/freebsd/freebsd-src/blob/main/usr.bin/kdump/kdump.c),
kdump(1) https://man.freebsd.org/cgi/man.cgi?query=kdump . docs/formats-bsd.md has the details.
"""
from __future__ import annotations

import functools
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import polars as pl
from lark import Token, Tree, UnexpectedInput

from syspage.parse import _native
from syspage.parse._base import FormatOutput, Framed, ParseContext
from syspage.parse._bsd import build_parser, lark_reject_reason, normalize_syscall, seconds_to_ns, to_int
from syspage.parse._errno_bsd import errno_name

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
_OPENBSD_MIB = re.compile(r"^[\d.]+<([^>]*)>")
# The kernel names a node's integer arguments too ("kern.proc.args.1234" for setproctitle's
# {CTL_KERN, KERN_PROC, KERN_PROC_ARGS, pid}; OpenBSD "kern.proc.all.0.616.0"): sysctl_name keeps
# the node, so the catalog's "kern.proc.args" matches; args_raw keeps what kdump printed.
_MIB_ARGS_TAIL = re.compile(r"(?:\.-?\d+)+$")


def mib_node(name: str) -> str:
    return _MIB_ARGS_TAIL.sub("", name) or name

DETECT_RECORDS = 50_000      # records that decide the OS and the timestamp columns
KIND_OF_TYPE = {
    "CALL": "call", "RET": "call", "NAMI": "namei", "GIO": "genio", "PSIG": "signal", "CSW": "csw",
    "SCTL": "sysctl", "STRU": "struct", "USER": "user", "CAP": "capability", "PFLT": "fault",
    "PRET": "fault", "EMUL": "emul",
    "MISC": "user",          # NetBSD kdump names utrace(2) records MISC
}
# Records whose data follows on their own lines (visdump/hexdump, OpenBSD exec arguments).
_HAS_DATA_LINES = ("GIO", "USER", "MISC", "ARGS", "ARG", "ENV", "STRU")


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


# --- OS detection -----------------------------------------------------------------------------
_OPENBSD_CALLS = {"kbind", "pledge", "unveil", "__set_tcb", "__get_tcb", "getthrid", "__thrsleep", "__thrwakeup",
                  "__tfork", "msyscall", "pinsyscall", "pinsyscalls", "__threxit", "sendsyscall", "__pledge_open"}
_FREEBSD_CALLS = {"__sysctl", "__sysctlbyname", "_umtx_op", "thr_self", "thr_new", "thr_exit", "thr_kill",
                  "cap_enter", "cap_rights_limit", "sysarch", "cpuset_getaffinity", "__realpathat", "fstatat",
                  "sigfastblock", "__specialfd"}
_DRAGONFLY_CALLS = {"umtx_wakeup", "umtx_sleep", "lwp_gettid", "extexit", "lwp_create", "lwp_create2"}
_NETBSD_NAME = re.compile(r"^_{2,}[a-z_]+\d\d$|^_lwp_")
_SMALL_HEX_FD = re.compile(r"\((?:0x[0-9a-f]{1,2})[,)]")


def detect_os(rtypes: Sequence[str], names: Sequence[str | None], texts: Sequence[str | None],
              tids: Sequence[int | None], raw_headers_with: dict[str, int]) -> str:
    """The OS whose kdump wrote these records, given as columns (docs/formats-bsd.md lists the signs)."""
    votes = {"freebsd": 0, "openbsd": 0, "netbsd": 0, "dragonfly": 0}
    votes["dragonfly"] += 10 * raw_headers_with.get(":", 0)
    votes["openbsd"] += 10 * raw_headers_with.get("/", 0)
    spaced = raw_headers_with.get("space", 0)
    for rtype, name, text, tid in zip(rtypes, names, texts, tids):
        if rtype == "EMUL" and text and "netbsd" in text:
            votes["netbsd"] += 10
        elif rtype in ("ARGS", "ENV", "PLDG", "PINS"):
            votes["openbsd"] += 5
        elif rtype in ("CAP", "SCTL", "PFLT", "PRET"):
            votes["freebsd"] += 5
        elif rtype == "CALL" and name:
            if name in _OPENBSD_CALLS or (name == "sysctl" and text and "<" in text.split(",")[0]):
                votes["openbsd"] += 3
            elif name in _FREEBSD_CALLS or name.startswith(("compat", "freebsd")):
                votes["freebsd"] += 3
            elif name in _DRAGONFLY_CALLS:
                votes["dragonfly"] += 3
            elif _NETBSD_NAME.match(name):
                votes["netbsd"] += 3
            elif text is None or "<unused>" in text:
                votes["freebsd"] += 1        # FreeBSD prints no "()" for a call without arguments
            elif _SMALL_HEX_FD.match(text) and name in ("write", "read", "close", "exit"):
                votes["freebsd"] += 1        # FreeBSD/DragonFly kdump print small fds in hex
        elif tid is not None and rtype == "RET" and tid < 100000 and spaced:
            votes["netbsd"] += 1             # FreeBSD thread ids start above PID_MAX (99999)
    best = max(votes, key=votes.get)
    return best if votes[best] > 0 else "unknown"


def detect_os_frame(head: pl.DataFrame, raw_headers_with: dict[str, int]) -> str:
    """detect_os on a frame of records (rtype, name, text, tid): the same votes, counted in Polars."""
    rtype, name, text, tid = pl.col("rtype"), pl.col("name"), pl.col("text"), pl.col("tid")
    call = (rtype == "CALL") & name.is_not_null() & (name != "")
    text_set = text.is_not_null() & (text != "")
    first_arg_mib = text.str.split(",").list.first().str.contains("<", literal=True)
    vote = (  # (OS, points) of the first rule that holds, as detect_os's elif chain
        pl.when((rtype == "EMUL") & text_set & text.str.contains("netbsd", literal=True)).then(pl.lit("netbsd:10"))
        .when(rtype.is_in(["ARGS", "ENV", "PLDG", "PINS"])).then(pl.lit("openbsd:5"))
        .when(rtype.is_in(["CAP", "SCTL", "PFLT", "PRET"])).then(pl.lit("freebsd:5"))
        .when(call & (name.is_in(list(_OPENBSD_CALLS)) | ((name == "sysctl") & text_set & first_arg_mib)))
        .then(pl.lit("openbsd:3"))
        .when(call & (name.is_in(list(_FREEBSD_CALLS)) | name.str.starts_with("compat")
                      | name.str.starts_with("freebsd"))).then(pl.lit("freebsd:3"))
        .when(call & name.is_in(list(_DRAGONFLY_CALLS))).then(pl.lit("dragonfly:3"))
        .when(call & name.str.contains(_NETBSD_NAME.pattern)).then(pl.lit("netbsd:3"))
        .when(call & (text.is_null() | text.str.contains("<unused>", literal=True))).then(pl.lit("freebsd:1"))
        .when(call & text.str.contains("^" + _SMALL_HEX_FD.pattern) & name.is_in(["write", "read", "close", "exit"]))
        .then(pl.lit("freebsd:1"))
        .when(call).then(pl.lit(None, dtype=pl.String))
        .when(tid.is_not_null() & (rtype == "RET") & (tid < 100000) & pl.lit(bool(raw_headers_with.get("space", 0))))
        .then(pl.lit("netbsd:1"))
    )
    votes = {"freebsd": 0, "openbsd": 0, "netbsd": 0, "dragonfly": 0}
    votes["dragonfly"] += 10 * raw_headers_with.get(":", 0)
    votes["openbsd"] += 10 * raw_headers_with.get("/", 0)
    for got, n in head.select(vote.alias("v")).drop_nulls().get_column("v").value_counts().iter_rows():
        os_name, points = got.split(":")
        votes[os_name] += int(points) * n
    best = max(votes, key=votes.get)
    return best if votes[best] > 0 else "unknown"


# --- timestamps -------------------------------------------------------------------------------
def _stamp_roles(stamp_texts: Sequence[str | None]) -> tuple[int, tuple[str, ...]]:
    """How many timestamp columns there are and what each is: 'abs' (-T), 'elapsed' (-E), 'rel' (-R).

    kdump.c prints -T, -E, -R in that order when several are given. -T is seconds since the epoch;
    -E and -R both start at 0: -E (since the first record) never decreases, -R (since the
    previous record) does, so one non-absolute column is told apart by that.
    """
    stamped = [tuple(t.split(" ")) for t in stamp_texts if t]
    if not stamped:
        return 0, ()
    k = len(stamped[0])
    cols = [[seconds_to_ns(s[i]) for s in stamped if len(s) == k] for i in range(k)]
    roles: list[str] = []
    rest = list(range(k))
    if cols[0] and cols[0][0] >= 100_000_000 * 1_000_000_000:
        roles.append("abs")
        rest = rest[1:]
    if len(rest) == 2:
        roles += ["elapsed", "rel"]
    elif len(rest) == 1:
        c = cols[rest[0]]
        roles.append("elapsed" if all(a <= b for a, b in zip(c, c[1:])) else "rel")
    elif len(rest) >= 3:
        roles += ["elapsed", "rel"] + ["?"] * (len(rest) - 2)
    return k, tuple(roles)


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


# --- the format -------------------------------------------------------------------------------
_COLUMNS = ("line_no", "line_no_end", "ts_ns", "pid", "tid", "comm", "kind", "syscall", "syscall_raw",
            "args_raw", "ret", "ret_raw", "errno", "errno_name", "duration_ns", "incomplete", "sysctl_name")


_DTYPES = {"line_no": pl.Int64, "line_no_end": pl.Int64, "ts_ns": pl.Int64, "pid": pl.Int64, "tid": pl.Int64,
           "comm": pl.String, "kind": pl.String, "syscall": pl.String, "syscall_raw": pl.String,
           "args_raw": pl.String, "ret": pl.Int64, "ret_raw": pl.String, "errno": pl.Int32,
           "errno_name": pl.String, "duration_ns": pl.Int64, "incomplete": pl.Boolean, "sysctl_name": pl.String}
CUT_OFF = "cut off mid-line"


class KdumpFormat:
    """kdump in two steps, as parse/_base.py's ChunkedFormat: ``frame_bytes`` (C, chunks on all
    cores) or ``frame`` (Python) reads the lines of a chunk into records; ``assemble`` detects the
    OS and the timestamp columns from the first DETECT_RECORDS records of each file and joins."""

    name = "kdump"

    def sniff(self, head: Sequence[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        hits = sum(1 for h in lines if HEADER_RE.match(h))
        if hits == 0:
            return 0.0
        return min(1.0, 0.5 + 0.5 * hits / len(lines)) if hits >= 2 or hits == len(lines) else 0.3

    def frame(self, lines: pl.Series, ctx: ParseContext) -> KdumpFramed:
        texts = lines.to_list() if isinstance(lines, pl.Series) else list(lines)
        first = ctx.first_line_no
        read = grammar_line if ctx.grammar_only else read_line
        cols, rejects, ignored = read_records(zip(range(first, first + len(texts)), texts), read)
        return KdumpFramed(records=pl.DataFrame(cols, schema=RECORD_SCHEMA), rejects=rejects, ignored=ignored,
                           source_file=ctx.source_file, last_line_no=first + len(texts) - 1)

    def frame_bytes(self, data: bytes, start: int, end: int, ctx: ParseContext) -> KdumpFramed | None:
        """Frame data[start:end] (whole lines, UTF-8 already checked) with the C framer; None when
        it is not available here (the driver then uses ``frame``)."""
        framer = None if ctx.grammar_only else _native.kdump_framer()
        if framer is None:
            return None
        framed, other, n_lines, blank = framer(data, start, end, ctx.first_line_no)
        records = read_framed(framed)
        del framed
        rejects = [(ln, line, PROSE) for ln, line in
                   records.filter(pl.col("rtype") == "BAD").select("line_no", "text").iter_rows()]
        numbered = []
        for row in other.decode("utf-8").split("\n")[:-1]:
            line_no, _, text = row.partition("\x1f")
            numbered.append((int(line_no), text))
        cols, slow_rejects, ignored = read_records(numbered, read_line)
        if numbered:
            records = pl.concat([records, pl.DataFrame(cols, schema=RECORD_SCHEMA)]).sort("line_no")
            rejects = sorted(rejects + slow_rejects)
        return KdumpFramed(records=records, rejects=rejects, ignored=blank + ignored, source_file=ctx.source_file,
                           last_line_no=ctx.first_line_no + n_lines - 1)

    def assemble(self, parts: list[KdumpFramed], ctx: ParseContext) -> FormatOutput:
        """Join each file's records (the driver hands over every chunk of every file, in order;
        when it has tagged them with source_file, rows and rejects keep it)."""
        files: list[list[KdumpFramed]] = []
        for part in parts:
            if files and files[-1][0].source_file == part.source_file:
                files[-1].append(part)
            else:
                files.append([part])
        _native.trim_heap()               # the framers' freed buffers: not part of the peak
        events, rejects, os_names = [], [], []
        for chunks in files:
            tagged = "source_file" in chunks[0].records.columns
            path = chunks[0].source_file
            records = pl.concat([p.records.select(RECORD_COLUMNS) for p in chunks])
            if ctx.grammar_only:          # the parser of record, step by step (the baseline)
                records = {c: records.get_column(c).to_list() for c in RECORD_COLUMNS}
            file_rejects = [r[:3] for p in chunks for r in p.rejects]
            frame, os_name = self._assemble_file(records, file_rejects, chunks[-1].last_line_no, ctx)
            del records
            if tagged:
                frame = frame.with_columns(pl.lit(path, dtype=pl.String).alias("source_file"))
                file_rejects = [(*r, path) for r in file_rejects]
            events.append(frame)
            rejects += file_rejects
            os_names.append(os_name)
        if not events:
            events.append(self._assemble_file({c: [] for c in RECORD_COLUMNS}, [], 0, ctx)[0])
        return FormatOutput(events=pl.concat(events) if len(events) > 1 else events[0], summary=pl.DataFrame(),
                            rejects=rejects, ignored=sum(p.ignored for p in parts),
                            os=next((o for o in os_names if o), None))

    def spilling_assembler(self, ctx: ParseContext, directory: Path) -> SpillingAssembler | None:
        """For parse_to_file: one file's rows joined block by block and written to DIRECTORY
        (None for the grammar-only parse, which joins record by record in memory)."""
        return None if ctx.grammar_only else SpillingAssembler(ctx, directory)

    def parse(self, lines: Sequence[str], ctx: ParseContext) -> FormatOutput:
        lines = lines.to_list() if isinstance(lines, pl.Series) else list(lines)
        part = None
        text = "".join(line + "\n" for line in lines)
        if "\r" not in text:              # the C drops a line's trailing CR as the driver's reader does
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:    # lone surrogates (undecodable input handed over as str)
                data = None
            if data is not None:
                part = self.frame_bytes(data, 0, len(data), ctx)
        del text
        if part is not None:
            out = self.assemble([part], ctx)
        else:
            # in Python lists, not a DataFrame: a str from the caller may hold what Polars cannot
            first = ctx.first_line_no
            read = grammar_line if ctx.grammar_only else read_line
            cols, rejects, ignored = read_records(zip(range(first, first + len(lines)), lines), read)
            events, os_name = self._assemble_file(cols, rejects, first + len(lines) - 1, ctx)
            out = FormatOutput(events=events, summary=pl.DataFrame(), rejects=rejects, ignored=ignored, os=os_name)
        if ctx.progress:
            ctx.progress(len(lines), len(lines))
        return out

    def _assemble_file(self, records: pl.DataFrame | dict[str, list], rejects: list, last_line_no: int,
                       ctx: ParseContext) -> tuple[pl.DataFrame, str]:
        """One file's records (in line order) -> its events; completes and sorts its rejects.

        A DataFrame is joined by ``join_frame`` (Polars); a dict of lists by ``_join``, record by
        record: the reference, which the grammar-only path uses and the differential tests
        compare with the fast path."""
        # the last line of the file, rejected with a record header: the tracer stopped mid-line
        rejects[:] = [(ln, text, CUT_OFF if ln == last_line_no and HEADER_RE.match(text) else reason)
                      for ln, text, reason in rejects]
        heads = ("rtype", "name", "text", "tid", "stamps", "sep") if isinstance(records, dict) else ("tid", "stamps", "sep")
        if isinstance(records, pl.DataFrame):
            head = {c: records.get_column(c).head(DETECT_RECORDS).to_list() for c in heads}
        else:
            head = {c: records[c][:DETECT_RECORDS] for c in heads}
        counts = separator_counts(head["tid"], head["sep"])
        if ctx.os:
            os_name = ctx.os
        elif isinstance(records, pl.DataFrame):
            os_name = detect_os_frame(records.head(DETECT_RECORDS), counts)
        else:
            os_name = detect_os(head["rtype"], head["name"], head["text"], head["tid"], counts)
        stamps = _stamp_roles(head["stamps"])
        del head
        if isinstance(records, pl.DataFrame):
            events = join_frame(records, stamps, os_name, rejects)
        else:
            events = self._join(records, stamps, os_name, rejects)
        rejects.sort()
        return events, os_name

    def _join(self, records: dict[str, list], stamps, os_name, rejects) -> pl.DataFrame:
        k, roles = stamps
        pick = None
        for want in ("abs", "elapsed", "rel"):
            if want in roles:
                pick = (roles.index(want), want)
                break
        clock = None if pick is None else ("epoch" if pick[1] == "abs" else "relative")
        cols = {c: [] for c in _COLUMNS}
        (c_line, c_end, c_ts, c_pid, c_tid, c_comm, c_kind, c_sys, c_raw, c_args, c_ret, c_retraw, c_errno,
         c_ename, c_dur, c_inc, c_sctl) = (cols[c] for c in _COLUMNS)
        open_calls: dict[tuple, int] = {}
        last_row = -1            # the row data lines extend
        last_type = None
        vis_open = False         # inside a visdump "..." block that has not closed yet
        cum = 0
        dropped: set[int] = set()    # rejected lines that turned out to be visdump data
        columns = [records.pop(c) for c in RECORD_COLUMNS]
        for (ln, rtype, pid, tid, comm, stamp_text, name, text, _sep) in zip(*columns):
            if rtype == "DUMP" or rtype == "BAD":
                line = text                      # the whole line; a DUMP's data starts after its spaces
                if rtype == "DUMP" and last_type in _HAS_DATA_LINES and last_row >= 0:
                    c_end[last_row] = ln
                    text = text.lstrip(" ")
                    if text.startswith('"'):
                        vis_open = not (len(text) > 1 and text.endswith('"'))
                    elif vis_open and text.endswith('"'):
                        vis_open = False
                    continue
                if rtype == "BAD" and vis_open and last_row >= 0 and line[:1].isspace():
                    # a data line of an open visdump that a pager turned from TAB into spaces
                    c_end[last_row] = ln
                    dropped.add(ln)
                    if line.rstrip().endswith('"'):
                        vis_open = False
                    continue
                if rtype == "DUMP":
                    rejects.append((ln, line, "kdump data line without a GIO/USER/ARGS record before it"))
                vis_open = False
                last_type = None
                continue
            vis_open = False
            last_type = rtype
            ts = None
            if pick is not None and stamp_text is not None:
                parts = stamp_text.split(" ")
                if len(parts) == k:
                    ts = seconds_to_ns(parts[pick[0]])
                    if pick[1] == "rel":
                        cum += ts
                        ts = cum
            key = (pid, tid)
            if rtype == "RET":
                ret, errno, errmsg = ret_parts(text)
                idx = open_calls.pop(key, None)
                if idx is not None and c_raw[idx] == name:
                    c_end[idx] = ln
                    c_inc[idx] = False
                    if ts is not None and c_ts[idx] is not None:
                        c_dur[idx] = ts - c_ts[idx]
                else:
                    # a RET without its CALL (the trace began inside the call, or another call's RET)
                    idx = len(c_line)
                    _new_row(cols, ln, ts, pid, tid, comm, "call")
                    c_sys[idx] = normalize_syscall(name, os_name)
                    c_raw[idx] = name
                c_retraw[idx] = text
                if ret in ("JUSTRETURN", "RESTART"):
                    # kernel pseudo-errors (sys/sys/errno.h: ERESTART -1, EJUSTRETURN -2): no user errno
                    c_ename[idx] = "E" + ret
                else:
                    c_ret[idx] = to_int(ret)
                    if errno is not None:
                        number = to_int(errno)
                        c_errno[idx] = number
                        c_ename[idx] = errno_name(os_name, number, errmsg)
                last_row = idx
                continue
            idx = len(c_line)
            if rtype == "CALL":
                open_calls.pop(key, None)      # an earlier CALL with no RET stays incomplete
                _new_row(cols, ln, ts, pid, tid, comm, "call")
                c_sys[idx] = normalize_syscall(name, os_name)
                c_raw[idx] = name
                args = text[1:-1] if text else None
                c_args[idx] = args
                if args and name == "sysctl":
                    m = _OPENBSD_MIB.match(args)
                    if m:
                        c_sctl[idx] = mib_node(m.group(1))
                open_calls[key] = idx
                last_row = idx
                continue
            _new_row(cols, ln, ts, pid, tid, comm, KIND_OF_TYPE.get(rtype, "info"))
            c_args[idx] = text if rtype in KIND_OF_TYPE else (f"{rtype} {text}" if text else rtype)
            if rtype == "SCTL":
                sysctl = mib_node(text.strip('"')) if text else None
                c_sctl[idx] = sysctl
                call = open_calls.get(key)
                if call is not None and c_sctl[call] is None:
                    c_sctl[call] = sysctl
            last_row = idx
        del columns
        if dropped:
            rejects[:] = [r for r in rejects if r[0] not in dropped]
        # one column at a time, each Python list freed once it is a Series (peak memory)
        del (c_line, c_end, c_ts, c_pid, c_tid, c_comm, c_kind, c_sys, c_raw, c_args, c_ret, c_retraw, c_errno,
             c_ename, c_dur, c_inc, c_sctl, open_calls)
        series = []
        for c in _COLUMNS:
            series.append(pl.Series(c, cols.pop(c), dtype=_DTYPES[c]))
        frame = pl.DataFrame(series)
        return frame.with_columns(
            pl.lit("kdump").alias("source_format"),
            pl.lit(os_name).alias("os"),
            pl.when(pl.col("ts_ns").is_not_null()).then(pl.lit(clock, dtype=pl.String)).alias("ts_clock"),
        )


# --- step 3 in Polars: the same rows as KdumpFormat._join, column by column -----------------------
_DATA_ORPHAN = "kdump data line without a GIO/USER/ARGS record before it"


def _seconds_to_ns(stamp: pl.Expr) -> pl.Expr:
    """parse/_bsd.py seconds_to_ns on a column of "-?\\d+\\.\\d+" texts (ASCII, see _ascii_stamps)."""
    body = stamp.str.strip_prefix("-")
    sec = body.str.extract(r"^(\d+)\.", 1).cast(pl.Int64)
    frac = body.str.extract(r"\.(\d+)$", 1).str.pad_end(9, "0").str.slice(0, 9).cast(pl.Int64)
    ns = sec * 1_000_000_000 + frac
    return pl.when(stamp.str.starts_with("-")).then(-ns).otherwise(ns)


def _mapped(values: pl.Series, fn, dtype) -> pl.Series:
    """fn on each distinct value (names, return values and errnos repeat), then spread back."""
    uniq = values.drop_nulls().unique().to_list()
    return values.replace_strict(uniq, [fn(u) for u in uniq], default=None, return_dtype=dtype)


def _data_lines(records: pl.DataFrame, rejects: list, stream: dict | None = None) -> tuple[pl.DataFrame, set[int]]:
    """Which data lines extend the record before them (the last one sets its line_no_end), which
    are rejected, and which rejected lines were visdump data after all: KdumpFormat._join's rules
    on the data lines alone (a Python loop over those lines only).

    stream (SpillingAssembler): "data_state", (active, vis_open) of the last carried record
    whose data lines go on in this block, is read; "data_end", the state after the last data
    line, (seg, active, vis_open), is written."""
    is_data = pl.col("rtype").is_in(["DUMP", "BAD"])
    data = records.select(
        pl.when(~is_data).then(pl.col("r")).forward_fill().alias("seg"),
        pl.when(~is_data).then(pl.col("rtype")).forward_fill().alias("seg_type"),
        "rtype", "text", "line_no", is_data.alias("is_data"),
    ).filter(pl.col("is_data"))
    ends: dict[int, int] = {}
    dropped: set[int] = set()
    current, active, vis_open = -1, False, False
    start = stream.get("data_state") if stream else None
    start_seg = stream["carried"] - 1 if start else None
    texts = data.get_column("text")           # a rejected line's text is only read inside a visdump
    dumps = data.select(pl.when(pl.col("rtype") == "DUMP").then(pl.col("text"))).to_series().to_list()
    columns = (data.get_column(c).to_list() for c in ("seg", "seg_type", "rtype", "line_no"))
    for i, (seg, seg_type, rtype, ln) in enumerate(zip(*columns)):
        if seg != current:             # the first data line after a record
            current, active, vis_open = seg, seg is not None and seg_type in _HAS_DATA_LINES, False
            if start is not None and seg == start_seg:   # its data lines began in the block before
                active, vis_open = start
        if rtype == "DUMP" and active:
            ends[seg] = ln
            text = dumps[i].lstrip(" ")   # the data after the spaces the grammar ignores
            if text.startswith('"'):
                vis_open = not (len(text) > 1 and text.endswith('"'))
            elif vis_open and text.endswith('"'):
                vis_open = False
            continue
        if rtype == "BAD" and vis_open:
            line = texts[i]
            if line[:1].isspace():
                ends[seg] = ln            # a visdump data line a pager turned from TAB into spaces
                dropped.add(ln)
                if line.rstrip().endswith('"'):
                    vis_open = False
                continue
        if rtype == "DUMP":
            rejects.append((ln, dumps[i], _DATA_ORPHAN))
        active, vis_open = False, False
    if stream is not None:
        stream["data_end"] = (current, active, vis_open)
    extended = pl.DataFrame({"r": list(ends), "data_end": list(ends.values())},
                            schema={"r": pl.UInt32, "data_end": pl.Int64})
    return extended, dropped


JOIN_SLICE = 65_536             # rows whose output columns are built at a time (peak memory)


def join_frame(records: pl.DataFrame, stamps, os_name: str, rejects: list, stream: dict | None = None) -> pl.DataFrame:
    """One file's records (line order) -> events/1 rows, as KdumpFormat._join builds them one
    record at a time: a RET joins the CALL before it when that is its thread's last CALL or RET
    and has the same name; an SCTL names its thread's open call (the first SCTL wins, an OpenBSD
    MIB in the arguments before it); data lines extend the GIO/USER/ARGS/STRU record before them.

    The pairing works on record numbers only (narrow frames); the output columns are then
    gathered from the record columns, JOIN_SLICE rows at a time (peak memory).

    stream: one block of SpillingAssembler's, whose first stream["carried"] records are carried
    from the blocks before (their time in the column "_ts"); stream["rel"] is the -R sum so far
    (read and updated); see _data_lines for the data lines' state."""
    k, roles = stamps
    pick = next(((roles.index(w), w) for w in ("abs", "elapsed", "rel") if w in roles), None)
    clock = None if pick is None else ("epoch" if pick[1] == "abs" else "relative")
    r = pl.int_range(pl.len(), dtype=pl.UInt32).alias("r")
    is_data = pl.col("rtype").is_in(["DUMP", "BAD"])
    extended, dropped = _data_lines(records.select(r, "rtype", "text", "line_no"), rejects, stream)
    if dropped:
        rejects[:] = [rj for rj in rejects if rj[0] not in dropped]
    if pick is None:
        ts = pl.lit(None, dtype=pl.Int64)
    else:
        parts = pl.col("stamps").str.split(" ")
        ts = pl.when(parts.list.len() == k).then(_seconds_to_ns(parts.list.get(pick[0], null_on_oob=True)))
    key = ["pid", "tid"]
    is_call, is_ret = pl.col("rtype") == "CALL", pl.col("rtype") == "RET"
    carried = stream["carried"] if stream else 0
    rec = records.select(r, "rtype", "pid", "tid", "name", ts.alias("ts"), is_data.alias("is_data"),
                         *(["_ts"] if carried else [])).filter(~pl.col("is_data")).drop("is_data")
    if carried:   # carried records keep the time they were given (their -R sum included)
        rec = rec.with_columns(pl.when(pl.col("r") >= carried).then(pl.col("ts")).alias("ts"))
    if pick is not None and pick[1] == "rel":     # -R: time since the previous record, summed
        rec = rec.with_columns(pl.when(pl.col("ts").is_not_null()).then(pl.col("ts").fill_null(0).cum_sum()
                                                                        + (stream["rel"] if stream else 0)))
        if stream:
            last = rec.get_column("ts").drop_nulls()
            if last.len():
                stream["rel"] = last[-1]
    if carried:
        rec = rec.with_columns(pl.when(pl.col("r") < carried).then(pl.col("_ts")).otherwise(pl.col("ts"))
                               .alias("ts")).drop("_ts")
    # a RET joins the previous CALL/RET record of its thread when that is a CALL of the same name
    pairs = rec.filter(is_call | is_ret).select(
        "r", "rtype", "name",
        pl.col("rtype").shift(1).over(key).alias("prev_type"),
        pl.col("name").shift(1).over(key).alias("prev_name"),
        pl.col("r").shift(1).over(key).alias("prev_r"),
    ).filter(is_ret & (pl.col("prev_type") == "CALL") & (pl.col("prev_name") == pl.col("name"))).select(
        pl.col("prev_r").alias("r"), pl.col("r").alias("ret_r"))
    # an SCTL belongs to its thread's open call: the last CALL/RET record before it, if a CALL
    owner = (pl.when(is_call).then(pl.col("r").cast(pl.Int64)).when(is_ret).then(pl.lit(-1, dtype=pl.Int64))
             .forward_fill().over(key))
    sctl = rec.select("r", "rtype", owner.alias("owner")).filter(
        (pl.col("rtype") == "SCTL") & (pl.col("owner") >= 0)).select(
        pl.col("owner").cast(pl.UInt32).alias("r"), pl.col("r").alias("sctl_r")).unique(
        "r", keep="first", maintain_order=True)
    rows = (rec.select("r", "ts")
            .join(pairs.select(pl.col("ret_r").alias("r")), on="r", how="anti", maintain_order="left")
            .join(pairs, on="r", how="left", maintain_order="left")
            .join(extended, on="r", how="left", maintain_order="left")
            .join(sctl, on="r", how="left", maintain_order="left"))
    own_ret = records.get_column("rtype").gather(rows.get_column("r")) == "RET"   # a RET without its CALL
    rows = rows.with_columns(pl.coalesce("ret_r", pl.when(own_ret).then(pl.col("r"))).alias("ret_r"))
    del own_ret
    rows = rows.join(rec.select(pl.col("r").alias("ret_r"), pl.col("ts").alias("ret_ts")), on="ret_r", how="left",
                     maintain_order="left")
    del rec, pairs, sctl, extended
    # the rows' columns, a slice of rows at a time: what building them needs stays small
    pieces = [_event_rows(records, rows.slice(start, JOIN_SLICE), os_name, clock)
              for start in range(0, max(rows.height, 1), JOIN_SLICE)]
    return pl.concat(pieces) if len(pieces) > 1 else pieces[0]



def _event_rows(records: pl.DataFrame, rows: pl.DataFrame, os_name: str, clock: str | None) -> pl.DataFrame:
    """events/1 columns for these rows (r: the record, ret_r: its RET record, data_end, sctl_r: its
    first SCTL record, ts, ret_ts), each gathered from the record columns."""
    at, ret_at = rows.get_column("r"), rows.get_column("ret_r")

    def gather(column: str, index: pl.Series) -> pl.Series:
        return records.get_column(column).gather(index)

    rows = rows.with_columns(
        gather("line_no", at), gather("rtype", at), gather("pid", at), gather("tid", at), gather("comm", at),
        gather("name", at), gather("text", at),
        gather("line_no", ret_at).alias("ret_line"), gather("text", ret_at).alias("ret_raw"),
        gather("text", rows.get_column("sctl_r")).alias("sctl_text"),
    )
    del at, ret_at
    is_call, is_ret = pl.col("rtype") == "CALL", pl.col("rtype") == "RET"
    # ret_parts, on the column: "N", "N/N", "N errno N[ message]", "JUSTRETURN", "RESTART"
    rows = rows.with_columns(
        pl.col("ret_raw").str.extract(r"^([^ /]+)", 1).alias("ret_text"),
        pl.col("ret_raw").str.extract(r"^[^ ]+ errno ([^ ]+)", 1).alias("errno_text"),
        pl.col("ret_raw").str.extract(r"^[^ ]+ errno [^ ]+ ((?s:.*))$", 1).alias("errmsg"),
    )
    joined = pl.col("ret_r").is_not_null() & is_call
    pseudo = pl.col("ret_text").is_in(["JUSTRETURN", "RESTART"])
    # the values that need Python's own rules: each distinct one once
    err_keys = rows.select(pl.concat_str([pl.col("errno_text"), pl.col("errmsg").fill_null("")],
                                         separator="\x00").alias("k"), "errno_text", "errmsg")
    names = {key_: errno_name(os_name, to_int(e), m)
             for key_, e, m in err_keys.filter(pl.col("errno_text").is_not_null()).unique("k").iter_rows()}
    mib = rows.select(pl.when(is_call & (pl.col("name") == "sysctl")).then(pl.col("text").str.slice(1)
                                                                          .str.head(-1))).to_series()
    rows = rows.with_columns(
        _mapped(rows.get_column("ret_text"), to_int, pl.Int64).alias("ret_num"),
        _mapped(rows.get_column("errno_text"), to_int, pl.Int64).alias("errno_num"),
        err_keys.get_column("k").replace_strict(list(names), list(names.values()), default=None,
                                                 return_dtype=pl.String).alias("errno_named"),
        _mapped(rows.get_column("name"), lambda n: normalize_syscall(n, os_name), pl.String).alias("syscall_n"),
        _mapped(mib, lambda a: mib_node(m.group(1)) if a and (m := _OPENBSD_MIB.match(a)) else None,
                pl.String).alias("mib"),
        _mapped(rows.get_column("sctl_text").str.strip_chars('"'), mib_node, pl.String).alias("sctl_first"),
        _mapped(rows.select(pl.when(pl.col("rtype") == "SCTL").then(pl.col("text").str.strip_chars('"')))
                .to_series(), mib_node, pl.String).alias("sctl_own"),
        rows.get_column("rtype").replace_strict(list(KIND_OF_TYPE), list(KIND_OF_TYPE.values()), default="info",
                                                return_dtype=pl.String).alias("kind"),
    )
    del err_keys, mib
    cr = is_call | is_ret
    typed = pl.col("rtype").is_in(list(KIND_OF_TYPE))
    events = rows.select(
        "line_no",
        pl.coalesce(pl.when(joined).then(pl.col("ret_line")), "data_end", "line_no").alias("line_no_end"),
        pl.col("ts").alias("ts_ns"), "pid", "tid", "comm",
        pl.when(cr).then(pl.lit("call")).otherwise(pl.col("kind")).alias("kind"),
        pl.when(cr).then(pl.col("syscall_n")).alias("syscall"),
        pl.when(cr).then(pl.col("name")).alias("syscall_raw"),
        pl.when(is_call).then(pl.col("text").str.slice(1).str.head(-1))
        .when(is_ret).then(pl.lit(None, dtype=pl.String))
        .when(typed).then(pl.col("text"))
        .when(pl.col("text").is_null() | (pl.col("text") == "")).then(pl.col("rtype"))
        .otherwise(pl.concat_str([pl.col("rtype"), pl.lit(" "), pl.col("text")])).alias("args_raw"),
        pl.when(~pseudo).then(pl.col("ret_num")).alias("ret"),
        "ret_raw",
        pl.when(~pseudo).then(pl.col("errno_num")).cast(pl.Int32).alias("errno"),
        pl.when(pseudo).then(pl.lit("E") + pl.col("ret_text")).otherwise(pl.col("errno_named")).alias("errno_name"),
        pl.when(joined).then(pl.col("ret_ts") - pl.col("ts")).alias("duration_ns"),
        (cr & ~joined).alias("incomplete"),
        pl.when(is_call).then(pl.coalesce("mib", "sctl_first")).otherwise(pl.col("sctl_own")).alias("sysctl_name"),
    ).cast(_DTYPES)
    del rows
    return events.with_columns(
        pl.lit("kdump").alias("source_format"),
        pl.lit(os_name).alias("os"),
        pl.when(pl.col("ts_ns").is_not_null()).then(pl.lit(clock, dtype=pl.String)).alias("ts_clock"),
    )


# --- syspage parse -o: kdump block by block, rows spilled to disk ----------------------------------
def _compact(small: pl.DataFrame) -> pl.DataFrame:
    """A copy of a few rows that shares no buffer with the frame they came from: Polars' strings
    are views into shared buffers, so a few kept rows would keep a whole block's text alive
    (as parse/_strace.py's _compact)."""
    return pl.DataFrame(small.to_dict(as_series=False), schema=small.schema)


def separator_counts(tids: list, seps: list) -> dict[str, int]:
    """How the first 1,000 thread-id records separate pid and tid (':' '/' or a space: one vote
    per record for detect_os), from the framed ``tid`` and ``sep`` (a byte code) columns."""
    counts = {":": 0, "/": 0, "space": 0}
    seen = 0
    for tid, sep in zip(tids, seps):
        if tid is not None:
            counts[":" if sep == 58 else "/" if sep == 47 else "space"] += 1
            seen += 1
            if seen == 1000:
                break
    return counts


def detect_frame(records: pl.DataFrame, ctx: ParseContext) -> tuple[str, tuple]:
    """The OS and the timestamp columns from a file's first records, as KdumpFormat._assemble_file
    decides them for a frame of records."""
    head = {c: records.get_column(c).head(DETECT_RECORDS).to_list() for c in ("tid", "stamps", "sep")}
    counts = separator_counts(head["tid"], head["sep"])
    os_name = ctx.os or detect_os_frame(records.head(DETECT_RECORDS), counts)
    return os_name, _stamp_roles(head["stamps"])


_REJECT_SCHEMA = {"line_no": pl.Int64, "text": pl.String, "reason": pl.String}


class SpillingAssembler:
    """One kdump file, framed block by block (parse._stream_file), joined a block at a time and
    its rows written to Arrow IPC files in a directory (issue 3's peak RSS target: only a few
    blocks of text, records and rows are held, never the table).

    What crosses a block is kept here and carried into the next block as records placed before
    it: each thread's open CALL (its last CALL/RET record is a CALL: the next block's RET joins it,
    its SCTL names it), that call's first SCTL (the first SCTL wins), the last record when its
    data lines may go on (with the data lines' state), and the -R sum. A carried record's row,
    joined again with the next block, is a late fix of the row already written (applied when the
    rows are read back, its line_no_end the larger). The OS and the clock are decided on the
    first DETECT_RECORDS records, as join_frame over the whole file does. The rows come out as
    KdumpFormat.assemble gives them (tests/test_parse_kdump_stream.py, blocks of a few lines)."""

    def __init__(self, ctx: ParseContext, directory: Path):
        self.ctx = ctx
        self.dir = Path(directory)
        self.path = ctx.source_file
        self.waiting: list[pl.DataFrame] = []     # records before the OS and clock are decided
        self.waiting_rejects: list = []
        self.waiting_n = 0
        self.detected: tuple[str, tuple] | None = None
        self.carry: pl.DataFrame | None = None    # records carried into the next block (with _ts)
        self.data_state: tuple[bool, bool] | None = None
        self.rel = 0
        # each block's rejects, sorted, spilled beside the rows; the latest block's stay here until
        # the next one comes (finish may turn its last line into a cut-off line)
        self.reject_parts: list[Path] = []
        self.pending_rejects: pl.DataFrame | None = None
        self.rejects_in_order = True              # every block's rejects after the previous ones
        self.ignored = 0
        self.last_line_no = 0
        self.chunk_first: list[int] = []          # first line_no of each spilled piece
        self.patches: list[pl.DataFrame] = []     # rows of carried records, joined again

    def _spilled(self, idx: int) -> Path:
        return self.dir / f"kdump-rows-{idx:06d}.arrow"

    def feed(self, part: KdumpFramed) -> None:
        self.ignored += part.ignored
        self.last_line_no = part.last_line_no
        if part.source_file:
            self.path = part.source_file
        records = part.records.select(RECORD_COLUMNS)
        rejects = [r[:3] for r in part.rejects]
        if self.detected is None:
            self.waiting.append(records)
            self.waiting_rejects += rejects
            self.waiting_n += records.height
            if self.waiting_n < DETECT_RECORDS:
                return
            records, rejects = self._take_waiting()
        self._block(records, rejects)

    def _take_waiting(self):
        records = pl.concat(self.waiting) if len(self.waiting) > 1 else self.waiting[0]
        rejects = self.waiting_rejects
        self.waiting, self.waiting_rejects, self.waiting_n = [], [], 0
        return records, rejects

    def _block(self, records: pl.DataFrame, rejects: list) -> None:
        if self.detected is None:
            self.detected = detect_frame(records, self.ctx)
        os_name, stamps = self.detected
        records = records.with_columns(pl.lit(None, dtype=pl.Int64).alias("_ts"))
        carried = 0
        if self.carry is not None and self.carry.height:
            carried = self.carry.height
            records = pl.concat([self.carry, records])
        stream = {"carried": carried, "rel": self.rel, "data_state": self.data_state if carried else None}
        events = join_frame(records, stamps, os_name, rejects, stream)
        self.rel = stream["rel"]
        if rejects:
            self._keep_rejects(pl.DataFrame(rejects, schema=_REJECT_SCHEMA, orient="row"))
        events = events.with_columns(pl.lit(self.path, dtype=pl.String).alias("source_file"))
        self._carry_next(records, events, stream)
        if carried:
            again = pl.col("line_no") <= records.get_column("line_no")[carried - 1]
            self.patches.append(_compact(events.filter(again)))
            events = events.filter(~again)
        if events.height:
            self.chunk_first.append(events.get_column("line_no")[0])
            events.write_ipc(self._spilled(len(self.chunk_first) - 1))

    def _keep_rejects(self, block: pl.DataFrame) -> None:
        """Spill the previous block's rejects, keep this block's (sorted as assemble sorts them).
        Rejects are many in pasted traces (prose: a fifth of the lines of the benchmark's input),
        and held they would make the peak grow with the trace."""
        block = block.sort(["line_no", "text", "reason"], maintain_order=True)
        previous = self.pending_rejects
        if previous is not None:
            if block.get_column("line_no")[0] < previous.get_column("line_no")[-1]:
                self.rejects_in_order = False   # (finish then sorts them all)
            path = self.dir / f"kdump-rejects-{len(self.reject_parts):06d}.arrow"
            previous.write_ipc(path)
            self.reject_parts.append(path)
        self.pending_rejects = block

    def _carry_next(self, records: pl.DataFrame, events: pl.DataFrame, stream: dict) -> None:
        """The records the next block needs (see the class)."""
        is_data = pl.col("rtype").is_in(["DUMP", "BAD"])
        rec = records.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("r"), "rtype", "pid", "tid", is_data.alias("d"))
        nd = rec.filter(~pl.col("d"))
        keep: list[int] = []
        last_cr = nd.filter(pl.col("rtype").is_in(["CALL", "RET"])).group_by(["pid", "tid"], maintain_order=True).last()
        open_calls = last_cr.filter(pl.col("rtype") == "CALL").select("pid", "tid", pl.col("r").alias("call_r"))
        keep += open_calls.get_column("call_r").to_list()
        if open_calls.height:
            sctl = (nd.filter(pl.col("rtype") == "SCTL")
                    .join(open_calls, on=["pid", "tid"], how="inner", nulls_equal=True)
                    .filter(pl.col("r") > pl.col("call_r")).sort("r")
                    .group_by(["pid", "tid"], maintain_order=True).first())
            keep += sctl.get_column("r").to_list()
        self.data_state = None
        if nd.height:
            last_r, last_type = nd.get_column("r")[-1], nd.get_column("rtype")[-1]
            if last_type in _HAS_DATA_LINES:
                if last_r == records.height - 1:   # no data line after it yet
                    state = (True, False)
                else:
                    seg, active, vis_open = stream["data_end"]
                    state = (active, vis_open) if seg == last_r else (False, False)
                if state[0]:
                    keep.append(last_r)
                    self.data_state = state
        if not keep:
            self.carry = None
            return
        keep = sorted(set(keep))
        carry = records.select(RECORD_COLUMNS).gather(keep)
        times = events.select("line_no", pl.col("ts_ns").alias("_ts"))
        carry = carry.join(times, on="line_no", how="left", maintain_order="left")
        self.carry = _compact(carry)

    def finish(self) -> FormatOutput:
        if self.waiting:
            records, rejects = self._take_waiting()
            self._block(records, rejects)
        if self.detected is None:   # nothing fed
            os_name = FORMAT._assemble_file({c: [] for c in RECORD_COLUMNS}, [], 0, self.ctx)[1]
        else:
            os_name = self.detected[0]
        pending = self.pending_rejects if self.pending_rejects is not None else pl.DataFrame(schema=_REJECT_SCHEMA)
        self.pending_rejects = None
        # the last line, rejected with a record header: the tracer stopped mid-line (as
        # _assemble_file decides it, before join_frame adds the orphan data lines); it can only
        # be among the latest block's rejects
        is_last = pl.col("line_no") == self.last_line_no
        last = pending.filter(is_last)
        if last.height:
            last = pl.DataFrame([(ln, text, CUT_OFF if reason != _DATA_ORPHAN and HEADER_RE.match(text) else reason)
                                 for ln, text, reason in last.iter_rows()], schema=_REJECT_SCHEMA, orient="row")
            pending = pl.concat([pending.filter(~is_last), last]).sort(["line_no", "text", "reason"], maintain_order=True)
        # read back lazily: the driver collects them once the rows are written (parse_to_file)
        rejects = pl.concat([pl.scan_ipc(p, memory_map=False) for p in self.reject_parts] + [pending.lazy()])
        if not self.rejects_in_order:
            # in the order of the sorted (line_no, text, reason) tuples of assemble
            rejects = rejects.sort(["line_no", "text", "reason"], maintain_order=True)
        rejects = rejects.select(pl.lit(self.path, dtype=pl.String).alias("source_file"), "line_no", "text", "reason")
        fixes = self._fixes()

        def pieces():
            for i in range(len(self.chunk_first)):
                path = self._spilled(i)
                chunk = pl.read_ipc(path, memory_map=False)
                path.unlink()
                if i in fixes:
                    chunk = _apply_fixes(chunk, fixes.pop(i))
                yield chunk
        return FormatOutput(events=pl.DataFrame(), summary=pl.DataFrame(), ignored=self.ignored, os=os_name,
                            event_pieces=pieces(), rejects_frame=rejects)

    def _fixes(self) -> dict[int, pl.DataFrame]:
        """The late fixes by piece: each carried record's last row, its line_no_end the largest."""
        if not self.patches:
            return {}
        rows = pl.concat(self.patches)
        self.patches = []
        rows = rows.group_by("line_no", maintain_order=True).agg(
            pl.all().exclude("line_no_end").last(), pl.col("line_no_end").max())
        firsts = pl.Series(self.chunk_first, dtype=pl.Int64)
        piece = (firsts.search_sorted(rows.get_column("line_no"), side="right") - 1).alias("_piece")
        rows = rows.with_columns(piece)
        return {i: g.drop("_piece") for (i,), g in rows.group_by("_piece")}


def _apply_fixes(chunk: pl.DataFrame, fixes: pl.DataFrame) -> pl.DataFrame:
    """chunk with the rows of FIXES (by line_no) replaced, line_no_end the larger of the two."""
    cols = [c for c in chunk.columns if c != "line_no"]
    updated = chunk.join(fixes.select(chunk.columns), on="line_no", how="left", suffix="_new",
                         maintain_order="left")
    fixed = pl.col("kind_new").is_not_null()   # (every row has a kind)
    return updated.with_columns(
        pl.when(fixed).then(pl.max_horizontal("line_no_end", "line_no_end_new") if c == "line_no_end"
                            else pl.col(f"{c}_new")).otherwise(pl.col(c)).alias(c) for c in cols
    ).select(chunk.columns)


def _new_row(cols, ln, ts, pid, tid, comm, kind) -> None:
    cols["line_no"].append(ln)
    cols["line_no_end"].append(ln)
    cols["ts_ns"].append(ts)
    cols["pid"].append(pid)
    cols["tid"].append(tid)
    cols["comm"].append(comm)
    cols["kind"].append(kind)
    for c in ("syscall", "syscall_raw", "args_raw", "ret", "ret_raw", "errno", "errno_name", "duration_ns",
              "sysctl_name"):
        cols[c].append(None)
    cols["incomplete"].append(kind == "call")


FORMAT = KdumpFormat()
