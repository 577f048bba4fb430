"""The catalog of page-eligible calls (syspage/catalog.toml), and the one function that
classifies events with it.

Parse fills ``page_class``/``page_access`` with ``classify``; replay asks ``host_op`` what to
issue for a class; analyze labels classes with ``with_call_class``; scan reads
``scan_functions``. docs/catalog.md is the human-readable view of the same file.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from syspage.errors import SyspageError

CATALOG_PATH = Path(__file__).with_name("catalog.toml")
CATALOG_FORMAT = 1
HOSTS = ("linux", "freebsd")

_NULL_POINTERS = ("0", "0x0", "0X0", "NULL", "nil")
_SYSCTL_CALLS = ("sysctl", "sysctlbyname")  # normalized names of __sysctl, __sysctlbyname


@dataclass(frozen=True)
class CallClass:
    """One row of the catalog: a call (or call + argument prefix, or sysctl name) and its page."""

    call_class: str          # the label users see: "getpid", "sysctl kern.hostname", "prctl(PR_SET_NAME)"
    syscall: str | None      # normalized syscall name (None for sysctl rows)
    sysctl_name: str | None
    args_prefixes: tuple[str, ...]
    oses: tuple[str, ...]
    page_class: str
    page_access: str
    fields: tuple[str, ...]
    linux_op: str
    freebsd_op: str
    note: str | None = None


class Catalog:
    def __init__(self, data: dict):
        if data.get("format") != CATALOG_FORMAT:
            raise SyspageError(f"{CATALOG_PATH}: catalog format {data.get('format')}, expected {CATALOG_FORMAT}")
        self.classes: list[CallClass] = []
        self.aliases: dict[str, str] = {}
        for c in data.get("call", []):
            for alias in c.get("aliases", []):
                self.aliases[alias] = c["name"]
            self.classes.append(CallClass(
                call_class=c.get("label", c["name"]), syscall=c["name"], sysctl_name=None,
                args_prefixes=tuple(c.get("args_prefix", ())), oses=tuple(c["os"]),
                page_class=c["page"], page_access=c["access"], fields=tuple(c["fields"]),
                linux_op=c["linux"], freebsd_op=c["freebsd"], note=c.get("note"),
            ))
        for s in data.get("sysctl", []):
            for access_key, op_key in (("read_access", "linux"), ("write_access", "linux_write")):
                if access_key not in s:
                    continue
                suffix = "" if access_key == "read_access" else " (write)"
                self.classes.append(CallClass(
                    call_class=f"sysctl {s['name']}{suffix}", syscall=None, sysctl_name=s["name"],
                    args_prefixes=(), oses=("freebsd", "openbsd", "netbsd", "dragonfly", "macos"),
                    page_class=s["page"], page_access=s[access_key], fields=tuple(s["fields"]),
                    linux_op=s.get(op_key, s["linux"]), freebsd_op=s["freebsd"],
                ))
        for f in data.get("follow", []):
            for name in f["names"]:
                self.classes.append(CallClass(
                    call_class=name, syscall=name, sysctl_name=None, args_prefixes=(), oses=("*",),
                    page_class=f["page"], page_access="follow", fields=tuple(f["fields"]),
                    linux_op=f["linux"], freebsd_op=f["freebsd"],
                ))
        self.scan_functions: tuple[str, ...] = tuple(data.get("scan", {}).get("functions", ()))

    # -- lookups ---------------------------------------------------------------------------
    def by_class(self) -> dict[str, CallClass]:
        return {c.call_class: c for c in self.classes}

    def host_op(self, call_class: str, host_os: str) -> str:
        """What the replay engine issues for this class on host_os ("none" = nothing to issue)."""
        if host_os not in HOSTS:
            raise SyspageError(f"no replay mapping for host OS {host_os!r} (known: {', '.join(HOSTS)})")
        entry = self.by_class().get(call_class)
        if entry is None:
            raise SyspageError(f"{call_class!r} is not in the catalog {CATALOG_PATH}")
        return entry.linux_op if host_os == "linux" else entry.freebsd_op

    def frame(self) -> pl.DataFrame:
        """The catalog as a table (one row per class), for reports and docs."""
        return pl.DataFrame(
            [{
                "call_class": c.call_class, "syscall": c.syscall, "sysctl_name": c.sysctl_name,
                "args_prefix": ", ".join(c.args_prefixes) or None, "os": ", ".join(c.oses),
                "page_class": c.page_class, "page_access": c.page_access, "fields": ", ".join(c.fields),
                "linux_op": c.linux_op, "freebsd_op": c.freebsd_op,
            } for c in self.classes],
        )

    # -- classification (vectorized) --------------------------------------------------------
    @functools.cached_property
    def _plain_lookup(self) -> pl.DataFrame:
        """(syscall, os) -> call_class for the classes decided by name and OS alone."""
        from syspage.schema import OSES

        rows = []
        for c in self.classes:
            if c.sysctl_name is not None or c.args_prefixes:
                continue
            for os_name in (OSES if c.oses == ("*",) else c.oses + ("unknown",)):
                rows.append({"_sp_name": c.syscall, "os": os_name, "_sp_plain": c.call_class})
        return pl.DataFrame(rows).unique(subset=["_sp_name", "os"], keep="first", maintain_order=True)

    @functools.cached_property
    def _page_lookup(self) -> pl.DataFrame:
        return pl.DataFrame(
            [{"call_class": c.call_class, "_sp_page": c.page_class, "_sp_access": c.page_access} for c in self.classes]
        )

    def with_call_class(self, events, column: str = "call_class"):
        """events plus a ``call_class`` column (null for calls no page serves).

        Needs the events/1 columns kind, os, syscall, args_raw and sysctl_name. Names go through
        the aliases (getuid32 -> getuid) first. Plain names are a join (fast on millions of rows);
        only prctl's argument prefix and sysctl's name/new-value need expressions.
        """
        lazy = isinstance(events, pl.LazyFrame)
        frame = events.lazy()
        name = pl.col("syscall").replace(self.aliases)
        is_call = pl.col("kind") == "call"
        frame = frame.with_columns(
            pl.when(is_call).then(name).otherwise(pl.lit(None, dtype=pl.String)).alias("_sp_name")
        ).join(self._plain_lookup.lazy(), on=["_sp_name", "os"], how="left", maintain_order="left")

        prefixed = pl.lit(None, dtype=pl.String)
        for c in reversed(self.classes):
            if not c.args_prefixes:
                continue
            args = pl.col("args_raw").fill_null("")
            cond = (pl.col("_sp_name") == c.syscall) & pl.col("os").is_in(list(c.oses) + ["unknown"])
            match = pl.lit(False)
            for p in c.args_prefixes:
                match = match | args.str.starts_with(p)
            prefixed = pl.when(cond & match).then(pl.lit(c.call_class)).otherwise(prefixed)

        sysctl_names = [c.sysctl_name for c in self.classes if c.sysctl_name]
        write_names = [c.sysctl_name for c in self.classes if c.sysctl_name and c.call_class.endswith("(write)")]
        is_sysctl = pl.col("_sp_name").is_in(list(_SYSCTL_CALLS)) & pl.col("sysctl_name").is_in(sysctl_names)
        writes = _sysctl_is_write()
        sysctl_class = (
            pl.when(writes & pl.col("sysctl_name").is_in(write_names))
            .then(pl.lit("sysctl ") + pl.col("sysctl_name") + pl.lit(" (write)"))
            .when(writes)
            .then(pl.lit(None, dtype=pl.String))   # a write to a read-only field: not served by a page
            .otherwise(pl.lit("sysctl ") + pl.col("sysctl_name"))
        )
        frame = frame.with_columns(
            pl.when(is_sysctl).then(sysctl_class)
            .otherwise(pl.coalesce(prefixed, pl.col("_sp_plain")))
            .alias(column)
        ).drop("_sp_name", "_sp_plain")
        return frame if lazy else frame.collect()

    def classify(self, events):
        """events with page_class and page_access filled from the catalog (the parse stage's last step)."""
        lazy = isinstance(events, pl.LazyFrame)
        columns = events.collect_schema().names()
        frame = (
            self.with_call_class(events.lazy(), column="_sp_class")
            .join(self._page_lookup.lazy().rename({"call_class": "_sp_class"}), on="_sp_class",
                  how="left", maintain_order="left")
            .with_columns(pl.col("_sp_page").alias("page_class"), pl.col("_sp_access").alias("page_access"))
            .select(columns)
        )
        return frame if lazy else frame.collect()


def _sysctl_is_write() -> pl.Expr:
    """True when a sysctl call passes a new value (newp != NULL).

    FreeBSD __sysctl(name, namelen, oldp, oldlenp, newp, newlen) has newp at index 4. OpenBSD's
    kdump folds name and namelen into one decoded argument ``2.12<vm.malloc_conf>``, and macOS
    dtruss prints the MIB as a list ``[CTL_KERN, 14, 1, 67117] (4)``: in both, newp is at
    index 3 once the folded name counts as one argument. See sysctl(3) on each system.
    """
    raw = pl.col("args_raw").fill_null("")
    # dtruss's bracketed MIB list holds commas of its own: make it one token first
    folded = raw.str.replace(r"^\s*\[[^\]]*\]\s*(\(\d+\))?", "<mib>")
    args = folded.str.split(",")
    first = args.list.get(0, null_on_oob=True).fill_null("")
    newp = (
        pl.when(first.str.contains("<", literal=True))
        .then(args.list.get(3, null_on_oob=True))
        .otherwise(args.list.get(4, null_on_oob=True))
        .fill_null("0")
        .str.strip_chars()
    )
    return ~newp.is_in(list(_NULL_POINTERS))


@functools.lru_cache(maxsize=1)
def load() -> Catalog:
    """The catalog, read once per process."""
    with CATALOG_PATH.open("rb") as fh:
        return Catalog(tomllib.load(fh))

