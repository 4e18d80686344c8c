/* heapgraph_census.c: objects and bytes per type (heapgraph_census.h).
 *
 * One walk of the collector's lists in place (mh_frames_gc_visit): each
 * tracked object is counted and walked with tp_traverse; referents the
 * collector does not track are marked in an address bitmap so each is
 * counted once.  No Python object is allocated during the walk: sizes that
 * need a builtin __sizeof__ call wait until it is over.  GIL held, the
 * collector paused by the caller; memory from rawmem.h.
 */
#include "heapgraph_census.h"

#include <string.h>

#include "frames.h"
#include "heapgraph.h"
#include "rawmem.h"
#include "table.h"

/* ---- the seen set: a bitmap of object addresses -------------------------
 *
 * Objects are at least 16 bytes and never overlap, so address >> 4 names
 * one object.  The address space is cut into 1 MiB chunks, each with an
 * 8 KiB bitmap (one bit per 16 bytes) found through a small hash table of
 * chunk numbers, with a cache of the last chunks used: objects allocated
 * together sit together, so most lookups hit the cache and the bitmap stays in
 * the CPU cache, where a pointer hash set misses on every probe.  The bitmaps
 * take at most 1/128 of the memory spanned by the objects they mark. */

#define CHUNK_SHIFT 20
#define CHUNK_BITS (1u << (CHUNK_SHIFT - 4))
#define CHUNK_BYTES (CHUNK_BITS / 8)
#define CHUNK_CACHE 16

typedef struct {
    uint64_t *keys; /* chunk number + 1; 0: empty slot */
    uint8_t **maps; /* the chunk's bitmap */
    size_t cap;     /* power of two */
    size_t count;
    /* A direct-mapped cache of recent chunks (key 0: none): objects of
     * different size classes live in different pools, so a walk moves
     * between a few chunks at a time. */
    uint64_t last_key[CHUNK_CACHE];
    uint8_t *last_map[CHUNK_CACHE];
} addrset_t;

static void
addrset_fini(addrset_t *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        if (s->keys[i] != 0) {
            mh_rawmem_free(s->maps[i], CHUNK_BYTES);
        }
    }
    mh_rawmem_free(s->keys, s->cap * sizeof(uint64_t));
    mh_rawmem_free(s->maps, s->cap * sizeof(uint8_t *));
}

static int
addrset_grow(addrset_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    uint64_t *keys = mh_rawmem_calloc(cap, sizeof(uint64_t));
    uint8_t **maps = mh_rawmem_calloc(cap, sizeof(uint8_t *));
    if (keys == NULL || maps == NULL) {
        mh_rawmem_free(keys, cap * sizeof(uint64_t));
        mh_rawmem_free(maps, cap * sizeof(uint8_t *));
        return -1;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (s->keys[i] != 0) {
            size_t j = (size_t)mh_table_mix(s->keys[i]) & (cap - 1);
            while (keys[j] != 0) {
                j = (j + 1) & (cap - 1);
            }
            keys[j] = s->keys[i];
            maps[j] = s->maps[i];
        }
    }
    mh_rawmem_free(s->keys, s->cap * sizeof(uint64_t));
    mh_rawmem_free(s->maps, s->cap * sizeof(uint8_t *));
    s->keys = keys;
    s->maps = maps;
    s->cap = cap;
    return 0;
}

/* The bitmap of chunk key (a chunk number + 1), created empty when new;
 * NULL when out of memory. */
static uint8_t *
addrset_chunk(addrset_t *s, uint64_t key)
{
    if ((s->count + 1) * 2 > s->cap && addrset_grow(s) < 0) {
        return NULL;
    }
    size_t mask = s->cap - 1;
    size_t i = (size_t)mh_table_mix(key) & mask;
    while (s->keys[i] != 0 && s->keys[i] != key) {
        i = (i + 1) & mask;
    }
    if (s->keys[i] == 0) {
        uint8_t *map = mh_rawmem_calloc(1, CHUNK_BYTES);
        if (map == NULL) {
            return NULL;
        }
        s->keys[i] = key;
        s->maps[i] = map;
        s->count++;
    }
    s->last_key[key & (CHUNK_CACHE - 1)] = key;
    s->last_map[key & (CHUNK_CACHE - 1)] = s->maps[i];
    return s->maps[i];
}

/* 1 when p was added, 0 when it was there, -1 when out of memory. */
static inline int
addrset_add(addrset_t *s, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uint64_t key = ((uint64_t)a >> CHUNK_SHIFT) + 1;
    size_t c = (size_t)key & (CHUNK_CACHE - 1);
    uint8_t *map =
        key == s->last_key[c] ? s->last_map[c] : addrset_chunk(s, key);
    if (map == NULL) {
        return -1;
    }
    uint32_t bit = (uint32_t)(a >> 4) & (CHUNK_BITS - 1);
    uint8_t m = (uint8_t)(1u << (bit & 7));
    if (map[bit >> 3] & m) {
        return 0;
    }
    map[bit >> 3] |= m;
    return 1;
}

/* ---- rows: one per type ------------------------------------------------- */

#define TYPE_CACHE 256 /* direct-mapped type -> row cache entries */

typedef struct {
    mh_table_t index; /* type pointer -> row */
    mh_census_row_t *rows;
    uint64_t *fixed; /* per row: the size of every object of the type,
                        0 when it varies per object */
    size_t nrows, cap, fixedcap;
    PyTypeObject *cache_type[TYPE_CACHE]; /* heaps mix a few types */
    uint32_t cache_row[TYPE_CACHE];
} rows_t;

/* The size every object of tp has, or 0 when it depends on the object
 * (variable-size types and the builtins mh_heapgraph_sizeof special-cases;
 * classes with a __dict__ count only their object, like sys.getsizeof).
 * Makes no call: the types it sizes are the ones sizeof never calls for. */
static uint64_t
fixed_size(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp->tp_itemsize != 0 || tp == &PyUnicode_Type || tp == &PyList_Type ||
        tp == &PyLong_Type || tp == &PyDict_Type || tp == &PySet_Type ||
        tp == &PyFrozenSet_Type || tp == &PyByteArray_Type) {
        return 0;
    }
    return mh_heapgraph_sizeof_nocall(obj);
}

static inline size_t
type_slot(const PyTypeObject *tp)
{
    uintptr_t a = (uintptr_t)tp;
    return (size_t)((a >> 4) ^ (a >> 12)) & (TYPE_CACHE - 1);
}

/* The row of obj's type, created when new; -1 when out of memory. */
static int64_t
row_of(rows_t *r, PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    size_t slot = type_slot(tp);
    if (r->cache_type[slot] == tp) {
        return r->cache_row[slot];
    }
    uint32_t row;
    if (!mh_table_get(&r->index, (uint64_t)(uintptr_t)tp, &row)) {
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
        row = (uint32_t)r->nrows;
        if (mh_table_put(&r->index, (uint64_t)(uintptr_t)tp, row) < 0) {
            return -1;
        }
        r->nrows++;
        r->rows[row] = (mh_census_row_t){.type = tp};
        r->fixed[row] = fixed_size(obj);
    }
    r->cache_type[slot] = tp;
    r->cache_row[slot] = row;
    return row;
}

/* Referents are handled in batches: the visit callback only prefetches
 * the referent and queues it, so the cache misses of a batch overlap
 * instead of following one another. */
#define BATCH 64

typedef struct {
    addrset_t seen; /* untracked objects counted */
    PyObject *pending[BATCH];
    size_t npending;
    rows_t rows;
    PyObject *const *skip;
    int nskip;
    PyObject **deferred; /* objects whose size needs a __sizeof__ call */
    size_t ndeferred, deferredcap;
    PyObject **containers; /* untracked containers still to walk */
    size_t ncontainers, containerscap;
    int failed;
} walk_t;

static int
push(PyObject ***array, size_t *n, size_t *cap, PyObject *obj)
{
    void *p = *array;
    if (mh_rawmem_reserve(&p, cap, *n + 1, sizeof(PyObject *)) < 0) {
        return -1;
    }
    *array = p;
    (*array)[(*n)++] = obj;
    return 0;
}

/* Count obj in its type's row; when its size needs a call, count it now
 * and add the size later (deferred).  Returns 0 or -1 when out of
 * memory. */
static int
count(walk_t *w, PyObject *obj)
{
    int64_t row = row_of(&w->rows, obj);
    if (row < 0) {
        return -1;
    }
    mh_census_row_t *rw = &w->rows.rows[row];
    rw->count++;
    uint64_t size = w->rows.fixed[row];
    if (size == 0) {
        size = mh_heapgraph_sizeof_nocall(obj);
    }
    if (size == 0) {
        return push(&w->deferred, &w->ndeferred, &w->deferredcap, obj);
    }
    rw->bytes += size;
    return 0;
}

/* A referent of a walked object: counted unless it is tracked itself
 * (counted by the collector walk) or seen already. */
static int
take_referent(walk_t *w, PyObject *child)
{
    PyTypeObject *tp = Py_TYPE(child);
    int container = 0;
    /* PyObject_IS_GC, inline: static types are not gc objects. */
    if (PyType_IS_GC(tp) && (tp->tp_is_gc == NULL || tp->tp_is_gc(child))) {
        if (PyObject_GC_IsTracked(child)) {
            return 0;
        }
        container = tp->tp_traverse != NULL;
    }
    int added = addrset_add(&w->seen, child);
    if (added <= 0) {
        return added;
    }
    /* An untracked container (a dict or tuple of atoms, which the
     * collector untracks) is walked later: what it holds is the
     * program's too. */
    if (container &&
        push(&w->containers, &w->ncontainers, &w->containerscap, child) < 0) {
        return -1;
    }
    return count(w, child);
}

/* Take the queued referents.  Returns 0 or -1 when out of memory. */
static int
flush(walk_t *w)
{
    for (size_t i = 0; i < w->npending; i++) {
        if (take_referent(w, w->pending[i]) < 0) {
            w->failed = 1;
            return -1;
        }
    }
    w->npending = 0;
    return 0;
}

static int
visit_referent(PyObject *child, void *arg)
{
    walk_t *w = arg;
    __builtin_prefetch(child);
    w->pending[w->npending++] = child;
    return w->npending == BATCH ? flush(w) : 0;
}

/* Walk the untracked containers found so far (a worklist, not recursion:
 * nesting may be deep).  Returns 0 or -1 when out of memory. */
static int
drain(walk_t *w)
{
    while (w->ncontainers > 0) {
        PyObject *c = w->containers[--w->ncontainers];
        Py_TYPE(c)->tp_traverse(c, visit_referent, w);
        if (w->failed) {
            return -1;
        }
    }
    return 0;
}

/* One object of the collector's lists: counted, its referents visited. */
static int
visit_tracked(PyObject *obj, void *arg)
{
    walk_t *w = arg;
    if (mh_heapgraph_skipped(w->skip, w->nskip, obj)) {
        return 0;
    }
    traverseproc traverse = Py_TYPE(obj)->tp_traverse;
    if (traverse != NULL) {
        traverse(obj, visit_referent, w);
        if (w->failed) {
            return -1;
        }
    }
    return count(w, obj) < 0 || drain(w) < 0 ? -1 : 0;
}

int
mh_census_take(PyObject *const *skip, int nskip, mh_census_row_t **rows,
               size_t *nrows)
{
    walk_t *w = mh_rawmem_calloc(1, sizeof(walk_t));
    if (w == NULL) {
        return -1;
    }
    rows_t *r = &w->rows;
    mh_table_init(&r->index);
    w->skip = skip;
    w->nskip = nskip;
    int rc = -1;
    if (mh_frames_gc_visit(visit_tracked, w) != 0) {
        goto done;
    }
    /* The last batch, and the containers it finds, until none is left. */
    while (w->npending > 0) {
        if (flush(w) < 0 || drain(w) < 0) {
            goto done;
        }
    }
    /* Now that the walk is over, the sizes that need a call (builtin
     * __sizeof__ methods; they allocate).  Counts are in already. */
    for (size_t i = 0; i < w->ndeferred; i++) {
        int64_t row = row_of(r, w->deferred[i]);
        if (row < 0) {
            goto done;
        }
        r->rows[row].bytes += mh_heapgraph_sizeof(w->deferred[i]);
    }
    rc = 0;
done:
    addrset_fini(&w->seen);
    mh_rawmem_free(w->deferred, w->deferredcap * sizeof(PyObject *));
    mh_rawmem_free(w->containers, w->containerscap * sizeof(PyObject *));
    mh_table_fini(&r->index);
    mh_rawmem_free(r->fixed, r->fixedcap * sizeof(uint64_t));
    mh_census_row_t *out = r->rows;
    size_t nout = r->nrows, cap = r->cap;
    mh_rawmem_free(w, sizeof(walk_t));
    if (rc < 0) {
        mh_rawmem_free(out, cap * sizeof(mh_census_row_t));
        return -1;
    }
    /* Hand over an array sized as the caller will free it. */
    if (nout < cap) {
        void *p = mh_rawmem_realloc(out, cap * sizeof(mh_census_row_t),
                                    nout * sizeof(mh_census_row_t));
        if (p == NULL && nout > 0) {
            mh_rawmem_free(out, cap * sizeof(mh_census_row_t));
            return -1;
        }
        out = p;
    }
    *rows = out;
    *nrows = nout;
    return 0;
}
