/* frames.h: the one interface to the interpreter's frame layout.
 *
 * Capturing a traceback reads the running interpreter's frames directly:
 * no frame objects are created, no line numbers are computed (that waits
 * for a snapshot or report), nothing is allocated and no reference count
 * changes.  Each CPython version family implements this interface in its
 * own file, frames_3XX.c, checked against that version's headers; setup.py
 * compiles the one for the running interpreter.
 */
#ifndef MH_FRAMES_H
#define MH_FRAMES_H

#include <Python.h>
#include <stdint.h>

/* One captured frame: the code object (borrowed: the caller interns it and
 * takes a reference while it still holds the GIL) and the byte offset of
 * the instruction being executed, as PyCode_Addr2Line() takes it. */
typedef struct {
    PyCodeObject *code;
    uint32_t offset;
} mh_raw_frame_t;

/* The calling thread's state if it holds the GIL of the main interpreter,
 * else NULL.  For the raw domain, which may be called from any thread,
 * with or without the GIL, even during start-up and finalization.  Threads
 * of subinterpreters get NULL (their allocations are traced with an empty
 * traceback).  Never allocates, never raises, takes no lock. */
PyThreadState *mh_frames_attached_tstate(void);

/* The same answer, cheaper, for the mem and object domains, whose callers
 * hold the GIL by contract (as tracemalloc assumes too): the current thread
 * state, or NULL when there is none or it belongs to a subinterpreter. */
PyThreadState *mh_frames_current_tstate(void);

/* The bytes that objects of type tp carry before their PyObject (the GC
 * links, managed dict and weakref pointers).  Can't fail. */
size_t mh_frames_preheader_size(PyTypeObject *tp);

/* The address of the memory block holding obj: the object minus its
 * type's pre-header.  GIL held.  Can't fail. */
void *mh_frames_object_block(PyObject *obj);

/* What int.__sizeof__ returns for obj, an instance of int or of a subclass
 * (the digits' layout changed in 3.12).  Can't fail. */
uint64_t mh_frames_int_sizeof(PyObject *obj);

/* Store up to max frames of tstate's Python stack, innermost first, in
 * out[].  Returns the number stored.  When total is not NULL it receives
 * the depth of the whole stack, saturating at UINT16_MAX (this walks the
 * whole stack; pass NULL to stop at max).  tstate must be the calling
 * thread's, with the GIL held.  Never allocates, raises or touches
 * reference counts. */
int mh_frames_capture(PyThreadState *tstate, mh_raw_frame_t *out, int max,
                      uint32_t *total);

/* Whether mh_frames_capture(tstate, out, max, NULL) would now return n
 * frames equal to last[] reversed (last holds them outermost first, as
 * the traceback cache keeps them): the same code objects at the same
 * offsets, the same number of frames up to max.  The check that lets a
 * thread allocating again at the same place reuse its last traceback
 * without capturing it; its code objects must still be alive (their
 * addresses are compared).  Same thread and GIL rules as capture; reads
 * nothing but the frames; can't fail. */
int mh_frames_same(PyThreadState *tstate, const mh_raw_frame_t *last, int n,
                   int max);

/* The same test without the innermost frame: whether the thread's n - 1
 * outer frames now equal last[0..n-1) (outermost first) and its stack,
 * capped at max, is n frames deep.  The innermost frame, as
 * mh_frames_capture would read it, goes to *innermost.  The check that
 * lets a loop allocating at several instructions of one frame (the loop
 * variable, an operator's result) intern only that frame.  n >= 1; rules
 * as mh_frames_same. */
int mh_frames_same_outer(PyThreadState *tstate, const mh_raw_frame_t *last,
                         int n, int max, mh_raw_frame_t *innermost);

/* The line number of a captured frame, or 0 when unknown.  GIL held.
 * Never raises (clears any error PyCode_Addr2Line might leave). */
int mh_frames_lineno(PyCodeObject *code, uint32_t offset);

/* Objects handed out again from a free list (floats, tuples, lists, dicts,
 * ...) reach no allocator, so without help they keep the traceback and
 * generation of their block's first allocation.  Where this CPython can
 * report every new object (3.13+: PyRefTracer), call on_create(obj) for
 * each, chained with any tracer already installed, and return 1; return 0
 * when this version cannot (nothing is installed).  GIL held.  on_create
 * runs with the GIL held and must not run Python code. */
int mh_frames_watch_creations(void (*on_create)(PyObject *obj));

/* Remove what mh_frames_watch_creations installed, putting back the tracer
 * it chained to (unless another tool replaced memhound's since).  GIL
 * held.  Can't fail. */
void mh_frames_unwatch_creations(void);

/* The dict in which the interpreter registers type's subclasses (subclass
 * address -> weak reference; type.__subclasses__() reads it), or NULL when
 * type has none.  Borrowed.  C holds it, not the type's tp_traverse, so the
 * heap graph sees it as held from outside; memhound names it instead.
 * From 3.12 static builtin types keep it in the interpreter state.  GIL
 * held.  Can't fail. */
PyObject *mh_frames_type_subclasses(PyTypeObject *type);

/* The name of the local or cell variable of the frame object `frame` that
 * holds `value` (directly, or through its cell), as a new str; NULL when
 * no variable of the frame holds it.  Reads the frame's slots: no locals
 * dict or proxy is made.  GIL held.  Never raises. */
PyObject *mh_frames_local_name(PyObject *frame, PyObject *value);

/* The same for a generator, coroutine or async generator that is not
 * finished and embeds its frame (3.11+: no frame object on the way); NULL
 * on 3.10, where the frame object is a node of its own. */
PyObject *mh_frames_generator_local_name(PyObject *gen, PyObject *value);

/* Call visit(obj, arg) for every object in the collector's generations of
 * the calling thread's interpreter, in list order: the objects
 * gc.get_objects() lists (frozen ones excluded), without building a list
 * or touching reference counts.  Stops at the first nonzero return of
 * visit and returns it; else returns 0.  visit must not track, untrack or
 * free an object, allocate a Python object or run Python code (the lists
 * must not change under the walk).  GIL held.  Implemented once, in
 * frames_gc.c, for every supported version. */
int mh_frames_gc_visit(int (*visit)(PyObject *obj, void *arg), void *arg);

/* 1 when the collector tracks obj, whose type is a gc type: what
 * PyObject_GC_IsTracked() answers, without the call and the second type
 * check.  The collector's links sit just before the object, the next link
 * first, 0 while untracked; frames_gc.c checks that layout at build time
 * for every supported version.  GIL held. */
static inline int
mh_frames_gc_is_tracked(PyObject *obj)
{
    return ((const uintptr_t *)obj)[-2] != 0;
}

#endif /* MH_FRAMES_H */
