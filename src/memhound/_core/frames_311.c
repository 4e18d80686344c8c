/* frames_311.c: frame reading for CPython 3.11.
 *
 * Checked against CPython 3.11.7 headers.  3.11 keeps frames as
 * _PyInterpreterFrame records on a per-thread data stack, reached from
 * tstate->cframe->current_frame and chained through `previous`; prev_instr
 * points at the last instruction started.  Frames that have not run their
 * first traceable instruction yet ("incomplete": still copying free
 * variables or making cells) are skipped at the top of the stack, as
 * CPython's traceback code skips them.
 */
#define Py_BUILD_CORE 1
#include "frames.h"

/* CPython's internal headers are not written for -Wextra. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <internal/pycore_frame.h>
#include <internal/pycore_object.h>
#include <internal/pycore_pystate.h>
#pragma GCC diagnostic pop

#include "frames_gilstate.h"

typedef _PyInterpreterFrame mh_walk_frame_t;

/* The walk capture and mh_frames_same share, innermost first.  Frames
 * still in their prologue (making cells, copying free variables) are
 * skipped as CPython's traceback code skips them.  Only the innermost
 * frames can be in that state in practice, and testing the others would
 * read every code object on every walk. */
static inline _PyInterpreterFrame *
first_frame(PyThreadState *tstate)
{
    if (tstate->cframe == NULL) {
        return NULL;
    }
    _PyInterpreterFrame *f = tstate->cframe->current_frame;
    while (f != NULL && _PyFrame_IsIncomplete(f)) {
        f = f->previous;
    }
    return f;
}

static inline _PyInterpreterFrame *
next_frame(_PyInterpreterFrame *f)
{
    return f->previous;
}

static inline mh_raw_frame_t
read_frame(_PyInterpreterFrame *f)
{
    PyCodeObject *code = f->f_code;
    mh_raw_frame_t raw = {
        code,
        (uint32_t)((char *)f->prev_instr - (char *)_PyCode_CODE(code)),
    };
    return raw;
}

#include "frames_walk.h"

size_t
mh_frames_preheader_size(PyTypeObject *tp)
{
    /* GC links and, for types with managed dicts/weakrefs, two more
     * pointers sit before the object. */
    return _PyType_PreHeaderSize(tp);
}

uint64_t
mh_frames_int_sizeof(PyObject *obj)
{
    /* ob_size is the signed digit count; from 3.11 int.__sizeof__ counts
     * at least one digit, as one is always allocated (zero has none). */
    Py_ssize_t digits = Py_SIZE(obj);
    if (digits < 0) {
        digits = -digits;
    }
    return offsetof(PyLongObject, ob_digit) +
           (uint64_t)(digits > 1 ? digits : 1) * sizeof(digit);
}

PyObject *
mh_frames_type_subclasses(PyTypeObject *type)
{
    PyObject *registry = type->tp_subclasses;
    return registry != NULL && PyDict_CheckExact(registry) ? registry : NULL;
}

static inline PyCodeObject *
frame_code(_PyInterpreterFrame *f)
{
    return f->f_code;
}

#include "frames_locals.h"
