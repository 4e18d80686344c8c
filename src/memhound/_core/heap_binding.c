/* heap_binding.c: the Python face of the heap-graph engine (heapgraph*.c).
 *
 * A built graph travels to Python as a capsule ("memhound.heapgraph");
 * heap.py keeps it for one query session and releases it explicitly
 * (heap_graph_release) or lets the capsule's destructor do it.  Functions
 * here convert arguments and results and raise; the engine files do the
 * work.  module.c registers mh_heap_methods.  GIL held; memhound's own
 * allocations here are not traced (suspend/resume around them).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "frames.h"
#include "heap_binding.h"
#include "heapgraph.h"
#include "heapgraph_query.h"
#include "hooks.h"
#include "rawmem.h"

#define CAPSULE_NAME "memhound.heapgraph"

static void
capsule_destroy(PyObject *capsule)
{
    mh_heapgraph_t *g = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (g == NULL) {
        PyErr_Clear(); /* released already: its pointer was set to NULL */
        return;
    }
    mh_heapgraph_free(g);
}

/* The graph of a capsule, or NULL with an exception set. */
static mh_heapgraph_t *
graph_of(PyObject *capsule)
{
    if (!PyCapsule_IsValid(capsule, CAPSULE_NAME)) {
        PyErr_SetString(PyExc_ValueError,
                        "not a live heap graph (released already?)");
        return NULL;
    }
    return PyCapsule_GetPointer(capsule, CAPSULE_NAME);
}

/* heap_graph(skip: tuple) -> capsule.  Lists every tracked object with
 * gc.get_objects() and builds the graph, leaving out the objects of
 * `skip` (the caller's own bookkeeping). */
static PyObject *
heap_graph(PyObject *module, PyObject *skip)
{
    (void)module;
    PyObject *gc = NULL, *objects = NULL, *capsule = NULL;
    mh_heapgraph_t *g = NULL;
    if (!PyTuple_Check(skip) || PyTuple_GET_SIZE(skip) > 64) {
        PyErr_SetString(PyExc_TypeError,
                        "skip must be a tuple of at most 64 objects");
        return NULL;
    }
    mh_hooks_suspend_thread();
    gc = PyImport_ImportModule("gc");
    if (gc == NULL) {
        goto done;
    }
    objects = PyObject_CallMethod(gc, "get_objects", NULL);
    if (objects == NULL) {
        goto done;
    }
    if (!PyList_CheckExact(objects)) {
        PyErr_SetString(PyExc_TypeError, "gc.get_objects() returned no list");
        goto done;
    }
    g = mh_heapgraph_build_steal(objects, &PyTuple_GET_ITEM(skip, 0),
                                 (int)PyTuple_GET_SIZE(skip));
    objects = NULL;
    if (g == NULL) {
        goto done;
    }
    capsule = PyCapsule_New(g, CAPSULE_NAME, capsule_destroy);
    if (capsule == NULL) {
        mh_heapgraph_free(g);
    }
done:
    Py_XDECREF(objects);
    Py_XDECREF(gc);
    mh_hooks_resume_thread();
    return capsule;
}

static PyObject *
heap_graph_release(PyObject *module, PyObject *capsule)
{
    (void)module;
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    /* Invalidate the capsule first: the frees below may run finalizers. */
    if (PyCapsule_SetDestructor(capsule, NULL) < 0 ||
        PyCapsule_SetName(capsule, "memhound.heapgraph.released") < 0) {
        return NULL;
    }
    mh_heapgraph_free(g);
    Py_RETURN_NONE;
}

/* heap_graph_info(g) -> dict of sizes (nodes, tracked, edges, memory). */
static PyObject *
heap_graph_info(PyObject *module, PyObject *capsule)
{
    (void)module;
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    size_t tracked = 0, external = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        tracked += (g->flags[i] & MH_HG_TRACKED) != 0;
        external += (g->flags[i] & MH_HG_EXTERNAL) != 0;
    }
    return Py_BuildValue("{s:I,s:n,s:n,s:I,s:n}", "nodes", g->nnodes,
                         "tracked", (Py_ssize_t)tracked, "external",
                         (Py_ssize_t)external, "edges", g->nedges, "memory",
                         (Py_ssize_t)mh_heapgraph_memory(g));
}

/* heap_unreachable_by_site(g) -> {traceback index: (bytes, blocks)} of the
 * traced nodes that are unreachable garbage. */
static PyObject *
heap_unreachable_by_site(PyObject *module, PyObject *capsule)
{
    (void)module;
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    mh_hg_sitesum_t *sums = NULL;
    size_t nsums = 0;
    PyObject *result = NULL;
    mh_hooks_suspend_thread();
    if (mh_heapgraph_mark_live(g) < 0 ||
        mh_heapgraph_garbage_by_site(g, &sums, &nsums) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyDict_New();
    if (result == NULL) {
        goto done;
    }
    for (size_t i = 0; i < nsums; i++) {
        PyObject *key = PyLong_FromUnsignedLong(sums[i].traceback);
        PyObject *value = Py_BuildValue("(KK)", sums[i].bytes, sums[i].blocks);
        if (key == NULL || value == NULL ||
            PyDict_SetItem(result, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
done:
    mh_rawmem_free(sums, nsums * sizeof(mh_hg_sitesum_t));
    mh_hooks_resume_thread();
    return result;
}

/* heap_object_site(obj) -> (traceback index, block size) of obj's traced
 * block, or None. */
static PyObject *
heap_object_site(PyObject *module, PyObject *obj)
{
    (void)module;
    uint32_t tb;
    uint64_t size;
    uint16_t gen;
    uint8_t domain;
    if (!mh_hooks_is_tracing() ||
        !mh_hooks_lookup((uintptr_t)mh_frames_object_block(obj), &tb, &size,
                         &gen, &domain)) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(kK)", (unsigned long)tb, (unsigned long long)size);
}

PyMethodDef mh_heap_methods[] = {
    {"heap_object_site", heap_object_site, METH_O,
     "(traceback index, block size) of obj's traced block, or None"},
    {"heap_graph", heap_graph, METH_O,
     "heap_graph(skip: tuple) -> capsule: the heap graph of every tracked "
     "object, built in C"},
    {"heap_graph_release", heap_graph_release, METH_O,
     "free a heap graph and its references now"},
    {"heap_graph_info", heap_graph_info, METH_O, "sizes of a heap graph"},
    {"heap_unreachable_by_site", heap_unreachable_by_site, METH_O,
     "{traceback index: (bytes, blocks)} of traced unreachable garbage"},
    {NULL, NULL, 0, NULL},
};
