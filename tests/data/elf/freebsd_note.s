# A shared library with a FreeBSD ABI note (NT_FREEBSD_ABI_TAG, sys/sys/elf_common.h):
# assembled and linked by the real GNU as/ld in tests/test_scan_elf.py. It imports getpid and
# setproctitle and defines gethostname, versioned FBSD_1.0 by freebsd_note.map.
    .section .note.tag,"a",@note
    .p2align 2
    .long 8            # namesz ("FreeBSD\0")
    .long 4            # descsz
    .long 1            # NT_FREEBSD_ABI_TAG
    .asciz "FreeBSD"
    .p2align 2
    .long 1400097      # __FreeBSD_version
    .text
    .globl gethostname
    .type gethostname,@function
gethostname:
    call getpid@PLT
    call setproctitle@PLT
    ret
