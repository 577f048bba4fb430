"""Run the benchmarks under bench/ and write one JSON result with the machine's metadata.

Each bench/bench_<topic>.py defines NAME and run(quick: bool) -> dict with:
  "rows": list of dicts (one per measured thing; include the baseline's row),
  "targets": list of {"name", "target", "value", "met": bool},
  "method": one paragraph on how it was measured.
Every benchmark compares against its baseline in the same run (see ../shared/STYLE.md).

usage: python bench/run.py [--quick] [NAME ...]
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

from syspage.machine import describe

BENCH_DIR = Path(__file__).resolve().parent
RESULT_FORMAT = 1


def discover(names: list[str]) -> list[Path]:
    files = sorted(BENCH_DIR.glob("bench_*.py"))
    if names:
        files = [f for f in files if f.stem.removeprefix("bench_") in names]
    return files


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="small inputs, for checking the benchmarks themselves")
    ap.add_argument("-o", "--output", help="result JSON (default bench/results/<timestamp>.json)")
    args = ap.parse_args(argv)

    started = dt.datetime.now(dt.timezone.utc)
    result = {"format": RESULT_FORMAT, "started": started.isoformat(), "machine": describe(),
              "quick": args.quick, "benchmarks": {}}
    failed = False
    for path in discover(args.names):
        module = load(path)
        name = getattr(module, "NAME", path.stem)
        print(f"== {name}", file=sys.stderr)
        t0 = time.perf_counter()
        try:
            outcome = module.run(quick=args.quick)
        except Exception:  # a broken benchmark must not hide the others
            failed = True
            outcome = {"error": traceback.format_exc()}
            print(outcome["error"], file=sys.stderr)
        outcome["elapsed_s"] = round(time.perf_counter() - t0, 3)
        result["benchmarks"][name] = outcome
        for t in outcome.get("targets", []):
            mark = "met" if t.get("met") else "MISSED"
            print(f"   {t['name']}: {t['value']} (target {t['target']}) {mark}")

    out = Path(args.output) if args.output else BENCH_DIR / "results" / f"{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
