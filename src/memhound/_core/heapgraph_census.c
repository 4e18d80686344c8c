/* heapgraph_census.c: objects and bytes per type (heapgraph_census.h).
 *
 * One pass over the collector's objects: each is counted and walked with
 * tp_traverse; referents the collector does not track go into a pointer
 * set so each is counted once.  Sizes are computed after the walks, never
 * inside a traverse callback (a builtin __sizeof__ call allocates).
 * GIL held; memory from rawmem.h.
 */
#include "heapgraph_census.h"

#include <string.h>

#include "heapgraph.h"
#include "rawmem.h"
#include "table.h"

typedef struct {
    PyObject **slots; /* open addressing, NULL: empty */
    size_t cap;       /* power of two */
    size_t count;
} ptrset_t;

static inline size_t
ptr_hash(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p >> 4;
    return (size_t)((x * 0x9E3779B97F4A7C15ULL) >> 20) & mask;
}

static int
ptrset_grow(ptrset_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 4096;
    PyObject **slots = mh_rawmem_calloc(cap, sizeof(PyObject *));
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < s->cap; i++) {
        PyObject *p = s->slots[i];
        if (p != NULL) {
            size_t j = ptr_hash(p, cap - 1);
            while (slots[j] != NULL) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = p;
        }
    }
    mh_rawmem_free(s->slots, s->cap * sizeof(PyObject *));
    s->slots = slots;
    s->cap = cap;
    return 0;
}

/* 1 when p was added, 0 when it was there, -1 when out of memory. */
static int
ptrset_add(ptrset_t *s, PyObject *p)
{
    if ((s->count + 1) * 2 > s->cap && ptrset_grow(s) < 0) {
        return -1;
    }
    size_t mask = s->cap - 1;
    for (size_t i = ptr_hash(p, mask);; i = (i + 1) & mask) {
        if (s->slots[i] == p) {
            return 0;
        }
        if (s->slots[i] == NULL) {
            s->slots[i] = p;
            s->count++;
            return 1;
        }
    }
}

typedef struct {
    mh_table_t index; /* type pointer -> row */
    mh_census_row_t *rows;
    uint64_t *fixed; /* per row: the size of every object of the type,
                        0 when it varies per object */
    size_t nrows, cap, fixedcap;
    PyTypeObject *last_type; /* one-entry cache: heaps come in runs */
    uint32_t last_row;
} rows_t;

/* The size every object of tp has, or 0 when it depends on the object
 * (variable-size types and the builtins mh_heapgraph_sizeof special-cases;
 * classes with a __dict__ count only their object, like sys.getsizeof). */
static uint64_t
fixed_size(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp->tp_itemsize != 0 || tp == &PyUnicode_Type || tp == &PyList_Type ||
        tp == &PyLong_Type || tp == &PyDict_Type || tp == &PySet_Type ||
        tp == &PyFrozenSet_Type || tp == &PyByteArray_Type) {
        return 0;
    }
    return mh_heapgraph_sizeof(obj);
}

/* Count obj in its type's row, with its size when known (not 0). */
static int
count_sized(rows_t *r, PyObject *obj, uint64_t size)
{
    PyTypeObject *tp = Py_TYPE(obj);
    uint32_t row;
    if (tp == r->last_type) {
        row = r->last_row;
    }
    else if (!mh_table_get(&r->index, (uint64_t)(uintptr_t)tp, &row)) {
        void *p = r->rows;
        if (mh_rawmem_reserve(&p, &r->cap, r->nrows + 1,
                              sizeof(mh_census_row_t)) < 0) {
            return -1;
        }
        r->rows = p;
        p = r->fixed;
        if (mh_rawmem_reserve(&p, &r->fixedcap, r->nrows + 1,
                              sizeof(uint64_t)) < 0) {
            return -1;
        }
        r->fixed = p;
        row = (uint32_t)r->nrows++;
        r->rows[row] = (mh_census_row_t){.type = tp};
        r->fixed[row] = fixed_size(obj);
        r->last_type = tp;
        r->last_row = row;
        if (mh_table_put(&r->index, (uint64_t)(uintptr_t)tp, row) < 0) {
            return -1;
        }
    }
    r->last_type = tp;
    r->last_row = row;
    r->rows[row].count++;
    if (size == 0) {
        size = r->fixed[row] ? r->fixed[row] : mh_heapgraph_sizeof(obj);
    }
    r->rows[row].bytes += size;
    return 0;
}

static int
count(rows_t *r, PyObject *obj)
{
    return count_sized(r, obj, 0);
}

typedef struct {
    ptrset_t set;
    rows_t *rows;
    PyObject **deferred; /* untracked referents whose size needs a call */
    size_t ndeferred, deferredcap;
    PyObject **containers; /* untracked containers still to walk */
    size_t ncontainers, containerscap;
    int failed;
} walk_t;

/* A referent of a tracked object: counted now, while its memory is warm,
 * unless it is tracked itself (counted from the list) or seen already.
 * Sizes that need a __sizeof__ call wait until the walk is over. */
static int
visit_untracked(PyObject *child, void *arg)
{
    walk_t *w = arg;
    if (PyObject_IS_GC(child) && PyObject_GC_IsTracked(child)) {
        return 0;
    }
    int added = ptrset_add(&w->set, child);
    if (added <= 0) {
        w->failed = added < 0;
        return added;
    }
    /* An untracked container (a dict or tuple of atoms, which the
     * collector untracks) is walked after this traversal: what it holds
     * is the program's too. */
    if (PyObject_IS_GC(child) && Py_TYPE(child)->tp_traverse != NULL) {
        void *c = w->containers;
        if (mh_rawmem_reserve(&c, &w->containerscap, w->ncontainers + 1,
                              sizeof(PyObject *)) < 0) {
            w->failed = 1;
            return -1;
        }
        w->containers = c;
        w->containers[w->ncontainers++] = child;
    }
    uint64_t size = mh_heapgraph_sizeof_nocall(child);
    if (size != 0) {
        if (count_sized(w->rows, child, size) < 0) {
            w->failed = 1;
            return -1;
        }
        return 0;
    }
    void *p = w->deferred;
    if (mh_rawmem_reserve(&p, &w->deferredcap, w->ndeferred + 1,
                          sizeof(PyObject *)) < 0) {
        w->failed = 1;
        return -1;
    }
    w->deferred = p;
    w->deferred[w->ndeferred++] = child;
    return 0;
}

int
mh_census_take(PyObject *objects, PyObject *const *skip, int nskip,
               mh_census_row_t **rows, size_t *nrows)
{
    rows_t r = {.rows = NULL};
    walk_t w = {.rows = &r};
    mh_table_init(&r.index);
    int rc = -1;
    Py_ssize_t n = PyList_GET_SIZE(objects);
    /* Size the set for about one untracked referent per object up front:
     * rehashing a set of millions of pointers costs more than the walk. */
    while (w.set.cap < (size_t)n * 2 && w.set.cap < ((size_t)1 << 40)) {
        if (ptrset_grow(&w.set) < 0) {
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *obj = PyList_GET_ITEM(objects, i);
        int skipped = 0;
        for (int k = 0; k < nskip; k++) {
            skipped |= skip[k] == obj;
        }
        if (skipped) {
            continue;
        }
        traverseproc traverse = Py_TYPE(obj)->tp_traverse;
        if (traverse != NULL) {
            traverse(obj, visit_untracked, &w);
            if (w.failed) {
                goto done;
            }
        }
        if (count(&r, obj) < 0) {
            goto done;
        }
        /* Walk the untracked containers found so far (a worklist, not
         * recursion: nesting may be deep). */
        while (w.ncontainers > 0) {
            PyObject *c = w.containers[--w.ncontainers];
            Py_TYPE(c)->tp_traverse(c, visit_untracked, &w);
            if (w.failed) {
                goto done;
            }
        }
    }
    /* Now that no traversal is under way, sizes that need a call. */
    for (size_t i = 0; i < w.ndeferred; i++) {
        if (count(&r, w.deferred[i]) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    mh_rawmem_free(w.set.slots, w.set.cap * sizeof(PyObject *));
    mh_rawmem_free(w.deferred, w.deferredcap * sizeof(PyObject *));
    mh_rawmem_free(w.containers, w.containerscap * sizeof(PyObject *));
    mh_table_fini(&r.index);
    mh_rawmem_free(r.fixed, r.fixedcap * sizeof(uint64_t));
    if (rc < 0) {
        mh_rawmem_free(r.rows, r.cap * sizeof(mh_census_row_t));
        return -1;
    }
    /* Hand over an array sized as the caller will free it. */
    if (r.nrows < r.cap) {
        void *p = mh_rawmem_realloc(r.rows, r.cap * sizeof(mh_census_row_t),
                                    r.nrows * sizeof(mh_census_row_t));
        if (p == NULL && r.nrows > 0) {
            mh_rawmem_free(r.rows, r.cap * sizeof(mh_census_row_t));
            return -1;
        }
        r.rows = p;
    }
    *rows = r.rows;
    *nrows = r.nrows;
    return 0;
}
