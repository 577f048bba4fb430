#!/bin/sh
# Regenerate data/linux/postgresql-pgbench: PostgreSQL 15 (Debian) under pgbench's
# TPC-B-like load on loopback, every postgres process traced by strace.
# Needs root (runs the server as the 'postgres' user, attaches strace).
# Usage: data/regenerate/postgresql-pgbench.sh
set -eu
. "$(dirname "$0")/common.sh"

workload=postgresql-pgbench
for bin in /usr/lib/postgresql/*/bin; do :; done   # the newest installed major version
port=55432
clients=4
transactions=150        # per client: keeps the trace a few hundred KiB compressed
dir=$(out_dir "$workload")
work=$(mktemp -d /tmp/syspage-pg.XXXXXX)
chown postgres "$work"
as_pg() { runuser -u postgres -- "$@"; }

cleanup() { as_pg "$bin/pg_ctl" -D "$work/db" -m fast stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

as_pg "$bin/initdb" -D "$work/db" -A trust -U postgres >/dev/null
as_pg "$bin/pg_ctl" -D "$work/db" -l "$work/log" -w \
    -o "-p $port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" bench
as_pg pgbench -h 127.0.0.1 -p "$port" -i -s 1 -q bench >/dev/null 2>&1

# Every running postgres process: the postmaster (first line of postmaster.pid)
# and its children (checkpointer, walwriter, autovacuum, ...); -f follows the
# backends the postmaster forks for pgbench's connections.
postmaster=$(head -1 "$work/db/postmaster.pid")
pids="$postmaster $(pgrep -P "$postmaster" | tr '\n' ' ')"
started=$(date +%s.%N)
# shellcheck disable=SC2086  # one argument per pid
attach "$dir/trace.strace.txt" $pids
load="pgbench -h 127.0.0.1 -p $port -c $clients -j 2 -t $transactions bench"
# shellcheck disable=SC2086
as_pg $load
detach
finish "$dir" "$workload" "$started" --pids "$pids" --load "$load"
