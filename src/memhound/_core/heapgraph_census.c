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
    int failed;
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

static int
visit_untracked(PyObject *child, void *arg)
{
    ptrset_t *set = arg;
    if (PyObject_IS_GC(child) && PyObject_GC_IsTracked(child)) {
        return 0; /* counted from the collector's list */
    }
    if (ptrset_add(set, child) < 0) {
        set->failed = 1;
        return -1;
    }
    return 0;
}

typedef struct {
    mh_table_t index; /* type pointer -> row */
    mh_census_row_t *rows;
    size_t nrows, cap;
} rows_t;

static int
count(rows_t *r, PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    uint32_t row;
    if (!mh_table_get(&r->index, (uint64_t)(uintptr_t)tp, &row)) {
        void *p = r->rows;
        if (mh_rawmem_reserve(&p, &r->cap, r->nrows + 1,
                              sizeof(mh_census_row_t)) < 0) {
            return -1;
        }
        r->rows = p;
        row = (uint32_t)r->nrows++;
        r->rows[row] = (mh_census_row_t){.type = tp};
        if (mh_table_put(&r->index, (uint64_t)(uintptr_t)tp, row) < 0) {
            return -1;
        }
    }
    r->rows[row].count++;
    r->rows[row].bytes += mh_heapgraph_sizeof(obj);
    return 0;
}

int
mh_census_take(PyObject *objects, PyObject *const *skip, int nskip,
               mh_census_row_t **rows, size_t *nrows)
{
    ptrset_t set = {0};
    rows_t r = {.rows = NULL};
    mh_table_init(&r.index);
    int rc = -1;
    Py_ssize_t n = PyList_GET_SIZE(objects);
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
            traverse(obj, visit_untracked, &set);
            if (set.failed) {
                goto done;
            }
        }
        if (count(&r, obj) < 0) {
            goto done;
        }
    }
    for (size_t i = 0; i < set.cap; i++) {
        if (set.slots[i] != NULL && count(&r, set.slots[i]) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    mh_rawmem_free(set.slots, set.cap * sizeof(PyObject *));
    mh_table_fini(&r.index);
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
