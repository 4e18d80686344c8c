/* frames_310.c: frame reading for CPython 3.10.
 *
 * Checked against CPython 3.10.13 headers.  In 3.10 every Python frame is a
 * PyFrameObject chained through f_back from tstate->frame; f_lasti counts
 * code units (2 bytes each) of the last instruction started, -1 before the
 * first.  Everything here runs with the GIL held by the calling thread
 * except mh_frames_attached_tstate, which is what decides that.
 */
#define Py_BUILD_CORE 1
#include "frames.h"

#include <stddef.h>

#include <frameobject.h>
/* CPython's internal headers are not written for -Wextra. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <internal/pycore_gc.h>
#include <internal/pycore_pystate.h>
#pragma GCC diagnostic pop

#include "frames_gilstate.h"

typedef PyFrameObject mh_walk_frame_t;

/* The walk capture and mh_frames_same share: every frame, innermost
 * first. */
static inline PyFrameObject *
first_frame(PyThreadState *tstate)
{
    return tstate->frame;
}

static inline PyFrameObject *
next_frame(PyFrameObject *f)
{
    return f->f_back;
}

static inline mh_raw_frame_t
read_frame(PyFrameObject *f)
{
    mh_raw_frame_t raw = {
        f->f_code,
        f->f_lasti < 0 ? 0 : (uint32_t)f->f_lasti * sizeof(_Py_CODEUNIT),
    };
    return raw;
}

#include "frames_walk.h"

size_t
mh_frames_preheader_size(PyTypeObject *tp)
{
    /* 3.10: only GC objects have a pre-header, the PyGC_Head. */
    return PyType_IS_GC(tp) ? sizeof(PyGC_Head) : 0;
}

uint64_t
mh_frames_int_sizeof(PyObject *obj)
{
    /* ob_size is the signed digit count; zero has none. */
    Py_ssize_t digits = Py_SIZE(obj);
    return offsetof(PyLongObject, ob_digit) +
           (uint64_t)(digits < 0 ? -digits : digits) * sizeof(digit);
}

PyObject *
mh_frames_type_subclasses(PyTypeObject *type)
{
    PyObject *registry = type->tp_subclasses;
    return registry != NULL && PyDict_CheckExact(registry) ? registry : NULL;
}

PyObject *
mh_frames_local_name(PyObject *frame, PyObject *value)
{
    PyFrameObject *f = (PyFrameObject *)frame;
    PyCodeObject *code = f->f_code;
    if (code == NULL) {
        return NULL;
    }
    /* f_localsplus: the plain locals, then cells for cell and free
     * variables. */
    Py_ssize_t nlocals = code->co_nlocals;
    PyObject *cells = code->co_cellvars, *frees = code->co_freevars;
    Py_ssize_t ncells = PyTuple_GET_SIZE(cells);
    Py_ssize_t n = nlocals + ncells + PyTuple_GET_SIZE(frees);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *slot = f->f_localsplus[i];
        if (slot == NULL ||
            (slot != value && !(i >= nlocals && PyCell_Check(slot) &&
                                PyCell_GET(slot) == value))) {
            continue;
        }
        PyObject *name = i < nlocals ? PyTuple_GET_ITEM(code->co_varnames, i)
                         : i < nlocals + ncells
                             ? PyTuple_GET_ITEM(cells, i - nlocals)
                             : PyTuple_GET_ITEM(frees, i - nlocals - ncells);
        return Py_NewRef(name);
    }
    return NULL;
}

PyObject *
mh_frames_generator_local_name(PyObject *gen, PyObject *value)
{
    (void)gen;
    (void)value;
    return NULL;
}
