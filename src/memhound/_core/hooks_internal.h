/* hooks_internal.h: what hooks.c (the PEP 445 hooks, the tracing state)
 * shares with hooks_native.c (native.c's wrappers' bookkeeping; issue 5).
 * Not for any other file: everything here is hooks.c's state, defined
 * there, hidden in the module (-fvisibility=hidden, so the accesses are
 * PC-relative like those of statics), and follows hooks.c's rules: the
 * hot-path tests are static inline so that neither hook pays a call, no
 * Python runs, bookkeeping memory comes from rawmem.h.
 */
#ifndef MH_HOOKS_INTERNAL_H
#define MH_HOOKS_INTERNAL_H

#include "hooks.h"

#include <math.h>
#include <pthread.h>

#include "frames.h"
#include "lock.h"
#include "traces.h"

/* Initial-exec TLS: a few bytes, read on every allocation; the dynamic
 * model would cost a __tls_get_addr call each time. */
#define MH_TLS __thread __attribute__((tls_model("initial-exec")))

/* Per thread (no lock). */
extern MH_TLS int mh_tls_in_hook;   /* recursion guard of every hook */
extern MH_TLS int mh_tls_suspended; /* memhound's own work on this thread */
extern MH_TLS uint64_t mh_tls_countdown;   /* bytes until the next sample;
                                              0: not drawn yet */
extern MH_TLS mh_tbcache_t mh_tls_tbcache; /* capture buffers and the nodes
                                              of the last traceback */
/* Frees each thread's capture buffers when the thread exits. */
extern pthread_key_t mh_hooks_frames_key;

/* Relaxed atomics, written with the GIL held. */
extern int mh_hooks_tracing;
extern int mh_hooks_cfg_depth;
extern uint64_t mh_hooks_cfg_sample_mean;
extern uint16_t mh_hooks_generation;
extern int mh_hooks_cfg_count_total;
/* The largest sum of both halves' bytes seen; relaxed atomics. */
extern uint64_t mh_hooks_peak_bytes;

/* One half of the live state (hooks.c: the GIL half and the raw half). */
typedef struct {
    mh_traces_t *traces;
    uint64_t bytes;
    uint64_t allocated; /* bytes ever recorded (the generation clock's
                           volume trigger); relaxed atomics for readers */
} mh_hooks_part_t;

/* The raw half (raw and native blocks), guarded by mh_hooks_table_lock,
 * whose holder calls nothing but libc and the table code. */
extern mh_lock_t mh_hooks_table_lock;
extern mh_hooks_part_t mh_hooks_raw_part;
/* The GIL half (mem and object blocks; the counters also charge the blocks
 * in the nurseries, hooks_nursery.c), guarded by the main GIL. */
extern mh_hooks_part_t mh_hooks_gil_part;

/* The sampling filter (hooks.c): counters by address hash, atomics. */
#define MH_FILTER_BITS 16
#define MH_FILTER_SIZE (1u << MH_FILTER_BITS)
extern uint8_t mh_hooks_sample_filter[MH_FILTER_SIZE];

/* The traceback store: guarded by the main GIL.  Its copy for threads
 * without the GIL: written under mh_hooks_table_lock, NULL while the store
 * is being replaced. */
extern mh_tbstore_t *mh_hooks_tbstore;
extern mh_tbstore_t *mh_hooks_native_tbstore;

/* Bytes to the next sample point: exponential with the given mean.  This
 * thread's state only; can't fail. */
uint64_t mh_hooks_draw_countdown(uint64_t mean);

/* Capture and intern the calling thread's traceback: its index, 0 when
 * out of memory (counted in lost_tracebacks).  GIL held, inside a hook. */
uint32_t mh_hooks_capture_traceback(PyThreadState *tstate);

/* Add delta (+1/-1) to ptr's sampling-filter counter (saturating).  Any
 * thread; can't fail. */
void mh_hooks_filter_add(uintptr_t ptr, int delta);

/* Insert a trace into part and account for it (dropped_blocks when out of
 * memory).  The part's guard is held.  Can't fail. */
void mh_hooks_insert_guarded(mh_hooks_part_t *part, const mh_trace_t *trace);

/* The same for a block already counted in the allocation volume (moved
 * from a nursery): its bytes are charged, `allocated` is not. */
void mh_hooks_move_guarded(mh_hooks_part_t *part, const mh_trace_t *trace);

/* ---- nurseries (hooks_nursery.c) ------------------------------------
 * Native blocks allocated by a thread holding the main GIL wait in its
 * nursery before going into the raw half; see hooks_nursery.c for the
 * guards.  Exact mode only (not when sampling).  None of these raises,
 * runs Python or calls the wrapped allocators. */
#define MH_NURSERY_SLOTS 4
#define MH_NURSERY_ALL ((1u << MH_NURSERY_SLOTS) - 1)

/* One thread's nursery (guards in hooks_nursery.c). */
typedef struct mh_nursery {
    mh_trace_t slot[MH_NURSERY_SLOTS]; /* ptr 0: empty */
    unsigned used;                     /* bit per occupied slot */
    unsigned hand;                     /* next slot to evict when full */
    int dead;                          /* owner thread exited (atomics) */
    struct mh_nursery *prev, *next;    /* the registry */
} mh_nursery_t;

extern MH_TLS mh_nursery_t *mh_tls_nursery; /* NULL until first used */
extern mh_nursery_t *mh_nursery_registry;
extern size_t mh_nursery_live;    /* blocks in all nurseries */
extern size_t mh_nursery_nremote; /* addresses in the remote list */

/* Create the thread-exit key.  GIL held, before native tracing is
 * enabled.  Can't fail (without it no nursery is made). */
void mh_nursery_init(void);

/* Keep trace in the calling thread's nursery: 1, charged to
 * mh_hooks_gil_part; 0 when there is no nursery (out of memory, not
 * tracing): the caller inserts it into the raw half.  GIL held, inside a
 * hook, mh_hooks_table_lock not held. */
int mh_nursery_put(const mh_trace_t *trace);

/* Take ptr out of whichever nursery holds it: 1 and *removed (if not
 * NULL) filled, its charge taken off, else 0.  GIL held, inside a hook,
 * mh_hooks_table_lock not held. */
int mh_nursery_take(uintptr_t ptr, mh_trace_t *removed);

/* A thread without the GIL frees (or reallocs) ptr, found in no table:
 * when a nursery holds it and it is not noted yet, note it in the remote
 * list for the GIL side and return 1; else (a block nobody traces, e.g.
 * allocated before tracing started, or memory libc reused at a noted
 * address) return 0 and note nothing, so that the list holds at most one
 * entry per nursery slot.  mh_hooks_table_lock held; any thread.
 * Can't fail (counts a loss and returns 0 when out of memory, see
 * mh_nursery_lost). */
int mh_nursery_note_remote_free_locked(uintptr_t ptr);

/* Undo a note of ptr whose realloc failed: the block stays in its
 * nursery.  1 when the note was still there; 0 when a GIL holder applied
 * it during the realloc (the block is traced no more: counted in
 * mh_nursery_lost).  mh_hooks_table_lock held; any thread.  Can't fail. */
int mh_nursery_unnote_remote_free_locked(uintptr_t ptr);

/* Bytes of memory the remote list holds (the overhead statistics).
 * mh_hooks_table_lock held. */
size_t mh_nursery_overhead_locked(void);

/* Move every nursery's blocks into the raw half: before anything reads
 * the live state.  GIL held, mh_hooks_table_lock not held. */
void mh_nursery_flush(void);

/* Forget every nursery's blocks and the remote list (stop, clear; the
 * caller resets the counters).  GIL held, lock not held. */
void mh_nursery_discard(void);

/* In a forked child, from hooks.c's handler (single thread): the other
 * threads' nurseries are reaped like those of exited threads. */
void mh_nursery_after_fork_child(void);

/* Remote frees that could not be noted for want of memory since the last
 * discard (reported with dropped_blocks).  Any thread. */
uint64_t mh_nursery_lost(void);

/* The slot of n holding ptr, or -1.  GIL held. */
static inline int
mh_nursery_find(const mh_nursery_t *n, uintptr_t ptr)
{
    unsigned used = n->used;
    while (used != 0) {
        unsigned i = (unsigned)__builtin_ctz(used);
        if (n->slot[i].ptr == ptr) {
            return (int)i;
        }
        used &= used - 1;
    }
    return -1;
}

/* Give the calling thread's native blocks that wait for a traceback the
 * frames they share with its stack now (hooks_native.c).  GIL held, inside
 * a hook; called by every traceback capture when mh_tls_native_waiting is
 * set (this thread has such blocks; hooks_native.c sets and clears it), so
 * that Python allocations pay one TLS test, not a call.  Can't fail. */
extern MH_TLS int mh_tls_native_waiting;
void mh_hooks_native_flush_pending(PyThreadState *tstate);

static inline int
is_tracing_relaxed(void)
{
    return __atomic_load_n(&mh_hooks_tracing, __ATOMIC_RELAXED);
}

static inline size_t
filter_slot(uintptr_t ptr)
{
    /* Fibonacci hashing: one multiply, the top bits. */
    return (size_t)(((uint64_t)ptr * 0x9e3779b97f4a7c15ULL) >>
                    (64 - MH_FILTER_BITS));
}

/* Whether an allocation of size bytes is sampled (Poisson by bytes). */
static inline int
sample_take(uint64_t mean, size_t size)
{
    if (mh_tls_countdown == 0) {
        mh_tls_countdown = mh_hooks_draw_countdown(mean);
    }
    if (mh_tls_countdown > size) {
        mh_tls_countdown -= size;
        return 0;
    }
    /* Memoryless: a fresh draw from here is as good as the remainder. */
    mh_tls_countdown = mh_hooks_draw_countdown(mean);
    return 1;
}

/* What a block counts for in the traced totals: its size, or when
 * sampling the bytes it stands for (size / P(sampled), the estimate the
 * snapshots use).  A pure function of size while a tracing session lasts
 * (the sampling mean changes only across a restart), so a block is taken
 * off exactly what it was charged. */
static inline uint64_t
charge_of(uint64_t size)
{
    uint64_t mean =
        __atomic_load_n(&mh_hooks_cfg_sample_mean, __ATOMIC_RELAXED);
    if (mean == 0) {
        return size;
    }
    return (uint64_t)llround((double)size *
                             mh_snapdata_block_weight(mean, size));
}

/* Whether an allocation of size bytes that a hook saw is to be recorded:
 * not memhound's own work, and sampled when sampling.  Inlined into each
 * hook, after its "tracing and not nested" test. */
static inline int
wants_alloc(size_t size)
{
    if (mh_tls_suspended) {
        return 0;
    }
    uint64_t mean =
        __atomic_load_n(&mh_hooks_cfg_sample_mean, __ATOMIC_RELAXED);
    return mean == 0 || sample_take(mean, size);
}

/* Whether freeing ptr may concern a traced block: when sampling, the
 * filter rules out nearly every unsampled block without a lookup. */
static inline int
wants_free(uintptr_t ptr)
{
    return !__atomic_load_n(&mh_hooks_cfg_sample_mean, __ATOMIC_RELAXED) ||
           __atomic_load_n(&mh_hooks_sample_filter[filter_slot(ptr)],
                           __ATOMIC_RELAXED) != 0;
}

/* Raise the peak to the current total of both halves if higher.  Any
 * thread; can't fail. */
static inline void
mh_hooks_note_peak(void)
{
    uint64_t total =
        __atomic_load_n(&mh_hooks_gil_part.bytes, __ATOMIC_RELAXED) +
        __atomic_load_n(&mh_hooks_raw_part.bytes, __ATOMIC_RELAXED);
    if (total > __atomic_load_n(&mh_hooks_peak_bytes, __ATOMIC_RELAXED)) {
        __atomic_store_n(&mh_hooks_peak_bytes, total, __ATOMIC_RELAXED);
    }
}

/* Slot addresses are also read, under mh_hooks_table_lock, by threads
 * without the GIL (mh_nursery_note_remote_free_locked): they are written
 * with atomic stores, here and in mh_nursery_vacate_ptr only, and a slot's
 * ptr is 0 exactly when its bit in `used` is clear.  GIL held. */
static inline void
mh_nursery_vacate_ptr(mh_nursery_t *n, unsigned i)
{
    __atomic_store_n(&n->slot[i].ptr, 0, __ATOMIC_RELAXED);
    n->used &= ~(1u << i);
}

/* Put trace in free slot i of n and charge it to the GIL half's
 * counters.  GIL held. */
static inline void
mh_nursery_fill(mh_nursery_t *n, unsigned i, const mh_trace_t *trace)
{
    n->slot[i].size = trace->size;
    n->slot[i].traceback = trace->traceback;
    n->slot[i].generation = trace->generation;
    n->slot[i].domain = trace->domain;
    __atomic_store_n(&n->slot[i].ptr, trace->ptr, __ATOMIC_RELAXED);
    n->used |= 1u << i;
    __atomic_store_n(&mh_nursery_live, mh_nursery_live + 1, __ATOMIC_RELEASE);
    uint64_t charge = charge_of(trace->size);
    __atomic_store_n(&mh_hooks_gil_part.allocated,
                     mh_hooks_gil_part.allocated + charge, __ATOMIC_RELAXED);
    __atomic_store_n(&mh_hooks_gil_part.bytes,
                     mh_hooks_gil_part.bytes + charge, __ATOMIC_RELAXED);
    mh_hooks_note_peak();
}

/* mh_nursery_put's common case inline: room in the thread's nursery,
 * nothing to drain, no entry at the same address. */
static inline int
mh_nursery_try_put(const mh_trace_t *trace)
{
    mh_nursery_t *n = mh_tls_nursery;
    if (n == NULL || n->used == MH_NURSERY_ALL ||
        __atomic_load_n(&mh_nursery_nremote, __ATOMIC_ACQUIRE) != 0 ||
        mh_nursery_find(n, trace->ptr) >= 0 ||
        mh_hooks_raw_part.traces == NULL) {
        return mh_nursery_put(trace);
    }
    mh_nursery_fill(n, (unsigned)__builtin_ctz(~n->used & MH_NURSERY_ALL),
                    trace);
    return 1;
}

/* mh_nursery_take's common cases inline: ptr in the thread's own
 * nursery, or in none (no other nursery holds anything).  removed not
 * NULL. */
static inline int
mh_nursery_try_take(uintptr_t ptr, mh_trace_t *removed)
{
    mh_nursery_t *n = mh_tls_nursery;
    if (n != NULL &&
        __atomic_load_n(&mh_nursery_nremote, __ATOMIC_ACQUIRE) == 0) {
        int i = mh_nursery_find(n, ptr);
        if (i >= 0) {
            *removed = n->slot[i];
            __atomic_store_n(
                &mh_hooks_gil_part.bytes,
                mh_hooks_gil_part.bytes - charge_of(removed->size),
                __ATOMIC_RELAXED);
            mh_nursery_vacate_ptr(n, (unsigned)i);
            __atomic_store_n(&mh_nursery_live, mh_nursery_live - 1,
                             __ATOMIC_RELEASE);
            return 1;
        }
        if (mh_nursery_live == (size_t)__builtin_popcount(n->used)) {
            return 0;
        }
    }
    else if (__atomic_load_n(&mh_nursery_live, __ATOMIC_RELAXED) == 0) {
        return 0;
    }
    return mh_nursery_take(ptr, removed);
}

#endif /* MH_HOOKS_INTERNAL_H */
