#!/bin/sh
# Regenerate data/linux/postgresql-pgbench: PostgreSQL 15 (Debian) under pgbench's
# TPC-B-like load on loopback. The postmaster runs in the foreground under
# `syspage collect` (strace -f), from start to a fast shutdown, so every backend,
# the checkpointer, walwriter and autovacuum are traced.
# Needs root (the server runs as the 'postgres' user via setpriv; strace needs ptrace).
# Usage: data/regenerate/postgresql-pgbench.sh
set -eu
. "$(dirname "$0")/common.sh"

workload="postgresql-pgbench"
for bin in /usr/lib/postgresql/*/bin; do :; done   # the newest installed major version
port=55432
clients=4
transactions=150        # per client: keeps the trace a few hundred KiB compressed
work=$(mktemp -d /tmp/syspage-pg.XXXXXX)
chmod 755 "$work"
mkdir "$work/sock" && chown postgres "$work/sock"
db="$work/db"
as_pg() { setpriv --reuid postgres --regid postgres --init-groups -- "$@"; }
cleanup() { as_pg "$bin/pg_ctl" -D "$db" -m fast stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
new_run "$workload"

# Set up the database untraced: initdb, pgbench's tables (scale 1), then stop.
mkdir "$db" && chown postgres "$db"
as_pg "$bin/initdb" -D "$db" -A trust -U postgres >/dev/null
opts="-p $port -k $work/sock -c listen_addresses=127.0.0.1"
# shellcheck disable=SC2086  # $opts is split into postgres' options on purpose
as_pg "$bin/pg_ctl" -D "$db" -l "$work/sock/setup.log" -w -o "$opts" start >/dev/null
as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" bench
as_pg pgbench -h 127.0.0.1 -p "$port" -i -s 1 -q bench >/dev/null 2>&1
as_pg "$bin/pg_ctl" -D "$db" -m fast -w stop >/dev/null

# The traced run: the postmaster in the foreground, the load, a fast shutdown.
# shellcheck disable=SC2086
collect_in_background setpriv --reuid postgres --regid postgres --init-groups -- "$bin/postgres" -D "$db" $opts
until as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do sleep 0.2; done
load="pgbench -h 127.0.0.1 -p $port -c $clients -j 2 -t $transactions bench"
# shellcheck disable=SC2086  # the load command is split into its words on purpose
as_pg $load >/dev/null
as_pg "$bin/pg_ctl" -D "$db" -m fast -w stop >/dev/null
wait_for_collect
bundle "$workload" "$load"
