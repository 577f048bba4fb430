#!/bin/sh
# Regenerate data/linux/make-gcc: make + gcc building libsubcmd (8 C files, the
# kernel tools' own Kbuild-style makefiles, fixdep, ld -r, ar) from the Linux 6.1
# source Debian ships in linux-source-6.1, `make -j2` under `syspage collect`
# (strace -f) from start to exit.
# Usage: data/regenerate/make-gcc.sh   (needs: apt-get install linux-source-6.1)
set -eu
. "$(dirname "$0")/common.sh"

workload="make-gcc"
tarball=/usr/src/linux-source-6.1.tar.xz
work=$(mktemp -d /tmp/syspage-make.XXXXXX)
trap 'rm -rf "$work"' EXIT
new_run "$workload"

# Only what libsubcmd's build reads, so the extraction stays quick.
tar -xJf "$tarball" -C "$work" --wildcards \
    'linux-source-6.1/tools/lib/subcmd/*' 'linux-source-6.1/tools/build/*' \
    'linux-source-6.1/tools/scripts/*' 'linux-source-6.1/tools/include/*' \
    'linux-source-6.1/tools/arch/x86/include/*'
mkdir "$work/out"

"$syspage" -q collect -o "$run" -- make -C "$work/linux-source-6.1/tools/lib/subcmd" -j2 "OUTPUT=$work/out/" >/dev/null
test -s "$work/out/libsubcmd.a"
bundle "$workload"
