/* heap_binding.h: the heap-graph functions of memhound._core
 * (heap_binding.c), which module.c adds to the module at exec time.
 */
#ifndef MH_HEAP_BINDING_H
#define MH_HEAP_BINDING_H

#include <Python.h>

/* NULL-terminated method table for PyModule_AddFunctions(). */
extern PyMethodDef mh_heap_methods[];

#endif /* MH_HEAP_BINDING_H */
