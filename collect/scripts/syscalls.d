#!/usr/sbin/dtrace -s
/*
 * syscalls.d: one `sp1` line per completed system call of the target process and its
 * descendants, in the stable line format of docs/dtrace-line-format.md (the same line as
 * syscalls.bt under bpftrace on Linux).
 *
 * Usage:  dtrace -q -s syscalls.d -o TRACE -c 'CMD ARGS'
 *         dtrace -q -s syscalls.d -o TRACE -p PID
 *
 * NOT RUN HERE: there is no FreeBSD or macOS machine in this project's environment. Written
 * to the DTrace guide and FreeBSD's dtrace(1) and syscall provider (dtrace_syscall(4)):
 * syscall:::entry arg0..arg5 are the raw arguments, syscall:::return arg0 is the return value
 * and errno the error; walltimestamp is ns since the epoch; timestamp is a monotonic ns clock
 * used for the latency; progenyof() is true for $target and every process it forks.
 * On macOS, System Integrity Protection must allow dtrace (csrutil enable --without dtrace).
 *
 * Calls that never return (exit, a successful execve's old image) print no sp1 line; exit
 * prints an `sp1-exit` header with its status instead, which syspage reads as the exit
 * status of the command.
 */

#pragma D option quiet
#pragma D option switchrate=10hz
#pragma D option bufsize=16m
#pragma D option dynvarsize=32m

dtrace:::BEGIN
{
	printf("sp1-clock\tepoch\n");
	printf("sp1-start\t%d\n", $target);
}

syscall:::entry
/progenyof($target)/
{
	self->wall = walltimestamp;
	self->start = timestamp;
	self->a0 = arg0;
	self->a1 = arg1;
	self->a2 = arg2;
	self->a3 = arg3;
	self->a4 = arg4;
	self->a5 = arg5;
}

syscall::exit:entry
/progenyof($target)/
{
	printf("sp1-exit\t%d\t%d\t%d\n", pid, tid, (int)arg0);
}

syscall:::return
/self->start/
{
	printf("sp1\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t0x%x,0x%x,0x%x,0x%x,0x%x,0x%x\n",
	    self->wall, pid, tid, execname, probefunc, (long long)arg0, errno,
	    timestamp - self->start,
	    self->a0, self->a1, self->a2, self->a3, self->a4, self->a5);
	self->wall = 0;
	self->start = 0;
	self->a0 = 0;
	self->a1 = 0;
	self->a2 = 0;
	self->a3 = 0;
	self->a4 = 0;
	self->a5 = 0;
}
