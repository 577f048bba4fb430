#!/bin/sh
# Regenerate data/linux/make-gcc: make + gcc building libsubcmd (8 C files, the
# kernel tools' own Kbuild-style makefiles, fixdep, ld -r, ar) from the Linux 6.1
# source Debian ships in linux-source-6.1, traced from make's start with -j2.
# Usage: data/regenerate/make-gcc.sh   (needs: apt-get install linux-source-6.1)
set -eu
. "$(dirname "$0")/common.sh"

workload="make-gcc"
tarball=/usr/src/linux-source-6.1.tar.xz
dir=$(out_dir "$workload")
work=$(mktemp -d /tmp/syspage-make.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Only what libsubcmd's build reads, so the extraction stays quick.
tar -xJf "$tarball" -C "$work" --wildcards \
    'linux-source-6.1/tools/lib/subcmd/*' 'linux-source-6.1/tools/build/*' \
    'linux-source-6.1/tools/scripts/*' 'linux-source-6.1/tools/include/*' \
    'linux-source-6.1/tools/arch/x86/include/*'
mkdir "$work/out"

started=$(date +%s.%N)
cmd="make -C $work/linux-source-6.1/tools/lib/subcmd -j2 OUTPUT=$work/out/"
rc=0
# shellcheck disable=SC2086  # the command is split into its words on purpose
strace $strace_flags -o "$dir/trace.strace.txt" -- $cmd >/dev/null || rc=$?
test -s "$work/out/libsubcmd.a"
# shellcheck disable=SC2086
finish "$dir" "$workload" "$started" --command-rc "$rc" -- $cmd
