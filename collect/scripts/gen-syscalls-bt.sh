#!/bin/sh
# gen-syscalls-bt.sh SYSCALL_64_TBL
#
# Regenerate the syscall-number -> name table inside syscalls.bt (between the
# "BEGIN generated" and "END generated" lines) from the kernel's own x86_64 table.
# The table in the repository came from Debian's linux-source-6.1:
#   tar -xJOf /usr/src/linux-source-6.1.tar.xz \
#       linux-source-6.1/arch/x86/entry/syscalls/syscall_64.tbl > syscall_64.tbl
#   collect/scripts/gen-syscalls-bt.sh syscall_64.tbl
# Only abi "common" and "64" rows: "x32" rows are another ABI's numbers.
set -eu
if [ "$#" -ne 1 ] || [ ! -r "$1" ]; then
    echo "usage: gen-syscalls-bt.sh SYSCALL_64_TBL" >&2
    exit 2
fi
tbl=$1
here=$(dirname "$0")
out="$here/syscalls.bt"
tmp="$out.tmp"
awk -v tbl="$tbl" '
    /BEGIN generated/ {
        print
        while ((getline line < tbl) > 0) {
            if (line ~ /^[ \t]*#/ || line ~ /^[ \t]*$/) continue
            split(line, f, /[ \t]+/)
            if (f[2] == "common" || f[2] == "64")
                printf "\t@name[%d] = \"%s\";\n", f[1], f[3]
        }
        skip = 1
        next
    }
    /END generated/ { skip = 0 }
    !skip { print }
' "$out" > "$tmp"
mv "$tmp" "$out"
