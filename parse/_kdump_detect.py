"""kdump step 2: the OS whose kdump wrote a trace and its timestamp columns (-T absolute, -E
elapsed, -R relative, any combination: kdump.c dumpheader() prints them in that order), told
apart over the first DETECT_RECORDS records of a file (docs/formats-bsd.md lists the signs).

The other steps: parse/_kdump_records.py (lines -> records), parse/_kdump_join.py (records ->
rows); parse/_kdump.py is the format that runs them, parse/_kdump_stream.py the block-by-block join
of parse_to_file.
"""
from __future__ import annotations

import re
from typing import Sequence

import polars as pl

from syspage.parse._base import ParseContext
from syspage.parse._bsd import seconds_to_ns

DETECT_RECORDS = 50_000      # records that decide the OS and the timestamp columns


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
