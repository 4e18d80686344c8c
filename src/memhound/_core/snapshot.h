/* snapshot.h: taking a snapshot of the live state.
 *
 * Turns the live table and the traceback store into a self-contained
 * mh_snapdata_t: only the tracebacks that live blocks use are copied, and
 * their frames are resolved to file, function and line (line numbers are
 * computed here, once per frame, and cached in the store).  GIL held.
 */
#ifndef MH_SNAPSHOT_H
#define MH_SNAPSHOT_H

#include <Python.h>

#include "snapdata.h"

/* A new snapshot of every traced block, or NULL with an exception set
 * (RuntimeError when not tracing, MemoryError).  The calling thread's own
 * allocations are not traced while it works. */
mh_snapdata_t *mh_snapshot_take(void);

/* Resolve one store traceback into a fresh snapshot holding just that
 * traceback (index 1) and no blocks: what get_object_traceback needs.
 * NULL with an exception set on failure. */
mh_snapdata_t *mh_snapshot_of_traceback(uint32_t store_traceback);

#endif /* MH_SNAPSHOT_H */
