"""strace(1) output -> events/1 and summary/1 (grammar: grammars/strace.lark).

Three steps, each with one job:

1. ``frame``: every line becomes one *record* (the columns in RECORD_SCHEMA: what the line
   says, as text) or a reject. The common line shapes (a complete call, ``<unfinished ...>``,
   ``<... resumed>``) are framed by compiled regexes over the whole chunk in Polars; every
   other line goes through the Lark grammar, which is the parser of record. The two agree
   record for record on every line of the test corpus (tests/test_parse_strace_differential.py).
2. ``assemble``: records -> typed rows: clocks (-t/-tt with the date, -ttt, -r), unfinished
   calls joined with their resumption, thread ids mapped to their thread group, errno numbers.
   It runs as a stream (``Assembler``): the driver feeds it one framed block of the file at a
   time, so the trace's text and records are never held whole (issue 3's memory target).
3. The driver (parse/__init__.py) adds source_file and classifies the calls.

Choices (docs/parse.md): ``-k`` stack frames are ``info`` rows with the thread of the call
above them; a call that never resumed, or a resumption whose start is not in the trace, is
kept with ``incomplete`` = true; ``strace: Process N attached|detached`` are attach/detach rows.
"""
from __future__ import annotations

import datetime as dt
import errno as _errno
import functools
import io
import re
import threading
from pathlib import Path
from typing import Sequence

import polars as pl
from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedInput

from syspage.parse import _native
from syspage.parse._base import FormatOutput, Framed, ParseContext, normalize_syscall

NAME = "strace"
GRAMMAR_PATH = Path(__file__).with_name("grammars") / "strace.lark"

# One record per line; all text, typed later by assemble().
RECORD_SCHEMA = {
    "line_no": pl.Int64,
    "rec": pl.String,        # call unfinished resumed signal exited killed attach detach mode stack summary
    "pid_text": pl.String,   # the pid prefix (bare or [pid N]), or the pid an attach/mode line names
    "ts_text": pl.String,    # the timestamp as printed
    "name": pl.String,       # the syscall as printed
    "args": pl.String,       # the text between the parentheses (signal info, exit text, frame...)
    "ret_raw": pl.String,    # from the return value to the end of its note, without the duration
    "retval": pl.String,     # the return value alone (no -y decoration)
    "errname": pl.String,
    "dur": pl.String,        # the -T duration in seconds, or "unavailable"
}
RECORD_COLUMNS = list(RECORD_SCHEMA)

# Lines strace prints that carry no record: the -c/-C table's header, rules, and titles.
IGNORABLE = re.compile(
    r"^\s*$|^% time +seconds|^-{5,}[ -]*$|^System call usage summary for|^\s*strace: Process \d+ (?:suspended|resumed)"
)

# -- the fast path: regexes in Rust (Polars) for the three common shapes --------------------
_PREFIX = (
    r"^[ \t]*(?:\[pid +(?P<bpid>\d+)\][ \t]*|(?P<pid>\d+) [ \t]*)?"
    r"(?:(?P<ts>\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+)[ \t]+)?"
)
_RESULT = (
    r"[ \t]*=[ \t]*(?P<ret_raw>(?P<retval>0x[0-9a-fA-F]+|-?\d+|\?)(?:<(?:->|[^<>\n])*>)?"
    r"(?:[ \t]+(?P<errname>E[A-Z0-9_?]+))?(?:[ \t]*\((?:.*)\))?)"
    r"(?:[ \t]*<(?P<dur>\d+\.\d+|unavailable)>)?[ \t]*$"
)
FAST_CALL = _PREFIX + r"(?P<name>[a-z_][a-zA-Z0-9_]*)\((?P<args>.*)\)" + _RESULT
FAST_UNFINISHED = _PREFIX + r"(?P<name>[a-z_][a-zA-Z0-9_]*)\((?P<args>.*)<unfinished \.\.\.>[ \t]*$"
FAST_RESUMED = _PREFIX + r"<\.\.\. (?P<name>[A-Za-z0-9_]+) resumed>(?P<args>.*)\)" + _RESULT

# Linux errno numbers (the host's errno module is Linux's where tests run; the kernel-internal
# restart codes are from include/linux/errno.h, which strace prints by name).
_KERNEL_ERRNOS = {
    "ERESTARTSYS": 512, "ERESTARTNOINTR": 513, "ERESTARTNOHAND": 514, "ENOIOCTLCMD": 515,
    "ERESTART_RESTARTBLOCK": 516, "EPROBE_DEFER": 517, "EOPENSTALE": 518, "ENOPARAM": 519,
    "EBADHANDLE": 521, "ENOTSYNC": 522, "EBADCOOKIE": 523, "ENOTSUPP": 524, "ETOOSMALL": 525,
    "ESERVERFAULT": 526, "EBADTYPE": 527, "EJUKEBOX": 528, "EIOCBQUEUED": 529, "ERECALLCONFLICT": 530,
}
LINUX_ERRNOS = {**{name: num for num, name in _errno.errorcode.items()}, **_KERNEL_ERRNOS}
LINUX_ERRNOS.update({"EWOULDBLOCK": _errno.EAGAIN, "EDEADLOCK": _errno.EDEADLK})

# Calls that create a task; with CLONE_THREAD the new id is a thread of the caller's group.
_TASK_CREATORS = ("clone", "clone3", "fork", "vfork")
_HALF_DAY_NS = 12 * 3600 * 10**9
_DAY_NS = 24 * 3600 * 10**9


_GRAMMAR_LOCK = threading.Lock()


def grammar() -> Lark:
    """The strace grammar, built once (LALR, contextual lexer, strict). The blocks of a trace
    are framed in several threads at once: the lock keeps them from each building it (0.2 s)."""
    with _GRAMMAR_LOCK:
        return _build_grammar()


@functools.lru_cache(maxsize=1)
def _build_grammar() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", lexer="contextual", strict=True,
                maybe_placeholders=False)


# -- the grammar path: one line -> one record --------------------------------------------------

def _tokens(tree: Tree) -> list[Token]:
    return [c for c in tree.children if isinstance(c, Token)]


def _result_fields(result: Tree, line: str) -> dict:
    retval_tok = result.children[0]
    end = retval_tok.end_pos
    fields = {"retval": retval_tok.value.split("<", 1)[0], "errname": None, "dur": None}
    for child in result.children[1:]:
        if isinstance(child, Tree):  # ret_note: ( args )
            end = child.children[-1].end_pos
        elif child.type == "ERRNAME":
            fields["errname"] = child.value
            end = child.end_pos
        elif child.type == "DURATION":
            fields["dur"] = child.value[1:-1]
        elif child.type == "UNAVAILABLE":
            fields["dur"] = "unavailable"
    fields["ret_raw"] = line[retval_tok.start_pos:end]
    return fields


def record_from_tree(tree: Tree, line: str) -> dict:
    """The record of one parsed line (same columns and text as the fast path's)."""
    rec = dict.fromkeys(RECORD_COLUMNS)
    first = tree.children[0]
    if first.data == "summary_row":
        numbers, name = first.children
        rec.update(rec="summary", args=" ".join(numbers.value.split()), name=name.value)
        return rec
    prefix, body = tree.children
    for child in prefix.children:
        if isinstance(child, Tree):  # pid
            rec["pid_text"] = re.sub(r"\D", "", child.children[0].value)
        else:
            rec["ts_text"] = child.value
    kind = str(body.data)
    rec["rec"] = kind
    if kind == "call":
        name, lpar, _args, rpar, result = body.children
        rec.update(name=name.value, args=line[lpar.end_pos:rpar.start_pos], **_result_fields(result, line))
    elif kind == "unfinished":
        name, lpar, _args, unfinished = body.children
        rec.update(name=name.value, args=line[lpar.end_pos:unfinished.start_pos])
    elif kind == "resumed":
        resumed, _args, rpar, result = body.children
        rec.update(name=resumed.value[5:-9], args=line[resumed.end_pos:rpar.start_pos],
                   **_result_fields(result, line))
    elif kind == "signal":
        rec["args"] = body.children[0].value[4:-4]
    elif kind == "exited":
        status = _tokens(body)[0].value
        rec.update(retval=status, ret_raw=status)
    elif kind == "killed":
        rec["args"] = " ".join(t.value for t in _tokens(body))
    elif kind == "strace_msg":
        toks = _tokens(body)
        pid_tok, verb = toks[-2], toks[-1]
        rec.update(rec="attach" if verb.type == "ATTACHED" else "detach", pid_text=pid_tok.value,
                   args=line[line.index("Process"):].rstrip())
    elif kind == "mode_note":
        ints = [t for t in _tokens(body) if t.type == "INT"]
        rec.update(rec="mode", pid_text=ints[0].value, args=line.strip())
    elif kind == "stack_frame":
        rec.update(rec="stack", args=body.children[0].value[2:].rstrip())
    return rec


def _reject_reason(exc: LarkError, line: str) -> str:
    if isinstance(exc, UnexpectedInput):
        column = getattr(exc, "column", None)
        token = getattr(exc, "token", None)
        near = repr(str(token)[:30]) if token is not None and str(token) else "end of line"
        return f"no strace grammar rule matches at column {column} (near {near})"
    return f"no strace grammar rule matches ({exc.__class__.__name__})"


# strace writing to stderr (no -o) prints "strace: Process N attached" right where it is, even
# in the middle of the clone line that created N; the rest of that line follows on the next
# line, "=> {parent_tid=[N]}, 88) = N" (seen with strace 6.1, tests/data/strace_linux_syspage-stderr-f-t-xx.txt).
_INTERRUPTED = re.compile(r"^(?P<head>.*\S)(?P<msg>strace: Process \d+ attached)\s*$")
_CONTINUATION = re.compile(r"^\s*=> ")


def _parse_one(parser: Lark, text: str, line_no: int) -> dict:
    rec = record_from_tree(parser.parse(text), text)
    rec["line_no"] = line_no
    return rec


def grammar_records(lines: Sequence[str], line_nos: Sequence[int],
                    state: dict | None = None) -> tuple[list[dict], list[tuple[int, str, str]]]:
    """Lark over each line: records for those it accepts, rejects for the others.

    state, when given, receives what a block of lines leaves open for the next one (see
    Assembler.feed): "open", the call cut by an attach message still awaiting its "=> ..."
    line, and "first_head", the line number of the first such cut call here."""
    parser = grammar()
    records, rejects = [], []
    interrupted = None   # the record of a call cut by an attach message, awaiting its "=> ..." line
    for line_no, line in zip(line_nos, lines):
        cut = _INTERRUPTED.match(line)
        if cut and not line.lstrip().startswith("strace:"):
            try:
                head = _parse_one(parser, cut["head"] + " <unfinished ...>", line_no)
                attach = _parse_one(parser, cut["msg"], line_no)
            except LarkError:
                head = None
            if head is not None and head["rec"] == "unfinished":
                records += [head, attach]
                interrupted = head
                if state is not None:
                    state.setdefault("first_head", line_no)
                continue
        text = line
        if interrupted is not None and _CONTINUATION.match(line):
            prefix = f"[pid {interrupted['pid_text']}] " if interrupted["pid_text"] else ""
            text = f"{prefix}<... {interrupted['name']} resumed>{line}"
            interrupted = None
        try:
            records.append(_parse_one(parser, text, line_no))
        except LarkError as exc:
            rejects.append((line_no, line, _reject_reason(exc, line)))
    if state is not None:
        state["open"] = interrupted
    return records, rejects


# -- the fast path ------------------------------------------------------------------------------

def _fast_shape(frame: pl.DataFrame, pattern: str, rec: str, has_result: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Frame the lines matching one regex; return (records, lines left over)."""
    m = frame.with_columns(pl.col("text").str.extract_groups(pattern).alias("m"))
    hit = pl.col("m").struct.field("name").is_not_null()
    matched = m.filter(hit).select(
        "line_no",
        pl.lit(rec).alias("rec"),
        pl.coalesce(pl.col("m").struct.field("bpid"), pl.col("m").struct.field("pid")).alias("pid_text"),
        pl.col("m").struct.field("ts").alias("ts_text"),
        pl.col("m").struct.field("name"),
        pl.col("m").struct.field("args"),
        *(
            [pl.col("m").struct.field(f) for f in ("ret_raw", "retval", "errname", "dur")]
            if has_result else
            [pl.lit(None, dtype=pl.String).alias(f) for f in ("ret_raw", "retval", "errname", "dur")]
        ),
    )
    return matched, m.filter(~hit).drop("m")


def fast_records(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records of the lines the regexes frame, the other lines) for a (line_no, text) frame."""
    parts = []
    rest = frame
    for pattern, rec, has_result in ((FAST_CALL, "call", True), (FAST_UNFINISHED, "unfinished", False),
                                     (FAST_RESUMED, "resumed", True)):
        if rest.height == 0:
            break
        # cheap literal pre-filter keeps the capture regex off lines that cannot match
        marker = {"call": ") ", "unfinished": "<unfinished ...>", "resumed": " resumed>"}[rec]
        candidates = rest.filter(pl.col("text").str.contains(marker, literal=True))
        others = rest.filter(~pl.col("text").str.contains(marker, literal=True))
        matched, left = _fast_shape(candidates, pattern, rec, has_result)
        parts.append(matched)
        rest = pl.concat([others, left]) if left.height else others
    records = pl.concat(parts) if parts else pl.DataFrame(schema=RECORD_SCHEMA)
    return records.cast(RECORD_SCHEMA), rest


def _with_file_pid(records: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """strace -ff writes one file per process without a pid prefix: the file's pid fills in."""
    if ctx.pid is None:
        return records
    return records.with_columns(pl.col("pid_text").fill_null(str(ctx.pid)))


def read_framed(framed: bytes) -> pl.DataFrame:
    """The C framer's output (0x1f-separated fields, one line per record) as records."""
    if not framed:
        return pl.DataFrame(schema=RECORD_SCHEMA)
    df = pl.read_csv(
        io.BytesIO(framed), has_header=False, separator="\x1f", quote_char=None, new_columns=RECORD_COLUMNS,
        schema=RECORD_SCHEMA,
    )
    # an empty field reads as null: right for every column but args, where "" is real (brk())
    return df.with_columns(pl.col("args").fill_null(""))


# -- the format ---------------------------------------------------------------------------------

class StraceFormat:
    name = NAME

    def sniff(self, head: Sequence[str]) -> float:
        """Share of the first lines that look like strace records."""
        shape = re.compile(
            r"^\s*(?:\[pid +\d+\] |\d+ +)?(?:[\d:.]+ +)?"
            r"(?:[a-z_][a-z0-9_]*\(.*(?:\)\s+=\s+\S+.*|<(?:unfinished|detached) \.\.\.>)$|<\.\.\. \w+ resumed>|--- SIG|\+\+\+ (?:exited|killed)|strace: Process|> \S.*\[0x[0-9a-f]+\]$)"
        )
        summary = re.compile(r"^% time +seconds +usecs/call +calls +errors +syscall|^ *\d+\.\d+ +\d+\.\d+ +\d+ +\d+( +\d+)? +\w+$")
        lines = [ln for ln in head if ln.strip()]
        if not lines:
            return 0.0
        if any(summary.match(ln) for ln in lines):
            return 0.95
        hits = sum(1 for ln in lines if shape.match(ln))
        return hits / len(lines)

    def frame(self, lines: pl.Series, ctx: ParseContext) -> Framed:
        frame = pl.DataFrame({"text": lines}).with_row_index("line_no", offset=ctx.first_line_no)
        frame = frame.with_columns(pl.col("line_no").cast(pl.Int64), pl.col("text").str.strip_suffix("\r"))
        blank = pl.col("text").str.contains(IGNORABLE.pattern)
        ignored = int(frame.select(blank.sum()).item())
        frame = frame.filter(~blank)
        if ctx.grammar_only:
            records, rest = pl.DataFrame(schema=RECORD_SCHEMA), frame
        else:
            records, rest = fast_records(frame)
        state: dict = {}
        slow, rejects = grammar_records(rest["text"].to_list(), rest["line_no"].to_list(), state)
        if slow:
            records = pl.concat([records, pl.DataFrame(slow, schema=RECORD_SCHEMA)])
        return Framed(records=_with_file_pid(records.sort("line_no"), ctx), rejects=rejects, ignored=ignored,
                      carry=state)

    def frame_bytes(self, data: bytes, start: int, end: int, ctx: ParseContext) -> Framed | None:
        """Frame data[start:end] (whole lines, UTF-8 already checked) with the C framer;
        None when it is not available here (the driver then uses ``frame``)."""
        framer = None if ctx.grammar_only else _native.strace_framer()
        if framer is None:
            return None
        framed, other, _lines, blank = framer(data, start, end, ctx.first_line_no)
        records = read_framed(framed)
        del framed
        line_nos, texts = [], []
        ignored = blank
        for row in other.decode("utf-8").split("\n")[:-1]:
            line_no, _, text = row.partition("\x1f")
            if IGNORABLE.match(text):
                ignored += 1
                continue
            line_nos.append(int(line_no))
            texts.append(text)
        state: dict = {}
        slow, rejects = grammar_records(texts, line_nos, state)
        if slow:
            records = pl.concat([records, pl.DataFrame(slow, schema=RECORD_SCHEMA)]).sort("line_no")
        return Framed(records=_with_file_pid(records, ctx), rejects=rejects, ignored=ignored, carry=state)

    def assembler(self, ctx: ParseContext) -> "Assembler":
        """A streaming assemble: feed it the framed parts in file and line order, then finish()."""
        return Assembler(ctx)

    def assemble(self, parts: list[Framed], ctx: ParseContext) -> FormatOutput:
        asm = Assembler(ctx)
        for part in parts:
            asm.feed(part)
        out = asm.finish()
        chunks, out.event_chunks = out.event_chunks, None
        out.events = pl.concat(chunks) if chunks else pl.DataFrame()
        return out

    def parse(self, lines: Sequence[str], ctx: ParseContext) -> FormatOutput:
        lines = lines.to_list() if isinstance(lines, pl.Series) else list(lines)
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        part = self.frame_bytes(data, 0, len(data), ctx)
        if part is None:
            part = self.frame(pl.Series("text", lines, dtype=pl.String), ctx)
        return self.assemble([part], ctx)


# -- assemble: records -> typed rows ----------------------------------------------------------

def seconds_to_ns(text: pl.Expr) -> pl.Expr:
    """'12.345678' -> 12345678000 exactly (no float rounding); null unless digits.digits."""
    digits = text.str.replace(".", "", literal=True, n=1)
    frac_digits = text.str.len_bytes() - text.str.find(".", literal=True) - 1
    scale = frac_digits.replace_strict({k: 10 ** (9 - k) for k in range(1, 10)}, default=None, return_dtype=pl.Int64)
    return digits.str.to_integer(base=10, strict=False) * scale


def join_resumed(df: pl.LazyFrame) -> pl.LazyFrame:
    """Join each <unfinished ...> with the next call record of the same thread when that is
    the <... resumed> of the same syscall; any other sequence leaves both halves unpaired.

    A thread is in one syscall at a time, so its unfinished call can only be resumed by its
    very next call record. A complete call of the same thread in between means the tracer lost
    the resumption (and the start of the later "resumed"): perf trace does, under load (seen:
    getpid unfinished at line 13957, 1,225 complete getpids of that thread, then
    "... [continued]: getpid()" at 15183). Both halves then stay incomplete calls. strace
    prints a thread's calls in order, so this never splits a strace pair."""
    # Only integers go through the joins (row numbers, thread keys, line numbers): the pairs
    # are found on the halves' small columns, then each unfinished row takes its resumption's
    # fields by row number (one gather per field) and the consumed resumptions are filtered
    # out once. Joining the frame itself would copy every column, strings included (issue 3).
    keys = ["_fid", "_key"]
    df = df.with_row_index("_row").collect()
    # each thread's halves in line order; the next half of the same thread is one row down
    halves = df.lazy().filter(pl.col("rec").is_in(["unfinished", "resumed"])).select(
        "_row", *keys, "line_no", "rec", "name").sort([pl.col("_fid"), pl.col("_key"), pl.col("line_no")], nulls_last=True)
    nxt = halves.with_columns(
        *(pl.col(c).shift(-1).alias(f"_n_{c}") for c in ("rec", "name", "_row")),
        ((pl.col("_fid") == pl.col("_fid").shift(-1))
         & pl.col("_key").eq_missing(pl.col("_key").shift(-1))).alias("_same_thread"),
    )
    candidate = (pl.col("rec") == "unfinished") & (pl.col("_n_rec") == "resumed") & (pl.col("_n_name") == pl.col("name")) \
        & pl.col("_same_thread")
    # the thread's first complete call after the unfinished half (rows are in file, line order)
    complete = df.lazy().filter(pl.col("rec") == "call").select(pl.col("_row").alias("_call_row"), *keys) \
        .with_columns(pl.col("_call_row").alias("_row"))
    pairs = nxt.filter(candidate).sort("_row").join_asof(
        complete, on="_row", by=keys, strategy="forward", allow_exact_matches=False, check_sortedness=False
    ).filter(pl.col("_call_row").is_null() | (pl.col("_call_row") > pl.col("_n__row"))).select(
        "_row", "_n__row").collect()
    partner = pl.repeat(None, df.height, dtype=pl.UInt32, eager=True)
    consumed = pl.repeat(False, df.height, eager=True)
    if pairs.height:
        partner.scatter(pairs["_row"], pairs["_n__row"])
        consumed.scatter(pairs["_n__row"], True)
    df = df.with_columns(partner.alias("_partner"), consumed.alias("_consumed"))
    # only the unfinished half takes the pair (an attach record can share its line, see above)
    is_paired = pl.col("_partner").is_not_null()

    def other(c: str) -> pl.Expr:
        return pl.col(c).gather(pl.col("_partner"))

    first_half = pl.col("args").str.strip_chars()
    second_half = other("args").str.strip_chars()
    return df.lazy().with_columns(
        pl.when(is_paired).then(other("line_no")).otherwise(pl.col("line_no")).alias("line_no_end"),
        pl.when(is_paired & (first_half != "") & (second_half != "")).then(first_half + " " + second_half)
        .when(is_paired).then(first_half + second_half).otherwise(pl.col("args")).alias("args"),
        *(pl.when(is_paired).then(other(c)).otherwise(pl.col(c)).alias(c)
          for c in ("ret_raw", "retval", "errname", "dur")),
        # a call whose other half is not in the trace
        (pl.col("rec").is_in(["unfinished", "resumed"]) & ~is_paired).alias("_unpaired"),
    ).filter(~pl.col("_consumed")).drop("_row", "_partner", "_consumed")


def thread_groups(df: pl.DataFrame, thread_flag: str = "CLONE_THREAD") -> pl.Series:
    """pid (thread group) for every row: a task created with CLONE_THREAD belongs to its
    creator's group (clone(2)); any other new task is its own group. Needs kind, syscall,
    ret, tid and args_raw; thread_flag is how the tracer prints the flag."""
    flag = re.compile(rf"\b{re.escape(thread_flag)}\b")
    creators = df.filter(
        (pl.col("kind") == "call") & pl.col("syscall").is_in(_TASK_CREATORS) & (pl.col("ret") > 0)
        & pl.col("tid").is_not_null()
    )
    group: dict[int, int] = {}
    for tid, args, ret in zip(creators["tid"].to_list(), creators["args_raw"].to_list(), creators["ret"].to_list()):
        owner = group.get(tid, tid)
        group[ret] = owner if flag.search(args or "") else ret
    if not group:
        return df["tid"]
    return df["tid"].replace(group)


def with_file_id(lf: pl.LazyFrame, records: pl.DataFrame) -> pl.LazyFrame:
    """_fid: an integer per source file (sorting and grouping on it is cheaper than on the path)."""
    if "source_file" not in records.columns or records["source_file"].n_unique() <= 1:
        return lf.with_columns(pl.lit(0, dtype=pl.UInt32).alias("_fid"))
    return lf.with_columns(pl.col("_file").cast(pl.Categorical).to_physical().alias("_fid"))


def normalized_names(names: pl.Series) -> dict[str, str]:
    """raw -> normalized syscall name for the distinct names (a few hundred at most)."""
    uniq = names.drop_nulls().unique()
    norm = uniq.to_frame("n").select(normalize_syscall(pl.col("n")))["n"]
    return dict(zip(uniq.to_list(), norm.to_list()))


def _compact(small: pl.DataFrame) -> pl.DataFrame:
    """A copy of a few rows that shares no buffer with the frame they came from. Polars' strings
    are views into shared buffers, and a filter keeps the views: a handful of rows kept from a
    part (calls waiting for their resumption, late fixes) would keep the whole part's text alive
    (2.5 MB a part, 150 MB over the benchmark trace, measured)."""
    return pl.DataFrame(small.to_dict(as_series=False), schema=small.schema)


def _apply_fixes(chunk: pl.DataFrame, fixes: pl.DataFrame) -> pl.DataFrame:
    """chunk with the calls of FIXES (line_no + _PAIR_COLUMNS) rewritten: calls written as
    unpaired whose resumption came in a later part."""
    updated = chunk.join(fixes, on="line_no", how="left", suffix="_new", maintain_order="left")
    # the call's row (an attach record can share its line, see _INTERRUPTED)
    fixed = pl.col("line_no_end_new").is_not_null() & (pl.col("kind") == "call")
    return updated.with_columns(
        pl.when(fixed).then(pl.col(f"{c}_new")).otherwise(pl.col(c)).alias(c) for c in _PAIR_COLUMNS
    ).select(chunk.columns)


# The columns of an event row that pairing an unfinished call with its resumption decides.
_PAIR_COLUMNS = ("line_no_end", "args_raw", "ret", "ret_raw", "errno", "errno_name", "duration_ns", "incomplete")
_EVENT_COLUMNS = ("source_format", "os", "source_file", "line_no", "line_no_end", "ts_ns", "ts_clock", "tid", "kind",
                  "syscall", "syscall_raw", "args_raw", "ret", "ret_raw", "errno", "errno_name", "duration_ns",
                  "incomplete")


def _event_columns(names: dict[str, str]) -> list[pl.Expr]:
    """Typed event columns from joined records (everything but the clock)."""
    kind = (
        pl.when(pl.col("rec").is_in(["call", "unfinished", "resumed"])).then(pl.lit("call"))
        .when(pl.col("rec") == "exited").then(pl.lit("exit"))
        .when(pl.col("rec").is_in(["mode", "stack"])).then(pl.lit("info"))
        .otherwise(pl.col("rec"))
    )
    retval = pl.col("retval")
    ret = (
        pl.when(retval.str.starts_with("0x")).then(retval.str.slice(2).str.to_integer(base=16, strict=False))
        .otherwise(retval.str.to_integer(base=10, strict=False))
    )
    is_call = pl.col("rec").is_in(["call", "unfinished", "resumed"])
    return [
        kind.alias("kind"),
        pl.when(is_call).then(pl.col("name").replace_strict(names, default=None, return_dtype=pl.String)).alias("syscall"),
        pl.when(is_call).then(pl.col("name")).alias("syscall_raw"),
        pl.col("args").alias("args_raw"),
        ret.alias("ret"),
        pl.col("errname").replace_strict(LINUX_ERRNOS, default=None, return_dtype=pl.Int32).alias("errno"),
        pl.col("errname").alias("errno_name"),
        pl.when(pl.col("dur") == "unavailable").then(None).otherwise(seconds_to_ns(pl.col("dur"))).alias("duration_ns"),
        # never returned in the trace: a half without its other half, "= ? <unavailable>", or
        # "<... X resumed> <unfinished ...>) = ?" (the process died in the call)
        (pl.col("_unpaired") | (pl.col("dur") == "unavailable").fill_null(False)
         | (is_call & pl.col("args").str.contains("<unfinished ...>", literal=True))).alias("incomplete"),
    ]


class Assembler:
    """records -> typed event rows, one framed part at a time (issue 3's memory target: the
    records of the whole trace are never held at once, only the finished rows).

    What crosses from one part to the next is small and kept here: the unfinished calls
    still waiting for their thread's next call record (``_pending``), the clocks' running
    state (last time of day and days wrapped, the -r sum, the first time), the thread of
    the last record above -k stack lines, and the trace's clock kind. A pending call is
    written into its part's rows as the unpaired call it is so far; when its resumption
    turns up in a later part, that row is rewritten in place (``_patch``). The rows come
    out exactly as assembling all records at once gives them (tests/test_parse_strace_stream.py
    checks it with parts of a few lines over every strace trace of the corpus)."""

    def __init__(self, ctx: ParseContext):
        self.ctx = ctx
        self.chunks: list[pl.DataFrame] = []     # finished rows, in file and line order
        self.chunk_files: list[str] = []         # the file of each (one value, added at the end)
        self.summaries: list[pl.DataFrame] = []
        self.rejects: list = []
        self.ignored = 0
        self.files: list[str] = []
        self.seq = 0                             # record number across the trace
        self._pending: pl.DataFrame | None = None  # joined-record columns of waiting unfinished calls
        self._pending_chunk: dict[int, int] = {}   # _seq of a pending call -> its chunk
        self.first_ts: str | None = None         # decides the clock (see _timestamps)
        self.first_t: int | None = None          # -t/-tt without a date: time of the first record
        self.last_tod: int | None = None         # -t/-tt: last time of day seen (any file)
        self.days = 0                            # -t/-tt: midnights crossed in this file
        self.r_sum = 0                           # -r: seconds summed in this file
        self.stack_tid: int | None = None        # -k: thread of the last non-stack record (-1: none)
        self.cut_call: dict | None = None        # a call cut by an attach message at a part's end (_INTERRUPTED)
        self.names: dict[str, str] = {}          # syscall as printed -> normalized, for the names seen so far
        self.spill_dir: Path | None = None       # spill_to(): finished rows go to disk, not self.chunks
        self.patches: dict[int, list[pl.DataFrame]] = {}   # spilled chunk -> its late fixes, in order

    def spill_to(self, directory: Path) -> None:
        """Write each part's rows to DIRECTORY as soon as they are made instead of holding them
        (issue 3's peak RSS: the table itself is most of it). A call resumed parts later is
        then recorded as a small fix and applied when the rows are read back (finish).
        Only for one file: strace -ff files are merged in time order at the end, in memory."""
        self.spill_dir = Path(directory)

    def _spilled(self, idx: int) -> Path:
        # Arrow IPC, uncompressed: written and read back at about memory speed (Parquet's
        # encoding cost about 1 s over the benchmark trace)
        return self.spill_dir / f"rows-{idx:06d}.arrow"

    # -- one part -------------------------------------------------------------------------
    def feed(self, part: Framed) -> None:
        self.rejects += part.rejects
        self.ignored += part.ignored
        records = part.records
        if "source_file" in records.columns and records.height:
            path = records["source_file"][0]
        elif part.rejects and len(part.rejects[0]) > 3:   # the driver's (line_no, text, reason, file)
            path = part.rejects[0][3]
        else:
            path = self.files[-1] if self.files else self.ctx.source_file
        if "source_file" not in records.columns:
            records = records.with_columns(pl.lit(path, dtype=pl.String).alias("source_file"))
        if not self.files or self.files[-1] != path:
            self._new_file(path)
        records = self._continue_cut_call(part, records)
        if records.height == 0:
            return
        is_summary = pl.col("rec") == "summary"
        if (records["rec"] == "summary").any():   # (a filter copies every column: only when needed)
            self.summaries.append(_summary(records.filter(is_summary), self.ctx))
            records = records.filter(~is_summary)
        if records.height == 0:
            return
        records = records.with_row_index("_seq", offset=self.seq).with_columns(pl.col("_seq").cast(pl.Int64))
        self.seq += records.height
        if self.first_ts is None:
            found = records["ts_text"].drop_nulls().head(1).to_list()
            self.first_ts = found[0] if found else None
        self._add(records)

    def _continue_cut_call(self, part: Framed, records: pl.DataFrame) -> pl.DataFrame:
        """A call cut by an attach message in one part whose "=> ..." rest is in a later one:
        the rest was framed without knowing the call (a reject); read it as grammar_records
        does when both lines are in one part."""
        carry = part.carry or {}
        first_head = carry.get("first_head")
        if self.cut_call is not None:
            for i, reject in enumerate(self.rejects[len(self.rejects) - len(part.rejects):]):
                line_no, text = reject[0], reject[1]
                if first_head is not None and line_no > first_head:
                    break   # a call cut in this part takes the rest (as in grammar_records)
                if not _CONTINUATION.match(text):
                    continue
                cut = self.cut_call
                prefix = f"[pid {cut['pid_text']}] " if cut["pid_text"] else ""
                try:
                    rec = _parse_one(grammar(), f"{prefix}<... {cut['name']} resumed>{text}", line_no)
                except LarkError:
                    break
                del self.rejects[len(self.rejects) - len(part.rejects) + i]
                row = pl.DataFrame([rec], schema=RECORD_SCHEMA)
                if "source_file" in records.columns:
                    row = row.with_columns(pl.lit(records["source_file"][0], dtype=pl.String).alias("source_file"))
                records = pl.concat([records, row.select(records.columns)]).sort("line_no", maintain_order=True)
                self.cut_call = None
                break
        if first_head is not None or carry.get("open") is not None:
            self.cut_call = carry.get("open")
        return records

    def _new_file(self, path: str) -> None:
        self.cut_call = None
        self.files.append(path)
        self._pending = None       # a call is never resumed in another file
        self._pending_chunk = {}
        self.days = 0
        self.r_sum = 0
        self.stack_tid = None

    def _add(self, records: pl.DataFrame) -> None:
        seen = records["name"].drop_nulls().unique().to_list()
        if any(n not in self.names for n in seen):
            self.names.update(normalized_names(pl.Series(seen, dtype=pl.String)))
        names = self.names
        lf = records.lazy().with_columns(pl.col("pid_text").cast(pl.Int64).alias("tid"))
        # -k stack frames belong to the call above them (the last non-stack record's tid, null
        # included, carried down; across parts too)
        not_stack = pl.col("rec") != "stack"
        last = records.lazy().with_columns(pl.col("pid_text").cast(pl.Int64).alias("tid")).filter(not_stack) \
            .select(pl.col("tid").fill_null(-1).last()).collect().item()
        if (records["rec"] == "stack").any():
            carried = pl.when(not_stack).then(pl.col("tid").fill_null(-1)).forward_fill()
            if self.stack_tid is not None:
                carried = carried.fill_null(self.stack_tid)
            lf = lf.with_columns(pl.when(~not_stack).then(carried.replace(-1, None)).otherwise(pl.col("tid")).alias("tid"))
        if last is not None:
            self.stack_tid = last
        lf = lf.with_columns(pl.col("tid").alias("_key"), pl.lit(0, dtype=pl.UInt32).alias("_fid"),
                             pl.lit(False).alias("_carried"))
        joined_cols = ["_seq", "line_no", "rec", "name", "args", "ret_raw", "retval", "errname", "dur", "ts_text",
                       "tid", "_key", "_fid", "_carried"]
        lf = lf.select(joined_cols)
        carried_rows = 0
        if self._pending is not None:   # first: join_resumed keeps the order of its rows
            carried_rows = self._pending.height
            lf = pl.concat([self._pending.lazy().select(joined_cols), lf])
        callish = pl.col("rec").is_in(["call", "unfinished", "resumed"])
        df = join_resumed(lf).with_columns(
            *_event_columns(names),
            # an unfinished call with no later call record of its thread here: it waits for the next part
            ((pl.col("rec") == "unfinished") & pl.col("_unpaired")
             & (pl.col("_seq") == pl.when(callish).then(pl.col("_seq")).max().over("_key"))).alias("_waits"),
        ).collect()
        carried = df.head(carried_rows)
        if carried.height:
            self._patch(carried.filter(~pl.col("_unpaired")))
            # resolved now (paired, or another call of the thread came first): no longer pending
            for seq in carried.filter(~pl.col("_waits"))["_seq"].to_list():
                self._pending_chunk.pop(seq, None)
            df = df.slice(carried_rows)
        waiting = df.filter(pl.col("_waits"))
        pending = [carried.filter(pl.col("_waits"))] if carried.height else []
        if waiting.height:
            for seq in waiting["_seq"].to_list():
                self._pending_chunk[seq] = len(self.chunks)
            pending.append(waiting)
        if pending:
            self._pending = _compact(pl.concat([p.select(joined_cols) for p in pending])
                                     .with_columns(pl.lit(True).alias("_carried")))
        else:
            self._pending = None
        lf = self._timestamps(df.lazy())
        clock = [c for c in ("_days", "_last", "_t", "_sum") if c in lf.collect_schema().names()]
        df = lf.select("line_no", "line_no_end", "ts_ns", "tid", "kind", "syscall", "syscall_raw", "args_raw", "ret",
                       "ret_raw", "errno", "errno_name", "duration_ns", "incomplete", *clock).collect()
        self._keep_clock(df)
        df = df.drop(clock)
        self.chunk_files.append(self.files[-1])
        # records come in line order, and joining keeps it: sorting (a copy) is rarely needed
        df = df if df["line_no"].is_sorted() else df.sort("line_no", maintain_order=True)
        if self.spill_dir is not None:
            df.write_ipc(self._spilled(len(self.chunks)))
            df = None
        self.chunks.append(df)

    def _patch(self, paired: pl.DataFrame) -> None:
        """Rewrite the rows of calls written as unpaired that found their resumption here."""
        if paired.height == 0:
            return
        chunk_of = [self._pending_chunk[s] for s in paired["_seq"].to_list()]
        fixes = paired.select("line_no", *_PAIR_COLUMNS).with_columns(pl.Series("_chunk", chunk_of))
        for idx in sorted(set(chunk_of)):
            mine = fixes.filter(pl.col("_chunk") == idx).drop("_chunk")
            if self.spill_dir is not None:
                self.patches.setdefault(idx, []).append(_compact(mine))
            else:
                self.chunks[idx] = _apply_fixes(self.chunks[idx], mine)

    # -- clocks ---------------------------------------------------------------------------
    def _timestamps(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        """ts_ns from the printed timestamps (see docs/schema.md ts_clock), with the clock's
        running state carried from the parts before (read back by _keep_clock).

        The clock is decided once per trace from its first timestamp: hh:mm:ss is -t/-tt (local
        time of day), seconds >= 1e8 are -ttt (epoch), smaller ones are -r deltas."""
        ts = pl.col("ts_text")
        first = self.first_ts
        if first is None:
            return lf.with_columns(pl.lit(None, dtype=pl.Int64).alias("ts_ns"))
        if ":" in first:
            # -t / -tt: time of day. Wrap at midnight: a jump back of more than 12 h is a new day.
            # hh:mm:ss[.ffffff], fixed positions (the grammar's TIMESTAMP guarantees the shape)
            part = lambda start, n: ts.str.slice(start, n).str.to_integer(base=10, strict=False)  # noqa: E731
            frac = pl.when(ts.str.len_bytes() > 9).then(seconds_to_ns(pl.lit("0") + ts.str.slice(8))).otherwise(0)
            tod = (part(0, 2) * 3600 + part(3, 2) * 60 + part(6, 2)) * 1_000_000_000 + frac
            filled = pl.col("_tod").forward_fill()
            before = filled.shift(1)
            if self.last_tod is not None:   # the last time of day of the parts before
                filled = filled.fill_null(self.last_tod)
                before = filled.shift(1).fill_null(self.last_tod)
            back = ((filled - before).fill_null(0) < -_HALF_DAY_NS).cast(pl.Int64)
            lf = lf.with_columns(tod.alias("_tod")).with_columns(
                (pl.col("_tod") + (back.cum_sum() + self.days) * _DAY_NS).alias("_t"),
                back.sum().alias("_days"), filled.last().alias("_last"))
            if self.ctx.date is not None:
                midnight = dt.datetime.combine(self.ctx.date, dt.time(), tzinfo=dt.timezone.utc)
                base = int(midnight.timestamp()) * 1_000_000_000 - self.ctx.utc_offset_s * 1_000_000_000
                return lf.with_columns((pl.col("_t") + base).alias("ts_ns"))
            first_t = pl.lit(self.first_t) if self.first_t is not None else pl.col("_t").drop_nulls().first()
            return lf.with_columns((pl.col("_t") - first_t).alias("ts_ns"))
        ns = seconds_to_ns(ts)
        if float(first) >= 1e8:  # -ttt: seconds since the epoch (a -r delta is never 3 years)
            return lf.with_columns(ns.alias("ts_ns"))
        # -r: delta since the previous record; accumulate to time since the first record
        lf = lf.with_columns((ns.fill_null(0).cum_sum() + self.r_sum).alias("_sum"))
        return lf.with_columns(pl.when(ts.is_null()).then(None).otherwise(pl.col("_sum")).alias("ts_ns"))

    def _keep_clock(self, df: pl.DataFrame) -> None:
        """The clock's running state after this part (the columns _timestamps left)."""
        if df.height == 0:
            return
        if "_days" in df.columns:
            self.days += int(df["_days"][0])
            last = df["_last"][-1]
            self.last_tod = last if last is not None else self.last_tod
            if self.first_t is None:
                found = df["_t"].drop_nulls().head(1).to_list()
                self.first_t = found[0] if found else None
        if "_sum" in df.columns:
            self.r_sum = int(df["_sum"][-1])

    def clock(self) -> str | None:
        if self.first_ts is None:
            return None
        if ":" in self.first_ts:
            return "epoch" if self.ctx.date is not None else "relative"
        return "epoch" if float(self.first_ts) >= 1e8 else "relative"

    # -- the end --------------------------------------------------------------------------
    def finish(self) -> FormatOutput:
        """Every part fed: thread groups, constant columns, the order of strace -ff files.

        Spilled (spill_to): the late fixes are applied to the rows on disk, and the output's
        event_pieces reads them back one part at a time, completed, instead of event_chunks."""
        chunks = self.chunks
        self.chunks = []
        group: dict[int, int] = {}
        flag = re.compile(r"\bCLONE_THREAD\b")
        for idx, chunk in enumerate(chunks):   # clone(2): in record order, as thread_groups does
            if chunk is None:   # spilled: only the columns the creators need are read back
                if idx in self.patches:
                    fixed = pl.read_ipc(self._spilled(idx), memory_map=False)
                    for fixes in self.patches.pop(idx):
                        fixed = _apply_fixes(fixed, fixes)
                    fixed.write_ipc(self._spilled(idx))
                    del fixed
                chunk = pl.scan_ipc(self._spilled(idx), memory_map=False).select("kind", "syscall", "ret", "tid", "args_raw")
            creators = chunk.lazy().filter(
                (pl.col("kind") == "call") & pl.col("syscall").is_in(_TASK_CREATORS) & (pl.col("ret") > 0)
                & pl.col("tid").is_not_null()
            ).select("tid", "args_raw", "ret").collect()
            for tid, args, ret in zip(creators["tid"].to_list(), creators["args_raw"].to_list(), creators["ret"].to_list()):
                owner = group.get(tid, tid)
                group[ret] = owner if flag.search(args or "") else ret
        constants = [
            pl.lit(NAME).alias("source_format"),
            pl.lit(self.ctx.os or "linux").alias("os"),
            pl.lit(self.clock(), dtype=pl.String).alias("ts_clock"),
        ]

        def complete(i: int, chunk: pl.DataFrame) -> pl.DataFrame:
            return chunk.with_columns(
                *constants, pl.lit(self.chunk_files[i], dtype=pl.String).alias("source_file"),
                (pl.col("tid").replace(group) if group else pl.col("tid")).alias("pid")
            ).select(*_EVENT_COLUMNS[:7], "pid", *_EVENT_COLUMNS[7:])

        summary = pl.concat(self.summaries) if self.summaries else _summary(pl.DataFrame(schema=RECORD_SCHEMA), self.ctx)
        out = FormatOutput(events=pl.DataFrame(), summary=summary, rejects=self.rejects, ignored=self.ignored,
                           os=self.ctx.os or "linux")
        if self.spill_dir is not None and len(self.files) <= 1:
            def pieces():
                for i in range(len(chunks)):
                    path = self._spilled(i)
                    chunk = pl.read_ipc(path, memory_map=False)
                    path.unlink()
                    yield complete(i, chunk)
            out.event_pieces = pieces()
            return out
        if self.spill_dir is not None:   # (the driver spills one file only)
            chunks = [pl.read_ipc(self._spilled(i), memory_map=False) if c is None else c for i, c in enumerate(chunks)]
        for i, chunk in enumerate(chunks):
            chunks[i] = complete(i, chunk)
        if len(self.files) > 1 and chunks:  # strace -ff: merge the per-process files in time order
            merged = pl.concat(chunks)
            chunks.clear()
            chunks = [merged.sort(["ts_ns", "source_file", "line_no"], nulls_last=True, maintain_order=True)]
        out.event_chunks = chunks
        return out


def _summary(records: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """strace -c/-C rows: % time, seconds, usecs/call, calls, [errors], syscall."""
    nums = pl.col("args").str.split(" ")
    has_errors = nums.list.len() == 5
    df = records.select(
        pl.lit(NAME).alias("source_format"),
        pl.lit(ctx.os or "linux").alias("os"),
        (pl.col("source_file") if "source_file" in records.columns else pl.lit(ctx.source_file)).alias("source_file"),
        "line_no",
        pl.lit(None, dtype=pl.Int64).alias("pid"),
        normalize_syscall(pl.col("name")).alias("syscall"),
        nums.list.get(3).cast(pl.Int64).alias("calls"),
        pl.when(has_errors).then(nums.list.get(4, null_on_oob=True).cast(pl.Int64)).otherwise(0).alias("errors"),
        seconds_to_ns(nums.list.get(1)).alias("time_ns"),
        nums.list.get(0).cast(pl.Float64).alias("pct_time"),
    )
    return df


FORMAT = StraceFormat()
