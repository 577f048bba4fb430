#!/bin/sh
# Regenerate every Linux trace in data/linux/ (as root: the servers and strace need it).
# Each takes seconds; the traces differ run to run (timing, pids), their shape does not.
set -eu
here=$(dirname "$0")
for w in postgresql-pgbench redis-benchmark nginx-wrk python-logging make-gcc; do
    "$here/$w.sh"
done
