/* The three shared pages of the 2007 FreeBSD proposal, and the locking schemes that keep
 * readers from seeing torn data (issue 8).
 *
 *   proc_ro  per-process, read-only for the process, written by the kernel
 *            (pid, ppid, uid, euid, suid, gid, egid, sgid, pgid, sid, issetugid, login ...)
 *   sys_ro   system-wide, read-only, written by the kernel
 *            (hostname, domainname, sysname, osrelease, version, machine ..., pagesize, ncpu)
 *   proc_rw  per-process, written by the process (its title, its 16-byte comm),
 *            read by the kernel the way ps(1) reads kern.proc.args
 *
 * Every page starts with the same 64-byte header (magic, layout version, size) so a
 * reader built for an older layout can tell which fields a newer writer fills.
 * Positions are offsets, never pointers: the page is a memfd mapped into two processes.
 *
 * Locking schemes (enum sp_scheme), all behind the same reader and writer functions:
 *   SP_SCHEME_PAGE   one sequence counter per page (Linux seqcount, include/linux/seqlock.h:
 *                    read_seqcount_begin / read_seqcount_retry, write_seqcount_begin/end).
 *   SP_SCHEME_FIELD  one sequence counter per field ("micro-locking"): a field is never
 *                    torn, but a read of several fields is not one snapshot.
 *   SP_SCHEME_WORD   word fields are one aligned 64-bit word each, read with one relaxed
 *                    atomic load (single-copy atomic on x86-64 and AArch64, no lock);
 *                    strings share one sequence counter per page.
 *   SP_SCHEME_HYBRID SP_SCHEME_PAGE's layout and writer, but a single word field is read
 *                    with one relaxed load as in SP_SCHEME_WORD (getpid, getuid ...), while
 *                    multi-field reads (sp_page_read_words) and strings use the page counter:
 *                    the lock-free word read and a consistent snapshot where one is needed.
 *   SP_SCHEME_RING   a generation ring in the style of FreeBSD's timekeep
 *                    (sys/kern/kern_tc.c tc_fill_vdso_timehands, sys/kern/kern_sharedpage.c
 *                    timehands_update, lib/libc/sys/__vdso_gettimeofday.c binuptime):
 *                    SP_RING_SLOTS copies of the page content; the writer fills the next
 *                    slot (its generation 0 while it writes), publishes its generation, then
 *                    makes it current. A reader reads the current slot and retries only if
 *                    the writer lapped the whole ring during the read.
 * The memory-ordering argument for each is in docs/locking.md.
 *
 * Readers of the kernel-written pages (proc_ro, sys_ro) trust the writer and retry until
 * they get a consistent copy; they return the number of retries. The kernel-side reader of
 * the user-written title page (sp_title_read_bounded) trusts nothing on the page: bounded
 * copy, bounded retries, then the caller's fallback, always NUL-terminated.
 *
 * Writers. A seqcount (and the ring's generation) allows one writer at a time: two
 * writers that both increment the counter with a plain load and store can lose an
 * increment and leave it odd for ever, and every reader then spins (Linux requires the
 * same: seqcount writers are serialised by an outer lock, include/linux/seqlock.h).
 *   proc_ro, sys_ro  one writer by construction (the kernel holds its process or UTS
 *                    lock; here the one kernel-side process): the fast path, no atomic
 *                    read-modify-write.
 *   proc_rw          written by the process itself, by ANY of its threads (the replay runs
 *                    one thread per traced thread, and redis names its bio threads with
 *                    prctl(PR_SET_NAME) from four threads). Its writers take the header's
 *                    `wlock` (a test-and-test-and-set spinlock, acquire on taking, release
 *                    on dropping) around the whole update, in every scheme: what libc's
 *                    setproctitle(3) would do with a process-private mutex. The kernel-side
 *                    reader never takes it (the page is untrusted; it stays bounded).
 * Which rule applies is decided by the page kind of the fields written (sp_fields[].kind),
 * never by the page's own header. Readers are any number and never write.
 *
 * C symbols are sp_page_* / sp_title_* (../shared/STYLE.md). The hot readers are static
 * inline here so the replay loop can inline them; writers live in sp_page.c. */
#ifndef SP_PAGE_H
#define SP_PAGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SP_PAGE_MAGIC 0x47505053u /* "SPPG" little-endian */
#define SP_PAGE_LAYOUT_VERSION 1
#define SP_PAGE_SIZE 4096u         /* the unit mappings are rounded to */
#define SP_RING_SLOTS 4u           /* FreeBSD: VDSO_TH_NUM is 4 (sys/sys/vdso.h) */

/* String buffer sizes (bytes, including the terminating NUL), after FreeBSD's limits:
 * MAXHOSTNAMELEN 256 (sys/sys/param.h), MAXLOGNAME 33 (sys/sys/param.h, rounded up to a
 * word here), SPT_BUFSIZE 2048 (lib/libc/gen/setproctitle.c), Linux TASK_COMM_LEN 16. */
#define SP_HOSTNAME_MAX 256
#define SP_DOMAINNAME_MAX 256
#define SP_SYSNAME_MAX 32
#define SP_OSRELEASE_MAX 32
#define SP_VERSION_MAX 256
#define SP_MACHINE_MAX 32
#define SP_MACHINE_ARCH_MAX 32
#define SP_LOGIN_MAX 40
#define SP_TITLE_MAX 2048
#define SP_COMM_MAX 16

enum sp_scheme {
    SP_SCHEME_PAGE = 0,  /* default */
    SP_SCHEME_FIELD = 1,
    SP_SCHEME_WORD = 2,
    SP_SCHEME_RING = 3,
    SP_SCHEME_HYBRID = 4, /* added after the first four: the ids above never change */
    SP_SCHEME_COUNT
};

enum sp_page_kind {
    SP_PAGE_PROC_RO = 0,
    SP_PAGE_SYS_RO = 1,
    SP_PAGE_PROC_RW = 2,
    SP_PAGE_KIND_COUNT
};

/* Field ids. Names match syspage/catalog.toml `fields` (nodename = hostname,
 * release = osrelease, ostype = sysname); sp_field_from_name() accepts both. */
enum sp_field {
    /* proc_ro words */
    SP_F_PID = 0, SP_F_PPID, SP_F_UID, SP_F_EUID, SP_F_SUID, SP_F_GID, SP_F_EGID, SP_F_SGID,
    SP_F_PGID, SP_F_SID, SP_F_ISSETUGID, SP_F_PS_STRINGS, SP_F_USRSTACK,
    /* proc_ro strings */
    SP_F_LOGIN,
    /* sys_ro words */
    SP_F_OSREVISION, SP_F_OSRELDATE, SP_F_BOOTTIME_US, SP_F_PAGESIZE, SP_F_NCPU,
    /* sys_ro strings */
    SP_F_HOSTNAME, SP_F_DOMAINNAME, SP_F_SYSNAME, SP_F_OSRELEASE, SP_F_VERSION,
    SP_F_MACHINE, SP_F_MACHINE_ARCH,
    /* proc_rw strings (written by the process) */
    SP_F_TITLE, SP_F_COMM,
    SP_FIELD_COUNT
};

/* The content of each page: the same in every scheme (FIELD interleaves a counter before
 * each field, RING keeps SP_RING_SLOTS copies). Every word field is one aligned 64-bit
 * word, so SP_SCHEME_WORD can read it with one load: boottime is therefore microseconds
 * since the epoch in one word, not a two-word struct timeval. */
struct sp_proc_ro_data {
    uint64_t pid, ppid, uid, euid, suid, gid, egid, sgid, pgid, sid, issetugid, ps_strings, usrstack;
    char login[SP_LOGIN_MAX];
};

struct sp_sys_ro_data {
    uint64_t osrevision, osreldate, boottime_us, pagesize, ncpu;
    char hostname[SP_HOSTNAME_MAX];
    char domainname[SP_DOMAINNAME_MAX];
    char sysname[SP_SYSNAME_MAX];
    char osrelease[SP_OSRELEASE_MAX];
    char version[SP_VERSION_MAX];
    char machine[SP_MACHINE_MAX];
    char machine_arch[SP_MACHINE_ARCH_MAX];
};

struct sp_proc_rw_data {
    char title[SP_TITLE_MAX];
    char comm[SP_COMM_MAX];
};

/* Offset 0 of every page, every scheme: one cache line. */
struct sp_page_header {
    uint32_t magic;        /* SP_PAGE_MAGIC */
    uint16_t version;      /* SP_PAGE_LAYOUT_VERSION */
    uint16_t header_size;  /* sizeof(struct sp_page_header) */
    uint32_t size;         /* bytes of the page the writer fills (header included) */
    uint8_t kind;          /* enum sp_page_kind */
    uint8_t scheme;        /* enum sp_scheme */
    uint8_t ring_slots;    /* SP_RING_SLOTS for SP_SCHEME_RING, else 0 */
    uint8_t flags;         /* SP_PAGE_F_* */
    uint32_t seq;          /* PAGE: the page counter; WORD: the strings' counter */
    uint32_t ring_current; /* RING: index of the published slot */
    uint32_t ring_gen;     /* RING: last generation handed out (writer-private) */
    uint32_t wlock;        /* proc_rw: the writers' spinlock (0 free, 1 held); see "Writers" above */
    uint64_t updates;      /* writes made, for tests and the stress sweep */
    uint8_t reserved[24];
};
#define SP_PAGE_F_VALID 0x1 /* cleared: the page does not describe this process */

/* A RING slot: the generation (0 while the writer fills it) then one copy of the content. */
#define SP_RING_SLOT_HEADER 8u

struct sp_field_desc {
    const char *name;
    uint8_t kind;      /* enum sp_page_kind */
    uint8_t is_string;
    uint8_t rank;      /* position among its page's fields (FIELD scheme layout) */
    uint16_t size;     /* bytes: 8 for words, the buffer size for strings */
    uint16_t offset;   /* offset in the page's content struct */
};

#define SP_FD_W(id, nm, k, r, st, m) [id] = {nm, k, 0, r, 8, (uint16_t)offsetof(st, m)}
#define SP_FD_S(id, nm, k, r, st, m) [id] = {nm, k, 1, r, (uint16_t)sizeof(((st *)0)->m), (uint16_t)offsetof(st, m)}
static const struct sp_field_desc sp_fields[SP_FIELD_COUNT] = {
    SP_FD_W(SP_F_PID, "pid", SP_PAGE_PROC_RO, 0, struct sp_proc_ro_data, pid),
    SP_FD_W(SP_F_PPID, "ppid", SP_PAGE_PROC_RO, 1, struct sp_proc_ro_data, ppid),
    SP_FD_W(SP_F_UID, "uid", SP_PAGE_PROC_RO, 2, struct sp_proc_ro_data, uid),
    SP_FD_W(SP_F_EUID, "euid", SP_PAGE_PROC_RO, 3, struct sp_proc_ro_data, euid),
    SP_FD_W(SP_F_SUID, "suid", SP_PAGE_PROC_RO, 4, struct sp_proc_ro_data, suid),
    SP_FD_W(SP_F_GID, "gid", SP_PAGE_PROC_RO, 5, struct sp_proc_ro_data, gid),
    SP_FD_W(SP_F_EGID, "egid", SP_PAGE_PROC_RO, 6, struct sp_proc_ro_data, egid),
    SP_FD_W(SP_F_SGID, "sgid", SP_PAGE_PROC_RO, 7, struct sp_proc_ro_data, sgid),
    SP_FD_W(SP_F_PGID, "pgid", SP_PAGE_PROC_RO, 8, struct sp_proc_ro_data, pgid),
    SP_FD_W(SP_F_SID, "sid", SP_PAGE_PROC_RO, 9, struct sp_proc_ro_data, sid),
    SP_FD_W(SP_F_ISSETUGID, "issetugid", SP_PAGE_PROC_RO, 10, struct sp_proc_ro_data, issetugid),
    SP_FD_W(SP_F_PS_STRINGS, "ps_strings", SP_PAGE_PROC_RO, 11, struct sp_proc_ro_data, ps_strings),
    SP_FD_W(SP_F_USRSTACK, "usrstack", SP_PAGE_PROC_RO, 12, struct sp_proc_ro_data, usrstack),
    SP_FD_S(SP_F_LOGIN, "login", SP_PAGE_PROC_RO, 13, struct sp_proc_ro_data, login),
    SP_FD_W(SP_F_OSREVISION, "osrevision", SP_PAGE_SYS_RO, 0, struct sp_sys_ro_data, osrevision),
    SP_FD_W(SP_F_OSRELDATE, "osreldate", SP_PAGE_SYS_RO, 1, struct sp_sys_ro_data, osreldate),
    SP_FD_W(SP_F_BOOTTIME_US, "boottime", SP_PAGE_SYS_RO, 2, struct sp_sys_ro_data, boottime_us),
    SP_FD_W(SP_F_PAGESIZE, "pagesize", SP_PAGE_SYS_RO, 3, struct sp_sys_ro_data, pagesize),
    SP_FD_W(SP_F_NCPU, "ncpu", SP_PAGE_SYS_RO, 4, struct sp_sys_ro_data, ncpu),
    SP_FD_S(SP_F_HOSTNAME, "hostname", SP_PAGE_SYS_RO, 5, struct sp_sys_ro_data, hostname),
    SP_FD_S(SP_F_DOMAINNAME, "domainname", SP_PAGE_SYS_RO, 6, struct sp_sys_ro_data, domainname),
    SP_FD_S(SP_F_SYSNAME, "sysname", SP_PAGE_SYS_RO, 7, struct sp_sys_ro_data, sysname),
    SP_FD_S(SP_F_OSRELEASE, "osrelease", SP_PAGE_SYS_RO, 8, struct sp_sys_ro_data, osrelease),
    SP_FD_S(SP_F_VERSION, "version", SP_PAGE_SYS_RO, 9, struct sp_sys_ro_data, version),
    SP_FD_S(SP_F_MACHINE, "machine", SP_PAGE_SYS_RO, 10, struct sp_sys_ro_data, machine),
    SP_FD_S(SP_F_MACHINE_ARCH, "machine_arch", SP_PAGE_SYS_RO, 11, struct sp_sys_ro_data, machine_arch),
    SP_FD_S(SP_F_TITLE, "title", SP_PAGE_PROC_RW, 0, struct sp_proc_rw_data, title),
    SP_FD_S(SP_F_COMM, "comm", SP_PAGE_PROC_RW, 1, struct sp_proc_rw_data, comm),
};
#undef SP_FD_W
#undef SP_FD_S

/* ---- layout and set-up (sp_page.c) ------------------------------------------------- */

extern const char *const sp_scheme_names[SP_SCHEME_COUNT]; /* "page" "field" "word" "ring" "hybrid" */
extern const char *const sp_page_kind_names[SP_PAGE_KIND_COUNT]; /* "proc_ro" "sys_ro" "proc_rw" */

int sp_scheme_from_name(const char *name);     /* -1 if unknown */
int sp_field_from_name(const char *name);      /* -1 if unknown; catalog aliases accepted */
size_t sp_page_content_bytes(enum sp_page_kind kind);
/* Bytes the page uses in this scheme (header included), and the mapping size (rounded up
 * to SP_PAGE_SIZE): what memfd_create/ftruncate/mmap need. */
size_t sp_page_used_bytes(enum sp_page_kind kind, enum sp_scheme scheme);
size_t sp_page_map_bytes(enum sp_page_kind kind, enum sp_scheme scheme);
/* Zero the mapping and write the header (flags = SP_PAGE_F_VALID). -1 if bytes is too
 * small or kind/scheme out of range. Call before any reader maps the page. */
int sp_page_init(void *page, size_t bytes, enum sp_page_kind kind, enum sp_scheme scheme);
/* 0 if the header says this kind and scheme with a layout this code reads, else -1. */
int sp_page_check(const void *page, size_t bytes, enum sp_page_kind kind, enum sp_scheme scheme);

/* ---- writers (sp_page.c) ------------------------------------------------------------ */

/* One update of a batch: a word (value) or a string (str, len bytes, no NUL needed). */
struct sp_update {
    enum sp_field field;
    uint64_t value;
    const char *str;
    size_t len;
};

/* The kernel-side writer (proc_ro, sys_ro) and, for proc_rw, the process-side writer.
 * A batch is one critical section in PAGE and WORD-strings, one slot in RING, one per
 * field in FIELD (and no lock at all for words in WORD). Strings longer than their
 * buffer are cut to size - 1. All fields of a batch must be on the same page. */
void sp_page_write(void *page, enum sp_scheme scheme, const struct sp_update *updates, unsigned n);
void sp_page_write_word(void *page, enum sp_scheme scheme, enum sp_field field, uint64_t value);
void sp_page_write_string(void *page, enum sp_scheme scheme, enum sp_field field, const char *s, size_t len);
/* setproctitle(3) / prctl(PR_SET_NAME) on the process's own title page. */
void sp_title_write(void *page, enum sp_scheme scheme, const char *title, size_t len);
void sp_comm_write(void *page, enum sp_scheme scheme, const char *comm, size_t len);

/* ---- the kernel-side reader of the user-written title page (sp_page.c) ------------- */

enum sp_title_source {
    SP_TITLE_FROM_PAGE = 0,     /* a consistent copy of the title the process wrote */
    SP_TITLE_FROM_FALLBACK = 1, /* empty, never settled, or a bad header: "[comm]" */
};

struct sp_title_result {
    unsigned retries;           /* attempts beyond the first */
    int source;                 /* enum sp_title_source */
    size_t len;                 /* strlen(out) */
    int unterminated;           /* the page's title filled its buffer with no NUL (cut, not an error) */
    int bad_header;             /* magic/version/kind/scheme wrong, or ring index out of range */
};

/* What ps(1) does, done safely: copy at most SP_TITLE_MAX bytes with relaxed loads (never
 * a byte outside the mapping, whatever the page says), retry at most max_retries times
 * while the counter is odd or moved, then give up and write "[fallback]" -- the kernel's
 * own copy of the command name in square brackets, as FreeBSD ps(1) shows a process whose
 * arguments it cannot read (bin/ps/fmt.c fmt_argv: sprintf(cp, "[%.*s]", maxlen, cmd)).
 * An empty title also gives the fallback. out is always NUL-terminated (outsz >= 1).
 * Returns res->source. */
int sp_title_read_bounded(const void *page, size_t page_bytes, enum sp_scheme scheme,
                          char *out, size_t outsz, unsigned max_retries,
                          const char *fallback, struct sp_title_result *res);

/* ---- readers (hot path, inline) ----------------------------------------------------- */
/* Memory ordering (Boehm, "Can seqlocks get along with programming language memory
 * models?", MSPC 2012; Linux include/linux/seqlock.h):
 *   reader: s = load_acquire(seq); data = relaxed loads; fence(acquire); load(seq) == s
 *   writer: store(seq, s+1); fence(release); data = relaxed stores; store_release(seq, s+2)
 * The data are copied with relaxed atomic loads (so the concurrent write is not a C11
 * data race) 8 bytes at a time: every field is 8-byte aligned and its size a multiple of 8. */

#define SP_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define SP_LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define SP_FENCE_ACQ() __atomic_thread_fence(__ATOMIC_ACQUIRE)

static inline void sp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline const unsigned char *sp_page_content(const void *page)
{
    return (const unsigned char *)page + sizeof(struct sp_page_header);
}

/* Where a field's bytes are in a PAGE or WORD page (and in a RING slot's content). */
static inline const unsigned char *sp_page_field_ptr(const void *page, enum sp_field f)
{
    return sp_page_content(page) + sp_fields[f].offset;
}

/* FIELD scheme: each field is preceded by its own 8-byte counter cell. */
static inline const uint32_t *sp_page_field_seq(const void *page, enum sp_field f)
{
    return (const uint32_t *)(sp_page_content(page) + sp_fields[f].offset + 8u * sp_fields[f].rank);
}

static inline const unsigned char *sp_page_field_cell_data(const void *page, enum sp_field f)
{
    return sp_page_content(page) + sp_fields[f].offset + 8u * sp_fields[f].rank + 8u;
}

static inline size_t sp_content_bytes(enum sp_page_kind kind)
{
    switch (kind) {
    case SP_PAGE_SYS_RO: return sizeof(struct sp_sys_ro_data);
    case SP_PAGE_PROC_RW: return sizeof(struct sp_proc_rw_data);
    case SP_PAGE_PROC_RO:
    default: return sizeof(struct sp_proc_ro_data);
    }
}

/* RING: slot i starts at content + i * sp_ring_slot_bytes(kind); 8-byte aligned. */
static inline size_t sp_ring_slot_bytes(enum sp_page_kind kind)
{
    return SP_RING_SLOT_HEADER + sp_content_bytes(kind);
}

/* Mask with bit 7 of the first zero byte of w set (bits above it may be set too: only the
 * lowest is exact); 0 if w has no zero byte. The classic has-zero test. */
static inline uint64_t sp_word_nul_mask(uint64_t w)
{
    return (w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull;
}

static inline int sp_word_has_nul(uint64_t w)
{
    return sp_word_nul_mask(w) != 0;
}

/* Copy a string field of size bytes (a multiple of 8) at src into out (outsz >= 1) with
 * relaxed 8-byte loads, stopping at the word that holds the first NUL. Always terminates
 * out; returns the length written. A torn copy is caught by the caller's counter check, so
 * this never looks at content beyond the field. */
static inline size_t sp_copy_string_relaxed(char *out, size_t outsz, const unsigned char *src, size_t size)
{
    const uint64_t *w = (const uint64_t *)src;
    size_t words = size / 8, n = 0, limit = outsz - 1;
    for (size_t i = 0; i < words && n < limit; i++) {
        uint64_t v = SP_LOAD_RLX(&w[i]);
        uint64_t nul = sp_word_nul_mask(v);
        size_t take = limit - n < 8 ? limit - n : 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (nul) {
            size_t at = (size_t)__builtin_ctzll(nul) / 8; /* index of the first NUL byte */
            if (at < take)
                take = at;
            memcpy(out + n, &v, take);
            n += take;
            break;
        }
#else
        if (nul) {
            const unsigned char *b = (const unsigned char *)&v;
            size_t at = 0;
            while (at < 8 && b[at])
                at++;
            if (at < take)
                take = at;
            memcpy(out + n, &v, take);
            n += take;
            break;
        }
#endif
        if (take == 8)
            memcpy(out + n, &v, 8); /* a constant size: one store */
        else
            memcpy(out + n, &v, take);
        n += take;
    }
    out[n] = '\0';
    return n;
}

/* -- SP_SCHEME_PAGE: one counter per page (Linux read_seqcount_begin/retry) -- */
static inline unsigned sp_page_read_word_page(const void *page, enum sp_field f, uint64_t *out)
{
    const struct sp_page_header *h = (const struct sp_page_header *)page;
    const uint64_t *w = (const uint64_t *)sp_page_field_ptr(page, f);
    unsigned retries = 0;
    for (;;) {
        uint32_t s = SP_LOAD_ACQ(&h->seq);
        if (s & 1u) {
            retries++;
            sp_cpu_relax();
            continue;
        }
        uint64_t v = SP_LOAD_RLX(w);
        SP_FENCE_ACQ();
        if (SP_LOAD_RLX(&h->seq) == s) {
            *out = v;
            return retries;
        }
        retries++;
    }
}

static inline unsigned sp_page_read_string_page(const void *page, enum sp_field f, char *out, size_t outsz)
{
    const struct sp_page_header *h = (const struct sp_page_header *)page;
    const unsigned char *src = sp_page_field_ptr(page, f);
    unsigned retries = 0;
    for (;;) {
        uint32_t s = SP_LOAD_ACQ(&h->seq);
        if (s & 1u) {
            retries++;
            sp_cpu_relax();
            continue;
        }
        sp_copy_string_relaxed(out, outsz, src, sp_fields[f].size);
        SP_FENCE_ACQ();
        if (SP_LOAD_RLX(&h->seq) == s)
            return retries;
        retries++;
    }
}

/* -- SP_SCHEME_FIELD: one counter per field -- */
static inline unsigned sp_page_read_word_field(const void *page, enum sp_field f, uint64_t *out)
{
    const uint32_t *seq = sp_page_field_seq(page, f);
    const uint64_t *w = (const uint64_t *)sp_page_field_cell_data(page, f);
    unsigned retries = 0;
    for (;;) {
        uint32_t s = SP_LOAD_ACQ(seq);
        if (s & 1u) {
            retries++;
            sp_cpu_relax();
            continue;
        }
        uint64_t v = SP_LOAD_RLX(w);
        SP_FENCE_ACQ();
        if (SP_LOAD_RLX(seq) == s) {
            *out = v;
            return retries;
        }
        retries++;
    }
}

static inline unsigned sp_page_read_string_field(const void *page, enum sp_field f, char *out, size_t outsz)
{
    const uint32_t *seq = sp_page_field_seq(page, f);
    const unsigned char *src = sp_page_field_cell_data(page, f);
    unsigned retries = 0;
    for (;;) {
        uint32_t s = SP_LOAD_ACQ(seq);
        if (s & 1u) {
            retries++;
            sp_cpu_relax();
            continue;
        }
        sp_copy_string_relaxed(out, outsz, src, sp_fields[f].size);
        SP_FENCE_ACQ();
        if (SP_LOAD_RLX(seq) == s)
            return retries;
        retries++;
    }
}

/* -- SP_SCHEME_WORD: one relaxed load for a word; strings as SP_SCHEME_PAGE -- */
static inline unsigned sp_page_read_word_word(const void *page, enum sp_field f, uint64_t *out)
{
    /* Single-copy atomic: an aligned 64-bit load is one access on x86-64 (SDM vol. 3A
     * 9.1.1) and AArch64 (ARM ARM B2.2.1); the atomic builtin also keeps the compiler
     * from splitting or repeating it. Nothing else is read, so no ordering is needed. */
    *out = SP_LOAD_RLX((const uint64_t *)sp_page_field_ptr(page, f));
    return 0;
}

static inline unsigned sp_page_read_string_word(const void *page, enum sp_field f, char *out, size_t outsz)
{
    return sp_page_read_string_page(page, f, out, outsz);
}

/* -- SP_SCHEME_RING: FreeBSD timekeep-style generation ring -- */
static inline const unsigned char *sp_ring_slot_of(const void *page, enum sp_page_kind kind, uint32_t idx)
{
    return sp_page_content(page) + (size_t)idx * sp_ring_slot_bytes(kind);
}

static inline unsigned sp_page_read_word_ring(const void *page, enum sp_field f, uint64_t *out)
{
    const struct sp_page_header *h = (const struct sp_page_header *)page;
    enum sp_page_kind kind = (enum sp_page_kind)sp_fields[f].kind;
    unsigned retries = 0;
    for (;;) {
        uint32_t idx = SP_LOAD_ACQ(&h->ring_current) % SP_RING_SLOTS;
        const unsigned char *slot = sp_ring_slot_of(page, kind, idx);
        const uint32_t *gen = (const uint32_t *)slot;
        uint32_t g = SP_LOAD_ACQ(gen);
        if (g != 0) {
            uint64_t v = SP_LOAD_RLX((const uint64_t *)(slot + SP_RING_SLOT_HEADER + sp_fields[f].offset));
            SP_FENCE_ACQ();
            if (SP_LOAD_RLX(gen) == g) {
                *out = v;
                return retries;
            }
        }
        retries++; /* the writer lapped the ring while we read this slot */
    }
}

static inline unsigned sp_page_read_string_ring(const void *page, enum sp_field f, char *out, size_t outsz)
{
    const struct sp_page_header *h = (const struct sp_page_header *)page;
    enum sp_page_kind kind = (enum sp_page_kind)sp_fields[f].kind;
    unsigned retries = 0;
    for (;;) {
        uint32_t idx = SP_LOAD_ACQ(&h->ring_current) % SP_RING_SLOTS;
        const unsigned char *slot = sp_ring_slot_of(page, kind, idx);
        const uint32_t *gen = (const uint32_t *)slot;
        uint32_t g = SP_LOAD_ACQ(gen);
        if (g != 0) {
            sp_copy_string_relaxed(out, outsz, slot + SP_RING_SLOT_HEADER + sp_fields[f].offset, sp_fields[f].size);
            SP_FENCE_ACQ();
            if (SP_LOAD_RLX(gen) == g)
                return retries;
        }
        retries++;
    }
}

/* -- scheme dispatch: what the engine calls -- */

/* Read one word field (f must be a word field) into *out; returns the retries. */
static inline unsigned sp_page_read_word(const void *page, enum sp_scheme scheme, enum sp_field f, uint64_t *out)
{
    switch (scheme) {
    case SP_SCHEME_FIELD: return sp_page_read_word_field(page, f, out);
    case SP_SCHEME_WORD:
    case SP_SCHEME_HYBRID: return sp_page_read_word_word(page, f, out);
    case SP_SCHEME_RING: return sp_page_read_word_ring(page, f, out);
    case SP_SCHEME_PAGE:
    default: return sp_page_read_word_page(page, f, out);
    }
}

/* Read one string field into out (outsz >= 1, always NUL-terminated, cut to outsz - 1);
 * returns the retries. */
static inline unsigned sp_page_read_string(const void *page, enum sp_scheme scheme, enum sp_field f, char *out, size_t outsz)
{
    switch (scheme) {
    case SP_SCHEME_FIELD: return sp_page_read_string_field(page, f, out, outsz);
    case SP_SCHEME_WORD: return sp_page_read_string_word(page, f, out, outsz);
    case SP_SCHEME_RING: return sp_page_read_string_ring(page, f, out, outsz);
    case SP_SCHEME_PAGE:
    default: return sp_page_read_string_page(page, f, out, outsz);
    }
}

/* Bounded readers, for paths that must not hang whatever the page says (the replay
 * engine's value check): at most max_retries further attempts while the counter is odd or
 * moved (the ring slot's generation 0 or moved), yielding the CPU now and then so that a
 * descheduled writer can finish. Return the retries, or -1 after giving up (out is then
 * "" / 0). The inline readers above spin until they succeed: they trust the writer. */
long sp_page_read_word_bounded(const void *page, enum sp_scheme scheme, enum sp_field f, uint64_t *out,
                               unsigned long max_retries);
long sp_page_read_string_bounded(const void *page, enum sp_scheme scheme, enum sp_field f, char *out,
                                 size_t outsz, unsigned long max_retries);

/* Read n word fields of one page (getresuid: uid, euid, suid). PAGE and RING give one
 * consistent snapshot; FIELD and WORD read each field on its own (each value is whole,
 * but the set may mix two updates: see docs/locking.md). Returns the total retries. */
unsigned sp_page_read_words(const void *page, enum sp_scheme scheme, const enum sp_field *fields,
                            unsigned n, uint64_t *out);

/* The Python wrappers (sp_page_py.c), registered by sp_module.c's PyInit. */
#ifdef Py_PYTHON_H
int sp_page_py_register(PyObject *module);
#endif

#endif
