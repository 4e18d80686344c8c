/* hooks_native.c: the bookkeeping of native.c's malloc-family wrappers
 * (issue 5), split from hooks.c whose state it shares through
 * hooks_internal.h.
 *
 * Native blocks go in hooks.c's raw half (mh_hooks_table_lock) with domain
 * MH_DOMAIN_NATIVE, on any thread, with or without the GIL.  Owns the
 * per-thread pending records of blocks allocated without the GIL (heap
 * memory per thread, freed at thread exit) and native_on.  Never raises,
 * never runs Python, never calls the wrapped allocators.
 */
#include "hooks_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- recording and attribution --------------------------------------
 *
 * Blocks that extension modules and shared libraries get from libc go in
 * mh_hooks_raw_part (mh_hooks_table_lock) with domain MH_DOMAIN_NATIVE, so
 * they may come and go on any thread, with or without the GIL.  The wrappers
 * bracket their bookkeeping with native_enter/leave, which share
 * mh_tls_in_hook with the PEP 445 hooks: what memhound's own work allocates is
 * never counted.
 *
 * A thread holding the GIL captures its traceback as the raw domain does.
 * A thread that released it (ctypes calls, zlib on large buffers) can't
 * intern one (the store needs the GIL), but its Python stack is frozen
 * while it runs C code, so it reads its own frames and, when they equal the
 * last traceback it interned (the typical case: the call's own arguments
 * were allocated at the same instruction), reuses that traceback's node;
 * otherwise the block gets the empty traceback.  Whether the node belongs
 * to the current store is checked under mh_hooks_table_lock against
 * mh_hooks_native_tbstore.
 */

/* Native blocks a thread allocated without the GIL whose traceback it
 * could not reuse: their frames, read while the thread ran C code, wait
 * for the thread's next traceback capture with the GIL.  The outer frames
 * both stacks share are still executing then, so their code objects are
 * alive and can be interned (frames that returned meanwhile are dropped;
 * their code may be gone); the blocks, if still live and still without a
 * traceback, get it.  Heap memory per thread (static TLS is scarce for a
 * dlopen'ed module), freed by pending_key's destructor at thread exit. */
#define PENDING_MAX 32
#define NRECENT 2
typedef struct {
    mh_raw_frame_t *frames;  /* the waiting blocks' stack */
    mh_raw_frame_t *scratch; /* capture buffer */
    int capacity;            /* frames each buffer holds */
    int nframes;
    int nblocks;
    uintptr_t ptrs[PENDING_MAX];
    uint64_t sizes[PENDING_MAX];
    /* The tracebacks of the thread's last native blocks allocated with the
     * GIL at two places (a loop alternating between two C calls), most
     * recent first after recent[mru]: frames outermost first (n of them,
     * 0: none), node, and the serial of the store the node belongs to. */
    struct {
        mh_raw_frame_t *frames;
        int n;
        uint32_t node;
        uint64_t serial;
    } recent[NRECENT];
    int mru;
} pending_t;

static MH_TLS pending_t *tls_pending;
MH_TLS int mh_tls_native_waiting;
static pthread_key_t pending_key;
static int pending_key_ok; /* written once with the GIL, before native_on */

static void
release_pending(void *arg)
{
    pending_t *pending = arg;
    /* On the exiting thread: a later key destructor that allocates gets a
     * fresh record, not this freed one. */
    tls_pending = NULL;
    free(pending->frames);
    free(pending->scratch);
    for (int k = 0; k < NRECENT; k++) {
        free(pending->recent[k].frames);
    }
    free(pending);
}

/* The calling thread's pending record with room for depth frames, or
 * NULL when out of memory.  Plain malloc: per-thread buffers, not part of
 * the traces (memhound's own calls are never intercepted). */
static pending_t *
pending_reserve(int depth)
{
    pending_t *pending = tls_pending;
    if (pending == NULL) {
        if (!pending_key_ok) {
            return NULL;
        }
        pending = calloc(1, sizeof(*pending));
        if (pending == NULL) {
            return NULL;
        }
        tls_pending = pending;
        pthread_setspecific(pending_key, pending);
    }
    if (pending->capacity < depth) {
        /* frames, scratch, then the recent tracebacks' frames */
        mh_raw_frame_t *buffers[2 + NRECENT];
        int ok = 1;
        for (int k = 0; k < 2 + NRECENT; k++) {
            buffers[k] = malloc((size_t)depth * sizeof(mh_raw_frame_t));
            ok = ok && buffers[k] != NULL;
        }
        if (!ok) {
            for (int k = 0; k < 2 + NRECENT; k++) {
                free(buffers[k]);
            }
            return NULL;
        }
        free(pending->frames);
        free(pending->scratch);
        pending->frames = buffers[0];
        pending->scratch = buffers[1];
        for (int k = 0; k < NRECENT; k++) {
            free(pending->recent[k].frames);
            pending->recent[k].frames = buffers[2 + k];
            pending->recent[k].n = 0;
        }
        pending->capacity = depth;
        pending->nframes = pending->nblocks = 0;
    }
    return pending;
}

static int
same_frames(const mh_raw_frame_t *a, const mh_raw_frame_t *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (a[i].code != b[i].code || a[i].offset != b[i].offset) {
            return 0;
        }
    }
    return 1;
}

/* The traceback of a native block allocated by a thread without the GIL:
 * the node of the thread's last interned traceback when its Python stack
 * reads the same (*serial: the store that node belongs to), else 0, and
 * the block waits in the thread's pending record.  Reads only this
 * thread's own frames, which can't change while it runs C code. */
static uint32_t
traceback_unattached(uintptr_t ptr, uint64_t size, uint64_t *serial)
{
    PyThreadState *tstate = PyGILState_GetThisThreadState();
    if (tstate == NULL || tstate->interp != PyInterpreterState_Main()) {
        return 0;
    }
    int depth = __atomic_load_n(&mh_hooks_cfg_depth, __ATOMIC_RELAXED);
    pending_t *pending = pending_reserve(depth);
    if (pending == NULL) {
        return 0;
    }
    int n = mh_frames_capture(tstate, pending->scratch, depth, NULL);
    if (n == 0) {
        return 0;
    }
    uint32_t last =
        mh_tbcache_last_if_same(&mh_tls_tbcache, pending->scratch, n);
    if (last != MH_TB_NONE) {
        *serial = mh_tls_tbcache.store_serial;
        return last;
    }
    if (pending->nblocks == 0 || n != pending->nframes ||
        !same_frames(pending->scratch, pending->frames, n)) {
        /* A new stack: blocks still waiting for the old one keep the
         * empty traceback. */
        mh_raw_frame_t *swap = pending->frames;
        pending->frames = pending->scratch;
        pending->scratch = swap;
        pending->nframes = n;
        pending->nblocks = 0;
    }
    if (pending->nblocks < PENDING_MAX) {
        pending->ptrs[pending->nblocks] = ptr;
        pending->sizes[pending->nblocks] = size;
        pending->nblocks++;
        mh_tls_native_waiting = 1;
    }
    return 0;
}

/* Give the thread's waiting native blocks their traceback.  GIL held (the
 * thread's own tstate), mh_tls_in_hook set by the caller's hook. */
void
mh_hooks_native_flush_pending(PyThreadState *tstate)
{
    mh_tls_native_waiting = 0;
    pending_t *pending = tls_pending;
    if (pending == NULL || pending->nblocks == 0) {
        return;
    }
    int nblocks = pending->nblocks;
    pending->nblocks = 0;
    int n =
        mh_frames_capture(tstate, pending->scratch, pending->capacity, NULL);
    int p = pending->nframes;
    int shared = 0;
    while (shared < n && shared < p &&
           pending->frames[p - 1 - shared].code ==
               pending->scratch[n - 1 - shared].code &&
           pending->frames[p - 1 - shared].offset ==
               pending->scratch[n - 1 - shared].offset) {
        shared++;
    }
    if (shared == 0 || mh_hooks_tbstore == NULL ||
        mh_tbcache_reserve(&mh_tls_tbcache, pending->capacity) < 0) {
        return;
    }
    pthread_setspecific(mh_hooks_frames_key, &mh_tls_tbcache);
    memcpy(mh_tbcache_buffer(&mh_tls_tbcache), pending->frames + (p - shared),
           (size_t)shared * sizeof(mh_raw_frame_t));
    uint32_t tb = mh_tbstore_intern(mh_hooks_tbstore, &mh_tls_tbcache, shared,
                                    (uint32_t)shared);
    if (tb == MH_TB_NONE || tb == 0) {
        return;
    }
    mh_lock_acquire(&mh_hooks_table_lock);
    for (int i = 0; i < nblocks && mh_hooks_raw_part.traces != NULL; i++) {
        mh_trace_t trace;
        if (mh_traces_get(mh_hooks_raw_part.traces, pending->ptrs[i],
                          &trace) &&
            trace.domain == MH_DOMAIN_NATIVE && trace.traceback == 0 &&
            trace.size == pending->sizes[i]) {
            trace.traceback = tb;
            /* Same address: replaces the entry in place, can't fail. */
            mh_traces_insert(mh_hooks_raw_part.traces, &trace, NULL);
        }
    }
    mh_lock_release(&mh_hooks_table_lock);
}

/* The traceback of a native block allocated by a thread holding the GIL.
 * A thread allocating where one of its last native blocks was allocated (a
 * loop calling the same C functions, several mallocs in one C call)
 * compares every frame with that block's in one walk and reuses its node:
 * no capture, no interning.  Every frame, not only the innermost: a frame
 * reused at the same address under another caller differs further out.
 * The node's code objects are alive while its store is (the nodes hold
 * them), so equal addresses are the same code.  Kept apart from the
 * traceback cache, which the thread's Python allocations (at other
 * instructions, in between) overwrite.  GIL held, inside a hook. */
static uint32_t
native_traceback(PyThreadState *tstate)
{
    pending_t *pending = tls_pending;
    int depth = __atomic_load_n(&mh_hooks_cfg_depth, __ATOMIC_RELAXED);
    int count_total =
        __atomic_load_n(&mh_hooks_cfg_count_total, __ATOMIC_RELAXED);
    if (pending != NULL && !count_total && !mh_tls_native_waiting) {
        uint64_t serial = mh_tbstore_serial(mh_hooks_tbstore);
        for (int j = 0; j < NRECENT; j++) {
            int k = (pending->mru + j) % NRECENT;
            if (pending->recent[k].n > 0 && pending->recent[k].n <= depth &&
                pending->recent[k].serial == serial &&
                mh_frames_same(tstate, pending->recent[k].frames,
                               pending->recent[k].n, depth)) {
                pending->mru = k;
                return pending->recent[k].node;
            }
        }
    }
    uint32_t tb = mh_hooks_capture_traceback(tstate);
    /* With tb != 0 and whole stacks not counted, the traceback cache
     * holds exactly what was just interned, tb being its last node. */
    int n = mh_tls_tbcache.nlast;
    if (tb != 0 && !count_total && n > 0 &&
        (pending = pending_reserve(depth)) != NULL && n <= pending->capacity) {
        int k = (pending->mru + 1) % NRECENT; /* the least recent */
        memcpy(pending->recent[k].frames, mh_tls_tbcache.frames,
               (size_t)n * sizeof(mh_raw_frame_t));
        pending->recent[k].n = n;
        pending->recent[k].node = tb;
        pending->recent[k].serial = mh_tls_tbcache.store_serial;
        pending->mru = k;
    }
    return tb;
}

/* Relaxed atomics; written by mh_hooks_native_enable with the GIL held. */
static int native_on;

void
mh_hooks_native_enable(int on)
{
    if (on && !pending_key_ok) {
        pending_key_ok =
            pthread_key_create(&pending_key, release_pending) == 0;
    }
    if (on) {
        mh_nursery_init();
    }
    __atomic_store_n(&native_on, on, __ATOMIC_RELAXED);
}

int
mh_hooks_native_enter(void)
{
    if (!__atomic_load_n(&native_on, __ATOMIC_RELAXED) ||
        !is_tracing_relaxed() || mh_tls_in_hook) {
        return 0;
    }
    mh_tls_in_hook = 1;
    return 1;
}

void
mh_hooks_native_leave(void)
{
    mh_tls_in_hook = 0;
}

void
mh_hooks_native_record(void *ptr, size_t size, mh_trace_t *out)
{
    if (!wants_alloc(size)) {
        if (out != NULL) {
            out->ptr = 0;
        }
        return;
    }
    PyThreadState *tstate = mh_frames_attached_tstate();
    uint32_t tb = 0;
    uint64_t serial = 0;
    if (tstate != NULL) {
        if (mh_hooks_tbstore != NULL) {
            tb = native_traceback(tstate);
        }
    }
    else {
        tb = traceback_unattached((uintptr_t)ptr, size, &serial);
    }
    mh_trace_t trace = {
        .ptr = (uintptr_t)ptr,
        .size = size,
        .traceback = tb,
        .generation = __atomic_load_n(&mh_hooks_generation, __ATOMIC_RELAXED),
        .domain = MH_DOMAIN_NATIVE,
    };
    if (tstate != NULL &&
        !__atomic_load_n(&mh_hooks_cfg_sample_mean, __ATOMIC_RELAXED) &&
        mh_nursery_try_put(&trace)) {
        if (out != NULL) {
            *out = trace;
        }
        return;
    }
    mh_lock_acquire(&mh_hooks_table_lock);
    if (tstate == NULL && tb != 0 &&
        (mh_hooks_native_tbstore == NULL ||
         mh_tbstore_serial(mh_hooks_native_tbstore) != serial)) {
        trace.traceback = 0;
    }
    mh_hooks_insert_guarded(&mh_hooks_raw_part, &trace);
    mh_lock_release(&mh_hooks_table_lock);
    if (out != NULL) {
        *out = trace;
    }
}

/* mh_hooks_native_forget, and with hold set mh_hooks_native_forget_old. */
static int
forget(uintptr_t ptr, size_t unmapped, mh_trace_t *removed, int hold)
{
    if (!wants_free(ptr)) {
        return 0;
    }
    PyThreadState *tstate = mh_frames_attached_tstate();
    if (tstate != NULL && mh_nursery_try_take(ptr, removed)) {
        if (unmapped != 0 && removed->size > unmapped) {
            /* munmap of the head of a mapping: the tail stays mapped. */
            mh_trace_t tail = *removed;
            tail.ptr += unmapped;
            tail.size -= unmapped;
            if (!mh_nursery_put(&tail)) {
                mh_hooks_native_restore(&tail);
            }
        }
        return 1;
    }
    int found = 0;
    mh_lock_acquire(&mh_hooks_table_lock);
    if (mh_hooks_raw_part.traces == NULL) {
        /* not tracing */
    }
    else if (!mh_traces_remove(mh_hooks_raw_part.traces, ptr, removed)) {
        /* Perhaps a nursery block, allocated with the GIL. */
        if (tstate == NULL && mh_nursery_note_remote_free_locked(ptr) &&
            hold) {
            mh_lock_release(&mh_hooks_table_lock);
            return MH_HOOKS_NOTED; /* see the header */
        }
    }
    else {
        found = 1;
        __atomic_store_n(&mh_hooks_raw_part.bytes,
                         mh_hooks_raw_part.bytes - charge_of(removed->size),
                         __ATOMIC_RELAXED);
        if (mh_hooks_cfg_sample_mean) {
            mh_hooks_filter_add(ptr, -1);
        }
        if (unmapped != 0 && removed->size > unmapped &&
            removed->domain == MH_DOMAIN_NATIVE) {
            /* munmap of the head of a mapping: the tail stays mapped. */
            mh_trace_t tail = *removed;
            tail.ptr += unmapped;
            tail.size -= unmapped;
            mh_hooks_insert_guarded(&mh_hooks_raw_part, &tail);
        }
    }
    mh_lock_release(&mh_hooks_table_lock);
    return found;
}

int
mh_hooks_native_forget(uintptr_t ptr, size_t unmapped, mh_trace_t *removed)
{
    return forget(ptr, unmapped, removed, 0);
}

int
mh_hooks_native_forget_old(uintptr_t ptr, mh_trace_t *removed)
{
    return forget(ptr, 0, removed, 1);
}

void
mh_hooks_native_settle(uintptr_t ptr, int freed)
{
    if (!freed) {
        mh_lock_acquire(&mh_hooks_table_lock);
        (void)mh_nursery_unnote_remote_free_locked(ptr);
        mh_lock_release(&mh_hooks_table_lock);
    }
}

int
mh_hooks_native_alloc(void *ptr, size_t size)
{
    if (ptr == NULL || !__atomic_load_n(&native_on, __ATOMIC_RELAXED) ||
        !is_tracing_relaxed() || mh_tls_in_hook) {
        return 0;
    }
    mh_tls_in_hook = 1;
    mh_trace_t recorded;
    mh_hooks_native_record(ptr, size, &recorded);
    mh_tls_in_hook = 0;
    return recorded.ptr != 0;
}

void
mh_hooks_native_free(void *ptr)
{
    if (ptr == NULL || !__atomic_load_n(&native_on, __ATOMIC_RELAXED) ||
        !is_tracing_relaxed() || mh_tls_in_hook) {
        return;
    }
    mh_tls_in_hook = 1;
    mh_trace_t removed;
    mh_hooks_native_forget((uintptr_t)ptr, 0, &removed);
    mh_tls_in_hook = 0;
}

void
mh_hooks_native_restore(const mh_trace_t *trace)
{
    mh_lock_acquire(&mh_hooks_table_lock);
    mh_hooks_insert_guarded(&mh_hooks_raw_part, trace);
    mh_lock_release(&mh_hooks_table_lock);
}
