/* The syscall implementation on a Linux host: each host op is the real system call
 * (through glibc, the way programs issue it). Only catalog operations exist here.
 * Man pages: getpid(2) getresuid(2) getpgrp(2) getsid(2) uname(2) prctl(2) sysinfo(2)
 * sched_getaffinity(2) sethostname(2) unshare(2) proc(5). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "sp_engine.h"

static int uts_private; /* set once unshare(CLONE_NEWUTS) succeeded in this process */

/* Where the results of the timed path go, so the compiler keeps every call. */
static volatile int64_t sp_host_sink;

#define B(f) SP_FIELD_BIT(SP_F_##f)

uint32_t sp_host_fields(enum sp_host_op op)
{
	switch (op) {
	case SP_OP_GETPID: return B(PID);
	case SP_OP_GETPPID: return B(PPID);
	case SP_OP_GETUID: return B(UID);
	case SP_OP_GETEUID: return B(EUID);
	case SP_OP_GETGID: return B(GID);
	case SP_OP_GETEGID: return B(EGID);
	case SP_OP_GETRESUID: return B(UID) | B(EUID) | B(SUID);
	case SP_OP_GETRESGID: return B(GID) | B(EGID) | B(SGID);
	case SP_OP_GETPGRP: case SP_OP_GETPGID: return B(PGID);
	case SP_OP_GETSID: return B(SID);
	case SP_OP_UNAME:
		return B(SYSNAME) | B(HOSTNAME) | B(OSRELEASE) | B(VERSION) | B(MACHINE) | B(DOMAINNAME);
	case SP_OP_PRCTL_GET_NAME: return B(COMM);
	/* sysinfo gives whole seconds of uptime: boottime is not compared (docs/replay.md) */
	case SP_OP_SCHED_GETAFFINITY: return B(NCPU);
	default: return 0;
	}
}

int sp_host_issue(enum sp_host_op op, const char *arg, uint32_t want, struct sp_value *out)
{
	if (out)
		sp_value_reset(out, want);
	switch (op) {
	case SP_OP_GETPID: {
		pid_t r = getpid();
		if (out) sp_value_add_int(out, SP_F_PID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETPPID: {
		pid_t r = getppid();
		if (out) sp_value_add_int(out, SP_F_PPID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETUID: {
		uid_t r = getuid();
		if (out) sp_value_add_int(out, SP_F_UID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETEUID: {
		uid_t r = geteuid();
		if (out) sp_value_add_int(out, SP_F_EUID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETGID: {
		gid_t r = getgid();
		if (out) sp_value_add_int(out, SP_F_GID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETEGID: {
		gid_t r = getegid();
		if (out) sp_value_add_int(out, SP_F_EGID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETRESUID: {
		uid_t r, e, s;
		if (getresuid(&r, &e, &s) != 0) return -errno;
		if (out) {
			sp_value_add_int(out, SP_F_UID, r);
			sp_value_add_int(out, SP_F_EUID, e);
			sp_value_add_int(out, SP_F_SUID, s);
		} else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETRESGID: {
		gid_t r, e, s;
		if (getresgid(&r, &e, &s) != 0) return -errno;
		if (out) {
			sp_value_add_int(out, SP_F_GID, r);
			sp_value_add_int(out, SP_F_EGID, e);
			sp_value_add_int(out, SP_F_SGID, s);
		} else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETPGRP: {
		pid_t r = getpgrp();
		if (out) sp_value_add_int(out, SP_F_PGID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETPGID: {
		pid_t r = getpgid(0);
		if (r < 0) return -errno;
		if (out) sp_value_add_int(out, SP_F_PGID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETSID: {
		pid_t r = getsid(0);
		if (r < 0) return -errno;
		if (out) sp_value_add_int(out, SP_F_SID, r); else sp_host_sink = r;
		return 0;
	}
	case SP_OP_UNAME: {
		struct utsname u;
		if (uname(&u) != 0) return -errno;
		if (out) {
			sp_value_add_str(out, SP_F_HOSTNAME, u.nodename, sizeof u.nodename);
			sp_value_add_str(out, SP_F_SYSNAME, u.sysname, sizeof u.sysname);
			sp_value_add_str(out, SP_F_OSRELEASE, u.release, sizeof u.release);
			sp_value_add_str(out, SP_F_VERSION, u.version, sizeof u.version);
			sp_value_add_str(out, SP_F_MACHINE, u.machine, sizeof u.machine);
			sp_value_add_str(out, SP_F_DOMAINNAME, u.domainname, sizeof u.domainname);
		} else sp_host_sink = u.nodename[0];
		return 0;
	}
	case SP_OP_PRCTL_SET_NAME:
		/* PR_SET_NAME keeps 15 bytes + NUL (prctl(2)); the caller restores the title. */
		return prctl(PR_SET_NAME, (unsigned long)arg, 0, 0, 0) == 0 ? 0 : -errno;
	case SP_OP_PRCTL_GET_NAME: {
		char name[17] = {0};
		if (prctl(PR_GET_NAME, (unsigned long)name, 0, 0, 0) != 0) return -errno;
		if (out) sp_value_add_str(out, SP_F_COMM, name, 16); else sp_host_sink = name[0];
		return 0;
	}
	case SP_OP_READ_PROC_CMDLINE: {
		/* what ps(1) does to show a title: proc(5) /proc/PID/cmdline */
		char buf[4096];
		int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
		if (fd < 0) return -errno;
		ssize_t n = read(fd, buf, sizeof buf);
		int saved = errno;
		close(fd);
		if (n < 0) return -saved;
		sp_host_sink = n;
		return 0;
	}
	case SP_OP_SYSINFO: {
		struct sysinfo si;
		if (sysinfo(&si) != 0) return -errno;
		sp_host_sink = si.uptime;
		return 0;
	}
	case SP_OP_SCHED_GETAFFINITY: {
		cpu_set_t set;
		if (sched_getaffinity(0, sizeof set, &set) != 0) return -errno;
		if (out) sp_value_add_int(out, SP_F_NCPU, CPU_COUNT(&set)); else sp_host_sink = set.__bits[0];
		return 0;
	}
	case SP_OP_SETHOSTNAME:
		if (!uts_private) return -EPERM; /* never the host's hostname */
		return sethostname(arg, strlen(arg)) == 0 ? 0 : -errno;
	default:
		return -ENOSYS;
	}
}

const char *sp_host_unsafe_reason(enum sp_host_op op)
{
	if (op == SP_OP_SETHOSTNAME && !uts_private)
		return "no private UTS namespace (needs CAP_SYS_ADMIN): sethostname not issued";
	if (op == SP_OP_NONE)
		return "no host system call";
	if (op >= SP_OP_ISSETUGID)
		return "a FreeBSD host operation (this is a Linux build)";
	return NULL;
}

int sp_host_private_uts(void)
{
	if (unshare(CLONE_NEWUTS) != 0)
		return -errno;
	uts_private = 1;
	return 0;
}

int sp_host_title_save(char *buf, size_t len)
{
	char name[17] = {0};
	if (prctl(PR_GET_NAME, (unsigned long)name, 0, 0, 0) != 0)
		return -errno;
	strncpy(buf, name, len - 1);
	buf[len - 1] = '\0';
	return 0;
}

int sp_host_title_restore(const char *buf)
{
	return prctl(PR_SET_NAME, (unsigned long)buf, 0, 0, 0) == 0 ? 0 : -errno;
}
