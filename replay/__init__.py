"""syspage.replay: plan the trace's page-eligible calls and replay them in the C engine.

Public API (the CLI and the pipeline use only these):

* ``replay_file(events, output, impls=("syscall", "page"), progress=None, **options) -> Result``:
  events/1 Parquet in, replay/1 Parquet (and its JSON summary beside it) out.
* ``replay_events(events_df, options, progress=None) -> Result``: the same on a frame.
* ``Options``: mode (tight/paced), workers, samples, warmups, min_sample_ms, max_gap_ms, locking,
  placement, repeat_target and max_seconds (adaptive rounds, replay/adaptive.py).
* ``build_plan(events_df) -> Plan``: the packed plan (docs/replay.md "The plan file").

Imports are lazy: ``python -m syspage.replay._worker`` must start without Polars.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from syspage.replay.api import Result  # noqa: F401
    from syspage.replay.runner import Options  # noqa: F401

__all__ = ["Options", "Result", "build_plan", "replay_events", "replay_file"]


def __getattr__(name: str):
    if name in ("replay_file", "replay_events", "build_plan", "Result"):
        from syspage.replay import api

        return getattr(api, name)
    if name == "Options":
        from syspage.replay.runner import Options

        return Options
    raise AttributeError(name)
