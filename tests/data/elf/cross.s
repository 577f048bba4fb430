# Assembled for i686 (32-bit little-endian) and MIPS (32-bit big-endian) by the real cross
# binutils in tests/test_scan_elf.py: a shared library importing getpid and uname.
    .text
    .globl entry
entry:
    .long getpid
    .long uname
