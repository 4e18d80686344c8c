/* hooks_nursery.c: per-thread nurseries of young native blocks (issue 5).
 *
 * A native block allocated by a thread holding the main GIL waits in that
 * thread's nursery (MH_NURSERY_SLOTS entries) instead of going at once into
 * the raw half's table: most native blocks die young (a C call's scratch
 * buffer, a hash context), and one freed while still in a nursery costs no
 * table insert and remove and no mh_hooks_table_lock round trips.  A full
 * nursery moves its oldest entry to the raw half; every reader of the live
 * state moves them all first (mh_nursery_flush).  Nursery blocks are
 * charged to mh_hooks_gil_part's counters.  Guards: in the header.
 */
#include "hooks_internal.h"

#include <stdlib.h>
#include <string.h>

#include "rawmem.h"

/* Every nursery, its slots and the mh_nursery_registry linking them are
 * guarded by the main GIL: a thread touches even its own only while holding
 * it, and any GIL holder may empty anyone's (flush, a free of another thread's
 * block).  The mh_nursery_registry links also change under mh_hooks_table_lock
 * only, so a fork never copies a half-linked list.  `dead` (atomics) is set by
 * the owner's thread-exit destructor, which runs without the GIL and
 * touches nothing else; a GIL holder then empties and frees the nursery.
 *
 * A thread without the GIL that frees a block it finds in no table may be
 * freeing a nursery block (allocated with the GIL, handed to a C thread).
 * It can't look in the nurseries, so it appends the address to the remote
 * list (mh_hooks_table_lock) before libc gets the block back, and every
 * GIL-side nursery operation drains that list first: a stale entry is
 * gone before its address, handed out again, can reach a nursery or be
 * looked up there.  The list stays empty while no nursery holds a block
 * (mh_nursery_live, written with the GIL, read with acquire loads). */
MH_TLS mh_nursery_t *mh_tls_nursery;
mh_nursery_t *mh_nursery_registry; /* GIL and mh_hooks_table_lock */
size_t mh_nursery_live;            /* blocks in all nurseries; GIL, atomics */
static pthread_key_t owner_key;
static int owner_key_ok; /* written once with the GIL */

/* Guarded by mh_hooks_table_lock; mh_nursery_nremote also read with
 * acquire loads. */
static uintptr_t *remote;
size_t mh_nursery_nremote;
static size_t remote_cap;
static uint64_t remote_lost; /* notes lost: appends that failed for want
                                of memory, notes applied to a block whose
                                realloc then failed */

static void
owner_exited(void *arg)
{
    mh_nursery_t *n = arg;
    /* Runs on the exiting thread: forget the nursery before another
     * thread may reap (free) it, as a later key destructor of another
     * library could still allocate here; that makes a fresh one. */
    mh_tls_nursery = NULL;
    __atomic_store_n(&n->dead, 1, __ATOMIC_RELEASE);
}

static void
unlink_locked(mh_nursery_t *n)
{
    if (n->prev != NULL) {
        n->prev->next = n->next;
    }
    else {
        mh_nursery_registry = n->next;
    }
    if (n->next != NULL) {
        n->next->prev = n->prev;
    }
}

static inline void
live_add(long delta)
{
    __atomic_store_n(&mh_nursery_live, mh_nursery_live + (size_t)delta,
                     __ATOMIC_RELEASE);
}

/* Take slot i of n out: uncharge it from the GIL half's counters. */
static inline void
vacate(mh_nursery_t *n, unsigned i, mh_trace_t *out)
{
    if (out != NULL) {
        *out = n->slot[i];
    }
    __atomic_store_n(&mh_hooks_gil_part.bytes,
                     mh_hooks_gil_part.bytes - charge_of(n->slot[i].size),
                     __ATOMIC_RELAXED);
    mh_nursery_vacate_ptr(n, i);
    live_add(-1);
}

/* Whether ptr is in the remote list, taking it out if so
 * (mh_hooks_table_lock held). */
static int
remote_claim_locked(uintptr_t ptr)
{
    for (size_t j = 0; j < mh_nursery_nremote; j++) {
        if (remote[j] == ptr) {
            remote[j] = remote[mh_nursery_nremote - 1];
            __atomic_store_n(&mh_nursery_nremote, mh_nursery_nremote - 1,
                             __ATOMIC_RELEASE);
            return 1;
        }
    }
    return 0;
}

/* Move slot i of n into the raw half (mh_hooks_table_lock held).  A
 * thread without the GIL may have freed the block since the caller last
 * drained the remote list: then it is dropped, not moved (in the raw half
 * it would outlive its free, or replace a newer block at its address). */
static void
move_locked(mh_nursery_t *n, unsigned i)
{
    mh_trace_t trace;
    vacate(n, i, &trace);
    if (mh_nursery_nremote != 0 && remote_claim_locked(trace.ptr)) {
        return;
    }
    mh_hooks_move_guarded(&mh_hooks_raw_part, &trace);
}

/* Remove ptr from whichever nursery holds it.  GIL held. */
static int
take_anywhere(uintptr_t ptr, mh_trace_t *removed)
{
    mh_nursery_t *own = mh_tls_nursery;
    if (own != NULL) {
        int i = mh_nursery_find(own, ptr);
        if (i >= 0) {
            vacate(own, (unsigned)i, removed);
            return 1;
        }
        if (mh_nursery_live == __builtin_popcount(own->used)) {
            return 0;
        }
    }
    else if (mh_nursery_live == 0) {
        return 0;
    }
    for (mh_nursery_t *n = mh_nursery_registry; n != NULL; n = n->next) {
        int i = n == own ? -1 : mh_nursery_find(n, ptr);
        if (i >= 0) {
            vacate(n, (unsigned)i, removed);
            return 1;
        }
    }
    return 0;
}

/* Apply the frees that threads without the GIL left in the remote list.
 * GIL held. */
static void
drain_remote(void)
{
    uintptr_t batch[64];
    while (__atomic_load_n(&mh_nursery_nremote, __ATOMIC_ACQUIRE) != 0) {
        size_t k = 0;
        mh_lock_acquire(&mh_hooks_table_lock);
        while (mh_nursery_nremote > 0 &&
               k < sizeof(batch) / sizeof(batch[0])) {
            batch[k++] = remote[--mh_nursery_nremote];
        }
        mh_lock_release(&mh_hooks_table_lock);
        for (size_t j = 0; j < k; j++) {
            (void)take_anywhere(batch[j], NULL);
        }
    }
}

/* Empty and free the nurseries of exited threads.  GIL held. */
static void
reap_dead(void)
{
    mh_nursery_t *n = mh_nursery_registry;
    while (n != NULL) {
        mh_nursery_t *next = n->next;
        if (__atomic_load_n(&n->dead, __ATOMIC_ACQUIRE)) {
            mh_lock_acquire(&mh_hooks_table_lock);
            while (n->used != 0) {
                move_locked(n, (unsigned)__builtin_ctz(n->used));
            }
            unlink_locked(n);
            mh_lock_release(&mh_hooks_table_lock);
            free(n);
        }
        n = next;
    }
}

/* The calling thread's nursery, made on first use; NULL when out of
 * memory or before mh_nursery_init.  GIL held.  Plain calloc: memhound's
 * own calls are never intercepted, and this is not a traced block. */
static mh_nursery_t *
own_nursery(void)
{
    if (mh_tls_nursery != NULL) {
        return mh_tls_nursery;
    }
    if (!owner_key_ok) {
        return NULL;
    }
    reap_dead(); /* once per new thread: bounds the dead ones kept */
    mh_nursery_t *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return NULL;
    }
    if (pthread_setspecific(owner_key, n) != 0) {
        free(n);
        return NULL;
    }
    mh_lock_acquire(&mh_hooks_table_lock);
    n->next = mh_nursery_registry;
    if (mh_nursery_registry != NULL) {
        mh_nursery_registry->prev = n;
    }
    mh_nursery_registry = n;
    mh_lock_release(&mh_hooks_table_lock);
    mh_tls_nursery = n;
    return n;
}

void
mh_nursery_init(void)
{
    if (!owner_key_ok) {
        owner_key_ok = pthread_key_create(&owner_key, owner_exited) == 0;
    }
}

int
mh_nursery_put(const mh_trace_t *trace)
{
    if (__atomic_load_n(&mh_nursery_nremote, __ATOMIC_ACQUIRE) != 0) {
        drain_remote();
    }
    mh_nursery_t *n = own_nursery();
    if (n == NULL || mh_hooks_raw_part.traces == NULL) {
        return 0;
    }
    /* An entry for the same address was freed behind memhound's back:
     * the new block replaces it, as a table insert would. */
    int i = mh_nursery_find(n, trace->ptr);
    if (i >= 0) {
        vacate(n, (unsigned)i, NULL);
    }
    else if (n->used == MH_NURSERY_ALL) {
        i = (int)n->hand;
        n->hand = (n->hand + 1) % MH_NURSERY_SLOTS;
        mh_lock_acquire(&mh_hooks_table_lock);
        move_locked(n, (unsigned)i);
        mh_lock_release(&mh_hooks_table_lock);
    }
    else {
        i = __builtin_ctz(~n->used & MH_NURSERY_ALL);
    }
    mh_nursery_fill(n, (unsigned)i, trace);
    return 1;
}

int
mh_nursery_take(uintptr_t ptr, mh_trace_t *removed)
{
    if (__atomic_load_n(&mh_nursery_nremote, __ATOMIC_ACQUIRE) != 0) {
        drain_remote();
    }
    return take_anywhere(ptr, removed);
}

/* Whether some nursery holds ptr (mh_hooks_table_lock held, any thread).
 * The registry's links change under the lock only.  Whether a slot holds
 * ptr can't change while the lock is held: the block is live and belongs
 * to the caller, who frees it, so no GIL holder takes it out for a free;
 * moves to the raw half and discards take the lock; fills and takes of
 * other addresses may run meanwhile, hence the atomic loads.  The fill
 * of ptr itself happened before the block was handed to the caller. */
static int
in_a_nursery_locked(uintptr_t ptr)
{
    for (mh_nursery_t *n = mh_nursery_registry; n != NULL; n = n->next) {
        for (unsigned i = 0; i < MH_NURSERY_SLOTS; i++) {
            if (__atomic_load_n(&n->slot[i].ptr, __ATOMIC_RELAXED) == ptr) {
                return 1;
            }
        }
    }
    return 0;
}

int
mh_nursery_note_remote_free_locked(uintptr_t ptr)
{
    if (__atomic_load_n(&mh_nursery_live, __ATOMIC_ACQUIRE) == 0 ||
        !in_a_nursery_locked(ptr)) {
        /* Not a nursery block: queuing it would only grow the list while
         * the GIL side is idle (issue 5 review: frees by a C thread of
         * blocks allocated before tracing). */
        return 0;
    }
    for (size_t j = 0; j < mh_nursery_nremote; j++) {
        if (remote[j] == ptr) {
            /* Noted already: the nursery entry is a block freed before;
             * this free is of memory libc handed out again at its address
             * without memhound seeing it (libc's own allocations), which
             * nobody traces.  Noting it again would grow the list for as
             * long as the GIL side stays idle. */
            return 0;
        }
    }
    if (mh_rawmem_reserve((void **)&remote, &remote_cap,
                          mh_nursery_nremote + 1, sizeof(*remote)) < 0) {
        /* The entry stays until a flush moves it and a later insert at
         * its address replaces it. */
        __atomic_add_fetch(&remote_lost, 1, __ATOMIC_RELAXED);
        return 0;
    }
    remote[mh_nursery_nremote] = ptr;
    __atomic_store_n(&mh_nursery_nremote, mh_nursery_nremote + 1,
                     __ATOMIC_RELEASE);
    return 1;
}

int
mh_nursery_unnote_remote_free_locked(uintptr_t ptr)
{
    if (remote_claim_locked(ptr)) {
        return 1;
    }
    /* A GIL holder applied the note meanwhile: the block, still alive,
     * left its nursery and is traced no more. */
    __atomic_add_fetch(&remote_lost, 1, __ATOMIC_RELAXED);
    return 0;
}

size_t
mh_nursery_overhead_locked(void)
{
    return remote_cap * sizeof(*remote);
}

void
mh_nursery_flush(void)
{
    if (__atomic_load_n(&mh_nursery_nremote, __ATOMIC_ACQUIRE) != 0) {
        drain_remote();
    }
    if (mh_nursery_live == 0) {
        return;
    }
    mh_lock_acquire(&mh_hooks_table_lock);
    for (mh_nursery_t *n = mh_nursery_registry; n != NULL; n = n->next) {
        while (n->used != 0) {
            move_locked(n, (unsigned)__builtin_ctz(n->used));
        }
    }
    mh_lock_release(&mh_hooks_table_lock);
    reap_dead();
}

void
mh_nursery_discard(void)
{
    mh_lock_acquire(&mh_hooks_table_lock);
    for (mh_nursery_t *n = mh_nursery_registry; n != NULL; n = n->next) {
        memset(n->slot, 0, sizeof(n->slot));
        n->used = 0;
        n->hand = 0;
    }
    __atomic_store_n(&mh_nursery_live, 0, __ATOMIC_RELEASE);
    mh_nursery_nremote = 0;
    remote_lost = 0;
    mh_lock_release(&mh_hooks_table_lock);
    reap_dead();
}

void
mh_nursery_after_fork_child(void)
{
    /* Only the forking thread exists now; the others' nurseries still
     * hold their blocks (copied with the heap) and are reaped like those
     * of exited threads. */
    for (mh_nursery_t *n = mh_nursery_registry; n != NULL; n = n->next) {
        if (n != mh_tls_nursery) {
            n->dead = 1;
        }
    }
}

uint64_t
mh_nursery_lost(void)
{
    return __atomic_load_n(&remote_lost, __ATOMIC_RELAXED);
}
