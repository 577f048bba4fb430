/* Baselines for bench/bench_replay.py, measured in the same process as the engine:
 *   - the bare seqlock read loop: sp_page.h's reader on the kernel side's real page, in a
 *     loop with nothing else (what the engine's page replay is compared with);
 *   - the independent syscall microbenchmark: syscall(2) in a loop, bypassing the engine's
 *     dispatch (what the engine's syscall replay is compared with).
 * One clock pair around n iterations, the clock-pair overhead subtracted. */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "sp_engine.h"

static volatile uint64_t sp_bench_sink;

double sp_bench_page_loop(struct sp_kside *k, enum sp_field field, uint64_t n, double overhead_ns)
{
	/* The simplest loop there is: the scheme's own reader, chosen once, inlined. */
	const void *page = sp_kside_page(k, (enum sp_page_kind)sp_fields[field].kind);
	uint64_t v = 0, sum = 0;
	uint64_t t0 = sp_clock_now_ns();
	switch (sp_kside_scheme(k)) {
	case SP_SCHEME_FIELD:
		for (uint64_t i = 0; i < n; i++) { sp_page_read_word_field(page, field, &v); sum += v; }
		break;
	case SP_SCHEME_WORD:
		for (uint64_t i = 0; i < n; i++) { sp_page_read_word_word(page, field, &v); sum += v; }
		break;
	case SP_SCHEME_RING:
		for (uint64_t i = 0; i < n; i++) { sp_page_read_word_ring(page, field, &v); sum += v; }
		break;
	default:
		for (uint64_t i = 0; i < n; i++) { sp_page_read_word_page(page, field, &v); sum += v; }
	}
	uint64_t t1 = sp_clock_now_ns();
	sp_bench_sink = sum;
	return ((double)(t1 - t0) - overhead_ns) / (double)n;
}

/* 0 getpid, 1 getppid, 2 getuid, 3 uname: the raw system call numbers (syscall(2)). */
double sp_bench_syscall_loop(int which, uint64_t n, double overhead_ns)
{
	struct utsname u;
	uint64_t sum = 0;
	uint64_t t0 = sp_clock_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		switch (which) {
		case 0: sum += (uint64_t)syscall(SYS_getpid); break;
		case 1: sum += (uint64_t)syscall(SYS_getppid); break;
		case 2: sum += (uint64_t)syscall(SYS_getuid); break;
		default: sum += (uint64_t)syscall(SYS_uname, &u); break;
		}
	}
	uint64_t t1 = sp_clock_now_ns();
	sp_bench_sink = sum;
	return ((double)(t1 - t0) - overhead_ns) / (double)n;
}

/* The time scale of the machine's cost states (bench/replay_states.py): every interval_ns, one
 * batch of n_sys raw getpid calls and one of n_page bare page reads, on the same page for the
 * whole run, with the time and the CPU of each batch. cpus (n_cpus > 0) pins batch i to
 * cpus[i % n_cpus], so a state that belongs to one vCPU shows as alternation. Sleeps between
 * batches (nanosleep), so the loop does not keep a CPU busy itself. */
void sp_bench_timeline(struct sp_kside *k, uint64_t n_batches, uint64_t interval_ns, uint64_t n_sys,
		       uint64_t n_page, const int *cpus, int n_cpus, double overhead_ns,
		       double *t_ns, double *sys_ns, double *page_ns, int *cpu)
{
	uint64_t start = sp_clock_now_ns();
	for (uint64_t i = 0; i < n_batches; i++) {
		uint64_t due = start + i * interval_ns, now = sp_clock_now_ns();
		if (due > now) {
			struct timespec ts = {(time_t)((due - now) / 1000000000u), (long)((due - now) % 1000000000u)};
			nanosleep(&ts, NULL);
		}
		if (n_cpus > 0) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(cpus[i % (uint64_t)n_cpus], &set);
			sched_setaffinity(0, sizeof set, &set);
		}
		t_ns[i] = (double)(sp_clock_now_ns() - start);
		sys_ns[i] = sp_bench_syscall_loop(0, n_sys, overhead_ns);
		page_ns[i] = sp_bench_page_loop(k, SP_F_PID, n_page, overhead_ns);
		cpu[i] = sched_getcpu();
	}
}
