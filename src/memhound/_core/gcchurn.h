/* gcchurn.h: cycle churn, what the cyclic garbage collector frees, by site.
 *
 * Between a collection's "start" and "stop" (gc.callbacks, gcchurn_binding.c)
 * the thread running it is marked (mh_gcchurn_tls_collection); hooks.c
 * passes every traced mem/object block that thread frees meanwhile to
 * mh_gcchurn_count().  Counts go to the collection's pending column and are
 * committed per site (traceback index) when the collection ends having
 * collected something, else discarded (a collection that collected nothing
 * freed only free lists or gc's own bookkeeping).  The unit is blocks: a
 * cycle's count is its objects (object domain) plus their buffers (mem
 * domain); cycles themselves can't be told apart without gc internals.
 *
 * Python-free.  State is guarded by the main GIL: collections run with it,
 * and only the collecting thread (marked by its own TLS id) counts.  Memory
 * from rawmem.h; nothing here raises or calls the hooked allocators.
 */
#ifndef MH_GCCHURN_H
#define MH_GCCHURN_H

#include <stddef.h>
#include <stdint.h>

#include "traces.h"

#define MH_GCCHURN_GC_GENERATIONS 3

/* The id of the collection the calling thread is running, 0: none.  Set
 * by mh_gcchurn_begin() on the collecting thread only, so frees on other
 * threads (a finalizer released the GIL) never count.  Initial-exec TLS:
 * the free path reads it on every traced free. */
extern __thread uint32_t mh_gcchurn_tls_collection
    __attribute__((tls_model("initial-exec")));

/* One allocation site's churn.  `objects` are object-domain blocks (estimates
 * when sampling, hence double); `blocks` and `bytes` count both domains. */
typedef struct {
    uint32_t traceback;   /* traceback store index */
    uint32_t collections; /* committed collections that freed some */
    uint32_t generations; /* memhound generations in which it churned */
    uint32_t last_collection;
    uint16_t last_generation;
    double objects;
    double blocks;
    uint64_t bytes;
    double objects_by_gc[MH_GCCHURN_GC_GENERATIONS]; /* by the collector
                                                         generation */
    /* The collection under way (last_collection), not yet committed. */
    double pending_objects;
    double pending_blocks;
    uint64_t pending_bytes;
} mh_churn_site_t;

/* The collector's own activity, per collector generation, over every
 * collection seen since the last reset (held ones excepted). */
typedef struct {
    uint64_t collections[MH_GCCHURN_GC_GENERATIONS];
    uint64_t collected[MH_GCCHURN_GC_GENERATIONS];     /* gc's "collected" */
    uint64_t uncollectable[MH_GCCHURN_GC_GENERATIONS]; /* gc's count */
    double seconds[MH_GCCHURN_GC_GENERATIONS];         /* from start to stop */
    double objects[MH_GCCHURN_GC_GENERATIONS]; /* committed object blocks */
    double discarded_objects; /* freed in collections that collected 0 */
    uint64_t dropped;         /* frees not counted: out of memory */
} mh_churn_totals_t;

typedef struct mh_churn mh_churn_t;

/* A new, empty counter set; NULL when out of memory. */
mh_churn_t *mh_churn_new(void);

/* Free it; NULL is allowed.  Can't fail. */
void mh_churn_free(mh_churn_t *churn);

/* Forget every count (capacity is kept).  Marks no thread.  Can't fail. */
void mh_churn_reset(mh_churn_t *churn);

/* A collection of collector generation gc_generation (0..2, clamped)
 * begins on the calling thread, during memhound generation mh_generation,
 * at time `now` (seconds, any epoch).  The blocks at ignore[0..nignore)
 * (at most MH_GCCHURN_IGNORE_MAX are kept) are not counted when freed: gc's
 * own bookkeeping (the callbacks' arguments), freed as the collection
 * starts.  A collection still open (its end never came) is discarded.
 * Marks the calling thread.  Can't fail. */
#define MH_GCCHURN_IGNORE_MAX 8
void mh_churn_begin(mh_churn_t *churn, int gc_generation,
                    uint16_t mh_generation, double now,
                    const uintptr_t *ignore, size_t nignore);

/* The open collection ended: gc reported `collected` and `uncollectable`
 * objects.  Commits the pending counts when collected > 0, else discards
 * them.  Unmarks the calling thread.  Nothing open: does nothing.  Can't
 * fail. */
void mh_churn_end(mh_churn_t *churn, int64_t collected, int64_t uncollectable,
                  double now);

/* Count a traced block freed by the calling thread: trace as it was in
 * the live table, charge the bytes it counted for (its size, or when
 * sampling the bytes it stands for).  Ignored unless the thread runs the
 * open collection and the block is of the mem or object domain.  Hook path:
 * never raises, may take bookkeeping memory (a failure counts `dropped`).
 * GIL held. */
void mh_churn_count(mh_churn_t *churn, const mh_trace_t *trace,
                    uint64_t charge);

/* Every site counted since the reset, in no particular order (one whose
 * collections were all discarded has zero counts); the pointer is borrowed
 * until the next call that changes churn.  Can't fail. */
size_t mh_churn_sites(const mh_churn_t *churn, const mh_churn_site_t **sites);

/* The totals.  Can't fail. */
void mh_churn_totals(const mh_churn_t *churn, mh_churn_totals_t *out);

/* Bookkeeping bytes held.  Can't fail. */
size_t mh_churn_memory(const mh_churn_t *churn);

/* ---- the process-wide counter set (hooks.c's free path) ---------------
 * NULL while cycle churn is off.  Written by gcchurn_binding.c with the
 * GIL held; read by the free path, which holds the GIL for mem/object
 * blocks. */
extern mh_churn_t *mh_gcchurn_active;

/* The free path's test: one TLS load, false unless this thread runs a
 * collection. */
static inline int
mh_gcchurn_collecting(void)
{
    return mh_gcchurn_tls_collection != 0;
}

/* mh_churn_count() on the process-wide set, if any.  Hook path.  GIL
 * held. */
void mh_gcchurn_count(const mh_trace_t *trace, uint64_t charge);

#endif /* MH_GCCHURN_H */
