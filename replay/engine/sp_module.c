/* The Python method table of syspage.replay._engine.
 * The work sits in small C files beside this one; this file only converts
 * arguments and releases the GIL around the loops (psutil's layout:
 * https://github.com/giampaolo/psutil/tree/master/psutil). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

#include "sp_engine.h"

uint64_t sp_clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static PyObject *sp_py_clock_now_ns(PyObject *self, PyObject *unused)
{
    return PyLong_FromUnsignedLongLong(sp_clock_now_ns());
}

static PyMethodDef sp_methods[] = {
    {"clock_now_ns", sp_py_clock_now_ns, METH_NOARGS, "CLOCK_MONOTONIC in nanoseconds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sp_module = {
    PyModuleDef_HEAD_INIT, "_engine", "syspage replay engine (C).", -1, sp_methods,
};

PyMODINIT_FUNC PyInit__engine(void)
{
    PyObject *m = PyModule_Create(&sp_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "ENGINE_VERSION", SP_ENGINE_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
