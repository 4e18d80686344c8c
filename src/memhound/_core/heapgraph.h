/* heapgraph.h: the heap graph, a compact snapshot of who references whom.
 *
 * One node per object the collector tracks, plus one per untracked object
 * reachable from them (ints, strings, floats..., and the dicts and tuples
 * of atoms the collector untracks, whose edges are walked too).  Edges are
 * what tp_traverse reports, in CSR form (uint32 node ids).  The graph holds
 * a strong reference to every node so that node pointers stay valid for
 * the life of the graph; nothing else of Python is kept.
 * Bookkeeping memory comes from rawmem.h.  GIL held for every call; the
 * build runs no Python code and allocates no Python object after its start.
 */
#ifndef MH_HEAPGRAPH_H
#define MH_HEAPGRAPH_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#include "heapgraph_size.h"

#define MH_HG_NONE UINT32_MAX

/* Per-node flags (mh_heapgraph_t.flags). */
enum {
    MH_HG_TRACKED = 1,  /* tracked by the collector: its edges were walked */
    MH_HG_EXTERNAL = 2, /* refcount exceeds the references the graph saw:
                           held from outside the graph (C code, frames of
                           running threads, the interpreter) */
    MH_HG_LIVE = 4,     /* reachable from an external node: not garbage
                           (set by mh_heapgraph_mark_live) */
    MH_HG_MARK_A = 8,   /* scratch marks of one query, clear between */
    MH_HG_MARK_B = 16,  /* queries (heapgraph_retained.c) */
};

typedef struct {
    uint32_t nnodes;
    uint32_t ntracked; /* nodes [0, ntracked) are tracked, the rest not */
    uint32_t nedges;   /* refused beyond UINT32_MAX - 1 */
    PyObject **objs;   /* node -> object (a strong reference each) */
    uint32_t *off;     /* CSR: out-edges of n are edges[off[n], off[n+1]) */
    uint32_t *edges;   /* target node ids */
    uint8_t *flags;    /* MH_HG_* */
    uint32_t *map;     /* build only (NULL after): open addressing, slot ->
                          node id, MH_HG_NONE empty */
    size_t mapcap;     /* power of two */
    /* Query state, filled by the binding's queries and freed with the
     * graph (each array has nnodes entries, NULL until computed). */
    uint32_t *parent; /* shortest-path parent (heapgraph_query.h) */
    uint32_t *roots;  /* labelled root node ids, in the caller's order */
    size_t nroots;
    size_t nstructural; /* roots[0, nstructural): module namespaces and
                           registries, the program's structure */
    uint32_t *tb;       /* allocation site per node, 0: untraced */
    uint32_t *size;     /* block size per node; MH_HG_BIG: in bigsize
                           (read through mh_heapgraph_size) */
    uint32_t *bigids;   /* nodes of MH_HG_BIG size, ascending */
    uint64_t *bigsize;  /* their sizes */
    size_t nbig, bigidcap, bigsizecap;
    uint32_t *idom;     /* immediate dominator, MH_HG_NONE: the root */
    uint64_t *retained; /* retained bytes per node */
    size_t nodecap;     /* capacity of off (nodecap + 1 entries) */
    size_t objcap;      /* capacity of objs */
    size_t flagcap;     /* capacity of flags */
    size_t edgecap;     /* capacity of edges */
} mh_heapgraph_t;

#define MH_HG_BIG UINT32_MAX /* size[] escape: the size is in bigsize */

/* The size of node n from the 32-bit size array and its overflow list
 * (g->size filled: mh_heapgraph_ensure_sites).  Can't fail. */
uint64_t mh_heapgraph_size_big(const mh_heapgraph_t *g, uint32_t n);

static inline uint64_t
mh_heapgraph_size(const mh_heapgraph_t *g, uint32_t n)
{
    uint32_t s = g->size[n];
    return s != MH_HG_BIG ? s : mh_heapgraph_size_big(g, n);
}

/* 1 when obj is one of skip[0..nskip), else 0. */
static inline int
mh_heapgraph_skipped(PyObject *const *skip, int nskip, const PyObject *obj)
{
    for (int k = 0; k < nskip; k++) {
        if (skip[k] == obj) {
            return 1;
        }
    }
    return 0;
}

/* Build the graph of every object in the collector's lists (walked in
 * place, mh_frames_gc_visit) and of the objects they reach.  Every object
 * listed in `skip` (borrowed, may be NULL, up to nskip) is left out, with
 * its edges.  Returns a new graph, or NULL with an exception set
 * (MemoryError when out of bookkeeping memory).  GIL held; runs no Python
 * code between its start and its end. */
mh_heapgraph_t *mh_heapgraph_build(PyObject *const *skip, int nskip);

/* Release the graph: its references (which may free objects and so run
 * arbitrary finalizers) and its memory.  NULL allowed.  GIL held. */
void mh_heapgraph_free(mh_heapgraph_t *g);

/* The node id of obj, or MH_HG_NONE when obj is not in the graph.  The
 * address map exists only during the build: afterwards this scans the
 * node array (O(nodes), a few ms per million).  Can't fail. */
uint32_t mh_heapgraph_find(const mh_heapgraph_t *g, PyObject *obj);

/* ids[i] = the node id of objs[i] (MH_HG_NONE when not in the graph) for
 * i < n, in one scan of the nodes.  Returns 0 or -1 when out of memory (no
 * exception set). */
int mh_heapgraph_find_many(const mh_heapgraph_t *g, PyObject *const *objs,
                           size_t n, uint32_t *ids);

/* Bookkeeping bytes the graph holds now, query arrays included (for the
 * benchmarks).  Can't fail. */
size_t mh_heapgraph_memory(const mh_heapgraph_t *g);

/* Mark MH_HG_LIVE every node reachable from an MH_HG_EXTERNAL node, the
 * collector's view: what is left unmarked is unreachable garbage (cycles
 * no one outside holds).  Returns the number of garbage nodes, or -1 when
 * out of memory (no exception set).  Never runs Python. */
int64_t mh_heapgraph_mark_live(mh_heapgraph_t *g);

/* The byte size of node n and the traceback index of its block (0 when
 * untraced).  The size is mh_heapgraph_sizeof()'s, which counts the
 * buffers the object owns (a list's item array, a dict's tables, a
 * bytearray's bytes), or the traced block size when that is larger: the
 * object's own block alone would leave a 1 MB bytearray 56 bytes.
 * Returns 1 when traced, else 0.  Never raises. */
int mh_heapgraph_block(const mh_heapgraph_t *g, uint32_t n, uint64_t *size,
                       uint32_t *traceback);

/* The same for any object (node or not). */
int mh_heapgraph_object_block(PyObject *obj, uint64_t *size,
                              uint32_t *traceback);

#endif /* MH_HEAPGRAPH_H */
