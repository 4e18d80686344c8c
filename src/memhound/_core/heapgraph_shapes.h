/* heapgraph_shapes.h: the shape of an object's retention path, so that a
 * site's objects held the same way count as one group.
 *
 * Two objects have the same shape when their shortest paths from the roots
 * go through holders of the same types, entering each the same way, with
 * list indices and the keys of data dicts left out: the 20,000 objects in
 * `registry[k][i].buf` share one shape, while `cache.a` and `cache.b` (keys
 * of a namespace: a module's globals, a small dict such as an instance's
 * __dict__) do not.  GIL held; memory from rawmem.h.
 */
#ifndef MH_HEAPGRAPH_SHAPES_H
#define MH_HEAPGRAPH_SHAPES_H

#include <stdint.h>

#include "heapgraph.h"
#include "table.h"

typedef struct {
    mh_table_t memo;   /* node id + 1 -> shape id */
    mh_table_t ids;    /* shape hash -> shape id */
    uint64_t *hashes;  /* shape id -> shape hash */
    size_t count, cap; /* shape ids in use, capacity of hashes */
} mh_hg_shapes_t;

void mh_hg_shapes_init(mh_hg_shapes_t *s);
void mh_hg_shapes_fini(mh_hg_shapes_t *s);

/* Store in *shape the shape id of node n, which the shortest-path search
 * (g->parent) reached.  Shapes are memoized in s, so the nodes of all the
 * paths asked cost O(their number) in all.  path is scratch of g->nnodes
 * entries.  Reads dicts (PyDict_Next: no __eq__ or __hash__ runs); no user
 * code runs.  Returns 0, or -1 when out of memory (no exception set). */
int mh_hg_shape(const mh_heapgraph_t *g, mh_hg_shapes_t *s, uint32_t n,
                uint32_t *path, uint32_t *shape);

#endif /* MH_HEAPGRAPH_SHAPES_H */
