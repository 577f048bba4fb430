/* syspage replay engine: shared declarations.
 * The engine is small and boring on purpose: Python plans, C runs the loop.
 * C symbols are sp_<area>_<verb> (see ../shared/STYLE.md).
 *
 * Files:
 *   sp_plan.c         the plan file (docs/replay.md "The plan file"): parse and check
 *   sp_host_linux.c   the syscall implementation on Linux  } one of the two is compiled,
 *   sp_host_freebsd.c the syscall implementation on FreeBSD} setup.py chooses
 *   sp_kside.c        the simulated kernel side: a process owning sealed memfd pages
 *   sp_run.c          one replay process: a thread per traced thread, check pass, timing
 *   sp_module.c       the Python method table (releases the GIL around sp_run_process)
 *   sp_replay_main.c  the same core as a static program (for the patched kernel's VM)
 *   sp_kernel_page.c  the page-kernel implementation: the patched kernel's real pages
 *                     (static program only; issue 10) */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sp_page.h"

#ifndef SP_ENGINE_VERSION
#error "SP_ENGINE_VERSION must be defined by the build (setup.py)"
#endif

/* Monotonic clock in nanoseconds (vDSO clock_gettime: no kernel entry). */
uint64_t sp_clock_now_ns(void);

/* ---- host operations: what the syscall implementation issues --------------------------
 * The numbers are part of the plan file format (replay/plan.py HOST_OPS mirrors them). */
enum sp_host_op {
	SP_OP_NONE = 0,          /* the host has no system call for it: never issued */
	SP_OP_GETPID, SP_OP_GETPPID, SP_OP_GETUID, SP_OP_GETEUID, SP_OP_GETGID, SP_OP_GETEGID,
	SP_OP_GETRESUID, SP_OP_GETRESGID, SP_OP_GETPGRP, SP_OP_GETPGID, SP_OP_GETSID,
	SP_OP_UNAME,
	SP_OP_PRCTL_SET_NAME, SP_OP_PRCTL_GET_NAME, SP_OP_READ_PROC_CMDLINE,
	SP_OP_SYSINFO, SP_OP_SCHED_GETAFFINITY,
	SP_OP_SETHOSTNAME,       /* only inside a private UTS namespace */
	/* FreeBSD host */
	SP_OP_ISSETUGID, SP_OP_GETLOGIN, SP_OP_GETHOSTNAME, SP_OP_GETDOMAINNAME,
	SP_OP_SETPROCTITLE, SP_OP_SYSCTL, SP_OP_READ_PROC_ARGS,
	SP_OP_COUNT
};

/* ---- page fields and page kinds: sp_page.h's (the locking engineer's layout, issue 8).
 * A class's fields are a bit set over enum sp_field. */
#define SP_FIELD_BIT(f) (1u << (f))

enum sp_access { SP_ACCESS_READ = 0, SP_ACCESS_WRITE = 1, SP_ACCESS_FOLLOW = 2 };
/* SP_IMPL_PAGE_KERNEL: the patched kernel's real pages (issue 10); only the static program
 * (sp_replay, run inside that kernel's VM) provides it, see struct sp_kernel_page. */
enum sp_impl { SP_IMPL_SYSCALL = 0, SP_IMPL_PAGE = 1, SP_IMPL_PAGE_KERNEL = 2, SP_IMPL_COUNT = 3 };
enum sp_mode { SP_MODE_TIGHT = 0, SP_MODE_PACED = 1 };

/* ---- the plan (file layout in docs/replay.md; all little-endian, packed) ------------- */
#define SP_PLAN_MAGIC "SPPLAN1"
#define SP_PLAN_VERSION 1

struct sp_plan_header {
	char magic[8];           /* "SPPLAN1\0" */
	uint32_t version;        /* SP_PLAN_VERSION */
	uint32_t n_classes;
	uint32_t n_threads;
	uint32_t n_strings;
	uint64_t n_ops;
	uint64_t strings_bytes;  /* size of the string blob */
} __attribute__((packed));

struct sp_plan_class {
	uint16_t host_op;        /* enum sp_host_op */
	uint8_t page;            /* enum sp_page_kind of sp_page.h */
	uint8_t access;          /* enum sp_access */
	uint32_t fields;         /* bit set of enum sp_field the page reads/writes */
	uint32_t arg;            /* string index (sysctl name on FreeBSD), 0 = none */
	uint32_t reserved;
} __attribute__((packed));

struct sp_plan_thread {
	uint32_t proc;           /* replay process index (one per traced process) */
	uint32_t reserved;
	int64_t trace_pid;
	int64_t trace_tid;
	uint64_t first_op;       /* index into the op array */
	uint64_t n_ops;
} __attribute__((packed));

struct sp_plan_op {
	uint16_t cls;            /* index into the class array */
	uint16_t reserved;
	uint32_t arg;            /* string index: the title written, the hostname set; 0 = none */
	int64_t gap_ns;          /* time the traced thread spent elsewhere before this call */
} __attribute__((packed));

/* strings: n_strings little-endian uint32 offsets into the blob, then the blob of
 * NUL-terminated strings. String 0 is "". */

struct sp_plan {
	const struct sp_plan_header *header;
	const struct sp_plan_class *classes;
	const struct sp_plan_thread *threads;
	const struct sp_plan_op *ops;
	const uint32_t *string_offsets;
	const char *strings;
};

/* Check and index a plan held in memory. Returns 0, or -1 with a message in err. */
int sp_plan_open(struct sp_plan *plan, const void *buf, size_t len, char *err, size_t errlen);
const char *sp_plan_string(const struct sp_plan *plan, uint32_t index);

/* ---- values: what a read returned, for the page == syscall check --------------------- */
#define SP_VALUE_TEXT 72
struct sp_value {
	uint32_t fields;         /* the fields this value holds */
	uint64_t hash;           /* FNV-1a over (field id, field value) for every field held */
	char text[SP_VALUE_TEXT];/* a readable rendering of the first field, for reports */
};
void sp_value_reset(struct sp_value *v, uint32_t fields);
void sp_value_add_int(struct sp_value *v, enum sp_field f, int64_t n);
void sp_value_add_str(struct sp_value *v, enum sp_field f, const char *s, size_t maxlen);

/* ---- the syscall implementation (sp_host_<os>.c) ------------------------------------- */
/* Which fields a host op can answer (so the check compares only what both sides know). */
uint32_t sp_host_fields(enum sp_host_op op);
/* Issue op. arg is the class's string (sysctl name) or the op's (title, hostname).
 * want: the fields to put into out (NULL out: do not build a value, the timed path).
 * Returns 0, or -errno. */
int sp_host_issue(enum sp_host_op op, const char *arg, uint32_t want, struct sp_value *out);
/* Can this process issue a state-changing op without changing the host?
 * (sethostname: only in a private UTS namespace.) Returns NULL when yes, else the reason. */
const char *sp_host_unsafe_reason(enum sp_host_op op);
/* Enter a private UTS namespace (Linux: unshare(CLONE_NEWUTS)). 0 or -errno. */
int sp_host_private_uts(void);
/* The process/thread title: save and restore around a replay. */
int sp_host_title_save(char *buf, size_t len);
int sp_host_title_restore(const char *buf);

/* ---- the simulated kernel side (sp_kside.c) ------------------------------------------ */
struct sp_kside;
/* Start the kernel side for the calling process: memfd pages filled with this process's
 * pid, ppid, ids, hostname ..., sealed F_SEAL_FUTURE_WRITE, mapped read-only here.
 * locking: a scheme name of sp_page.h ("seqlock"). NULL on error with err set. */
struct sp_kside *sp_kside_start(const char *locking, char *err, size_t errlen);
void sp_kside_stop(struct sp_kside *k);
/* The mappings: proc_ro and sys_ro read-only, proc_rw read-write. The engine reads and
 * writes them with sp_page.h's functions (the timed page path). */
void *sp_kside_page(struct sp_kside *k, enum sp_page_kind page);
size_t sp_kside_page_bytes(struct sp_kside *k, enum sp_page_kind page);
int sp_kside_page_fd(struct sp_kside *k, enum sp_page_kind page);  /* the memfd (sealed for the ro pages) */
enum sp_scheme sp_kside_scheme(struct sp_kside *k);
/* A state change the kernel side applies (sethostname, credentials): blocks until applied.
 * 0 or -errno. */
int sp_kside_follow(struct sp_kside *k, enum sp_host_op op, const char *arg);
/* The kernel side's bounded read of the title page (what ps does); returns the length,
 * *source is enum sp_title_source. */
size_t sp_kside_read_title(struct sp_kside *k, char *buf, size_t len, int *source);
pid_t sp_kside_pid(struct sp_kside *k);

struct sp_kernel_page;  /* below: the patched kernel's pages */

/* ---- one replay process (sp_run.c) ---------------------------------------------------- */
struct sp_run_config {
	uint32_t proc;           /* which traced process of the plan to replay */
	int mode;                /* enum sp_mode */
	int impls;               /* bit set of 1 << enum sp_impl */
	uint32_t samples;        /* measured samples per implementation */
	uint32_t warmups;        /* unmeasured passes per implementation first */
	uint32_t warmup_samples; /* whole samples taken first and discarded (after calibration) */
	uint64_t min_sample_ns;  /* loops per sample are calibrated to reach this */
	uint64_t max_gap_ns;     /* paced mode: longer recorded gaps are cut to this */
	const char *locking;     /* page locking scheme */
	int check;               /* run the value-check pass */
	/* pyperf calibrates loops until one value lasts long enough; a value here is per class,
	 * so loops are also raised until every timed class of a thread accumulates at least
	 * min_class_ns per sample (0: off), without a sample passing max_sample_ns (0: no cap). */
	uint64_t min_class_ns;
	uint64_t max_sample_ns;
	/* CPU pinning for the timed passes (sched_setaffinity(2)): thread k of the process on
	 * cpus[k % n_cpus], the kernel side on cpus[0]. Applied after the value check, so that
	 * hw.ncpu (sched_getaffinity) is checked against the unpinned mask. n_cpus 0: no pinning;
	 * a CPU of -1 leaves that thread (or, for cpus[0], the kernel side) to the scheduler. */
	const int *cpus;
	uint32_t n_cpus;
	/* The page-kernel implementation (sp_kernel_page.c), NULL when this build or kernel has
	 * none: then SP_IMPL_PAGE_KERNEL skips every class. */
	const struct sp_kernel_page *kernel_page;
};

struct sp_class_result {
	uint64_t replayed;       /* ops of this class issued per pass */
	uint64_t skipped;
	const char *skip_reason; /* static string, NULL when none skipped */
	int skip[SP_IMPL_COUNT]; /* 1: this implementation does not issue the class here */
	uint64_t checked;
	uint64_t mismatches;
	struct sp_value first_page, first_syscall;  /* the first mismatch */
	double *samples[SP_IMPL_COUNT];  /* samples ns per call, malloc'd (NULL when none) */
	uint32_t n_samples[SP_IMPL_COUNT];
	/* page-kernel: its own value check against the system call, and why it skips */
	uint64_t kernel_checked;
	uint64_t kernel_mismatches;
	struct sp_value first_kernel, first_kernel_syscall;
	const char *kernel_skip_reason;
};

struct sp_run_result {
	uint32_t n_classes;
	struct sp_class_result *classes; /* n_classes, malloc'd */
	double timer_overhead_ns;
	uint64_t loops[SP_IMPL_COUNT];   /* plan passes per sample (max over threads) */
	int uts_private;                 /* 1 when sethostname ran in a private UTS namespace */
	uint32_t n_threads;
	pid_t replay_pid;
	pid_t kside_pid;
	int *thread_cpus;                /* n_threads: the CPU each thread's last sample ran on */
	/* The machine reference (docs/replay.md "Machine reference"): in every kept sample the
	 * process's first thread times a raw getpid(2) loop ([0]) and the bare page-read loop
	 * ([1]) on its CPU, ns per call; n_reference values each, malloc'd. */
	double *reference_ns[2];
	uint32_t n_reference;
	int pinned;                      /* 1 when every thread was pinned as asked */
};

/* Replay one traced process of the plan. Returns 0, or -1 with err set. */
int sp_run_process(const struct sp_plan *plan, const struct sp_run_config *cfg,
		   struct sp_run_result *res, char *err, size_t errlen);
void sp_run_result_free(struct sp_run_result *res);
/* Timer overhead: the mean clock-pair time of back-to-back reads (interrupted pairs left out),
 * ns, from n pairs (sp_clock_overhead_ns: 20,001). */
double sp_clock_overhead_ns(void);
double sp_clock_overhead_ns_n(unsigned n);

/* ---- the patched kernel's pages (sp_kernel_page.c; issue 10, docs/kernel.md) ----------
 * Linked only into the static program that runs inside the patched kernel's VM. */
struct sp_kernel_page {
	/* NULL when the class can be served from the kernel's pages, else why not (static). */
	const char *(*unsupported)(const struct sp_plan_class *c);
	/* One call: read (want fields into out, or into a sink when out is NULL) or write the
	 * title page. Falls back to the system call when the page is marked invalid. 0/-errno. */
	int (*issue)(const struct sp_plan_class *c, const char *arg, uint32_t want, struct sp_value *out);
	/* count reads of one word field (the timed path's run, like the simulated page's). */
	void (*run_word)(enum sp_field f, uint64_t count);
};
/* The pages of this process (getauxval AT_SYSPAGE_*), or NULL with err set when absent. */
const struct sp_kernel_page *sp_kernel_page_open(char *err, size_t errlen);

/* ---- baselines for bench/bench_replay.py (sp_bench.c) --------------------------------- */
double sp_bench_page_loop(struct sp_kside *k, enum sp_field field, uint64_t n, double overhead_ns);
double sp_bench_syscall_loop(int which, uint64_t n, double overhead_ns);
void sp_bench_timeline(struct sp_kside *k, uint64_t n_batches, uint64_t interval_ns, uint64_t n_sys,
		       uint64_t n_page, const int *cpus, int n_cpus, double overhead_ns,
		       double *t_ns, double *sys_ns, double *page_ns, int *cpu);

#endif
