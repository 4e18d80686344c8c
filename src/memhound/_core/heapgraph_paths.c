/* heapgraph_paths.c: shortest retention paths over the heap graph.
 *
 * One multi-source breadth-first search from the roots gives every node
 * its parent on a shortest path from the nearest root, so one search
 * answers every later path query in O(path length).  Python-free apart
 * from the graph's types; never touches objects.  Memory from rawmem.h.
 */
#include "heapgraph_query.h"

#include "rawmem.h"

int64_t
mh_heapgraph_bfs(const mh_heapgraph_t *g, const uint32_t *sources, size_t n,
                 uint32_t *parent)
{
    size_t cap = g->nnodes ? g->nnodes : 1;
    /* Mapped: its pages go back to the system when the search ends. */
    uint32_t *queue = mh_rawmem_map(cap * sizeof(uint32_t));
    if (queue == NULL) {
        return -1;
    }
    /* Every node enters the queue at most once (its parent is set when it
     * enters), so nnodes slots suffice. */
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t s = sources[i];
        if (s < g->nnodes && parent[s] == MH_HG_NONE) {
            parent[s] = MH_HG_ROOT;
            queue[tail++] = s;
        }
    }
    while (head < tail) {
        uint32_t u = queue[head++];
        for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
            uint32_t v = g->edges[e];
            if (parent[v] == MH_HG_NONE) {
                parent[v] = u;
                queue[tail++] = v;
            }
        }
    }
    mh_rawmem_unmap(queue, cap * sizeof(uint32_t));
    return (int64_t)tail;
}

int
mh_heapgraph_external_nodes(const mh_heapgraph_t *g, uint32_t **out,
                            size_t *count)
{
    size_t n = 0;
    for (uint32_t id = 0; id < g->nnodes; id++) {
        n += (g->flags[id] & MH_HG_EXTERNAL) != 0;
    }
    uint32_t *ids = mh_rawmem_malloc(n * sizeof(uint32_t));
    if (ids == NULL) {
        return -1;
    }
    size_t k = 0;
    for (uint32_t id = 0; id < g->nnodes; id++) {
        if (g->flags[id] & MH_HG_EXTERNAL) {
            ids[k++] = id;
        }
    }
    *out = ids;
    *count = n;
    return 0;
}
