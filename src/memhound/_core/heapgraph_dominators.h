/* heapgraph_dominators.h: the dominator tree of a graph in CSR form and
 * the retained size of every node, for the heap graph (heapgraph.h).
 *
 * Python-free (plain-C tested in tests/c/test_dominators.c).  Memory from
 * rawmem.h, freed before it returns: a quarter byte per node, plus 16 bytes
 * per node that has out-edges or several predecessors and 4 per in-edge of
 * the latter while it runs.  Not thread-safe: callers own the arrays.
 */
#ifndef MH_HEAPGRAPH_DOMINATORS_H
#define MH_HEAPGRAPH_DOMINATORS_H

#include <stddef.h>
#include <stdint.h>

#define MH_DOM_NONE UINT32_MAX /* idom of a root's children: the root */

/* A graph of n nodes (n < UINT32_MAX - 1): out-edges of v are
 * edges[off[v], off[v+1]).  No reverse edges needed. */
typedef struct {
    uint32_t n;
    const uint32_t *off, *edges;
} mh_dom_graph_t;

/* Compute immediate dominators for the graph extended with a virtual root
 * whose children are roots[0..nroots) (duplicates allowed; ids >= n are
 * ignored) and, when cover_all is set, then every node still unreached
 * (each such node found in id order becomes a child of the virtual root
 * and the entry to what it reaches).  Semi-NCA (Georgiadis, Tarjan, Werneck):
 * Lengauer-Tarjan's semidominators with path compression, then nearest common
 * ancestors in preorder; O(m log n), iterative (no recursion on deep heaps).
 * Leaves (no out-edges) with one predecessor, or that are roots, skip the
 * search: their immediate dominator is that predecessor (the virtual root).
 * idom doubles as working memory: it is written whatever the outcome.
 * Outputs, n entries each: idom[v] = v's immediate dominator, MH_DOM_NONE
 * when it is the virtual root or v is not reached from it; and, when size
 * is not NULL, retained[v] = the size of v plus the sizes of every node v
 * dominates (0 when not reached).  The size of v is size[v], or, when that
 * is MH_DOM_BIG and big is not NULL, big(ctx, v) (sizes of 4 GiB and more
 * kept aside).  Returns the number of nodes reached, or -1 when out of
 * memory (outputs unspecified). */
#define MH_DOM_BIG UINT32_MAX
typedef uint64_t (*mh_dom_bigsize_fn)(const void *ctx, uint32_t node);
int64_t mh_dominators(const mh_dom_graph_t *g, const uint32_t *roots,
                      size_t nroots, int cover_all, const uint32_t *size,
                      mh_dom_bigsize_fn big, const void *ctx, uint32_t *idom,
                      uint64_t *retained);

#endif /* MH_HEAPGRAPH_DOMINATORS_H */
