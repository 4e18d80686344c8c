/* gcchurn_binding.c: cycle churn's gc callbacks and Python functions.
 *
 * Two C functions in gc.callbacks mark each collection.  gc calls its
 * callbacks in list order for both phases, so the "stop" one is first in
 * the list and the "start" one last: the counting window is the collection
 * itself, not what the program's own callbacks free.  Moved or removed by
 * the program, they put themselves back from inside the callbacks, by list
 * edits that never make gc skip one of its callbacks (see below), a
 * bounded number per collection ("start" yields the last place to another
 * tool that keeps itself last); what can't be put back in time is counted
 * in `misplaced`.  Python calls are allowed here (no allocator hook runs);
 * nothing raises.  GIL throughout. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "frames.h"
#include "gcchurn.h"
#include "gcchurn_binding.h"
#include "hooks.h"
#include "leaks_binding.h"
#include "rawmem.h"

/* Guarded by the GIL. */
static PyObject *start_callback; /* last in gc.callbacks: opens */
static PyObject *stop_callback;  /* first in gc.callbacks: closes */
static PyObject *callbacks;      /* the gc.callbacks list they were put in */
static double churn_t0;    /* CLOCK_MONOTONIC seconds at the last reset */
static int held;           /* memhound's own collection under way */
static uint64_t misplaced; /* collections whose window may hold what the
                              program's callbacks freed (since the reset) */
static int lost; /* a program took "start" out of gc.callbacks (since the
                    reset): collections went uncounted */
/* Within one collection (GIL; collections don't nest): */
static int repaired;    /* gc_start's edits this phase: 1 insert, 2 append */
static int too_wide;    /* opened while not last in gc.callbacks */
static int stop_called; /* gc_stop ran in this "stop" phase */
/* Since the reset: another callback keeps itself last too (it appended
 * itself after "start" was put back last): "start" stops moving, and its
 * window includes what that callback frees (counted in `misplaced`). */
static int contested;

/* info[key] as a C long, `fallback` when missing or not an int. */
static long
info_long(PyObject *info, const char *key, long fallback)
{
    if (!PyDict_Check(info)) {
        return fallback;
    }
    PyObject *value = PyDict_GetItemString(info, key); /* borrowed */
    if (value == NULL || !PyLong_Check(value)) {
        return fallback;
    }
    long result = PyLong_AsLong(value);
    if (result == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return fallback;
    }
    return result;
}

/* The blocks of gc's own arguments to the callbacks (the phase string,
 * the info dict, its keys and values), which gc frees right after the
 * "start" callbacks, inside the collection: their addresses, at most
 * MH_GCCHURN_IGNORE_MAX, in out[].  Borrowed references only. */
static size_t
own_blocks(PyObject *phase, PyObject *info, uintptr_t *out)
{
    size_t n = 0;
    out[n++] = (uintptr_t)mh_frames_object_block(phase);
    if (!PyDict_Check(info)) {
        return n;
    }
    out[n++] = (uintptr_t)mh_frames_object_block(info);
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (n + 2 <= MH_GCCHURN_IGNORE_MAX &&
           PyDict_Next(info, &pos, &key, &value)) {
        out[n++] = (uintptr_t)mh_frames_object_block(key);
        out[n++] = (uintptr_t)mh_frames_object_block(value);
    }
    return n;
}

static int
is_phase(PyObject *phase, const char *name)
{
    return PyUnicode_Check(phase) &&
           PyUnicode_CompareWithASCIIString(phase, name) == 0;
}

/* Edits of gc.callbacks from inside a callback.  gc calls callbacks[i] for
 * i = 0, 1, ..., re-reading the length each time (invoke_gc_callback():
 * Modules/gcmodule.c in 3.10-3.12, Python/gc.c in 3.13).  So from the
 * callback running at index i: an insert at 0 moves it to i + 1, where gc
 * calls it again; an appended callback is called in the same phase; a
 * removal after i skips nothing.  A removal at or before i would make gc
 * skip one of the program's callbacks: never done.  The list's memory is
 * memhound's own (hooks suspended). */

/* Remove every occurrence of memhound's callbacks from list[from:], by
 * identity (`in` or `remove` would call the program's callbacks' __eq__).
 * 0, or -1 with an exception set. */
static int
remove_ours(PyObject *list, Py_ssize_t from)
{
    for (Py_ssize_t i = PyList_GET_SIZE(list) - 1; i >= from; i--) {
        if (i >= PyList_GET_SIZE(list)) {
            continue;
        }
        PyObject *item = PyList_GET_ITEM(list, i);
        if ((item == start_callback || item == stop_callback) &&
            PyList_SetSlice(list, i, i + 1, NULL) < 0) {
            return -1;
        }
    }
    return 0;
}

/* After the "stop" callback ran at index 0: no other "stop", one "start",
 * last unless `contested` (then the last copy stays where it is).  Edits
 * after index 0 only.  Errors are dropped: the next collection tries
 * again. */
static void
tidy_from_first(PyObject *list)
{
    Py_ssize_t n = PyList_GET_SIZE(list);
    Py_ssize_t keep = -1; /* the "start" kept */
    int extra = 0;
    for (Py_ssize_t i = n - 1; i >= 1; i--) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (item == start_callback && keep < 0) {
            keep = i;
        }
        else {
            extra |= item == start_callback || item == stop_callback;
        }
    }
    int append = keep < 0 || (keep != n - 1 && !contested);
    if (!append && !extra) {
        return; /* the usual case: nothing to do */
    }
    mh_hooks_suspend_thread();
    int rc = append ? PyList_Append(list, start_callback) : 0;
    if (append) {
        keep = PyList_GET_SIZE(list) - 1;
    }
    /* Downwards: a removal never moves `keep` before it is passed. */
    for (Py_ssize_t i = PyList_GET_SIZE(list) - 1; rc == 0 && i >= 1; i--) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (i != keep && (item == start_callback || item == stop_callback)) {
            rc = PyList_SetSlice(list, i, i + 1, NULL);
        }
    }
    mh_hooks_resume_thread();
    if (rc < 0) {
        PyErr_Clear();
    }
}

/* Last in gc.callbacks: a collection starts once the program's callbacks
 * have run. */
static PyObject *
gc_start(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    mh_churn_t *churn = mh_gcchurn_active;
    PyObject *list = callbacks;
    if (nargs != 2 || churn == NULL || held || list == NULL ||
        !is_phase(args[0], "start")) {
        Py_RETURN_NONE;
    }
    stop_called = 0;
    Py_ssize_t n = PyList_GET_SIZE(list);
    int stop_first = n > 0 && PyList_GET_ITEM(list, 0) == stop_callback;
    int start_last = n > 0 && PyList_GET_ITEM(list, n - 1) == start_callback;
    /* The program moved, removed or appended callbacks: put "stop" first,
     * or else "start" last.  Either edit makes gc call this function again
     * in this phase (see above), after every callback that ran before; one
     * edit per call, so that only the last call opens, and each at most
     * once per phase, so that another tool doing the same can't make this
     * loop. */
    if (!start_last && (repaired & 2)) {
        contested = 1; /* a callback appended after ours: let it be last */
    }
    int edit = !stop_first && !(repaired & 1)                 ? 1
               : !start_last && !(repaired & 2) && !contested ? 2
                                                              : 0;
    if (edit) {
        repaired |= edit;
        mh_hooks_suspend_thread();
        int rc = edit == 1 ? PyList_Insert(list, 0, stop_callback)
                           : PyList_Append(list, start_callback);
        mh_hooks_resume_thread();
        if (rc == 0) {
            Py_RETURN_NONE;
        }
        PyErr_Clear(); /* out of memory: open here */
    }
    repaired = 0;
    /* Still not last: what the callbacks after this one free is counted. */
    too_wide = !start_last;
    if (mh_gcchurn_tls_collection != 0) {
        misplaced++; /* the last collection's "stop" never came */
    }
    mh_stats_snapshot_t stats;
    mh_hooks_stats(&stats);
    int generation = (int)info_long(args[1], "generation", 0);
    uintptr_t ignore[MH_GCCHURN_IGNORE_MAX];
    size_t nignore = own_blocks(args[0], args[1], ignore);
    /* Last thing before returning: what this call frees is not counted. */
    mh_churn_begin(churn, generation, stats.generation, mh_monotonic_seconds(),
                   ignore, nignore);
    Py_RETURN_NONE;
}

/* First in gc.callbacks: the collection is over before the program's
 * callbacks run. */
static PyObject *
gc_stop(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    mh_churn_t *churn = mh_gcchurn_active;
    if (nargs != 2 || churn == NULL || !PyUnicode_Check(args[0])) {
        Py_RETURN_NONE;
    }
    if (is_phase(args[0], "start")) {
        stop_called = 0; /* the next "stop" call is that phase's first */
        Py_RETURN_NONE;
    }
    if (!is_phase(args[0], "stop")) {
        Py_RETURN_NONE;
    }
    /* First thing: nothing freed from here on is the collection's (reading
     * the info dict below makes and frees a string). */
    double now = mh_monotonic_seconds();
    int was_open = mh_gcchurn_tls_collection != 0;
    mh_gcchurn_tls_collection = 0;
    mh_churn_end(churn, info_long(args[1], "collected", 0),
                 info_long(args[1], "uncollectable", 0), now);
    int first = !stop_called;
    stop_called = 1;
    repaired = 0;
    PyObject *list = callbacks;
    int in_front = list != NULL && PyList_GET_SIZE(list) > 0 &&
                   PyList_GET_ITEM(list, 0) == stop_callback;
    if (was_open && (too_wide || (first && !in_front))) {
        misplaced++; /* a program's callback ran inside the window */
    }
    too_wide = 0;
    if (!first || list == NULL) {
        Py_RETURN_NONE;
    }
    if (in_front) {
        tidy_from_first(list); /* this call is gc's index 0 */
        Py_RETURN_NONE;
    }
    /* The program put a callback before this one.  Back to the front: gc
     * calls this again (not first then). */
    mh_hooks_suspend_thread();
    if (PyList_Insert(list, 0, stop_callback) < 0) {
        PyErr_Clear();
    }
    mh_hooks_resume_thread();
    Py_RETURN_NONE;
}

static PyMethodDef start_def = {
    "memhound_gc_churn_start", (PyCFunction)(void (*)(void))gc_start,
    METH_FASTCALL,
    "memhound: opens each collection to count what it frees (cycle churn); "
    "keep it last in gc.callbacks."};

static PyMethodDef stop_def = {
    "memhound_gc_churn_stop", (PyCFunction)(void (*)(void))gc_stop,
    METH_FASTCALL,
    "memhound: closes each collection (cycle churn); keep it first in "
    "gc.callbacks."};

/* gc.callbacks, a new reference, or NULL with an exception set. */
static PyObject *
gc_callbacks_new(void)
{
    PyObject *gc = PyImport_ImportModule("gc");
    if (gc == NULL) {
        return NULL;
    }
    PyObject *list = PyObject_GetAttrString(gc, "callbacks");
    Py_DECREF(gc);
    if (list != NULL && !PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "gc.callbacks is not a list");
        Py_CLEAR(list);
    }
    return list;
}

/* Take both callbacks out of gc.callbacks (the list is kept).  Not from
 * inside a gc callback.  0, or -1 with an exception set. */
static int
unregister_callbacks(void)
{
    return callbacks == NULL ? 0 : remove_ours(callbacks, 0);
}

/* Put "stop" first and "start" last in gc.callbacks (each once).  Not
 * from inside a gc callback.  0, or -1 with an exception set. */
static int
register_callbacks(void)
{
    if (start_callback == NULL) {
        start_callback = PyCFunction_NewEx(&start_def, NULL, NULL);
    }
    if (stop_callback == NULL && start_callback != NULL) {
        stop_callback = PyCFunction_NewEx(&stop_def, NULL, NULL);
    }
    if (stop_callback == NULL) {
        return -1;
    }
    PyObject *list = gc_callbacks_new();
    if (list == NULL) {
        return -1;
    }
    if (callbacks != NULL && callbacks != list &&
        remove_ours(callbacks, 0) < 0) {
        PyErr_Clear(); /* a list gc.callbacks no longer names */
    }
    Py_XSETREF(callbacks, list);
    if (remove_ours(list, 0) < 0 ||
        PyList_Insert(list, 0, stop_callback) < 0 ||
        PyList_Append(list, start_callback) < 0) {
        return -1;
    }
    return 0;
}

void
mh_gcchurn_binding_reset(void)
{
    churn_t0 = mh_monotonic_seconds();
    misplaced = 0;
    lost = 0;
    contested = 0;
    if (mh_gcchurn_active != NULL) {
        mh_churn_reset(mh_gcchurn_active);
    }
}

void
mh_gcchurn_binding_stop(void)
{
    mh_churn_t *churn = mh_gcchurn_active;
    /* Detach first: a collection that the list surgery below triggers
     * finds churn off. */
    mh_gcchurn_active = NULL;
    mh_gcchurn_tls_collection = 0;
    held = 0;
    if (unregister_callbacks() < 0) {
        PyErr_WriteUnraisable(NULL);
    }
    Py_CLEAR(start_callback);
    Py_CLEAR(stop_callback);
    Py_CLEAR(callbacks);
    mh_churn_free(churn);
}

int
mh_gcchurn_binding_start(int python, int keep)
{
    if (!python) {
        mh_gcchurn_binding_stop();
        return 0;
    }
    if (mh_gcchurn_active == NULL) {
        mh_churn_t *churn = mh_churn_new();
        if (churn == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        mh_gcchurn_active = churn;
        keep = 0;
    }
    if (!keep) {
        mh_gcchurn_binding_reset();
    }
    /* The callback objects are memhound's, not allocations of the
     * program's. */
    mh_hooks_suspend_thread();
    int rc = register_callbacks();
    mh_hooks_resume_thread();
    if (rc < 0) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        mh_gcchurn_binding_stop();
        PyErr_Restore(type, value, traceback);
        return -1;
    }
    return 0;
}

/* ---- Python functions -------------------------------------------------- */

static int
by_objects_desc(const void *a, const void *b)
{
    const mh_churn_site_t *x = *(const mh_churn_site_t *const *)a;
    const mh_churn_site_t *y = *(const mh_churn_site_t *const *)b;
    if (x->objects != y->objects) {
        return x->objects < y->objects ? 1 : -1;
    }
    return x->traceback < y->traceback ? -1 : x->traceback > y->traceback;
}

static PyObject *
triple_new(const char *format, const void *values)
{
    if (format[0] == 'K') {
        const uint64_t *v = values;
        return Py_BuildValue("[KKK]", (unsigned long long)v[0],
                             (unsigned long long)v[1],
                             (unsigned long long)v[2]);
    }
    const double *v = values;
    return Py_BuildValue("[ddd]", v[0], v[1], v[2]);
}

/* 1 while the "start" callback is in gc.callbacks (or memhound's own
 * collection holds it out): collections are counted, and the callbacks put
 * themselves back in place.  0 when a program took it out: nothing is
 * counted until memhound registers again. */
static int
watching(void)
{
    PyObject *list = callbacks;
    if (held) {
        return 1;
    }
    for (Py_ssize_t i = 0; list != NULL && i < PyList_GET_SIZE(list); i++) {
        if (PyList_GET_ITEM(list, i) == start_callback) {
            return 1;
        }
    }
    return 0;
}

static PyObject *
totals_new(const mh_churn_t *churn)
{
    mh_churn_totals_t t;
    mh_churn_totals(churn, &t);
    PyObject *collections = triple_new("K", t.collections);
    PyObject *collected = triple_new("K", t.collected);
    PyObject *uncollectable = triple_new("K", t.uncollectable);
    PyObject *seconds = triple_new("d", t.seconds);
    PyObject *objects = triple_new("d", t.objects);
    PyObject *result = NULL;
    if (collections && collected && uncollectable && seconds && objects) {
        result = Py_BuildValue(
            "{s:O,s:O,s:O,s:O,s:O,s:d,s:K,s:K,s:i,s:n}", "collections",
            collections, "collected", collected, "uncollectable",
            uncollectable, "seconds", seconds, "objects", objects,
            "discarded_objects", t.discarded_objects, "dropped",
            (unsigned long long)t.dropped, "misplaced",
            (unsigned long long)misplaced, "watching", !lost && watching(),
            "memory", (Py_ssize_t)mh_churn_memory(churn));
    }
    Py_XDECREF(collections);
    Py_XDECREF(collected);
    Py_XDECREF(uncollectable);
    Py_XDECREF(seconds);
    Py_XDECREF(objects);
    return result;
}

static PyObject *
site_new(const mh_churn_site_t *site)
{
    PyObject *frames = mh_binding_traceback_frames_new(site->traceback);
    if (frames == NULL) {
        return NULL;
    }
    PyObject *by_gc = triple_new("d", site->objects_by_gc);
    PyObject *result = NULL;
    if (by_gc != NULL) {
        result = Py_BuildValue("{s:I,s:O,s:d,s:d,s:K,s:I,s:I,s:O}", "site",
                               (unsigned int)site->traceback << 1, "traceback",
                               frames, "objects", site->objects, "blocks",
                               site->blocks, "bytes",
                               (unsigned long long)site->bytes, "collections",
                               (unsigned int)site->collections, "generations",
                               (unsigned int)site->generations,
                               "objects_by_gc_generation", by_gc);
    }
    Py_DECREF(frames);
    Py_XDECREF(by_gc);
    return result;
}

/* The sites with at least min_objects objects, most first, at most limit:
 * a new list, or NULL with an exception set. */
static PyObject *
sites_new(const mh_churn_t *churn, Py_ssize_t limit, double min_objects)
{
    const mh_churn_site_t *sites;
    size_t n = mh_churn_sites(churn, &sites);
    /* Copies, not pointers into the churn table: building the result
     * allocates Python objects, which can start a collection (3.10, 3.11)
     * whose frees grow or reset that table. */
    size_t bytes = (n ? n : 1) * sizeof(mh_churn_site_t);
    mh_churn_site_t *kept_sites = mh_rawmem_malloc(bytes);
    size_t obytes = (n ? n : 1) * sizeof(const mh_churn_site_t *);
    const mh_churn_site_t **order = mh_rawmem_malloc(obytes);
    if (kept_sites == NULL || order == NULL) {
        mh_rawmem_free(kept_sites, bytes);
        mh_rawmem_free(order, obytes);
        return PyErr_NoMemory();
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (sites[i].objects > 0 && sites[i].objects >= min_objects) {
            kept_sites[kept] = sites[i];
            order[kept] = &kept_sites[kept];
            kept++;
        }
    }
    if (kept > 1) {
        qsort(order, kept, sizeof(order[0]), by_objects_desc);
    }
    if ((size_t)limit < kept) {
        kept = (size_t)limit;
    }
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < kept; i++) {
        PyObject *item = site_new(order[i]);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(item);
    }
    mh_rawmem_free(order, obytes);
    mh_rawmem_free(kept_sites, bytes);
    return list;
}

static PyObject *
core_gc_churn(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"limit", "min_objects", NULL};
    Py_ssize_t limit = 10;
    double min_objects = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|nd:gc_churn", kwlist,
                                     &limit, &min_objects)) {
        return NULL;
    }
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 0");
        return NULL;
    }
    mh_churn_t *churn = mh_gcchurn_active;
    if (churn == NULL || !mh_hooks_is_tracing()) {
        return Py_BuildValue("{s:O,s:d,s:n,s:O,s:[]}", "enabled", Py_False,
                             "elapsed", 0.0, "generation", (Py_ssize_t)0,
                             "totals", Py_None, "sites");
    }
    /* Building the result frees nothing of a collection: no collection
     * is open on this thread here (the callback closes it). */
    mh_hooks_suspend_thread();
    PyObject *result = NULL;
    PyObject *totals = totals_new(churn);
    PyObject *sites = totals ? sites_new(churn, limit, min_objects) : NULL;
    if (sites != NULL) {
        mh_stats_snapshot_t stats;
        mh_hooks_stats(&stats);
        result = Py_BuildValue("{s:O,s:d,s:n,s:O,s:O}", "enabled", Py_True,
                               "elapsed", mh_monotonic_seconds() - churn_t0,
                               "generation", (Py_ssize_t)stats.generation,
                               "totals", totals, "sites", sites);
    }
    Py_XDECREF(totals);
    Py_XDECREF(sites);
    mh_hooks_resume_thread();
    return result;
}

static PyObject *
core_gc_churn_hold(PyObject *module, PyObject *arg)
{
    (void)module;
    int on = PyObject_IsTrue(arg);
    if (on < 0) {
        return NULL;
    }
    if (mh_gcchurn_active == NULL) {
        held = on;
        Py_RETURN_NONE;
    }
    /* Out of gc.callbacks while held: gc then builds no info dict for
     * memhound's own collections (on 3.10-3.12 a dict it frees waits in
     * the free list under its allocation's traceback, and the next dict
     * of the program reuses it). */
    if (on && !held && !watching()) {
        lost = 1; /* put back below, but collections were missed */
    }
    mh_hooks_suspend_thread();
    int rc = on ? unregister_callbacks() : register_callbacks();
    mh_hooks_resume_thread();
    if (rc < 0) {
        return NULL; /* `held` unchanged: it says what gc.callbacks holds */
    }
    held = on;
    Py_RETURN_NONE;
}

PyMethodDef mh_gcchurn_methods[] = {
    {"gc_churn", (PyCFunction)(void (*)(void))core_gc_churn,
     METH_VARARGS | METH_KEYWORDS,
     "gc_churn(limit=10, min_objects=1) -> dict: what the cyclic garbage "
     "collector freed, by allocation site (cycle churn)."},
    {"_gc_churn_hold", core_gc_churn_hold, METH_O,
     "_gc_churn_hold(on): memhound's own collections are not counted."},
    {NULL, NULL, 0, NULL},
};
