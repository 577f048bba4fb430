/* sp_kpage: the user-side reader of the syspage pages (see sp_kpage.h). */
#include <string.h>
#include <sys/mman.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "sp_kpage.h"

int sp_kpage_init(struct sp_kpage *k)
{
	k->proc = (const struct syspage_proc *)getauxval(AT_SYSPAGE_PROC);
	k->sys = (const struct syspage_sys *)getauxval(AT_SYSPAGE_SYS);
	k->title = (struct syspage_title *)getauxval(AT_SYSPAGE_TITLE);
	if (!k->proc || !k->sys || k->proc->version != SYSPAGE_VERSION ||
	    k->proc->size < sizeof(struct syspage_proc)) {
		k->proc = NULL;
		k->sys = NULL;
		k->title = NULL;
		return -1;
	}
	return 0;
}

int sp_proc_read(const struct syspage_proc *p, struct syspage_proc *out)
{
	uint32_t seq;

	for (;;) {
		seq = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
		if (seq & 1) {
			__builtin_ia32_pause();
			continue;
		}
		/* plain copy; the sequence check below discards torn copies */
		memcpy(out, p, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&p->seq, __ATOMIC_RELAXED) == seq)
			break;
	}
	return (out->flags & SYSPAGE_F_VALID) ? 0 : -1;
}

void sp_sys_read(const struct syspage_sys *s, struct syspage_sys *out)
{
	uint32_t seq;

	for (;;) {
		seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		if (seq & 1)
			continue;
		memcpy(out, s, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) == seq)
			return;
	}
}

/* One field without copying the whole page: what a hot getter does. */
#define SP_READ_FIELD(page, field, out) ({				\
	uint32_t _seq;							\
	int _ok;							\
	for (;;) {							\
		_seq = __atomic_load_n(&(page)->seq, __ATOMIC_ACQUIRE);	\
		if (_seq & 1)						\
			continue;					\
		(out) = (page)->field;					\
		_ok = (page)->flags & SYSPAGE_F_VALID;			\
		__atomic_thread_fence(__ATOMIC_ACQUIRE);		\
		if (__atomic_load_n(&(page)->seq, __ATOMIC_RELAXED) == _seq) \
			break;						\
	}								\
	_ok; })

pid_t sp_getpid(const struct sp_kpage *k)
{
	pid_t v;

	if (k->proc && SP_READ_FIELD(k->proc, pid, v))
		return v;
	return syscall(SYS_getpid);
}

pid_t sp_getppid(const struct sp_kpage *k)
{
	pid_t v;

	if (k->proc && SP_READ_FIELD(k->proc, ppid, v))
		return v;
	return syscall(SYS_getppid);
}

uid_t sp_getuid(const struct sp_kpage *k)
{
	uid_t v;

	if (k->proc && SP_READ_FIELD(k->proc, uid, v))
		return v;
	return syscall(SYS_getuid);
}

void sp_gethostname(const struct sp_kpage *k, char *buf)
{
	if (k->sys) {
		struct syspage_sys s;

		sp_sys_read(k->sys, &s);
		memcpy(buf, s.nodename, SYSPAGE_NAME_LEN);
		return;
	}
	struct utsname u;

	uname(&u);
	memcpy(buf, u.nodename, SYSPAGE_NAME_LEN);
}

int sp_title_enable(struct syspage_title *t)
{
	return mprotect(t, 4096, PROT_READ | PROT_WRITE);
}

void sp_title_set(struct syspage_title *t, const char *title, uint32_t len)
{
	static int writable;	/* inherited at fork, as the mapping is */
	uint32_t seq;

	if (!writable && sp_title_enable(t) == 0)
		writable = 1;
	seq = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);

	if (len > SYSPAGE_TITLE_MAX)
		len = SYSPAGE_TITLE_MAX;
	__atomic_store_n(&t->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(t->title, title, len);
	__atomic_store_n(&t->len, len, __ATOMIC_RELAXED);
	__atomic_store_n(&t->seq, seq + 2, __ATOMIC_RELEASE);
}
