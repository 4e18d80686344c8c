/* gcchurn_binding.h: the Python face of cycle churn (gcchurn.h): the two
 * gc.callbacks entries that mark collections ("stop" first, "start" last),
 * their life cycle, and the functions module.c adds to memhound._core:
 *
 *   gc_churn(limit=10, min_objects=1) -> dict
 *       {"enabled", "elapsed", "generation", "totals": {..., "misplaced"},
 *        "sites": [{"site", "traceback", "objects", "blocks", "bytes",
 *                   "collections", "generations",
 *                   "objects_by_gc_generation"}, ...]}  most objects first
 *   _gc_churn_hold(on)  memhound's own gc.collect() calls are not counted:
 *                       the callbacks leave gc.callbacks while held
 *
 * Everything here needs the GIL.
 */
#ifndef MH_GCCHURN_BINDING_H
#define MH_GCCHURN_BINDING_H

#include <Python.h>

/* NULL-terminated method table for PyModule_AddFunctions(). */
extern PyMethodDef mh_gcchurn_methods[];

/* Tracing (re)started.  python: the PEP 445 hooks are on (else churn is
 * turned off: nothing would be counted).  keep: the traceback store and
 * sampling are unchanged, so the counts so far stay valid; otherwise they
 * are reset.  Registers the gc callbacks.  Returns 0, or -1 with an
 * exception set (churn is then off). */
int mh_gcchurn_binding_start(int python, int keep);

/* Tracing stops: unregister the callbacks and free the counts.  Can't fail
 * (an error from gc.callbacks is reported as unraisable). */
void mh_gcchurn_binding_stop(void);

/* Forget the counts and restart the clock (a new analysis began, or the
 * traceback store was replaced).  Can't fail. */
void mh_gcchurn_binding_reset(void);

#endif /* MH_GCCHURN_BINDING_H */
