/* sp_kpage: read the syspage pages from user space, falling back to the
 * system call when a page is absent (kernel without the patch, or
 * kernel.syspage=0 at exec) or invalid (memory shared with another process).
 *
 * syspage.h here is a byte-for-byte copy of include/uapi/linux/syspage.h
 * from patches/0001 (tests/test_replay_kernel.py checks it).
 *
 * The same reader (sp_proc_read) runs on the kernel's page and on a
 * simulated page (a user-space seqlock page in a memfd), so the benchmark
 * compares like with like. */
#ifndef SP_KPAGE_H
#define SP_KPAGE_H

#include <stdint.h>
#include <sys/types.h>
#include "syspage.h"

struct sp_kpage {
	const struct syspage_proc *proc;	/* NULL: no page */
	const struct syspage_sys *sys;
	struct syspage_title *title;
};

/* Find the pages in the aux vector. Returns 0 when present, -1 when not. */
int sp_kpage_init(struct sp_kpage *k);

/* Consistent copy of a kernel-written page (sequence protocol).
 * Returns 0 when the copy is valid to use, -1 when the page says to fall
 * back (SYSPAGE_F_VALID clear). */
int sp_proc_read(const struct syspage_proc *p, struct syspage_proc *out);
void sp_sys_read(const struct syspage_sys *s, struct syspage_sys *out);

/* The getters: page when present and valid, system call otherwise. */
pid_t sp_getpid(const struct sp_kpage *k);
pid_t sp_getppid(const struct sp_kpage *k);
uid_t sp_getuid(const struct sp_kpage *k);
/* hostname into buf (at least 65 bytes) */
void sp_gethostname(const struct sp_kpage *k, char *buf);

/* The title page is read-only (inside "[syspage]") until the process asks for
 * write access: mprotect(PROT_READ | PROT_WRITE) on it, which splits it off as
 * "[syspage-title]". 0, or -1 with errno. sp_title_set() does it once. */
int sp_title_enable(struct syspage_title *t);

/* Title: writer side of the protocol. len 0 clears the title. */
void sp_title_set(struct syspage_title *t, const char *title, uint32_t len);

#endif
