/* sp_bench: per-call cost of syscall vs kernel page vs simulated page, and
 * fork+exec+exit latency, inside the VM (driven by bench/bench_kernel.py).
 *
 * usage: sp_bench calls <min_ms> <rounds>
 *            iterations calibrated so each timed stretch lasts >= min_ms;
 *            each round times every implementation once, interleaved;
 *            one JSON line per (round, call) with ns per call of each
 *        sp_bench forkexec <iterations> <label>
 *            fork + execve(/bin/sp_true) + waitpid, one JSON line with
 *            every iteration's ns (the kernel.syspage setting is chosen by
 *            the caller before this process is exec'd)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sp_kpage.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

#define KEEP(x) __asm__ volatile("" : : "r"(x) : "memory")

/* The simulated page: the same layout, written by user space, mapped twice
 * from a memfd (read-write for the writer, read-only for the reader), as
 * the replay engine's simulated page does. */
static int sim_init(struct sp_kpage *sim)
{
	int fd = memfd_create("sp-sim", 0);
	struct syspage_proc *w;
	struct syspage_sys *ws;

	if (fd < 0 || ftruncate(fd, 2 * 4096))
		return -1;
	w = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	sim->proc = mmap(NULL, 2 * 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (w == MAP_FAILED || sim->proc == MAP_FAILED)
		return -1;
	ws = (struct syspage_sys *)((char *)w + 4096);
	sim->sys = (const struct syspage_sys *)((const char *)sim->proc + 4096);
	sim->title = NULL;
	w->version = SYSPAGE_VERSION;
	w->size = sizeof(*w);
	w->flags = SYSPAGE_F_VALID;
	w->pid = syscall(SYS_getpid);
	w->ppid = syscall(SYS_getppid);
	w->uid = syscall(SYS_getuid);
	struct utsname u;

	uname(&u);
	memcpy(ws->nodename, u.nodename, SYSPAGE_NAME_LEN);
	ws->version = SYSPAGE_VERSION;
	close(fd);
	return 0;
}

typedef void (*bench_fn)(const struct sp_kpage *k, long n);

static void b_getpid_syscall(const struct sp_kpage *k, long n)
{
	(void)k;
	for (long i = 0; i < n; i++)
		KEEP(syscall(SYS_getpid));
}

static void b_getpid_page(const struct sp_kpage *k, long n)
{
	for (long i = 0; i < n; i++)
		KEEP(sp_getpid(k));
}

static void b_getppid_syscall(const struct sp_kpage *k, long n)
{
	(void)k;
	for (long i = 0; i < n; i++)
		KEEP(syscall(SYS_getppid));
}

static void b_getppid_page(const struct sp_kpage *k, long n)
{
	for (long i = 0; i < n; i++)
		KEEP(sp_getppid(k));
}

static void b_getuid_syscall(const struct sp_kpage *k, long n)
{
	(void)k;
	for (long i = 0; i < n; i++)
		KEEP(syscall(SYS_getuid));
}

static void b_getuid_page(const struct sp_kpage *k, long n)
{
	for (long i = 0; i < n; i++)
		KEEP(sp_getuid(k));
}

static void b_hostname_syscall(const struct sp_kpage *k, long n)
{
	struct utsname u;

	(void)k;
	for (long i = 0; i < n; i++) {
		syscall(SYS_uname, &u);
		KEEP(u.nodename[0]);
	}
}

static void b_hostname_page(const struct sp_kpage *k, long n)
{
	char buf[SYSPAGE_NAME_LEN];

	for (long i = 0; i < n; i++) {
		sp_gethostname(k, buf);
		KEEP(buf[0]);
	}
}

struct call {
	const char *name;
	bench_fn syscall_fn, page_fn;
};

static const struct call CALLS[] = {
	{ "getpid", b_getpid_syscall, b_getpid_page },
	{ "getppid", b_getppid_syscall, b_getppid_page },
	{ "getuid", b_getuid_syscall, b_getuid_page },
	{ "gethostname", b_hostname_syscall, b_hostname_page },
};

static double time_per_call(bench_fn fn, const struct sp_kpage *k, long n)
{
	uint64_t t0 = now_ns();

	fn(k, n);
	return (double)(now_ns() - t0) / n;
}

/* Iterations for fn to run at least min_ns: the guest clock may tick only
 * every few ms (no high-resolution clocksource in the minimal config), so
 * every timed stretch must be long against that tick. */
static long calibrate(bench_fn fn, const struct sp_kpage *k, uint64_t min_ns)
{
	long n = 1000;

	for (;;) {
		uint64_t t0 = now_ns();

		fn(k, n);
		if (now_ns() - t0 >= min_ns || n > (1L << 40))
			return n;
		n *= 2;
	}
}

static int bench_calls(long min_ms, int rounds)
{
	struct sp_kpage kernel, sim;
	struct timespec res;
	enum { NCALLS = sizeof(CALLS) / sizeof(CALLS[0]) };
	long n_sys[NCALLS], n_page[NCALLS];

	if (sp_kpage_init(&kernel)) {
		fprintf(stderr, "sp_bench: no kernel page (kernel.syspage=0 at exec?)\n");
		return 1;
	}
	if (sim_init(&sim)) {
		perror("sp_bench: memfd");
		return 1;
	}
	clock_getres(CLOCK_MONOTONIC, &res);
	for (size_t c = 0; c < NCALLS; c++) {
		n_sys[c] = calibrate(CALLS[c].syscall_fn, &kernel, min_ms * 1000000ull);
		n_page[c] = calibrate(CALLS[c].page_fn, &sim, min_ms * 1000000ull);
	}
	for (int r = 0; r < rounds; r++) {
		for (size_t c = 0; c < NCALLS; c++) {
			double sys = time_per_call(CALLS[c].syscall_fn, &kernel, n_sys[c]);
			double kpage, spage;

			/* alternate which page goes first, against order effects */
			if (r & 1) {
				spage = time_per_call(CALLS[c].page_fn, &sim, n_page[c]);
				kpage = time_per_call(CALLS[c].page_fn, &kernel, n_page[c]);
			} else {
				kpage = time_per_call(CALLS[c].page_fn, &kernel, n_page[c]);
				spage = time_per_call(CALLS[c].page_fn, &sim, n_page[c]);
			}
			printf("{\"bench\":\"calls\",\"round\":%d,\"call\":\"%s\","
			       "\"syscall_ns\":%.3f,\"page_kernel_ns\":%.3f,\"page_sim_ns\":%.3f,"
			       "\"iterations\":%ld,\"syscall_iterations\":%ld,\"clock_res_ns\":%ld}\n",
			       r, CALLS[c].name, sys, kpage, spage, n_page[c], n_sys[c],
			       res.tv_sec * 1000000000L + res.tv_nsec);
		}
	}
	return 0;
}

static int bench_forkexec(long iterations, const char *label)
{
	char *argv[] = { "/bin/sp_true", NULL };
	char *envp[] = { NULL };
	uint64_t *ns = calloc(iterations, sizeof(*ns));
	uint64_t start = now_ns();

	for (long i = 0; i < iterations; i++) {
		uint64_t t0 = now_ns();
		pid_t pid = fork();

		if (pid == 0) {
			execve(argv[0], argv, envp);
			_exit(127);
		}
		waitpid(pid, NULL, 0);
		ns[i] = now_ns() - t0;
	}
	uint64_t total = now_ns() - start;

	/* total_ns is what counts: single iterations are below the guest's tick */
	printf("{\"bench\":\"forkexec\",\"label\":\"%s\",\"pages\":%d,\"iterations\":%ld,"
	       "\"total_ns\":%llu,\"ns\":[", label, getauxval(AT_SYSPAGE_PROC) != 0, iterations,
	       (unsigned long long)total);
	for (long i = 0; i < iterations; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)ns[i]);
	printf("]}\n");
	free(ns);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "calls"))
		return bench_calls(atol(argv[2]), atoi(argv[3]));
	if (argc >= 4 && !strcmp(argv[1], "forkexec"))
		return bench_forkexec(atol(argv[2]), argv[3]);
	fprintf(stderr, "usage: sp_bench calls MIN_MS ROUNDS | forkexec N LABEL\n");
	return 2;
}
