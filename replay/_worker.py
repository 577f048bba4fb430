"""One replay process: ``python -m syspage.replay._worker PLAN PROC CONFIG_JSON [CPUS_JSON]``.

The runner starts one per traced process and per worker round, so each has its own pid,
its own kernel side and its own pages (issue 4 §4). It imports only the C engine (no
Polars: a short start-up, and nothing else running in the process being measured), runs
the plan's process PROC with the GIL released, and prints the result as one JSON line.
CPUS_JSON (a list, may be empty) pins thread k to CPUS[k % len] for the timed passes.
"""
from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from syspage.replay import engine as engine_mod

    plan_path, proc, config = argv[0], int(argv[1]), json.loads(argv[2])
    cpus = json.loads(argv[3]) if len(argv) > 3 else []
    if cpus:
        config["cpus"] = cpus
    engine = engine_mod.load()
    with open(plan_path, "rb") as fh:
        plan = fh.read()
    try:
        result = engine.run_process(plan, proc, **config)
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
