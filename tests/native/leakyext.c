/* leakyext.c: a C extension module that leaks on every call, for memhound's
 * native tests.  Built by tests/native/build.py with the system compiler.
 *
 * leak(n) mallocs n bytes with the GIL held and forgets them; fixed(n)
 * frees them; leak_nogil(n) leaks with the GIL released; churn_gilstate
 * runs C threads that take and drop the GIL (PyGILState) around mallocs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
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

/* One C thread of churn_gilstate: each round takes the GIL through
 * PyGILState_Ensure (a fresh thread state each time: the previous one was
 * deleted by the matching Release, and the next thread to ask may get the
 * same address), mallocs, drops the GIL and frees that block without it,
 * then mallocs and frees one without the GIL. */
static void *
gilstate_worker(void *arg)
{
    long rounds = (long)arg;
    for (long i = 0; i < rounds; i++) {
        PyGILState_STATE state = PyGILState_Ensure();
        char *with = malloc(48 + (size_t)(i % 16));
        PyGILState_Release(state);
        if (with != NULL) {
            with[0] = 1;
        }
        free(with);
        char *without = malloc(80);
        if (without != NULL) {
            without[0] = 1;
        }
        free(without);
    }
    return NULL;
}

static PyObject *
ext_churn_gilstate(PyObject *self, PyObject *args)
{
    (void)self;
    int nthreads;
    long rounds;
    if (!PyArg_ParseTuple(args, "il", &nthreads, &rounds)) {
        return NULL;
    }
    pthread_t threads[16];
    int started = 0;
    if (nthreads > 16) {
        nthreads = 16;
    }
    Py_BEGIN_ALLOW_THREADS
    for (; started < nthreads; started++) {
        if (pthread_create(&threads[started], NULL, gilstate_worker,
                           (void *)rounds) != 0) {
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(started);
}

static PyMethodDef methods[] = {
    {"churn_gilstate", ext_churn_gilstate, METH_VARARGS,
     "C threads mallocing with and without the GIL (PyGILState)"},
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
