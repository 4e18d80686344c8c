/* frames_312.c: frame reading for CPython 3.12.
 *
 * Checked against CPython 3.12.1 headers.  As in 3.11, frames are
 * _PyInterpreterFrame records on a per-thread data stack, reached from
 * tstate->cframe->current_frame and chained through `previous`; prev_instr
 * points at the last instruction started.  Frames that have not run their
 * first traceable instruction yet ("incomplete": still copying free
 * variables or making cells) are skipped at the top of the stack, as
 * CPython's traceback code skips them; so are the shim frames
 * that 3.12 pushes for calls from C (owner FRAME_OWNED_BY_CSTACK).  From 3.12
 * the current thread state is a thread-local that is NULL while the thread
 * does not hold the GIL, which makes the attached check one call.
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
    PyThreadState *mine = _PyThreadState_UncheckedGet();
    if (mine == NULL || !_Py_IsMainInterpreter(mine->interp)) {
        return NULL;
    }
    return mine;
}

PyThreadState *
mh_frames_current_tstate(void)
{
    /* From 3.12 the current thread state is already the calling thread's
     * own, NULL while it does not hold the GIL: the same answer. */
    return mh_frames_attached_tstate();
}

typedef _PyInterpreterFrame mh_walk_frame_t;

/* The walk capture and mh_frames_same share, innermost first, over the
 * program's frames (not the C-stack entry frames).  Frames still in their
 * prologue (making cells, copying free variables) are skipped as CPython's
 * traceback code skips them.  Only the innermost frames can be in that
 * state in practice, and testing the others would read every code object
 * on every walk. */
static inline _PyInterpreterFrame *
first_frame(PyThreadState *tstate)
{
    if (tstate->cframe == NULL) {
        return NULL;
    }
    _PyInterpreterFrame *f = tstate->cframe->current_frame;
    while (f != NULL &&
           (f->owner == FRAME_OWNED_BY_CSTACK || _PyFrame_IsIncomplete(f))) {
        f = f->previous;
    }
    return f;
}

static inline _PyInterpreterFrame *
next_frame(_PyInterpreterFrame *f)
{
    f = f->previous;
    while (f != NULL && f->owner == FRAME_OWNED_BY_CSTACK) {
        f = f->previous;
    }
    return f;
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

#include "frames_objects.h"

PyObject *
mh_frames_type_subclasses(PyTypeObject *type)
{
    PyObject *registry = (PyObject *)type->tp_subclasses;
    if (type->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN) {
        /* tp_subclasses holds the type's index + 1 in the interpreter's
         * table of static builtin types (typeobject.c). */
        struct types_state *types = &PyInterpreterState_Get()->types;
        size_t index = (size_t)type->tp_subclasses - 1;
        if (type->tp_subclasses == NULL ||
            index >= types->num_builtins_initialized ||
            index >= _Py_MAX_STATIC_BUILTIN_TYPES ||
            types->builtins[index].type != type) {
            return NULL;
        }
        registry = types->builtins[index].tp_subclasses;
    }
    return registry != NULL && PyDict_CheckExact(registry) ? registry : NULL;
}

static inline PyCodeObject *
frame_code(_PyInterpreterFrame *f)
{
    return f->f_code;
}

#include "frames_locals.h"
