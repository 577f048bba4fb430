"""What budget would the one-call classes need to repeat within 3 %? (issue 4, repeatability)

Not a benchmark with a target (bench/run.py does not run it: it takes N x the budget): N separate
`syspage replay` runs of the bundled python-logging trace per budget (`--max-seconds`), the
budgets alternated run by run, with bench_replay's measures: per class and implementation the
(max - min) / median of the runs' medians, the same for each class's cost over the machine
reference of its own samples, the reference's own spread, and each run's host state. usage:

  .venv/bin/python bench/replay_budget.py [--runs 5] [--budgets 30,150] [-o out.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_replay  # noqa: E402  (bench/ is not a package; the same measures as the bench)
from run import BENCH_DIR, describe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--budgets", default="30,150", help="comma-separated --max-seconds values")
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    variants = {f"{b} s budget": ["--max-seconds", b] for b in args.budgets.split(",")}
    runs = bench_replay._cli_replay_runs(args.runs, quiet_wait_s=30.0, variants=variants)
    rows, worst = bench_replay._repeatability(runs)
    summary = {}
    for r in rows:
        summary.setdefault(r["variant"], []).append(
            {"class": r["class"].split(": ", 1)[1].split(",")[0], "spread": round(r["spread"], 4),
             "spread_over_reference": r["spread_over_reference"] and round(r["spread_over_reference"], 4),
             "medians_ns": r["medians_ns"]})
    for variant, classes in summary.items():
        w = worst[variant]
        print(f"{variant}: rounds per run {w['rounds']}, reference spread {w['reference_spread']}")
        for c in classes:
            print(f"   {c['class']:24s} spread {c['spread']:.1%}  over reference {c['spread_over_reference'] or 0:.1%}"
                  f"  {c['medians_ns']}")
    out = Path(args.output) if args.output else BENCH_DIR / "results" / f"replay_budget_{started:%Y%m%dT%H%M%SZ}.json"
    hosts = [{k: v for k, v in r.items() if k in ("variant", "pair", "utc", "seconds", "quiet_wait", "adaptive")}
             | {k: v for k, v in r["host_load"].items() if k != "rounds"} for r in runs]
    out.write_text(json.dumps({"format": "syspage-bench-replay-budget/1", "started": started.isoformat(),
                               "machine": describe(), "rows": rows, "worst": {k: {**v, "key": v["key"], "key_rel": v["key_rel"]}
                                                                               for k, v in worst.items()},
                               "runs": hosts}, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
