# Shared by the data/regenerate/*.sh scripts (sourced, not run).
# Each script runs a real program under `syspage collect` (strace -f -ttt -T -xx -s 128,
# see docs/collect.md), drives a load for a few seconds when it is a server, stops it,
# and bundles the run into data/linux/WORKLOAD/ (bundle_run.py: gzip'ed trace, meta.json).
# shellcheck shell=sh

repo=$(cd "$(dirname "$0")/../.." && pwd)
syspage=${SYSPAGE:-$repo/.venv/bin/syspage}
python=${PYTHON:-$repo/.venv/bin/python}

# new_run WORKLOAD: a scratch directory in $work (the caller sets work) for collect's RUNDIR;
# sets run and dir (data/linux/WORKLOAD, emptied of an older bundle).
new_run() {
    run="${work:?}/run"
    dir="$repo/data/linux/$1"
    rm -rf "$dir/trace.strace.txt.gz" "$dir/meta.json" "$dir/tracer.stderr.txt"
}

# collect_in_background CMD...: `syspage collect` on a server command; sets collect_pid.
collect_in_background() {
    "$syspage" -q collect -o "$run" -- "$@" &
    collect_pid=$!
}

# wait_for_collect: the server has been told to stop; wait until it and strace are gone.
wait_for_collect() {
    wait "$collect_pid"
}

# bundle WORKLOAD [LOAD]: gzip the trace into data/linux/WORKLOAD/ with its meta.json.
bundle() {
    "$python" "$repo/data/regenerate/bundle_run.py" "$run" "$dir" "$@"
    echo "$1: $(zcat "$dir/trace.strace.txt.gz" | wc -l) lines, $(du -k "$dir/trace.strace.txt.gz" | cut -f1) KiB compressed"
}
