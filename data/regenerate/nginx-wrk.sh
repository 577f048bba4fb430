#!/bin/sh
# Regenerate data/linux/nginx-wrk: nginx 1.22 (Debian) serving a small static
# page on loopback to wrk (2 threads, 10 connections, 1 s), master and workers
# traced, access log on. Needs root (nginx's master starts as root).
# Usage: data/regenerate/nginx-wrk.sh
set -eu
. "$(dirname "$0")/common.sh"

workload=nginx-wrk
port=58080
dir=$(out_dir "$workload")
work=$(mktemp -d /tmp/syspage-nginx.XXXXXX)
mkdir -p "$work/html" "$work/logs"
printf '<!doctype html><title>syspage</title><p>hello from nginx</p>\n' > "$work/html/index.html"
chmod -R a+rX "$work"
cat > "$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 256; }
http {
    access_log $work/logs/access.log;
    client_body_temp_path $work;
    proxy_temp_path $work;
    fastcgi_temp_path $work;
    uwsgi_temp_path $work;
    scgi_temp_path $work;
    server {
        listen 127.0.0.1:$port;
        root $work/html;
    }
}
CONF

nginx -p "$work" -c "$work/nginx.conf"
cleanup() { nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true; sleep 0.5; rm -rf "$work"; }
trap cleanup EXIT
until [ -s "$work/nginx.pid" ]; do sleep 0.1; done
master=$(cat "$work/nginx.pid")
pids="$master $(pgrep -P "$master" | tr '\n' ' ')"

started=$(date +%s.%N)
# shellcheck disable=SC2086  # one argument per pid
attach "$dir/trace.strace.txt" $pids
load="wrk -t 2 -c 10 -d 1s http://127.0.0.1:$port/"
# shellcheck disable=SC2086  # the load command is split into its words on purpose
$load
detach
finish "$dir" "$workload" "$started" --pids "$pids" --load "$load"
