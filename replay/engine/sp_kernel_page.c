/* The page-kernel implementation: the replay reads the pages the patched Linux kernel
 * maps into every exec'd process (replay/kernel/, docs/kernel.md, issue 10), where the
 * page implementation reads the simulated pages of sp_kside.c.
 *
 * Layout and protocol are the uapi header's (replay/kernel/user/syspage.h, a copy of
 * include/uapi/linux/syspage.h from patches/0001): the addresses come from the aux
 * vector (AT_SYSPAGE_PROC/_SYS/_TITLE), the kernel-written pages are read with their
 * sequence counter (retry while odd or changed), and a per-process page without
 * SYSPAGE_F_VALID (memory shared with another process) sends the read to the system call,
 * as replay/kernel/user/sp_kpage.c does. The title page is written with the writer side
 * of the protocol (seq odd, title and len, seq even).
 *
 * Linked only into the static program sp_replay (replay/static.py); the Python extension
 * leaves sp_run_config.kernel_page NULL. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "sp_engine.h"
#include "../kernel/user/syspage.h"

static const struct syspage_proc *kproc;
static const struct syspage_sys *ksys;
static struct syspage_title *ktitle;

static volatile uint64_t sp_kernel_sink;

#define B(f) SP_FIELD_BIT(SP_F_##f)
#define PROC_FIELDS (B(PID) | B(PPID) | B(PGID) | B(SID) | B(UID) | B(EUID) | B(SUID) | B(GID) | B(EGID) | B(SGID))
#define SYS_FIELDS (B(SYSNAME) | B(HOSTNAME) | B(OSRELEASE) | B(VERSION) | B(MACHINE) | B(DOMAINNAME))
#define TITLE_FIELDS (B(TITLE) | B(COMM))

/* Where each word field sits in struct syspage_proc (all 32-bit: pid_t, uid_t, gid_t).
 * Offsets, not a switch: the hot loop must not branch on the field (an indirect jump per
 * read would be most of the cost under emulation, and is not what a libc getter does). */
static const size_t proc_offset[SP_F_SID + 1] = {
	[SP_F_PID] = offsetof(struct syspage_proc, pid),
	[SP_F_PPID] = offsetof(struct syspage_proc, ppid),
	[SP_F_UID] = offsetof(struct syspage_proc, uid),
	[SP_F_EUID] = offsetof(struct syspage_proc, euid),
	[SP_F_SUID] = offsetof(struct syspage_proc, suid),
	[SP_F_GID] = offsetof(struct syspage_proc, gid),
	[SP_F_EGID] = offsetof(struct syspage_proc, egid),
	[SP_F_SGID] = offsetof(struct syspage_proc, sgid),
	[SP_F_PGID] = offsetof(struct syspage_proc, pgid),
	[SP_F_SID] = offsetof(struct syspage_proc, sid),
};

static inline const int32_t *proc_word(const struct syspage_proc *pg, enum sp_field f)
{
	return (const int32_t *)((const char *)pg + proc_offset[f]);
}

/* uid_t and gid_t are unsigned: widen them as the system call's value is */
static inline int64_t widen(enum sp_field f, int32_t v)
{
	return f >= SP_F_UID && f <= SP_F_SGID ? (int64_t)(uint32_t)v : (int64_t)v;
}

/* The system call a word field falls back to when the page is not valid. */
static enum sp_host_op fallback_op(enum sp_field f)
{
	switch (f) {
	case SP_F_PID: return SP_OP_GETPID;
	case SP_F_PPID: return SP_OP_GETPPID;
	case SP_F_PGID: return SP_OP_GETPGRP;
	case SP_F_SID: return SP_OP_GETSID;
	case SP_F_UID: return SP_OP_GETUID;
	case SP_F_EUID: return SP_OP_GETEUID;
	case SP_F_GID: return SP_OP_GETGID;
	case SP_F_EGID: return SP_OP_GETEGID;
	case SP_F_SUID: return SP_OP_GETRESUID;
	default: return SP_OP_GETRESGID;
	}
}

/* Sequence protocol for one word: 1 and *out when the page is valid, 0 when the caller
 * must make the system call. */
static inline int read_word(const struct syspage_proc *pg, const int32_t *word, int32_t *out)
{
	for (;;) {
		uint32_t seq = __atomic_load_n(&pg->seq, __ATOMIC_ACQUIRE);
		if (seq & 1) {
			__builtin_ia32_pause();
			continue;
		}
		int32_t v = __atomic_load_n(word, __ATOMIC_RELAXED);
		uint32_t flags = __atomic_load_n(&pg->flags, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&pg->seq, __ATOMIC_RELAXED) == seq) {
			*out = v;
			return (flags & SYSPAGE_F_VALID) != 0;
		}
	}
}

static void run_word(enum sp_field f, uint64_t count)
{
	/* locals: the acquire loads would otherwise make the compiler reload the globals */
	const struct syspage_proc *pg = kproc;
	const int32_t *word = proc_word(pg, f);
	uint64_t sum = 0;
	int32_t v = 0;
	for (uint64_t k = 0; k < count; k++) {
		if (read_word(pg, word, &v))
			sum += (uint64_t)widen(f, v);
		else
			sp_host_issue(fallback_op(f), NULL, 0, NULL);
	}
	sp_kernel_sink = sum;
}

/* Every requested field of the per-process page in one stable copy; 0 when not valid. */
static int read_proc(uint32_t fields, struct sp_value *out)
{
	const struct syspage_proc *pg = kproc;  /* a local: see run_word */
	int64_t v[SP_F_SID + 1];
	uint32_t flags;
	for (;;) {
		uint32_t seq = __atomic_load_n(&pg->seq, __ATOMIC_ACQUIRE);
		if (seq & 1) {
			__builtin_ia32_pause();
			continue;
		}
		for (int f = SP_F_PID; f <= SP_F_SID; f++)
			if (fields & SP_FIELD_BIT(f))
				v[f] = widen((enum sp_field)f, __atomic_load_n(proc_word(pg, (enum sp_field)f), __ATOMIC_RELAXED));
		flags = __atomic_load_n(&pg->flags, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&pg->seq, __ATOMIC_RELAXED) == seq)
			break;
	}
	if (!(flags & SYSPAGE_F_VALID))
		return 0;
	uint64_t sum = 0;
	for (int f = SP_F_PID; f <= SP_F_SID; f++) {
		if (!(fields & SP_FIELD_BIT(f)))
			continue;
		if (out)
			sp_value_add_int(out, (enum sp_field)f, v[f]);
		sum += (uint64_t)v[f];
	}
	sp_kernel_sink = sum;
	return 1;
}

static const size_t sys_offset[6] = {
	offsetof(struct syspage_sys, sysname), offsetof(struct syspage_sys, nodename),
	offsetof(struct syspage_sys, release), offsetof(struct syspage_sys, version_str),
	offsetof(struct syspage_sys, machine), offsetof(struct syspage_sys, domainname),
};

/* The requested names of the system page in one stable copy (always valid: one page per
 * UTS namespace, never shared across namespaces). */
static void read_sys(uint32_t fields, struct sp_value *out)
{
	const struct syspage_sys *sys = ksys;  /* a local: see run_word */
	char copy[6][SYSPAGE_NAME_LEN];
	static const enum sp_field order[6] = {SP_F_SYSNAME, SP_F_HOSTNAME, SP_F_OSRELEASE,
					       SP_F_VERSION, SP_F_MACHINE, SP_F_DOMAINNAME};
	for (;;) {
		uint32_t seq = __atomic_load_n(&sys->seq, __ATOMIC_ACQUIRE);
		if (seq & 1) {
			__builtin_ia32_pause();
			continue;
		}
		for (int i = 0; i < 6; i++)
			if (fields & SP_FIELD_BIT(order[i]))
				memcpy(copy[i], (const char *)sys + sys_offset[i], SYSPAGE_NAME_LEN);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&sys->seq, __ATOMIC_RELAXED) == seq)
			break;
	}
	uint64_t sum = 0;
	for (int i = 0; i < 6; i++) {
		if (!(fields & SP_FIELD_BIT(order[i])))
			continue;
		if (out)
			sp_value_add_str(out, order[i], copy[i], SYSPAGE_NAME_LEN);
		sum += (unsigned char)copy[i][0];
	}
	sp_kernel_sink = sum;
}

/* The writer side of the title page (syspage.h): seq odd, title and len, seq even. */
static void write_title(const char *s)
{
	uint32_t len = (uint32_t)strnlen(s, SYSPAGE_TITLE_MAX);
	uint32_t seq = __atomic_load_n(&ktitle->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&ktitle->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(ktitle->title, s, len);
	__atomic_store_n(&ktitle->len, len, __ATOMIC_RELAXED);
	__atomic_store_n(&ktitle->seq, seq + 2, __ATOMIC_RELEASE);
}

static const char *unsupported(const struct sp_plan_class *c)
{
	if (c->access == SP_ACCESS_FOLLOW)
		return NULL;  /* the real kernel applies the state change: nothing to issue */
	if (c->host_op == SP_OP_READ_PROC_CMDLINE || c->host_op == SP_OP_READ_PROC_ARGS)
		return "ps reads the title through /proc/PID/cmdline: the kernel's bounded read is the syscall path";
	if (c->fields == 0)
		return "no page field for this class";
	if (c->access == SP_ACCESS_WRITE)
		return (c->fields & ~TITLE_FIELDS) ? "the kernel's title page holds only the title" : NULL;
	if ((c->fields & ~PROC_FIELDS) == 0 || (c->fields & ~SYS_FIELDS) == 0)
		return NULL;
	return "a field the kernel's pages do not hold (syspage.h: ids, pgid, sid and the uname names)";
}

static int issue(const struct sp_plan_class *c, const char *arg, uint32_t want, struct sp_value *out)
{
	if (out)
		sp_value_reset(out, want);
	if (c->access == SP_ACCESS_WRITE) {
		write_title(arg ? arg : "");
		return 0;
	}
	if ((c->fields & ~SYS_FIELDS) == 0) {
		read_sys(out ? want : c->fields, out);
		return 0;
	}
	if (read_proc(out ? want : c->fields, out))
		return 0;
	return sp_host_issue((enum sp_host_op)c->host_op, arg, want, out);  /* SYSPAGE_F_VALID clear */
}

static const struct sp_kernel_page kernel_page = {
	.unsupported = unsupported,
	.issue = issue,
	.run_word = run_word,
};

const struct sp_kernel_page *sp_kernel_page_open(char *err, size_t errlen)
{
	kproc = (const struct syspage_proc *)getauxval(AT_SYSPAGE_PROC);
	ksys = (const struct syspage_sys *)getauxval(AT_SYSPAGE_SYS);
	ktitle = (struct syspage_title *)getauxval(AT_SYSPAGE_TITLE);
	if (!kproc || !ksys || !ktitle) {
		snprintf(err, errlen, "page-kernel: no AT_SYSPAGE_* entries in the aux vector (not the patched "
			 "kernel of replay/kernel/, or kernel.syspage=0 when this program was exec'd)");
		return NULL;
	}
	if (kproc->version != SYSPAGE_VERSION || kproc->size < sizeof *kproc || ksys->size < sizeof *ksys) {
		snprintf(err, errlen, "page-kernel: page version %u size %u, this program knows version %u size %zu",
			 kproc->version, kproc->size, SYSPAGE_VERSION, sizeof *kproc);
		return NULL;
	}
	/* The title page is read-only until the process asks for it (docs/kernel.md). */
	if (mprotect(ktitle, sizeof *ktitle, PROT_READ | PROT_WRITE) != 0) {
		snprintf(err, errlen, "page-kernel: mprotect of the title page: %s", strerror(errno));
		return NULL;
	}
	return &kernel_page;
}
