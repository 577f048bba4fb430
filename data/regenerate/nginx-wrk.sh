#!/bin/sh
# Regenerate data/linux/nginx-wrk: nginx 1.22 (Debian) serving a small static page on
# loopback to wrk (2 threads, 10 connections, 1 s), 2 workers, access log on. nginx runs
# in the foreground ('daemon off') under `syspage collect` (strace -f) from start to a
# graceful quit, so the master and both workers are traced.
# Needs root (nginx's master starts as root and switches its workers to nobody).
# Usage: data/regenerate/nginx-wrk.sh
set -eu
. "$(dirname "$0")/common.sh"

workload="nginx-wrk"
port=58080
work=$(mktemp -d /tmp/syspage-nginx.XXXXXX)
new_run "$workload"
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
nginx="nginx -p $work -c $work/nginx.conf"
# shellcheck disable=SC2086  # $nginx is split into its words on purpose
trap '$nginx -s stop 2>/dev/null || true; sleep 0.5; rm -rf "$work"' EXIT

# shellcheck disable=SC2086
collect_in_background $nginx -g 'daemon off;'
until curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do sleep 0.1; done
load="wrk -t 2 -c 10 -d 1s http://127.0.0.1:$port/"
# shellcheck disable=SC2086  # the load command is split into its words on purpose
$load >/dev/null
# shellcheck disable=SC2086
$nginx -s quit
wait_for_collect
bundle "$workload" "$load"
