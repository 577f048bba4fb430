/* Python wrappers for the pages, their locking schemes and the torture/stress harness
 * (issue 8), registered into syspage.replay._engine by sp_page_py_register(), which
 * sp_module.c's PyInit calls. The loops run with the GIL released. Errors are plain
 * OSError/ValueError naming what failed; syspage.replay.locking maps them. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>

#include "sp_page.h"
#include "sp_torture.h"

static const char *const sp_stress_op_names[SP_STRESS_OP_COUNT] = {"word", "snapshot", "string", "string_nolock"};
static const char *const sp_hostile_mode_names[SP_HOSTILE_COUNT] = {
    "well_behaved", "never_finish", "flip", "no_terminator", "garbage", "bad_header",
};

static int sp_py_lookup(const char *what, const char *name, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    PyErr_Format(PyExc_ValueError, "unknown %s '%s' (one of: %s ...)", what, name, names[0]);
    return -1;
}

static PyObject *sp_py_doubles(const double *v, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *x = PyFloat_FromDouble(v[i]);
        if (!x) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

/* lock_stress(scheme, op, readers, rate_per_s, duration_s, batch_reads=0, check_every=0,
 *             max_samples=200000, pin=True) -> dict */
static PyObject *sp_py_lock_stress(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"scheme", "op", "readers", "rate_per_s", "duration_s", "batch_reads",
                             "check_every", "max_samples", "pin", "long_strings", NULL};
    const char *scheme_name, *op_name;
    int readers, pin = 1, long_strings = 0;
    double rate, duration;
    unsigned long long batch = 0, check_every = 0;
    Py_ssize_t max_samples = 200000;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ssidd|KKnpp", kwlist, &scheme_name, &op_name, &readers, &rate,
                                     &duration, &batch, &check_every, &max_samples, &pin, &long_strings))
        return NULL;
    int scheme = sp_py_lookup("locking scheme", scheme_name, sp_scheme_names, SP_SCHEME_COUNT);
    if (scheme < 0)
        return NULL;
    int op = sp_py_lookup("stress op", op_name, sp_stress_op_names, SP_STRESS_OP_COUNT);
    if (op < 0)
        return NULL;
    if (readers < 1 || readers > 64 || !(duration > 0) || duration > 3600 || max_samples < 1) {
        PyErr_SetString(PyExc_ValueError, "lock_stress: readers must be 1..64, duration_s in (0, 3600], max_samples >= 1");
        return NULL;
    }
    if (op == SP_STRESS_STRING_NOLOCK && scheme != SP_SCHEME_PAGE) {
        PyErr_SetString(PyExc_ValueError, "lock_stress: the string_nolock control reads the 'page' layout only");
        return NULL;
    }
    struct sp_stress_config cfg = {
        .scheme = scheme, .op = op, .readers = readers, .rate_per_s = rate, .duration_s = duration,
        .batch_reads = batch, .check_every = check_every, .max_samples = (size_t)max_samples, .pin = pin,
        .long_strings = long_strings,
    };
    struct sp_stress_result res;
    int rc, saved;
    Py_BEGIN_ALLOW_THREADS
    rc = sp_stress_run(&cfg, &res);
    saved = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        errno = saved;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "sp_stress_run");
    }
    PyObject *samples = sp_py_doubles(res.samples_ns, res.nsamples);
    PyObject *writer = sp_py_doubles(res.writer_ns, res.nwriter);
    PyObject *out = NULL;
    if (samples && writer)
        out = Py_BuildValue(
            "{s:s,s:s,s:i,s:d,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:O,s:K,s:O,s:d,s:d,s:d,s:i}",
            "scheme", sp_scheme_names[scheme], "op", sp_stress_op_names[op], "readers", readers,
            "rate_target_per_s", rate, "reads", (unsigned long long)res.reads,
            "retries", (unsigned long long)res.retries, "max_retries", (unsigned long long)res.max_retries,
            "checked", (unsigned long long)res.checked, "torn", (unsigned long long)res.torn,
            "mixed", (unsigned long long)res.mixed, "batch_reads", (unsigned long long)res.batch_reads,
            "samples_ns", samples, "writer_updates", (unsigned long long)res.writer_updates,
            "writer_ns", writer, "rate_per_s", res.rate_per_s, "duration_s", res.duration_s,
            "timer_overhead_ns", res.timer_overhead_ns, "cpus", res.ncpu);
    Py_XDECREF(samples);
    Py_XDECREF(writer);
    sp_stress_result_free(&res);
    return out;
}

static PyObject *sp_py_lock_timer_overhead_ns(PyObject *self, PyObject *unused)
{
    double v;
    Py_BEGIN_ALLOW_THREADS
    v = sp_stress_timer_overhead_ns();
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(v);
}

/* title_hostile(scheme, mode, max_retries=8, calls=10000, outsz=4096) -> dict */
static PyObject *sp_py_title_hostile(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"scheme", "mode", "max_retries", "calls", "outsz", NULL};
    const char *scheme_name, *mode_name;
    unsigned int max_retries = 8;
    unsigned long long calls = 10000;
    Py_ssize_t outsz = 4096;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|IKn", kwlist, &scheme_name, &mode_name, &max_retries, &calls, &outsz))
        return NULL;
    int scheme = sp_py_lookup("locking scheme", scheme_name, sp_scheme_names, SP_SCHEME_COUNT);
    if (scheme < 0)
        return NULL;
    int mode = sp_py_lookup("hostile mode", mode_name, sp_hostile_mode_names, SP_HOSTILE_COUNT);
    if (mode < 0)
        return NULL;
    if (outsz < 1 || outsz > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "title_hostile: outsz must be 1..1048576");
        return NULL;
    }
    struct sp_hostile_result r;
    int rc, saved;
    Py_BEGIN_ALLOW_THREADS
    rc = sp_title_hostile_run(scheme, mode, max_retries, calls, (size_t)outsz, &r);
    saved = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        errno = saved;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "sp_title_hostile_run");
    }
    return Py_BuildValue(
        "{s:s,s:s,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:y}",
        "scheme", sp_scheme_names[scheme], "mode", sp_hostile_mode_names[mode],
        "calls", (unsigned long long)r.calls, "from_page", (unsigned long long)r.from_page,
        "from_fallback", (unsigned long long)r.from_fallback, "unterminated", (unsigned long long)r.unterminated,
        "bad_header", (unsigned long long)r.bad_header, "torn", (unsigned long long)r.torn,
        "overruns", (unsigned long long)r.overruns, "unterminated_out", (unsigned long long)r.unterminated_out,
        "max_retries_seen", (unsigned long long)r.max_retries_seen, "max_len", (unsigned long long)r.max_len,
        "max_call_ns", (unsigned long long)r.max_call_ns, "last", r.last);
}

/* title_writers(scheme, threads=4, writes_each=100000) -> dict */
static PyObject *sp_py_title_writers(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"scheme", "threads", "writes_each", NULL};
    const char *scheme_name;
    unsigned int threads = 4;
    unsigned long long writes_each = 100000;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|IK", kwlist, &scheme_name, &threads, &writes_each))
        return NULL;
    int scheme = sp_py_lookup("locking scheme", scheme_name, sp_scheme_names, SP_SCHEME_COUNT);
    if (scheme < 0)
        return NULL;
    struct sp_writers_result r;
    int rc, saved;
    Py_BEGIN_ALLOW_THREADS
    rc = sp_title_writers_run(scheme, threads, writes_each, &r);
    saved = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        errno = saved;
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, "sp_title_writers_run");
    }
    return Py_BuildValue("{s:s,s:K,s:K,s:I,s:l,s:O,s:s}", "scheme", sp_scheme_names[scheme],
                         "updates", (unsigned long long)r.updates, "expected", (unsigned long long)r.expected,
                         "counter", (unsigned int)r.counter, "read_retries", r.read_retries,
                         "read_whole", r.read_whole ? Py_True : Py_False, "title", r.title);
}

/* page_layout() -> list of {kind, scheme, content_bytes, used_bytes, map_bytes} */
static PyObject *sp_py_page_layout(PyObject *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (int s = 0; s < SP_SCHEME_COUNT; s++)
        for (int k = 0; k < SP_PAGE_KIND_COUNT; k++) {
            PyObject *d = Py_BuildValue("{s:s,s:s,s:n,s:n,s:n}", "kind", sp_page_kind_names[k], "scheme",
                                        sp_scheme_names[s], "content_bytes", (Py_ssize_t)sp_page_content_bytes(k),
                                        "used_bytes", (Py_ssize_t)sp_page_used_bytes(k, s),
                                        "map_bytes", (Py_ssize_t)sp_page_map_bytes(k, s));
            if (!d || PyList_Append(list, d) < 0) {
                Py_XDECREF(d);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(d);
        }
    return list;
}

/* page_fields() -> list of {name, page, string, size, offset} */
static PyObject *sp_py_page_fields(PyObject *self, PyObject *unused)
{
    PyObject *list = PyList_New(SP_FIELD_COUNT);
    if (!list)
        return NULL;
    for (int f = 0; f < SP_FIELD_COUNT; f++) {
        PyObject *d = Py_BuildValue("{s:s,s:s,s:O,s:i,s:i}", "name", sp_fields[f].name, "page",
                                    sp_page_kind_names[sp_fields[f].kind], "string",
                                    sp_fields[f].is_string ? Py_True : Py_False, "size", (int)sp_fields[f].size,
                                    "offset", (int)sp_fields[f].offset);
        if (!d) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, f, d);
    }
    return list;
}

/* ---- one page in a Python buffer (bytearray, mmap of a memfd): for tests and tools ---- */

struct sp_py_buf {
    Py_buffer view;
    int scheme;
};

static int sp_py_get_page(PyObject *obj, const char *scheme_name, int writable, struct sp_py_buf *b)
{
    b->scheme = sp_py_lookup("locking scheme", scheme_name, sp_scheme_names, SP_SCHEME_COUNT);
    if (b->scheme < 0)
        return -1;
    if (PyObject_GetBuffer(obj, &b->view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return -1;
    if (((uintptr_t)b->view.buf & 7u) != 0) {
        PyBuffer_Release(&b->view);
        PyErr_SetString(PyExc_ValueError, "page buffer must be 8-byte aligned (use mmap)");
        return -1;
    }
    return 0;
}

static int sp_py_field(const char *name, int kind_needed, const struct sp_py_buf *b)
{
    int f = sp_field_from_name(name);
    if (f < 0) {
        PyErr_Format(PyExc_ValueError, "unknown page field %s", name);
        return -1;
    }
    if ((size_t)b->view.len < sp_page_used_bytes(sp_fields[f].kind, b->scheme)) {
        PyErr_Format(PyExc_ValueError, "buffer of %zd bytes is smaller than the %s page in scheme %s (%zu bytes)",
                     b->view.len, sp_page_kind_names[sp_fields[f].kind], sp_scheme_names[b->scheme],
                     sp_page_used_bytes(sp_fields[f].kind, b->scheme));
        return -1;
    }
    (void)kind_needed;
    return f;
}

/* page_init(buf, kind, scheme) */
static PyObject *sp_py_page_init(PyObject *self, PyObject *args)
{
    PyObject *obj;
    const char *kind_name, *scheme_name;
    if (!PyArg_ParseTuple(args, "Oss", &obj, &kind_name, &scheme_name))
        return NULL;
    int kind = sp_py_lookup("page kind", kind_name, sp_page_kind_names, SP_PAGE_KIND_COUNT);
    if (kind < 0)
        return NULL;
    struct sp_py_buf b;
    if (sp_py_get_page(obj, scheme_name, 1, &b) < 0)
        return NULL;
    int rc = sp_page_init(b.view.buf, (size_t)b.view.len, kind, b.scheme);
    PyBuffer_Release(&b.view);
    if (rc != 0) {
        PyErr_Format(PyExc_ValueError, "page_init: buffer too small for %s/%s (%zu bytes)", kind_name, scheme_name,
                     sp_page_used_bytes(kind, sp_scheme_from_name(scheme_name)));
        return NULL;
    }
    Py_RETURN_NONE;
}

/* page_write(buf, scheme, field, value): value is an int (word field) or str/bytes (string) */
static PyObject *sp_py_page_write(PyObject *self, PyObject *args)
{
    PyObject *obj, *value;
    const char *scheme_name, *field_name;
    if (!PyArg_ParseTuple(args, "OssO", &obj, &scheme_name, &field_name, &value))
        return NULL;
    struct sp_py_buf b;
    if (sp_py_get_page(obj, scheme_name, 1, &b) < 0)
        return NULL;
    int f = sp_py_field(field_name, -1, &b);
    if (f < 0)
        goto fail;
    if (sp_fields[f].is_string) {
        const char *s;
        Py_ssize_t len;
        if (PyUnicode_Check(value)) {
            s = PyUnicode_AsUTF8AndSize(value, &len);
            if (!s)
                goto fail;
        } else if (PyBytes_Check(value)) {
            s = PyBytes_AS_STRING(value);
            len = PyBytes_GET_SIZE(value);
        } else {
            PyErr_Format(PyExc_TypeError, "field %s takes str or bytes", field_name);
            goto fail;
        }
        sp_page_write_string(b.view.buf, b.scheme, f, s, (size_t)len);
    } else {
        unsigned long long v = PyLong_AsUnsignedLongLongMask(value);
        if (PyErr_Occurred())
            goto fail;
        sp_page_write_word(b.view.buf, b.scheme, f, v);
    }
    PyBuffer_Release(&b.view);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&b.view);
    return NULL;
}

/* page_read(buf, scheme, field) -> (value, retries): int for words, bytes for strings */
static PyObject *sp_py_page_read(PyObject *self, PyObject *args)
{
    PyObject *obj;
    const char *scheme_name, *field_name;
    if (!PyArg_ParseTuple(args, "Oss", &obj, &scheme_name, &field_name))
        return NULL;
    struct sp_py_buf b;
    if (sp_py_get_page(obj, scheme_name, 0, &b) < 0)
        return NULL;
    int f = sp_py_field(field_name, -1, &b);
    if (f < 0) {
        PyBuffer_Release(&b.view);
        return NULL;
    }
    PyObject *out;
    if (sp_fields[f].is_string) {
        char buf[SP_TITLE_MAX + 1];
        unsigned r = sp_page_read_string(b.view.buf, b.scheme, f, buf, sizeof buf);
        out = Py_BuildValue("(yI)", buf, r);
    } else {
        uint64_t v;
        unsigned r = sp_page_read_word(b.view.buf, b.scheme, f, &v);
        out = Py_BuildValue("(KI)", (unsigned long long)v, r);
    }
    PyBuffer_Release(&b.view);
    return out;
}

/* title_read(buf, scheme, max_retries=8, fallback="?", outsz=4096) -> dict (the kernel side) */
static PyObject *sp_py_title_read(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"buf", "scheme", "max_retries", "fallback", "outsz", NULL};
    PyObject *obj;
    const char *scheme_name, *fallback = "?";
    unsigned int max_retries = 8;
    Py_ssize_t outsz = 4096;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os|Isn", kwlist, &obj, &scheme_name, &max_retries, &fallback, &outsz))
        return NULL;
    if (outsz < 1 || outsz > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "title_read: outsz must be 1..1048576");
        return NULL;
    }
    struct sp_py_buf b;
    if (sp_py_get_page(obj, scheme_name, 0, &b) < 0)
        return NULL;
    char *out = PyMem_Malloc((size_t)outsz);
    if (!out) {
        PyBuffer_Release(&b.view);
        return PyErr_NoMemory();
    }
    struct sp_title_result r;
    sp_title_read_bounded(b.view.buf, (size_t)b.view.len, b.scheme, out, (size_t)outsz, max_retries, fallback, &r);
    PyBuffer_Release(&b.view);
    PyObject *d = Py_BuildValue("{s:y,s:s,s:I,s:n,s:O,s:O}", "title", out, "source",
                                r.source == SP_TITLE_FROM_PAGE ? "page" : "fallback", "retries", r.retries,
                                "len", (Py_ssize_t)r.len, "unterminated", r.unterminated ? Py_True : Py_False,
                                "bad_header", r.bad_header ? Py_True : Py_False);
    PyMem_Free(out);
    return d;
}

static PyMethodDef sp_page_py_methods[] = {
    {"lock_stress", (PyCFunction)(void (*)(void))sp_py_lock_stress, METH_VARARGS | METH_KEYWORDS,
     "lock_stress(scheme, op, readers, rate_per_s, duration_s, batch_reads=0, check_every=0, max_samples=200000, "
     "pin=True): one writer (rate_per_s updates/s; 0 none; < 0 flat out) against reader threads; dict of counts "
     "and raw timings."},
    {"lock_timer_overhead_ns", sp_py_lock_timer_overhead_ns, METH_NOARGS,
     "Median cost of the clock read pair the stress harness subtracts."},
    {"title_hostile", (PyCFunction)(void (*)(void))sp_py_title_hostile, METH_VARARGS | METH_KEYWORDS,
     "title_hostile(scheme, mode, max_retries=8, calls=10000, outsz=4096): bounded kernel-side title reads "
     "against a hostile writer; dict of outcomes."},
    {"title_writers", (PyCFunction)(void (*)(void))sp_py_title_writers, METH_VARARGS | METH_KEYWORDS,
     "title_writers(scheme, threads=4, writes_each=100000): threads write the title page at once, then a "
     "bounded read; dict of the final counter, updates and the read."},
    {"page_layout", sp_py_page_layout, METH_NOARGS, "Bytes each page uses and maps in each scheme."},
    {"page_fields", sp_py_page_fields, METH_NOARGS, "The field table: name, page, string, size, offset."},
    {"page_init", sp_py_page_init, METH_VARARGS, "page_init(buf, kind, scheme): zero and write the header."},
    {"page_write", sp_py_page_write, METH_VARARGS, "page_write(buf, scheme, field, value): the writer side."},
    {"page_read", sp_py_page_read, METH_VARARGS, "page_read(buf, scheme, field) -> (value, retries)."},
    {"title_read", (PyCFunction)(void (*)(void))sp_py_title_read, METH_VARARGS | METH_KEYWORDS,
     "title_read(buf, scheme, max_retries=8, fallback='?', outsz=4096): the kernel-side bounded read."},
    {NULL, NULL, 0, NULL},
};

static int sp_page_py_add_names(PyObject *m, const char *attr, const char *const *names, int n)
{
    PyObject *t = PyTuple_New(n);
    if (!t)
        return -1;
    for (int i = 0; i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) {
            Py_DECREF(t);
            return -1;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    if (PyModule_AddObject(m, attr, t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

int sp_page_py_register(PyObject *module)
{
    if (PyModule_AddFunctions(module, sp_page_py_methods) < 0)
        return -1;
    if (sp_page_py_add_names(module, "LOCK_OPS", sp_stress_op_names, SP_STRESS_OP_COUNT) < 0
        || sp_page_py_add_names(module, "HOSTILE_MODES", sp_hostile_mode_names, SP_HOSTILE_COUNT) < 0
        || PyModule_AddIntConstant(module, "PAGE_LAYOUT_VERSION", SP_PAGE_LAYOUT_VERSION) < 0
        || PyModule_AddIntConstant(module, "RING_SLOTS", SP_RING_SLOTS) < 0)
        return -1;
    return 0;
}
