# Shared by the data/regenerate/*.sh scripts (sourced, not run).
# Each script starts a real server on loopback, attaches strace with the flags
# the collect stage uses, drives a load for a few seconds, then detaches,
# compresses the trace and writes meta.json beside it.
# shellcheck shell=sh

repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
strace_flags="-f -ttt -T -xx -s 128"

# out_dir WORKLOAD: data/linux/WORKLOAD, created empty of old traces.
out_dir() {
    dir="$repo/data/linux/$1"
    mkdir -p "$dir"
    rm -f "$dir/trace.strace.txt" "$dir/trace.strace.txt.gz"
    echo "$dir"
}

# attach FILE PID...: strace those processes (and their future children) in the
# background; sets strace_pid. Waits until strace has attached.
attach() {
    file=$1
    shift
    pflags=""
    for p in "$@"; do pflags="$pflags -p $p"; done
    # shellcheck disable=SC2086  # word splitting of the flag lists is intended
    strace $strace_flags -o "$file" $pflags &
    strace_pid=$!
    sleep 1
}

# detach: stop strace cleanly (SIGINT makes it detach and flush).
detach() {
    kill -INT "$strace_pid"
    wait "$strace_pid" || true
}

# finish DIR WORKLOAD STARTED ARGS...: compress the trace, write meta.json;
# ARGS go to write_meta.py (--pids/--load for attach, --command-rc RC -- CMD).
finish() {
    dir=$1 workload=$2 started=$3
    shift 3
    ended=$(date +%s.%N)
    gzip -9 -n -f "$dir/trace.strace.txt"
    "$python" "$repo/data/regenerate/write_meta.py" --dir "$dir" --workload "$workload" \
        --started "$started" --ended "$ended" "$@"
    echo "$workload: $(zcat "$dir/trace.strace.txt.gz" | wc -l) lines, $(du -k "$dir/trace.strace.txt.gz" | cut -f1) KiB compressed"
}
