/* native.h: tracing of libc allocations made by extension modules and
 * shared libraries (issue 5), by patching their GOT entries.
 *
 * Process-wide, like the PEP 445 hooks.  The patched wrappers record into
 * hooks.c's raw-domain table with domain MH_DOMAIN_NATIVE (see
 * mh_hooks_native_*); this file owns which entries are patched and puts
 * them back.  What it does not catch is in docs/native.md.
 */
#ifndef MH_NATIVE_H
#define MH_NATIVE_H

#include <Python.h>
#include <stdint.h>

typedef struct {
    int active;             /* entries are patched */
    uint64_t patched_slots; /* GOT entries pointing at a wrapper */
    uint64_t failed_slots;  /* entries that could not be made writable */
    uint64_t rescans;       /* objects rescanned after a dlopen */
} mh_native_status_t;

/* Patch the hooked entries of every loaded object and let the wrappers
 * record (hooks.c must be tracing for anything to be recorded).  Does
 * nothing when already started.  Entries that can't be patched are
 * counted in failed_slots.  GIL held.  Can't fail. */
void mh_native_start(void);

/* Make the wrappers pass through and put every patched entry of a still
 * loaded object back.  Does nothing when not started.  GIL held.  Can't
 * fail.  A thread already inside a wrapper finishes safely: the wrappers
 * stay in memory (extension modules are never unloaded). */
void mh_native_stop(void);

/* Current state.  Any thread.  Can't fail. */
void mh_native_status(mh_native_status_t *out);

/* Called once at module import: registers the fork handlers of the patch
 * lock.  Returns 0, or -1 when they can't be registered (no exception
 * set). */
int mh_native_init_process(void);

#endif /* MH_NATIVE_H */
