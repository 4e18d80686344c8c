/* hooks.c: PEP 445 allocator hooks and the process-wide tracing state.
 *
 * Every allocation, reallocation and free of the raw, mem and object
 * domains passes through here while tracing.  Rules of the hot path:
 *  - a thread-local flag (mh_tls_in_hook) is checked with "tracing is on"
 *    before anything else; no lock is taken and no Python is run;
 *  - tracebacks are captured and interned only by a thread holding the main
 *    GIL (which protects the store); raw allocations without the GIL get
 *    the empty traceback 0;
 *  - live blocks sit in two tables: blocks of the mem and object domains
 *    allocated by main-interpreter threads (nearly all of them) in one
 *    guarded by the main GIL, which their callers hold anyway, so that path
 *    takes no lock; raw-domain blocks, which may come and go without the
 *    GIL, in one guarded by mh_hooks_table_lock, whose holder calls
 *    nothing but libc and the table code.  A block is freed in the domain
 *    it was allocated in (the PEP 445 contract), so it is always found in
 *    its own table.  The youngest mem/object blocks wait in a ring before
 *    their table (hooks_young.h), native blocks allocated with the GIL in
 *    their thread's nursery before the raw one (hooks_nursery.c); readers
 *    of the live state move both into the tables first;
 *  - a block is forgotten *before* it is handed back to the allocator, and
 *    recorded *after* it is obtained, so an address reused by another
 *    thread in between can never be confused with the old block.
 * Bookkeeping memory comes from rawmem.h (libc), never the hooked domains.
 * The state native.c's wrappers share is in hooks_internal.h; their
 * bookkeeping is hooks_native.c.
 */
#include "hooks_internal.h"
#include "hooks_young.h"

#include <string.h>
#include <time.h>

#include "gcchurn.h"
#include "rawmem.h"
#include "table.h"
#include "traces.h"

MH_TLS int mh_tls_in_hook;        /* recursion guard */
MH_TLS int mh_tls_suspended;      /* memhound's own work on this thread */
MH_TLS uint64_t mh_tls_countdown; /* bytes until the next sample; 0:
                                         not drawn yet on this thread */
static MH_TLS uint64_t tls_rng;
static MH_TLS uintptr_t tls_last_object; /* last object-domain block the
                                             allocator handed out */
static MH_TLS int tls_probing;      /* install_hooks() is probing the chain */
static MH_TLS int tls_probe_seen;   /* bit per domain whose hook saw it */
MH_TLS mh_tbcache_t mh_tls_tbcache; /* capture buffers and the nodes of
                                           the last traceback interned */

/* Frees each thread's capture buffers when the thread exits. */
pthread_key_t mh_hooks_frames_key;

typedef struct {
    PyMemAllocatorEx orig; /* the allocator below ours; kept valid forever
                              once set, so a hook call racing with stop()
                              still has somewhere to go */
    PyMemAllocatorDomain pydomain;
    mh_domain_t domain;
    int installed; /* ours is (or was left) in CPython's table */
} hook_domain_t;

/* Written only by start/stop with the GIL held, before/after
 * `mh_hooks_tracing` publishes them. */
static hook_domain_t hook_domains[3] = {
    {.pydomain = PYMEM_DOMAIN_RAW, .domain = MH_DOMAIN_RAW},
    {.pydomain = PYMEM_DOMAIN_MEM, .domain = MH_DOMAIN_MEM},
    {.pydomain = PYMEM_DOMAIN_OBJ, .domain = MH_DOMAIN_OBJ},
};

/* Relaxed atomics; written with the GIL held. */
int mh_hooks_tracing;
int mh_hooks_cfg_depth = MH_DEFAULT_DEPTH;
int mh_hooks_cfg_count_total;
uint64_t mh_hooks_cfg_sample_mean;
uint16_t mh_hooks_generation;

/* The two halves of the live state.  mh_hooks_gil_part (mem and object
 * domains, main-interpreter threads) is guarded by the main GIL;
 * mh_hooks_raw_part by mh_hooks_table_lock.  `bytes` is also read by the other
 * half, for the peak, with relaxed atomics. */
mh_lock_t mh_hooks_table_lock = MH_LOCK_INIT;
mh_hooks_part_t mh_hooks_gil_part;
mh_hooks_part_t mh_hooks_raw_part;

/* Relaxed atomics.  The peak is the largest sum of both halves seen by an
 * insert; an insert racing with one of the other half may miss a new peak
 * by that one block (raw-domain allocations without the GIL only). */
uint64_t mh_hooks_peak_bytes;
static uint64_t dropped_blocks;
/* Set (relaxed, any thread) when a free or realloc of a mem/object block
 * went unseen: no main-interpreter thread state (CPython forbids these
 * calls without the GIL, but a C extension may make them), or nested in
 * memhound's own hook.  The table replaces such a block's stale entry when
 * its address is handed out again; the young ring can't without a table
 * lookup, so from then on it is bypassed (hooks_young.h).  Cleared with
 * the tables (clear, stop). */
static int gil_frees_missed;

/* Sampling mode: a counting filter over sampled addresses, so that a free
 * of an unsampled block (nearly all of them) looks up nothing.  Updated
 * with atomic read-modify-writes (both halves update it); read with a
 * relaxed load, which is enough because the increment for a block happens
 * before the block reaches whoever frees it.  Saturated counters stay
 * saturated.  Static so it never goes away under a racing reader; pages are
 * touched only in sampling mode. */
/* 64 KiB: small enough to stay in L2 next to the interpreter's own data
 * (a 1 MiB filter made the check a cache miss on most frees), large enough
 * that a false "maybe sampled" (which costs a table lookup) stays rare:
 * live sampled blocks number about live bytes / mean, a few thousand. */
uint8_t mh_hooks_sample_filter[MH_FILTER_SIZE];

/* Guarded by the main GIL. */
mh_tbstore_t *mh_hooks_tbstore;
/* The same store for the native wrappers on threads without the GIL (see
 * hooks_native.c): written under mh_hooks_table_lock, NULL while the store is
 * being replaced. */
mh_tbstore_t *mh_hooks_native_tbstore;
static int cfg_skip_python; /* native only: no PEP 445 hooks (issue 5) */
static uint64_t lost_tracebacks;

static uint64_t
rng_next(void)
{
    if (tls_rng == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        tls_rng =
            mh_table_mix((uint64_t)(uintptr_t)&tls_rng ^ (uint64_t)ts.tv_nsec ^
                         ((uint64_t)ts.tv_sec << 32)) |
            1;
    }
    /* xorshift64* */
    tls_rng ^= tls_rng >> 12;
    tls_rng ^= tls_rng << 25;
    tls_rng ^= tls_rng >> 27;
    return tls_rng * 0x2545f4914f6cdd1dULL;
}

/* Bytes to the next sample point: exponential with the configured mean. */
uint64_t
mh_hooks_draw_countdown(uint64_t mean)
{
    double u = ((double)(rng_next() >> 11) + 1.0) / 9007199254740993.0;
    double gap = -log(u) * (double)mean;
    if (gap < 1.0) {
        return 1;
    }
    if (gap > 1e18) {
        return (uint64_t)1e18;
    }
    return (uint64_t)gap;
}

/* ---- recording --------------------------------------------------------- */

/* pthread key destructor: the thread's TLS is still there while it runs. */
static void
release_tbcache(void *cache)
{
    mh_tbcache_release(cache);
}

/* Capture and intern the calling thread's traceback.  GIL held. */
uint32_t
mh_hooks_capture_traceback(PyThreadState *tstate)
{
    if (mh_tls_native_waiting) {
        mh_hooks_native_flush_pending(tstate); /* issue 5: hooks_native.c */
    }
    int depth = __atomic_load_n(&mh_hooks_cfg_depth, __ATOMIC_RELAXED);
    if (mh_tls_tbcache.capacity < depth) {
        if (mh_tbcache_reserve(&mh_tls_tbcache, depth) < 0) {
            lost_tracebacks++;
            return 0;
        }
        pthread_setspecific(mh_hooks_frames_key, &mh_tls_tbcache);
    }
    int count_total =
        __atomic_load_n(&mh_hooks_cfg_count_total, __ATOMIC_RELAXED);
    int nlast = mh_tls_tbcache.nlast;
    mh_raw_frame_t leaf;
    if (!count_total && nlast > 0 && nlast <= depth &&
        mh_tls_tbcache.store_serial == mh_tbstore_serial(mh_hooks_tbstore) &&
        mh_frames_same_outer(tstate, mh_tls_tbcache.frames, nlast, depth,
                             &leaf)) {
        /* Only the innermost frame may differ from the last traceback:
         * the usual case in a loop, which allocates at a few instructions
         * of one frame in turn. */
        uint32_t tb =
            mh_tbstore_intern_leaf(mh_hooks_tbstore, &mh_tls_tbcache, leaf);
        if (tb == MH_TB_NONE) {
            lost_tracebacks++;
            return 0;
        }
        return tb;
    }
    uint32_t total = 0;
    int n = mh_frames_capture(tstate, mh_tbcache_buffer(&mh_tls_tbcache),
                              depth, count_total ? &total : NULL);
    if (!count_total) {
        total = (uint32_t)n;
    }
    uint32_t tb =
        mh_tbstore_intern(mh_hooks_tbstore, &mh_tls_tbcache, n, total);
    if (tb == MH_TB_NONE) {
        lost_tracebacks++;
        return 0;
    }
    return tb;
}

void
mh_hooks_filter_add(uintptr_t ptr, int delta)
{
    uint8_t *slot = &mh_hooks_sample_filter[filter_slot(ptr)];
    uint8_t old = __atomic_load_n(slot, __ATOMIC_RELAXED);
    for (;;) {
        if (old == UINT8_MAX || (delta < 0 && old == 0)) {
            return;
        }
        uint8_t new = (uint8_t)(old + delta);
        if (__atomic_compare_exchange_n(slot, &old, new, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            return;
        }
    }
}

/* The half a block of this domain belongs to, or NULL when the calling
 * thread's block must not be traced (mem/object domain without a
 * main-interpreter thread state: a subinterpreter with its own GIL, or
 * finalization after the thread state is gone). */
static inline mh_hooks_part_t *
part_for(mh_domain_t domain, PyThreadState **tstate)
{
    if (domain == MH_DOMAIN_RAW) {
        *tstate = mh_frames_attached_tstate();
        return &mh_hooks_raw_part;
    }
    *tstate = mh_frames_current_tstate();
    return *tstate != NULL ? &mh_hooks_gil_part : NULL;
}

static inline void
part_lock(mh_hooks_part_t *part)
{
    if (part == &mh_hooks_raw_part) {
        mh_lock_acquire(&mh_hooks_table_lock);
    }
}

static inline void
part_unlock(mh_hooks_part_t *part)
{
    if (part == &mh_hooks_raw_part) {
        mh_lock_release(&mh_hooks_table_lock);
    }
}

/* Account for a block entering part: `charge` in its bytes, and in
 * `allocated` when fresh, less `uncharge` (an entry it replaced); raise the
 * peak.  The part's guard is held. */
static inline void
charge_part(mh_hooks_part_t *part, uint64_t charge, uint64_t uncharge,
            int fresh)
{
    uint64_t bytes = part->bytes + charge - uncharge;
    if (fresh) {
        __atomic_store_n(&part->allocated, part->allocated + charge,
                         __ATOMIC_RELAXED);
    }
    __atomic_store_n(&part->bytes, bytes, __ATOMIC_RELAXED);
    mh_hooks_part_t *other =
        part == &mh_hooks_raw_part ? &mh_hooks_gil_part : &mh_hooks_raw_part;
    uint64_t total = bytes + __atomic_load_n(&other->bytes, __ATOMIC_RELAXED);
    if (total > __atomic_load_n(&mh_hooks_peak_bytes, __ATOMIC_RELAXED)) {
        __atomic_store_n(&mh_hooks_peak_bytes, total, __ATOMIC_RELAXED);
    }
}

/* Insert a trace and account for it (its size in `allocated` too when
 * fresh).  The part's guard is held. */
static inline void
insert_counted(mh_hooks_part_t *part, const mh_trace_t *trace, int fresh)
{
    mh_trace_t replaced;
    if (part->traces == NULL) { /* stop() ran since the check */
        return;
    }
    int result = mh_traces_insert(part->traces, trace, &replaced);
    if (result < 0) {
        __atomic_add_fetch(&dropped_blocks, 1, __ATOMIC_RELAXED);
        return;
    }
    uint64_t uncharge = 0;
    if (result == 1) {
        /* The old block was freed behind our back (or its free was not
         * seen); its address is live again under this new block. */
        uncharge = charge_of(replaced.size);
    }
    else if (mh_hooks_cfg_sample_mean) {
        mh_hooks_filter_add(trace->ptr, 1);
    }
    charge_part(part, charge_of(trace->size), uncharge, fresh);
}

void
mh_hooks_insert_guarded(mh_hooks_part_t *part, const mh_trace_t *trace)
{
    insert_counted(part, trace, 1);
}

void
mh_hooks_move_guarded(mh_hooks_part_t *part, const mh_trace_t *trace)
{
    insert_counted(part, trace, 0);
}

/* ---- the young ring (hooks_young.h) ------------------------------------ */

mh_young_t mh_young;

void
mh_hooks_charge_gil(uint64_t charge, int fresh)
{
    charge_part(&mh_hooks_gil_part, charge, 0, fresh);
}

void
mh_young_move(unsigned i)
{
    mh_trace_t trace;
    mh_young_vacate(i, &trace);
    /* Uncharged, then inserted as a fresh block: a failed insert (a drop,
     * nothing charged) and one replacing a stale entry are then counted
     * exactly as on the table path. */
    uint64_t charge = charge_of(trace.size);
    __atomic_store_n(&mh_hooks_gil_part.bytes,
                     mh_hooks_gil_part.bytes - charge, __ATOMIC_RELAXED);
    __atomic_store_n(&mh_hooks_gil_part.allocated,
                     mh_hooks_gil_part.allocated - charge, __ATOMIC_RELAXED);
    insert_counted(&mh_hooks_gil_part, &trace, 1);
}

/* Before anything reads the live state: the blocks waiting in the young
 * ring and in the nurseries are live too.  GIL held. */
static void
flush_waiting_blocks(void)
{
    mh_young_flush();
    mh_nursery_flush();
}

/* Record a block that wants_alloc() accepted. */
static void
record_alloc(const hook_domain_t *hd, void *ptr, size_t size)
{
    PyThreadState *tstate;
    mh_hooks_part_t *part = part_for(hd->domain, &tstate);
    if (part == NULL) {
        return;
    }
    uint32_t tb = 0;
    if (tstate != NULL && mh_hooks_tbstore != NULL) {
        tb = mh_hooks_capture_traceback(tstate);
    }
    mh_trace_t trace = {
        .ptr = (uintptr_t)ptr,
        .size = size,
        .traceback = tb,
        .generation = __atomic_load_n(&mh_hooks_generation, __ATOMIC_RELAXED),
        .domain = (uint8_t)hd->domain,
    };
    if (part == &mh_hooks_gil_part &&
        !__atomic_load_n(&mh_hooks_cfg_sample_mean, __ATOMIC_RELAXED) &&
        part->traces != NULL) {
        if (!__atomic_load_n(&gil_frees_missed, __ATOMIC_RELAXED)) {
            mh_young_put(&trace);
            return;
        }
        /* Blocks at a stale address must reach the table in order, where
         * the insert below replaces a stale entry. */
        mh_young_flush();
    }
    part_lock(part);
    mh_hooks_insert_guarded(part, &trace);
    part_unlock(part);
}

/* Remove ptr's trace, if any, copying it to *removed.  Returns 1 when it
 * was traced.  With hold set (a realloc's old block), MH_HOOKS_NOTED as
 * mh_hooks_native_forget_old returns it (hooks.h): a thread without the
 * GIL noted a nursery block for the GIL side; the caller settles the note
 * (mh_hooks_native_settle) once the realloc's outcome is known. */
static int
forget_block(const hook_domain_t *hd, uintptr_t ptr, mh_trace_t *removed,
             int hold)
{
    PyThreadState *tstate;
    mh_hooks_part_t *part = part_for(hd->domain, &tstate);
    if (part == NULL) {
        __atomic_store_n(&gil_frees_missed, 1, __ATOMIC_RELAXED);
        return 0;
    }
    if (part == &mh_hooks_gil_part && mh_young_take(ptr, removed)) {
        return 1;
    }
    int found = 0;
    part_lock(part);
    if (part->traces != NULL && mh_traces_remove(part->traces, ptr, removed)) {
        found = 1;
        __atomic_store_n(&part->bytes, part->bytes - charge_of(removed->size),
                         __ATOMIC_RELAXED);
        if (mh_hooks_cfg_sample_mean) {
            mh_hooks_filter_add(ptr, -1);
        }
    }
    else if (part == &mh_hooks_raw_part && tstate == NULL) {
        /* PyMem_RawFree of a native block (an extension's malloc handed
         * to CPython) that may wait in a nursery. */
        if (mh_nursery_note_remote_free_locked(ptr) && hold) {
            part_unlock(part);
            return MH_HOOKS_NOTED;
        }
    }
    part_unlock(part);
    if (!found && part == &mh_hooks_raw_part && tstate != NULL) {
        found = mh_nursery_take(ptr, removed);
    }
    return found;
}

/* Put back the trace of a block whose realloc failed. */
static void
restore_block(const hook_domain_t *hd, const mh_trace_t *trace)
{
    PyThreadState *tstate;
    mh_hooks_part_t *part = part_for(hd->domain, &tstate);
    if (part == NULL) {
        return;
    }
    part_lock(part);
    mh_hooks_insert_guarded(part, trace);
    part_unlock(part);
}

/* ---- the hooks ---------------------------------------------------------
 *
 * mh_tls_in_hook is set around the call to the allocator below: what that
 * allocator gets from another domain for this block (pymalloc takes large
 * blocks from the raw domain, through its public API) is part of this
 * block, not a block of its own.
 */

/* While install_hooks() probes (tracing is off then), record that this
 * domain's hook is still in CPython's allocator chain. */
static inline void
note_probe(const hook_domain_t *hd)
{
    if (tls_probing) {
        tls_probe_seen |= 1 << hd->domain;
    }
}

/* A free or realloc nested in a hook of this thread goes unseen (see
 * gil_frees_missed). */
static void
note_nested_free(const hook_domain_t *hd)
{
    if (hd->domain != MH_DOMAIN_RAW && is_tracing_relaxed()) {
        __atomic_store_n(&gil_frees_missed, 1, __ATOMIC_RELAXED);
    }
}

static void *
hook_malloc(void *ctx, size_t size)
{
    hook_domain_t *hd = ctx;
    if (!is_tracing_relaxed() || mh_tls_in_hook) {
        note_probe(hd);
        return hd->orig.malloc(hd->orig.ctx, size);
    }
    mh_tls_in_hook = 1;
    void *ptr = hd->orig.malloc(hd->orig.ctx, size);
    if (hd->domain == MH_DOMAIN_OBJ) {
        tls_last_object = (uintptr_t)ptr;
    }
    if (ptr != NULL && wants_alloc(size)) {
        record_alloc(hd, ptr, size);
    }
    mh_tls_in_hook = 0;
    return ptr;
}

static void *
hook_calloc(void *ctx, size_t nelem, size_t elsize)
{
    hook_domain_t *hd = ctx;
    if (!is_tracing_relaxed() || mh_tls_in_hook) {
        note_probe(hd);
        return hd->orig.calloc(hd->orig.ctx, nelem, elsize);
    }
    mh_tls_in_hook = 1;
    void *ptr = hd->orig.calloc(hd->orig.ctx, nelem, elsize);
    if (hd->domain == MH_DOMAIN_OBJ) {
        tls_last_object = (uintptr_t)ptr;
    }
    /* The allocator succeeded, so nelem * elsize did not overflow. */
    if (ptr != NULL && wants_alloc(nelem * elsize)) {
        record_alloc(hd, ptr, nelem * elsize);
    }
    mh_tls_in_hook = 0;
    return ptr;
}

static void *
hook_realloc(void *ctx, void *old, size_t size)
{
    hook_domain_t *hd = ctx;
    if (!is_tracing_relaxed() || mh_tls_in_hook) {
        note_probe(hd);
        if (mh_tls_in_hook && old != NULL) {
            note_nested_free(hd);
        }
        return hd->orig.realloc(hd->orig.ctx, old, size);
    }
    mh_tls_in_hook = 1;
    mh_trace_t previous;
    int had = old != NULL && wants_free((uintptr_t)old)
                  ? forget_block(hd, (uintptr_t)old, &previous, 1)
                  : 0;
    void *ptr = hd->orig.realloc(hd->orig.ctx, old, size);
    if (had == MH_HOOKS_NOTED) {
        /* CPython's raw realloc never frees on size 0 (it asks for 1):
         * a failed one keeps the old block, which stays in its nursery. */
        mh_hooks_native_settle((uintptr_t)old, ptr != NULL);
        had = 0;
    }
    if (hd->domain == MH_DOMAIN_OBJ) {
        tls_last_object = (uintptr_t)ptr;
    }
    if (ptr != NULL) {
        if (wants_alloc(size)) {
            record_alloc(hd, ptr, size);
        }
    }
    else if (had) {
        /* The old block is still there: put its trace back. */
        restore_block(hd, &previous);
    }
    mh_tls_in_hook = 0;
    return ptr;
}

static void
hook_free(void *ctx, void *ptr)
{
    hook_domain_t *hd = ctx;
    if (ptr != NULL && is_tracing_relaxed() && !mh_tls_in_hook &&
        wants_free((uintptr_t)ptr)) {
        mh_trace_t removed;
        /* Cycle churn (gcchurn.h): one TLS test unless this thread runs a
         * collection. */
        if (forget_block(hd, (uintptr_t)ptr, &removed, 0) &&
            mh_gcchurn_collecting()) {
            mh_gcchurn_count(&removed, charge_of(removed.size));
        }
    }
    else if (mh_tls_in_hook && ptr != NULL) {
        note_nested_free(hd);
    }
    hd->orig.free(hd->orig.ctx, ptr);
}

/* ---- install / uninstall ----------------------------------------------- */

/* Whether this domain's hook is still reached by an allocation through
 * CPython's public API: another tool that hooked after memhound may have
 * restored the allocator it saw, dropping memhound from the chain.  Called
 * with tracing off and the GIL held. */
/* A new object (mh_frames_watch_creations).  When its block is not the one
 * the allocator just handed out, the interpreter took it from a free list:
 * the block is re-traced as allocated here and now, with the traceback and
 * generation of this creation, as tracemalloc's own free-list hook does.
 * GIL held; never runs Python, never allocates through the hooks. */
static void
on_object_created(PyObject *obj)
{
    if (!is_tracing_relaxed() || mh_tls_in_hook || mh_tls_suspended) {
        return;
    }
    /* First: the hook sees every interpreter's creations, and only a
     * main-interpreter thread holding the main GIL may read the GIL half
     * (a subinterpreter with its own GIL runs in parallel with it). */
    PyThreadState *tstate = mh_frames_current_tstate();
    if (tstate == NULL) {
        return;
    }
    uintptr_t block = (uintptr_t)mh_frames_object_block(obj);
    if (block == tls_last_object || mh_hooks_gil_part.traces == NULL ||
        mh_hooks_tbstore == NULL) {
        return;
    }
    tls_last_object = block;
    mh_trace_t trace;
    int slot = mh_young_find(block);
    if (slot >= 0) {
        trace = mh_young.trace[slot];
    }
    else if (!mh_traces_get(mh_hooks_gil_part.traces, block, &trace)) {
        return; /* not traced: made before start(), or not sampled */
    }
    mh_tls_in_hook = 1;
    trace.traceback = mh_hooks_capture_traceback(tstate);
    trace.generation = __atomic_load_n(&mh_hooks_generation, __ATOMIC_RELAXED);
    if (slot >= 0) {
        mh_young.trace[slot] = trace;
    }
    else {
        /* Same address and size: replaces the entry in place, no
         * allocation, no change to the totals. */
        (void)mh_traces_insert(mh_hooks_gil_part.traces, &trace, NULL);
    }
    mh_tls_in_hook = 0;
}

static int
hook_still_chained(const hook_domain_t *hd)
{
    tls_probing = 1;
    tls_probe_seen = 0;
    switch (hd->pydomain) {
    case PYMEM_DOMAIN_RAW:
        PyMem_RawFree(PyMem_RawMalloc(1));
        break;
    case PYMEM_DOMAIN_MEM:
        PyMem_Free(PyMem_Malloc(1));
        break;
    default:
        PyObject_Free(PyObject_Malloc(1));
        break;
    }
    tls_probing = 0;
    return (tls_probe_seen >> hd->domain) & 1;
}

static void
install_hooks(void)
{
    for (int i = 0; i < 3; i++) {
        hook_domain_t *hd = &hook_domains[i];
        if (hd->installed && hook_still_chained(hd)) {
            continue; /* still chained, below another tool's hook */
        }
        /* A hook of ours no longer in the chain is never called again
         * except by a call already under way, which uses whichever orig it
         * read: both stay valid. */
        PyMem_GetAllocator(hd->pydomain, &hd->orig);
        PyMemAllocatorEx ours = {hd, hook_malloc, hook_calloc, hook_realloc,
                                 hook_free};
        PyMem_SetAllocator(hd->pydomain, &ours);
        hd->installed = 1;
    }
}

static void
uninstall_hooks(void)
{
    for (int i = 0; i < 3; i++) {
        hook_domain_t *hd = &hook_domains[i];
        if (!hd->installed) {
            continue;
        }
        PyMemAllocatorEx current;
        PyMem_GetAllocator(hd->pydomain, &current);
        if (current.ctx == hd && current.malloc == hook_malloc) {
            PyMem_SetAllocator(hd->pydomain, &hd->orig);
            hd->installed = 0;
        }
        /* Else another tool hooked on top of us and holds our functions as
         * its "original": leave ours in place, passing through. */
    }
}

/* ---- fork -------------------------------------------------------------- */

static void
before_fork(void)
{
    mh_lock_acquire(&mh_hooks_table_lock);
}

static void
after_fork_parent(void)
{
    mh_lock_release(&mh_hooks_table_lock);
}

static void
after_fork_child(void)
{
    mh_lock_reinit_after_fork(&mh_hooks_table_lock);
    mh_nursery_after_fork_child();
}

int
mh_hooks_init_process(void)
{
    static int done;
    if (done) {
        return 0;
    }
    if (pthread_key_create(&mh_hooks_frames_key, release_tbcache) != 0 ||
        pthread_atfork(before_fork, after_fork_parent, after_fork_child) !=
            0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "memhound: cannot register thread and fork handlers");
        return -1;
    }
    done = 1;
    return 0;
}

/* ---- control (GIL held) ------------------------------------------------ */

static void
reset_counters(void)
{
    mh_hooks_gil_part.bytes = 0;
    mh_hooks_raw_part.bytes = 0;
    mh_hooks_gil_part.allocated = 0;
    mh_hooks_raw_part.allocated = 0;
    mh_hooks_peak_bytes = 0;
    dropped_blocks = 0;
    if (mh_hooks_cfg_sample_mean) {
        memset(mh_hooks_sample_filter, 0, sizeof(mh_hooks_sample_filter));
    }
}

int
mh_hooks_start(const mh_config_t *config)
{
    if (is_tracing_relaxed()) {
        if (config->sample_mean == mh_hooks_cfg_sample_mean &&
            config->skip_python == cfg_skip_python) {
            /* As tracemalloc.start(): a new depth applies to new blocks. */
            __atomic_store_n(&mh_hooks_cfg_depth, config->depth,
                             __ATOMIC_RELAXED);
            __atomic_store_n(&mh_hooks_cfg_count_total, config->count_total,
                             __ATOMIC_RELAXED);
            return 0;
        }
        /* Sampled and exact traces can't be mixed (nor Python hooks
         * added to a native-only run): start afresh. */
        mh_hooks_stop();
    }
    mh_tbstore_t *new_store = mh_tbstore_new();
    mh_traces_t *new_gil = mh_traces_new();
    mh_traces_t *new_raw = mh_traces_new();
    if (new_store == NULL || new_gil == NULL || new_raw == NULL) {
        mh_tbstore_free(new_store);
        mh_traces_free(new_gil);
        mh_traces_free(new_raw);
        PyErr_NoMemory();
        return -1;
    }
    mh_hooks_tbstore = new_store;
    lost_tracebacks = 0;
    mh_hooks_cfg_depth = config->depth;
    mh_hooks_cfg_count_total = config->count_total;
    mh_hooks_cfg_sample_mean = config->sample_mean;
    mh_hooks_generation = 0;
    mh_hooks_gil_part.traces = new_gil;
    mh_lock_acquire(&mh_hooks_table_lock);
    mh_hooks_raw_part.traces = new_raw;
    mh_hooks_native_tbstore = new_store;
    reset_counters();
    mh_lock_release(&mh_hooks_table_lock);
    cfg_skip_python = config->skip_python;
    if (!cfg_skip_python) {
        install_hooks();
        (void)mh_frames_watch_creations(on_object_created);
    }
    __atomic_store_n(&mh_hooks_tracing, 1, __ATOMIC_SEQ_CST);
    return 0;
}

void
mh_hooks_stop(void)
{
    if (!is_tracing_relaxed()) {
        return;
    }
    __atomic_store_n(&mh_hooks_tracing, 0, __ATOMIC_SEQ_CST);
    uninstall_hooks();
    mh_frames_unwatch_creations();
    mh_nursery_discard();
    mh_young_discard();
    gil_frees_missed = 0;
    mh_traces_t *old_gil = mh_hooks_gil_part.traces;
    mh_hooks_gil_part.traces = NULL;
    mh_lock_acquire(&mh_hooks_table_lock);
    mh_traces_t *old_raw = mh_hooks_raw_part.traces;
    mh_hooks_raw_part.traces = NULL;
    mh_hooks_native_tbstore = NULL;
    reset_counters();
    mh_lock_release(&mh_hooks_table_lock);
    mh_traces_free(old_gil);
    mh_traces_free(old_raw);
    /* Detach before freeing: releasing code objects can run arbitrary
     * code (weakref callbacks) that must find memhound already stopped. */
    mh_tbstore_t *old_store = mh_hooks_tbstore;
    mh_hooks_tbstore = NULL;
    mh_tbstore_free(old_store);
}

int
mh_hooks_is_tracing(void)
{
    return is_tracing_relaxed();
}

mh_config_t
mh_hooks_config(void)
{
    mh_config_t config = {
        .depth = mh_hooks_cfg_depth,
        .sample_mean = mh_hooks_cfg_sample_mean,
        .count_total = mh_hooks_cfg_count_total,
    };
    return config;
}

int
mh_hooks_clear(void)
{
    if (!is_tracing_relaxed()) {
        return 0;
    }
    mh_tbstore_t *new_store = mh_tbstore_new();
    if (new_store == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    mh_nursery_discard();
    mh_young_discard();
    gil_frees_missed = 0;
    mh_traces_clear(mh_hooks_gil_part.traces);
    mh_lock_acquire(&mh_hooks_table_lock);
    mh_traces_clear(mh_hooks_raw_part.traces);
    mh_hooks_native_tbstore = NULL;
    reset_counters();
    mh_lock_release(&mh_hooks_table_lock);
    mh_tbstore_t *old_store = mh_hooks_tbstore;
    mh_hooks_tbstore = new_store;
    mh_lock_acquire(&mh_hooks_table_lock);
    mh_hooks_native_tbstore = new_store;
    mh_lock_release(&mh_hooks_table_lock);
    lost_tracebacks = 0;
    mh_tbstore_free(old_store);
    return 0;
}

void
mh_hooks_stats(mh_stats_snapshot_t *out)
{
    flush_waiting_blocks();
    memset(out, 0, sizeof(*out));
    mh_lock_acquire(&mh_hooks_table_lock);
    if (mh_hooks_gil_part.traces != NULL) {
        out->traced_blocks = mh_traces_count(mh_hooks_gil_part.traces) +
                             mh_traces_count(mh_hooks_raw_part.traces);
        out->overhead_bytes = mh_traces_memory(mh_hooks_gil_part.traces) +
                              mh_traces_memory(mh_hooks_raw_part.traces);
    }
    out->traced_bytes = mh_hooks_gil_part.bytes + mh_hooks_raw_part.bytes;
    out->allocated_bytes =
        mh_hooks_gil_part.allocated + mh_hooks_raw_part.allocated;
    out->peak_bytes = mh_hooks_peak_bytes;
    out->overhead_bytes += mh_nursery_overhead_locked();
    out->dropped_blocks = dropped_blocks + mh_nursery_lost();
    mh_lock_release(&mh_hooks_table_lock);
    out->lost_tracebacks = lost_tracebacks;
    if (mh_hooks_tbstore != NULL) {
        out->tracebacks = mh_tbstore_count(mh_hooks_tbstore);
        out->overhead_bytes += mh_tbstore_memory(mh_hooks_tbstore);
    }
    out->generation = mh_hooks_generation;
}

void
mh_hooks_reset_peak(void)
{
    mh_lock_acquire(&mh_hooks_table_lock);
    mh_hooks_peak_bytes = mh_hooks_gil_part.bytes + mh_hooks_raw_part.bytes;
    mh_lock_release(&mh_hooks_table_lock);
}

uint16_t
mh_hooks_next_generation(void)
{
    uint16_t next = mh_hooks_generation < UINT16_MAX ? mh_hooks_generation + 1
                                                     : UINT16_MAX;
    __atomic_store_n(&mh_hooks_generation, next, __ATOMIC_RELAXED);
    return next;
}

int
mh_hooks_lookup(uintptr_t ptr, uint32_t *traceback, uint64_t *size,
                uint16_t *gen, uint8_t *domain)
{
    flush_waiting_blocks();
    mh_trace_t trace;
    int found = mh_hooks_gil_part.traces != NULL &&
                mh_traces_get(mh_hooks_gil_part.traces, ptr, &trace);
    if (!found) {
        mh_lock_acquire(&mh_hooks_table_lock);
        found = mh_hooks_raw_part.traces != NULL &&
                mh_traces_get(mh_hooks_raw_part.traces, ptr, &trace);
        mh_lock_release(&mh_hooks_table_lock);
    }
    if (found) {
        *traceback = trace.traceback;
        *size = trace.size;
        *gen = trace.generation;
        *domain = trace.domain;
    }
    return found;
}

int
mh_hooks_export_blocks(mh_snapdata_t *snap)
{
    flush_waiting_blocks();
    if (mh_hooks_gil_part.traces == NULL) {
        return 0;
    }
    size_t n = mh_traces_count(mh_hooks_gil_part.traces);
    if (mh_snapdata_reserve_blocks(snap, n) < 0) {
        return -1;
    }
    snap->nblocks += mh_traces_export(mh_hooks_gil_part.traces,
                                      snap->blocks + snap->nblocks, n);
    int result = 0;
    mh_lock_acquire(&mh_hooks_table_lock);
    n = mh_traces_count(mh_hooks_raw_part.traces);
    if (mh_snapdata_reserve_blocks(snap, n) < 0) {
        result = -1;
    }
    else {
        snap->nblocks += mh_traces_export(mh_hooks_raw_part.traces,
                                          snap->blocks + snap->nblocks, n);
    }
    mh_lock_release(&mh_hooks_table_lock);
    return result;
}

int
mh_hooks_foreach_block(int (*visit)(const mh_trace_t *trace, void *arg),
                       void *arg)
{
    flush_waiting_blocks();
    if (mh_hooks_gil_part.traces == NULL) {
        return 0;
    }
    int rc = mh_traces_foreach(mh_hooks_gil_part.traces, visit, arg);
    if (rc != 0) {
        return rc;
    }
    mh_lock_acquire(&mh_hooks_table_lock);
    if (mh_hooks_raw_part.traces != NULL) {
        rc = mh_traces_foreach(mh_hooks_raw_part.traces, visit, arg);
    }
    mh_lock_release(&mh_hooks_table_lock);
    return rc;
}

void
mh_hooks_restart_generations(void)
{
    flush_waiting_blocks();
    if (mh_hooks_gil_part.traces == NULL) {
        return;
    }
    __atomic_store_n(&mh_hooks_generation, 0, __ATOMIC_RELAXED);
    mh_traces_restamp(mh_hooks_gil_part.traces, 0);
    mh_lock_acquire(&mh_hooks_table_lock);
    if (mh_hooks_raw_part.traces != NULL) {
        mh_traces_restamp(mh_hooks_raw_part.traces, 0);
    }
    mh_lock_release(&mh_hooks_table_lock);
}

mh_tbstore_t *
mh_hooks_store(void)
{
    return mh_hooks_tbstore;
}

void
mh_hooks_suspend_thread(void)
{
    mh_tls_suspended++;
}

void
mh_hooks_resume_thread(void)
{
    mh_tls_suspended--;
}

void
mh_hooks_inject_alloc_failures(long after)
{
    __atomic_store_n(&mh_rawmem_fail_after, after, __ATOMIC_RELAXED);
}
