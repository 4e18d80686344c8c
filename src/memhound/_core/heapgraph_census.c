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

/* What the walk needs to know of a type, worked out once per row. */
typedef enum {
    GC_NO,  /* not a gc type: never tracked */
    GC_YES, /* a gc type: its objects have the collector's links */
    GC_ASK, /* tp_is_gc decides per object (type objects) */
} gc_kind_t;

typedef struct {
    mh_size_recipe_t size;
    uint8_t gc;        /* gc_kind_t */
    uint8_t traverses; /* has tp_traverse */
} row_info_t;

typedef struct {
    mh_table_t index; /* type pointer -> row */
    mh_census_row_t *rows;
    row_info_t *info;
    size_t nrows, cap, infocap;
    PyTypeObject *cache_type[TYPE_CACHE]; /* heaps mix a few types */
    uint32_t cache_row[TYPE_CACHE];
} rows_t;

static inline size_t
type_slot(const PyTypeObject *tp)
{
    uintptr_t a = (uintptr_t)tp;
    return (size_t)((a >> 4) ^ (a >> 12)) & (TYPE_CACHE - 1);
}

static void
row_info_init(PyTypeObject *tp, row_info_t *info)
{
    mh_heapgraph_size_recipe(tp, &info->size);
    info->gc = !PyType_IS_GC(tp)      ? GC_NO
               : tp->tp_is_gc == NULL ? GC_YES
                                      : GC_ASK;
    info->traverses = tp->tp_traverse != NULL;
}

/* The row of type tp, created when new (with a count of 0: a type seen
 * only through tracked referents is counted by the collector walk, or not
 * at all), and put in the cache; -1 when out of memory.  Out of line: the
 * cache answers almost every call. */
static __attribute__((noinline)) int64_t
row_find(rows_t *r, PyTypeObject *tp)
{
    uint32_t row;
    if (!mh_table_get(&r->index, (uint64_t)(uintptr_t)tp, &row)) {
        void *p = r->rows;
        if (mh_rawmem_reserve(&p, &r->cap, r->nrows + 1,
                              sizeof(mh_census_row_t)) < 0) {
            return -1;
        }
        r->rows = p;
        p = r->info;
        if (mh_rawmem_reserve(&p, &r->infocap, r->nrows + 1,
                              sizeof(row_info_t)) < 0) {
            return -1;
        }
        r->info = p;
        row = (uint32_t)r->nrows;
        if (mh_table_put(&r->index, (uint64_t)(uintptr_t)tp, row) < 0) {
            return -1;
        }
        r->nrows++;
        r->rows[row] = (mh_census_row_t){.type = tp};
        row_info_init(tp, &r->info[row]);
    }
    size_t slot = type_slot(tp);
    r->cache_type[slot] = tp;
    r->cache_row[slot] = row;
    return row;
}

/* The row of obj's type (row_find). */
static inline int64_t
row_of(rows_t *r, PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    size_t slot = type_slot(tp);
    if (r->cache_type[slot] == tp) {
        return r->cache_row[slot];
    }
    return row_find(r, tp);
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

/* Count obj in row, its type's; when its size needs a call, count it now
 * and add the size later (deferred).  Returns 0 or -1 when out of
 * memory. */
static int
count(walk_t *w, int64_t row, PyObject *obj)
{
    mh_census_row_t *rw = &w->rows.rows[row];
    rw->count++;
    uint64_t size = mh_heapgraph_size_apply(&w->rows.info[row].size, obj);
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
    int64_t row = row_of(&w->rows, child);
    if (row < 0) {
        return -1;
    }
    const row_info_t *info = &w->rows.info[row];
    int container = 0;
    if (info->gc == GC_YES ||
        (info->gc == GC_ASK && Py_TYPE(child)->tp_is_gc(child))) {
        if (mh_frames_gc_is_tracked(child)) {
            return 0;
        }
        container = info->traverses;
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
    return count(w, row, child);
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
    int64_t row = row_of(&w->rows, obj);
    return row < 0 || count(w, row, obj) < 0 || drain(w) < 0 ? -1 : 0;
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
        r->rows[row].bytes +=
            mh_heapgraph_sizeof_by(&r->info[row].size, w->deferred[i]);
    }
    /* Rows made for tracked referents of a type none of whose objects was
     * counted (all skipped) go. */
    size_t kept = 0;
    for (size_t i = 0; i < r->nrows; i++) {
        if (r->rows[i].count > 0) {
            r->rows[kept++] = r->rows[i];
        }
    }
    r->nrows = kept;
    rc = 0;
done:
    addrset_fini(&w->seen);
    mh_rawmem_free(w->deferred, w->deferredcap * sizeof(PyObject *));
    mh_rawmem_free(w->containers, w->containerscap * sizeof(PyObject *));
    mh_table_fini(&r->index);
    mh_rawmem_free(r->info, r->infocap * sizeof(row_info_t));
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
