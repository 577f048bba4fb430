"""syspage.collect: capture real syscall traces (strace, perf trace, bpftrace; ktrace, truss, DTrace, dtruss)."""
