"""The library's typed errors. Library code raises these; only the CLI prints and exits.

Every error message is one line that names what failed and where (file and line
when there is one), so the CLI can print it as is.
"""
from __future__ import annotations


class SyspageError(Exception):
    """Base of every error syspage raises on purpose."""


class InputError(SyspageError):
    """An input file is missing, empty, binary, not UTF-8, or otherwise unusable."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ParseError(SyspageError):
    """A trace line does not match its grammar (raised in --strict mode, or when nothing parses)."""

    def __init__(self, path, line: int, column: int | None, context: str, reason: str = "unexpected input"):
        self.path = str(path)
        self.line = line
        self.column = column
        self.context = context
        self.reason = reason
        where = f"{self.path}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {reason}: {context[:120]!r}")


class SchemaError(SyspageError):
    """A table file has another schema version or shape than this syspage reads."""


class CollectError(SyspageError):
    """A tracer is missing, not permitted, or the traced command could not run."""


class ReplayError(SyspageError):
    """The replay engine could not build, run or check a plan."""


class AnalyzeError(SyspageError):
    """A census, savings estimate or report could not be produced."""


class ScanError(SyspageError):
    """A binary scan could not run at all (single bad files are reported, not raised)."""
