/* leaks_binding.h: the leak-analysis functions of memhound._core, defined
 * in leaks_binding.c and registered in module.c's method table.  All need
 * the GIL; each returns a new reference or NULL with an exception set.
 *
 *   gens_restart(iteration=-1)   start a new history: live blocks become
 *                                generation 0
 *   gens_checkpoint(iteration=-1, scan=True) -> (generation, seconds)
 *                                begin the next generation; with scan, record
 *                                every site's live size (O(live blocks))
 *   gens_info() -> dict | None   where the history stands
 *   gens_analyze(iteration=-1, min_confidence=0.5, min_generations=3,
 *                max_leaks=50, largest=10) -> dict
 *                                the verdicts (see memhound/leaks.py); with
 *                                native stacks recorded, native sites carry
 *                                "native_stack": (blocks, bytes, frames)
 */
#ifndef MH_LEAKS_BINDING_H
#define MH_LEAKS_BINDING_H

#include <Python.h>

PyObject *mh_binding_gens_restart(PyObject *module, PyObject *args,
                                  PyObject *kwargs);
PyObject *mh_binding_gens_checkpoint(PyObject *module, PyObject *args,
                                     PyObject *kwargs);
PyObject *mh_binding_gens_info(PyObject *module, PyObject *unused);
PyObject *mh_binding_gens_analyze(PyObject *module, PyObject *args,
                                  PyObject *kwargs);

/* [{"filename", "lineno", "function"}, ...] innermost first, for a
 * traceback index of the current store.  New reference, or NULL with an
 * exception set (RuntimeError when not tracing, ValueError for an unknown
 * index). */
PyObject *mh_binding_traceback_frames_new(uint32_t tb);

#endif /* MH_LEAKS_BINDING_H */
