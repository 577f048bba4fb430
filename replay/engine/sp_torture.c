/* Torture and writer-stress harness for the locking schemes, and the hostile title writer
 * (see sp_torture.h for the patterns). Threads share MAP_SHARED pages, as the replayer and
 * the kernel-side process share a memfd. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "sp_page.h"
#include "sp_torture.h"

#define SP_BATCH_TARGET_NS 20000u /* a batch long enough that two clock reads do not matter */

static inline uint64_t sp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int sp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median cost of one clock read pair, subtracted from every timed batch and update. */
double sp_stress_timer_overhead_ns(void)
{
    enum { N = 2001 };
    static double v[N];
    for (int i = 0; i < N; i++) {
        uint64_t a = sp_now_ns();
        uint64_t b = sp_now_ns();
        v[i] = (double)(b - a);
    }
    qsort(v, N, sizeof v[0], sp_cmp_double);
    return v[N / 2];
}

/* ---- the writer's patterns and the readers' checks ---- */

static inline uint64_t sp_pat_ppid(uint64_t n)
{
    uint32_t lo = (uint32_t)n;
    return (uint64_t)lo | ((uint64_t)(uint32_t)~lo << 32);
}

static inline uint64_t sp_pat_uid(uint64_t n)
{
    uint32_t m = (uint32_t)n * 2654435761u;
    return (uint64_t)m | ((uint64_t)(uint32_t)~m << 32);
}

static inline int sp_word_whole(uint64_t v)
{
    return (uint32_t)(v >> 32) == (uint32_t)~(uint32_t)v;
}

static inline size_t sp_pat_host(uint64_t n, char *buf, int long_strings)
{
    size_t len = long_strings ? 1 + n % 250 : 8 + (n / 2) % 8;
    memset(buf, 'a' + (int)(len % 26), len);
    buf[len] = '\0';
    return len;
}

static inline int sp_host_whole(const char *s)
{
    size_t len = strlen(s);
    if (len < 1 || len > 250)
        return 0;
    char c = (char)('a' + len % 26);
    for (size_t i = 0; i < len; i++)
        if (s[i] != c)
            return 0;
    return 1;
}

static void sp_write_update(void *proc, void *sys, int scheme, uint64_t n, int long_strings)
{
    if (n & 1u) {
        struct sp_update u[2] = {
            {.field = SP_F_PPID, .value = sp_pat_ppid(n)},
            {.field = SP_F_UID, .value = sp_pat_uid(n)},
        };
        sp_page_write(proc, (enum sp_scheme)scheme, u, 2);
    } else {
        char host[256];
        size_t len = sp_pat_host(n, host, long_strings);
        sp_page_write_string(sys, (enum sp_scheme)scheme, SP_F_HOSTNAME, host, len);
    }
}

/* ---- threads ---- */

struct sp_shared {
    const struct sp_stress_config *cfg;
    void *proc, *sys;
    int go;                /* set by the main thread to start every thread at once */
    int stop;              /* set by the main thread (atomic) */
    double overhead_ns;
    uint64_t batch_reads;
    int ncpu;
};

struct sp_reader {
    struct sp_shared *sh;
    int index;
    uint64_t reads, retries, max_retries, checked, torn, mixed;
    double *samples;
    size_t nsamples;
};

struct sp_writer {
    struct sp_shared *sh;
    uint64_t updates;
    double *samples;
    size_t nsamples;
    uint64_t t_start, t_end;
};

static void sp_pin(int cpu, int ncpu)
{
    if (ncpu < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % ncpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* One batch of reads for a constant scheme and op: inlined per (scheme, op) so every
 * scheme is measured with its own loop, not through a switch per read. */
static inline __attribute__((always_inline)) void
sp_reader_batch(struct sp_reader *r, const int scheme, const int op, uint64_t batch, uint64_t check_every,
                uint64_t *countdown, uint64_t *sink)
{
    struct sp_shared *sh = r->sh;
    static const enum sp_field pair[2] = {SP_F_PPID, SP_F_UID};
    char host[SP_HOSTNAME_MAX];
    uint64_t retries = 0, maxr = r->max_retries, acc = 0;
    for (uint64_t i = 0; i < batch; i++) {
        unsigned got;
        int check = --*countdown == 0;
        if (check)
            *countdown = check_every;
        switch (op) {
        case SP_STRESS_WORD: {
            uint64_t v;
            got = sp_page_read_word(sh->proc, (enum sp_scheme)scheme, SP_F_PPID, &v);
            acc += v;
            if (check) {
                r->checked++;
                r->torn += !sp_word_whole(v);
            }
            break;
        }
        case SP_STRESS_SNAPSHOT: {
            uint64_t v[2];
            got = sp_page_read_words(sh->proc, (enum sp_scheme)scheme, pair, 2, v);
            acc += v[0] ^ v[1];
            if (check) {
                r->checked++;
                if (!sp_word_whole(v[0]) || !sp_word_whole(v[1]))
                    r->torn++;
                else if (sp_pat_uid((uint32_t)v[0]) != v[1])
                    r->mixed++;
            }
            break;
        }
        case SP_STRESS_STRING:
            got = sp_page_read_string(sh->sys, (enum sp_scheme)scheme, SP_F_HOSTNAME, host, sizeof host);
            acc += (unsigned char)host[0];
            if (check) {
                r->checked++;
                r->torn += !sp_host_whole(host);
            }
            break;
        default: /* SP_STRESS_STRING_NOLOCK: what a reader without any lock would see */
            got = 0;
            sp_copy_string_relaxed(host, sizeof host, sp_page_field_ptr(sh->sys, SP_F_HOSTNAME), SP_HOSTNAME_MAX);
            acc += (unsigned char)host[0];
            if (check) {
                r->checked++;
                r->torn += !sp_host_whole(host);
            }
            break;
        }
        retries += got;
        if (got > maxr)
            maxr = got;
    }
    r->retries += retries;
    r->max_retries = maxr;
    *sink += acc;
}

/* do-while: every reader times at least one batch, even one scheduled late. */
#define SP_READER_LOOP(SCHEME, OP)                                                        \
    do {                                                                                  \
        uint64_t t0 = sp_now_ns();                                                        \
        sp_reader_batch(r, SCHEME, OP, batch, check_every, &countdown, &sink);            \
        uint64_t t1 = sp_now_ns();                                                        \
        r->reads += batch;                                                                \
        if (r->nsamples < cfg->max_samples)                                               \
            r->samples[r->nsamples++] = ((double)(t1 - t0) - sh->overhead_ns) / (double)batch; \
    } while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED))

#define SP_READER_OPS(SCHEME)                                          \
    switch (cfg->op) {                                                 \
    case SP_STRESS_WORD: SP_READER_LOOP(SCHEME, SP_STRESS_WORD); break;        \
    case SP_STRESS_SNAPSHOT: SP_READER_LOOP(SCHEME, SP_STRESS_SNAPSHOT); break; \
    case SP_STRESS_STRING: SP_READER_LOOP(SCHEME, SP_STRESS_STRING); break;    \
    default: SP_READER_LOOP(SCHEME, SP_STRESS_STRING_NOLOCK); break;       \
    }

static void *sp_reader_main(void *arg)
{
    struct sp_reader *r = arg;
    struct sp_shared *sh = r->sh;
    const struct sp_stress_config *cfg = sh->cfg;
    uint64_t batch = sh->batch_reads, check_every = cfg->check_every ? cfg->check_every : batch;
    uint64_t countdown = check_every, sink = 0;
    if (cfg->pin)
        sp_pin(r->index, sh->ncpu);
    while (!__atomic_load_n(&sh->go, __ATOMIC_ACQUIRE))
        sp_cpu_relax();
    switch (cfg->scheme) {
    case SP_SCHEME_FIELD: SP_READER_OPS(SP_SCHEME_FIELD); break;
    case SP_SCHEME_WORD: SP_READER_OPS(SP_SCHEME_WORD); break;
    case SP_SCHEME_RING: SP_READER_OPS(SP_SCHEME_RING); break;
    case SP_SCHEME_HYBRID: SP_READER_OPS(SP_SCHEME_HYBRID); break;
    default: SP_READER_OPS(SP_SCHEME_PAGE); break;
    }
    __asm__ __volatile__("" : : "r"(sink) : "memory");
    return NULL;
}

static void sp_wait_until(uint64_t deadline)
{
    for (;;) {
        uint64_t now = sp_now_ns();
        if (now >= deadline)
            return;
        uint64_t left = deadline - now;
        if (left > 80000) { /* sleep most of a long wait; spin the last stretch */
            struct timespec ts = {0, (long)(left - 60000)};
            nanosleep(&ts, NULL);
        }
        /* Else poll the clock: no PAUSE here, a VM may treat a PAUSE loop as a lock
         * spin and deschedule the vCPU (KVM pause-loop exiting). */
    }
}

static void *sp_writer_main(void *arg)
{
    struct sp_writer *w = arg;
    struct sp_shared *sh = w->sh;
    const struct sp_stress_config *cfg = sh->cfg;
    double rate = cfg->rate_per_s;
    uint64_t period = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    uint64_t n = 0;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    if (cfg->pin)
        sp_pin(sh->ncpu - 1, sh->ncpu);
    while (!__atomic_load_n(&sh->go, __ATOMIC_ACQUIRE))
        sp_cpu_relax();
    w->t_start = sp_now_ns();
    uint64_t next = w->t_start;
    do { /* at least one update, even when scheduled late */
        if (period) {
            next += period;
            sp_wait_until(next);
            uint64_t now = sp_now_ns();
            /* Descheduled (the machine is shared): catch up by updating back to back, but
             * drop a backlog older than 10 ms rather than burst for longer. */
            if (now > next + 10000000u)
                next = now - 10000000u;
        }
        n++;
        uint64_t t0 = sp_now_ns();
        sp_write_update(sh->proc, sh->sys, cfg->scheme, n, cfg->long_strings);
        uint64_t t1 = sp_now_ns();
        if (w->nsamples < cfg->max_samples)
            w->samples[w->nsamples++] = (double)(t1 - t0) - sh->overhead_ns;
    } while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED));
    w->t_end = sp_now_ns();
    w->updates = n;
    return NULL;
}

static void *sp_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Reads per batch so that one batch takes at least SP_BATCH_TARGET_NS, measured with no
 * writer running. */
static uint64_t sp_calibrate(struct sp_shared *sh)
{
    struct sp_reader r = {.sh = sh};
    uint64_t batch = 16, countdown = UINT64_MAX, sink = 0;
    for (;;) {
        uint64_t t0 = sp_now_ns();
        switch (sh->cfg->scheme * SP_STRESS_OP_COUNT + sh->cfg->op) {
#define SP_CAL(S, O) case S * SP_STRESS_OP_COUNT + O: sp_reader_batch(&r, S, O, batch, UINT64_MAX, &countdown, &sink); break;
#define SP_CAL_OPS(S) SP_CAL(S, SP_STRESS_WORD) SP_CAL(S, SP_STRESS_SNAPSHOT) SP_CAL(S, SP_STRESS_STRING) SP_CAL(S, SP_STRESS_STRING_NOLOCK)
        SP_CAL_OPS(SP_SCHEME_PAGE)
        SP_CAL_OPS(SP_SCHEME_FIELD)
        SP_CAL_OPS(SP_SCHEME_WORD)
        SP_CAL_OPS(SP_SCHEME_RING)
        SP_CAL_OPS(SP_SCHEME_HYBRID)
#undef SP_CAL_OPS
#undef SP_CAL
        default: return batch;
        }
        uint64_t t1 = sp_now_ns();
        if (t1 - t0 >= SP_BATCH_TARGET_NS || batch >= (1u << 24))
            return batch;
        batch *= 2;
    }
}

int sp_stress_run(const struct sp_stress_config *cfg, struct sp_stress_result *res)
{
    memset(res, 0, sizeof *res);
    if (cfg->scheme < 0 || cfg->scheme >= SP_SCHEME_COUNT || cfg->op < 0 || cfg->op >= SP_STRESS_OP_COUNT
        || cfg->readers < 1 || cfg->readers > 64 || !(cfg->duration_s > 0) || cfg->max_samples == 0
        || (cfg->op == SP_STRESS_STRING_NOLOCK && cfg->scheme != SP_SCHEME_PAGE)) {
        errno = EINVAL;
        return -1;
    }
    int rc = -1, err = 0;
    struct sp_shared sh = {.cfg = cfg};
    size_t proc_bytes = sp_page_map_bytes(SP_PAGE_PROC_RO, cfg->scheme);
    size_t sys_bytes = sp_page_map_bytes(SP_PAGE_SYS_RO, cfg->scheme);
    struct sp_reader *readers = calloc((size_t)cfg->readers, sizeof *readers);
    struct sp_writer writer = {.sh = &sh};
    pthread_t *tids = calloc((size_t)cfg->readers + 1, sizeof *tids);
    int started = 0, writer_started = 0;
    sh.proc = sp_map(proc_bytes);
    sh.sys = sp_map(sys_bytes);
    if (!readers || !tids || !sh.proc || !sh.sys) {
        err = ENOMEM;
        goto out;
    }
    sp_page_init(sh.proc, proc_bytes, SP_PAGE_PROC_RO, cfg->scheme);
    sp_page_init(sh.sys, sys_bytes, SP_PAGE_SYS_RO, cfg->scheme);
    sp_write_update(sh.proc, sh.sys, cfg->scheme, 1, cfg->long_strings); /* ppid, uid of n = 1 */
    sp_write_update(sh.proc, sh.sys, cfg->scheme, 0, cfg->long_strings); /* hostname of n = 0 */
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    sh.ncpu = nc > 0 ? (int)nc : 1;
    sh.overhead_ns = sp_stress_timer_overhead_ns();
    sh.batch_reads = cfg->batch_reads ? cfg->batch_reads : sp_calibrate(&sh);

    int with_writer = cfg->rate_per_s != 0;
    for (int i = 0; i < cfg->readers && !err; i++) {
        readers[i].sh = &sh;
        readers[i].index = i;
        readers[i].samples = malloc(cfg->max_samples * sizeof(double));
        if (!readers[i].samples)
            err = ENOMEM;
    }
    if (with_writer && !err) {
        writer.samples = malloc(cfg->max_samples * sizeof(double));
        if (!writer.samples)
            err = ENOMEM;
    }
    /* Start every thread; they spin on sh.go so they begin together. */
    for (int i = 0; i < cfg->readers && !err; i++) {
        if (pthread_create(&tids[i], NULL, sp_reader_main, &readers[i]) != 0)
            err = EAGAIN;
        else
            started++;
    }
    if (!err && with_writer) {
        if (pthread_create(&tids[cfg->readers], NULL, sp_writer_main, &writer) != 0)
            err = EAGAIN;
        else
            writer_started = 1;
    }
    if (err) {
        __atomic_store_n(&sh.stop, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&sh.go, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
        if (writer_started)
            pthread_join(tids[cfg->readers], NULL);
        goto out;
    }
    uint64_t t0 = sp_now_ns();
    __atomic_store_n(&sh.go, 1, __ATOMIC_RELEASE);
    struct timespec ts = {(time_t)cfg->duration_s, (long)((cfg->duration_s - (double)(time_t)cfg->duration_s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    __atomic_store_n(&sh.stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < cfg->readers; i++)
        pthread_join(tids[i], NULL);
    if (with_writer)
        pthread_join(tids[cfg->readers], NULL);
    uint64_t t1 = sp_now_ns();

    size_t total = 0;
    for (int i = 0; i < cfg->readers; i++)
        total += readers[i].nsamples;
    res->samples_ns = malloc((total ? total : 1) * sizeof(double));
    if (!res->samples_ns) {
        err = ENOMEM;
        goto out;
    }
    for (int i = 0; i < cfg->readers; i++) {
        struct sp_reader *r = &readers[i];
        memcpy(res->samples_ns + res->nsamples, r->samples, r->nsamples * sizeof(double));
        res->nsamples += r->nsamples;
        res->reads += r->reads;
        res->retries += r->retries;
        res->checked += r->checked;
        res->torn += r->torn;
        res->mixed += r->mixed;
        if (r->max_retries > res->max_retries)
            res->max_retries = r->max_retries;
    }
    if (with_writer) {
        res->writer_ns = writer.samples;
        res->nwriter = writer.nsamples;
        writer.samples = NULL;
        res->writer_updates = writer.updates;
        double secs = (double)(writer.t_end - writer.t_start) / 1e9;
        res->rate_per_s = secs > 0 ? (double)writer.updates / secs : 0;
    }
    res->batch_reads = sh.batch_reads;
    res->duration_s = (double)(t1 - t0) / 1e9;
    res->timer_overhead_ns = sh.overhead_ns;
    res->ncpu = sh.ncpu;
    rc = 0;
out:
    for (int i = 0; readers && i < cfg->readers; i++)
        free(readers[i].samples);
    free(readers);
    free(writer.samples);
    free(tids);
    if (sh.proc)
        munmap(sh.proc, proc_bytes);
    if (sh.sys)
        munmap(sh.sys, sys_bytes);
    if (rc != 0) {
        sp_stress_result_free(res);
        errno = err ? err : EINVAL;
    }
    return rc;
}

void sp_stress_result_free(struct sp_stress_result *res)
{
    free(res->samples_ns);
    free(res->writer_ns);
    res->samples_ns = NULL;
    res->writer_ns = NULL;
    res->nsamples = res->nwriter = 0;
}

/* ---- the hostile title writer ---------------------------------------------------------- */

struct sp_hostile {
    void *page;
    size_t bytes;
    int scheme, mode;
    int stop;
    int running;           /* set by the hostile thread once it has made its first write */
};

static inline uint64_t sp_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* A title the well-behaved writer writes: len copies of one char, len = 1 + n % 2000. */
static size_t sp_pat_title(uint64_t n, char *buf)
{
    size_t len = 1 + n % 2000;
    memset(buf, 'A' + (int)(len % 26), len);
    buf[len] = '\0';
    return len;
}

static int sp_title_whole(const char *s, size_t outsz)
{
    size_t len = strlen(s);
    if (len == 0)
        return outsz == 1; /* a copy cut to nothing */
    if (len > 2000)
        return 0;
    for (size_t i = 1; i < len; i++)
        if (s[i] != s[0])
            return 0;
    /* A copy cut to outsz - 1 bytes cannot tell its length; a whole one must match it. */
    return len == outsz - 1 || s[0] == (char)('A' + len % 26);
}

static void *sp_hostile_main(void *arg)
{
    struct sp_hostile *h = arg;
    struct sp_page_header *hd = h->page;
    uint64_t *words = (uint64_t *)h->page;
    size_t nwords = sp_page_used_bytes(SP_PAGE_PROC_RW, h->scheme) / 8;
    uint64_t seed = 0x9E3779B97F4A7C15ull, n = 0;
    char title[SP_TITLE_MAX + 1];
    for (uint64_t iter = 0; !__atomic_load_n(&h->stop, __ATOMIC_RELAXED); iter++) {
        if (iter == 64)
            __atomic_store_n(&h->running, 1, __ATOMIC_RELEASE);
        switch (h->mode) {
        case SP_HOSTILE_WELL_BEHAVED: {
            size_t len = sp_pat_title(++n, title);
            sp_title_write(h->page, h->scheme, title, len);
            break;
        }
        case SP_HOSTILE_FLIP: {
            /* Flip whatever the reader checks, and scribble the title between flips. */
            __atomic_fetch_add(&hd->seq, 1u, __ATOMIC_RELAXED);
            if (h->scheme == SP_SCHEME_FIELD) {
                uint32_t *fs = (uint32_t *)sp_page_field_seq(h->page, SP_F_TITLE);
                __atomic_fetch_add(fs, 1u, __ATOMIC_RELAXED);
            }
            if (h->scheme == SP_SCHEME_RING) {
                uint32_t idx = (uint32_t)(sp_xorshift(&seed) % SP_RING_SLOTS);
                uint32_t *gen = (uint32_t *)((unsigned char *)h->page + sizeof(struct sp_page_header)
                                             + idx * sp_ring_slot_bytes(SP_PAGE_PROC_RW));
                __atomic_store_n(gen, (uint32_t)(sp_xorshift(&seed) & 3), __ATOMIC_RELAXED);
                __atomic_store_n(&hd->ring_current, idx, __ATOMIC_RELAXED);
            }
            size_t at = (size_t)(sp_xorshift(&seed) % (SP_TITLE_MAX / 8));
            uint64_t *t = (uint64_t *)((unsigned char *)h->page + sizeof(struct sp_page_header)
                                       + sp_fields[SP_F_TITLE].offset + (h->scheme == SP_SCHEME_FIELD ? 8 : 0)
                                       + (h->scheme == SP_SCHEME_RING ? SP_RING_SLOT_HEADER : 0));
            __atomic_store_n(&t[at], sp_xorshift(&seed) | 0x0101010101010101ull, __ATOMIC_RELAXED);
            break;
        }
        case SP_HOSTILE_GARBAGE:
            __atomic_store_n(&words[sp_xorshift(&seed) % nwords], sp_xorshift(&seed), __ATOMIC_RELAXED);
            break;
        default:
            return NULL; /* the static modes are set up before the reads */
        }
    }
    return NULL;
}

int sp_title_hostile_run(int scheme, int mode, unsigned max_retries, uint64_t calls, size_t outsz,
                         struct sp_hostile_result *res)
{
    enum { CANARY = 64 };
    memset(res, 0, sizeof *res);
    if (scheme < 0 || scheme >= SP_SCHEME_COUNT || mode < 0 || mode >= SP_HOSTILE_COUNT || outsz == 0
        || outsz > (1u << 20)) {
        errno = EINVAL;
        return -1;
    }
    struct sp_hostile h = {.scheme = scheme, .mode = mode};
    h.bytes = sp_page_map_bytes(SP_PAGE_PROC_RW, scheme);
    h.page = sp_map(h.bytes);
    unsigned char *out = malloc(outsz + CANARY);
    if (!h.page || !out) {
        if (h.page)
            munmap(h.page, h.bytes);
        free(out);
        errno = ENOMEM;
        return -1;
    }
    sp_page_init(h.page, h.bytes, SP_PAGE_PROC_RW, scheme);
    char first[SP_TITLE_MAX + 1];
    size_t first_len = sp_pat_title(0, first);
    if (mode == SP_HOSTILE_WELL_BEHAVED)
        sp_title_write(h.page, scheme, first, first_len); /* every title on the page is a pattern */
    else
        sp_title_write(h.page, scheme, "postgres: hostile", 17);
    struct sp_page_header *hd = h.page;
    unsigned char *content = (unsigned char *)h.page + sizeof *hd;
    switch (mode) {
    case SP_HOSTILE_NEVER_FINISH:
        if (scheme == SP_SCHEME_RING)
            *(uint32_t *)(content + hd->ring_current * sp_ring_slot_bytes(SP_PAGE_PROC_RW)) = 0;
        else if (scheme == SP_SCHEME_FIELD)
            *(uint32_t *)sp_page_field_seq(h.page, SP_F_TITLE) |= 1u;
        else
            hd->seq |= 1u;
        break;
    case SP_HOSTILE_NO_TERMINATOR: {
        unsigned char *t = scheme == SP_SCHEME_RING ? content + hd->ring_current * sp_ring_slot_bytes(SP_PAGE_PROC_RW)
                                                          + SP_RING_SLOT_HEADER + sp_fields[SP_F_TITLE].offset
                         : scheme == SP_SCHEME_FIELD ? (unsigned char *)sp_page_field_cell_data(h.page, SP_F_TITLE)
                                                     : (unsigned char *)sp_page_field_ptr(h.page, SP_F_TITLE);
        memset(t, 'x', SP_TITLE_MAX);
        break;
    }
    case SP_HOSTILE_BAD_HEADER:
        hd->magic = 0;
        hd->ring_current = 0xFFFFFFFFu;
        break;
    default:
        break;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    pthread_t tid;
    int threaded = mode == SP_HOSTILE_WELL_BEHAVED || mode == SP_HOSTILE_FLIP || mode == SP_HOSTILE_GARBAGE;
    if (threaded && pthread_create(&tid, NULL, sp_hostile_main, &h) != 0) {
        munmap(h.page, h.bytes);
        free(out);
        errno = EAGAIN;
        return -1;
    }
    /* Read only once the writer is really writing (on a busy machine it may start late). */
    while (threaded && !__atomic_load_n(&h.running, __ATOMIC_ACQUIRE))
        sched_yield();
    for (uint64_t i = 0; i < calls; i++) {
        struct sp_title_result tr;
        memset(out, 0xA5, outsz + CANARY);
        uint64_t t0 = sp_now_ns();
        int src = sp_title_read_bounded(h.page, h.bytes, (enum sp_scheme)scheme, (char *)out, outsz, max_retries,
                                        "hostile", &tr);
        uint64_t t1 = sp_now_ns();
        res->calls++;
        if (t1 - t0 > res->max_call_ns)
            res->max_call_ns = t1 - t0;
        for (size_t k = 0; k < CANARY; k++)
            if (out[outsz + k] != 0xA5) {
                res->overruns++;
                break;
            }
        size_t len = strnlen((char *)out, outsz);
        if (len >= outsz) {
            res->unterminated_out++;
            continue;
        }
        if (len > res->max_len)
            res->max_len = len;
        if (tr.retries > res->max_retries_seen)
            res->max_retries_seen = tr.retries;
        res->unterminated += (uint64_t)tr.unterminated;
        res->bad_header += (uint64_t)tr.bad_header;
        if (src == SP_TITLE_FROM_PAGE) {
            res->from_page++;
            if (mode == SP_HOSTILE_WELL_BEHAVED && !sp_title_whole((char *)out, outsz))
                res->torn++;
        } else {
            res->from_fallback++;
        }
    }
    if (threaded) {
        __atomic_store_n(&h.stop, 1, __ATOMIC_RELAXED);
        pthread_join(tid, NULL);
    }
    size_t keep = strnlen((char *)out, outsz);
    if (keep > sizeof res->last - 1)
        keep = sizeof res->last - 1;
    memcpy(res->last, out, keep);
    res->last[keep] = '\0';
    munmap(h.page, h.bytes);
    free(out);
    return 0;
}

/* ---- several writers of the title page -------------------------------------------------- */

struct sp_namer {
    void *page;
    enum sp_scheme scheme;
    unsigned id;
    uint64_t writes;
    volatile int *go;
};

/* Writer id's titles: "tN-" then the id's letter repeated to length 8 + (n % 40). */
static size_t sp_namer_title(unsigned id, uint64_t n, char *buf)
{
    size_t len = 8 + (size_t)(n % 40);
    int c = snprintf(buf, 8, "t%u-", id % 100);
    memset(buf + c, 'a' + (int)(id % 26), len - (size_t)c);
    buf[len] = '\0';
    return len;
}

static void *sp_namer_main(void *arg)
{
    struct sp_namer *w = arg;
    char title[64];
    while (!__atomic_load_n(w->go, __ATOMIC_ACQUIRE))
        sp_cpu_relax();
    for (uint64_t n = 0; n < w->writes; n++) {
        size_t len = sp_namer_title(w->id, n, title);
        sp_title_write(w->page, w->scheme, title, len);
    }
    return NULL;
}

int sp_title_writers_run(int scheme, unsigned threads, uint64_t writes_each, struct sp_writers_result *res)
{
    enum { MAX_WRITERS = 64 };
    memset(res, 0, sizeof *res);
    if (scheme < 0 || scheme >= SP_SCHEME_COUNT || threads == 0 || threads > MAX_WRITERS) {
        errno = EINVAL;
        return -1;
    }
    size_t bytes = sp_page_map_bytes(SP_PAGE_PROC_RW, scheme);
    void *page = sp_map(bytes);
    if (!page) {
        errno = ENOMEM;
        return -1;
    }
    sp_page_init(page, bytes, SP_PAGE_PROC_RW, scheme);
    struct sp_namer w[MAX_WRITERS];
    pthread_t tid[MAX_WRITERS];
    volatile int go = 0;
    unsigned started = 0;
    for (; started < threads; started++) {
        w[started] = (struct sp_namer){.page = page, .scheme = scheme, .id = started, .writes = writes_each, .go = &go};
        if (pthread_create(&tid[started], NULL, sp_namer_main, &w[started]) != 0)
            break;
    }
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    if (started < threads) {
        munmap(page, bytes);
        errno = EAGAIN;
        return -1;
    }
    const struct sp_page_header *h = page;
    res->updates = __atomic_load_n(&h->updates, __ATOMIC_ACQUIRE);
    res->expected = (uint64_t)threads * writes_each;
    if (scheme == SP_SCHEME_FIELD)
        res->counter = __atomic_load_n(sp_page_field_seq(page, SP_F_TITLE), __ATOMIC_ACQUIRE);
    else if (scheme == SP_SCHEME_RING)
        res->counter = h->ring_gen;
    else
        res->counter = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
    char out[SP_TITLE_MAX];
    res->read_retries = sp_page_read_string_bounded(page, scheme, SP_F_TITLE, out, sizeof out, 1u << 16);
    snprintf(res->title, sizeof res->title, "%.*s", (int)sizeof res->title - 1, out);
    /* Whole: "tN-" then one letter to the end, N < threads, the letter N's. */
    unsigned id = 0;
    int at = 0;
    res->read_whole = sscanf(out, "t%u-%n", &id, &at) == 1 && at > 0 && id < threads;
    size_t len = strlen(out);
    if (res->read_whole && (len < 8 || len > 47))
        res->read_whole = 0;
    for (size_t i = (size_t)at; res->read_whole && i < len; i++)
        if (out[i] != 'a' + (int)(id % 26))
            res->read_whole = 0;
    munmap(page, bytes);
    return 0;
}
