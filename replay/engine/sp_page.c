/* The shared pages' layout, writers, the multi-field reader and the kernel-side bounded
 * reader of the user-written title page. The hot single-field readers are inline in
 * sp_page.h; the memory-ordering argument for every scheme is in docs/locking.md. */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "sp_page.h"

_Static_assert(sizeof(struct sp_page_header) == 64, "the header is one cache line");
_Static_assert(sizeof(struct sp_proc_ro_data) % 8 == 0, "content is whole words");
_Static_assert(sizeof(struct sp_sys_ro_data) % 8 == 0, "content is whole words");
_Static_assert(sizeof(struct sp_proc_rw_data) % 8 == 0, "content is whole words");
_Static_assert(SP_LOGIN_MAX % 8 == 0 && SP_COMM_MAX % 8 == 0 && SP_SYSNAME_MAX % 8 == 0,
               "string buffers are whole words");
_Static_assert((SP_RING_SLOTS & (SP_RING_SLOTS - 1)) == 0, "ring slots: a power of two");

#define SP_STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define SP_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define SP_FENCE_REL() __atomic_thread_fence(__ATOMIC_RELEASE)

const char *const sp_scheme_names[SP_SCHEME_COUNT] = {"page", "field", "word", "ring", "hybrid"};
const char *const sp_page_kind_names[SP_PAGE_KIND_COUNT] = {"proc_ro", "sys_ro", "proc_rw"};

int sp_scheme_from_name(const char *name)
{
    for (int i = 0; i < SP_SCHEME_COUNT; i++)
        if (strcmp(name, sp_scheme_names[i]) == 0)
            return i;
    return -1;
}

int sp_field_from_name(const char *name)
{
    /* syspage/catalog.toml names some fields after uname(2)'s struct utsname. */
    static const struct { const char *alias; enum sp_field field; } aliases[] = {
        {"nodename", SP_F_HOSTNAME}, {"release", SP_F_OSRELEASE}, {"ostype", SP_F_SYSNAME},
        {"boottime_us", SP_F_BOOTTIME_US},
    };
    for (int i = 0; i < SP_FIELD_COUNT; i++)
        if (strcmp(name, sp_fields[i].name) == 0)
            return i;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(name, aliases[i].alias) == 0)
            return aliases[i].field;
    return -1;
}

size_t sp_page_content_bytes(enum sp_page_kind kind)
{
    return sp_content_bytes(kind);
}

static unsigned sp_kind_field_count(enum sp_page_kind kind)
{
    unsigned n = 0;
    for (int i = 0; i < SP_FIELD_COUNT; i++)
        n += sp_fields[i].kind == kind;
    return n;
}

size_t sp_page_used_bytes(enum sp_page_kind kind, enum sp_scheme scheme)
{
    size_t content = sp_content_bytes(kind);
    switch (scheme) {
    case SP_SCHEME_FIELD: content += 8u * sp_kind_field_count(kind); break;
    case SP_SCHEME_RING: content = SP_RING_SLOTS * sp_ring_slot_bytes(kind); break;
    default: break;
    }
    return sizeof(struct sp_page_header) + content;
}

size_t sp_page_map_bytes(enum sp_page_kind kind, enum sp_scheme scheme)
{
    size_t used = sp_page_used_bytes(kind, scheme);
    return (used + SP_PAGE_SIZE - 1) / SP_PAGE_SIZE * SP_PAGE_SIZE;
}

int sp_page_init(void *page, size_t bytes, enum sp_page_kind kind, enum sp_scheme scheme)
{
    if ((unsigned)kind >= SP_PAGE_KIND_COUNT || (unsigned)scheme >= SP_SCHEME_COUNT)
        return -1;
    if (bytes < sp_page_used_bytes(kind, scheme))
        return -1;
    memset(page, 0, bytes);
    struct sp_page_header *h = page;
    h->magic = SP_PAGE_MAGIC;
    h->version = SP_PAGE_LAYOUT_VERSION;
    h->header_size = sizeof *h;
    h->size = (uint32_t)sp_page_used_bytes(kind, scheme);
    h->kind = (uint8_t)kind;
    h->scheme = (uint8_t)scheme;
    h->ring_slots = scheme == SP_SCHEME_RING ? SP_RING_SLOTS : 0;
    h->flags = SP_PAGE_F_VALID;
    if (scheme == SP_SCHEME_RING) {
        /* Slot 0 is current and complete (all zero) from the start: generation 1. */
        h->ring_gen = 1;
        *(uint32_t *)((unsigned char *)page + sizeof *h) = 1;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return 0;
}

int sp_page_check(const void *page, size_t bytes, enum sp_page_kind kind, enum sp_scheme scheme)
{
    const struct sp_page_header *h = page;
    if (bytes < sizeof *h)
        return -1;
    if (SP_LOAD_RLX(&h->magic) != SP_PAGE_MAGIC || SP_LOAD_RLX(&h->version) != SP_PAGE_LAYOUT_VERSION)
        return -1;
    if (SP_LOAD_RLX(&h->kind) != kind || SP_LOAD_RLX(&h->scheme) != scheme)
        return -1;
    if (SP_LOAD_RLX(&h->size) < sp_page_used_bytes(kind, scheme) || bytes < sp_page_used_bytes(kind, scheme))
        return -1;
    return 0;
}

/* ---- writers ------------------------------------------------------------------------ */

/* Linux write_seqcount_begin: seq++ then smp_wmb(); the release fence orders the odd
 * counter before every data store that follows (Boehm 2012, fig. 6). A plain load and
 * store, not an atomic increment: the caller is the page's only writer (kernel pages) or
 * holds the page's writers' lock (proc_rw, sp_page_write). */
static void sp_seq_write_begin(uint32_t *seq)
{
    SP_STORE_RLX(seq, SP_LOAD_RLX(seq) + 1u);
    SP_FENCE_REL();
}

/* Linux write_seqcount_end: smp_wmb() then seq++; a store-release does both. */
static void sp_seq_write_end(uint32_t *seq)
{
    SP_STORE_REL(seq, SP_LOAD_RLX(seq) + 1u);
}

/* The process-written page's writers' lock (sp_page.h "Writers"): test-and-test-and-set,
 * acquire on taking so the holder sees the previous holder's counter and data stores, and
 * release on dropping. A holder descheduled mid-update makes the others spin, so they
 * yield the CPU after a while (this machine runs more replay threads than it has CPUs). */
static void sp_writer_lock(uint32_t *lock)
{
    unsigned spins = 0;
    for (;;) {
        uint32_t expected = 0;
        if (SP_LOAD_RLX(lock) == 0
            && __atomic_compare_exchange_n(lock, &expected, 1u, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        if (++spins % 128 == 0)
            sched_yield();
        else
            sp_cpu_relax();
    }
}

static void sp_writer_unlock(uint32_t *lock)
{
    SP_STORE_REL(lock, 0u);
}

/* Store a string into a field buffer of size bytes: the bytes, a NUL, zeros to the end of
 * that word; 8 bytes per relaxed store so concurrent readers never race in the C11 sense. */
static void sp_store_string(unsigned char *dst, size_t size, const char *s, size_t len)
{
    if (len > size - 1)
        len = size - 1;
    uint64_t *w = (uint64_t *)dst;
    size_t words = len / 8 + 1;
    for (size_t i = 0; i < words; i++) {
        uint64_t v = 0;
        size_t at = i * 8;
        size_t take = len > at ? (len - at < 8 ? len - at : 8) : 0;
        if (take)
            memcpy(&v, s + at, take);
        SP_STORE_RLX(&w[i], v);
    }
}

static void sp_apply(unsigned char *dst, const struct sp_update *u)
{
    const struct sp_field_desc *d = &sp_fields[u->field];
    if (d->is_string)
        sp_store_string(dst, d->size, u->str ? u->str : "", u->str ? u->len : 0);
    else
        SP_STORE_RLX((uint64_t *)dst, u->value);
}

static unsigned char *sp_content_mut(void *page)
{
    return (unsigned char *)page + sizeof(struct sp_page_header);
}

static void sp_write_ring(void *page, const struct sp_update *updates, unsigned n)
{
    struct sp_page_header *h = page;
    enum sp_page_kind kind = (enum sp_page_kind)sp_fields[updates[0].field].kind;
    size_t slot_bytes = sp_ring_slot_bytes(kind);
    uint32_t cur = SP_LOAD_RLX(&h->ring_current) % SP_RING_SLOTS;
    uint32_t next = (cur + 1) % SP_RING_SLOTS;
    const unsigned char *from = sp_content_mut(page) + cur * slot_bytes + SP_RING_SLOT_HEADER;
    unsigned char *slot = sp_content_mut(page) + next * slot_bytes;
    uint32_t *gen = (uint32_t *)slot;
    uint32_t g = h->ring_gen + 1;
    if (g == 0) /* 0 means "being written" (FreeBSD skips 0 the same way) */
        g = 1;
    h->ring_gen = g;

    /* Mark the slot busy before touching its content, as FreeBSD's timehands_update sets
     * th_gen = 0 then atomic_thread_fence_rel(). */
    SP_STORE_RLX(gen, 0u);
    SP_FENCE_REL();
    const uint64_t *src = (const uint64_t *)from;
    uint64_t *dst = (uint64_t *)(slot + SP_RING_SLOT_HEADER);
    for (size_t i = 0; i < (slot_bytes - SP_RING_SLOT_HEADER) / 8; i++)
        SP_STORE_RLX(&dst[i], SP_LOAD_RLX(&src[i]));
    for (unsigned i = 0; i < n; i++)
        sp_apply(slot + SP_RING_SLOT_HEADER + sp_fields[updates[i].field].offset, &updates[i]);
    /* Publish: the generation (release: the content before it), then the index. */
    SP_STORE_REL(gen, g);
    SP_STORE_REL(&h->ring_current, next);
}

static void sp_page_write_locked(void *page, enum sp_scheme scheme, const struct sp_update *updates, unsigned n)
{
    struct sp_page_header *h = page;
    switch (scheme) {
    case SP_SCHEME_FIELD:
        for (unsigned i = 0; i < n; i++) {
            enum sp_field f = updates[i].field;
            uint32_t *seq = (uint32_t *)sp_page_field_seq(page, f);
            sp_seq_write_begin(seq);
            sp_apply((unsigned char *)sp_page_field_cell_data(page, f), &updates[i]);
            sp_seq_write_end(seq);
        }
        break;
    case SP_SCHEME_WORD: {
        int strings = 0;
        for (unsigned i = 0; i < n; i++) {
            if (sp_fields[updates[i].field].is_string)
                strings = 1;
            else
                sp_apply((unsigned char *)sp_page_field_ptr(page, updates[i].field), &updates[i]);
        }
        if (strings) {
            sp_seq_write_begin(&h->seq);
            for (unsigned i = 0; i < n; i++)
                if (sp_fields[updates[i].field].is_string)
                    sp_apply((unsigned char *)sp_page_field_ptr(page, updates[i].field), &updates[i]);
            sp_seq_write_end(&h->seq);
        }
        break;
    }
    case SP_SCHEME_RING:
        sp_write_ring(page, updates, n);
        break;
    case SP_SCHEME_PAGE:
    default:
        sp_seq_write_begin(&h->seq);
        for (unsigned i = 0; i < n; i++)
            sp_apply((unsigned char *)sp_page_field_ptr(page, updates[i].field), &updates[i]);
        sp_seq_write_end(&h->seq);
        break;
    }
    SP_STORE_RLX(&h->updates, h->updates + 1);
}

void sp_page_write(void *page, enum sp_scheme scheme, const struct sp_update *updates, unsigned n)
{
    struct sp_page_header *h = page;
    if (n == 0)
        return;
    /* Several threads of the process may write its own page at once: serialise them.
     * The kernel-written pages have one writer and keep the plain counter increments. */
    int shared_writers = sp_fields[updates[0].field].kind == SP_PAGE_PROC_RW;
    if (shared_writers)
        sp_writer_lock(&h->wlock);
    sp_page_write_locked(page, scheme, updates, n);
    if (shared_writers)
        sp_writer_unlock(&h->wlock);
}

void sp_page_write_word(void *page, enum sp_scheme scheme, enum sp_field field, uint64_t value)
{
    struct sp_update u = {.field = field, .value = value};
    sp_page_write(page, scheme, &u, 1);
}

void sp_page_write_string(void *page, enum sp_scheme scheme, enum sp_field field, const char *s, size_t len)
{
    struct sp_update u = {.field = field, .str = s, .len = len};
    sp_page_write(page, scheme, &u, 1);
}

void sp_title_write(void *page, enum sp_scheme scheme, const char *title, size_t len)
{
    sp_page_write_string(page, scheme, SP_F_TITLE, title, len);
}

void sp_comm_write(void *page, enum sp_scheme scheme, const char *comm, size_t len)
{
    sp_page_write_string(page, scheme, SP_F_COMM, comm, len);
}

/* ---- multi-field reader --------------------------------------------------------------- */

unsigned sp_page_read_words(const void *page, enum sp_scheme scheme, const enum sp_field *fields,
                            unsigned n, uint64_t *out)
{
    const struct sp_page_header *h = page;
    unsigned retries = 0;
    switch (scheme) {
    case SP_SCHEME_PAGE:
    case SP_SCHEME_HYBRID: /* a snapshot needs the counter: the word fast path is for one field */
        for (;;) {
            uint32_t s = SP_LOAD_ACQ(&h->seq);
            if (s & 1u) {
                retries++;
                sp_cpu_relax();
                continue;
            }
            for (unsigned i = 0; i < n; i++)
                out[i] = SP_LOAD_RLX((const uint64_t *)sp_page_field_ptr(page, fields[i]));
            SP_FENCE_ACQ();
            if (SP_LOAD_RLX(&h->seq) == s)
                return retries;
            retries++;
        }
    case SP_SCHEME_RING: {
        enum sp_page_kind kind = n ? (enum sp_page_kind)sp_fields[fields[0]].kind : SP_PAGE_PROC_RO;
        for (;;) {
            uint32_t idx = SP_LOAD_ACQ(&h->ring_current) % SP_RING_SLOTS;
            const unsigned char *slot = sp_ring_slot_of(page, kind, idx);
            uint32_t g = SP_LOAD_ACQ((const uint32_t *)slot);
            if (g != 0) {
                for (unsigned i = 0; i < n; i++)
                    out[i] = SP_LOAD_RLX((const uint64_t *)(slot + SP_RING_SLOT_HEADER + sp_fields[fields[i]].offset));
                SP_FENCE_ACQ();
                if (SP_LOAD_RLX((const uint32_t *)slot) == g)
                    return retries;
            }
            retries++;
        }
    }
    default:
        for (unsigned i = 0; i < n; i++)
            retries += sp_page_read_word(page, scheme, fields[i], &out[i]);
        return retries;
    }
}

/* ---- bounded single-field readers ------------------------------------------------------ */

/* One attempt: 1 with a consistent copy in *word (word fields) or out (strings), 0 when
 * the counter was odd or moved (the ring slot being written or rewritten). */
static int sp_page_try_read(const void *page, enum sp_scheme scheme, enum sp_field f, uint64_t *word,
                            char *out, size_t outsz)
{
    const struct sp_page_header *h = page;
    int is_string = sp_fields[f].is_string;
    if (!is_string && (scheme == SP_SCHEME_WORD || scheme == SP_SCHEME_HYBRID)) {
        sp_page_read_word_word(page, f, word); /* one single-copy-atomic load: never torn */
        return 1;
    }
    if (scheme == SP_SCHEME_RING) {
        uint32_t idx = SP_LOAD_ACQ(&h->ring_current) % SP_RING_SLOTS;
        const unsigned char *slot = sp_ring_slot_of(page, (enum sp_page_kind)sp_fields[f].kind, idx);
        uint32_t g = SP_LOAD_ACQ((const uint32_t *)slot);
        if (g == 0)
            return 0;
        const unsigned char *src = slot + SP_RING_SLOT_HEADER + sp_fields[f].offset;
        if (is_string)
            sp_copy_string_relaxed(out, outsz, src, sp_fields[f].size);
        else
            *word = SP_LOAD_RLX((const uint64_t *)src);
        SP_FENCE_ACQ();
        return SP_LOAD_RLX((const uint32_t *)slot) == g;
    }
    const uint32_t *seq = scheme == SP_SCHEME_FIELD ? sp_page_field_seq(page, f) : &h->seq;
    const unsigned char *src = scheme == SP_SCHEME_FIELD ? sp_page_field_cell_data(page, f) : sp_page_field_ptr(page, f);
    uint32_t s = SP_LOAD_ACQ(seq);
    if (s & 1u)
        return 0;
    if (is_string)
        sp_copy_string_relaxed(out, outsz, src, sp_fields[f].size);
    else
        *word = SP_LOAD_RLX((const uint64_t *)src);
    SP_FENCE_ACQ();
    return SP_LOAD_RLX(seq) == s;
}

static long sp_page_read_bounded(const void *page, enum sp_scheme scheme, enum sp_field f, uint64_t *word,
                                 char *out, size_t outsz, unsigned long max_retries)
{
    for (unsigned long attempt = 0; attempt <= max_retries; attempt++) {
        if (sp_page_try_read(page, scheme, f, word, out, outsz))
            return (long)attempt;
        if ((attempt + 1) % 1024 == 0)
            sched_yield(); /* let a descheduled writer finish */
        else
            sp_cpu_relax();
    }
    if (out)
        out[0] = '\0';
    if (word)
        *word = 0;
    return -1;
}

long sp_page_read_word_bounded(const void *page, enum sp_scheme scheme, enum sp_field f, uint64_t *out,
                               unsigned long max_retries)
{
    return sp_page_read_bounded(page, scheme, f, out, NULL, 0, max_retries);
}

long sp_page_read_string_bounded(const void *page, enum sp_scheme scheme, enum sp_field f, char *out,
                                 size_t outsz, unsigned long max_retries)
{
    if (outsz == 0)
        return -1;
    return sp_page_read_bounded(page, scheme, f, NULL, out, outsz, max_retries);
}

/* ---- the kernel-side reader of the title page ----------------------------------------- */

/* Copy the title buffer at src (SP_TITLE_MAX bytes, user-controlled) into out, cut to
 * outsz - 1; never reads outside the buffer. Returns the title's length on the page (up to
 * the first NUL, or SP_TITLE_MAX when there is none: *terminated says which). */
static size_t sp_title_copy(char *out, size_t outsz, const unsigned char *src, int *terminated)
{
    const uint64_t *w = (const uint64_t *)src;
    size_t n = 0, len = 0, limit = outsz - 1;
    *terminated = 0;
    for (size_t i = 0; i < SP_TITLE_MAX / 8 && !*terminated; i++) {
        uint64_t v = SP_LOAD_RLX(&w[i]);
        unsigned char bytes[8];
        memcpy(bytes, &v, 8);
        for (int b = 0; b < 8; b++) {
            if (bytes[b] == 0) {
                *terminated = 1;
                break;
            }
            len++;
            if (n < limit)
                out[n++] = (char)bytes[b];
        }
    }
    out[n] = '\0';
    return len;
}

static void sp_title_fallback(char *out, size_t outsz, const char *fallback, struct sp_title_result *res)
{
    char comm[SP_COMM_MAX];
    snprintf(comm, sizeof comm, "%s", fallback ? fallback : "?");
    snprintf(out, outsz, "[%s]", comm);
    res->source = SP_TITLE_FROM_FALLBACK;
    res->len = strlen(out);
}

int sp_title_read_bounded(const void *page, size_t page_bytes, enum sp_scheme scheme,
                          char *out, size_t outsz, unsigned max_retries,
                          const char *fallback, struct sp_title_result *res)
{
    const struct sp_page_header *h = page;
    struct sp_title_result local;
    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof *res);
    if (outsz == 0)
        return SP_TITLE_FROM_FALLBACK;
    /* The layout comes from the scheme the kernel chose, never from the page: a process
     * that scribbles over its header only loses its title. */
    if ((unsigned)scheme >= SP_SCHEME_COUNT || page_bytes < sp_page_used_bytes(SP_PAGE_PROC_RW, scheme)
        || SP_LOAD_RLX(&h->magic) != SP_PAGE_MAGIC || SP_LOAD_RLX(&h->version) != SP_PAGE_LAYOUT_VERSION) {
        res->bad_header = 1;
        sp_title_fallback(out, outsz, fallback, res);
        return res->source;
    }
    for (unsigned attempt = 0; attempt <= max_retries; attempt++) {
        int terminated = 0;
        size_t len;
        res->retries = attempt;
        if (scheme == SP_SCHEME_RING) {
            uint32_t idx = SP_LOAD_ACQ(&h->ring_current);
            if (idx >= SP_RING_SLOTS) {
                res->bad_header = 1;
                break;
            }
            const unsigned char *slot = sp_ring_slot_of(page, SP_PAGE_PROC_RW, idx);
            uint32_t g = SP_LOAD_ACQ((const uint32_t *)slot);
            if (g == 0) {
                sp_cpu_relax();
                continue;
            }
            len = sp_title_copy(out, outsz, slot + SP_RING_SLOT_HEADER + sp_fields[SP_F_TITLE].offset, &terminated);
            SP_FENCE_ACQ();
            if (SP_LOAD_RLX((const uint32_t *)slot) != g)
                continue;
        } else {
            const uint32_t *seq = scheme == SP_SCHEME_FIELD ? sp_page_field_seq(page, SP_F_TITLE) : &h->seq;
            const unsigned char *src = scheme == SP_SCHEME_FIELD ? sp_page_field_cell_data(page, SP_F_TITLE)
                                                                 : sp_page_field_ptr(page, SP_F_TITLE);
            uint32_t s = SP_LOAD_ACQ(seq);
            if (s & 1u) {
                sp_cpu_relax();
                continue;
            }
            len = sp_title_copy(out, outsz, src, &terminated);
            SP_FENCE_ACQ();
            if (SP_LOAD_RLX(seq) != s)
                continue;
        }
        if (len == 0)
            break; /* no title set: ps shows the command name */
        res->source = SP_TITLE_FROM_PAGE;
        res->len = strlen(out);
        res->unterminated = !terminated;
        return res->source;
    }
    sp_title_fallback(out, outsz, fallback, res);
    return res->source;
}
