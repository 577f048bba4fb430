/* The syscall implementation on a FreeBSD host: each host op is the real call with the
 * traced names (sysctlbyname(3) with the traced MIB name, setproctitle(3), issetugid(2) ...).
 *
 * NOT COMPILED OR RUN HERE: no FreeBSD machine was available. Written to the FreeBSD 14
 * manual pages -- getpid(2) getresuid(2) getpgrp(2) getsid(2) issetugid(2) getlogin(2)
 * gethostname(3) getdomainname(3) uname(3) sysctl(3) setproctitle(3) jail(2) -- and to
 * lib/libc/gen/setproctitle.c (kern.proc.args is set by setproctitle through sysctl
 * KERN_PROC_ARGS on the caller's pid) and bin/ps (which reads it back with the same MIB).
 * setup.py selects this file instead of sp_host_linux.c on FreeBSD. */
#include <sys/param.h>
#include <sys/jail.h>
#include <sys/sysctl.h>
#include <sys/uio.h>
#include <sys/utsname.h>

#include <errno.h>
#include <pthread.h>
#include <pthread_np.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sp_engine.h"

static int uts_private; /* set once this process runs in its own jail with its own hostname */
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
	case SP_OP_ISSETUGID: return B(ISSETUGID);
	case SP_OP_GETHOSTNAME: return B(HOSTNAME);
	case SP_OP_GETDOMAINNAME: return B(DOMAINNAME);
	case SP_OP_UNAME: return B(SYSNAME) | B(HOSTNAME) | B(OSRELEASE) | B(VERSION) | B(MACHINE);
	/* a sysctl answers the one field its name names (see sysctl_field) */
	case SP_OP_SYSCTL:
		return B(HOSTNAME) | B(DOMAINNAME) | B(SYSNAME) | B(OSRELEASE) | B(VERSION) | B(MACHINE)
			| B(MACHINE_ARCH) | B(OSREVISION) | B(OSRELDATE) | B(PAGESIZE) | B(NCPU);
	default: return 0;
	}
}

/* The page field a sysctl name fills, and whether it is a string. -1 if none. */
static int sysctl_field(const char *name, int *is_string)
{
	static const struct { const char *name; enum sp_field f; int s; } map[] = {
		{"kern.hostname", SP_F_HOSTNAME, 1}, {"kern.domainname", SP_F_DOMAINNAME, 1},
		{"kern.ostype", SP_F_SYSNAME, 1}, {"kern.osrelease", SP_F_OSRELEASE, 1},
		{"kern.version", SP_F_VERSION, 1}, {"hw.machine", SP_F_MACHINE, 1},
		{"hw.machine_arch", SP_F_MACHINE_ARCH, 1}, {"kern.osrevision", SP_F_OSREVISION, 0},
		{"kern.osreldate", SP_F_OSRELDATE, 0}, {"hw.pagesize", SP_F_PAGESIZE, 0},
		{"hw.ncpu", SP_F_NCPU, 0},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcmp(map[i].name, name) == 0) {
			*is_string = map[i].s;
			return map[i].f;
		}
	return -1;
}

static int issue_sysctl(const char *name, uint32_t want, struct sp_value *out)
{
	char buf[1024];
	size_t len = sizeof buf;
	/* sysctlbyname(3): the traced name, looked up as the traced program did */
	if (sysctlbyname(name, buf, &len, NULL, 0) != 0)
		return -errno;
	if (!out) {
		sp_host_sink = (int64_t)len;
		return 0;
	}
	int is_string = 0, f = sysctl_field(name, &is_string);
	if (f < 0)
		return 0;
	if (is_string) {
		buf[len < sizeof buf ? len : sizeof buf - 1] = '\0';
		sp_value_add_str(out, (enum sp_field)f, buf, sizeof buf);
	} else if (len == sizeof(int)) {
		int v;
		memcpy(&v, buf, sizeof v);
		sp_value_add_int(out, (enum sp_field)f, v);
	} else if (len == sizeof(long)) {
		long v;
		memcpy(&v, buf, sizeof v);
		sp_value_add_int(out, (enum sp_field)f, v);
	}
	return 0;
}

int sp_host_issue(enum sp_host_op op, const char *arg, uint32_t want, struct sp_value *out)
{
	if (out)
		sp_value_reset(out, want);
	switch (op) {
	case SP_OP_GETPID: { pid_t r = getpid(); if (out) sp_value_add_int(out, SP_F_PID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETPPID: { pid_t r = getppid(); if (out) sp_value_add_int(out, SP_F_PPID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETUID: { uid_t r = getuid(); if (out) sp_value_add_int(out, SP_F_UID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETEUID: { uid_t r = geteuid(); if (out) sp_value_add_int(out, SP_F_EUID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETGID: { gid_t r = getgid(); if (out) sp_value_add_int(out, SP_F_GID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETEGID: { gid_t r = getegid(); if (out) sp_value_add_int(out, SP_F_EGID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETRESUID: {
		uid_t r, e, s;
		if (getresuid(&r, &e, &s) != 0) return -errno;
		if (out) { sp_value_add_int(out, SP_F_UID, r); sp_value_add_int(out, SP_F_EUID, e); sp_value_add_int(out, SP_F_SUID, s); }
		else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETRESGID: {
		gid_t r, e, s;
		if (getresgid(&r, &e, &s) != 0) return -errno;
		if (out) { sp_value_add_int(out, SP_F_GID, r); sp_value_add_int(out, SP_F_EGID, e); sp_value_add_int(out, SP_F_SGID, s); }
		else sp_host_sink = r;
		return 0;
	}
	case SP_OP_GETPGRP: { pid_t r = getpgrp(); if (out) sp_value_add_int(out, SP_F_PGID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETPGID: { pid_t r = getpgid(0); if (r < 0) return -errno; if (out) sp_value_add_int(out, SP_F_PGID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETSID: { pid_t r = getsid(0); if (r < 0) return -errno; if (out) sp_value_add_int(out, SP_F_SID, r); else sp_host_sink = r; return 0; }
	case SP_OP_ISSETUGID: { int r = issetugid(); if (out) sp_value_add_int(out, SP_F_ISSETUGID, r); else sp_host_sink = r; return 0; }
	case SP_OP_GETLOGIN: {
		/* getlogin(2): the session's login name (libc caches it after the first call;
		 * getlogin_r would too, so this is the system call as a program issues it) */
		char name[MAXLOGNAME];
		if (getlogin_r(name, sizeof name) != 0) return -errno;
		sp_host_sink = name[0];
		return 0;
	}
	case SP_OP_GETHOSTNAME: {
		char name[MAXHOSTNAMELEN];
		if (gethostname(name, sizeof name) != 0) return -errno;
		if (out) sp_value_add_str(out, SP_F_HOSTNAME, name, sizeof name); else sp_host_sink = name[0];
		return 0;
	}
	case SP_OP_GETDOMAINNAME: {
		char name[MAXHOSTNAMELEN];
		if (getdomainname(name, sizeof name) != 0) return -errno;
		if (out) sp_value_add_str(out, SP_F_DOMAINNAME, name, sizeof name); else sp_host_sink = name[0];
		return 0;
	}
	case SP_OP_UNAME: {
		/* uname(3) is several sysctls on FreeBSD (lib/libc/gen/uname.c, __xuname) */
		struct utsname u;
		if (uname(&u) != 0) return -errno;
		if (out) {
			sp_value_add_str(out, SP_F_SYSNAME, u.sysname, sizeof u.sysname);
			sp_value_add_str(out, SP_F_HOSTNAME, u.nodename, sizeof u.nodename);
			sp_value_add_str(out, SP_F_OSRELEASE, u.release, sizeof u.release);
			sp_value_add_str(out, SP_F_VERSION, u.version, sizeof u.version);
			sp_value_add_str(out, SP_F_MACHINE, u.machine, sizeof u.machine);
		} else sp_host_sink = u.nodename[0];
		return 0;
	}
	case SP_OP_SYSCTL:
		return issue_sysctl(arg, want, out);
	case SP_OP_SETPROCTITLE:
		/* setproctitle(3): "-" skips the program name, as the traced title is complete */
		setproctitle("-%s", arg);
		return 0;
	case SP_OP_READ_PROC_ARGS: {
		/* what ps(1) does: sysctl {CTL_KERN, KERN_PROC, KERN_PROC_ARGS, pid} */
		int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_ARGS, (int)getpid()};
		char buf[4096];
		size_t len = sizeof buf;
		if (sysctl(mib, 4, buf, &len, NULL, 0) != 0) return -errno;
		sp_host_sink = (int64_t)len;
		return 0;
	}
	case SP_OP_SETHOSTNAME:
		if (!uts_private) return -EPERM; /* never the host's hostname */
		return sethostname(arg, (int)strlen(arg)) == 0 ? 0 : -errno;
	default:
		return -ENOSYS;
	}
}

const char *sp_host_unsafe_reason(enum sp_host_op op)
{
	if (op == SP_OP_SETHOSTNAME && !uts_private)
		return "no private jail with its own hostname (needs root): sethostname not issued";
	if (op == SP_OP_NONE)
		return "no host system call";
	switch (op) {
	case SP_OP_PRCTL_SET_NAME: case SP_OP_PRCTL_GET_NAME: case SP_OP_READ_PROC_CMDLINE:
	case SP_OP_SYSINFO: case SP_OP_SCHED_GETAFFINITY:
		return "a Linux host operation (this is a FreeBSD build)";
	default:
		return NULL;
	}
}

/* FreeBSD has no UTS namespace; a jail with "host=new" has its own hostname (jail(8)
 * "host.hostname"; jail(2) jail_set with JAIL_CREATE | JAIL_ATTACH). The jail keeps the
 * host's root ("path" = "/") and ends with its last process (no "persist"). */
int sp_host_private_uts(void)
{
	char hostname[MAXHOSTNAMELEN];
	if (gethostname(hostname, sizeof hostname) != 0)
		return -errno;
	struct iovec iov[] = {
		{"path", sizeof "path"}, {"/", sizeof "/"},
		{"host", sizeof "host"}, {"new", sizeof "new"},
		{"host.hostname", sizeof "host.hostname"}, {hostname, strlen(hostname) + 1},
	};
	if (jail_set(iov, sizeof iov / sizeof iov[0], JAIL_CREATE | JAIL_ATTACH) < 0)
		return -errno;
	uts_private = 1;
	return 0;
}

int sp_host_title_save(char *buf, size_t len)
{
	/* setproctitle(NULL) restores the original title: nothing to save */
	if (len)
		buf[0] = '\0';
	return 0;
}

int sp_host_title_restore(const char *buf)
{
	(void)buf;
	setproctitle(NULL);
	return 0;
}
