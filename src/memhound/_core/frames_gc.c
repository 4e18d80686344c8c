/* frames_gc.c: the collector's object lists, read in place (frames.h).
 *
 * gc.get_objects() builds a list of every tracked object (an append and an
 * incref each); the census only needs to look at them.  Checked against the
 * CPython 3.10.13, 3.11.7, 3.12.1 and 3.13.0 headers (default build, not
 * free-threaded): in all four the interpreter's _gc_runtime_state holds
 * generations[NUM_GENERATIONS], each a circular list of PyGC_Head through
 * _gc_next, so one file serves them all.  GIL held.
 */
#define Py_BUILD_CORE 1
#include "frames.h"

/* CPython's internal headers are not written for -Wextra. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <internal/pycore_gc.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_pystate.h>
#pragma GCC diagnostic pop

#include <assert.h>
#include <stddef.h>

/* The layout mh_frames_gc_is_tracked() reads. */
static_assert(sizeof(PyGC_Head) == 2 * sizeof(uintptr_t),
              "PyGC_Head is two words");
static_assert(offsetof(PyGC_Head, _gc_next) == 0, "the next link comes first");

int
mh_frames_gc_visit(int (*visit)(PyObject *obj, void *arg), void *arg)
{
    /* The public call: 3.12+ inlines _PyInterpreterState_GET() through a
     * thread-local that libpython does not export. */
    PyInterpreterState *interp = PyInterpreterState_Get();
    struct _gc_runtime_state *gcstate = &interp->gc;
    for (int i = 0; i < NUM_GENERATIONS; i++) {
        PyGC_Head *head = &gcstate->generations[i].head;
        for (PyGC_Head *gc = _PyGCHead_NEXT(head); gc != head;
             gc = _PyGCHead_NEXT(gc)) {
            int rc = visit((PyObject *)(gc + 1), arg);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}
