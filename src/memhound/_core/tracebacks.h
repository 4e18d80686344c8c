/* tracebacks.h: the traceback store, where captured tracebacks are interned.
 *
 * Tracebacks form a tree: node = (parent, frame), the root is the empty
 * traceback (index 0), and a traceback is the node of its innermost frame,
 * its parent chain running outwards.  Tracebacks sharing outer frames share
 * nodes, and a block names its traceback with one 32-bit index.
 *
 * Interning is incremental: each thread remembers the nodes of the last
 * traceback it interned (mh_tbcache_t); the outer frames a new traceback
 * shares with it are compared frame by frame and their nodes reused, so only
 * the frames that changed (usually the innermost one or two) are looked up,
 * first in a small per-thread cache of recently interned nodes (a loop
 * allocating at a few instructions in turn), then in the store.
 * No hash over the whole stack, no compare of the whole stack against a
 * stored copy.  Line numbers are computed only when a snapshot asks, and
 * cached per node.
 *
 * Protected by the main interpreter's GIL: every function needs it, also on
 * the hook path (hooks.c interns only from threads holding it).  Each node
 * holds a strong reference to its code object, so an address can't be
 * reused by another code object while a traceback names it.  Code that
 * only the store still holds (compiled at run time by exec, namedtuple,
 * dataclasses, then dropped) is released by mh_tbstore_release_dead_code:
 * its nodes keep their line numbers and the code's names and never match a
 * lookup again, so the tracer doesn't keep the program's dead code alive
 * (and report it as a leak).  Bookkeeping
 * memory comes from rawmem.h; nothing here calls the hooked allocators or
 * raises.
 */
#ifndef MH_TRACEBACKS_H
#define MH_TRACEBACKS_H

#include <Python.h>
#include <stdint.h>

#include "frames.h"

/* Returned by mh_tbstore_intern when out of memory. */
#define MH_TB_NONE UINT32_MAX
/* Traceback indices stay below this so the live table can pack them. */
#define MH_TB_LIMIT (UINT32_C(1) << 30)

/* A node.  An "alias" node (code == NULL) stands for its parent traceback
 * with a different total_nframe: tracemalloc compatibility, where a
 * truncated traceback records how deep the stack really was. */
typedef struct {
    PyCodeObject *code;    /* strong reference; NULL for an alias */
    uint32_t offset;       /* instruction byte offset */
    uint32_t parent;       /* next frame outwards; 0 = root */
    uint32_t next;         /* next node in the same hash chain */
    uint16_t depth;        /* frames from here to the root */
    uint16_t total_nframe; /* stack depth when captured (saturating) */
    int32_t lineno;        /* cached line number, -1 until computed */
} mh_tbnode_t;

/* A node this thread interned recently: (parent, code, offset) -> node. */
typedef struct {
    PyCodeObject *code; /* borrowed: the node holds the reference */
    uint32_t offset;
    uint32_t parent;
    uint32_t node;
} mh_tbrecent_t;

/* Entries of the recent-node cache (a power of two).  A loop allocating at
 * a few instructions in turn (the loop variable, an operator, a call that
 * mallocs) changes the innermost frame on every capture: these hits spare
 * the store's hash lookup. */
#define MH_TBCACHE_RECENT 64

/* Per-thread memory of the last interned traceback, owned by the caller
 * (hooks.c keeps one in thread-local storage).  Zero-initialized is empty.
 * The last traceback is kept outermost frame first, so that the frames a
 * new capture shares with it (aligned at the outer end) stay in place and
 * only the frames that changed are written and looked up. */
typedef struct {
    mh_raw_frame_t *scratch; /* the next capture, innermost first */
    mh_raw_frame_t *frames;  /* the last traceback, outermost first */
    uint32_t *nodes;         /* nodes[0] = 0 (the root); nodes[j + 1]: the
                                node of frames[0..j] */
    int capacity;            /* frames each buffer holds */
    int nlast;               /* frames remembered; 0: nothing */
    uint64_t store_serial;   /* the store the nodes belong to */
    mh_tbrecent_t *recent;   /* MH_TBCACHE_RECENT entries by hash, valid
                                for the store numbered recent_serial */
    uint64_t recent_serial;
} mh_tbcache_t;

/* Make room for captures of `depth` frames.  Returns 0, or -1 when out of
 * memory (the cache is then still valid, with its old capacity).  Uses
 * plain malloc: per-thread buffers, not part of the store. */
int mh_tbcache_reserve(mh_tbcache_t *cache, int depth);

/* Free the buffers; the cache is empty afterwards.  Any thread. */
void mh_tbcache_release(mh_tbcache_t *cache);

/* Where to capture the next traceback (capacity frames, innermost
 * first). */
static inline mh_raw_frame_t *
mh_tbcache_buffer(mh_tbcache_t *cache)
{
    return cache->scratch;
}

/* The node of the last traceback interned when `frames` (n of them,
 * innermost first) are the same traceback, else MH_TB_NONE.  The node
 * belongs to the store numbered cache->store_serial.  The cache's owner
 * thread only.  Can't fail. */
static inline uint32_t
mh_tbcache_last_if_same(const mh_tbcache_t *cache,
                        const mh_raw_frame_t *frames, int n)
{
    if (n == 0 || n != cache->nlast) {
        return MH_TB_NONE;
    }
    for (int j = 0; j < n; j++) {
        if (frames[n - 1 - j].code != cache->frames[j].code ||
            frames[n - 1 - j].offset != cache->frames[j].offset) {
            return MH_TB_NONE;
        }
    }
    return cache->nodes[n];
}

typedef struct mh_tbstore mh_tbstore_t;

/* A new store holding only the root.  NULL when out of memory (no
 * exception set). */
mh_tbstore_t *mh_tbstore_new(void);

/* Release the store and its references to code objects.  GIL held.  NULL
 * is allowed. */
void mh_tbstore_free(mh_tbstore_t *store);

/* The index of the traceback of the n frames just captured into
 * mh_tbcache_buffer(cache), with total_nframe `total` (>= n; equal unless
 * the capture was truncated and totals are counted), adding nodes as needed
 * and taking references to new code objects.  n == 0 gives 0.  Returns
 * MH_TB_NONE when out of memory or when the store is full (MH_TB_LIMIT); the
 * cache is then emptied.  GIL held.  Never raises. */
uint32_t mh_tbstore_intern(mh_tbstore_t *store, mh_tbcache_t *cache, int n,
                           uint32_t total);

/* The index of the traceback that differs from the cache's last one at most
 * in its innermost frame, `leaf`: the caller checked the outer frames
 * (mh_frames_same_outer against cache->frames, cache->nlast of them), that
 * the cache belongs to this store (cache->store_serial) and that whole
 * stacks are not counted.  Interns only the leaf, through the recent-node
 * cache; the cache then holds the new traceback.  MH_TB_NONE as
 * mh_tbstore_intern.  GIL held.  Never raises. */
uint32_t mh_tbstore_intern_leaf(mh_tbstore_t *store, mh_tbcache_t *cache,
                                mh_raw_frame_t leaf);

/* Number of nodes (the root included) and bytes held.  Can't fail. */
size_t mh_tbstore_count(const mh_tbstore_t *store);
size_t mh_tbstore_memory(const mh_tbstore_t *store);

/* A borrowed node, valid until the next intern.  index < count.  GIL
 * held.  Can't fail. */
mh_tbnode_t *mh_tbstore_node(mh_tbstore_t *store, uint32_t index);

/* The file name, function name (qualified name from 3.11) and line number
 * of node `index` (not an alias, not the root): borrowed references, valid
 * while the store lives.  GIL held.  Can't fail. */
void mh_tbstore_frame(mh_tbstore_t *store, uint32_t index, PyObject **filename,
                      PyObject **name, int *lineno);

/* Release the code objects nothing but the store references any more (see
 * the top of this file); their deallocation may run arbitrary code after
 * the store is made consistent, even code that frees the store (stop()),
 * so the caller must re-read its store before calling again (a code freed
 * may have held the last reference to a nested one: call until it returns
 * 0).  Changes the serial when it released any.  Returns how many were
 * released, or -1 when out of memory (no exception set).  GIL held; not
 * from inside an allocator hook. */
Py_ssize_t mh_tbstore_release_dead_code(mh_tbstore_t *store);

/* The store's serial number, as mh_tbcache_t.store_serial records it: a
 * cache whose serial differs was made against another store.  Any thread,
 * while the store is alive.  Can't fail. */
uint64_t mh_tbstore_serial(const mh_tbstore_t *store);

#endif /* MH_TRACEBACKS_H */
