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
#include <frameobject.h> /* PyFrame_Check on 3.10 */

#include <string.h>

#include "frames.h"
#include "heap_binding.h"
#include "heapgraph.h"
#include "heapgraph_census.h"
#include "heapgraph_dominators.h"
#include "heapgraph_query.h"
#include "hooks.h"
#include "rawmem.h"
#include "table.h"

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

/* heap_graph(skip: tuple) -> capsule.  Builds the graph of every tracked
 * object, leaving out the objects of `skip` (the caller's own
 * bookkeeping). */
static PyObject *
heap_graph(PyObject *module, PyObject *skip)
{
    (void)module;
    if (!PyTuple_Check(skip) || PyTuple_GET_SIZE(skip) > 64) {
        PyErr_SetString(PyExc_TypeError,
                        "skip must be a tuple of at most 64 objects");
        return NULL;
    }
    mh_hooks_suspend_thread();
    PyObject *capsule = NULL;
    mh_heapgraph_t *g = mh_heapgraph_build(&PyTuple_GET_ITEM(skip, 0),
                                           (int)PyTuple_GET_SIZE(skip));
    if (g != NULL) {
        capsule = PyCapsule_New(g, CAPSULE_NAME, capsule_destroy);
        if (capsule == NULL) {
            mh_heapgraph_free(g);
        }
    }
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

/* heap_module_dicts() -> [(name, module dict)] of sys.modules, modules
 * only, read in C (no attribute lookup on the module objects). */
static PyObject *
heap_module_dicts(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *modules = PySys_GetObject("modules"); /* borrowed */
    if (modules == NULL || !PyDict_Check(modules)) {
        return PyList_New(0);
    }
    PyObject *result = PyList_New(0);
    if (result == NULL) {
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *name, *mod;
    while (PyDict_Next(modules, &pos, &name, &mod)) {
        if (!PyUnicode_Check(name) || !PyModule_Check(mod)) {
            continue;
        }
        PyObject *dict = PyModule_GetDict(mod); /* borrowed */
        if (dict == NULL) {
            PyErr_Clear();
            continue;
        }
        PyObject *item = PyTuple_Pack(2, name, dict);
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(item);
    }
    return result;
}

/* Append to `found` (name, type, registry) for type and, through the
 * registries, every subclass not in `seen` yet (a set of addresses). */
static int
add_subclass_registries(PyTypeObject *type, PyObject *seen, PyObject *found)
{
    PyObject *queue = PyList_New(0);
    if (queue == NULL || PyList_Append(queue, (PyObject *)type) < 0) {
        goto error;
    }
    for (Py_ssize_t next = 0; next < PyList_GET_SIZE(queue); next++) {
        PyTypeObject *t = (PyTypeObject *)PyList_GET_ITEM(queue, next);
        PyObject *registry = mh_frames_type_subclasses(t); /* borrowed */
        if (registry == NULL || PyDict_GET_SIZE(registry) == 0) {
            continue;
        }
        /* tp_name is any C string: never fail on bad UTF-8 */
        PyObject *name = PyUnicode_DecodeUTF8(
            t->tp_name, (Py_ssize_t)strlen(t->tp_name), "replace");
        PyObject *item =
            name == NULL ? NULL : PyTuple_Pack(3, name, t, registry);
        Py_XDECREF(name);
        if (item == NULL || PyList_Append(found, item) < 0) {
            Py_XDECREF(item);
            goto error;
        }
        Py_DECREF(item);
        Py_ssize_t pos = 0;
        PyObject *key, *ref;
        while (PyDict_Next(registry, &pos, &key, &ref)) {
            /* Read the weak reference's target without calling anything:
             * a dead one points at None. */
            PyObject *sub = PyWeakref_Check(ref)
                                ? ((PyWeakReference *)ref)->wr_object
                                : NULL;
            if (sub == NULL || !PyType_Check(sub) || Py_REFCNT(sub) <= 0) {
                continue;
            }
            PyObject *address = PyLong_FromVoidPtr(sub);
            int known = address == NULL ? -1 : PySet_Contains(seen, address);
            if (known == 0 && (PySet_Add(seen, address) < 0 ||
                               PyList_Append(queue, sub) < 0)) {
                known = -1;
            }
            Py_XDECREF(address);
            if (known < 0) {
                goto error;
            }
        }
    }
    Py_DECREF(queue);
    return 0;
error:
    Py_XDECREF(queue);
    return -1;
}

/* heap_subclass_registries() -> [(type name, type, registry dict)]: the
 * dicts in which the interpreter registers each type's subclasses, for
 * every type with subclasses (walked down from object).  The interpreter,
 * not the types' tp_traverse, holds them, so the heap graph would show
 * them as anonymous dicts held from outside; heap.py names them. */
static PyObject *
heap_subclass_registries(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *found = PyList_New(0);
    PyObject *seen = PySet_New(NULL);
    if (found == NULL || seen == NULL ||
        add_subclass_registries(&PyBaseObject_Type, seen, found) < 0) {
        Py_CLEAR(found);
    }
    Py_XDECREF(seen);
    return found;
}

/* heap_prepare_paths(g, roots: list, structural, last=None) -> number of
 * nodes reached.  One breadth-first search from the labelled roots (in
 * order), continued from every node held from outside the graph, gives
 * every node its shortest path.  The first `structural` roots are the
 * program's structure (module namespaces, registries), never reported as
 * retainers; the others (frame locals) are data.  `last` (why_alive's
 * target, which its caller's frame holds) starts a search of its own only
 * after all the others. */
static PyObject *
heap_prepare_paths(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *capsule, *roots, *last = NULL;
    Py_ssize_t structural;
    if (!PyArg_ParseTuple(args, "OO!n|O:heap_prepare_paths", &capsule,
                          &PyList_Type, &roots, &structural, &last)) {
        return NULL;
    }
    if (structural < 0 || structural > PyList_GET_SIZE(roots)) {
        PyErr_SetString(PyExc_ValueError,
                        "structural must be in [0; len(roots)]");
        return NULL;
    }
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    size_t nroots = (size_t)PyList_GET_SIZE(roots);
    uint32_t *ids = mh_rawmem_malloc(nroots * sizeof(uint32_t));
    uint32_t *parent = mh_rawmem_map((size_t)g->nnodes * sizeof(uint32_t));
    uint32_t *ext = NULL;
    size_t next = 0;
    int64_t reached = -1;
    if (ids == NULL || parent == NULL) {
        goto done;
    }
    /* (an empty list may have no item array at all) */
    PyObject *const *items = nroots ? &PyList_GET_ITEM(roots, 0) : NULL;
    if (mh_heapgraph_find_many(g, items, nroots, ids) < 0) {
        goto done;
    }
    memset(parent, 0xff, (size_t)g->nnodes * sizeof(uint32_t));
    if (mh_heapgraph_mark_live(g) < 0 ||
        mh_heapgraph_external_nodes(g, &ext, &next) < 0) {
        goto done;
    }
    uint32_t last_id = last == NULL ? MH_HG_NONE : mh_heapgraph_find(g, last);
    for (size_t i = 0; i < next; i++) {
        if (ext[i] == last_id) {
            ext[i] = MH_HG_NONE; /* mh_heapgraph_bfs skips it */
        }
    }
    int64_t a = mh_heapgraph_bfs(g, ids, nroots, parent);
    int64_t b = a < 0 ? -1 : mh_heapgraph_bfs(g, ext, next, parent);
    int64_t c = b < 0 ? -1 : mh_heapgraph_bfs(g, &last_id, 1, parent);
    if (c < 0) {
        goto done;
    }
    reached = a + b + c;
    mh_rawmem_unmap(g->parent, (size_t)g->nnodes * sizeof(uint32_t));
    mh_rawmem_free(g->roots, g->nroots * sizeof(uint32_t));
    g->parent = parent;
    g->roots = ids;
    g->nroots = nroots;
    g->nstructural = (size_t)structural;
    parent = NULL;
    ids = NULL;
done:
    mh_rawmem_free(ext, next * sizeof(uint32_t));
    mh_rawmem_free(ids, nroots * sizeof(uint32_t));
    mh_rawmem_unmap(parent, (size_t)g->nnodes * sizeof(uint32_t));
    if (reached < 0) {
        return PyErr_NoMemory();
    }
    return PyLong_FromLongLong(reached);
}

static const char *const edge_kinds[] = {
    [MH_HG_EDGE_OTHER] = "other",
    [MH_HG_EDGE_DICT_VALUE] = "dict_value",
    [MH_HG_EDGE_DICT_KEY] = "dict_key",
    [MH_HG_EDGE_INDEX] = "index",
    [MH_HG_EDGE_SET] = "set",
    [MH_HG_EDGE_ATTR] = "attr",
    [MH_HG_EDGE_OWN_DICT] = "own_dict",
    [MH_HG_EDGE_CLOSURE] = "closure",
    [MH_HG_EDGE_CELL] = "cell",
    [MH_HG_EDGE_FRAME] = "frame",
    [MH_HG_EDGE_THREAD_DATA] = "thread_data",
};

/* Paths longer than this are cut at the target's end (a BFS path this
 * long is a linked structure; its first steps say where it hangs). */
#define MAX_PATH 4096

/* (root, steps) for node id: root is the index of the labelled root the
 * path starts from, -1 for a node held from outside the graph, -2 for
 * unreachable garbage; steps[0] is ("root", "", 0, False, type name) for
 * the first node, then one (kind, text, index, ident, type name) per
 * edge. */
static PyObject *
path_of_node(mh_heapgraph_t *g, uint32_t id)
{
    uint32_t chain[MAX_PATH];
    size_t len = 0;
    long root = -2;
    uint32_t u = id;
    if (g->parent != NULL && g->parent[id] != MH_HG_NONE) {
        while (len < MAX_PATH) {
            chain[len++] = u;
            if (g->parent[u] == MH_HG_ROOT) {
                break;
            }
            u = g->parent[u];
        }
        root = -1;
        for (size_t i = 0; i < g->nroots; i++) {
            if (g->roots[i] == chain[len - 1]) {
                root = (long)i;
                break;
            }
        }
    }
    else {
        chain[len++] = id;
    }
    PyObject *steps = PyList_New(0);
    if (steps == NULL) {
        return NULL;
    }
    char tname[96];
    for (size_t k = len; k-- > 0;) {
        PyObject *obj = g->objs[chain[k]];
        mh_heapgraph_type_name(Py_TYPE(obj), tname, sizeof(tname));
        mh_hg_edge_t edge = {.kind = MH_HG_EDGE_OTHER};
        const char *kind = "root";
        if (k + 1 < len) {
            PyObject *holder = g->objs[chain[k + 1]];
            PyObject *grand = k + 2 < len ? g->objs[chain[k + 2]] : NULL;
            mh_heapgraph_label(grand, holder, obj, &edge);
            kind = edge_kinds[edge.kind];
        }
        PyObject *step =
            Py_BuildValue("(ssnNs)", kind, k + 1 < len ? edge.text : "",
                          edge.index, PyBool_FromLong(edge.ident), tname);
        if (step == NULL || PyList_Append(steps, step) < 0) {
            Py_XDECREF(step);
            Py_DECREF(steps);
            return NULL;
        }
        Py_DECREF(step);
    }
    return Py_BuildValue("(lN)", root, steps);
}

/* heap_path(g, obj) -> (root, steps) (see path_of_node), or None when obj
 * is not in the graph. */
/* Parse (graph, obj) for the functions named `format` ("OO:name"): 1 with
 * *g and *id set, 0 when obj is not in the graph, -1 with an exception
 * set. */
static int
graph_node_arg(PyObject *args, const char *format, mh_heapgraph_t **g,
               uint32_t *id)
{
    PyObject *capsule, *obj;
    if (!PyArg_ParseTuple(args, format, &capsule, &obj)) {
        return -1;
    }
    *g = graph_of(capsule);
    if (*g == NULL) {
        return -1;
    }
    *id = mh_heapgraph_find(*g, obj);
    return *id != MH_HG_NONE;
}

static PyObject *
heap_path(PyObject *module, PyObject *args)
{
    (void)module;
    mh_heapgraph_t *g;
    uint32_t id;
    int found = graph_node_arg(args, "OO:heap_path", &g, &id);
    if (found < 0) {
        return NULL;
    }
    if (!found) {
        Py_RETURN_NONE;
    }
    return path_of_node(g, id);
}

static PyObject *
type_name_new(PyTypeObject *tp)
{
    char name[96];
    if (tp == NULL) {
        return PyUnicode_FromString("(other types)");
    }
    mh_heapgraph_type_name(tp, name, sizeof(name));
    return PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "replace");
}

static PyObject *
site_dict_new(mh_heapgraph_t *g, const mh_hg_site_t *s, int with_retained)
{
    PyObject *types = PyList_New(0), *groups = PyList_New(0), *d = NULL;
    if (types == NULL || groups == NULL) {
        goto done;
    }
    for (size_t i = 0; i < s->ntypes; i++) {
        PyObject *t = Py_BuildValue("(NKK)", type_name_new(s->types[i].type),
                                    (unsigned long long)s->types[i].count,
                                    (unsigned long long)s->types[i].bytes);
        if (t == NULL || PyList_Append(types, t) < 0) {
            Py_XDECREF(t);
            goto done;
        }
        Py_DECREF(t);
    }
    for (size_t i = 0; i < s->ngroups; i++) {
        PyObject *path = path_of_node(g, s->groups[i].example);
        PyObject *t =
            path == NULL
                ? NULL
                : Py_BuildValue(
                      "(NKO)", path, (unsigned long long)s->groups[i].objects,
                      s->groups[i].holder == MH_HG_GARBAGE ? Py_True
                                                           : Py_False);
        if (t == NULL || PyList_Append(groups, t) < 0) {
            Py_XDECREF(t);
            goto done;
        }
        Py_DECREF(t);
    }
    d = Py_BuildValue(
        "{s:k,s:K,s:K,s:K,s:K,s:O,s:O,s:N}", "site",
        (unsigned long)s->traceback, "bytes", (unsigned long long)s->bytes,
        "blocks", (unsigned long long)s->blocks, "unreachable_bytes",
        (unsigned long long)s->garbage_bytes, "unreachable_blocks",
        (unsigned long long)s->garbage_blocks, "types", types, "groups",
        groups, "retained_bytes",
        with_retained ? PyLong_FromUnsignedLongLong(s->retained)
                      : Py_NewRef(Py_None));
done:
    Py_XDECREF(types);
    Py_XDECREF(groups);
    return d;
}

/* heap_sites(g, sites: list[int], retained: bool) -> [dict] per site: the
 * site's objects in the graph (bytes, blocks, types), how many are
 * unreachable garbage, the ways they are held (one path per group, with
 * the number of objects it covers), and (retained=True) retained bytes.
 * heap_prepare_paths must have run. */
static PyObject *
heap_sites(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *capsule, *list;
    int with_retained = 0;
    if (!PyArg_ParseTuple(args, "OO!p:heap_sites", &capsule, &PyList_Type,
                          &list, &with_retained)) {
        return NULL;
    }
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    size_t n = (size_t)PyList_GET_SIZE(list);
    mh_hg_site_t *sites = mh_rawmem_calloc(n ? n : 1, sizeof(mh_hg_site_t));
    PyObject *result = NULL;
    if (sites == NULL) {
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < n; i++) {
        unsigned long tb = PyLong_AsUnsignedLong(PyList_GET_ITEM(list, i));
        if (PyErr_Occurred()) {
            goto done;
        }
        sites[i].traceback = (uint32_t)tb;
    }
    mh_hooks_suspend_thread();
    int failed = (with_retained && mh_heapgraph_ensure_dominators(g) < 0) ||
                 mh_heapgraph_sites(g, sites, n) < 0;
    mh_hooks_resume_thread();
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyList_New((Py_ssize_t)n);
    if (result == NULL) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *d = site_dict_new(g, &sites[i], with_retained);
        if (d == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)i, d);
    }
done:
    mh_rawmem_free(sites, (n ? n : 1) * sizeof(mh_hg_site_t));
    return result;
}

/* 1 when node id is part of the program's structure rather than its data:
 * modules, classes, their __dict__s, frames, the structural roots (not the
 * locals of running frames: a function's 1 GB local list is data). */
static int
is_structural(const mh_heapgraph_t *g, uint32_t id)
{
    PyObject *obj = g->objs[id];
    if (PyModule_Check(obj) || PyType_Check(obj) || PyFrame_Check(obj)) {
        return 1;
    }
    for (size_t i = 0; i < g->nstructural; i++) {
        if (g->roots[i] == id) {
            return 1;
        }
    }
    uint32_t d = g->idom[id];
    return PyDict_Check(obj) && d != MH_DOM_NONE &&
           (PyModule_Check(g->objs[d]) || PyType_Check(g->objs[d]));
}

/* heap_largest_retainers(g, k) -> [(path, retained, size)] of the k data
 * objects with the largest retained sizes (modules, classes and their
 * namespaces left out).  heap_prepare_paths must have run. */
static PyObject *
heap_largest_retainers(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *capsule;
    int k;
    if (!PyArg_ParseTuple(args, "Oi:heap_largest_retainers", &capsule, &k)) {
        return NULL;
    }
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    if (k < 0 || k > 1000) {
        PyErr_SetString(PyExc_ValueError, "k must be in [0; 1000]");
        return NULL;
    }
    mh_hooks_suspend_thread();
    int failed = mh_heapgraph_ensure_dominators(g) < 0;
    mh_hooks_resume_thread();
    if (failed) {
        return PyErr_NoMemory();
    }
    /* Top k by selection into a small sorted array. */
    uint32_t top[1000];
    int ntop = 0;
    for (uint32_t id = 0; id < g->nnodes && k > 0; id++) {
        uint64_t r = g->retained[id];
        if (ntop == k && r <= g->retained[top[ntop - 1]]) {
            continue;
        }
        if (is_structural(g, id)) {
            continue;
        }
        int pos = ntop < k ? ntop++ : k - 1;
        while (pos > 0 && g->retained[top[pos - 1]] < r) {
            top[pos] = top[pos - 1];
            pos--;
        }
        top[pos] = id;
    }
    PyObject *result = PyList_New(0);
    for (int i = 0; result != NULL && i < ntop; i++) {
        PyObject *path = path_of_node(g, top[i]);
        PyObject *t =
            path == NULL
                ? NULL
                : Py_BuildValue(
                      "(NKK)", path, (unsigned long long)g->retained[top[i]],
                      (unsigned long long)mh_heapgraph_size(g, top[i]));
        if (t == NULL || PyList_Append(result, t) < 0) {
            Py_CLEAR(result);
        }
        Py_XDECREF(t);
    }
    return result;
}

/* heap_retained(g, obj) -> retained bytes of obj, or None when obj is not
 * in the graph. */
static PyObject *
heap_retained(PyObject *module, PyObject *args)
{
    (void)module;
    mh_heapgraph_t *g;
    uint32_t id;
    int found = graph_node_arg(args, "OO:heap_retained", &g, &id);
    if (found < 0) {
        return NULL;
    }
    if (!found) {
        Py_RETURN_NONE;
    }
    mh_hooks_suspend_thread();
    int failed = mh_heapgraph_ensure_dominators(g) < 0;
    mh_hooks_resume_thread();
    if (failed) {
        return PyErr_NoMemory();
    }
    return PyLong_FromUnsignedLongLong(g->retained[id]);
}

/* heap_retained_one(g, roots: list, obj) -> retained bytes of obj, or None
 * when obj is not in the graph.  The dominator tree's value when the graph
 * has one already; else three walks from the roots (the objects of
 * `roots`), no tree (mh_heapgraph_retained_one). */
static PyObject *
heap_retained_one(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *capsule, *roots, *obj;
    if (!PyArg_ParseTuple(args, "OO!O:heap_retained_one", &capsule,
                          &PyList_Type, &roots, &obj)) {
        return NULL;
    }
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    uint32_t id = mh_heapgraph_find(g, obj);
    if (id == MH_HG_NONE) {
        Py_RETURN_NONE;
    }
    if (g->retained != NULL) {
        return PyLong_FromUnsignedLongLong(g->retained[id]);
    }
    size_t nroots = (size_t)PyList_GET_SIZE(roots);
    uint32_t *ids = mh_rawmem_malloc((nroots ? nroots : 1) * sizeof(uint32_t));
    if (ids == NULL) {
        return PyErr_NoMemory();
    }
    /* (an empty list may have no item array at all) */
    PyObject *const *items = nroots ? &PyList_GET_ITEM(roots, 0) : NULL;
    uint64_t bytes = 0;
    mh_hooks_suspend_thread();
    int failed = mh_heapgraph_find_many(g, items, nroots, ids) < 0 ||
                 mh_heapgraph_retained_one(g, ids, nroots, id, &bytes) < 0;
    mh_hooks_resume_thread();
    mh_rawmem_free(ids, (nroots ? nroots : 1) * sizeof(uint32_t));
    if (failed) {
        return PyErr_NoMemory();
    }
    return PyLong_FromUnsignedLongLong(bytes);
}

/* heap_retained_alone(obj) -> retained bytes of obj, computed from obj's
 * reach alone, no graph (mh_heapgraph_retained_alone). */
static PyObject *
heap_retained_alone(PyObject *module, PyObject *obj)
{
    (void)module;
    uint64_t bytes = 0;
    mh_hooks_suspend_thread();
    /* No collection (and so no finalizer) while the walk's borrowed
     * pointers are in use: sizes may call builtin __sizeof__. */
    int was_enabled = PyGC_Disable();
    int failed = mh_heapgraph_retained_alone(obj, &bytes) < 0;
    if (was_enabled) {
        PyGC_Enable();
    }
    mh_hooks_resume_thread();
    if (failed) {
        return PyErr_NoMemory();
    }
    return PyLong_FromUnsignedLongLong(bytes);
}

/* heap_retained_by_type(g) -> [(type name, count, bytes, retained)], the
 * largest retained first.  heap_prepare_paths must have run (roots). */
static PyObject *
heap_retained_by_type(PyObject *module, PyObject *capsule)
{
    (void)module;
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    mh_hg_typeret_t *rows = NULL;
    size_t nrows = 0;
    mh_hooks_suspend_thread();
    int failed = mh_heapgraph_retained_by_type(g, &rows, &nrows) < 0;
    mh_hooks_resume_thread();
    if (failed) {
        return PyErr_NoMemory();
    }
    PyObject *result = PyList_New(0);
    for (size_t i = 0; result != NULL && i < nrows; i++) {
        PyObject *t = Py_BuildValue("(NKKK)", type_name_new(rows[i].type),
                                    (unsigned long long)rows[i].count,
                                    (unsigned long long)rows[i].bytes,
                                    (unsigned long long)rows[i].retained);
        if (t == NULL || PyList_Append(result, t) < 0) {
            Py_CLEAR(result);
        }
        Py_XDECREF(t);
    }
    mh_rawmem_free(rows, (nrows ? nrows : 1) * sizeof(*rows));
    return result;
}

/* heap_census(skip: tuple) -> {type name: (count, bytes)} of every
 * tracked object and every untracked object reachable from them. */
static PyObject *
heap_census(PyObject *module, PyObject *skip)
{
    (void)module;
    if (!PyTuple_Check(skip) || PyTuple_GET_SIZE(skip) > 64) {
        PyErr_SetString(PyExc_TypeError,
                        "skip must be a tuple of at most 64 objects");
        return NULL;
    }
    PyObject *result = NULL;
    mh_census_row_t *rows = NULL;
    size_t nrows = 0;
    mh_hooks_suspend_thread();
    /* Sizes may call builtin __sizeof__ methods, which allocate: no
     * collection (and so no finalizer) may run while the walk's borrowed
     * pointers are in use. */
    int was_enabled = PyGC_Disable();
    if (mh_census_take(&PyTuple_GET_ITEM(skip, 0), (int)PyTuple_GET_SIZE(skip),
                       &rows, &nrows) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyDict_New();
    for (size_t i = 0; result != NULL && i < nrows; i++) {
        PyObject *name = type_name_new(rows[i].type);
        PyObject *old =
            name == NULL ? NULL : PyDict_GetItemWithError(result, name);
        unsigned long long count = rows[i].count, bytes = rows[i].bytes;
        if (old != NULL) {
            /* Two types with one name (a class defined twice): merge. */
            count += PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(old, 0));
            bytes += PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(old, 1));
        }
        PyObject *value = name == NULL || PyErr_Occurred()
                              ? NULL
                              : Py_BuildValue("(KK)", count, bytes);
        if (value == NULL || PyDict_SetItem(result, name, value) < 0) {
            Py_CLEAR(result);
        }
        Py_XDECREF(name);
        Py_XDECREF(value);
    }
done:
    mh_rawmem_free(rows, nrows * sizeof(mh_census_row_t));
    if (was_enabled) {
        PyGC_Enable();
    }
    mh_hooks_resume_thread();
    return result;
}

/* heap_garbage_types(g) -> [(type name, count, bytes, has_finalizer)] of
 * the unreachable garbage nodes, largest first.  heap_prepare_paths or
 * heap_unreachable_by_site must have marked liveness. */
static PyObject *
heap_garbage_types(PyObject *module, PyObject *capsule)
{
    (void)module;
    mh_heapgraph_t *g = graph_of(capsule);
    if (g == NULL) {
        return NULL;
    }
    mh_hooks_suspend_thread();
    int failed = mh_heapgraph_ensure_sites(g) < 0;
    mh_hooks_resume_thread();
    if (failed) {
        return PyErr_NoMemory();
    }
    /* Keyed by type pointer in C: a metaclass's __hash__ must not run. */
    mh_table_t index;
    mh_table_init(&index);
    mh_census_row_t *rows = NULL;
    size_t nrows = 0, cap = 0;
    PyObject *result = NULL;
    for (uint32_t id = 0; id < g->nnodes; id++) {
        if (g->flags[id] & MH_HG_LIVE) {
            continue;
        }
        PyTypeObject *tp = Py_TYPE(g->objs[id]);
        uint32_t row;
        if (!mh_table_get(&index, (uint64_t)(uintptr_t)tp, &row)) {
            void *p = rows;
            if (mh_rawmem_reserve(&p, &cap, nrows + 1, sizeof(*rows)) < 0) {
                PyErr_NoMemory();
                goto done;
            }
            rows = p;
            row = (uint32_t)nrows++;
            rows[row] = (mh_census_row_t){.type = tp};
            if (mh_table_put(&index, (uint64_t)(uintptr_t)tp, row) < 0) {
                PyErr_NoMemory();
                goto done;
            }
        }
        rows[row].count++;
        rows[row].bytes += mh_heapgraph_size(g, id);
    }
    result = PyList_New(0);
    for (size_t i = 0; result != NULL && i < nrows; i++) {
        PyTypeObject *type = rows[i].type;
        /* A finalizer: __del__ of a Python class (tp_finalize), or a
         * legacy tp_del. */
        int fin = type->tp_finalize != NULL || type->tp_del != NULL;
        PyObject *t = Py_BuildValue(
            "(NKKN)", type_name_new(type), (unsigned long long)rows[i].count,
            (unsigned long long)rows[i].bytes, PyBool_FromLong(fin));
        if (t == NULL || PyList_Append(result, t) < 0) {
            Py_CLEAR(result);
        }
        Py_XDECREF(t);
    }
done:
    mh_table_fini(&index);
    mh_rawmem_free(rows, cap * sizeof(*rows));
    return result;
}

PyMethodDef mh_heap_methods[] = {
    {"heap_garbage_types", heap_garbage_types, METH_O,
     "heap_garbage_types(g) -> [(type, count, bytes, has_finalizer)]"},
    {"heap_census", heap_census, METH_O,
     "heap_census(skip) -> {type name: (count, bytes)}"},
    {"heap_sites", heap_sites, METH_VARARGS,
     "heap_sites(g, sites, retained) -> [dict] per allocation site"},
    {"heap_largest_retainers", heap_largest_retainers, METH_VARARGS,
     "heap_largest_retainers(g, k) -> [(path, retained, size)]"},
    {"heap_retained", heap_retained, METH_VARARGS,
     "heap_retained(g, obj) -> retained bytes or None"},
    {"heap_module_dicts", heap_module_dicts, METH_NOARGS,
     "[(name, dict)] of the modules in sys.modules"},
    {"heap_subclass_registries", heap_subclass_registries, METH_NOARGS,
     "[(type name, type, dict)]: the interpreter's subclass registries"},
    {"heap_prepare_paths", heap_prepare_paths, METH_VARARGS,
     "heap_prepare_paths(g, roots): shortest paths from the roots"},
    {"heap_path", heap_path, METH_VARARGS,
     "heap_path(g, obj) -> (root, steps) or None"},
    {"heap_object_site", heap_object_site, METH_O,
     "(traceback index, block size) of obj's traced block, or None"},
    {"heap_graph", heap_graph, METH_O,
     "heap_graph(skip: tuple) -> capsule: the heap graph of every tracked "
     "object, built in C"},
    {"heap_graph_release", heap_graph_release, METH_O,
     "free a heap graph and its references now"},
    {"heap_graph_info", heap_graph_info, METH_O, "sizes of a heap graph"},
    {"heap_retained_one", heap_retained_one, METH_VARARGS,
     "retained bytes of one object without a dominator tree"},
    {"heap_retained_alone", heap_retained_alone, METH_O,
     "retained bytes of one object from its reach alone, no graph"},
    {"heap_retained_by_type", heap_retained_by_type, METH_O,
     "[(type, count, bytes, retained)] per type, largest retained first"},
    {"heap_unreachable_by_site", heap_unreachable_by_site, METH_O,
     "{traceback index: (bytes, blocks)} of traced unreachable garbage"},
    {NULL, NULL, 0, NULL},
};
