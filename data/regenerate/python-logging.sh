#!/bin/sh
# Regenerate data/linux/python-logging: Debian's CPython 3 running
# python_logging_load.py (4 threads logging 1500 records each to a file; the format
# includes %(process)d), under `syspage collect` (strace -f) from start to exit.
# Usage: data/regenerate/python-logging.sh
set -eu
. "$(dirname "$0")/common.sh"

workload="python-logging"
work=$(mktemp -d /tmp/syspage-logging.XXXXXX)
trap 'rm -rf "$work"' EXIT
new_run "$workload"

"$syspage" -q collect -o "$run" -- /usr/bin/python3 "$repo/data/regenerate/python_logging_load.py" \
    "$work/service.log" 1500 4
bundle "$workload"
