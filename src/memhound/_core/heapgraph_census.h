/* heapgraph_census.h: counting objects by type (heapgraph_census.c).
 *
 * A census counts every object the collector tracks and every untracked
 * object reachable from them (each once; untracked containers, dicts and
 * tuples of atoms, are walked too), so that ints, floats and strings held
 * in containers are counted.  It walks the collector's lists in place and
 * tp_traverse once per object, but builds no graph and no list.  GIL held;
 * runs no user code; memory from rawmem.h.
 */
#ifndef MH_HEAPGRAPH_CENSUS_H
#define MH_HEAPGRAPH_CENSUS_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    PyTypeObject *type; /* borrowed: valid while the objects are alive */
    uint64_t count;
    uint64_t bytes; /* mh_heapgraph_sizeof() summed */
} mh_census_row_t;

/* Count the objects in the collector's lists (what gc.get_objects() would
 * list; objects in skip[0..nskip) are left out) and the untracked objects
 * they reference.  *rows receives a new array of *nrows rows, one per type
 * (free with mh_rawmem_free(*rows, *nrows * sizeof(mh_census_row_t))).
 * The caller must keep the collector from running (PyGC_Disable) until
 * the rows are used: sizes may call builtin __sizeof__ methods, after the
 * walk.  Returns 0 or -1 when out of memory (no exception set). */
int mh_census_take(PyObject *const *skip, int nskip, mh_census_row_t **rows,
                   size_t *nrows);

#endif /* MH_HEAPGRAPH_CENSUS_H */
