/* sp_check: checks of the syspage kernel, run inside the VM.
 *
 * Every check prints JSON lines on stdout: what the page says, what the
 * system calls say, and what the fallback-capable reader returns, so the
 * test on the host asserts on the real values (tests/test_replay_kernel.py).
 * This program decides nothing itself.
 *
 * usage: sp_check all [leak_cycles]      every check, in one process tree
 *        sp_check <check> ...            one check (also used for re-exec)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sp_kpage.h"

static struct sp_kpage K;
static const char *SELF = "/bin/sp_check";

static void emit(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* one write per line: lines from concurrent processes do not mix */
	if (write(1, buf, n) < 0)
		_exit(99);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* What getpid() and friends return, straight from the kernel. */
struct ids {
	long pid, ppid, pgid, sid, uid, euid, suid, gid, egid, sgid;
};

static void ids_syscall(struct ids *v)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;

	v->pid = syscall(SYS_getpid);
	v->ppid = syscall(SYS_getppid);
	v->pgid = syscall(SYS_getpgid, 0);
	v->sid = syscall(SYS_getsid, 0);
	syscall(SYS_getresuid, &r, &e, &s);
	syscall(SYS_getresgid, &gr, &ge, &gs);
	v->uid = r; v->euid = e; v->suid = s;
	v->gid = gr; v->egid = ge; v->sgid = gs;
}

static void ids_page(const struct syspage_proc *p, struct ids *v)
{
	v->pid = p->pid; v->ppid = p->ppid; v->pgid = p->pgid; v->sid = p->sid;
	v->uid = p->uid; v->euid = p->euid; v->suid = p->suid;
	v->gid = p->gid; v->egid = p->egid; v->sgid = p->sgid;
}

static int ids_json(char *b, size_t n, const struct ids *v)
{
	return snprintf(b, n, "{\"pid\":%ld,\"ppid\":%ld,\"pgid\":%ld,\"sid\":%ld,"
			"\"uid\":%ld,\"euid\":%ld,\"suid\":%ld,\"gid\":%ld,\"egid\":%ld,\"sgid\":%ld}",
			v->pid, v->ppid, v->pgid, v->sid, v->uid, v->euid, v->suid,
			v->gid, v->egid, v->sgid);
}

/* Snapshot taken in the process itself: page vs system calls vs reader. */
struct snap {
	int present, valid;
	uint64_t updates;
	struct ids page, sys;
	long reader_pid, reader_ppid, reader_uid;
};

static void take(struct snap *s)
{
	struct syspage_proc copy;

	memset(s, 0, sizeof(*s));
	s->present = K.proc != NULL;
	if (s->present) {
		s->valid = sp_proc_read(K.proc, &copy) == 0;
		s->updates = copy.updates;
		ids_page(&copy, &s->page);
	}
	ids_syscall(&s->sys);
	s->reader_pid = sp_getpid(&K);
	s->reader_ppid = sp_getppid(&K);
	s->reader_uid = sp_getuid(&K);
}

static void report_snap(const char *check, const char *role, const struct snap *s)
{
	char page[512], sys[512];

	ids_json(page, sizeof(page), &s->page);
	ids_json(sys, sizeof(sys), &s->sys);
	emit("{\"check\":\"%s\",\"role\":\"%s\",\"present\":%d,\"valid\":%d,"
	     "\"updates\":%llu,\"page\":%s,\"sys\":%s,\"reader\":{\"pid\":%ld,"
	     "\"ppid\":%ld,\"uid\":%ld}}", check, role, s->present, s->valid,
	     (unsigned long long)s->updates, page, sys, s->reader_pid,
	     s->reader_ppid, s->reader_uid);
}

static void report(const char *check, const char *role)
{
	struct snap s;

	take(&s);
	report_snap(check, role, &s);
}

static int wait_child(pid_t pid)
{
	int status = 0;

	while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
		;
	return status;
}

static void run_self(const char *arg1, const char *arg2)
{
	pid_t pid = fork();

	if (pid == 0) {
		execl(SELF, SELF, arg1, arg2, (char *)NULL);
		_exit(127);
	}
	wait_child(pid);
}

/* ---- layout and mappings ------------------------------------------------ */

/* The "[syspage*]" lines of /proc/self/maps, ';'-separated. */
static void syspage_maps(char *maps, size_t size)
{
	char line[512];
	size_t used = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	maps[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "[syspage") && used + strlen(line) < size) {
			line[strcspn(line, "\n")] = ';';
			strcpy(maps + used, line);
			used += strlen(line);
		}
	}
	if (f)
		fclose(f);
}

/* Runs first: the title page is still read-only inside "[syspage]" here. */
static void check_auxv(void)
{
	char maps[2048], titled[2048];
	int enable = -1, e_enable = 0, mp_all = 0, e_all = 0;

	syspage_maps(maps, sizeof(maps));
	if (K.title) {
		/* write access for all three pages at once: refused (pages 0 and 1) */
		errno = 0;
		mp_all = mprotect((void *)K.proc, 3 * 4096, PROT_READ | PROT_WRITE);
		e_all = errno;
		errno = 0;
		enable = sp_title_enable(K.title);
		e_enable = errno;
	}
	syspage_maps(titled, sizeof(titled));
	emit("{\"check\":\"auxv\",\"proc\":%lu,\"title\":%lu,\"sys\":%lu,"
	     "\"proc_version\":%u,\"proc_size\":%u,\"sys_version\":%u,\"sys_size\":%u,"
	     "\"title_version\":%u,\"title_size\":%u,\"struct_proc_size\":%zu,"
	     "\"struct_sys_size\":%zu,\"struct_title_size\":%zu,\"maps\":\"%s\","
	     "\"mprotect_all\":%d,\"mprotect_all_errno\":%d,\"title_enable\":%d,"
	     "\"title_enable_errno\":%d,\"maps_titled\":\"%s\"}",
	     getauxval(AT_SYSPAGE_PROC), getauxval(AT_SYSPAGE_TITLE),
	     getauxval(AT_SYSPAGE_SYS),
	     K.proc ? K.proc->version : 0, K.proc ? K.proc->size : 0,
	     K.sys ? K.sys->version : 0, K.sys ? K.sys->size : 0,
	     K.title ? K.title->version : 0, K.title ? K.title->size : 0,
	     sizeof(struct syspage_proc), sizeof(struct syspage_sys),
	     sizeof(struct syspage_title), maps, mp_all, e_all, enable, e_enable, titled);
}

/* ---- identity across fork, exec, threads ------------------------------- */

static void check_fork(void)
{
	report("fork", "parent");
	pid_t pid = fork();

	if (pid == 0) {
		report("fork", "child");
		pid_t g = fork();

		if (g == 0) {
			report("fork", "grandchild");
			_exit(0);
		}
		wait_child(g);
		_exit(0);
	}
	wait_child(pid);
}

static void check_exec(void)
{
	run_self("exec-child", NULL);
}

static pthread_barrier_t barrier;

static void *thread_report(void *arg)
{
	const char *check = arg;
	char role[64];

	pthread_barrier_wait(&barrier);	/* main may change credentials */
	pthread_barrier_wait(&barrier);
	snprintf(role, sizeof(role), "thread-%ld", (long)syscall(SYS_gettid));
	report(check, role);
	return NULL;
}

static void threads_run(const char *check, int change_creds)
{
	pthread_t t[4];
	int i;

	pthread_barrier_init(&barrier, NULL, 5);
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_report, (void *)check);
	pthread_barrier_wait(&barrier);
	if (change_creds) {
		/* glibc applies set*id to every thread (the setxid broadcast) */
		if (setresgid(2000, 2001, 2002) || setresuid(1000, 1001, 1002))
			emit("{\"check\":\"%s\",\"error\":\"setres*id: %s\"}", check,
			     strerror(errno));
	}
	pthread_barrier_wait(&barrier);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	report(check, "main");
}

static void check_threads(void)
{
	threads_run("threads", 0);
	pid_t pid = fork();

	if (pid == 0) {
		threads_run("setuid-threads", 1);
		_exit(0);
	}
	wait_child(pid);
}

static void check_setuid(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		report("setuid", "before");
		setresuid(-1, 5000, -1);	/* euid only */
		report("setuid", "seteuid");
		setresuid(-1, 0, -1);
		setgid(3000);
		setuid(4000);
		report("setuid", "after");
		_exit(0);
	}
	wait_child(pid);
}

/* ---- vfork and clone(CLONE_VM): the page must say "invalid" ------------ */

static volatile struct snap vfork_snap;
static volatile int vm_go, vm_done;

static int vm_child(void *arg)
{
	(void)arg;
	take((struct snap *)&vfork_snap);
	vm_done = 1;
	while (!vm_go)
		;
	return 0;
}

static void check_vfork(void)
{
	struct snap s;
	pid_t pid;

	report("vfork", "before");
	pid = vfork();
	if (pid == 0) {
		/* shares our memory: only memory stores and raw syscalls here */
		take((struct snap *)&vfork_snap);
		_exit(0);
	}
	wait_child(pid);
	report_snap("vfork", "child", (struct snap *)&vfork_snap);
	report("vfork", "after");

	/* clone(CLONE_VM) without CLONE_THREAD, observed from both sides */
	static char stack[64 * 1024];
	vm_go = vm_done = 0;
	pid = clone(vm_child, stack + sizeof(stack), CLONE_VM | SIGCHLD, NULL);
	while (!vm_done)
		;
	take(&s);
	vm_go = 1;
	wait_child(pid);
	report_snap("clone-vm", "child", (struct snap *)&vfork_snap);
	report_snap("clone-vm", "parent-during", &s);
	report("clone-vm", "parent-after");

	/* vfork + exec: the child gets its own page at exec */
	pid = vfork();
	if (pid == 0) {
		execl(SELF, SELF, "vfork-exec-child", (char *)NULL);
		_exit(127);
	}
	wait_child(pid);
	report("vfork-exec", "parent-after");
}

/* ---- reparenting, subreaper, setsid, setpgid --------------------------- */

static void orphan_report(const char *check)
{
	pid_t first = syscall(SYS_getppid);
	uint64_t t0 = now_ns();

	while (syscall(SYS_getppid) == first && now_ns() - t0 < 5000000000ull)
		usleep(1000);
	usleep(2000);
	report(check, "orphan");
}

static void check_reparent(void)
{
	/* to init (pid 1) */
	pid_t c = fork();

	if (c == 0) {
		pid_t g = fork();

		if (g == 0) {
			orphan_report("reparent-init");
			_exit(0);
		}
		_exit(0);
	}
	wait_child(c);
	usleep(300000);

	/* to a subreaper */
	pid_t s = fork();

	if (s == 0) {
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		report("reparent-subreaper", "subreaper");
		c = fork();
		if (c == 0) {
			pid_t g = fork();

			if (g == 0) {
				orphan_report("reparent-subreaper");
				_exit(0);
			}
			_exit(0);
		}
		wait_child(c);
		while (wait(NULL) > 0)	/* the orphan, now ours */
			;
		_exit(0);
	}
	wait_child(s);
}

static void check_setsid(void)
{
	int fds[2];
	char b;
	pid_t pid = fork();

	if (pid == 0) {
		report("setsid", "before");
		setsid();
		report("setsid", "after");
		_exit(0);
	}
	wait_child(pid);

	/* the parent moves its child into a new process group, after the
	 * child has reported its old one (ready: child -> parent; go: back) */
	int ready[2];

	if (pipe(fds) || pipe(ready))
		return;
	pid = fork();
	if (pid == 0) {
		close(fds[1]);
		close(ready[0]);
		report("setpgid", "before");
		if (write(ready[1], "r", 1) != 1 || read(fds[0], &b, 1) != 1)
			_exit(1);
		report("setpgid", "moved-by-parent");
		_exit(0);
	}
	close(fds[0]);
	close(ready[1]);
	if (read(ready[0], &b, 1) != 1)
		emit("{\"check\":\"setpgid\",\"error\":\"pipe\"}");
	setpgid(pid, pid);
	if (write(fds[1], "x", 1) != 1)
		emit("{\"check\":\"setpgid\",\"error\":\"pipe\"}");
	close(fds[1]);
	close(ready[0]);
	wait_child(pid);
}

/* ---- namespaces -------------------------------------------------------- */

static char ns_stack[256 * 1024];

static int pidns_child(void *arg)
{
	(void)arg;
	report("pidns", "init");
	pid_t g = fork();

	if (g == 0) {
		report("pidns", "child");
		execl(SELF, SELF, "pidns-exec-child", (char *)NULL);
		_exit(127);
	}
	wait_child(g);
	return 0;
}

static void check_pidns(void)
{
	pid_t pid = clone(pidns_child, ns_stack + sizeof(ns_stack),
			  CLONE_NEWPID | SIGCHLD, NULL);

	if (pid < 0) {
		emit("{\"check\":\"pidns\",\"error\":\"clone: %s\"}", strerror(errno));
		return;
	}
	wait_child(pid);
}

static void report_uts(const char *check, const char *role)
{
	struct syspage_sys s;
	struct utsname u;

	memset(&s, 0, sizeof(s));
	if (K.sys)
		sp_sys_read(K.sys, &s);
	uname(&u);
	emit("{\"check\":\"%s\",\"role\":\"%s\",\"present\":%d,"
	     "\"page\":{\"nodename\":\"%s\",\"domainname\":\"%s\",\"release\":\"%s\",\"sysname\":\"%s\",\"machine\":\"%s\"},"
	     "\"sys\":{\"nodename\":\"%s\",\"domainname\":\"%s\",\"release\":\"%s\",\"sysname\":\"%s\",\"machine\":\"%s\"}}",
	     check, role, K.sys != NULL, s.nodename, s.domainname, s.release,
	     s.sysname, s.machine, u.nodename, u.domainname, u.release,
	     u.sysname, u.machine);
}

static int utsns_clone_child(void *arg)
{
	(void)arg;
	report_uts("utsns-clone", "child-before");
	sethostname("clone-uts", 9);
	report_uts("utsns-clone", "child-after");
	return 0;
}

static void check_utsns(void)
{
	sethostname("syspage-vm", 10);
	setdomainname("syspage.test", 12);
	report_uts("uts", "root");

	pid_t pid = fork();

	if (pid == 0) {
		report_uts("utsns-unshare", "child-before");	/* faults the page in */
		if (unshare(CLONE_NEWUTS))
			emit("{\"check\":\"utsns-unshare\",\"error\":\"%s\"}", strerror(errno));
		report_uts("utsns-unshare", "child-unshared");
		sethostname("inner-uts", 9);
		setdomainname("inner.dom", 9);
		report_uts("utsns-unshare", "child-renamed");
		execl(SELF, SELF, "utsns-exec-child", (char *)NULL);
		_exit(127);
	}
	wait_child(pid);
	report_uts("utsns-unshare", "root-after");

	pid = clone(utsns_clone_child, ns_stack + sizeof(ns_stack),
		    CLONE_NEWUTS | SIGCHLD, NULL);
	wait_child(pid);
	report_uts("utsns-clone", "root-after");
}

/* ---- read-only enforcement -------------------------------------------- */

static int try_write(volatile uint32_t *where)
{
	pid_t pid = fork();

	if (pid == 0) {
		*where = 12345;
		_exit(0);
	}
	return wait_child(pid);
}

static void check_readonly(void)
{
	int st_proc = -1, st_sys = -1, st_title = -1;
	int mp_proc = 0, mp_sys = 0, e_proc = 0, e_sys = 0;

	if (K.proc) {
		st_proc = try_write((volatile uint32_t *)&K.proc->pid);
		st_sys = try_write((volatile uint32_t *)&K.sys->seq);
		sp_title_enable(K.title);	/* done by check_auxv already; harmless */
		st_title = try_write((volatile uint32_t *)&K.title->len);
		errno = 0;
		mp_proc = mprotect((void *)K.proc, 4096, PROT_READ | PROT_WRITE);
		e_proc = errno;
		errno = 0;
		mp_sys = mprotect((void *)K.sys, 4096, PROT_READ | PROT_WRITE);
		e_sys = errno;
	}
	emit("{\"check\":\"readonly\",\"proc_write_signal\":%d,\"sys_write_signal\":%d,"
	     "\"title_write_signal\":%d,\"title_write_exit\":%d,"
	     "\"mprotect_proc\":%d,\"mprotect_proc_errno\":%d,"
	     "\"mprotect_sys\":%d,\"mprotect_sys_errno\":%d,\"sigsegv\":%d}",
	     WIFSIGNALED(st_proc) ? WTERMSIG(st_proc) : 0,
	     WIFSIGNALED(st_sys) ? WTERMSIG(st_sys) : 0,
	     WIFSIGNALED(st_title) ? WTERMSIG(st_title) : 0,
	     WIFEXITED(st_title) ? WEXITSTATUS(st_title) : -1,
	     mp_proc, e_proc, mp_sys, e_sys, SIGSEGV);
}

/* ---- title ------------------------------------------------------------- */

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	int n, total = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + total, size - 1 - total)) > 0)
		total += n;
	close(fd);
	buf[total] = '\0';
	return total;
}

/* cmdline with NULs shown as '|', so JSON can carry it */
static int cmdline_of(pid_t pid, char *out, size_t size)
{
	char path[64];
	int i, n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	n = read_file(path, out, size);
	for (i = 0; i < n; i++) {
		if (out[i] == '\0')
			out[i] = '|';
		else if (out[i] == '"' || out[i] == '\\' || (unsigned char)out[i] < 32)
			out[i] = '?';
	}
	return n;
}

static void ps_line(pid_t pid, char *out, size_t size)
{
	char line[512];
	FILE *p = popen("ps", "r");

	out[0] = '\0';
	while (p && fgets(line, sizeof(line), p)) {
		char *s = line;

		while (*s == ' ')
			s++;
		if (atoi(s) == pid) {
			line[strcspn(line, "\n")] = '\0';
			for (char *c = line; *c; c++)
				if (*c == '"' || *c == '\\')
					*c = '?';
			snprintf(out, size, "%s", line);
		}
	}
	if (p)
		pclose(p);
}

static void check_title(void)
{
	char before[4096], after[4096], cleared[4096], ps[512], child[4096];
	const char *title = "syspage-title: worker 7 (idle)";
	pid_t me = getpid();

	if (!K.title) {
		emit("{\"check\":\"title\",\"present\":0}");
		return;
	}
	cmdline_of(me, before, sizeof(before));
	sp_title_set(K.title, title, strlen(title));
	cmdline_of(me, after, sizeof(after));
	ps_line(me, ps, sizeof(ps));

	int fds[2];
	char b;

	if (pipe(fds))
		return;
	pid_t pid = fork();	/* the child inherits the title */

	if (pid == 0) {
		close(fds[1]);
		if (read(fds[0], &b, 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(fds[0]);
	cmdline_of(pid, child, sizeof(child));
	if (write(fds[1], "x", 1) != 1)
		emit("{\"check\":\"title\",\"error\":\"pipe\"}");
	close(fds[1]);
	wait_child(pid);

	sp_title_set(K.title, "", 0);
	cmdline_of(me, cleared, sizeof(cleared));
	emit("{\"check\":\"title\",\"present\":1,\"pid\":%d,\"title\":\"%s\","
	     "\"cmdline_before\":\"%s\",\"cmdline_titled\":\"%s\",\"ps_line\":\"%s\","
	     "\"cmdline_forked_child\":\"%s\",\"cmdline_cleared\":\"%s\"}",
	     me, title, before, after, ps, child, cleared);
}

/* The old setproctitle(): overwrite argv in place; no title page used. */
static void check_argv_title(char **argv)
{
	char got[4096];
	size_t room = strlen(argv[0]);

	memset(argv[0], 0, room);
	memcpy(argv[0], "argv-title", room < 10 ? room : 10);
	cmdline_of(getpid(), got, sizeof(got));
	emit("{\"check\":\"argv-title\",\"cmdline\":\"%s\"}", got);
}

/* ---- hostile title writers --------------------------------------------- */

static void hostile_run(const char *mode)
{
	int fds[2];
	char b = 0, got[4096];
	pid_t pid;
	int i, reads = 2000, as_argv = 0, as_a = 0, as_b = 0, torn = 0;
	uint64_t worst = 0, total = 0;

	if (pipe(fds))
		return;
	pid = fork();
	if (pid == 0) {
		static char a[SYSPAGE_TITLE_MAX], bb[SYSPAGE_TITLE_MAX];
		struct syspage_title *t = K.title;

		memset(a, 'A', sizeof(a));
		memset(bb, 'B', sizeof(bb));
		close(fds[0]);
		if (!strcmp(mode, "stuck-odd")) {
			/* start a write and never finish it */
			sp_title_set(t, "never shown", 11);
			__atomic_store_n(&t->seq, t->seq + 1, __ATOMIC_RELEASE);
			if (write(fds[1], "x", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		} else if (!strcmp(mode, "huge-len")) {
			sp_title_set(t, a, 16);
			__atomic_store_n(&t->len, 0xffffffffu, __ATOMIC_RELEASE);
			if (write(fds[1], "x", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		} else {	/* "flip": rewrite the title as fast as possible */
			if (write(fds[1], "x", 1) != 1)
				_exit(1);
			for (;;) {
				sp_title_set(t, a, SYSPAGE_TITLE_MAX);
				sp_title_set(t, bb, 1000);
			}
		}
	}
	close(fds[1]);
	if (read(fds[0], &b, 1) != 1)
		emit("{\"check\":\"hostile\",\"error\":\"pipe\"}");
	close(fds[0]);
	for (i = 0; i < reads; i++) {
		uint64_t t0 = now_ns();
		char path[64];
		int n;

		snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
		n = read_file(path, got, sizeof(got));
		uint64_t dt = now_ns() - t0;

		total += dt;
		if (dt > worst)
			worst = dt;
		if (n > 0 && !strcmp(got, SELF))
			as_argv++;
		else if (n == SYSPAGE_TITLE_MAX + 1 && strspn(got, "A") == SYSPAGE_TITLE_MAX)
			as_a++;
		else if (n == 1001 && strspn(got, "B") == 1000)
			as_b++;
		else if (n == 17 && strspn(got, "A") == 16)
			as_a++;
		else
			torn++;
	}
	kill(pid, SIGKILL);
	wait_child(pid);
	emit("{\"check\":\"hostile\",\"mode\":\"%s\",\"reads\":%d,\"argv\":%d,"
	     "\"title_a\":%d,\"title_b\":%d,\"other\":%d,\"worst_ns\":%llu,\"mean_ns\":%llu}",
	     mode, reads, as_argv, as_a, as_b, torn, (unsigned long long)worst,
	     (unsigned long long)(total / reads));
}

static void check_hostile(void)
{
	if (!K.title)
		return;
	hostile_run("stuck-odd");
	hostile_run("huge-len");
	hostile_run("flip");
}

/* ---- leak check: the kernel's own counters ------------------------------ */

static long read_long(const char *path)
{
	char buf[64];

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return atol(buf);
}

static long meminfo_kb(const char *key)
{
	char buf[8192], *p;

	if (read_file("/proc/meminfo", buf, sizeof(buf)) <= 0)
		return -1;
	p = strstr(buf, key);
	return p ? atol(p + strlen(key) + 1) : -1;
}

static void check_leak(long cycles)
{
	long pages_before = read_long("/proc/sys/kernel/syspage_pages");
	long free_before = meminfo_kb("MemFree");
	long peak = 0;
	uint64_t t0 = now_ns();
	long i;

	for (i = 0; i < cycles; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			/* first touch allocates the title page too */
			sp_title_set(K.title, "leak", 4);
			_exit(0);
		}
		if (i == cycles / 2) {
			long during = read_long("/proc/sys/kernel/syspage_pages");

			if (during > peak)
				peak = during;
		}
		wait_child(pid);
	}
	emit("{\"check\":\"leak\",\"cycles\":%ld,\"pages_before\":%ld,\"pages_during\":%ld,"
	     "\"pages_after\":%ld,\"memfree_kb_before\":%ld,\"memfree_kb_after\":%ld,"
	     "\"seconds\":%.2f}", cycles, pages_before, peak,
	     read_long("/proc/sys/kernel/syspage_pages"), free_before,
	     meminfo_kb("MemFree"), (now_ns() - t0) / 1e9);
}

/* ---- the off switch ----------------------------------------------------- */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	close(fd);
	return ok ? 0 : -1;
}

static void check_off(void)
{
	char got[4096];
	const char *title = "title-while-off";

	if (K.title)
		sp_title_set(K.title, title, strlen(title));
	write_file("/proc/sys/kernel/syspage", "0");
	long setting = read_long("/proc/sys/kernel/syspage");
	cmdline_of(getpid(), got, sizeof(got));
	emit("{\"check\":\"off\",\"role\":\"switch\",\"setting\":%ld,\"cmdline_self\":\"%s\"}",
	     setting, got);
	run_self("off-exec-child", NULL);
	write_file("/proc/sys/kernel/syspage", "1");
	cmdline_of(getpid(), got, sizeof(got));
	emit("{\"check\":\"off\",\"role\":\"back-on\",\"setting\":%ld,\"cmdline_self\":\"%s\"}",
	     read_long("/proc/sys/kernel/syspage"), got);
	if (K.title)
		sp_title_set(K.title, "", 0);
	run_self("on-exec-child", NULL);
}

static void off_exec_child(const char *check)
{
	report(check, "exec");
	pid_t pid = fork();

	if (pid == 0) {
		report(check, "exec-fork");
		_exit(0);
	}
	wait_child(pid);
	emit("{\"check\":\"%s\",\"role\":\"auxv\",\"proc\":%lu,\"title\":%lu,\"sys\":%lu}",
	     check, getauxval(AT_SYSPAGE_PROC), getauxval(AT_SYSPAGE_TITLE),
	     getauxval(AT_SYSPAGE_SYS));
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "all";

	setvbuf(stdout, NULL, _IONBF, 0);
	sp_kpage_init(&K);

	if (!strcmp(what, "exec-child")) {
		report("exec", "exec-child");
		return 0;
	}
	if (!strcmp(what, "vfork-exec-child")) {
		report("vfork-exec", "exec-child");
		return 0;
	}
	if (!strcmp(what, "pidns-exec-child")) {
		report("pidns", "exec-child");
		return 0;
	}
	if (!strcmp(what, "utsns-exec-child")) {
		report_uts("utsns-unshare", "child-exec");
		return 0;
	}
	if (!strcmp(what, "off-exec-child")) {
		off_exec_child("off");
		return 0;
	}
	if (!strcmp(what, "on-exec-child")) {
		off_exec_child("on-again");
		return 0;
	}
	if (!strcmp(what, "argv-title")) {
		check_argv_title(argv);
		return 0;
	}
	if (strcmp(what, "all")) {
		fprintf(stderr, "sp_check: unknown check %s\n", what);
		return 2;
	}

	long cycles = argc > 2 ? atol(argv[2]) : 100000;

	emit("{\"check\":\"start\",\"pid\":%d}", getpid());
	check_auxv();
	report("basic", "self");
	check_fork();
	check_exec();
	check_threads();
	check_setuid();
	check_vfork();
	check_reparent();
	check_setsid();
	check_pidns();
	check_utsns();
	check_readonly();
	check_title();
	run_self("argv-title", NULL);
	check_hostile();
	check_off();
	check_leak(cycles);
	emit("{\"check\":\"done\"}");
	return 0;
}
