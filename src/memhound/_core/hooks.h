/* hooks.h: PEP 445 allocator hooks and the process-wide tracing state.
 *
 * The allocator hooks are process-wide, so this state is too: one tracer
 * per process, whatever imports memhound.  hooks.c owns the live-block
 * tables (mem/object blocks guarded by the main GIL, raw blocks by its
 * table lock), the traceback store (main GIL), the counters, and the
 * install/uninstall of the hooks.
 * Functions here are called by module.c with the GIL held unless a
 * contract says otherwise.
 */
#ifndef MH_HOOKS_H
#define MH_HOOKS_H

#include <Python.h>
#include <stdint.h>

#include "snapdata.h"
#include "traces.h"
#include "tracebacks.h"
#include "traces.h"

#define MH_MAX_DEPTH 1024
#define MH_DEFAULT_DEPTH 64

typedef struct {
    int depth;            /* frames kept per traceback, 1..MH_MAX_DEPTH */
    uint64_t sample_mean; /* 0: trace every block; else Poisson sampling
                             with this mean number of bytes between samples */
    int count_total;      /* walk whole stacks to record total_nframe
                             (tracemalloc compatibility; costs on deep
                             stacks) */
    int skip_python;      /* install no PEP 445 hooks: native allocations
                             only (native.c enables those; issue 5) */
} mh_config_t;

typedef struct {
    uint64_t traced_blocks;
    uint64_t traced_bytes;
    uint64_t peak_bytes;
    uint64_t allocated_bytes; /* traced bytes ever allocated since start()
                                 or clear() (estimates when sampling) */
    uint64_t dropped_blocks;  /* not traced: memhound's table was full
                                 or out of memory */
    uint64_t lost_tracebacks; /* traced with an empty traceback because
                                 the traceback store was out of memory */
    uint64_t tracebacks;      /* nodes of the traceback tree: each is
                                 a traceback (shared outer frames) */
    uint64_t overhead_bytes;  /* memhound's own bookkeeping memory */
    uint16_t generation;
} mh_stats_snapshot_t;

/* Start tracing with config (replacing a previous configuration when
 * already tracing: then existing traces are kept).  Installs the hooks on
 * the raw, mem and object domains.  Returns 0, or -1 with MemoryError set.
 * GIL held. */
int mh_hooks_start(const mh_config_t *config);

/* Stop tracing and clear all traces.  Hooks that another tool chained on
 * top of memhound's are left in place, passing through.  Can't fail.  GIL
 * held. */
void mh_hooks_stop(void);

/* 1 while tracing.  Can't fail; any thread. */
int mh_hooks_is_tracing(void);

/* The configuration in force (meaningful while tracing).  GIL held. */
mh_config_t mh_hooks_config(void);

/* Forget every trace and traceback, keep tracing.  Returns 0, or -1 with
 * MemoryError set.  GIL held. */
int mh_hooks_clear(void);

/* Counters, consistent with each other.  GIL held. */
void mh_hooks_stats(mh_stats_snapshot_t *out);

/* Set the peak to the current traced size.  GIL held. */
void mh_hooks_reset_peak(void);

/* Advance the generation stamped on new blocks; returns the new one
 * (saturates at UINT16_MAX).  GIL held. */
uint16_t mh_hooks_next_generation(void);

/* The traced block at ptr: 1 and *trace filled, or 0 (untraced or not
 * tracing).  GIL held. */
int mh_hooks_lookup(uintptr_t ptr, uint32_t *traceback, uint64_t *size,
                    uint16_t *generation, uint8_t *domain);

/* Copy the live table into snap->blocks (traceback indices are the
 * store's).  Returns 0, or -1 when out of memory (no exception set).  GIL
 * held. */
int mh_hooks_export_blocks(mh_snapdata_t *snap);

/* Call visit(trace, arg) for every traced block of both live tables; stops
 * at the first non-zero result and returns it, else 0.  The raw table's
 * lock is held while its blocks are visited, so visit must not allocate
 * through the hooked allocators nor take locks.  GIL held. */
int mh_hooks_foreach_block(int (*visit)(const mh_trace_t *trace, void *arg),
                           void *arg);

/* Restart the generations: every live block is stamped generation 0 and
 * new blocks get 0 until the next mh_hooks_next_generation().  O(blocks);
 * the leak analysis calls it when a new analysis begins.  GIL held. */
void mh_hooks_restart_generations(void);

/* The traceback store, borrowed; NULL when not tracing.  GIL held. */
mh_tbstore_t *mh_hooks_store(void);

/* Mark the calling thread as doing memhound's own work: its allocations
 * are not traced (frees still are, so accounting stays exact).  Nests.  GIL
 * held. */
void mh_hooks_suspend_thread(void);
void mh_hooks_resume_thread(void);

/* Test support: make the next `after` bookkeeping allocations succeed and
 * every later one fail (-1: never fail).  GIL held. */
void mh_hooks_inject_alloc_failures(long after);

/* Called once at module import: registers the fork handlers.  Returns 0 or
 * -1 with an exception set. */
int mh_hooks_init_process(void);

/* ---- native allocations (native.c; issue 5) ----------------------------
 * Blocks of libc's allocator obtained by extension modules and shared
 * libraries go in the raw-domain table (mh_hooks_table_lock) with domain
 * MH_DOMAIN_NATIVE, after a stay in the allocating thread's nursery when
 * it holds the GIL (hooks_nursery.c; every reader sees them).  Everything
 * below but mh_hooks_native_enable runs on any thread, with or without the
 * GIL, and never raises, calls Python or calls the wrapped allocators. */

/* Let native.c's wrappers record (on = 1) or make them pass through
 * (0).  GIL held.  Can't fail. */
void mh_hooks_native_enable(int on);

/* 1 when the calling wrapper is to do its bookkeeping: native tracing is
 * on and the thread is not already inside one of memhound's hooks; the
 * thread is then marked as inside one until mh_hooks_native_leave().  0:
 * pass through (also before start and after stop).  Can't fail. */
int mh_hooks_native_enter(void);
void mh_hooks_native_leave(void);

/* Record the block ptr of size bytes just obtained (sampling and
 * mh_hooks_suspend_thread() apply), with the calling thread's traceback
 * (empty when it can't be had, see hooks.c).  *out (if not NULL) receives
 * the trace recorded, out->ptr 0 when none was.  Inside enter/leave.
 * Drops the block (dropped_blocks) when out of memory. */
void mh_hooks_native_record(void *ptr, size_t size, mh_trace_t *out);

/* Forget the block at ptr before it goes back to libc: 1 and *removed
 * filled when it was traced (in any domain: the memory is gone either
 * way), else 0.  unmapped: 0 for a free; for munmap the length unmapped,
 * and a mapping longer than that keeps its tail traced.  Inside
 * enter/leave.  Can't fail. */
int mh_hooks_native_forget(uintptr_t ptr, size_t unmapped,
                           mh_trace_t *removed);

/* The common cases in one call each (the wrappers' fast path):
 * enter + record(ptr, size) + leave (returns 1 when the block was offered
 * to the table: not sampled out, not nested; 0 otherwise), and enter +
 * forget(ptr, 0) + leave.  NULL ptr: nothing. */
int mh_hooks_native_alloc(void *ptr, size_t size);
void mh_hooks_native_free(void *ptr);

/* Put back a trace that mh_hooks_native_forget removed, when the realloc
 * that was to replace the block failed.  Inside enter/leave. */
void mh_hooks_native_restore(const mh_trace_t *trace);

/* mh_hooks_native_forget for the old block of a realloc: the same, but
 * when a thread without the GIL reallocs a block waiting in a nursery
 * (hooks_nursery.c), which it can't take out itself, returns
 * MH_HOOKS_NOTED with the block noted for the GIL side; the caller then
 * reallocs (memhound's lock is not held: the allocator below may block, or
 * be another tool's hook that waits for the GIL) and calls
 * mh_hooks_native_settle(ptr, freed), freed = 0 when the old block is
 * still there (a failed realloc keeps it).  The note is then taken back
 * and the block stays traced, unless a GIL holder applied the note during
 * the realloc: then the block is no longer traced, counted in
 * dropped_blocks.  Inside enter/leave.  Can't fail. */
#define MH_HOOKS_NOTED 2
int mh_hooks_native_forget_old(uintptr_t ptr, mh_trace_t *removed);
void mh_hooks_native_settle(uintptr_t ptr, int freed);

#endif /* MH_HOOKS_H */
