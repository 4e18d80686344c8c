/* heapgraph_dominators.c: dominator tree and retained sizes
 * (heapgraph_dominators.h).
 *
 * Nodes are renumbered in DFS preorder from the virtual root (number 1;
 * 0 means "none"), every array below is indexed by preorder number.
 * Python-free; memory from rawmem.h, all freed before returning.
 */
#include "heapgraph_dominators.h"

#include <string.h>

#include "rawmem.h"

typedef struct {
    uint32_t *pre;      /* node -> preorder number, 0: not reached */
    uint32_t *vertex;   /* preorder -> node (1: the virtual root) */
    uint32_t *parent;   /* DFS tree parent */
    uint32_t *semi;     /* semidominator */
    uint32_t *label;    /* node of minimal semi on the compressed path */
    uint32_t *ancestor; /* link-eval forest, 0: a tree root */
    uint32_t *dom;      /* immediate dominator */
    uint32_t *stack;    /* DFS nodes, then compression paths */
    uint32_t *cursor;   /* DFS edge positions */
    size_t cap;         /* entries of each preorder array */
} dom_work;

static void
work_free(dom_work *w, uint32_t n)
{
    mh_rawmem_free(w->pre, (size_t)n * sizeof(uint32_t));
    uint32_t **arrays[] = {&w->vertex,   &w->parent, &w->semi,  &w->label,
                           &w->ancestor, &w->dom,    &w->stack, &w->cursor};
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++) {
        mh_rawmem_free(*arrays[i], w->cap * sizeof(uint32_t));
        *arrays[i] = NULL;
    }
    w->pre = NULL;
}

static int
work_alloc(dom_work *w, uint32_t n)
{
    memset(w, 0, sizeof(*w));
    w->cap = (size_t)n + 2;
    w->pre = mh_rawmem_calloc(n ? n : 1, sizeof(uint32_t));
    uint32_t **arrays[] = {&w->vertex,   &w->parent, &w->semi,  &w->label,
                           &w->ancestor, &w->dom,    &w->stack, &w->cursor};
    int ok = w->pre != NULL;
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++) {
        *arrays[i] = mh_rawmem_malloc(w->cap * sizeof(uint32_t));
        ok &= *arrays[i] != NULL;
    }
    if (!ok) {
        if (w->pre == NULL) {
            /* work_free frees pre by n: allocate nothing to free. */
            w->pre = NULL;
        }
        work_free(w, n ? n : 1);
        return -1;
    }
    return 0;
}

/* DFS from one entry node, numbering in preorder. */
static uint32_t
dfs_from(const mh_dom_graph_t *g, uint32_t root, uint32_t count, dom_work *w)
{
    w->pre[root] = ++count;
    w->vertex[count] = root;
    w->parent[count] = 1;
    size_t top = 0;
    w->stack[top] = root;
    w->cursor[top] = g->off[root];
    top++;
    while (top > 0) {
        uint32_t u = w->stack[top - 1];
        uint32_t e = w->cursor[top - 1];
        if (e == g->off[u + 1]) {
            top--;
            continue;
        }
        w->cursor[top - 1] = e + 1;
        uint32_t v = g->edges[e];
        if (w->pre[v] != 0) {
            continue;
        }
        w->pre[v] = ++count;
        w->vertex[count] = v;
        w->parent[count] = w->pre[u];
        w->stack[top] = v;
        w->cursor[top] = g->off[v];
        top++;
    }
    return count;
}

/* Preorder numbering by an iterative DFS from the virtual root, whose
 * children are the roots and then (cover_all) every node still unreached.
 * Marks the virtual root's children in w->dom (1).  Returns the number of
 * the last node numbered. */
static uint32_t
number(const mh_dom_graph_t *g, const uint32_t *roots, size_t nroots,
       int cover_all, dom_work *w)
{
    uint32_t count = 1;
    w->vertex[1] = MH_DOM_NONE; /* the virtual root */
    w->parent[1] = 0;
    memset(w->dom, 0, w->cap * sizeof(uint32_t));
    for (size_t r = 0; r < nroots; r++) {
        uint32_t root = roots[r];
        if (root < g->n && w->pre[root] == 0) {
            count = dfs_from(g, root, count, w);
        }
    }
    for (size_t r = 0; r < nroots; r++) {
        if (roots[r] < g->n) {
            w->dom[w->pre[roots[r]]] = 1;
        }
    }
    for (uint32_t v = 0; cover_all && v < g->n; v++) {
        if (w->pre[v] == 0) {
            count = dfs_from(g, v, count, w);
            w->dom[w->pre[v]] = 1;
        }
    }
    return count;
}

/* Path compression, iterative: the recursive version recurses as deep as
 * the forest, which on a linked list of a million objects is a million. */
static uint32_t
eval(dom_work *w, uint32_t v)
{
    uint32_t *anc = w->ancestor, *label = w->label, *semi = w->semi;
    if (anc[v] == 0) {
        return v;
    }
    size_t sp = 0;
    uint32_t x = v;
    while (anc[anc[x]] != 0) {
        w->stack[sp++] = x;
        x = anc[x];
    }
    while (sp > 0) {
        x = w->stack[--sp];
        uint32_t a = anc[x];
        if (semi[label[a]] < semi[label[x]]) {
            label[x] = label[a];
        }
        anc[x] = anc[a];
    }
    return label[v];
}

int64_t
mh_dominators(const mh_dom_graph_t *g, const uint32_t *roots, size_t nroots,
              int cover_all, const uint32_t *size, mh_dom_bigsize_fn big,
              const void *ctx, uint32_t *idom, uint64_t *retained)
{
    dom_work w;
    if (work_alloc(&w, g->n) < 0) {
        return -1;
    }
    uint32_t last = number(g, roots, nroots, cover_all, &w);
    for (uint32_t i = 1; i <= last; i++) {
        w.semi[i] = i;
        w.label[i] = i;
        w.ancestor[i] = 0;
    }
    /* A root's predecessor in the virtual graph is the virtual root:
     * number() marked roots in `dom` (unused until the last step) so that
     * their semi is set to 1 when their turn comes, not before (an
     * unprocessed node must still have semi == its own number). */
    for (uint32_t i = last; i >= 2; i--) {
        uint32_t node = w.vertex[i];
        if (w.dom[i]) {
            w.semi[i] = 1;
        }
        for (uint32_t e = g->roff[node]; e < g->roff[node + 1]; e++) {
            uint32_t pv = w.pre[g->redges[e]];
            if (pv == 0) {
                continue; /* a predecessor the root does not reach */
            }
            uint32_t u = eval(&w, pv);
            if (w.semi[u] < w.semi[i]) {
                w.semi[i] = w.semi[u];
            }
        }
        w.ancestor[i] = w.parent[i];
    }
    w.dom[1] = 0;
    for (uint32_t i = 2; i <= last; i++) {
        uint32_t d = w.parent[i];
        while (d > w.semi[i]) {
            d = w.dom[d];
        }
        w.dom[i] = d;
    }
    /* Only vertex and dom are read from here on: give the rest back
     * before the outputs are written (their pages are the peak's). */
    mh_rawmem_free(w.pre, (size_t)(g->n ? g->n : 1) * sizeof(uint32_t));
    w.pre = NULL;
    uint32_t **dead[] = {&w.parent,   &w.semi,  &w.label,
                         &w.ancestor, &w.stack, &w.cursor};
    for (size_t i = 0; i < sizeof(dead) / sizeof(dead[0]); i++) {
        mh_rawmem_free(*dead[i], w.cap * sizeof(uint32_t));
        *dead[i] = NULL;
    }
    for (uint32_t v = 0; v < g->n; v++) {
        idom[v] = MH_DOM_NONE;
        if (retained != NULL) {
            retained[v] = 0;
        }
    }
    for (uint32_t i = 2; i <= last; i++) {
        idom[w.vertex[i]] = w.dom[i] <= 1 ? MH_DOM_NONE : w.vertex[w.dom[i]];
    }
    if (retained != NULL && size != NULL) {
        /* A dominator precedes what it dominates in preorder: summing in
         * reverse preorder adds each subtree before its root is read. */
        for (uint32_t i = 2; i <= last; i++) {
            uint32_t v = w.vertex[i];
            retained[v] =
                size[v] == MH_DOM_BIG && big != NULL ? big(ctx, v) : size[v];
        }
        for (uint32_t i = last; i >= 2; i--) {
            if (w.dom[i] >= 2) {
                retained[w.vertex[w.dom[i]]] += retained[w.vertex[i]];
            }
        }
    }
    work_free(&w, g->n);
    return (int64_t)last - 1;
}
