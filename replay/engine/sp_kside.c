/* The simulated kernel side of the shared-page scheme (issue 4 §3).
 *
 * A separate process plays the kernel. It is forked by the replay process, so it knows
 * the replayer's real pid (its parent) and reads the replayer's identity the way the
 * kernel knows it (/proc/PID/stat and /proc/PID/status, proc(5)). It owns the two
 * kernel-written pages (proc_ro, sys_ro): memfds it maps read-write, fills, then seals
 * with F_SEAL_FUTURE_WRITE (memfd_create(2), fcntl(2) "File seals"). From then on no new
 * writable mapping of them can be made: the replayer can only map them read-only, and a
 * store through its mapping is a SIGSEGV (the VM system enforces it, as the proposal
 * requires; since Linux 5.1, and 6.1 also clears VM_MAYWRITE so mprotect cannot upgrade).
 * The title page (proc_rw) is shared read-write: the replayer writes it, the kernel side
 * reads it with sp_page.h's bounded reader, as ps(1) would.
 *
 * The kernel side then serves commands on a pipe: apply a state change (sethostname,
 * credentials), read the title the way ps does, stop. Page layout and locking are
 * sp_page.h's (issue 8); this file only decides what goes in and when. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_engine.h"

enum sp_kcmd_op { SP_KCMD_FOLLOW = 1, SP_KCMD_READ_TITLE = 2, SP_KCMD_STOP = 3 };

struct sp_kcmd {
	uint32_t cmd;      /* enum sp_kcmd_op */
	uint32_t op;       /* enum sp_host_op for SP_KCMD_FOLLOW */
	char arg[256];
};

struct sp_kreply {
	int32_t status;    /* 0 or -errno */
	int32_t source;    /* sp_title_result.source */
	uint32_t len;
	uint32_t retries;
	char text[SP_TITLE_MAX];
};

struct sp_kside {
	pid_t pid;                 /* the kernel-side process */
	int cmd_fd, reply_fd;
	int fds[SP_PAGE_KIND_COUNT];
	void *pages[SP_PAGE_KIND_COUNT];
	size_t bytes[SP_PAGE_KIND_COUNT];
	enum sp_scheme scheme;
};

/* ---- the kernel side's view of the replayer (proc(5)) --------------------------------- */

/* Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses). */
static int read_stat_fields(pid_t pid, long long *out, int first, int count)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p += 2;  /* field 3 (state) starts here */
	for (int field = 3; *p && field < first + count; field++) {
		char *end;
		long long v = strtoll(p, &end, 10);
		if (field >= first)
			out[field - first] = v;
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
	}
	return 0;
}

/* "Uid:\tr\te\ts\tfs" from /proc/PID/status. */
static int read_status_ids(pid_t pid, const char *key, long long ids[3])
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int found = -ENOENT;
	size_t klen = strlen(key);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, klen) == 0) {
			if (sscanf(line + klen, "%lld %lld %lld", &ids[0], &ids[1], &ids[2]) == 3)
				found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static void fill_proc_ro(void *page, enum sp_scheme scheme, pid_t replayer)
{
	long long st[4] = {0}, uid[3] = {0}, gid[3] = {0}, stack[1] = {0}, args[1] = {0};
	read_stat_fields(replayer, st, 4, 3);          /* ppid pgrp session (proc(5) fields 4-6) */
	read_stat_fields(replayer, stack, 28, 1);      /* startstack */
	read_stat_fields(replayer, args, 48, 1);       /* arg_start: where ps_strings' argv is */
	read_status_ids(replayer, "Uid:", uid);
	read_status_ids(replayer, "Gid:", gid);
	char login[SP_LOGIN_MAX] = "";
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/loginuid", (int)replayer);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, login, sizeof login - 1);
		login[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	struct sp_update u[] = {
		{SP_F_PID, (uint64_t)replayer, NULL, 0},
		{SP_F_PPID, (uint64_t)st[0], NULL, 0},
		{SP_F_PGID, (uint64_t)st[1], NULL, 0},
		{SP_F_SID, (uint64_t)st[2], NULL, 0},
		{SP_F_UID, (uint64_t)uid[0], NULL, 0},
		{SP_F_EUID, (uint64_t)uid[1], NULL, 0},
		{SP_F_SUID, (uint64_t)uid[2], NULL, 0},
		{SP_F_GID, (uint64_t)gid[0], NULL, 0},
		{SP_F_EGID, (uint64_t)gid[1], NULL, 0},
		{SP_F_SGID, (uint64_t)gid[2], NULL, 0},
		/* issetugid(2): the replayer is never set-id (it was exec'd plainly). */
		{SP_F_ISSETUGID, (uint64_t)(uid[0] != uid[1] || gid[0] != gid[1]), NULL, 0},
		{SP_F_USRSTACK, (uint64_t)stack[0], NULL, 0},
		{SP_F_PS_STRINGS, (uint64_t)args[0], NULL, 0},
		{SP_F_LOGIN, 0, login, strlen(login)},
	};
	sp_page_write(page, scheme, u, sizeof u / sizeof u[0]);
}

/* KERNEL_VERSION(a, b, c) of a release string such as "6.1.0-37-amd64". */
static uint64_t release_code(const char *release)
{
	unsigned a = 0, b = 0, c = 0;
	sscanf(release, "%u.%u.%u", &a, &b, &c);
	return ((uint64_t)a << 16) | (b << 8) | (c > 255 ? 255 : c);
}

static uint64_t boottime_us(void)
{
	FILE *f = fopen("/proc/stat", "re");
	char line[256];
	unsigned long long btime = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	return (uint64_t)btime * 1000000ull;
}

static void fill_sys_ro(void *page, enum sp_scheme scheme, pid_t replayer)
{
	struct utsname u;
	cpu_set_t set;
	uname(&u);
	CPU_ZERO(&set);
	sched_getaffinity(replayer, sizeof set, &set);
	struct sp_update up[] = {
		{SP_F_HOSTNAME, 0, u.nodename, strlen(u.nodename)},
		{SP_F_DOMAINNAME, 0, u.domainname, strlen(u.domainname)},
		{SP_F_SYSNAME, 0, u.sysname, strlen(u.sysname)},
		{SP_F_OSRELEASE, 0, u.release, strlen(u.release)},
		{SP_F_VERSION, 0, u.version, strlen(u.version)},
		{SP_F_MACHINE, 0, u.machine, strlen(u.machine)},
		{SP_F_MACHINE_ARCH, 0, u.machine, strlen(u.machine)},
		{SP_F_OSREVISION, release_code(u.release), NULL, 0},
		{SP_F_OSRELDATE, release_code(u.release), NULL, 0},
		{SP_F_BOOTTIME_US, boottime_us(), NULL, 0},
		{SP_F_PAGESIZE, (uint64_t)sysconf(_SC_PAGESIZE), NULL, 0},
		{SP_F_NCPU, (uint64_t)CPU_COUNT(&set), NULL, 0},
	};
	sp_page_write(page, scheme, up, sizeof up / sizeof up[0]);
}

static void fill_proc_rw(void *page, enum sp_scheme scheme, pid_t replayer)
{
	/* The replayer's current comm: what its title page holds before it writes one. */
	char path[64], comm[SP_COMM_MAX] = "";
	snprintf(path, sizeof path, "/proc/%d/comm", (int)replayer);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, comm, sizeof comm - 1);
		if (n > 0 && comm[n - 1] == '\n')
			n--;
		comm[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	sp_comm_write(page, scheme, comm, strlen(comm));
	sp_title_write(page, scheme, comm, strlen(comm));
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The kernel side's main loop (runs in the forked process, never returns). */
static void __attribute__((noreturn)) kside_main(struct sp_kside *k, pid_t replayer, int cmd_in, int reply_out)
{
	struct sp_kreply *reply = calloc(1, sizeof *reply);
	/* Die with the replayer: a kernel side must never outlive its process. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != replayer || !reply)
		_exit(1);
	for (int i = 0; i < SP_PAGE_KIND_COUNT; i++) {
		k->pages[i] = mmap(NULL, k->bytes[i], PROT_READ | PROT_WRITE, MAP_SHARED, k->fds[i], 0);
		if (k->pages[i] == MAP_FAILED || sp_page_init(k->pages[i], k->bytes[i], i, k->scheme) != 0)
			_exit(2);
	}
	fill_proc_ro(k->pages[SP_PAGE_PROC_RO], k->scheme, replayer);
	fill_sys_ro(k->pages[SP_PAGE_SYS_RO], k->scheme, replayer);
	fill_proc_rw(k->pages[SP_PAGE_PROC_RW], k->scheme, replayer);
	/* Seal after our own writable mapping exists: it stays writable, no new one can be made. */
	for (int i = SP_PAGE_PROC_RO; i <= SP_PAGE_SYS_RO; i++)
		if (fcntl(k->fds[i], F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
			_exit(3);
	reply->status = 0;
	if (write_all(reply_out, reply, sizeof *reply) != 0)
		_exit(4);
	struct sp_kcmd cmd;
	while (read_all(cmd_in, &cmd, sizeof cmd) == 0) {
		memset(reply, 0, sizeof *reply);
		cmd.arg[sizeof cmd.arg - 1] = '\0';
		switch (cmd.cmd) {
		case SP_KCMD_FOLLOW:
			if (cmd.op == SP_OP_SETHOSTNAME)
				sp_page_write_string(k->pages[SP_PAGE_SYS_RO], k->scheme, SP_F_HOSTNAME, cmd.arg, strlen(cmd.arg));
			else  /* credentials, session, group: re-read the replayer as the kernel knows it */
				fill_proc_ro(k->pages[SP_PAGE_PROC_RO], k->scheme, replayer);
			break;
		case SP_KCMD_READ_TITLE: {
			struct sp_title_result r;
			memset(&r, 0, sizeof r);
			sp_title_read_bounded(k->pages[SP_PAGE_PROC_RW], k->bytes[SP_PAGE_PROC_RW], k->scheme,
					      reply->text, sizeof reply->text, 64, "(replay)", &r);
			reply->source = r.source;
			reply->len = (uint32_t)r.len;
			reply->retries = r.retries;
			break;
		}
		case SP_KCMD_STOP:
			_exit(0);
		default:
			reply->status = -EINVAL;
		}
		if (write_all(reply_out, reply, sizeof *reply) != 0)
			break;
	}
	_exit(0);
}

static void kside_close_fds(struct sp_kside *k)
{
	for (int i = 0; i < SP_PAGE_KIND_COUNT; i++)
		if (k->fds[i] >= 0) {
			close(k->fds[i]);
			k->fds[i] = -1;
		}
}

struct sp_kside *sp_kside_start(const char *locking, char *err, size_t errlen)
{
	static const char *names[SP_PAGE_KIND_COUNT] = {"syspage-proc_ro", "syspage-sys_ro", "syspage-proc_rw"};
	int scheme = sp_scheme_from_name(locking ? locking : "page");
	if (scheme < 0) {
		snprintf(err, errlen, "unknown locking scheme %s", locking);
		return NULL;
	}
	struct sp_kside *k = calloc(1, sizeof *k);
	int cmd[2] = {-1, -1}, rep[2] = {-1, -1};
	if (!k) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	k->scheme = (enum sp_scheme)scheme;
	k->cmd_fd = k->reply_fd = -1;
	for (int i = 0; i < SP_PAGE_KIND_COUNT; i++) {
		k->fds[i] = -1;
		k->pages[i] = MAP_FAILED;
	}
	for (int i = 0; i < SP_PAGE_KIND_COUNT; i++) {
		k->bytes[i] = sp_page_map_bytes(i, k->scheme);
		k->fds[i] = memfd_create(names[i], MFD_CLOEXEC | (i == SP_PAGE_PROC_RW ? 0 : MFD_ALLOW_SEALING));
		if (k->fds[i] < 0 || ftruncate(k->fds[i], (off_t)k->bytes[i]) != 0) {
			snprintf(err, errlen, "memfd_create/ftruncate for %s: %s", names[i], strerror(errno));
			goto fail;
		}
	}
	if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(rep, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe2: %s", strerror(errno));
		goto fail;
	}
	pid_t replayer = getpid();
	k->pid = fork();
	if (k->pid < 0) {
		snprintf(err, errlen, "fork of the kernel side: %s", strerror(errno));
		goto fail;
	}
	if (k->pid == 0) {
		close(cmd[1]);
		close(rep[0]);
		kside_main(k, replayer, cmd[0], rep[1]);
	}
	close(cmd[0]);
	close(rep[1]);
	cmd[0] = rep[1] = -1;
	k->cmd_fd = cmd[1];
	k->reply_fd = rep[0];
	struct sp_kreply *ready = malloc(sizeof *ready);
	int ok = ready && read_all(k->reply_fd, ready, sizeof *ready) == 0 && ready->status == 0;
	free(ready);
	if (!ok) {
		int status = 0;
		waitpid(k->pid, &status, 0);
		k->pid = 0;
		snprintf(err, errlen, "the kernel side failed to set up its pages (exit status %d)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		goto fail;
	}
	/* Sealed now: read-only is the only mapping the replayer can get of the kernel's pages. */
	for (int i = 0; i < SP_PAGE_KIND_COUNT; i++) {
		int prot = i == SP_PAGE_PROC_RW ? PROT_READ | PROT_WRITE : PROT_READ;
		k->pages[i] = mmap(NULL, k->bytes[i], prot, MAP_SHARED, k->fds[i], 0);
		if (k->pages[i] == MAP_FAILED || sp_page_check(k->pages[i], k->bytes[i], i, k->scheme) != 0) {
			snprintf(err, errlen, "mapping the %s page: %s", names[i],
				 k->pages[i] == MAP_FAILED ? strerror(errno) : "bad header");
			goto fail;
		}
	}
	return k;
fail:
	for (int i = 0; i < 2; i++) {
		if (cmd[i] >= 0) close(cmd[i]);
		if (rep[i] >= 0) close(rep[i]);
	}
	sp_kside_stop(k);
	return NULL;
}

void sp_kside_stop(struct sp_kside *k)
{
	if (!k)
		return;
	if (k->cmd_fd >= 0) {
		struct sp_kcmd cmd = {.cmd = SP_KCMD_STOP};
		write_all(k->cmd_fd, &cmd, sizeof cmd);
		close(k->cmd_fd);
	}
	if (k->reply_fd >= 0)
		close(k->reply_fd);
	if (k->pid > 0) {
		int status;
		while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < SP_PAGE_KIND_COUNT; i++)
		if (k->pages[i] != MAP_FAILED && k->pages[i] != NULL)
			munmap(k->pages[i], k->bytes[i]);
	kside_close_fds(k);
	free(k);
}

static int kside_call(struct sp_kside *k, const struct sp_kcmd *cmd, struct sp_kreply *reply)
{
	if (write_all(k->cmd_fd, cmd, sizeof *cmd) != 0 || read_all(k->reply_fd, reply, sizeof *reply) != 0)
		return -EPIPE;
	return reply->status;
}

int sp_kside_follow(struct sp_kside *k, enum sp_host_op op, const char *arg)
{
	struct sp_kcmd cmd = {.cmd = SP_KCMD_FOLLOW, .op = op};
	struct sp_kreply *reply = malloc(sizeof *reply);
	if (!reply)
		return -ENOMEM;
	snprintf(cmd.arg, sizeof cmd.arg, "%s", arg ? arg : "");
	int r = kside_call(k, &cmd, reply);
	free(reply);
	return r;
}

size_t sp_kside_read_title(struct sp_kside *k, char *buf, size_t len, int *source)
{
	struct sp_kcmd cmd = {.cmd = SP_KCMD_READ_TITLE};
	struct sp_kreply *reply = malloc(sizeof *reply);
	size_t n = 0;
	buf[0] = '\0';
	if (reply && kside_call(k, &cmd, reply) == 0) {
		reply->text[sizeof reply->text - 1] = '\0';
		snprintf(buf, len, "%s", reply->text);
		n = strlen(buf);
		if (source)
			*source = reply->source;
	}
	free(reply);
	return n;
}

void *sp_kside_page(struct sp_kside *k, enum sp_page_kind page)
{
	return k->pages[page];
}

size_t sp_kside_page_bytes(struct sp_kside *k, enum sp_page_kind page)
{
	return k->bytes[page];
}

int sp_kside_page_fd(struct sp_kside *k, enum sp_page_kind page)
{
	return k->fds[page];
}

enum sp_scheme sp_kside_scheme(struct sp_kside *k)
{
	return k->scheme;
}

pid_t sp_kside_pid(struct sp_kside *k)
{
	return k->pid;
}
