/* leakyext.c: a C extension module that leaks on every call, for memhound's
 * native tests.  Built by tests/native/build.py with the system compiler.
 *
 * leak(n) mallocs n bytes with the GIL held and forgets them; fixed(n)
 * frees them; leak_nogil(n) leaks with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

static PyObject *
ext_leak(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0) {
        return NULL;
    }
    char *p = malloc((size_t)n);
    if (p == NULL) {
        return PyErr_NoMemory();
    }
    memset(p, 1, (size_t)n);
    return PyLong_FromVoidPtr(p);
}

static PyObject *
ext_fixed(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0) {
        return NULL;
    }
    char *p = malloc((size_t)n);
    if (p == NULL) {
        return PyErr_NoMemory();
    }
    memset(p, 1, (size_t)n);
    free(p);
    Py_RETURN_NONE;
}

static PyObject *
ext_leak_nogil(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0) {
        return NULL;
    }
    char *p;
    Py_BEGIN_ALLOW_THREADS
    p = malloc((size_t)n);
    if (p != NULL) {
        memset(p, 1, (size_t)n);
    }
    Py_END_ALLOW_THREADS
    if (p == NULL) {
        return PyErr_NoMemory();
    }
    return PyLong_FromVoidPtr(p);
}

static PyMethodDef methods[] = {
    {"leak", ext_leak, METH_O, "malloc n bytes and forget them"},
    {"fixed", ext_fixed, METH_O, "malloc n bytes and free them"},
    {"leak_nogil", ext_leak_nogil, METH_O, "leak n bytes without the GIL"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "leakyext", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit_leakyext(void)
{
    return PyModule_Create(&module);
}
