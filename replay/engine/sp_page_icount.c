/* Instructions per read, per scheme and operation, with no writer: a figure that does not
 * depend on a noisy machine. Built and run under valgrind --tool=callgrind by
 * bench/bench_locking.py; each sp_icount_<scheme>_<op> function does N reads, so its
 * inclusive instruction count / N is the cost of one read (the loop's own few included). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_page.h"

#define N 100000

static void *sp_icount_pages[SP_SCHEME_COUNT][SP_PAGE_KIND_COUNT];
static volatile uint64_t sp_icount_sink;

#define SP_ICOUNT_FNS(S, NAME)                                                               \
    __attribute__((noinline)) void sp_icount_##NAME##_word(void)                             \
    {                                                                                        \
        uint64_t v, acc = 0;                                                                 \
        for (int i = 0; i < N; i++) {                                                        \
            sp_page_read_word(sp_icount_pages[S][SP_PAGE_PROC_RO], S, SP_F_PPID, &v);        \
            acc += v;                                                                        \
        }                                                                                    \
        sp_icount_sink = acc;                                                                \
    }                                                                                        \
    __attribute__((noinline)) void sp_icount_##NAME##_snapshot(void)                         \
    {                                                                                        \
        static const enum sp_field pair[2] = {SP_F_PPID, SP_F_UID};                          \
        uint64_t v[2], acc = 0;                                                              \
        for (int i = 0; i < N; i++) {                                                        \
            sp_page_read_words(sp_icount_pages[S][SP_PAGE_PROC_RO], S, pair, 2, v);          \
            acc += v[0] ^ v[1];                                                              \
        }                                                                                    \
        sp_icount_sink = acc;                                                                \
    }                                                                                        \
    __attribute__((noinline)) void sp_icount_##NAME##_string(void)                           \
    {                                                                                        \
        char host[SP_HOSTNAME_MAX];                                                          \
        uint64_t acc = 0;                                                                    \
        for (int i = 0; i < N; i++) {                                                        \
            sp_page_read_string(sp_icount_pages[S][SP_PAGE_SYS_RO], S, SP_F_HOSTNAME, host, sizeof host); \
            acc += (unsigned char)host[0];                                                   \
        }                                                                                    \
        sp_icount_sink = acc;                                                                \
    }

SP_ICOUNT_FNS(SP_SCHEME_PAGE, page)
SP_ICOUNT_FNS(SP_SCHEME_FIELD, field)
SP_ICOUNT_FNS(SP_SCHEME_WORD, word)
SP_ICOUNT_FNS(SP_SCHEME_RING, ring)
SP_ICOUNT_FNS(SP_SCHEME_HYBRID, hybrid)

int main(void)
{
    for (int s = 0; s < SP_SCHEME_COUNT; s++)
        for (int k = 0; k < SP_PAGE_KIND_COUNT; k++) {
            size_t bytes = sp_page_map_bytes(k, s);
            sp_icount_pages[s][k] = aligned_alloc(SP_PAGE_SIZE, bytes);
            if (!sp_icount_pages[s][k] || sp_page_init(sp_icount_pages[s][k], bytes, k, s) != 0)
                return 1;
        }
    for (int s = 0; s < SP_SCHEME_COUNT; s++) {
        /* A typical host name: 12 bytes, two words to copy. */
        sp_page_write_string(sp_icount_pages[s][SP_PAGE_SYS_RO], s, SP_F_HOSTNAME, "db1.example.", 12);
        sp_page_write_word(sp_icount_pages[s][SP_PAGE_PROC_RO], s, SP_F_PPID, 1234);
    }
    sp_icount_page_word(); sp_icount_page_snapshot(); sp_icount_page_string();
    sp_icount_field_word(); sp_icount_field_snapshot(); sp_icount_field_string();
    sp_icount_word_word(); sp_icount_word_snapshot(); sp_icount_word_string();
    sp_icount_ring_word(); sp_icount_ring_snapshot(); sp_icount_ring_string();
    sp_icount_hybrid_word(); sp_icount_hybrid_snapshot(); sp_icount_hybrid_string();
    printf("%d\n", N);
    return 0;
}
