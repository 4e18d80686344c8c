/* frames_locals.h: naming the variable of an interpreter frame that holds
 * an object (mh_frames_local_name, mh_frames_generator_local_name), written
 * once for frames_311.c, frames_312.c and frames_313.c, which include this
 * after defining, for their CPython version, static inline
 * frame_code(f): the code object of _PyInterpreterFrame f, or NULL.
 * Included by those files only.
 */
#ifndef MH_FRAMES_LOCALS_H
#define MH_FRAMES_LOCALS_H

/* The name of the variable of interpreter frame f that holds value. */
static PyObject *
local_name(_PyInterpreterFrame *f, PyObject *value)
{
    PyCodeObject *code = f == NULL ? NULL : frame_code(f);
    if (code == NULL) {
        return NULL;
    }
    /* localsplus: locals, then cells and free variables (as cells once
     * the frame started), named by co_localsplusnames. */
    for (int i = 0; i < code->co_nlocalsplus; i++) {
        PyObject *slot = f->localsplus[i];
        if (slot == NULL || (slot != value && !(PyCell_Check(slot) &&
                                                PyCell_GET(slot) == value))) {
            continue;
        }
        return Py_NewRef(PyTuple_GET_ITEM(code->co_localsplusnames, i));
    }
    return NULL;
}

PyObject *
mh_frames_local_name(PyObject *frame, PyObject *value)
{
    return local_name(((PyFrameObject *)frame)->f_frame, value);
}

PyObject *
mh_frames_generator_local_name(PyObject *gen, PyObject *value)
{
    /* A finished generator's frame was cleared: its slots are stale. */
    PyGenObject *g = (PyGenObject *)gen;
    if (g->gi_frame_state >= FRAME_COMPLETED) {
        return NULL;
    }
    return local_name((_PyInterpreterFrame *)g->gi_iframe, value);
}

#endif /* MH_FRAMES_LOCALS_H */
