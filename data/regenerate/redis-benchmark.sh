#!/bin/sh
# Regenerate data/linux/redis-benchmark: Redis 7 (Debian) under redis-benchmark
# on loopback (GET, SET, INCR, LPUSH, LPOP), the server and its threads traced.
# Usage: data/regenerate/redis-benchmark.sh
set -eu
. "$(dirname "$0")/common.sh"

workload=redis-benchmark
port=56379
requests=4000           # per test: keeps the trace a few hundred KiB compressed
dir=$(out_dir "$workload")
work=$(mktemp -d /tmp/syspage-redis.XXXXXX)

redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/log" --daemonize no &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

started=$(date +%s.%N)
attach "$dir/trace.strace.txt" "$server"
load="redis-benchmark -p $port -c 10 -n $requests -q -t get,set,incr,lpush,lpop"
# shellcheck disable=SC2086  # the load command is split into its words on purpose
$load
detach
finish "$dir" "$workload" "$started" --pids "$server" --load "$load"
