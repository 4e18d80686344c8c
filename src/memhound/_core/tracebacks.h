/* tracebacks.h: the traceback store, where captured tracebacks are interned.
 *
 * A traceback is kept once, however many blocks were allocated under it:
 * blocks refer to it by a 32-bit index.  Frames are interned too, as
 * (code object, instruction offset) pairs; line numbers are computed only
 * when a snapshot asks (and then cached per frame).  The store holds one
 * strong reference to every code object it has seen, so a code object's
 * address can never be reused by another while a traceback names it.
 *
 * Protected by the main interpreter's GIL: every function needs it, even on
 * the hook path (hooks.c interns only from threads holding it).  Bookkeeping
 * memory comes from rawmem.h; nothing here calls the hooked allocators or
 * raises.  Index 0 is always the empty traceback.
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

typedef struct {
    PyCodeObject *code; /* strong reference, owned by the store */
    uint32_t offset;    /* instruction byte offset */
    uint32_t next;      /* next frame with the same hash, or MH_TB_NONE */
    int32_t lineno;     /* cached line number, -1 until computed */
} mh_tbframe_t;

typedef struct {
    uint64_t hash;
    uint32_t first;        /* index of the innermost frame id */
    uint32_t next;         /* next traceback with the same hash */
    uint16_t nframe;       /* frames stored */
    uint16_t total_nframe; /* stack depth when captured (saturating) */
} mh_tbrecord_t;

typedef struct mh_tbstore mh_tbstore_t;

/* A new store holding only the empty traceback.  NULL when out of memory
 * (no exception set). */
mh_tbstore_t *mh_tbstore_new(void);

/* Release the store and its references to code objects.  GIL held.  NULL
 * is allowed. */
void mh_tbstore_free(mh_tbstore_t *store);

/* The index of the traceback made of frames[0..n) (innermost first) with
 * total_nframe `total`, adding it if new (and taking references to new code
 * objects).  n == 0 gives 0.  Returns MH_TB_NONE when out of memory or when
 * the store is full (MH_TB_LIMIT).  GIL held.  Never raises. */
uint32_t mh_tbstore_intern(mh_tbstore_t *store, const mh_raw_frame_t *frames,
                           int n, uint32_t total);

/* Number of tracebacks, of frames, and bytes held.  Can't fail. */
size_t mh_tbstore_count(const mh_tbstore_t *store);
size_t mh_tbstore_frame_count(const mh_tbstore_t *store);
size_t mh_tbstore_memory(const mh_tbstore_t *store);

/* Borrowed views for snapshot building, valid until the next intern.
 * Indices must be below the counts above.  GIL held.  Can't fail. */
const mh_tbrecord_t *mh_tbstore_traceback(const mh_tbstore_t *store,
                                          uint32_t index);
const uint32_t *mh_tbstore_frame_ids(const mh_tbstore_t *store,
                                     const mh_tbrecord_t *record);
mh_tbframe_t *mh_tbstore_frame(mh_tbstore_t *store, uint32_t index);

#endif /* MH_TRACEBACKS_H */
