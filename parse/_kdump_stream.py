"""kdump for parse_to_file (`syspage parse -o`): one file joined block by block, its rows spilled
to disk as they come (``SpillingAssembler``), so that the peak memory does not grow with the trace.

Each block's records (parse/_kdump_records.py) are joined by parse/_kdump_join.py's join_frame,
with the OS and the timestamp columns decided once (parse/_kdump_detect.py); parse/_kdump.py
(KdumpFormat.spilling_assembler) hands it out.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from syspage.parse import _kdump_detect     # _kdump_detect.DETECT_RECORDS: read when used (tests set it)
from syspage.parse._base import CUT_OFF, FormatOutput, ParseContext
from syspage.parse._kdump_detect import detect_frame
from syspage.parse._kdump_join import _DATA_ORPHAN, _HAS_DATA_LINES, join_frame
from syspage.parse._kdump_records import HEADER_RE, RECORD_COLUMNS, KdumpFramed


# --- syspage parse -o: kdump block by block, rows spilled to disk ----------------------------------
def _compact(small: pl.DataFrame) -> pl.DataFrame:
    """A copy of a few rows that shares no buffer with the frame they came from: Polars' strings
    are views into shared buffers, so a few kept rows would keep a whole block's text alive
    (as parse/_strace.py's _compact)."""
    return pl.DataFrame(small.to_dict(as_series=False), schema=small.schema)


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
            if self.waiting_n < _kdump_detect.DETECT_RECORDS:
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
            from syspage.parse._kdump import FORMAT   # (here: parse/_kdump.py imports this module)
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
