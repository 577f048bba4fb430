#!/bin/sh
# hold-until-released.sh FIFO CMD [ARGS...]
#
# Start a command held back until a tracer has attached to it, keeping its pid:
# syspage starts this script, attaches the tracer to the script's pid (bpftrace follows
# that pid and its descendants), waits until the tracer says it is ready, then writes a
# line to FIFO. The script then exec(2)s CMD, which keeps the pid, so the first traced
# call is CMD's execve. The only calls of this shell the tracer can see are the return of
# its blocked read(2), the few fcntl/close calls the shell makes to set up exec, and the
# execve itself (comm "sh" until the execve returns).
# Used by collect/_facade.py for Plan.launch == "release".
set -eu
if [ "$#" -lt 2 ]; then
    echo "usage: hold-until-released.sh FIFO CMD [ARGS...]" >&2
    exit 2
fi
fifo=$1
shift
IFS= read -r _ < "$fifo"
exec "$@"
