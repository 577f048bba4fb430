"""kdump step 3 in Polars: a file's records -> events/1 rows (``join_frame``), the same rows as
``KdumpFormat._join`` (parse/_kdump.py, the reference, record by record) builds. CALL and RET of
the same thread are joined into one ``call`` row (line_no of CALL, line_no_end of RET); SCTL names
are attached to their call's ``sysctl_name``; GIO/ARGS data lines extend the record they belong to.

Also the events columns and the record kinds both joins share. The other steps:
parse/_kdump_records.py (lines -> records), parse/_kdump_detect.py (the OS and the timestamp
columns); parse/_kdump_stream.py calls join_frame block by block.
"""
from __future__ import annotations

import re

import polars as pl

from syspage.parse._bsd import normalize_syscall, to_int
from syspage.parse._errno_bsd import errno_name

_OPENBSD_MIB = re.compile(r"^[\d.]+<([^>]*)>")
# The kernel names a node's integer arguments too ("kern.proc.args.1234" for setproctitle's
# {CTL_KERN, KERN_PROC, KERN_PROC_ARGS, pid}; OpenBSD "kern.proc.all.0.616.0"): sysctl_name keeps
# the node, so the catalog's "kern.proc.args" matches; args_raw keeps what kdump printed.
_MIB_ARGS_TAIL = re.compile(r"(?:\.-?\d+)+$")


def mib_node(name: str) -> str:
    return _MIB_ARGS_TAIL.sub("", name) or name


KIND_OF_TYPE = {
    "CALL": "call", "RET": "call", "NAMI": "namei", "GIO": "genio", "PSIG": "signal", "CSW": "csw",
    "SCTL": "sysctl", "STRU": "struct", "USER": "user", "CAP": "capability", "PFLT": "fault",
    "PRET": "fault", "EMUL": "emul",
    "MISC": "user",          # NetBSD kdump names utrace(2) records MISC
}
# Records whose data follows on their own lines (visdump/hexdump, OpenBSD exec arguments).
_HAS_DATA_LINES = ("GIO", "USER", "MISC", "ARGS", "ARG", "ENV", "STRU")
# the events/1 columns both joins build, in this order, and their types
_COLUMNS = ("line_no", "line_no_end", "ts_ns", "pid", "tid", "comm", "kind", "syscall", "syscall_raw",
            "args_raw", "ret", "ret_raw", "errno", "errno_name", "duration_ns", "incomplete", "sysctl_name")


_DTYPES = {"line_no": pl.Int64, "line_no_end": pl.Int64, "ts_ns": pl.Int64, "pid": pl.Int64, "tid": pl.Int64,
           "comm": pl.String, "kind": pl.String, "syscall": pl.String, "syscall_raw": pl.String,
           "args_raw": pl.String, "ret": pl.Int64, "ret_raw": pl.String, "errno": pl.Int32,
           "errno_name": pl.String, "duration_ns": pl.Int64, "incomplete": pl.Boolean, "sysctl_name": pl.String}


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
