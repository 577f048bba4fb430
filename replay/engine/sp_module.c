/* The Python method table of syspage.replay._engine.
 * The work sits in small C files beside this one; this file only converts
 * arguments and releases the GIL around the loops (psutil's layout:
 * https://github.com/giampaolo/psutil/tree/master/psutil). Errors are plain OSError /
 * ValueError naming the failing call; replay/ maps them to ReplayError. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_engine.h"

static const char *const sp_host_op_names[SP_OP_COUNT] = {
	[SP_OP_NONE] = "none", [SP_OP_GETPID] = "getpid", [SP_OP_GETPPID] = "getppid",
	[SP_OP_GETUID] = "getuid", [SP_OP_GETEUID] = "geteuid", [SP_OP_GETGID] = "getgid",
	[SP_OP_GETEGID] = "getegid", [SP_OP_GETRESUID] = "getresuid", [SP_OP_GETRESGID] = "getresgid",
	[SP_OP_GETPGRP] = "getpgrp", [SP_OP_GETPGID] = "getpgid", [SP_OP_GETSID] = "getsid",
	[SP_OP_UNAME] = "uname", [SP_OP_PRCTL_SET_NAME] = "prctl_set_name",
	[SP_OP_PRCTL_GET_NAME] = "prctl_get_name", [SP_OP_READ_PROC_CMDLINE] = "read_proc_cmdline",
	[SP_OP_SYSINFO] = "sysinfo", [SP_OP_SCHED_GETAFFINITY] = "sched_getaffinity",
	[SP_OP_SETHOSTNAME] = "sethostname", [SP_OP_ISSETUGID] = "issetugid",
	[SP_OP_GETLOGIN] = "getlogin", [SP_OP_GETHOSTNAME] = "gethostname",
	[SP_OP_GETDOMAINNAME] = "getdomainname", [SP_OP_SETPROCTITLE] = "setproctitle",
	[SP_OP_SYSCTL] = "sysctl", [SP_OP_READ_PROC_ARGS] = "read_proc_args",
};

static PyObject *sp_py_clock_now_ns(PyObject *self, PyObject *unused)
{
	return PyLong_FromUnsignedLongLong(sp_clock_now_ns());
}

static PyObject *sp_py_clock_overhead_ns(PyObject *self, PyObject *unused)
{
	double d;
	Py_BEGIN_ALLOW_THREADS
	d = sp_clock_overhead_ns();
	Py_END_ALLOW_THREADS
	return PyFloat_FromDouble(d);
}

static PyObject *value_dict(const struct sp_value *v)
{
	return Py_BuildValue("{s:K,s:s}", "hash", (unsigned long long)v->hash, "text", v->text);
}

static PyObject *result_to_python(const struct sp_run_result *res)
{
	static const char *impl_names[SP_IMPL_COUNT] = {"syscall", "page"};
	PyObject *classes = PyList_New(res->n_classes);
	if (!classes)
		return NULL;
	for (uint32_t c = 0; c < res->n_classes; c++) {
		const struct sp_class_result *cr = &res->classes[c];
		PyObject *samples = PyDict_New();
		for (int impl = 0; samples && impl < SP_IMPL_COUNT; impl++) {
			if (!cr->samples[impl])
				continue;
			PyObject *list = PyList_New(cr->n_samples[impl]);
			for (uint32_t s = 0; list && s < cr->n_samples[impl]; s++)
				PyList_SET_ITEM(list, s, PyFloat_FromDouble(cr->samples[impl][s]));
			if (!list || PyDict_SetItemString(samples, impl_names[impl], list) < 0) {
				Py_XDECREF(list);
				Py_CLEAR(samples);
				break;
			}
			Py_DECREF(list);
		}
		PyObject *first = cr->mismatches
			? Py_BuildValue("{s:N,s:N}", "page", value_dict(&cr->first_page), "syscall", value_dict(&cr->first_syscall))
			: Py_NewRef(Py_None);
		PyObject *d = samples && first ? Py_BuildValue(
			"{s:K,s:z,s:(ii),s:K,s:K,s:N,s:N}",
			"replayed", (unsigned long long)cr->replayed, "skip_reason", cr->skip_reason,
			"skip", cr->skip[SP_IMPL_SYSCALL], cr->skip[SP_IMPL_PAGE],
			"checked", (unsigned long long)cr->checked, "mismatches", (unsigned long long)cr->mismatches,
			"first_mismatch", first, "samples", samples) : NULL;
		if (!d) {
			Py_XDECREF(samples);
			Py_XDECREF(first);
			Py_DECREF(classes);
			return NULL;
		}
		PyList_SET_ITEM(classes, c, d);
	}
	PyObject *thread_cpus = PyList_New(res->thread_cpus ? res->n_threads : 0);
	for (uint32_t t = 0; thread_cpus && res->thread_cpus && t < res->n_threads; t++)
		PyList_SET_ITEM(thread_cpus, t, PyLong_FromLong(res->thread_cpus[t]));
	PyObject *ref[2] = {PyList_New(res->n_reference), PyList_New(res->n_reference)};
	for (int r = 0; r < 2; r++)
		for (uint32_t s = 0; ref[r] && s < res->n_reference; s++)
			PyList_SET_ITEM(ref[r], s, PyFloat_FromDouble(res->reference_ns[r] ? res->reference_ns[r][s] : 0.0));
	if (!thread_cpus || !ref[0] || !ref[1]) {
		Py_DECREF(classes);
		Py_XDECREF(thread_cpus);
		Py_XDECREF(ref[0]);
		Py_XDECREF(ref[1]);
		return NULL;
	}
	return Py_BuildValue("{s:d,s:{s:K,s:K},s:O,s:I,s:i,s:i,s:N,s:N,s:O,s:{s:N,s:N}}",
			     "timer_overhead_ns", res->timer_overhead_ns,
			     "loops", "syscall", (unsigned long long)res->loops[SP_IMPL_SYSCALL],
			     "page", (unsigned long long)res->loops[SP_IMPL_PAGE],
			     "uts_private", res->uts_private ? Py_True : Py_False,
			     "n_threads", res->n_threads, "replay_pid", (int)res->replay_pid,
			     "kside_pid", (int)res->kside_pid, "classes", classes,
			     "thread_cpus", thread_cpus, "pinned", res->pinned ? Py_True : Py_False,
			     "reference", "syscall", ref[0], "page", ref[1]);
}

static PyObject *sp_py_run_process(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"plan", "proc", "mode", "impls", "samples", "warmups",
				 "min_sample_ns", "max_gap_ns", "locking", "check", "min_class_ns",
				 "max_sample_ns", "cpus", "warmup_samples", NULL};
	Py_buffer buf;
	struct sp_run_config cfg = {0};
	const char *mode = "tight", *locking = "page";
	unsigned long long min_sample_ns = 1000000, max_gap_ns = 10000000;
	int check = 1;
	unsigned long long min_class_ns = 0, max_sample_ns = 0;
	PyObject *cpus_obj = NULL;
	int cpus[CPU_SETSIZE];
	cfg.impls = (1 << SP_IMPL_SYSCALL) | (1 << SP_IMPL_PAGE);
	cfg.samples = 5;
	cfg.warmups = 1;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "y*I|siIIKKspKKOI", kwlist, &buf, &cfg.proc, &mode,
					 &cfg.impls, &cfg.samples, &cfg.warmups, &min_sample_ns,
					 &max_gap_ns, &locking, &check, &min_class_ns, &max_sample_ns, &cpus_obj,
					 &cfg.warmup_samples))
		return NULL;
	if (cpus_obj && cpus_obj != Py_None) {
		PyObject *seq = PySequence_Fast(cpus_obj, "cpus must be a sequence of CPU numbers");
		Py_ssize_t n = seq ? PySequence_Fast_GET_SIZE(seq) : -1;
		for (Py_ssize_t i = 0; seq && i < n && i < CPU_SETSIZE; i++) {
			long c = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
			if (c < -1 || c >= CPU_SETSIZE) {   /* -1: that thread is not pinned */
				if (!PyErr_Occurred())
					PyErr_Format(PyExc_ValueError, "cpus: %ld is not a CPU number", c);
				n = -1;
				break;
			}
			cpus[cfg.n_cpus++] = (int)c;
		}
		Py_XDECREF(seq);
		if (n < 0) {
			PyBuffer_Release(&buf);
			return NULL;
		}
		cfg.cpus = cpus;
	}
	cfg.min_class_ns = min_class_ns;
	cfg.max_sample_ns = max_sample_ns;
	if (strcmp(mode, "tight") == 0)
		cfg.mode = SP_MODE_TIGHT;
	else if (strcmp(mode, "paced") == 0)
		cfg.mode = SP_MODE_PACED;
	else {
		PyBuffer_Release(&buf);
		return PyErr_Format(PyExc_ValueError, "mode must be tight or paced, not %s", mode);
	}
	cfg.min_sample_ns = min_sample_ns;
	cfg.max_gap_ns = max_gap_ns;
	cfg.locking = locking;
	cfg.check = check;
	struct sp_plan plan;
	struct sp_run_result res;
	char err[256] = "";
	int rc;
	if (sp_plan_open(&plan, buf.buf, (size_t)buf.len, err, sizeof err) != 0) {
		PyBuffer_Release(&buf);
		return PyErr_Format(PyExc_ValueError, "%s", err);
	}
	Py_BEGIN_ALLOW_THREADS
	rc = sp_run_process(&plan, &cfg, &res, err, sizeof err);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&buf);
	if (rc != 0)
		return PyErr_Format(PyExc_OSError, "replay process %u: %s", cfg.proc, err);
	PyObject *out = result_to_python(&res);
	sp_run_result_free(&res);
	return out;
}

/* The proposal's protection, checked for real: the replayer cannot get a writable
 * mapping of a kernel-written page, cannot upgrade its read-only one, cannot write(2)
 * the memfd, and a store through its mapping is a SIGSEGV (tried in a child). */
static PyObject *sp_py_probe_protection(PyObject *self, PyObject *args)
{
	const char *locking = "page";
	int page_kind = SP_PAGE_PROC_RO;
	if (!PyArg_ParseTuple(args, "|si", &locking, &page_kind))
		return NULL;
	if (page_kind != SP_PAGE_PROC_RO && page_kind != SP_PAGE_SYS_RO)
		return PyErr_Format(PyExc_ValueError, "page %d is not a kernel-written page", page_kind);
	char err[256];
	struct sp_kside *k = sp_kside_start(locking, err, sizeof err);
	if (!k)
		return PyErr_Format(PyExc_OSError, "%s", err);
	int fd = sp_kside_page_fd(k, page_kind);
	size_t bytes = sp_kside_page_bytes(k, page_kind);
	void *ro = sp_kside_page(k, page_kind);
	int mmap_errno = 0, mprotect_errno = 0, write_errno = 0, sig = 0;
	void *w = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (w == MAP_FAILED)
		mmap_errno = errno;
	else
		munmap(w, bytes);
	if (mprotect(ro, bytes, PROT_READ | PROT_WRITE) != 0)
		mprotect_errno = errno;
	char byte = 'x';
	if (pwrite(fd, &byte, 1, 64) < 0)
		write_errno = errno;
	uint64_t pid_before = 0, pid_after = 0;
	if (page_kind == SP_PAGE_PROC_RO)
		sp_page_read_word(ro, sp_kside_scheme(k), SP_F_PID, &pid_before);
	pid_t child = fork();
	if (child == 0) {
		/* the hostile store: overwrite the pid field through the read-only mapping. The
		 * default action, not Python's faulthandler: the child must die of the signal. */
		signal(SIGSEGV, SIG_DFL);
		*(volatile uint64_t *)((char *)ro + sizeof(struct sp_page_header)) = 1;
		_exit(0);
	}
	int status = 0;
	if (child > 0) {
		waitpid(child, &status, 0);
		sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
	if (page_kind == SP_PAGE_PROC_RO)
		sp_page_read_word(ro, sp_kside_scheme(k), SP_F_PID, &pid_after);
	pid_t kpid = sp_kside_pid(k);
	sp_kside_stop(k);
	return Py_BuildValue("{s:i,s:i,s:i,s:i,s:i,s:K,s:K,s:i}", "mmap_write_errno", mmap_errno,
			     "mprotect_errno", mprotect_errno, "write_errno", write_errno,
			     "child_signal", sig, "child_exit", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			     "pid_before", (unsigned long long)pid_before, "pid_after", (unsigned long long)pid_after,
			     "kside_pid", (int)kpid);
}

/* What the kernel side reads from the pages it filled, through sp_page.h's readers. */
static PyObject *sp_py_page_snapshot(PyObject *self, PyObject *args)
{
	const char *locking = "page";
	if (!PyArg_ParseTuple(args, "|s", &locking))
		return NULL;
	char err[256];
	struct sp_kside *k = sp_kside_start(locking, err, sizeof err);
	if (!k)
		return PyErr_Format(PyExc_OSError, "%s", err);
	PyObject *d = PyDict_New();
	enum sp_scheme scheme = sp_kside_scheme(k);
	for (int f = 0; d && f < SP_FIELD_COUNT; f++) {
		void *page = sp_kside_page(k, (enum sp_page_kind)sp_fields[f].kind);
		PyObject *v;
		if (sp_fields[f].is_string) {
			char buf[SP_TITLE_MAX];
			sp_page_read_string(page, scheme, (enum sp_field)f, buf, sizeof buf);
			v = PyUnicode_DecodeUTF8(buf, strlen(buf), "replace");
		} else {
			uint64_t w = 0;
			sp_page_read_word(page, scheme, (enum sp_field)f, &w);
			v = PyLong_FromUnsignedLongLong(w);
		}
		if (!v || PyDict_SetItemString(d, sp_fields[f].name, v) < 0) {
			Py_XDECREF(v);
			Py_CLEAR(d);
			break;
		}
		Py_DECREF(v);
	}
	PyObject *out = d ? Py_BuildValue("{s:N,s:i}", "fields", d, "kside_pid", (int)sp_kside_pid(k)) : NULL;
	sp_kside_stop(k);
	return out;
}

/* A hostile title writer: the replayer scribbles on its own title page without the
 * protocol, and the kernel side reads it the way ps would (sp_title_read_bounded). */
static PyObject *sp_py_probe_title(PyObject *self, PyObject *args)
{
	const char *locking = "page", *how = "unterminated";
	if (!PyArg_ParseTuple(args, "s|s", &how, &locking))
		return NULL;
	char err[256];
	struct sp_kside *k = sp_kside_start(locking, err, sizeof err);
	if (!k)
		return PyErr_Format(PyExc_OSError, "%s", err);
	unsigned char *page = sp_kside_page(k, SP_PAGE_PROC_RW);
	size_t bytes = sp_kside_page_bytes(k, SP_PAGE_PROC_RW);
	struct sp_page_header *h = (struct sp_page_header *)page;
	if (strcmp(how, "unterminated") == 0)
		memset(page + sizeof *h, 'A', bytes - sizeof *h);   /* no NUL anywhere after the header */
	else if (strcmp(how, "odd_seq") == 0)
		__atomic_store_n(&h->seq, 1u, __ATOMIC_RELEASE);       /* a writer that never finishes */
	else if (strcmp(how, "bad_header") == 0)
		memset(page, 0xff, sizeof *h);
	else if (strcmp(how, "plain") == 0)
		sp_title_write(page, sp_kside_scheme(k), "syspage: replay title", 21);
	else {
		sp_kside_stop(k);
		return PyErr_Format(PyExc_ValueError, "unknown hostile writer %s", how);
	}
	char out[SP_TITLE_MAX + 16];
	int source = -1;
	size_t n = sp_kside_read_title(k, out, sizeof out, &source);
	int alive = kill(sp_kside_pid(k), 0) == 0;
	sp_kside_stop(k);
	return Py_BuildValue("{s:s#,s:n,s:i,s:O}", "text", out, (Py_ssize_t)n, "len", (Py_ssize_t)n,
			     "source", source, "kside_alive", alive ? Py_True : Py_False);
}

/* Baselines for bench/bench_replay.py: the bare page-read loop and the raw syscall loop,
 * `reps` values each, alternated within this process (A B A B ...). */
static PyObject *sp_py_bench_baselines(PyObject *self, PyObject *args)
{
	const char *locking = "page";
	unsigned long long n = 1000000;
	unsigned reps = 10;
	int which = 0;
	if (!PyArg_ParseTuple(args, "|KIis", &n, &reps, &which, &locking))
		return NULL;
	if (n == 0 || reps == 0 || which < 0 || which > 3)
		return PyErr_Format(PyExc_ValueError, "n and reps must be positive, which in 0..3");
	char err[256];
	struct sp_kside *k = sp_kside_start(locking, err, sizeof err);
	if (!k)
		return PyErr_Format(PyExc_OSError, "%s", err);
	static const enum sp_field fields[4] = {SP_F_PID, SP_F_PPID, SP_F_UID, SP_F_PID};
	double *page = PyMem_RawCalloc(reps, sizeof(double)), *sys = PyMem_RawCalloc(reps, sizeof(double));
	double overhead = 0;
	if (!page || !sys) {
		PyMem_RawFree(page);
		PyMem_RawFree(sys);
		sp_kside_stop(k);
		return PyErr_NoMemory();
	}
	Py_BEGIN_ALLOW_THREADS
	overhead = sp_clock_overhead_ns();
	sp_bench_page_loop(k, fields[which], n / 10 + 1, overhead);      /* warm-up */
	sp_bench_syscall_loop(which, n / 100 + 1, overhead);
	for (unsigned r = 0; r < reps; r++) {
		page[r] = sp_bench_page_loop(k, fields[which], n, overhead);
		sys[r] = sp_bench_syscall_loop(which, n / 50 + 1, overhead);  /* syscalls are ~100x slower */
	}
	Py_END_ALLOW_THREADS
	sp_kside_stop(k);
	PyObject *lp = PyList_New(reps), *ls = PyList_New(reps);
	for (unsigned r = 0; lp && ls && r < reps; r++) {
		PyList_SET_ITEM(lp, r, PyFloat_FromDouble(page[r]));
		PyList_SET_ITEM(ls, r, PyFloat_FromDouble(sys[r]));
	}
	PyMem_RawFree(page);
	PyMem_RawFree(sys);
	if (!lp || !ls) {
		Py_XDECREF(lp);
		Py_XDECREF(ls);
		return NULL;
	}
	return Py_BuildValue("{s:N,s:N,s:d}", "page_loop_ns", lp, "syscall_loop_ns", ls, "timer_overhead_ns", overhead);
}

/* bench_timeline: the machine's cost states over time (bench/replay_states.py). */
static PyObject *sp_py_bench_timeline(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *names[] = {"batches", "interval_ms", "n_sys", "n_page", "cpus", "locking", NULL};
	unsigned long long batches = 100, n_sys = 1000, n_page = 100000;
	double interval_ms = 50;
	PyObject *cpus_obj = NULL;
	const char *locking = "page";
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|KdKKOs", names, &batches, &interval_ms, &n_sys, &n_page,
					 &cpus_obj, &locking))
		return NULL;
	if (batches == 0 || batches > 1000000 || n_sys == 0 || n_page == 0 || interval_ms < 0)
		return PyErr_Format(PyExc_ValueError, "batches in 1..1e6, n_sys and n_page positive, interval_ms >= 0");
	int cpus[64], n_cpus = 0;
	if (cpus_obj && cpus_obj != Py_None) {
		PyObject *seq = PySequence_Fast(cpus_obj, "cpus must be a sequence of CPU numbers");
		if (!seq)
			return NULL;
		Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
		for (Py_ssize_t i = 0; i < n && i < 64; i++)
			cpus[n_cpus++] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
		Py_DECREF(seq);
		if (PyErr_Occurred())
			return NULL;
	}
	char err[256];
	struct sp_kside *k = sp_kside_start(locking, err, sizeof err);
	if (!k)
		return PyErr_Format(PyExc_OSError, "%s", err);
	double *t = PyMem_RawCalloc(batches, sizeof(double)), *sys = PyMem_RawCalloc(batches, sizeof(double));
	double *page = PyMem_RawCalloc(batches, sizeof(double));
	int *cpu = PyMem_RawCalloc(batches, sizeof(int));
	PyObject *out = NULL;
	if (t && sys && page && cpu) {
		double overhead = 0;
		Py_BEGIN_ALLOW_THREADS
		overhead = sp_clock_overhead_ns();
		sp_bench_timeline(k, batches, (uint64_t)(interval_ms * 1e6), n_sys, n_page, cpus, n_cpus, overhead,
				  t, sys, page, cpu);
		Py_END_ALLOW_THREADS
		PyObject *lt = PyList_New(batches), *ls = PyList_New(batches), *lp = PyList_New(batches),
			 *lc = PyList_New(batches);
		for (unsigned long long i = 0; lt && ls && lp && lc && i < batches; i++) {
			PyList_SET_ITEM(lt, i, PyFloat_FromDouble(t[i]));
			PyList_SET_ITEM(ls, i, PyFloat_FromDouble(sys[i]));
			PyList_SET_ITEM(lp, i, PyFloat_FromDouble(page[i]));
			PyList_SET_ITEM(lc, i, PyLong_FromLong(cpu[i]));
		}
		if (lt && ls && lp && lc)
			out = Py_BuildValue("{s:N,s:N,s:N,s:N,s:d}", "t_ns", lt, "syscall_ns", ls, "page_ns", lp,
					    "cpu", lc, "timer_overhead_ns", overhead);
		else {
			Py_XDECREF(lt); Py_XDECREF(ls); Py_XDECREF(lp); Py_XDECREF(lc);
		}
	} else {
		PyErr_NoMemory();
	}
	sp_kside_stop(k);
	PyMem_RawFree(t); PyMem_RawFree(sys); PyMem_RawFree(page); PyMem_RawFree(cpu);
	return out;
}

static PyMethodDef sp_methods[] = {
	{"bench_baselines", sp_py_bench_baselines, METH_VARARGS,
	 "bench_baselines(n=1e6, reps=10, which=0, locking='page') -> dict: bare page-read loop and raw "
	 "syscall loop (which: 0 getpid, 1 getppid, 2 getuid, 3 uname), ns per call, reps values each."},
	{"bench_timeline", (PyCFunction)(void (*)(void))sp_py_bench_timeline, METH_VARARGS | METH_KEYWORDS,
	 "bench_timeline(batches=100, interval_ms=50, n_sys=1000, n_page=100000, cpus=None, locking='page') -> "
	 "dict: every interval_ms a batch of n_sys raw getpid calls and n_page bare page reads (one page for the "
	 "whole run), ns per call, with each batch's time and CPU; cpus pins batch i to cpus[i % len]."},
	{"clock_now_ns", sp_py_clock_now_ns, METH_NOARGS, "CLOCK_MONOTONIC in nanoseconds."},
	{"clock_overhead_ns", sp_py_clock_overhead_ns, METH_NOARGS,
	 "Median cost of one back-to-back pair of clock reads, ns."},
	{"run_process", (PyCFunction)(void (*)(void))sp_py_run_process, METH_VARARGS | METH_KEYWORDS,
	 "run_process(plan, proc, mode='tight', impls=3, samples=5, warmups=1, min_sample_ns=1e6, "
	 "max_gap_ns=1e7, locking='page', check=True, min_class_ns=0, max_sample_ns=0, cpus=None, "
	 "warmup_samples=0) -> dict. "
	 "Replays one traced process of the plan in this process (its kernel side forked from it), "
	 "the GIL released; cpus pins thread k to cpus[k % len(cpus)] for the timed passes."},
	{"probe_protection", sp_py_probe_protection, METH_VARARGS,
	 "probe_protection(locking='page', page=0) -> dict: try to write a kernel-written page."},
	{"page_snapshot", sp_py_page_snapshot, METH_VARARGS,
	 "page_snapshot(locking='page') -> dict: every field the kernel side filled."},
	{"probe_title", sp_py_probe_title, METH_VARARGS,
	 "probe_title(how, locking='page') -> dict: a hostile title write, read back as ps would."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef sp_module = {
	PyModuleDef_HEAD_INIT, "_engine", "syspage replay engine (C).", -1, sp_methods, NULL, NULL, NULL, NULL,
};

static int add_names(PyObject *m, const char *attr, const char *const *names, int n)
{
	PyObject *d = PyDict_New();
	if (!d)
		return -1;
	for (int i = 0; i < n; i++) {
		PyObject *v = PyLong_FromLong(i);
		if (!v || PyDict_SetItemString(d, names[i], v) < 0) {
			Py_XDECREF(v);
			Py_DECREF(d);
			return -1;
		}
		Py_DECREF(v);
	}
	return PyModule_AddObject(m, attr, d);
}

PyMODINIT_FUNC PyInit__engine(void)
{
	const char *field_names[SP_FIELD_COUNT];
	for (int f = 0; f < SP_FIELD_COUNT; f++)
		field_names[f] = sp_fields[f].name;
	PyObject *m = PyModule_Create(&sp_module);
	if (m == NULL)
		return NULL;
	if (PyModule_AddStringConstant(m, "ENGINE_VERSION", SP_ENGINE_VERSION) < 0
	    || PyModule_AddIntConstant(m, "PLAN_VERSION", SP_PLAN_VERSION) < 0
	    || add_names(m, "HOST_OPS", sp_host_op_names, SP_OP_COUNT) < 0
	    || add_names(m, "FIELDS", field_names, SP_FIELD_COUNT) < 0
	    || add_names(m, "PAGE_KINDS", sp_page_kind_names, SP_PAGE_KIND_COUNT) < 0
	    || add_names(m, "SCHEMES", sp_scheme_names, SP_SCHEME_COUNT) < 0
	    || sp_page_py_register(m) < 0) { /* page, locking and torture wrappers (issue 8) */
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
