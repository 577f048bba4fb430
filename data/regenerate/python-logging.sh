#!/bin/sh
# Regenerate data/linux/python-logging: Debian's CPython 3 running
# python_logging_load.py (4 threads logging 1500 records each to a file, the
# format includes %(process)d), traced from its start.
# Usage: data/regenerate/python-logging.sh
set -eu
. "$(dirname "$0")/common.sh"

workload="python-logging"
dir=$(out_dir "$workload")
work=$(mktemp -d /tmp/syspage-logging.XXXXXX)
trap 'rm -rf "$work"' EXIT

started=$(date +%s.%N)
cmd="/usr/bin/python3 $repo/data/regenerate/python_logging_load.py $work/service.log 1500 4"
rc=0
# shellcheck disable=SC2086  # the command is split into its words on purpose
strace $strace_flags -o "$dir/trace.strace.txt" -- $cmd || rc=$?
# shellcheck disable=SC2086
finish "$dir" "$workload" "$started" --command-rc "$rc" -- $cmd
