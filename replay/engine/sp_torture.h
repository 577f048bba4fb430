/* Torture test and writer-stress harness for the locking schemes of sp_page.h (issue 8),
 * and the hostile-title-writer harness for sp_title_read_bounded.
 *
 * One writer thread plays the kernel and updates, in turn, the process page (ppid and uid
 * in one batch) and the system page (hostname), with values derived from one counter n:
 *   ppid = n | (~n << 32)                 (a torn 64-bit word breaks the halves' relation)
 *   uid  = m | (~m << 32), m = n * 2654435761 mod 2^32   (ties uid to ppid: a mixed pair shows)
 *   hostname = len copies of 'a' + len % 26, len = 8 + (n / 2) % 8, so consecutive hostnames
 *              differ in length and character; with long_strings len = 1 + n % 250
 *              (mixed characters, or a length that does not match the character, show a tear)
 * Reader threads read back to back in timed batches and check the values they get. */
#ifndef SP_TORTURE_H
#define SP_TORTURE_H

#include <stddef.h>
#include <stdint.h>

enum sp_stress_op {
    SP_STRESS_WORD = 0,        /* ppid: one word field (getppid) */
    SP_STRESS_SNAPSHOT = 1,    /* ppid + uid: two fields that must come from one update (getresuid) */
    SP_STRESS_STRING = 2,      /* hostname: one string field (gethostname) */
    SP_STRESS_STRING_NOLOCK = 3, /* negative control: hostname copied with no counter at all */
    SP_STRESS_OP_COUNT
};

struct sp_stress_config {
    int scheme;            /* enum sp_scheme */
    int op;                /* enum sp_stress_op */
    int readers;           /* reader threads, >= 1 */
    double rate_per_s;     /* writer updates per second; 0: no writer; < 0: as fast as it can */
    double duration_s;     /* measuring time */
    uint64_t batch_reads;  /* reads per timed batch; 0: calibrate to >= 20 us per batch */
    uint64_t check_every;  /* check one read in this many (1: every read; torture) */
    size_t max_samples;    /* batch timings kept per reader (and writer timings) */
    int pin;               /* pin threads: reader i on CPU i % ncpu, writer on the last CPU */
    int long_strings;      /* hostnames of 1..250 bytes (torture) instead of 8..15 (a real hostname) */
};

struct sp_stress_result {
    uint64_t reads, retries, max_retries, checked, torn, mixed;
    uint64_t batch_reads;
    double *samples_ns;    /* ns per read, one per batch, all readers (reader 0 first) */
    size_t nsamples;
    uint64_t writer_updates;
    double *writer_ns;     /* ns per update, one per update (up to max_samples) */
    size_t nwriter;
    double rate_per_s;     /* achieved */
    double duration_s;
    double timer_overhead_ns;
    int ncpu;
};

double sp_stress_timer_overhead_ns(void);
/* 0 on success; -1 with errno set (EINVAL for a bad config, ENOMEM, or a pthread error). */
int sp_stress_run(const struct sp_stress_config *cfg, struct sp_stress_result *res);
void sp_stress_result_free(struct sp_stress_result *res);

/* ---- hostile title writer ---- */
enum sp_hostile_mode {
    SP_HOSTILE_WELL_BEHAVED = 0, /* a correct writer rewriting patterned titles (title-page torture) */
    SP_HOSTILE_NEVER_FINISH = 1, /* counter left odd / current ring slot left at generation 0 */
    SP_HOSTILE_FLIP = 2,         /* a thread flips the counter (and slot generations) and scribbles the title */
    SP_HOSTILE_NO_TERMINATOR = 3,/* the whole title buffer filled, no NUL anywhere */
    SP_HOSTILE_GARBAGE = 4,      /* a thread writes random words over the whole page, header included */
    SP_HOSTILE_BAD_HEADER = 5,   /* magic cleared, ring index out of range */
    SP_HOSTILE_COUNT
};

struct sp_hostile_result {
    uint64_t calls, from_page, from_fallback, unterminated, bad_header;
    uint64_t torn;          /* WELL_BEHAVED: page titles that are not one written title */
    uint64_t overruns;      /* canary bytes after out[outsz] changed: must be 0 */
    uint64_t unterminated_out; /* out not NUL-terminated within outsz: must be 0 */
    uint64_t max_retries_seen;
    uint64_t max_len;
    uint64_t max_call_ns;   /* slowest single bounded read */
    char last[64];          /* the last output, cut */
};

int sp_title_hostile_run(int scheme, int mode, unsigned max_retries, uint64_t calls, size_t outsz,
                         struct sp_hostile_result *res);

/* ---- several writers of the process-written title page ----
 * threads threads each write writes_each titles (their own pattern) flat out on one
 * proc_rw page, as a threaded process's setproctitle/prctl(PR_SET_NAME) calls do; then a
 * bounded read (sp_page_read_string_bounded). With serialised writers the page counter
 * ends even and equal to twice the updates (PAGE, WORD, HYBRID; FIELD: the title's own
 * counter), the ring's generation equals the updates + 1, and the read is one writer's
 * whole title. */
struct sp_writers_result {
    uint64_t updates;       /* the header's update count */
    uint64_t expected;      /* threads * writes_each */
    uint32_t counter;       /* the final counter (PAGE/WORD/HYBRID: page; FIELD: the title's;
                               RING: the last generation) */
    long read_retries;      /* the bounded read's retries, -1 if it gave up */
    int read_whole;         /* the title read is one writer's whole title */
    char title[64];         /* what the read returned (cut) */
};
int sp_title_writers_run(int scheme, unsigned threads, uint64_t writes_each, struct sp_writers_result *res);

#endif
