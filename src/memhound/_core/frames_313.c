/* frames_313.c: frame reading for CPython 3.13.
 *
 * Checked against CPython 3.13.0 headers.  As in 3.11, frames are
 * _PyInterpreterFrame records on a per-thread data stack, reached from
 * tstate->current_frame (3.13 dropped cframe) and chained through
 * `previous`; instr_ptr points at the instruction executing, and the code
 * is f_executable, which may be a non-code object for shim frames.  Frames
 * that have not run their first traceable instruction yet ("incomplete":
 * still copying free variables or making cells) are skipped at the top of
 * the stack, as CPython's traceback code skips them; so are, everywhere,
 * the shim frames pushed for calls from C (owner FRAME_OWNED_BY_CSTACK).
 * From 3.12 the current thread state is a thread-local that is NULL while the
 * thread does not hold the GIL, which makes the attached check one call.
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

/* Shim frames are not the program's: the C-stack entry frame, and code
 * the interpreter made itself (CO_NO_MONITORING_EVENTS, new in 3.13: the
 * _Py_InitCleanup shim of specialized __init__ calls, named "__init__" in
 * a file "__init__"). */
static inline int
is_shim(_PyInterpreterFrame *f)
{
    return f->owner == FRAME_OWNED_BY_CSTACK ||
           !PyCode_Check(f->f_executable) ||
           (((PyCodeObject *)f->f_executable)->co_flags &
            CO_NO_MONITORING_EVENTS);
}

typedef _PyInterpreterFrame mh_walk_frame_t;

/* The walk capture and mh_frames_same share, innermost first, over the
 * program's frames.  Frames still in their prologue (making cells, copying
 * free variables) are skipped as CPython's traceback code skips them.
 * Only the innermost frames can be in that state in practice, and testing
 * the others would read every code object on every walk. */
static inline _PyInterpreterFrame *
first_frame(PyThreadState *tstate)
{
    _PyInterpreterFrame *f = tstate->current_frame;
    while (f != NULL &&
           (f->owner == FRAME_OWNED_BY_CSTACK ||
            !PyCode_Check(f->f_executable) || _PyFrame_IsIncomplete(f))) {
        f = f->previous;
    }
    /* The innermost frame is then the program's unless it is a shim of
     * the CO_NO_MONITORING_EVENTS kind, which the walk skips too. */
    while (f != NULL && is_shim(f)) {
        f = f->previous;
    }
    return f;
}

static inline _PyInterpreterFrame *
next_frame(_PyInterpreterFrame *f)
{
    f = f->previous;
    while (f != NULL && is_shim(f)) {
        f = f->previous;
    }
    return f;
}

static inline mh_raw_frame_t
read_frame(_PyInterpreterFrame *f)
{
    PyCodeObject *code = (PyCodeObject *)f->f_executable;
    mh_raw_frame_t raw = {
        code,
        (uint32_t)((char *)f->instr_ptr - (char *)_PyCode_CODE(code)),
    };
    return raw;
}

#include "frames_walk.h"

#include "frames_objects.h"

/* Free-list reuse on 3.13: PyRefTracer (new in 3.13) reports every object
 * creation; memhound passes PyRefTracer_CREATE events on and chains to the
 * tracer that was installed before it.  Guarded by the GIL. */
static void (*creation_callback)(PyObject *obj);
static PyRefTracer chained_tracer;
static void *chained_data;
static int watching;

static int
on_ref_event(PyObject *obj, PyRefTracerEvent event, void *data)
{
    (void)data;
    if (event == PyRefTracer_CREATE && creation_callback != NULL) {
        creation_callback(obj);
    }
    if (chained_tracer != NULL) {
        return chained_tracer(obj, event, chained_data);
    }
    return 0;
}

int
mh_frames_watch_creations(void (*on_create)(PyObject *obj))
{
    creation_callback = on_create;
    if (watching) {
        return 1;
    }
    void *data = NULL;
    PyRefTracer current = PyRefTracer_GetTracer(&data);
    if (current == on_ref_event) { /* left installed by an earlier run */
        watching = 1;
        return 1;
    }
    chained_tracer = current;
    chained_data = data;
    if (PyRefTracer_SetTracer(on_ref_event, NULL) < 0) {
        PyErr_Clear();
        creation_callback = NULL;
        return 0;
    }
    watching = 1;
    return 1;
}

void
mh_frames_unwatch_creations(void)
{
    if (!watching) {
        return;
    }
    creation_callback = NULL;
    void *data = NULL;
    if (PyRefTracer_GetTracer(&data) == on_ref_event) {
        if (PyRefTracer_SetTracer(chained_tracer, chained_data) < 0) {
            PyErr_Clear(); /* stays installed, passing events through */
            return;
        }
        chained_tracer = NULL;
        chained_data = NULL;
    }
    /* Else another tool replaced memhound's tracer: it chains to us no
     * more, and on_ref_event stays harmless if it still calls it. */
    watching = 0;
}

PyObject *
mh_frames_type_subclasses(PyTypeObject *type)
{
    PyObject *registry = (PyObject *)type->tp_subclasses;
    if (type->tp_flags & _Py_TPFLAGS_STATIC_BUILTIN) {
        /* tp_subclasses holds the type's index + 1 in one of two tables,
         * builtin types' or extensions' static types', each indexed from 0
         * (typeobject.c, managed_static_type_state_get): the entry whose
         * type is this one. */
        struct types_state *types = &PyInterpreterState_Get()->types;
        size_t index = (size_t)type->tp_subclasses - 1;
        managed_static_type_state *state = NULL;
        if (type->tp_subclasses == NULL) {
            return NULL;
        }
        if (index < _Py_MAX_MANAGED_STATIC_BUILTIN_TYPES &&
            types->builtins.initialized[index].type == type) {
            state = &types->builtins.initialized[index];
        }
        else if (index < _Py_MAX_MANAGED_STATIC_EXT_TYPES &&
                 types->for_extensions.initialized[index].type == type) {
            state = &types->for_extensions.initialized[index];
        }
        if (state == NULL) {
            return NULL;
        }
        registry = state->tp_subclasses;
    }
    return registry != NULL && PyDict_CheckExact(registry) ? registry : NULL;
}

static inline PyCodeObject *
frame_code(_PyInterpreterFrame *f)
{
    return PyCode_Check(f->f_executable) ? (PyCodeObject *)f->f_executable
                                         : NULL;
}

#include "frames_locals.h"
