/* hooks_young.h: the young ring of the GIL half (hooks.c only).
 *
 * Most blocks of the mem and object domains die young: the int a loop
 * makes and drops on the next turn, a call's argument tuple, an iterator.
 * The last MH_YOUNG_SLOTS blocks allocated into mh_hooks_gil_part wait in
 * this ring before going into its table, so one freed while still there
 * costs a scan of a few cache lines of addresses instead of a table insert
 * and a table remove.  The allocation MH_YOUNG_SLOTS later moves a block
 * still alive into the table, and every reader of the live state moves
 * them all first (mh_young_flush), so readers see one table as before.
 *
 * Guarded by the main GIL, like the GIL half itself: one ring for the
 * process, whichever thread holds the GIL.  Exact mode only: a sampled
 * block goes straight into the table (the caller checks).  A block in the
 * ring is charged to mh_hooks_gil_part's counters from its allocation on,
 * as it would be in the table.
 *
 * A free memhound never sees (a mem/object block freed by a thread without
 * a main-interpreter state, which CPython forbids) leaves a stale entry,
 * which the table replaces when the address is handed out again; the ring
 * can't see that without a table lookup, so after such a free hooks.c
 * flushes the ring and sends every block to the table until clear() or
 * stop() (gil_frees_missed).
 */
#ifndef MH_HOOKS_YOUNG_H
#define MH_HOOKS_YOUNG_H

#include "hooks_internal.h"

#include <string.h>

/* A power of two.  16 addresses fill two cache lines; callgrind on
 * bench/run.py's workloads put 16 slots ahead of 8 on small_objects (-7 %
 * of memhound's instructions) and within 2 % elsewhere. */
#define MH_YOUNG_SLOTS 16

typedef struct {
    uintptr_t ptr[MH_YOUNG_SLOTS];    /* 0: empty slot */
    mh_trace_t trace[MH_YOUNG_SLOTS]; /* valid where ptr is not 0 */
    unsigned hand;                    /* the next slot to fill: the oldest */
    unsigned live;                    /* occupied slots */
} mh_young_t;

/* Defined in hooks.c.  Guarded by the main GIL. */
extern mh_young_t mh_young;

/* Account for a block entering the GIL half: its charge in `bytes` and
 * (fresh) `allocated`, and the peak.  Defined in hooks.c.  GIL held. */
void mh_hooks_charge_gil(uint64_t charge, int fresh);

/* Move slot i (occupied) into the GIL half's table, its accounting as if
 * it had gone there at once: an entry it replaces (a block freed behind
 * memhound's back) is uncharged, and a block the table can't take is
 * uncharged and counted as dropped.  Defined in hooks.c.  GIL held. */
void mh_young_move(unsigned i);

/* Keep trace (a block just allocated into the GIL half) in the ring,
 * moving the block allocated MH_YOUNG_SLOTS allocations ago into the table
 * if it is still alive.  GIL held, exact mode, tracing on. */
static inline void
mh_young_put(const mh_trace_t *trace)
{
    unsigned i = mh_young.hand;
    mh_young.hand = (i + 1) & (MH_YOUNG_SLOTS - 1);
    if (mh_young.ptr[i] != 0) {
        mh_young_move(i);
    }
    mh_young.ptr[i] = trace->ptr;
    mh_young.trace[i] = *trace;
    mh_young.live++;
    mh_hooks_charge_gil(charge_of(trace->size), 1);
}

/* The slot holding ptr, newest first, or -1.  GIL held. */
static inline int
mh_young_find(uintptr_t ptr)
{
    if (mh_young.live == 0) {
        return -1;
    }
    unsigned i = mh_young.hand;
    for (unsigned k = 0; k < MH_YOUNG_SLOTS; k++) {
        i = (i - 1) & (MH_YOUNG_SLOTS - 1);
        if (mh_young.ptr[i] == ptr) {
            return (int)i;
        }
    }
    return -1;
}

/* Take slot i (occupied) out of the ring without uncharging it.  GIL
 * held. */
static inline void
mh_young_vacate(unsigned i, mh_trace_t *out)
{
    if (out != NULL) {
        *out = mh_young.trace[i];
    }
    mh_young.ptr[i] = 0;
    mh_young.live--;
}

/* Remove ptr's block from the ring: 1 and *removed filled, its charge
 * taken off the GIL half's bytes; 0 when the ring does not hold it.  GIL
 * held.  removed not NULL. */
static inline int
mh_young_take(uintptr_t ptr, mh_trace_t *removed)
{
    int i = mh_young_find(ptr);
    if (i < 0) {
        return 0;
    }
    mh_young_vacate((unsigned)i, removed);
    __atomic_store_n(&mh_hooks_gil_part.bytes,
                     mh_hooks_gil_part.bytes - charge_of(removed->size),
                     __ATOMIC_RELAXED);
    return 1;
}

/* Move every block of the ring into the table, oldest first (so that of
 * two entries at one address the newer wins, as in the table).  Before
 * anything reads the GIL half's table.  GIL held. */
static inline void
mh_young_flush(void)
{
    unsigned i = mh_young.hand;
    for (unsigned k = 0; k < MH_YOUNG_SLOTS && mh_young.live != 0; k++) {
        if (mh_young.ptr[i] != 0) {
            mh_young_move(i);
        }
        i = (i + 1) & (MH_YOUNG_SLOTS - 1);
    }
}

/* Forget the ring's blocks (stop, clear: the caller resets the
 * counters).  GIL held. */
static inline void
mh_young_discard(void)
{
    memset(&mh_young, 0, sizeof(mh_young));
}

#endif /* MH_HOOKS_YOUNG_H */
