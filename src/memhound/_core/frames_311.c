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

PyThreadState *
mh_frames_attached_tstate(void)
{
    /* See frames_310.c for why not PyGILState_Check(). */
    PyThreadState *mine = PyGILState_GetThisThreadState();
    if (mine == NULL || mine != _PyThreadState_GET()) {
        return NULL;
    }
    if (!_Py_IsMainInterpreter(mine->interp)) {
        return NULL;
    }
    return mine;
}

PyThreadState *
mh_frames_current_tstate(void)
{
    /* The GIL holder, read inline from _PyRuntime: this runs on every
     * allocation and free of the mem and object domains. */
    PyThreadState *tstate = _PyThreadState_GET();
    if (tstate == NULL || !_Py_IsMainInterpreter(tstate->interp)) {
        return NULL;
    }
    return tstate;
}

int
mh_frames_capture(PyThreadState *tstate, mh_raw_frame_t *out, int max,
                  uint32_t *total)
{
    int n = 0;
    uint32_t depth = 0;
    if (tstate->cframe == NULL) {
        return 0;
    }
    _PyInterpreterFrame *f = tstate->cframe->current_frame;
    /* Frames still in their prologue (making cells, copying free
     * variables) are skipped as CPython's traceback code skips them.  Only
     * the innermost frames can be in that state in practice, and testing
     * the others would read every code object on every walk. */
    while (f != NULL && _PyFrame_IsIncomplete(f)) {
        f = f->previous;
    }
    for (; f != NULL; f = f->previous) {
        if (n < max) {
            PyCodeObject *code = f->f_code;
            out[n].code = code;
            out[n].offset =
                (uint32_t)((char *)f->prev_instr - (char *)_PyCode_CODE(code));
            n++;
        }
        else if (total == NULL) {
            break;
        }
        if (depth < UINT16_MAX) {
            depth++;
        }
    }
    if (total != NULL) {
        *total = depth;
    }
    return n;
}

void *
mh_frames_object_block(PyObject *obj)
{
    /* GC links and, for types with managed dicts/weakrefs, two more
     * pointers sit before the object. */
    return (char *)obj - _PyType_PreHeaderSize(Py_TYPE(obj));
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
