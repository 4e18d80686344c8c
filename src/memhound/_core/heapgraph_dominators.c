/* heapgraph_dominators.c: dominator tree and retained sizes
 * (heapgraph_dominators.h).
 *
 * Leaves (no out-edges) that are roots or have at most one predecessor sit
 * outside Lengauer-Tarjan: such a leaf is dominated by its one predecessor
 * (a root, by the virtual root) and dominates nothing.  The rest is
 * numbered in DFS preorder from the virtual root (number 1; 0 means "none")
 * and every working array is indexed by that number.  Python-free; memory
 * from rawmem.h, all freed before returning: working arrays are mapped
 * (mh_rawmem_map), so each goes back to the system as soon as it is dead
 * and the peak is what is alive at one time, not all that was touched.
 */
#include "heapgraph_dominators.h"

#include <string.h>

#include "rawmem.h"

/* ---- in-degree classes: two bits a node --------------------------------- */

enum { IN_NONE = 0, IN_ONE = 1, IN_MANY = 2, IN_ROOT = 3 };

static inline unsigned
cls_get(const uint8_t *cls, uint32_t v)
{
    return (cls[v >> 2] >> ((v & 3) * 2)) & 3;
}

static inline void
cls_set(uint8_t *cls, uint32_t v, unsigned c)
{
    unsigned shift = (v & 3) * 2;
    cls[v >> 2] = (uint8_t)((cls[v >> 2] & ~(3u << shift)) | (c << shift));
}

/* A leaf kept out of Lengauer-Tarjan: no out-edges, and one predecessor
 * at most or a root.  A leaf with several predecessors stays in. */
static inline int
excluded(const mh_dom_graph_t *g, const uint8_t *cls, uint32_t v)
{
    return g->off[v] == g->off[v + 1] && cls_get(cls, v) != IN_MANY;
}

/* ---- working state ------------------------------------------------------ */

/* pre (node -> preorder number) lives in the caller's idom array until
 * the end.  For an excluded leaf it holds instead 0 (not reached),
 * MH_DOM_NONE (a child of the virtual root) or its predecessor + 1. */
typedef struct {
    uint32_t *pre;
    uint8_t *cls;
    uint32_t *parent;   /* DFS tree parent, then the immediate dominator */
    uint32_t *semi;     /* DFS edge cursor, then in-edge group ends, then
                           semidominators, then preorder -> node */
    uint32_t *label;    /* preorder -> node during the DFS, then the node
                           of minimal semi on the compressed path */
    uint32_t *ancestor; /* link-eval forest, 0: a tree root */
    uint32_t *redges;   /* in-edges (source preorder numbers) of the nodes
                           with several predecessors, by target, highest
                           target first */
    size_t cap, nred;
} dom_work;

static uint32_t *
map_array(size_t n)
{
    return mh_rawmem_map(n * sizeof(uint32_t));
}

static void
free_array(uint32_t **a, size_t n)
{
    mh_rawmem_unmap(*a, n * sizeof(uint32_t));
    *a = NULL;
}

static void
work_free(dom_work *w, uint32_t n)
{
    mh_rawmem_unmap(w->cls, (size_t)n / 4 + 1);
    w->cls = NULL;
    free_array(&w->parent, w->cap);
    free_array(&w->semi, w->cap);
    free_array(&w->label, w->cap);
    free_array(&w->ancestor, w->cap);
    free_array(&w->redges, w->nred ? w->nred : 1);
}

/* Classify every node by in-degree (roots apart) and size the preorder
 * arrays for the nodes that take part.  Returns 0 or -1 (out of memory). */
static int
classify(const mh_dom_graph_t *g, const uint32_t *roots, size_t nroots,
         dom_work *w)
{
    w->cls = mh_rawmem_map((size_t)g->n / 4 + 1); /* zero-filled */
    if (w->cls == NULL) {
        return -1;
    }
    uint32_t nedges = g->off[g->n];
    for (uint32_t e = 0; e < nedges; e++) {
        uint32_t v = g->edges[e];
        unsigned c = cls_get(w->cls, v);
        if (c < IN_MANY) {
            cls_set(w->cls, v, c + 1);
        }
    }
    for (size_t r = 0; r < nroots; r++) {
        if (roots[r] < g->n) {
            cls_set(w->cls, roots[r], IN_ROOT);
        }
    }
    size_t inner = 0;
    for (uint32_t v = 0; v < g->n; v++) {
        inner += !excluded(g, w->cls, v);
    }
    w->cap = inner + 2;
    w->parent = map_array(w->cap);
    w->semi = map_array(w->cap);
    w->label = map_array(w->cap);
    return w->parent && w->semi && w->label ? 0 : -1;
}

/* DFS from one entry node (not excluded, not numbered yet), numbering in
 * preorder.  The DFS stack is the tree path itself: parent[] gives the
 * way back, semi[] each number's next edge, label[] its node. */
static uint32_t
dfs_from(const mh_dom_graph_t *g, uint32_t root, uint32_t count, dom_work *w)
{
    uint32_t *pre = w->pre, *parent = w->parent, *cursor = w->semi;
    uint32_t *node = w->label;
    pre[root] = ++count;
    node[count] = root;
    parent[count] = 1;
    cursor[count] = g->off[root];
    uint32_t cur = count;
    while (cur != 1) {
        uint32_t u = node[cur];
        uint32_t e = cursor[cur];
        if (e == g->off[u + 1]) {
            cur = parent[cur];
            continue;
        }
        cursor[cur] = e + 1;
        uint32_t v = g->edges[e];
        if (pre[v] != 0) {
            continue;
        }
        if (excluded(g, w->cls, v)) {
            pre[v] = cls_get(w->cls, v) == IN_ROOT ? MH_DOM_NONE : u + 1;
            continue;
        }
        pre[v] = ++count;
        node[count] = v;
        parent[count] = cur;
        cursor[count] = g->off[v];
        cur = count;
    }
    return count;
}

/* Number from the virtual root, whose children are the roots and then
 * (cover_all) every node still unreached.  Returns the last number. */
static uint32_t
number(const mh_dom_graph_t *g, const uint32_t *roots, size_t nroots,
       int cover_all, dom_work *w)
{
    uint32_t count = 1;
    memset(w->pre, 0, (size_t)g->n * sizeof(uint32_t));
    w->parent[1] = 0;
    for (size_t r = 0; r < nroots; r++) {
        uint32_t v = roots[r];
        if (v >= g->n || w->pre[v] != 0) {
            continue;
        }
        if (excluded(g, w->cls, v)) {
            w->pre[v] = MH_DOM_NONE;
        }
        else {
            count = dfs_from(g, v, count, w);
        }
    }
    for (uint32_t v = 0; cover_all && v < g->n; v++) {
        if (w->pre[v] != 0) {
            continue;
        }
        if (excluded(g, w->cls, v)) {
            w->pre[v] = MH_DOM_NONE;
        }
        else {
            count = dfs_from(g, v, count, w);
        }
    }
    return count;
}

/* The in-edges the semidominator step reads, grouped by target preorder
 * number, highest first (the order it visits them).  Only nodes with
 * several predecessors need theirs: a node with one is reached through it,
 * so its semidominator is its DFS parent.  A root's group is the virtual
 * root alone (1, the least number there is).  Afterwards semi[i] is the
 * end of i's group.  Returns 0 or -1 (out of memory, or more than
 * UINT32_MAX in-edges to keep). */
static int
in_edges(const mh_dom_graph_t *g, const uint32_t *roots, size_t nroots,
         uint32_t last, dom_work *w)
{
    uint32_t *pre = w->pre, *semi = w->semi;
    memset(semi, 0, w->cap * sizeof(uint32_t));
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t u = 0; u < g->n; u++) {
            uint32_t pu = pre[u];
            if (pu == 0 || g->off[u] == g->off[u + 1]) {
                continue; /* not reached, or no edges */
            }
            for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
                uint32_t v = g->edges[e];
                if (cls_get(w->cls, v) != IN_MANY) {
                    continue;
                }
                if (pass == 0) {
                    semi[pre[v]]++;
                }
                else {
                    w->redges[semi[pre[v]]++] = pu;
                }
            }
        }
        for (size_t r = 0; r < nroots; r++) {
            uint32_t v = roots[r];
            if (v >= g->n || cls_get(w->cls, v) != IN_ROOT ||
                excluded(g, w->cls, v) || pre[v] == 0) {
                continue;
            }
            if (pass == 0) {
                semi[pre[v]] = 1;
            }
            else {
                w->redges[semi[pre[v]]++] = 1;
                cls_set(w->cls, v, IN_NONE); /* once per root */
            }
        }
        if (pass == 0) {
            size_t pos = 0;
            for (uint32_t i = last; i >= 2; i--) {
                uint32_t c = semi[i];
                semi[i] = (uint32_t)pos;
                pos += c;
            }
            if (pos > UINT32_MAX) {
                return -1; /* group ends are 32-bit */
            }
            w->nred = pos;
            w->redges = map_array(pos ? pos : 1);
            if (w->redges == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

/* Path compression without a stack (a forest path can be a million long):
 * the path's ancestor links are reversed on the way up and restored, with
 * the labels updated from the top, on the way down. */
static uint32_t
eval(dom_work *w, uint32_t v)
{
    uint32_t *anc = w->ancestor, *label = w->label, *semi = w->semi;
    if (anc[v] == 0) {
        return v;
    }
    uint32_t below = 0, x = v;
    while (anc[anc[x]] != 0) {
        uint32_t up = anc[x];
        anc[x] = below;
        below = x;
        x = up;
    }
    /* x: the highest node whose ancestor is a forest root; unchanged. */
    while (below != 0) {
        uint32_t y = below;
        below = anc[y];
        if (semi[label[x]] < semi[label[y]]) {
            label[y] = label[x];
        }
        anc[y] = anc[x];
        x = y;
    }
    return label[v];
}

/* Semidominators in reverse preorder (Lengauer-Tarjan), then immediate
 * dominators into parent[] in preorder (Semi-NCA). */
static int
semi_nca(uint32_t last, dom_work *w)
{
    w->ancestor = map_array(w->cap); /* zero-filled */
    if (w->ancestor == NULL) {
        return -1;
    }
    uint32_t *parent = w->parent, *semi = w->semi, *label = w->label;
    size_t p = 0;
    for (uint32_t i = last; i >= 2; i--) {
        size_t end = semi[i];
        uint32_t s;
        if (parent[i] == 1) {
            s = 1; /* an entry: the virtual root is a predecessor */
        }
        else if (end == p) {
            s = parent[i]; /* one predecessor: the DFS parent */
        }
        else {
            s = i;
            for (size_t q = p; q < end; q++) {
                uint32_t pv = w->redges[q];
                /* A number <= i is not processed yet: its own semi. */
                uint32_t c = pv <= i ? pv : semi[eval(w, pv)];
                if (c < s) {
                    s = c;
                }
            }
        }
        p = end;
        semi[i] = s;
        label[i] = i;
        w->ancestor[i] = parent[i];
    }
    free_array(&w->ancestor, w->cap);
    free_array(&w->label, w->cap);
    free_array(&w->redges, w->nred ? w->nred : 1);
    /* dom[] overwrites parent[]: dom[d] for d < i is already written. */
    for (uint32_t i = 2; i <= last; i++) {
        uint32_t d = parent[i];
        while (d > semi[i]) {
            d = parent[d];
        }
        parent[i] = d;
    }
    return 0;
}

static inline uint64_t
size_of(const uint32_t *size, mh_dom_bigsize_fn big, const void *ctx,
        uint32_t v)
{
    return size[v] == MH_DOM_BIG && big != NULL ? big(ctx, v) : size[v];
}

int64_t
mh_dominators(const mh_dom_graph_t *g, const uint32_t *roots, size_t nroots,
              int cover_all, const uint32_t *size, mh_dom_bigsize_fn big,
              const void *ctx, uint32_t *idom, uint64_t *retained)
{
    dom_work w;
    memset(&w, 0, sizeof(w));
    w.pre = idom;
    int64_t reached = -1;
    if (classify(g, roots, nroots, &w) < 0) {
        goto done;
    }
    uint32_t last = number(g, roots, nroots, cover_all, &w);
    if (in_edges(g, roots, nroots, last, &w) < 0 || semi_nca(last, &w) < 0) {
        goto done;
    }
    /* semi[] is dead: it becomes preorder -> node.  idom[] turns from
     * preorder numbers into node ids before retained[] is touched, and
     * dom[] goes first: three of them at once would be the peak. */
    uint32_t *dom = w.parent, *vertex = w.semi;
    for (uint32_t v = 0; v < g->n; v++) {
        if (!excluded(g, w.cls, v) && idom[v] != 0) {
            vertex[idom[v]] = v;
        }
    }
    reached = (int64_t)last - 1;
    for (uint32_t v = 0; v < g->n; v++) {
        uint32_t x = idom[v];
        if (excluded(g, w.cls, v)) {
            if (x == MH_DOM_NONE) {
                cls_set(w.cls, v, IN_ROOT); /* reached: a root's child */
            }
            idom[v] = x == 0 || x == MH_DOM_NONE ? MH_DOM_NONE : x - 1;
            reached += x != 0;
        }
        else {
            idom[v] = x == 0 || dom[x] <= 1 ? MH_DOM_NONE : vertex[dom[x]];
        }
    }
    free_array(&w.parent, w.cap);
    if (retained == NULL) {
        goto done;
    }
    /* Reached nodes start at their own size (unreached ones at 0).
     * Excluded leaves dominate nothing: each is added to its dominator,
     * then the rest in reverse preorder, where every subtree is summed
     * before its root is read. */
    int sizes = size != NULL;
    for (uint32_t v = 0; v < g->n; v++) {
        retained[v] =
            sizes && excluded(g, w.cls, v) &&
                    (idom[v] != MH_DOM_NONE || cls_get(w.cls, v) == IN_ROOT)
                ? size_of(size, big, ctx, v)
                : 0;
    }
    for (uint32_t i = 2; sizes && i <= last; i++) {
        retained[vertex[i]] = size_of(size, big, ctx, vertex[i]);
    }
    for (uint32_t v = 0; sizes && v < g->n; v++) {
        if (excluded(g, w.cls, v) && idom[v] != MH_DOM_NONE) {
            retained[idom[v]] += retained[v];
        }
    }
    for (uint32_t i = last; sizes && i >= 2; i--) {
        uint32_t v = vertex[i];
        if (idom[v] != MH_DOM_NONE) {
            retained[idom[v]] += retained[v];
        }
    }
done:
    work_free(&w, g->n);
    return reached;
}
