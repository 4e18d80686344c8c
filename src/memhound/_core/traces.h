/* traces.h: the live-block table, one entry per traced block.
 *
 * Maps a block's address to its size, traceback index, generation and
 * domain.  Built for tens of millions of blocks: entries are stored inline
 * (no allocation per entry), compactly (16 bytes per slot), and the table
 * grows incrementally (a few slots move on every insert and remove while a
 * resize is under way) so no single call pauses to rehash everything.
 *
 * Python-free.  Not thread-safe: hooks.c serializes every call with its
 * table lock.  Memory comes from rawmem.h.  No function here calls the
 * allocators memhound hooks.
 */
#ifndef MH_TRACES_H
#define MH_TRACES_H

#include <stddef.h>
#include <stdint.h>

#include "snapdata.h"

/* One block, unpacked.  The table packs it; callers only see this view. */
typedef struct {
    uintptr_t ptr;       /* block address, never 0 */
    uint64_t size;       /* any size_t value is representable */
    uint32_t traceback;  /* index into the traceback store */
    uint16_t generation; /* generation the block was allocated in */
    uint8_t domain;      /* mh_domain_t */
} mh_trace_t;

typedef struct mh_traces mh_traces_t;

/* A new empty table.  Returns NULL when out of memory.  Never raises. */
mh_traces_t *mh_traces_new(void);

/* Free the table and its storage.  NULL is allowed.  Can't fail. */
void mh_traces_free(mh_traces_t *traces);

/* Insert trace, replacing any entry with the same ptr (a block freed
 * behind memhound's back and handed out again).  Returns 0 when inserted,
 * 1 when it replaced an entry (copied to *replaced, if not NULL), or -1
 * when out of memory: the table is unchanged and the caller counts a drop.
 * Addresses at or above 2^48 (impossible for user space on x86-64 Linux
 * with 4-level paging and glibc) are refused with -1 too, and so are
 * ptr 0, traceback indices at or above 2^30 and domains above 3 (the slot
 * packs traceback and domain into 32 bits).  Never allocates per entry:
 * it allocates only to grow the table, or the small side table that holds
 * sizes >= 2^32 - 1. */
int mh_traces_insert(mh_traces_t *traces, const mh_trace_t *trace,
                     mh_trace_t *replaced);

/* Remove the entry for ptr.  Returns 1 and copies it to *removed (if not
 * NULL) when found, 0 when ptr was not traced.  Can't fail (it may move
 * resize work forward, which never allocates). */
int mh_traces_remove(mh_traces_t *traces, uintptr_t ptr, mh_trace_t *removed);

/* Look up ptr.  Returns 1 and copies the entry to *out when found, else 0.
 * Does not modify the table.  Can't fail. */
int mh_traces_get(const mh_traces_t *traces, uintptr_t ptr, mh_trace_t *out);

/* Number of entries.  Can't fail. */
size_t mh_traces_count(const mh_traces_t *traces);

/* Bytes of memory the table holds (slots of both halves during a resize,
 * plus side storage for huge sizes).  Can't fail. */
size_t mh_traces_memory(const mh_traces_t *traces);

/* Remove every entry, keeping the table usable.  May release storage.
 * Can't fail. */
void mh_traces_clear(mh_traces_t *traces);

/* Copy every entry into out[0..count) as snapshot blocks (size, traceback,
 * generation, domain; flags 0), in table order.  cap must be at least
 * mh_traces_count(); returns the number written.  Can't fail. */
size_t mh_traces_export(const mh_traces_t *traces, mh_snap_block_t *out,
                        size_t cap);

/* Call visit(trace, arg) for every entry; stops early and returns the
 * callback's value when it returns non-zero, else returns 0.  visit must
 * not modify the table. */
int mh_traces_foreach(const mh_traces_t *traces,
                      int (*visit)(const mh_trace_t *trace, void *arg),
                      void *arg);

/* Stamp every entry with `generation` (the leak analysis restarts its
 * generations: what was alive before counts as generation 0).  Can't
 * fail; does not allocate. */
void mh_traces_restamp(mh_traces_t *traces, uint16_t generation);

#endif /* MH_TRACES_H */
