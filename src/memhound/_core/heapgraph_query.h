/* heapgraph_query.h: questions asked of a built heap graph (heapgraph.h):
 * garbage and objects per allocation site (heapgraph_sites.c), shortest
 * retention paths and their labels (heapgraph_paths.c), dominators and
 * retained sizes (heapgraph_dominators.c).
 *
 * Results are plain C arrays from rawmem.h, owned by the caller, who frees
 * them with mh_rawmem_free(p, count * sizeof(element)).  GIL held (the
 * graph's objects are read); nothing here runs user Python code.
 */
#ifndef MH_HEAPGRAPH_QUERY_H
#define MH_HEAPGRAPH_QUERY_H

#include "heapgraph.h"

/* Bytes and blocks of one allocation site (traceback index). */
typedef struct {
    uint32_t traceback;
    uint64_t bytes;
    uint64_t blocks;
} mh_hg_sitesum_t;

/* Sum the traced nodes that are not MH_HG_LIVE (call
 * mh_heapgraph_mark_live first) by allocation site, into a new array
 * *out of *count entries (sorted by bytes, largest first).  Returns 0 or
 * -1 when out of memory (no exception set). */
int mh_heapgraph_garbage_by_site(const mh_heapgraph_t *g,
                                 mh_hg_sitesum_t **out, size_t *count);

/* The traceback index of every node (0: untraced) and its block size
 * (traced size, else mh_heapgraph_sizeof) into new arrays *tb and *size of
 * g->nnodes entries.  Returns 0 or -1 when out of memory.  May call
 * builtin __sizeof__ methods (no user code); never raises. */
int mh_heapgraph_node_sites(const mh_heapgraph_t *g, uint32_t **tb,
                            uint64_t **size);

#endif /* MH_HEAPGRAPH_QUERY_H */
