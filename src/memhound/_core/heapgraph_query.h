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

/* ---- per-site view (heapgraph_sites.c) ---------------------------------- */

#define MH_HG_SITE_TYPES 8             /* distinct types kept per site */
#define MH_HG_SITE_GROUPS 5            /* holders kept per site */
#define MH_HG_GARBAGE (UINT32_MAX - 2) /* holder of unreachable objects */

typedef struct {
    PyTypeObject *type; /* borrowed (the graph's objects keep it alive);
                           NULL: every other type */
    uint64_t count;
    uint64_t bytes;
} mh_hg_typesum_t;

/* Objects of a site held the same way: by the same nearest holder outside
 * the site (chains of the site's own objects are followed up). */
typedef struct {
    uint32_t holder;  /* node id; MH_HG_GARBAGE: unreachable garbage */
    uint32_t example; /* one of the site's objects it holds */
    uint64_t objects;
} mh_hg_group_t;

typedef struct {
    uint32_t traceback; /* in: the site */
    uint64_t bytes;     /* traced objects of the site in the graph */
    uint64_t blocks;
    uint64_t garbage_bytes; /* of those, unreachable garbage */
    uint64_t garbage_blocks;
    size_t ntypes; /* by bytes, largest first */
    mh_hg_typesum_t types[MH_HG_SITE_TYPES + 1];
    size_t ngroups; /* by objects, most first */
    mh_hg_group_t groups[MH_HG_SITE_GROUPS];
    uint64_t retained; /* bytes freed if every object of the site went:
                          retained sizes of its objects that no other
                          object of the site dominates (needs g->idom) */
} mh_hg_site_t;

/* Fill g->tb (the traceback index of every node, 0: untraced) and g->size
 * (its block size: traced size, else mh_heapgraph_sizeof; sizes of 4 GiB
 * and more in g->bigids/bigsize), once.  Returns 0 or -1 when out of
 * memory.  May call builtin __sizeof__ methods (no user code); never
 * raises. */
int mh_heapgraph_ensure_sites(mh_heapgraph_t *g);

/* Fill sites[0..n) (traceback set by the caller) with the site's objects
 * in the graph: totals, types, garbage, and the holders that keep most of
 * them alive.  Needs g->parent (the binding's path search) and the
 * MH_HG_LIVE marks.  Returns 0 or -1 when out of memory. */
int mh_heapgraph_sites(mh_heapgraph_t *g, mh_hg_site_t *sites, size_t n);

/* Compute g->idom and g->retained (once): the dominator tree of the graph
 * under a virtual root whose children are the labelled roots (g->roots),
 * every node held from outside, and then every other node not reached
 * (garbage).  Fills the site sizes too.  Returns 0 or
 * -1 when out of memory. */
int mh_heapgraph_ensure_dominators(mh_heapgraph_t *g);

/* ---- retained sizes (heapgraph_retained.c) ----------------------------- */

/* *out = the bytes freed if node target went: its size and that of every
 * node it dominates in the graph rooted at a virtual root whose children
 * are roots[0..nroots) (ids >= nnodes ignored), the MH_HG_EXTERNAL nodes
 * and the garbage (the value mh_heapgraph_ensure_dominators gives, for a
 * target reachable from a root), computed by three linear walks without
 * reverse edges or a dominator tree.  For a target no root reaches: the
 * nodes it reaches that no other garbage outside its reach does.  Sizes
 * from g->size when filled, else mh_heapgraph_block (which may call a
 * builtin __sizeof__).  Returns 0 or -1 when out of memory (no exception
 * set).  GIL held. */
int mh_heapgraph_retained_one(mh_heapgraph_t *g, const uint32_t *roots,
                              size_t nroots, uint32_t target, uint64_t *out);

/* *out = the bytes freed if target went, without a graph: only what
 * target reaches is walked (tp_traverse, twice), and an object of that set
 * whose reference count exceeds the references it gets from the set is
 * held from outside (the collector's test), with everything it reaches
 * without passing through target.  Same answer as the dominator tree of
 * the whole heap (references from running frames, C code and garbage
 * outside the set count as holders, as the graph's external nodes do).
 * The caller must keep the collector paused (PyGC_Disable): sizes may
 * call builtin __sizeof__, after the walks.  Returns 0 or -1 when out of
 * memory (no exception set).  GIL held. */
int mh_heapgraph_retained_alone(PyObject *target, uint64_t *out);

typedef struct {
    PyTypeObject *type; /* borrowed (the graph's objects keep it alive) */
    uint64_t count;     /* objects of the type in the graph */
    uint64_t bytes;     /* their sizes */
    uint64_t retained;  /* bytes freed if every object of the type went */
} mh_hg_typeret_t;

/* One row per type of the graph's objects into a new array *out of *count
 * rows (free with mh_rawmem_free(*out, max(*count, 1) * sizeof **out)),
 * largest `retained` first: Eclipse MAT's retained heap of a class, the
 * sum of the retained sizes of the type's objects that no other object of
 * the type dominates.  Computes the dominator tree first when needed
 * (mh_heapgraph_ensure_dominators: g->roots must be set).  Returns 0 or -1
 * when out of memory (no exception set).  GIL held. */
int mh_heapgraph_retained_by_type(mh_heapgraph_t *g, mh_hg_typeret_t **out,
                                  size_t *count);

/* ---- shortest retention paths (heapgraph_paths.c) ---------------------- */

#define MH_HG_ROOT (UINT32_MAX - 1) /* parent of a BFS source */

/* Breadth-first search over the forward edges from sources[0..n) (node
 * ids; MH_HG_NONE entries are ignored), visiting only nodes whose
 * parent[] is still MH_HG_NONE: parent[source] becomes MH_HG_ROOT and
 * every newly reached node gets its BFS parent, so the chain of parents is
 * a shortest path from the nearest source.  Calling it again with more
 * sources extends the search without changing what was found.  parent has
 * g->nnodes entries, initialised to MH_HG_NONE by the caller.  Returns the
 * number of nodes reached, or -1 when out of memory. */
int64_t mh_heapgraph_bfs(const mh_heapgraph_t *g, const uint32_t *sources,
                         size_t n, uint32_t *parent);

/* The ids of the nodes flagged MH_HG_EXTERNAL, in a new array.  Returns 0
 * or -1 when out of memory. */
int mh_heapgraph_external_nodes(const mh_heapgraph_t *g, uint32_t **out,
                                size_t *count);

/* ---- edge labels (heapgraph_labels.c) ----------------------------------- */

typedef enum {
    MH_HG_EDGE_OTHER = 0,   /* referent; text: the holder's type name */
    MH_HG_EDGE_DICT_VALUE,  /* text: repr of the key; `ident` when the key
                               is a str that is a Python identifier */
    MH_HG_EDGE_DICT_KEY,    /* text: repr of the key */
    MH_HG_EDGE_INDEX,       /* list/tuple item; index */
    MH_HG_EDGE_SET,         /* set member; text: repr of the member */
    MH_HG_EDGE_ATTR,        /* attribute (instance __dict__ or __slots__ or
                               a member of a builtin type); text: name */
    MH_HG_EDGE_OWN_DICT,    /* the holder's __dict__; text: "instance",
                               "class" or "module" */
    MH_HG_EDGE_CLOSURE,     /* a function's closure cell; text: the free
                               variable's name, index: its position */
    MH_HG_EDGE_CELL,        /* a cell's contents */
    MH_HG_EDGE_FRAME,       /* a frame object's local or stack slot; text:
                               the local's name when known */
    MH_HG_EDGE_THREAD_DATA, /* one thread's attributes of a threading.local
                               (a value of its table of per-thread dicts) */
} mh_hg_edge_kind_t;

typedef struct {
    mh_hg_edge_kind_t kind;
    int ident;        /* DICT_VALUE: key usable as `.name` */
    Py_ssize_t index; /* INDEX, CLOSURE */
    char text[160];   /* NUL-terminated UTF-8, truncated with "..." */
} mh_hg_edge_t;

/* Name the edge holder -> child as a user would write it, reading the
 * holder's C representation: dict entries, list/tuple slots, set members,
 * __slots__ and other object members (PyMemberDef), instance __dict__,
 * closure cells, a threading.local's per-thread attributes.  grand is the
 * holder's own holder on the path (NULL at a root); it names closure
 * variables.  Reprs are built only for exact str, bytes, int, float, bool,
 * None and tuples of these; other keys are shown as <type object at 0x...>. No
 * user Python code runs, but an instance whose attributes live inline
 * (CPython 3.11+) may get its __dict__ materialized, as reading obj.__dict__
 * would.  Never fails: errors are cleared and the edge is labelled
 * MH_HG_EDGE_OTHER. */
void mh_heapgraph_label(PyObject *grand, PyObject *holder, PyObject *child,
                        mh_hg_edge_t *out);

/* Write a safe repr of obj into buf (as described above).  Never fails. */
void mh_heapgraph_safe_repr(PyObject *obj, char *buf, size_t size);

/* Write obj's type name into buf: "module.qualname" for classes defined
 * in Python, tp_name for builtin types.  No user code.  Never fails. */
void mh_heapgraph_type_name(PyTypeObject *tp, char *buf, size_t size);

#endif /* MH_HEAPGRAPH_QUERY_H */
