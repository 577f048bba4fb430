"""Load the C engine and check it matches this Python package (psutil does the same).

A stale build (e.g. after a git pull without reinstalling) would otherwise run an
old loop against a new plan format.
"""
from __future__ import annotations

from syspage.errors import ReplayError

# Bump together with SP_ENGINE_VERSION in setup.py when the plan format or API changes.
EXPECTED_ENGINE_VERSION = "3"


def load():
    """Return the compiled engine module, or raise ReplayError saying how to fix it."""
    try:
        from syspage.replay import _engine
    except ImportError as exc:
        raise ReplayError(
            f"the C replay engine is not built ({exc}); run 'pip install -e .' in the repository"
        ) from None
    if _engine.ENGINE_VERSION != EXPECTED_ENGINE_VERSION:
        raise ReplayError(
            f"the C replay engine is version {_engine.ENGINE_VERSION}, this package needs "
            f"{EXPECTED_ENGINE_VERSION}; rebuild it with 'pip install -e .'"
        )
    return _engine
