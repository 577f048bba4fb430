"""syspage: what would it save to move this system call onto a shared page?

Stages (each reads and writes a versioned file, see syspage.schema):
collect -> parse -> replay -> analyze. Imports are lazy so ``import syspage`` is cheap.
"""
__version__ = "0.1.0"

from syspage.errors import (  # noqa: E402
    AnalyzeError,
    CollectError,
    InputError,
    ParseError,
    ReplayError,
    ScanError,
    SchemaError,
    SyspageError,
)

__all__ = [
    "__version__",
    "AnalyzeError",
    "CollectError",
    "InputError",
    "ParseError",
    "ReplayError",
    "ScanError",
    "SchemaError",
    "SyspageError",
]
