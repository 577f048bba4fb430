#!/bin/sh
# Regenerate data/linux/redis-benchmark: Redis 7 (Debian, no persistence) under
# redis-benchmark on loopback (GET, SET, INCR, LPUSH, LPOP). The server runs in the
# foreground under `syspage collect` (strace -f) from start to SHUTDOWN.
# Usage: data/regenerate/redis-benchmark.sh
set -eu
. "$(dirname "$0")/common.sh"

workload="redis-benchmark"
port=56379
requests=4000           # per test: keeps the trace a few hundred KiB compressed
work=$(mktemp -d /tmp/syspage-redis.XXXXXX)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
new_run "$workload"

collect_in_background redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" --daemonize no
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
load="redis-benchmark -p $port -c 10 -n $requests -q -t get,set,incr,lpush,lpop"
# shellcheck disable=SC2086  # the load command is split into its words on purpose
$load >/dev/null
redis-cli -p "$port" shutdown nosave >/dev/null
wait_for_collect
bundle "$workload" "$load"
