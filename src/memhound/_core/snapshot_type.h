/* snapshot_type.h: the Snapshot type of memhound._core, shared by the
 * binding files (module.c, snapshot_type.c, snapshot_from_traces.c).
 *
 * A Snapshot owns one mh_snapdata_t and caches the Python objects (strings,
 * frame tuples, traceback tuples) made from it, so that results built from
 * the same snapshot share them.  GIL held for everything here.
 */
#ifndef MH_SNAPSHOT_TYPE_H
#define MH_SNAPSHOT_TYPE_H

#include <Python.h>

#include "snapdata.h"

typedef struct {
    PyObject_HEAD
    mh_snapdata_t *data;
    PyObject **strings;    /* str per string index, made on demand */
    PyObject **frames;     /* (filename, lineno, function) per frame */
    PyObject **tracebacks; /* tuple of frame tuples per traceback */
    int dumping;           /* dump() calls reading data without the GIL:
                              the _attributes setter refuses meanwhile */
} mh_snapshot_object_t;

/* The spec module.c creates the type from (PyType_FromModuleAndSpec). */
extern PyType_Spec mh_snapshot_spec;

/* A new Snapshot of `type` owning data (stolen: freed on failure too).
 * NULL with an exception set on failure. */
PyObject *mh_snapshot_wrap_steal(PyTypeObject *type, mh_snapdata_t *data);

/* (frames, total_nframe) for traceback index t of self: a new reference,
 * or NULL with IndexError/MemoryError set. */
PyObject *mh_snapshot_traceback_new(mh_snapshot_object_t *self, uint32_t t);

/* Snapshot._from_traces(traces, traceback_limit, domains=None), a class
 * method (snapshot_from_traces.c). */
PyObject *mh_snapshot_from_traces(PyTypeObject *type, PyObject *args,
                                  PyObject *kwargs);

#endif /* MH_SNAPSHOT_TYPE_H */
