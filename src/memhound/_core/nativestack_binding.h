/* nativestack_binding.h: native stacks (nativestack.h) as Python data, for
 * module.c's native_stacks() and leaks_binding.c's leak entries.  GIL
 * held; returns a new reference or NULL with an exception set.
 */
#ifndef MH_NATIVESTACK_BINDING_H
#define MH_NATIVESTACK_BINDING_H

#include <Python.h>
#include <stdint.h>

/* ((library, function or None, offset, pc), ...) for depth return
 * addresses, innermost first, symbolized now with dladdr (library None
 * and offset pc when pc is in no loaded object).  memhound.__init__ and
 * memhound.leaks shape the tuples into report frames. */
PyObject *mh_binding_native_frames_new(const uintptr_t *pcs, int depth);

#endif /* MH_NATIVESTACK_BINDING_H */
