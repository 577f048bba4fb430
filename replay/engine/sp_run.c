/* One replay process: a thread per traced thread, each replaying its calls in trace order
 * through the syscall path and through the simulated pages (docs/replay.md "Method").
 *
 * Per thread: (1) a value-check pass, untimed: every read is issued both ways and the
 * values compared (one thread at a time, and every thread of the process finishes it
 * before any starts (2): the title page is per process, and a timed write by another
 * thread would change it between a check's write and its read-back); (2) warm-up passes; (3) calibration: loops per sample so that one
 * sample of each implementation lasts at least min_sample_ns (pyperf's calibration);
 * (4) samples, all threads starting each together, the implementations interleaved
 * A B B A B A A B within each sample (each implementation's sample is four quarters).
 *
 * Timing is batched: one clock pair around a run of consecutive calls of one class
 * (tight mode), the calibrated clock-pair overhead subtracted, the sum divided by the
 * calls. State changes and paced gaps are never inside a timed region. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sp_engine.h"

uint64_t sp_clock_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The clock-pair overhead, from n back-to-back pairs: the mean of the pairs not longer than
 * 1.5 x their median (the longer ones were interrupted). Not the median itself: the clock counts
 * whole ns, so a pair that takes 21.4 ns reads 21 or 22, and the median of such values is an
 * integer that moved by 1 ns from one process to the next (21 in some, 22 in others): 1 ns is
 * 25 % of a one-call page read (getuid: 3.4 or 4.4 ns, by the process's overhead alone). The
 * mean of the dithered values resolves the fraction. */
double sp_clock_overhead_ns_n(unsigned n)
{
	if (n < 3)
		n = 3;
	uint64_t *d = malloc(n * sizeof *d);
	if (!d)
		return 0.0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = sp_clock_now_ns();
		uint64_t t1 = sp_clock_now_ns();
		d[i] = t1 - t0;
	}
	qsort(d, n, sizeof *d, cmp_u64);
	double limit = 1.5 * (double)d[n / 2], sum = 0;
	unsigned kept = 0;
	for (unsigned i = 0; i < n && (double)d[i] <= limit; i++, kept++)
		sum += (double)d[i];
	free(d);
	return kept ? sum / kept : 0.0;
}

double sp_clock_overhead_ns(void)
{
	return sp_clock_overhead_ns_n(20001);
}

/* Per class, decided once per process: what each implementation does. */
struct class_plan {
	const struct sp_plan_class *c;
	const char *arg;
	int skip[SP_IMPL_COUNT];
	const char *skip_reason;
	const char *kernel_skip_reason;  /* page-kernel's, NULL when it issues the class */
	void *page;               /* the mapping the page implementation reads or writes */
	enum sp_field words[SP_FIELD_COUNT];
	unsigned n_words;
	enum sp_field strings[SP_FIELD_COUNT];
	unsigned n_strings;
	uint32_t check_fields;    /* fields both implementations can answer */
};

struct proc_ctx {
	const struct sp_plan *plan;
	const struct sp_run_config *cfg;
	struct sp_kside *kside;
	enum sp_scheme scheme;
	struct sp_run_result *res;    /* page-kernel's check counts go straight here (check_lock) */
	struct class_plan *classes;
	uint32_t n_classes;
	/* The start gate: every thread waits until all are created (or one failed). */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	int gate_open;
	int gate_abort;
	pthread_mutex_t check_lock;   /* the check pass runs one thread at a time */
	/* Every thread finishes its check pass before any starts timing: a timed pass writes
	 * the per-process title page, which would change it under another thread's check. */
	pthread_barrier_t check_done;
	pthread_barrier_t calibrated;  /* each sample starts in every thread together */
	int barrier_ready;
	int check_failed;             /* a check read gave up: no thread times anything */
	pthread_mutex_t follow_lock;
	pid_t title_writer;           /* check pass: the thread that last wrote the title page */
	int sync_ready;               /* gate and mutexes initialised */
	int title_written;
};

struct thread_ctx {
	struct proc_ctx *p;
	const struct sp_plan_thread *t;
	uint32_t index;           /* this thread's rank in the process (for CPU pinning) */
	int pinned;               /* 1 when sched_setaffinity succeeded */
	int last_cpu;             /* sched_getcpu() after the last sample, -1 unknown */
	/* [sample][impl][class] */
	double *acc_ns;
	uint64_t *acc_calls;
	uint64_t *checked, *mismatches, *replayed;
	struct sp_value *first_page, *first_sys;
	uint64_t loops[SP_IMPL_COUNT];
	/* The clock-pair overhead subtracted in this thread's timed regions, measured on its own
	 * CPU after pinning and again at the start of every sample (calibrate_overhead). */
	double overhead_ns;
	double *sample_overhead_ns;   /* [sample]: what each kept sample subtracted */
	double *reference_ns[2];      /* [syscall, page][sample]: the machine reference (thread 0) */
	char err[160];
	int failed;
};

static volatile uint64_t sp_page_sink;

/* ---- the page implementation ---------------------------------------------------------- */

static inline void page_read_timed(const struct class_plan *cp, enum sp_scheme scheme)
{
	uint64_t v = 0, sum = 0;
	char buf[SP_TITLE_MAX];
	for (unsigned i = 0; i < cp->n_words; i++) {
		sp_page_read_word(cp->page, scheme, cp->words[i], &v);
		sum += v;
	}
	for (unsigned i = 0; i < cp->n_strings; i++) {
		sp_page_read_string(cp->page, scheme, cp->strings[i], buf, sizeof buf);
		sum += (unsigned char)buf[0];
	}
	sp_page_sink = sum;
}

/* A run of reads of one word field: one page read per traced call, the scheme chosen
 * once per run rather than per call (what an inlined libc getpid() on the page would do;
 * bench/bench_replay.py compares this with the bare loop). Not inlined: inlined, its loop
 * was compiled with whatever registers timed_pass left free, and a change elsewhere in
 * timed_pass (the per-thread overhead) spilled the loop's count to the stack and made every
 * read 28 % slower (getpid's page read 0.53 -> 0.68 ns, the same plan, side by side). On
 * its own the loop keeps its registers whatever the caller becomes; the call it costs once
 * per run is what a libc wrapper reading the page would cost too. */
static __attribute__((noinline)) void page_run_word(const void *page, enum sp_scheme scheme, enum sp_field f, uint64_t count)
{
	uint64_t v = 0, sum = 0;
	switch (scheme) {
	case SP_SCHEME_FIELD:
		for (uint64_t k = 0; k < count; k++) { sp_page_read_word_field(page, f, &v); sum += v; }
		break;
	case SP_SCHEME_WORD:
		for (uint64_t k = 0; k < count; k++) { sp_page_read_word_word(page, f, &v); sum += v; }
		break;
	case SP_SCHEME_RING:
		for (uint64_t k = 0; k < count; k++) { sp_page_read_word_ring(page, f, &v); sum += v; }
		break;
	default:
		for (uint64_t k = 0; k < count; k++) { sp_page_read_word_page(page, f, &v); sum += v; }
	}
	sp_page_sink = sum;
}

/* The check pass reads with the bounded readers (sp_page.h): a page whose counter never
 * settles is a clear failure of the replay, never a hang. About a million attempts with a
 * sched_yield every 1024: well beyond any writer's critical section, even a descheduled one. */
#define CHECK_MAX_RETRIES (1ul << 20)

/* 0, or -1 with the field that never settled in *stuck. */
static int page_read_value(const struct class_plan *cp, enum sp_scheme scheme, uint32_t want, struct sp_value *out,
			   enum sp_field *stuck)
{
	char buf[SP_TITLE_MAX];
	sp_value_reset(out, want);
	for (unsigned i = 0; i < cp->n_words; i++) {
		uint64_t v = 0;
		if (sp_page_read_word_bounded(cp->page, scheme, cp->words[i], &v, CHECK_MAX_RETRIES) < 0) {
			*stuck = cp->words[i];
			return -1;
		}
		sp_value_add_int(out, cp->words[i], (int64_t)v);
	}
	for (unsigned i = 0; i < cp->n_strings; i++) {
		if (sp_page_read_string_bounded(cp->page, scheme, cp->strings[i], buf, sizeof buf, CHECK_MAX_RETRIES) < 0) {
			*stuck = cp->strings[i];
			return -1;
		}
		sp_value_add_str(out, cp->strings[i], buf, sizeof buf);
	}
	return 0;
}

static void check_stuck(struct thread_ctx *tc, enum sp_field f)
{
	snprintf(tc->err, sizeof tc->err,
		 "value check: the %s page's counter for '%s' did not settle after %lu retries "
		 "(a writer never finished its update)",
		 sp_page_kind_names[sp_fields[f].kind], sp_fields[f].name, CHECK_MAX_RETRIES);
	tc->failed = 1;
}

static void page_write(const struct class_plan *cp, enum sp_scheme scheme, const char *s)
{
	size_t n = strlen(s);
	if (cp->c->fields & SP_FIELD_BIT(SP_F_COMM))
		sp_comm_write(cp->page, scheme, s, n);
	if (cp->c->fields & SP_FIELD_BIT(SP_F_TITLE))
		sp_title_write(cp->page, scheme, s, n);
}

/* kern.proc.args read: what ps does for another process, done by the kernel on the title
 * page with the bounded copy (sp_page.h). The replayer plays the reading kernel here. */
static void page_title_bounded(const struct class_plan *cp, struct proc_ctx *p)
{
	char out[SP_TITLE_MAX];
	struct sp_title_result r;
	sp_title_read_bounded(cp->page, sp_kside_page_bytes(p->kside, SP_PAGE_PROC_RW), p->scheme,
			      out, sizeof out, 64, "(replay)", &r);
	sp_page_sink = r.len;
}

static inline int is_bounded_title_read(const struct class_plan *cp)
{
	return cp->c->host_op == SP_OP_READ_PROC_CMDLINE || cp->c->host_op == SP_OP_READ_PROC_ARGS;
}

/* Issue one call of a class through one implementation (the timed body). */
static inline void issue(struct proc_ctx *p, const struct class_plan *cp, int impl, const char *arg)
{
	if (impl == SP_IMPL_SYSCALL) {
		sp_host_issue(cp->c->host_op, arg, 0, NULL);
	} else if (impl == SP_IMPL_PAGE_KERNEL) {
		p->cfg->kernel_page->issue(cp->c, arg, 0, NULL);
	} else if (cp->c->access == SP_ACCESS_WRITE) {
		page_write(cp, p->scheme, arg);
	} else if (is_bounded_title_read(cp)) {
		page_title_bounded(cp, p);
	} else {
		page_read_timed(cp, p->scheme);
	}
}

/* A state change: the host (when it safely can) and the kernel side both follow it, in
 * every implementation, so the two views stay equal. Never timed. */
static void follow(struct proc_ctx *p, const struct class_plan *cp, const char *arg)
{
	pthread_mutex_lock(&p->follow_lock);
	if (!cp->skip[SP_IMPL_SYSCALL])
		sp_host_issue(cp->c->host_op, arg, 0, NULL);
	sp_kside_follow(p->kside, cp->c->host_op, arg);
	pthread_mutex_unlock(&p->follow_lock);
}

static const char *op_arg(const struct sp_plan *plan, const struct class_plan *cp, const struct sp_plan_op *o)
{
	return o->arg ? sp_plan_string(plan, o->arg) : cp->arg;
}

/* ---- the check pass ------------------------------------------------------------------- */

/* page-kernel: the real kernel's page against the same system call value (issue 10).
 * Runs under check_lock, so it counts straight into the result. */
static void kernel_page_check(struct proc_ctx *p, const struct class_plan *cp, uint32_t cls, const char *arg,
			      uint32_t want, const struct sp_value *hv)
{
	struct sp_value kv;
	if (cp->skip[SP_IMPL_PAGE_KERNEL] || !(p->cfg->impls & (1 << SP_IMPL_PAGE_KERNEL)))
		return;
	if (p->cfg->kernel_page->issue(cp->c, arg, want, &kv) != 0)
		return;
	struct sp_class_result *cr = &p->res->classes[cls];
	cr->kernel_checked++;
	if (kv.hash != hv->hash && cr->kernel_mismatches++ == 0) {
		cr->first_kernel = kv;
		cr->first_kernel_syscall = *hv;
	}
}

/* Title/comm reads are compared only when this thread wrote the page last (or nobody did):
 * Linux's comm is per thread, the proposal's title page per process. */
static int title_comparable(struct proc_ctx *p, pid_t me)
{
	return !p->title_written || p->title_writer == me;
}

static void check_pass(struct thread_ctx *tc)
{
	struct proc_ctx *p = tc->p;
	const struct sp_plan *plan = p->plan;
	pid_t me = gettid();
	struct sp_value pv, hv;
	pthread_mutex_lock(&p->check_lock);
	for (uint64_t i = 0; i < tc->t->n_ops; i++) {
		const struct sp_plan_op *o = &plan->ops[tc->t->first_op + i];
		const struct class_plan *cp = &p->classes[o->cls];
		const char *arg = op_arg(plan, cp, o);
		uint32_t want = cp->check_fields;
		if (cp->c->access == SP_ACCESS_FOLLOW) {
			follow(p, cp, arg);
			continue;
		}
		if (cp->c->access == SP_ACCESS_WRITE) {
			if (!cp->skip[SP_IMPL_SYSCALL])
				sp_host_issue(cp->c->host_op, arg, 0, NULL);
			page_write(cp, p->scheme, arg);
			p->title_written = 1;
			p->title_writer = me;
			/* What was written must read back equal: the page's first 15 bytes are what
			 * PR_GET_NAME returns on the host (prctl(2): 16 bytes with the NUL). */
			if (cp->skip[SP_IMPL_SYSCALL] || cp->c->host_op != SP_OP_PRCTL_SET_NAME)
				continue;
			char page_s[SP_TITLE_MAX];
			enum sp_field f = (cp->c->fields & SP_FIELD_BIT(SP_F_COMM)) ? SP_F_COMM : SP_F_TITLE;
			if (sp_page_read_string_bounded(cp->page, p->scheme, f, page_s, sizeof page_s, CHECK_MAX_RETRIES) < 0) {
				check_stuck(tc, f);
				break;
			}
			page_s[15] = '\0';
			sp_value_reset(&pv, SP_FIELD_BIT(SP_F_COMM));
			sp_value_add_str(&pv, SP_F_COMM, page_s, 16);
			sp_host_issue(SP_OP_PRCTL_GET_NAME, NULL, SP_FIELD_BIT(SP_F_COMM), &hv);
		} else {
			if (cp->skip[SP_IMPL_SYSCALL] || cp->skip[SP_IMPL_PAGE] || want == 0)
				continue;
			if ((want & (SP_FIELD_BIT(SP_F_COMM) | SP_FIELD_BIT(SP_F_TITLE))) && !title_comparable(p, me))
				continue;
			enum sp_field stuck;
			if (page_read_value(cp, p->scheme, want, &pv, &stuck) != 0) {
				check_stuck(tc, stuck);
				break;
			}
			if (sp_host_issue(cp->c->host_op, arg, want, &hv) != 0)
				continue;
			kernel_page_check(p, cp, o->cls, arg, want, &hv);
		}
		tc->checked[o->cls]++;
		if (pv.hash != hv.hash) {
			if (tc->mismatches[o->cls]++ == 0) {
				tc->first_page[o->cls] = pv;
				tc->first_sys[o->cls] = hv;
			}
		}
	}
	pthread_mutex_unlock(&p->check_lock);
}

/* ---- the timed passes ------------------------------------------------------------------- */

static void spin_until(uint64_t deadline)
{
	while (sp_clock_now_ns() < deadline)
		;
}

/* One pass over the thread's plan with one implementation; adds to acc (ns) and calls. */
static void timed_pass(struct thread_ctx *tc, int impl, double *acc, uint64_t *calls)
{
	struct proc_ctx *p = tc->p;
	const struct sp_plan *plan = p->plan;
	const struct sp_plan_op *ops = plan->ops + tc->t->first_op;
	uint64_t n = tc->t->n_ops;
	int paced = p->cfg->mode == SP_MODE_PACED;
	uint64_t max_gap = p->cfg->max_gap_ns;
	uint64_t last_end = sp_clock_now_ns();
	double overhead = tc->overhead_ns;
	uint64_t i = 0;
	while (i < n) {
		const struct sp_plan_op *o = &ops[i];
		const struct class_plan *cp = &p->classes[o->cls];
		if (paced && o->gap_ns > 0)
			spin_until(last_end + ((uint64_t)o->gap_ns < max_gap ? (uint64_t)o->gap_ns : max_gap));
		if (cp->c->access == SP_ACCESS_FOLLOW) {
			follow(p, cp, op_arg(plan, cp, o));
			last_end = sp_clock_now_ns();
			i++;
			continue;
		}
		if (cp->skip[impl]) {
			i++;
			continue;
		}
		uint64_t j = i + 1;
		if (!paced)
			while (j < n && ops[j].cls == o->cls)
				j++;
		uint64_t t0 = sp_clock_now_ns();
		if (impl == SP_IMPL_PAGE && cp->c->access == SP_ACCESS_READ && cp->n_words == 1 && cp->n_strings == 0)
			page_run_word(cp->page, p->scheme, cp->words[0], j - i);
		else if (impl == SP_IMPL_PAGE_KERNEL && cp->c->access == SP_ACCESS_READ && cp->n_words == 1
			 && cp->n_strings == 0)
			p->cfg->kernel_page->run_word(cp->words[0], j - i);
		else
			for (uint64_t k = i; k < j; k++)
				issue(p, cp, impl, op_arg(plan, cp, &ops[k]));
		uint64_t t1 = sp_clock_now_ns();
		acc[o->cls] += (double)(t1 - t0) - overhead;
		calls[o->cls] += j - i;
		last_end = t1;
		i = j;
	}
}

/* Loops per sample: enough passes for min_sample_ns, raised until each class timed in the
 * pass accumulates min_class_ns (a class with one call per pass is otherwise one clock
 * pair per value, whose jitter dominates it), never beyond max_sample_ns. */
static uint64_t calibrate_loops(const struct sp_run_config *cfg, uint64_t pass_ns, const double *class_ns,
				const uint64_t *class_calls, uint32_t nc)
{
	enum { MAX_LOOPS = 1000000 };
	if (pass_ns == 0)
		return MAX_LOOPS;
	uint64_t loops = (cfg->min_sample_ns + pass_ns - 1) / pass_ns;
	if (cfg->min_class_ns) {
		uint64_t cap = cfg->max_sample_ns ? cfg->max_sample_ns / pass_ns : MAX_LOOPS;
		for (uint32_t c = 0; c < nc; c++) {
			if (!class_calls[c])
				continue;
			/* a page read can time below the clock's resolution: count it as 1 ns */
			double per_pass = class_ns[c] > 1.0 ? class_ns[c] : 1.0;
			double need = (double)cfg->min_class_ns / per_pass;
			uint64_t want = need >= (double)MAX_LOOPS ? MAX_LOOPS : (uint64_t)need + 1;
			if (want > cap)
				want = cap;
			if (want > loops)
				loops = want;
		}
	}
	if (loops < 1)
		loops = 1;
	if (loops > MAX_LOOPS)
		loops = MAX_LOOPS;
	return loops;
}

/* The overhead subtracted from every timed region of this thread, measured where and when the
 * regions run: on the thread's CPU after pinning, then again before every sample. Measured once
 * per process, in the unpinned main thread before the replay started, it came from another CPU
 * or another machine state (a process that began in a slow episode measured 36 ns instead of
 * 22, and its one-call page reads came out negative), and it moved every one-call class of
 * that process together. ~1,000 pairs: 20-40 us, under 5 % of the shortest sample. */
enum { OVERHEAD_PAIRS_FIRST = 20001, OVERHEAD_PAIRS_SAMPLE = 1001 };

/* The machine reference, timed by the first thread at the start of every kept sample: what the
 * machine's speed was when the sample ran, measured by code that never changes (sp_bench.c's
 * raw syscall loop and bare page-read loop). A shared VM's speed moves by several per cent for
 * seconds to minutes, every call alike (bench: one 30-s replay 5 % faster than four others, in
 * every class); a cost over the reference of its own samples does not move with it, and two
 * replays whose references differ ran on a different machine, whatever the trace. ~20 us. */
enum { REFERENCE_SYSCALLS = 128, REFERENCE_READS = 16384 };

static void measure_reference(struct thread_ctx *tc, uint32_t s)
{
	tc->reference_ns[0][s] = sp_bench_syscall_loop(0, REFERENCE_SYSCALLS, tc->overhead_ns);
	tc->reference_ns[1][s] = sp_bench_page_loop(tc->p->kside, SP_F_PID, REFERENCE_READS, tc->overhead_ns);
}

static void calibrate_overhead(struct thread_ctx *tc, unsigned pairs)
{
	tc->overhead_ns = sp_clock_overhead_ns_n(pairs);
}

/* Pin this thread for the timed passes (after the value check: see sp_engine.h). */
static void pin_thread(struct thread_ctx *tc)
{
	const struct sp_run_config *cfg = tc->p->cfg;
	tc->last_cpu = -1;
	if (!cfg->n_cpus)
		return;
	int cpu = cfg->cpus[tc->index % cfg->n_cpus];
	if (cpu < 0) {          /* left to the scheduler */
		tc->pinned = 1;
		return;
	}
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	tc->pinned = sched_setaffinity(0, sizeof set, &set) == 0;
}

static void *thread_main(void *arg)
{
	struct thread_ctx *tc = arg;
	struct proc_ctx *p = tc->p;
	const struct sp_run_config *cfg = p->cfg;
	uint32_t nc = p->n_classes;
	char title[32] = "";
	double *scratch = calloc(nc, sizeof *scratch);
	uint64_t *scratch_calls = calloc(nc, sizeof *scratch_calls);
	sp_host_title_save(title, sizeof title);
	pthread_mutex_lock(&p->gate_lock);
	while (!p->gate_open)
		pthread_cond_wait(&p->gate_cond, &p->gate_lock);
	int aborted = p->gate_abort;
	pthread_mutex_unlock(&p->gate_lock);
	if (aborted)
		goto out;
	if (!scratch || !scratch_calls) {
		snprintf(tc->err, sizeof tc->err, "out of memory");
		tc->failed = 1;
	}
	/* replayed per pass, per class (the same every pass) */
	for (uint64_t i = 0; i < tc->t->n_ops; i++) {
		const struct sp_plan_op *o = &p->plan->ops[tc->t->first_op + i];
		tc->replayed[o->cls]++;
	}
	if (cfg->check && !tc->failed)
		check_pass(tc);
	if (tc->failed) {
		pthread_mutex_lock(&p->check_lock);
		p->check_failed = 1;
		pthread_mutex_unlock(&p->check_lock);
	}
	/* Every thread that passed the gate reaches this barrier, failed or not. */
	pthread_barrier_wait(&p->check_done);
	pthread_mutex_lock(&p->check_lock);
	int give_up = p->check_failed;
	pthread_mutex_unlock(&p->check_lock);
	if (give_up)
		goto out;
	pin_thread(tc);
	calibrate_overhead(tc, OVERHEAD_PAIRS_FIRST);
	for (int impl = 0; impl < SP_IMPL_COUNT; impl++) {
		tc->loops[impl] = 0;
		if (!(cfg->impls & (1 << impl)))
			continue;
		for (uint32_t w = 0; w < cfg->warmups; w++)
			timed_pass(tc, impl, scratch, scratch_calls);
		/* Calibrate: loops so that one sample lasts min_sample_ns (pyperf calibrate_loops),
		 * and every class reaches min_class_ns in it (calibrate_loops per value). */
		memset(scratch, 0, nc * sizeof *scratch);
		memset(scratch_calls, 0, nc * sizeof *scratch_calls);
		uint64_t t0 = sp_clock_now_ns();
		timed_pass(tc, impl, scratch, scratch_calls);
		uint64_t pass_ns = sp_clock_now_ns() - t0;
		/* a multiple of 4: a sample is four quarters (A B B A B A A B below) */
		tc->loops[impl] = 4 * ((calibrate_loops(cfg, pass_ns, scratch, scratch_calls, nc) + 3) / 4);
	}
	int on[SP_IMPL_COUNT], n_on = 0;   /* the implementations measured, in enum order */
	for (int impl = 0; impl < SP_IMPL_COUNT; impl++)
		if (cfg->impls & (1 << impl))
			on[n_on++] = impl;
	/* The first warmup_samples samples are taken the same way and discarded (pyperf's warm-up
	 * values): the first sample of a one-call class measured 10-20 % above the rest. */
	for (uint32_t i = 0; i < cfg->warmup_samples + cfg->samples; i++) {
		int warm = i < cfg->warmup_samples;
		uint32_t s = warm ? 0 : i - cfg->warmup_samples;
		/* Every thread starts sample s together (none still calibrating or in sample s-1):
		 * threads' samples differ in length, and without this a short-sampled thread ran
		 * its first samples beside the others and its last ones alone, 20-100 % apart for
		 * the one-call classes of the logging trace's main thread. */
		pthread_barrier_wait(&p->calibrated);
		calibrate_overhead(tc, OVERHEAD_PAIRS_SAMPLE);
		if (!warm)
			tc->sample_overhead_ns[s] = tc->overhead_ns;
		if (!warm && tc->index == 0)
			measure_reference(tc, s);
		/* A B B A B A A B (then B A A B A B B A): each implementation's sample is four
		 * quarters, in blocks forward, reversed, reversed, forward, so that every
		 * implementation takes the same mean position in the sample and each precedes the
		 * others equally often: no value depends on order or position. With whole samples
		 * in A B / B A order, a class timed one call at a time cost 10-20 % more when its
		 * syscall sample followed the page sample, and with A B B A alone a page read after
		 * a state change still alternated +-12 % between samples: two modes, and a median
		 * that jumped between them from run to run. */
		for (int q = 0; q < 4 * n_on; q++) {
			int block = q / n_on, j = q % n_on;
			int forward = (block == 0 || block == 3) == (i % 2 == 0);
			int impl = on[forward ? j : n_on - 1 - j];
			double *acc = warm ? scratch : tc->acc_ns + ((size_t)s * SP_IMPL_COUNT + impl) * nc;
			uint64_t *calls = warm ? scratch_calls : tc->acc_calls + ((size_t)s * SP_IMPL_COUNT + impl) * nc;
			uint64_t quarter = tc->loops[impl] / 4;
			for (uint64_t l = 0; l < quarter; l++)
				timed_pass(tc, impl, acc, calls);
		}
	}
	tc->last_cpu = sched_getcpu();
out:
	sp_host_title_restore(title);
	free(scratch);
	free(scratch_calls);
	return NULL;
}

/* The process's reported timer overhead: the median of what its threads' samples subtracted. */
static double median_sample_overhead(const struct thread_ctx *tcs, uint32_t nt, uint32_t samples)
{
	size_t n = (size_t)nt * samples, k = 0;
	double *v = n ? malloc(n * sizeof *v) : NULL;
	if (!v)
		return 0.0;
	for (uint32_t t = 0; t < nt; t++)
		for (uint32_t s = 0; s < samples; s++)
			v[k++] = tcs[t].sample_overhead_ns[s];
	for (size_t i = 1; i < k; i++)     /* insertion sort: a few dozen values */
		for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double x = v[j]; v[j] = v[j - 1]; v[j - 1] = x;
		}
	double m = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
	free(v);
	return m;
}

/* ---- set-up: what each implementation does for each class ----------------------------- */

static void plan_classes(struct proc_ctx *p)
{
	const struct sp_plan *plan = p->plan;
	for (uint32_t i = 0; i < p->n_classes; i++) {
		struct class_plan *cp = &p->classes[i];
		const struct sp_plan_class *c = &plan->classes[i];
		cp->c = c;
		cp->arg = sp_plan_string(plan, c->arg);
		cp->page = sp_kside_page(p->kside, (enum sp_page_kind)c->page);
		for (int f = 0; f < SP_FIELD_COUNT; f++) {
			if (!(c->fields & SP_FIELD_BIT(f)))
				continue;
			if (sp_fields[f].is_string)
				cp->strings[cp->n_strings++] = (enum sp_field)f;
			else
				cp->words[cp->n_words++] = (enum sp_field)f;
		}
		cp->check_fields = c->fields & sp_host_fields((enum sp_host_op)c->host_op);
		const char *why = sp_host_unsafe_reason((enum sp_host_op)c->host_op);
		if (why) {
			cp->skip[SP_IMPL_SYSCALL] = 1;
			cp->skip_reason = why;
		}
		if (c->access != SP_ACCESS_FOLLOW && c->fields == 0 && !is_bounded_title_read(cp)) {
			cp->skip[SP_IMPL_PAGE] = 1;
			cp->skip_reason = "no page field for this class";
		}
		/* page-kernel: what the patched kernel's pages hold (sp_kernel_page.c) */
		cp->kernel_skip_reason = p->cfg->kernel_page ? p->cfg->kernel_page->unsupported(c)
							     : "not running on the patched kernel (sp_replay in its VM)";
		if (c->access != SP_ACCESS_FOLLOW && cp->kernel_skip_reason)
			cp->skip[SP_IMPL_PAGE_KERNEL] = 1;
	}
}

static int plan_needs_uts(const struct sp_plan *plan, uint32_t proc)
{
	for (uint32_t t = 0; t < plan->header->n_threads; t++) {
		const struct sp_plan_thread *th = &plan->threads[t];
		if (th->proc != proc)
			continue;
		for (uint64_t i = 0; i < th->n_ops; i++)
			if (plan->classes[plan->ops[th->first_op + i].cls].host_op == SP_OP_SETHOSTNAME)
				return 1;
	}
	return 0;
}

int sp_run_process(const struct sp_plan *plan, const struct sp_run_config *cfg,
		   struct sp_run_result *res, char *err, size_t errlen)
{
	struct proc_ctx p;
	uint32_t nc = plan->header->n_classes, nt = 0;
	struct thread_ctx *tcs = NULL;
	pthread_t *tids = NULL;
	int rc = -1, started = 0;

	memset(res, 0, sizeof *res);
	memset(&p, 0, sizeof p);
	for (uint32_t t = 0; t < plan->header->n_threads; t++)
		nt += plan->threads[t].proc == cfg->proc;
	if (nt == 0) {
		snprintf(err, errlen, "the plan has no thread for replay process %u", cfg->proc);
		return -1;
	}
	/* sethostname only in a private UTS namespace: this process and its kernel side. */
	if (plan_needs_uts(plan, cfg->proc) && sp_host_private_uts() == 0)
		res->uts_private = 1;
	p.plan = plan;
	p.cfg = cfg;
	p.n_classes = nc;
	p.kside = sp_kside_start(cfg->locking, err, errlen);
	if (!p.kside)
		return -1;
	p.scheme = sp_kside_scheme(p.kside);
	if (cfg->n_cpus && cfg->cpus[0] >= 0) {
		/* its pages are filled (sp_kside_start waits for that): hw.ncpu saw the full mask */
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cfg->cpus[0], &set);
		sched_setaffinity(sp_kside_pid(p.kside), sizeof set, &set);
	}
	p.classes = calloc(nc ? nc : 1, sizeof *p.classes);
	tcs = calloc(nt, sizeof *tcs);
	tids = calloc(nt, sizeof *tids);
	res->classes = calloc(nc ? nc : 1, sizeof *res->classes);
	if (!p.classes || !tcs || !tids || !res->classes) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	res->n_classes = nc;
	p.res = res;
	plan_classes(&p);
	pthread_mutex_init(&p.gate_lock, NULL);
	pthread_cond_init(&p.gate_cond, NULL);
	pthread_mutex_init(&p.check_lock, NULL);
	pthread_mutex_init(&p.follow_lock, NULL);
	p.sync_ready = 1;
	int be = pthread_barrier_init(&p.check_done, NULL, nt);
	if (be == 0 && (be = pthread_barrier_init(&p.calibrated, NULL, nt)) != 0)
		pthread_barrier_destroy(&p.check_done);
	if (be != 0) {
		snprintf(err, errlen, "pthread_barrier_init for %u threads: %s", nt, strerror(be));
		goto done;
	}
	p.barrier_ready = 1;

	size_t cells = (size_t)(cfg->samples ? cfg->samples : 1) * SP_IMPL_COUNT * (nc ? nc : 1);
	uint32_t k = 0;
	for (uint32_t t = 0; t < plan->header->n_threads; t++) {
		if (plan->threads[t].proc != cfg->proc)
			continue;
		struct thread_ctx *tc = &tcs[k++];
		tc->p = &p;
		tc->t = &plan->threads[t];
		tc->index = k - 1;
		tc->last_cpu = -1;
		tc->acc_ns = calloc(cells, sizeof *tc->acc_ns);
		tc->acc_calls = calloc(cells, sizeof *tc->acc_calls);
		tc->sample_overhead_ns = calloc(cfg->samples ? cfg->samples : 1, sizeof(double));
		for (int r = 0; r < 2; r++)
			tc->reference_ns[r] = calloc(cfg->samples ? cfg->samples : 1, sizeof(double));
		tc->checked = calloc(nc + 1, sizeof(uint64_t));
		tc->mismatches = calloc(nc + 1, sizeof(uint64_t));
		tc->replayed = calloc(nc + 1, sizeof(uint64_t));
		tc->first_page = calloc(nc + 1, sizeof(struct sp_value));
		tc->first_sys = calloc(nc + 1, sizeof(struct sp_value));
		if (!tc->acc_ns || !tc->acc_calls || !tc->sample_overhead_ns || !tc->reference_ns[0] || !tc->reference_ns[1] || !tc->checked || !tc->mismatches || !tc->replayed
		    || !tc->first_page || !tc->first_sys) {
			snprintf(err, errlen, "out of memory");
			goto join;
		}
	}
	for (started = 0; started < (int)nt; started++) {
		int e = pthread_create(&tids[started], NULL, thread_main, &tcs[started]);
		if (e != 0) {
			snprintf(err, errlen, "pthread_create for traced thread %d: %s", started, strerror(e));
			break;
		}
	}
	/* Open the gate; if a thread could not be created, the others leave at once. */
	pthread_mutex_lock(&p.gate_lock);
	p.gate_open = 1;
	p.gate_abort = started < (int)nt;
	pthread_cond_broadcast(&p.gate_cond);
	pthread_mutex_unlock(&p.gate_lock);
join:
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (started < (int)nt)
		goto done;
	for (uint32_t t = 0; t < nt; t++)
		if (tcs[t].failed) {
			snprintf(err, errlen, "replay thread %u: %s", t, tcs[t].err);
			goto done;
		}

	/* Merge the threads: sample s of class c = all threads' time / all threads' calls. */
	for (uint32_t c = 0; c < nc; c++) {
		struct sp_class_result *cr = &res->classes[c];
		const struct class_plan *cp = &p.classes[c];
		for (uint32_t t = 0; t < nt; t++) {
			cr->replayed += tcs[t].replayed[c];
			cr->checked += tcs[t].checked[c];
			if (tcs[t].mismatches[c] && cr->mismatches == 0) {
				cr->first_page = tcs[t].first_page[c];
				cr->first_syscall = tcs[t].first_sys[c];
			}
			cr->mismatches += tcs[t].mismatches[c];
		}
		cr->skip_reason = cr->replayed ? cp->skip_reason : NULL;
		for (int impl = 0; impl < SP_IMPL_COUNT; impl++)
			cr->skip[impl] = cp->skip[impl];
		cr->kernel_skip_reason = cr->replayed ? cp->kernel_skip_reason : NULL;
		for (int impl = 0; impl < SP_IMPL_COUNT; impl++) {
			if (!(cfg->impls & (1 << impl)) || cp->skip[impl] || cp->c->access == SP_ACCESS_FOLLOW)
				continue;
			cr->samples[impl] = calloc(cfg->samples ? cfg->samples : 1, sizeof(double));
			if (!cr->samples[impl])
				continue;
			for (uint32_t s = 0; s < cfg->samples; s++) {
				double ns = 0;
				uint64_t calls = 0;
				size_t at = ((size_t)s * SP_IMPL_COUNT + impl) * nc + c;
				for (uint32_t t = 0; t < nt; t++) {
					ns += tcs[t].acc_ns[at];
					calls += tcs[t].acc_calls[at];
				}
				if (calls)
					cr->samples[impl][cr->n_samples[impl]++] = ns / (double)calls;
			}
		}
	}
	for (int impl = 0; impl < SP_IMPL_COUNT; impl++)
		for (uint32_t t = 0; t < nt; t++)
			if (tcs[t].loops[impl] > res->loops[impl])
				res->loops[impl] = tcs[t].loops[impl];
	res->timer_overhead_ns = median_sample_overhead(tcs, nt, cfg->samples);
	for (int r = 0; r < 2; r++) {   /* thread 0's: handed over, not copied */
		res->reference_ns[r] = tcs[0].reference_ns[r];
		tcs[0].reference_ns[r] = NULL;
	}
	res->n_reference = cfg->samples;
	res->n_threads = nt;
	res->thread_cpus = calloc(nt, sizeof *res->thread_cpus);
	res->pinned = cfg->n_cpus > 0;
	for (uint32_t t = 0; t < nt; t++) {
		if (res->thread_cpus)
			res->thread_cpus[t] = tcs[t].last_cpu;
		res->pinned = res->pinned && tcs[t].pinned;
	}
	res->replay_pid = getpid();
	res->kside_pid = sp_kside_pid(p.kside);
	rc = 0;
done:
	if (tcs)
		for (uint32_t t = 0; t < nt; t++) {
			free(tcs[t].acc_ns);
			free(tcs[t].sample_overhead_ns);
			free(tcs[t].reference_ns[0]);
			free(tcs[t].reference_ns[1]);
			free(tcs[t].acc_calls);
			free(tcs[t].checked);
			free(tcs[t].mismatches);
			free(tcs[t].replayed);
			free(tcs[t].first_page);
			free(tcs[t].first_sys);
		}
	if (p.sync_ready) {
		pthread_mutex_destroy(&p.gate_lock);
		pthread_cond_destroy(&p.gate_cond);
		pthread_mutex_destroy(&p.check_lock);
		pthread_mutex_destroy(&p.follow_lock);
	}
	if (p.barrier_ready) {
		pthread_barrier_destroy(&p.check_done);
		pthread_barrier_destroy(&p.calibrated);
	}
	free(tcs);
	free(tids);
	free(p.classes);
	sp_kside_stop(p.kside);
	if (rc != 0)
		sp_run_result_free(res);
	return rc;
}

void sp_run_result_free(struct sp_run_result *res)
{
	free(res->thread_cpus);
	res->thread_cpus = NULL;
	for (int r = 0; r < 2; r++) {
		free(res->reference_ns[r]);
		res->reference_ns[r] = NULL;
	}
	if (!res->classes)
		return;
	for (uint32_t c = 0; c < res->n_classes; c++)
		for (int impl = 0; impl < SP_IMPL_COUNT; impl++)
			free(res->classes[c].samples[impl]);
	free(res->classes);
	res->classes = NULL;
}
