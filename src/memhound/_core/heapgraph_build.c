/* heapgraph_build.c: building the heap graph (heapgraph.h) and the
 * collector-style liveness computation over it.
 *
 * The build walks tp_traverse of every tracked object once, with a visit
 * callback that only looks pointers up in an open-addressing map and appends
 * edge ids to raw arrays: no Python code runs, no Python object is
 * allocated, so the collector cannot start and nothing can change under the
 * walk (GIL held throughout).  Memory from rawmem.h; the graph owns it.
 * Every array with one entry per node or edge is mapped (mh_rawmem_map):
 * growth moves pages without a copy, and a freed array leaves no resident
 * hole behind (so a session's peak memory is what it holds at one time).
 */
#include "heapgraph.h"

#include <string.h>

#include "frames.h"
#include "hooks.h"
#include "rawmem.h"
#include "table.h"

/* ---- the address map ---------------------------------------------------- */

static inline size_t
map_hash(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p >> 4;
    return (size_t)((x * 0x9E3779B97F4A7C15ULL) >> 20) & mask;
}

/* The node of obj through the build's map. */
static uint32_t
map_find(const mh_heapgraph_t *g, PyObject *obj)
{
    size_t mask = g->mapcap - 1;
    for (size_t i = map_hash(obj, mask);; i = (i + 1) & mask) {
        uint32_t id = g->map[i];
        if (id == MH_HG_NONE) {
            return MH_HG_NONE;
        }
        if (g->objs[id] == obj) {
            return id;
        }
    }
}

uint32_t
mh_heapgraph_find(const mh_heapgraph_t *g, PyObject *obj)
{
    if (g->map != NULL) {
        return map_find(g, obj);
    }
    /* The map is gone after the build (8 bytes a node): a query names one
     * object, and one sequential scan of objs costs a few milliseconds
     * per million nodes. */
    PyObject *const *objs = g->objs;
    for (uint32_t id = 0; id < g->nnodes; id++) {
        if (objs[id] == obj) {
            return id;
        }
    }
    return MH_HG_NONE;
}

#define FILTER_BITS (1u << 16)

static inline uint32_t
filter_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p >> 4;
    return (uint32_t)((x * 0x9E3779B97F4A7C15ULL) >> 48);
}

int
mh_heapgraph_find_many(const mh_heapgraph_t *g, PyObject *const *objs,
                       size_t n, uint32_t *ids)
{
    mh_table_t want; /* address -> position in objs */
    mh_table_init(&want);
    for (size_t i = 0; i < n; i++) {
        ids[i] = MH_HG_NONE;
        if (i < UINT32_MAX && mh_table_put(&want, (uint64_t)(uintptr_t)objs[i],
                                           (uint32_t)i) < 0) {
            mh_table_fini(&want);
            return -1;
        }
    }
    /* A 64 Ki-bit filter of the wanted addresses: most nodes are not
     * wanted, and a bit test is cheaper than a table probe. */
    uint64_t *filter = mh_rawmem_calloc(FILTER_BITS / 64, sizeof(uint64_t));
    if (filter == NULL) {
        mh_table_fini(&want);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t h = filter_hash(objs[i]);
        filter[h / 64] |= (uint64_t)1 << (h % 64);
    }
    for (uint32_t id = 0; n > 0 && id < g->nnodes; id++) {
        uint32_t h = filter_hash(g->objs[id]), i;
        if ((filter[h / 64] >> (h % 64) & 1) &&
            mh_table_get(&want, (uint64_t)(uintptr_t)g->objs[id], &i)) {
            ids[i] = id;
        }
    }
    mh_rawmem_free(filter, FILTER_BITS / 64 * sizeof(uint64_t));
    /* An object listed twice: the table kept its last position. */
    for (size_t i = 0; i < n; i++) {
        uint32_t j;
        if (ids[i] == MH_HG_NONE &&
            mh_table_get(&want, (uint64_t)(uintptr_t)objs[i], &j)) {
            ids[i] = ids[j];
        }
    }
    mh_table_fini(&want);
    return 0;
}

/* Put id (whose object is not in the map yet) into the map. */
static void
map_put(mh_heapgraph_t *g, uint32_t id)
{
    size_t mask = g->mapcap - 1;
    size_t i = map_hash(g->objs[id], mask);
    while (g->map[i] != MH_HG_NONE) {
        i = (i + 1) & mask;
    }
    g->map[i] = id;
}

/* Size the map for `need` entries at a load of at most three quarters
 * (linear probing stays short; 4 bytes a slot). */
static int
map_reserve(mh_heapgraph_t *g, size_t need)
{
    if (need <= g->mapcap / 4 * 3) {
        return 0;
    }
    size_t cap = g->mapcap ? g->mapcap : 1024;
    while (cap / 4 * 3 < need) {
        if (cap > SIZE_MAX / 4 / sizeof(uint32_t)) {
            return -1;
        }
        cap *= 2;
    }
    uint32_t *map = mh_rawmem_map(cap * sizeof(uint32_t));
    if (map == NULL) {
        return -1;
    }
    memset(map, 0xff, cap * sizeof(uint32_t));
    mh_rawmem_unmap(g->map, g->mapcap * sizeof(uint32_t));
    g->map = map;
    g->mapcap = cap;
    /* Home slots are random: prefetch a few nodes ahead so that the
     * misses overlap. */
    for (uint32_t id = 0; id < g->nnodes; id++) {
        if (id + 16 < g->nnodes) {
            __builtin_prefetch(&map[map_hash(g->objs[id + 16], cap - 1)], 1);
        }
        map_put(g, id);
    }
    return 0;
}

/* ---- nodes and edges ---------------------------------------------------- */

static int
node_reserve(mh_heapgraph_t *g, size_t need)
{
    if (need <= g->nodecap) {
        return 0;
    }
    if (need >= MH_HG_NONE) {
        return -1;
    }
    size_t cap = g->nodecap ? g->nodecap : 1024;
    while (cap < need) {
        cap *= 2;
    }
    if (cap >= MH_HG_NONE) {
        cap = MH_HG_NONE - 1;
    }
    /* Three arrays grow one after the other; each keeps its own capacity
     * so that a failure half-way leaves sizes the free can trust. */
    if (g->objcap < cap) {
        PyObject **objs = mh_rawmem_remap(
            g->objs, g->objcap * sizeof(PyObject *), cap * sizeof(PyObject *));
        if (objs == NULL) {
            return -1;
        }
        g->objs = objs;
        g->objcap = cap;
    }
    if (g->flagcap < cap) {
        uint8_t *flags = mh_rawmem_remap(g->flags, g->flagcap, cap);
        if (flags == NULL) {
            return -1;
        }
        g->flags = flags;
        g->flagcap = cap;
    }
    uint32_t *off = mh_rawmem_remap(
        g->off, g->off == NULL ? 0 : (g->nodecap + 1) * sizeof(uint32_t),
        (cap + 1) * sizeof(uint32_t));
    if (off == NULL) {
        return -1;
    }
    g->off = off;
    g->nodecap = cap;
    return 0;
}

/* Add obj as a new node (not in the map yet).  Returns its id or
 * MH_HG_NONE when out of memory. */
static uint32_t
node_add(mh_heapgraph_t *g, PyObject *obj, uint8_t flags)
{
    if (node_reserve(g, (size_t)g->nnodes + 1) < 0 ||
        map_reserve(g, (size_t)g->nnodes + 1) < 0) {
        return MH_HG_NONE;
    }
    uint32_t id = g->nnodes++;
    g->objs[id] = obj;
    g->flags[id] = flags;
    map_put(g, id);
    return id;
}

/* Referents are resolved to node ids in batches: the map slots of a whole
 * batch are prefetched first, then the node each slot names, so the
 * cache misses of many lookups overlap instead of following one another.
 * Edges keep their order: off[] counts pending referents too. */
#define BATCH 256

typedef struct {
    mh_heapgraph_t *g;
    PyObject *const *skip;
    int nskip;
    int failed;
    size_t npending;
    PyObject *pending[BATCH];
    uint32_t cand[BATCH];
} build_ctx;

/* Append the node ids of the pending referents to the edges.  Returns 0
 * or -1 when out of memory. */
static int
flush(build_ctx *ctx)
{
    mh_heapgraph_t *g = ctx->g;
    size_t n = ctx->npending;
    if (n == 0) {
        return 0;
    }
    if ((size_t)g->nedges + n >= UINT32_MAX - 1) {
        return -1;
    }
    if ((size_t)g->nedges + n > g->edgecap) {
        void *edges = g->edges;
        if (mh_rawmem_reserve_mapped(&edges, &g->edgecap,
                                     (size_t)g->nedges + n,
                                     sizeof(uint32_t)) < 0) {
            return -1;
        }
        g->edges = edges;
    }
    size_t mask = g->mapcap - 1;
    int added = 0; /* once a node is added, slots read above may be stale */
    for (size_t i = 0; i < n; i++) {
        __builtin_prefetch(&g->map[map_hash(ctx->pending[i], mask)]);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t c = g->map[map_hash(ctx->pending[i], mask)];
        ctx->cand[i] = c;
        if (c != MH_HG_NONE) {
            __builtin_prefetch(&g->objs[c]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *child = ctx->pending[i];
        uint32_t id = ctx->cand[i];
        if (id != MH_HG_NONE && g->objs[id] != child) {
            id = map_find(g, child);
        }
        /* An empty home slot: with linear probing, child is not in the
         * map (a node added since this batch began is found by find). */
        else if (id == MH_HG_NONE && added) {
            id = map_find(g, child);
        }
        if (id == MH_HG_NONE) {
            id = node_add(g, child, 0);
            if (id == MH_HG_NONE) {
                return -1;
            }
            added = 1;
            Py_INCREF(child); /* the graph holds every node */
        }
        g->edges[g->nedges++] = id;
    }
    ctx->npending = 0;
    return 0;
}

static int
visit_edge(PyObject *child, void *arg)
{
    build_ctx *ctx = arg;
    if (mh_heapgraph_skipped(ctx->skip, ctx->nskip, child)) {
        return 0;
    }
    ctx->pending[ctx->npending++] = child;
    if (ctx->npending == BATCH && flush(ctx) < 0) {
        ctx->failed = 1;
        return -1;
    }
    return 0;
}

size_t
mh_heapgraph_memory(const mh_heapgraph_t *g)
{
    size_t m = g->objcap * sizeof(PyObject *) + g->flagcap +
               (g->nodecap + 1) * sizeof(uint32_t) +
               g->edgecap * sizeof(uint32_t) + g->mapcap * sizeof(uint32_t);
    /* Query arrays, one entry per node each. */
    size_t per = (g->parent ? 4 : 0) + (g->tb ? 4 : 0) + (g->size ? 4 : 0) +
                 (g->idom ? 4 : 0) + (g->retained ? 8 : 0);
    return m + per * (size_t)g->nnodes + g->nroots * sizeof(uint32_t) +
           g->bigidcap * sizeof(uint32_t) + g->bigsizecap * sizeof(uint64_t);
}

/* Shrink *array from *cap to `want` elements of `size` bytes (a shrinking
 * realloc; when it fails the larger array is simply kept). */
static void
shrink_one(void **array, size_t *cap, size_t want, size_t size)
{
    if (want < *cap) {
        void *p = mh_rawmem_remap(*array, *cap * size, want * size);
        if (p != NULL) {
            *array = p;
            *cap = want;
        }
    }
}

/* Give back the unused ends of the edge and node arrays: they grow by
 * doubling, and the node count is only known at the end (up to 1.7x too
 * large otherwise). */
static void
shrink(mh_heapgraph_t *g)
{
    size_t n = (size_t)g->nnodes + 1;
    shrink_one((void **)&g->edges, &g->edgecap, (size_t)g->nedges + 1,
               sizeof(uint32_t));
    shrink_one((void **)&g->objs, &g->objcap, n, sizeof(PyObject *));
    shrink_one((void **)&g->flags, &g->flagcap, n, 1);
    /* off has nodecap + 1 entries */
    size_t offcap = g->nodecap + 1;
    shrink_one((void **)&g->off, &offcap, n + 1, sizeof(uint32_t));
    g->nodecap = offcap - 1;
}

#define PREFETCH 8 /* objects ahead whose header is fetched early */

typedef struct {
    mh_heapgraph_t *g;
    PyObject *const *skip;
    int nskip;
} list_ctx;

/* One object of the collector's lists: a node (each is listed once, so
 * no lookup), held by the graph; the map is filled after the walk. */
static int
add_listed(PyObject *obj, void *arg)
{
    list_ctx *ctx = arg;
    if (mh_heapgraph_skipped(ctx->skip, ctx->nskip, obj)) {
        return 0;
    }
    mh_heapgraph_t *g = ctx->g;
    if (node_reserve(g, (size_t)g->nnodes + 1) < 0) {
        return -1;
    }
    uint32_t id = g->nnodes++;
    g->objs[id] = obj;
    g->flags[id] = MH_HG_TRACKED;
    Py_INCREF(obj);
    return 0;
}

mh_heapgraph_t *
mh_heapgraph_build(PyObject *const *skip, int nskip)
{
    mh_heapgraph_t *g = mh_rawmem_calloc(1, sizeof(mh_heapgraph_t));
    if (g == NULL) {
        return (mh_heapgraph_t *)PyErr_NoMemory();
    }
    list_ctx lc = {g, skip, nskip};
    if (mh_frames_gc_visit(add_listed, &lc) != 0) {
        goto nomem;
    }
    size_t n = g->nnodes;
    /* Untracked referents add a few percent on typical heaps. */
    size_t guess = n + n / 16 + 16;
    if (node_reserve(g, guess) < 0 || map_reserve(g, guess) < 0 ||
        mh_rawmem_reserve_mapped((void **)&g->edges, &g->edgecap, guess * 2,
                                 sizeof(uint32_t)) < 0) {
        goto nomem;
    }
    g->ntracked = g->nnodes;
    /* Walk every node that has edges, tracked ones and the frozen tracked
     * objects found as referents alike; the node list grows as it goes. */
    build_ctx *ctx = mh_rawmem_malloc(sizeof(build_ctx));
    if (ctx == NULL) {
        goto nomem;
    }
    ctx->g = g;
    ctx->skip = skip;
    ctx->nskip = nskip;
    ctx->failed = 0;
    ctx->npending = 0;
    uint32_t id = 0;
    /* Nodes found by a flush are walked too (the frozen tracked objects
     * among them have edges): loop until a flush adds none. */
    do {
        for (; id < g->nnodes; id++) {
            g->off[id] = g->nedges + (uint32_t)ctx->npending;
            /* The walk reads each object's header: fetch ahead. */
            if (id + PREFETCH < g->nnodes) {
                __builtin_prefetch(g->objs[id + PREFETCH]);
            }
            PyObject *obj = g->objs[id];
            traverseproc traverse = Py_TYPE(obj)->tp_traverse;
            if (traverse == NULL || !PyObject_IS_GC(obj)) {
                continue;
            }
            /* Untracked containers are walked too: the collector untracks
             * dicts and tuples that hold only atoms (ints, strs, ...), and
             * the program's leaked strings sit in exactly those. */
            if (PyObject_GC_IsTracked(obj)) {
                g->flags[id] |= MH_HG_TRACKED;
            }
            traverse(obj, visit_edge, ctx);
            if (ctx->failed) {
                break;
            }
        }
        if (ctx->failed || flush(ctx) < 0) {
            mh_rawmem_free(ctx, sizeof(build_ctx));
            goto nomem;
        }
    } while (id < g->nnodes);
    mh_rawmem_free(ctx, sizeof(build_ctx));
    g->off[g->nnodes] = g->nedges;
    shrink(g);
    mh_rawmem_unmap(g->map, g->mapcap * sizeof(uint32_t));
    g->map = NULL;
    g->mapcap = 0;
    /* The collector's computation: references from outside the graph are
     * the refcount minus the edges into a node minus the graph's own. */
    uint32_t *indeg = mh_rawmem_map((g->nnodes ? g->nnodes : 1) *
                                    sizeof(uint32_t)); /* zero-filled */
    if (indeg == NULL) {
        goto nomem;
    }
    for (uint32_t e = 0; e < g->nedges; e++) {
        indeg[g->edges[e]]++;
    }
    for (uint32_t id = 0; id < g->nnodes; id++) {
        if (id + PREFETCH < g->nnodes) {
            __builtin_prefetch(g->objs[id + PREFETCH]);
        }
        Py_ssize_t refs = Py_REFCNT(g->objs[id]);
        if (refs - 1 > (Py_ssize_t)indeg[id]) {
            g->flags[id] |= MH_HG_EXTERNAL;
        }
    }
    mh_rawmem_unmap(indeg, (g->nnodes ? g->nnodes : 1) * sizeof(uint32_t));
    return g;

nomem:
    mh_heapgraph_free(g);
    return (mh_heapgraph_t *)PyErr_NoMemory();
}

void
mh_heapgraph_free(mh_heapgraph_t *g)
{
    if (g == NULL) {
        return;
    }
    /* Release the graph's memory before its references: a decref may run
     * finalizers, which must not find the graph half-freed. */
    PyObject **objs = g->objs;
    size_t objcap = g->objcap;
    uint32_t nnodes = g->nnodes;
    mh_rawmem_unmap(g->flags, g->flagcap);
    if (g->off != NULL) {
        mh_rawmem_unmap(g->off, (g->nodecap + 1) * sizeof(uint32_t));
    }
    mh_rawmem_unmap(g->edges, g->edgecap * sizeof(uint32_t));
    mh_rawmem_unmap(g->map, g->mapcap * sizeof(uint32_t));
    mh_rawmem_unmap(g->parent, (size_t)g->nnodes * sizeof(uint32_t));
    mh_rawmem_free(g->roots, g->nroots * sizeof(uint32_t));
    mh_rawmem_unmap(g->tb, (size_t)g->nnodes * sizeof(uint32_t));
    mh_rawmem_unmap(g->size, (size_t)g->nnodes * sizeof(uint32_t));
    mh_rawmem_free(g->bigids, g->bigidcap * sizeof(uint32_t));
    mh_rawmem_free(g->bigsize, g->bigsizecap * sizeof(uint64_t));
    mh_rawmem_unmap(g->idom, (size_t)g->nnodes * sizeof(uint32_t));
    mh_rawmem_unmap(g->retained, (size_t)g->nnodes * sizeof(uint64_t));
    mh_rawmem_free(g, sizeof(mh_heapgraph_t));
    for (uint32_t id = 0; id < nnodes; id++) {
        Py_DECREF(objs[id]);
    }
    mh_rawmem_unmap(objs, objcap * sizeof(PyObject *));
}

int64_t
mh_heapgraph_mark_live(mh_heapgraph_t *g)
{
    size_t n = g->nnodes;
    /* Mapped: only the stack's depth costs memory, and only meanwhile. */
    uint32_t *stack = mh_rawmem_map((n ? n : 1) * sizeof(uint32_t));
    if (stack == NULL) {
        return -1;
    }
    size_t top = 0;
    for (uint32_t id = 0; id < n; id++) {
        g->flags[id] &= (uint8_t)~MH_HG_LIVE;
        if (g->flags[id] & MH_HG_EXTERNAL) {
            g->flags[id] |= MH_HG_LIVE;
            stack[top++] = id;
        }
    }
    /* Each node is pushed once (marked when pushed): the stack never holds
     * more than n entries. */
    while (top > 0) {
        uint32_t u = stack[--top];
        for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
            uint32_t v = g->edges[e];
            if (!(g->flags[v] & MH_HG_LIVE)) {
                g->flags[v] |= MH_HG_LIVE;
                stack[top++] = v;
            }
        }
    }
    mh_rawmem_unmap(stack, (n ? n : 1) * sizeof(uint32_t));
    int64_t garbage = 0;
    for (uint32_t id = 0; id < n; id++) {
        garbage += !(g->flags[id] & MH_HG_LIVE);
    }
    return garbage;
}

/* ---- sizes -------------------------------------------------------------- */

int
mh_heapgraph_block(const mh_heapgraph_t *g, uint32_t n, uint64_t *size,
                   uint32_t *traceback)
{
    return mh_heapgraph_object_block(g->objs[n], size, traceback);
}

int
mh_heapgraph_object_block(PyObject *obj, uint64_t *size, uint32_t *traceback)
{
    uint16_t gen;
    uint8_t domain;
    if (mh_hooks_is_tracing() &&
        mh_hooks_lookup((uintptr_t)mh_frames_object_block(obj), traceback,
                        size, &gen, &domain)) {
        /* The block holds the object's header only; its buffers are
         * blocks of their own, often from another line (list.append). */
        uint64_t whole = mh_heapgraph_sizeof(obj);
        if (whole > *size) {
            *size = whole;
        }
        return 1;
    }
    *traceback = 0;
    *size = mh_heapgraph_sizeof(obj);
    return 0;
}
