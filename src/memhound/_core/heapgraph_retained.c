/* heapgraph_retained.c: retained sizes beyond the per-node dominator tree
 * (heapgraph_query.h): one object's retained size without building the
 * tree, and the retained size of every type (the set of all its objects).
 *
 * Both walk the graph's arrays only (no object is touched except to read
 * its type); node marks use the MH_HG_MARK_* flag bits, cleared before
 * returning.  GIL held (sizes may call builtin __sizeof__); memory from
 * rawmem.h, all freed before returning.
 */
#include "heapgraph_query.h"

#include <string.h>

#include "rawmem.h"
#include "table.h"

/* ---- one object ---------------------------------------------------------
 *
 * With a virtual root whose children are the sources (labelled roots and
 * objects held from outside the graph) and every garbage node, target
 * dominates exactly the nodes it reaches that no path from a source or a
 * garbage node avoiding target reaches.  So: mark A = reachable from the
 * sources without passing through target; mark B = reachable from target;
 * garbage = neither (for a live target) — mark from it into A, again
 * avoiding target; the answer is the size of B minus A.  Three linear
 * walks instead of reverse edges and a dominator tree.  For a target that
 * is garbage itself, the seeds of the last walk are the garbage nodes it
 * does not reach. */

/* Mark with bit everything reachable from the nodes on the stack (marked
 * already), never entering node `avoid` (MH_HG_NONE: none). */
static void
mark_from(const mh_heapgraph_t *g, uint32_t *stack, size_t top, uint8_t bit,
          uint32_t avoid)
{
    while (top > 0) {
        uint32_t u = stack[--top];
        for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
            uint32_t v = g->edges[e];
            if (v != avoid && !(g->flags[v] & bit)) {
                g->flags[v] |= bit;
                stack[top++] = v;
            }
        }
    }
}

int
mh_heapgraph_retained_one(mh_heapgraph_t *g, const uint32_t *roots,
                          size_t nroots, uint32_t target, uint64_t *out)
{
    size_t n = g->nnodes;
    if (target >= n) {
        *out = 0;
        return 0;
    }
    /* Every node is pushed at most once per mark (marked when pushed). */
    uint32_t *stack = mh_rawmem_malloc((n ? n : 1) * sizeof(uint32_t));
    if (stack == NULL) {
        return -1;
    }
    const uint8_t A = MH_HG_MARK_A, B = MH_HG_MARK_B;
    size_t top = 0;
    for (size_t i = 0; i < nroots; i++) {
        uint32_t r = roots[i];
        if (r < n && r != target && !(g->flags[r] & A)) {
            g->flags[r] |= A;
            stack[top++] = r;
        }
    }
    for (uint32_t id = 0; id < n; id++) {
        if ((g->flags[id] & (MH_HG_EXTERNAL | A)) == MH_HG_EXTERNAL &&
            id != target) {
            g->flags[id] |= A;
            stack[top++] = id;
        }
    }
    mark_from(g, stack, top, A, target);
    g->flags[target] |= B;
    stack[0] = target;
    mark_from(g, stack, 1, B, MH_HG_NONE);
    top = 0;
    for (uint32_t id = 0; id < n; id++) {
        if (!(g->flags[id] & (A | B))) {
            g->flags[id] |= A;
            stack[top++] = id;
        }
    }
    mark_from(g, stack, top, A, target);
    uint64_t total = 0;
    for (uint32_t id = 0; id < n; id++) {
        uint8_t f = g->flags[id];
        if ((f & (A | B)) == B) {
            uint64_t size;
            uint32_t tb;
            if (g->size != NULL) {
                size = mh_heapgraph_size(g, id);
            }
            else {
                mh_heapgraph_block(g, id, &size, &tb);
            }
            total += size;
        }
        g->flags[id] = f & (uint8_t)~(A | B);
    }
    mh_rawmem_free(stack, (n ? n : 1) * sizeof(uint32_t));
    *out = total;
    return 0;
}

/* ---- per type -----------------------------------------------------------
 *
 * Eclipse MAT's "retained heap" of a class: the bytes freed if every
 * object of the type went, i.e. the retained sizes of its objects that no
 * other object of the type dominates.  One depth-first walk of the
 * dominator tree keeps, per type, how many objects of the type are on the
 * path from the virtual root: an object counts when its type's counter is
 * 0 as it is entered. */

typedef struct {
    mh_table_t index; /* type pointer -> row */
    mh_hg_typeret_t *rows;
    size_t nrows, cap;
    uint32_t *onpath; /* per row: objects of the type on the DFS path */
    size_t onpathcap;
} types_t;

static int64_t
type_row(types_t *t, PyTypeObject *tp)
{
    uint32_t row;
    if (mh_table_get(&t->index, (uint64_t)(uintptr_t)tp, &row)) {
        return row;
    }
    void *p = t->rows;
    if (mh_rawmem_reserve(&p, &t->cap, t->nrows + 1, sizeof(*t->rows)) < 0) {
        return -1;
    }
    t->rows = p;
    p = t->onpath;
    if (mh_rawmem_reserve(&p, &t->onpathcap, t->nrows + 1, sizeof(uint32_t)) <
        0) {
        return -1;
    }
    t->onpath = p;
    row = (uint32_t)t->nrows;
    if (mh_table_put(&t->index, (uint64_t)(uintptr_t)tp, row) < 0) {
        return -1;
    }
    t->nrows++;
    t->rows[row] = (mh_hg_typeret_t){.type = tp};
    t->onpath[row] = 0;
    return row;
}

static int
by_retained_desc(const void *a, const void *b)
{
    const mh_hg_typeret_t *x = a, *y = b;
    if (x->retained != y->retained) {
        return x->retained < y->retained ? 1 : -1;
    }
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

int
mh_heapgraph_retained_by_type(mh_heapgraph_t *g, mh_hg_typeret_t **out,
                              size_t *count)
{
    if (mh_heapgraph_ensure_dominators(g) < 0) {
        return -1;
    }
    size_t n = g->nnodes;
    size_t cap = n ? n : 1;
    types_t t = {.rows = NULL};
    mh_table_init(&t.index);
    /* The dominator tree's children in CSR form (the virtual root's are
     * the nodes whose idom is MH_HG_NONE), the row of every node, and the
     * DFS stack with each level's next child. */
    uint32_t *coff = mh_rawmem_calloc(n + 2, sizeof(uint32_t));
    uint32_t *kids = mh_rawmem_malloc(cap * sizeof(uint32_t));
    uint32_t *rowof = mh_rawmem_malloc(cap * sizeof(uint32_t));
    uint32_t *stack = mh_rawmem_malloc((cap + 1) * sizeof(uint32_t));
    uint32_t *cursor = mh_rawmem_malloc((cap + 1) * sizeof(uint32_t));
    int rc = -1;
    if (coff == NULL || kids == NULL || rowof == NULL || stack == NULL ||
        cursor == NULL) {
        goto done;
    }
    PyTypeObject *last = NULL;
    int64_t lastrow = -1;
    for (uint32_t v = 0; v < n; v++) {
        PyTypeObject *tp = Py_TYPE(g->objs[v]);
        int64_t row = tp == last ? lastrow : type_row(&t, tp);
        if (row < 0) {
            goto done;
        }
        last = tp;
        lastrow = row;
        rowof[v] = (uint32_t)row;
        mh_hg_typeret_t *r = &t.rows[row];
        r->count++;
        r->bytes += mh_heapgraph_size(g, v);
        /* Slot 0 of coff counts the virtual root's children (node n). */
        uint32_t parent = g->idom[v] == MH_HG_NONE ? (uint32_t)n : g->idom[v];
        coff[parent + 1]++;
    }
    /* Children of node p: kids[coff[p], coff[p+1]), p = n the virtual
     * root; offsets by a prefix sum, then filled with a moving cursor. */
    for (size_t p = 0; p <= n; p++) {
        coff[p + 1] += coff[p];
    }
    for (uint32_t v = 0; v < n; v++) {
        uint32_t parent = g->idom[v] == MH_HG_NONE ? (uint32_t)n : g->idom[v];
        kids[coff[parent]++] = v;
    }
    for (size_t p = n + 1; p > 0; p--) {
        coff[p] = coff[p - 1];
    }
    coff[0] = 0;
    /* Depth-first from the virtual root: stack[d] is the node at depth d,
     * cursor[d] its next child. */
    size_t depth = 0;
    stack[0] = (uint32_t)n;
    cursor[0] = coff[n];
    while (1) {
        uint32_t u = stack[depth];
        if (cursor[depth] == coff[u + 1]) {
            if (depth == 0) {
                break;
            }
            t.onpath[rowof[u]]--;
            depth--;
            continue;
        }
        uint32_t v = kids[cursor[depth]++];
        uint32_t row = rowof[v];
        if (t.onpath[row]++ == 0) {
            t.rows[row].retained += g->retained[v];
        }
        depth++;
        stack[depth] = v;
        cursor[depth] = coff[v];
    }
    if (t.nrows > 1) {
        qsort(t.rows, t.nrows, sizeof(*t.rows), by_retained_desc);
    }
    /* Hand over an array sized as the caller will free it. */
    void *p = mh_rawmem_realloc(t.rows, t.cap * sizeof(*t.rows),
                                (t.nrows ? t.nrows : 1) * sizeof(*t.rows));
    if (p == NULL) {
        goto done;
    }
    *out = p;
    *count = t.nrows;
    t.rows = NULL;
    rc = 0;
done:
    mh_rawmem_free(coff, (n + 2) * sizeof(uint32_t));
    mh_rawmem_free(kids, cap * sizeof(uint32_t));
    mh_rawmem_free(rowof, cap * sizeof(uint32_t));
    mh_rawmem_free(stack, (cap + 1) * sizeof(uint32_t));
    mh_rawmem_free(cursor, (cap + 1) * sizeof(uint32_t));
    mh_rawmem_free(t.rows, t.cap * sizeof(*t.rows));
    mh_rawmem_free(t.onpath, t.onpathcap * sizeof(uint32_t));
    mh_table_fini(&t.index);
    return rc;
}

/* ---- one object, no graph -----------------------------------------------
 *
 * Only the objects target reaches can be in its retained set, and the
 * collector's own test tells which of them something else holds: an
 * object whose reference count exceeds the references it gets from that
 * set is held from outside it (by a live object, a frame, C code or
 * garbage outside), and so is everything it reaches without passing
 * through target.  The rest is what target retains: the dominator tree's
 * answer, at the cost of walking target's reach twice.  The set is
 * numbered in discovery order (target is 0) with its edges in CSR form. */

typedef struct {
    PyObject **objs; /* borrowed: the caller keeps target alive */
    size_t nobjs, objcap;
    uint32_t *off; /* off[i]: first edge of node i (nobjs + 1 entries) */
    size_t offcap;
    uint32_t *edges;
    size_t nedges, edgecap;
    uint32_t *map; /* open addressing: slot -> node, UINT32_MAX empty */
    size_t mapcap; /* power of two */
    int failed;
} reach_t;

static inline size_t
reach_hash(const void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p >> 4;
    return (size_t)((x * 0x9E3779B97F4A7C15ULL) >> 24) & mask;
}

static int
reach_grow(reach_t *r)
{
    size_t cap = r->mapcap ? r->mapcap * 2 : 256;
    uint32_t *map = mh_rawmem_malloc(cap * sizeof(uint32_t));
    if (map == NULL) {
        return -1;
    }
    memset(map, 0xff, cap * sizeof(uint32_t));
    for (size_t i = 0; i < r->nobjs; i++) {
        size_t j = reach_hash(r->objs[i], cap - 1);
        while (map[j] != UINT32_MAX) {
            j = (j + 1) & (cap - 1);
        }
        map[j] = (uint32_t)i;
    }
    mh_rawmem_free(r->map, r->mapcap * sizeof(uint32_t));
    r->map = map;
    r->mapcap = cap;
    return 0;
}

/* The node of obj, added when new; UINT32_MAX when out of memory. */
static uint32_t
reach_node(reach_t *r, PyObject *obj)
{
    if ((r->nobjs + 1) * 2 > r->mapcap &&
        (r->nobjs >= UINT32_MAX - 1 || reach_grow(r) < 0)) {
        return UINT32_MAX;
    }
    size_t mask = r->mapcap - 1;
    size_t i = reach_hash(obj, mask);
    for (; r->map[i] != UINT32_MAX; i = (i + 1) & mask) {
        if (r->objs[r->map[i]] == obj) {
            return r->map[i];
        }
    }
    void *p = r->objs;
    if (mh_rawmem_reserve(&p, &r->objcap, r->nobjs + 1, sizeof(PyObject *)) <
        0) {
        return UINT32_MAX;
    }
    r->objs = p;
    r->objs[r->nobjs] = obj;
    r->map[i] = (uint32_t)r->nobjs;
    return (uint32_t)r->nobjs++;
}

static int
visit_reach(PyObject *child, void *arg)
{
    reach_t *r = arg;
    uint32_t id = reach_node(r, child);
    void *p = r->edges;
    if (id == UINT32_MAX || r->nedges >= UINT32_MAX - 1 ||
        mh_rawmem_reserve(&p, &r->edgecap, r->nedges + 1, sizeof(uint32_t)) <
            0) {
        r->failed = 1;
        return -1;
    }
    r->edges = p;
    r->edges[r->nedges++] = id;
    return 0;
}

int
mh_heapgraph_retained_alone(PyObject *target, uint64_t *out)
{
    reach_t r = {.objs = NULL};
    uint32_t *cnt = NULL, *stack = NULL;
    uint8_t *held = NULL;
    size_t n = 0;
    int rc = -1;
    if (reach_node(&r, target) == UINT32_MAX) {
        goto done;
    }
    /* Breadth-first over tp_traverse, untracked containers too (as the
     * graph does): nothing runs but the traverse functions. */
    for (size_t i = 0; i < r.nobjs; i++) {
        void *p = r.off;
        if (mh_rawmem_reserve(&p, &r.offcap, i + 2, sizeof(uint32_t)) < 0) {
            goto done;
        }
        r.off = p;
        r.off[i] = (uint32_t)r.nedges;
        PyObject *obj = r.objs[i];
        traverseproc traverse = Py_TYPE(obj)->tp_traverse;
        if (traverse != NULL && PyObject_IS_GC(obj)) {
            traverse(obj, visit_reach, &r);
            if (r.failed) {
                goto done;
            }
        }
    }
    n = r.nobjs;
    r.off[n] = (uint32_t)r.nedges;
    cnt = mh_rawmem_calloc(n, sizeof(uint32_t));
    stack = mh_rawmem_malloc(n * sizeof(uint32_t));
    held = mh_rawmem_calloc(n, 1);
    if (cnt == NULL || stack == NULL || held == NULL) {
        goto done;
    }
    for (size_t e = 0; e < r.nedges; e++) {
        cnt[r.edges[e]]++;
    }
    size_t top = 0;
    for (size_t i = 1; i < n; i++) {
        if (Py_REFCNT(r.objs[i]) > (Py_ssize_t)cnt[i]) {
            held[i] = 1;
            stack[top++] = (uint32_t)i;
        }
    }
    while (top > 0) {
        uint32_t u = stack[--top];
        for (uint32_t e = r.off[u]; e < r.off[u + 1]; e++) {
            uint32_t v = r.edges[e];
            if (v != 0 && !held[v]) {
                held[v] = 1;
                stack[top++] = v;
            }
        }
    }
    /* Sizes last: a builtin __sizeof__ may allocate. */
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!held[i]) {
            uint64_t size;
            uint32_t tb;
            mh_heapgraph_object_block(r.objs[i], &size, &tb);
            total += size;
        }
    }
    *out = total;
    rc = 0;
done:
    mh_rawmem_free(cnt, n * sizeof(uint32_t));
    mh_rawmem_free(stack, n * sizeof(uint32_t));
    mh_rawmem_free(held, n);
    mh_rawmem_free(r.objs, r.objcap * sizeof(PyObject *));
    mh_rawmem_free(r.off, r.offcap * sizeof(uint32_t));
    mh_rawmem_free(r.edges, r.edgecap * sizeof(uint32_t));
    mh_rawmem_free(r.map, r.mapcap * sizeof(uint32_t));
    return rc;
}
