"""Turn a `syspage collect` RUNDIR into a bundled trace folder under data/linux/.

Compresses the trace (gzip -9, no timestamp in the header, so the same trace gives the
same bytes), copies meta.json with two additions, and keeps the tracer's stderr:
  trace.file        the .gz name; trace.bytes/lines/sha256 stay those of the text strace
                    wrote (collect computed them), trace.compression says "gzip"
  data              which script took the trace, the workload's name and the load that ran
Usage: bundle_run.py RUNDIR OUTDIR WORKLOAD [LOAD_COMMAND]
"""
from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    rundir, outdir, workload = Path(argv[0]), Path(argv[1]), argv[2]
    load = argv[3] if len(argv) > 3 else None
    meta = json.loads((rundir / "meta.json").read_text())
    if meta.get("format") != "collect-meta/1" or meta.get("error"):
        raise SystemExit(f"{rundir}/meta.json: not a successful collect-meta/1 run: {meta.get('error')}")
    outdir.mkdir(parents=True, exist_ok=True)
    trace = rundir / meta["trace"]["file"]
    gz_name = trace.name + ".gz"
    with open(trace, "rb") as src, open(outdir / gz_name, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as out:
            shutil.copyfileobj(src, out)
    meta["trace"]["file"] = gz_name
    meta["trace"]["compression"] = "gzip"
    kept = []
    for extra in meta.get("extra_files", []):
        if (rundir / extra["file"]).is_file():
            shutil.copyfile(rundir / extra["file"], outdir / extra["file"])
            kept.append(extra)
    meta["extra_files"] = kept + [{"file": "README.md", "role": "what this trace is and how to regenerate it"}]
    meta["data"] = {"workload": workload, "regenerate": f"data/regenerate/{workload}.sh", "load_command": load}
    (outdir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
