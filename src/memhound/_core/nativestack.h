/* nativestack.h: the native (C) call stacks of native blocks, optional
 * (start(native_stack=True); issue 5).
 *
 * Return addresses are captured at allocation time with glibc's
 * backtrace() (unwind tables, so libraries built without frame pointers
 * work too) and interned; a side table maps each live native block to its
 * stack, so the 16-byte slots of the main live table stay as they are.
 * Symbols (function, library, offset via dladdr) are looked up only when
 * a report asks.  Python-free; every function but mh_nstack_start/stop
 * runs on any thread, with or without the GIL, under the store's own spin
 * lock, and never calls the intercepted allocators.
 */
#ifndef MH_NATIVESTACK_H
#define MH_NATIVESTACK_H

#include <stddef.h>
#include <stdint.h>

/* Frames kept per native stack (innermost first, memhound's own frames
 * dropped). */
#define MH_NSTACK_DEPTH 32

/* Start recording stacks: makes backtrace() ready outside any hook (its
 * first call loads libgcc_s, which allocates) and creates the store.
 * Returns 0, or -1 when out of memory.  Called with the GIL, before the
 * wrappers are enabled. */
int mh_nstack_start(void);

/* Stop recording and free everything.  GIL held, wrappers passing
 * through already.  Can't fail. */
void mh_nstack_stop(void);

/* 1 while stacks are recorded.  Any thread.  Can't fail. */
int mh_nstack_enabled(void);

/* Capture the calling thread's stack and remember it for the block ptr of
 * size bytes (which the live table just recorded).  skip: innermost frames
 * to drop (the wrappers').  Drops the stack silently (counted) when out of
 * memory.  Reentrant calls on the same thread do nothing.  Can't fail. */
void mh_nstack_record(uintptr_t ptr, uint64_t size, int skip);

/* Forget ptr's stack (a free).  Can't fail. */
void mh_nstack_forget(uintptr_t ptr);

/* One stack with the live native blocks that share it. */
typedef struct {
    uintptr_t pcs[MH_NSTACK_DEPTH];
    int depth;
    uint64_t size;  /* live bytes */
    uint64_t count; /* live blocks */
} mh_nstack_group_t;

/* Live blocks grouped by stack, largest first: *out (owned by the caller,
 * free with mh_nstack_groups_free) gets *n groups, at most max.  keep(ptr,
 * arg), if not NULL, says whether a block is still traced (the main table
 * is the reference).  Returns 0, or -1 when out of memory.  Takes the
 * store's lock; keep must not take it. */
int mh_nstack_groups(mh_nstack_group_t **out, size_t *n, size_t max,
                     int (*keep)(uintptr_t ptr, void *arg), void *arg);
void mh_nstack_groups_free(mh_nstack_group_t *groups, size_t n);

/* The native stack most live blocks of one site share (a leak entry's
 * "native_frames"). */
typedef struct {
    uint32_t site;                  /* in: the caller's site key */
    uintptr_t pcs[MH_NSTACK_DEPTH]; /* out: innermost first */
    int depth;                      /* out */
    uint64_t blocks;                /* out: the site's blocks with this
                                       stack; 0 when none has a stack */
    uint64_t bytes;                 /* out: their bytes */
} mh_nstack_top_t;

/* For each of the n sites in tops[] (distinct site keys), the stack shared
 * by most of its live blocks (ties: more bytes), in one pass over the
 * stacks' side table: site_of(ptr, &site, arg) says which site a block
 * belongs to (0: none, e.g. no longer traced).  Returns 0, or -1 when out
 * of memory (tops[] then says nothing).  Takes the store's lock; site_of
 * must not take it.  Any thread. */
int mh_nstack_top_by_site(mh_nstack_top_t *tops, size_t n,
                          int (*site_of)(uintptr_t ptr, uint32_t *site,
                                         void *arg),
                          void *arg);

/* The library holding pc, the function (NULL when the dynamic symbol
 * table does not say) and pc's offset from the library's load address:
 * 1, or 0 when pc is in no loaded object.  The strings are the loader's,
 * valid while the library stays loaded: copy them at once.  pc is a
 * return address (the instruction after the call).  Any thread. */
int mh_nstack_symbolize(uintptr_t pc, const char **library,
                        const char **function, uintptr_t *offset);

/* Test support: the code range whose frames are dropped from the top of
 * stacks (mh_nstack_start sets memhound's own object).  Plain-C tests,
 * whose callers share an object with this file, set an empty range after
 * start.  Can't fail. */
void mh_nstack_set_own_range(uintptr_t lo, uintptr_t hi);

/* Stacks dropped for lack of memory.  Can't fail. */
uint64_t mh_nstack_dropped(void);

/* Fork handlers (native.c registers them). */
void mh_nstack_before_fork(void);
void mh_nstack_after_fork_parent(void);
void mh_nstack_after_fork_child(void);

#endif /* MH_NATIVESTACK_H */
