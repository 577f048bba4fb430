"""Versioned table schemas: the contract between the stages.

One place in code for every table a stage writes and the next stage reads.
docs/schema.md explains each column; tests/test_core_schema.py keeps the two in step.
The version travels in the Parquet key-value metadata under ``syspage.schema``
as ``"<table>/<version>"``; reading a file of another table, version or shape
raises SchemaError with a message that says what was found and what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from syspage.errors import SchemaError

METADATA_KEY = "syspage.schema"


@dataclass(frozen=True)
class TableSpec:
    """A named, versioned table shape."""

    name: str
    version: int
    columns: dict[str, pl.DataType]

    @property
    def tag(self) -> str:
        return f"{self.name}/{self.version}"

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.columns)

    def conform(self, df: pl.DataFrame) -> pl.DataFrame:
        """Return df with exactly this spec's columns, in order, cast to their types.

        Missing columns are added as nulls; extra columns are an error (they would be
        silently lost otherwise).
        """
        extra = [c for c in df.columns if c not in self.columns]
        if extra:
            raise SchemaError(f"{self.tag}: unexpected columns {extra}")
        exprs = []
        for col, dtype in self.columns.items():
            if col in df.columns:
                exprs.append(pl.col(col).cast(dtype, strict=True))
            else:
                exprs.append(pl.lit(None, dtype=dtype).alias(col))
        return df.select(exprs)

    def validate(self, df: pl.DataFrame, origin: str = "table") -> None:
        """Raise SchemaError unless df has exactly this spec's columns and types."""
        got = dict(df.schema)
        if list(got) != list(self.columns) or any(got[c] != t for c, t in self.columns.items()):
            missing = [c for c in self.columns if c not in got]
            extra = [c for c in got if c not in self.columns]
            wrong = [f"{c}: {got[c]} (want {t})" for c, t in self.columns.items() if c in got and got[c] != t]
            raise SchemaError(
                f"{origin}: not a {self.tag} table"
                + (f"; missing {missing}" if missing else "")
                + (f"; extra {extra}" if extra else "")
                + (f"; wrong types {wrong}" if wrong else "")
            )

    def write(self, df: pl.DataFrame, path: str | Path, extra_metadata: dict[str, str] | None = None) -> Path:
        """Write df as Parquet with the schema tag (and any extra metadata) in the file."""
        self.validate(df, origin=str(path))
        meta = {METADATA_KEY: self.tag}
        if extra_metadata:
            meta.update({f"syspage.{k}": str(v) for k, v in extra_metadata.items()})
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            df.write_parquet(path, metadata=meta)
        except OSError as exc:
            raise SchemaError(f"{path}: cannot write: {exc.strerror or str(exc).splitlines()[0]}") from None
        return path

    def read(self, path: str | Path) -> pl.DataFrame:
        """Read a Parquet file written by write(); refuse other tables, versions or shapes."""
        tag = read_tag(path)
        if tag != self.tag:
            raise SchemaError(
                f"{path}: holds a {tag or 'untagged'} table, this syspage reads {self.tag}"
                + (" (re-run the stage that wrote it with this version)" if tag and tag.split('/')[0] == self.name else "")
            )
        df = pl.read_parquet(path)
        self.validate(df, origin=str(path))
        return df


def read_tag(path: str | Path) -> str | None:
    """The ``table/version`` tag stored in a Parquet file, or None when absent."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: no such file")
    try:
        meta = pl.read_parquet_metadata(path)
    except Exception as exc:  # polars raises several types for a non-Parquet file
        raise SchemaError(f"{path}: not a Parquet file ({exc.__class__.__name__})") from None
    return meta.get(METADATA_KEY)


def read_metadata(path: str | Path) -> dict[str, str]:
    """All ``syspage.*`` metadata of a Parquet file, without the prefix."""
    meta = pl.read_parquet_metadata(path)
    return {k.removeprefix("syspage."): v for k, v in meta.items() if k.startswith("syspage.")}


# --- events/1: the normalized event table ------------------------------------
# Enumerations for the text columns; kept here so parse, replay and analyze agree.
SOURCE_FORMATS = ("strace", "kdump", "truss", "dtrace", "dtruss", "perf_trace", "bpftrace")
OSES = ("linux", "freebsd", "openbsd", "netbsd", "dragonfly", "macos", "solaris", "unknown")
TS_CLOCKS = ("epoch", "relative")
KINDS = (
    "call",        # a system call (entry and return joined when both are known)
    "signal",      # a signal delivered (strace --- SIG ---, kdump PSIG, truss SIGNAL)
    "exit",        # the process exited (strace +++ exited +++, truss process exit)
    "killed",      # the process was killed by a signal
    "attach",      # the tracer attached to a process or thread
    "detach",      # the tracer detached
    "namei",       # kdump NAMI: a path looked up by the preceding call
    "genio",       # kdump GIO: data read or written by the preceding call
    "struct",      # kdump STRU: a structure the preceding call used
    "sysctl",      # kdump SCTL: a sysctl name (also attached to its call as sysctl_name)
    "csw",         # kdump CSW: a context switch
    "user",        # kdump USER: utrace(2) data
    "capability",  # kdump CAP: a Capsicum violation
    "fault",       # kdump PFLT/PRET: a page fault and its return
    "emul",        # kdump EMUL: ABI emulation change
    "info",        # any other tracer line kept for completeness (personality change, stack frame)
)
PAGE_CLASSES = ("proc_ro", "proc_rw", "sys_ro")
PAGE_ACCESSES = ("read", "write", "follow")  # follow = a state change the page must track

EVENTS = TableSpec(
    name="events",
    version=1,
    columns={
        "source_format": pl.String,
        "os": pl.String,
        "source_file": pl.String,
        "line_no": pl.Int64,
        "line_no_end": pl.Int64,
        "ts_ns": pl.Int64,
        "ts_clock": pl.String,
        "pid": pl.Int64,
        "tid": pl.Int64,
        "comm": pl.String,
        "kind": pl.String,
        "syscall": pl.String,
        "syscall_raw": pl.String,
        "args_raw": pl.String,
        "ret": pl.Int64,
        "ret_raw": pl.String,
        "errno": pl.Int32,
        "errno_name": pl.String,
        "duration_ns": pl.Int64,
        "incomplete": pl.Boolean,
        "sysctl_name": pl.String,
        "page_class": pl.String,
        "page_access": pl.String,
    },
)

# --- summary/1: a tracer's own per-syscall summary (strace -c/-C, truss -c, dtruss -c, perf trace -s)
SUMMARY = TableSpec(
    name="summary",
    version=1,
    columns={
        "source_format": pl.String,
        "os": pl.String,
        "source_file": pl.String,
        "line_no": pl.Int64,
        "pid": pl.Int64,           # perf trace -s summarises per thread; null when global
        "syscall": pl.String,
        "calls": pl.Int64,
        "errors": pl.Int64,
        "time_ns": pl.Int64,       # total time the tracer attributes to the syscall
        "pct_time": pl.Float64,
    },
)

# --- rejects/1: every line that could not be read, with the reason -----------
REJECTS = TableSpec(
    name="rejects",
    version=1,
    columns={
        "source_file": pl.String,
        "line_no": pl.Int64,
        "text": pl.String,
        "reason": pl.String,
    },
)

# --- replay/1: measured cost per call class and implementation (syspage replay) --
# One row per (call_class, impl). docs/schema.md explains the columns and the metadata keys
# (host, host_os, cpu, kernel, mitigations, method, trace_os, trace_sha256, ...).
REPLAY_IMPLS = ("syscall", "page", "page-kernel")
REPLAY = TableSpec(
    name="replay",
    version=1,
    columns={
        "call_class": pl.String,
        "page_class": pl.String,
        "page_access": pl.String,
        "impl": pl.String,
        "host_op": pl.String,
        "mode": pl.String,
        "locking": pl.String,
        "calls": pl.Int64,            # calls of this class in the trace
        "replayed": pl.Int64,         # calls the engine issued per pass of the plan
        "skipped": pl.Int64,          # calls not issued, with skip_reason
        "skip_reason": pl.String,
        "checked": pl.Int64,          # replayed reads whose value was compared page vs syscall
        "mismatches": pl.Int64,       # of those, how many differed
        "samples": pl.Int64,
        "cost_ns_median": pl.Float64,
        "cost_ns_ci_low": pl.Float64,
        "cost_ns_ci_high": pl.Float64,
        "cost_ns_mad": pl.Float64,
        "saved_ns_median": pl.Float64,   # syscall - this impl, paired within each sample; null for syscall
        "saved_ns_ci_low": pl.Float64,
        "saved_ns_ci_high": pl.Float64,
        "total_ns": pl.Float64,       # calls x cost_ns_median
        "unstable": pl.Boolean,
        "raw_ns_json": pl.String,     # every sample (ns per call) as a JSON array, in measurement order
    },
)

TABLES = {spec.name: spec for spec in (EVENTS, SUMMARY, REJECTS, REPLAY)}

# --- scan/1: ELF binaries and the page-eligible functions they import or define (syspage scan)
SCAN = TableSpec(
    name="scan",
    version=1,
    columns={
        "path": pl.String,
        "kind": pl.String,            # executable, pie executable, shared library, object, core
        "elf_class": pl.Int32,        # 32 or 64
        "endian": pl.String,          # little, big
        "machine": pl.String,         # e_machine (EM_X86_64, EM_AARCH64, ...)
        "osabi": pl.String,           # EI_OSABI
        "os": pl.String,              # from the ABI note, else EI_OSABI, else the interpreter
        "abi_note": pl.String,
        "build_id": pl.String,
        "interpreter": pl.String,
        "static": pl.Boolean,
        "imports": pl.List(pl.String),   # "name@version" of catalog functions it imports
        "defines": pl.List(pl.String),   # "name@version" of catalog functions it defines (a libc)
        "uses_page_calls": pl.Boolean,   # imports a function the page would serve
        "old_path": pl.String,           # why it would keep entering the kernel after the page lands
    },
)

# --- scan_problems/1: files a scan could not read, one line each ------------------------
SCAN_PROBLEMS = TableSpec(
    name="scan_problems",
    version=1,
    columns={"path": pl.String, "reason": pl.String},
)

TABLES.update({spec.name: spec for spec in (SCAN, SCAN_PROBLEMS)})

# --- locking/1: the locking-scheme stress sweep (syspage replay --stress, issue 8) -----
LOCKING = TableSpec(
    name="locking",
    version=1,
    columns={
        "scheme": pl.String,                 # page, field, word, ring, hybrid (docs/locking.md)
        "readers": pl.Int64,                 # reader threads
        "rate_target_per_s": pl.Int64,       # writer updates per second asked for (0: no writer)
        "rate_per_s": pl.Float64,            # writer updates per second achieved
        "op": pl.String,                     # word, snapshot, string
        "page": pl.String,                   # proc_ro, sys_ro
        "fields": pl.String,                 # ppid / ppid+uid / hostname
        "reads": pl.Int64,
        "batch_reads": pl.Int64,
        "samples": pl.Int64,
        "reader_ns_median": pl.Float64,
        "reader_ns_ci_low": pl.Float64,
        "reader_ns_ci_high": pl.Float64,
        "reader_ns_mad": pl.Float64,
        "reader_ns_tail": pl.Float64,
        "retries": pl.Int64,
        "retries_per_mread": pl.Float64,
        "max_retries": pl.Int64,
        "checked": pl.Int64,
        "torn": pl.Int64,
        "mixed": pl.Int64,
        "writer_updates": pl.Int64,
        "writer_ns_median": pl.Float64,
        "writer_ns_mad": pl.Float64,
        "duration_s": pl.Float64,
        "cpus": pl.Int64,
        "oversubscribed": pl.Boolean,
        "unstable": pl.Boolean,
        "raw_ns_json": pl.String,
    },
)

# Schemes whose multi-field reads are one snapshot by design (docs/locking.md). Part of the
# contract: replay's sweep and analyze's recommendation must agree on it.
LOCKING_SCHEMES = ("page", "field", "word", "ring", "hybrid")
LOCKING_SNAPSHOT_SCHEMES = ("page", "ring", "hybrid")

TABLES[LOCKING.name] = LOCKING
