/* nativestack_binding.c: native call stacks as Python data (see
 * nativestack_binding.h).  Symbols come from nativestack.c's dladdr
 * lookup; the strings are copied at once (the loader owns them).  GIL
 * held; no state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "nativestack.h"
#include "nativestack_binding.h"

/* One native frame as (library, function or None, offset, pc). */
static PyObject *
native_frame_new(uintptr_t pc)
{
    const char *library = NULL, *function = NULL;
    uintptr_t offset = 0;
    if (!mh_nstack_symbolize(pc, &library, &function, &offset)) {
        return Py_BuildValue("(OOKK)", Py_None, Py_None,
                             (unsigned long long)pc, (unsigned long long)pc);
    }
    PyObject *lib = PyUnicode_DecodeFSDefault(library);
    if (lib == NULL) {
        return NULL;
    }
    PyObject *fn = function != NULL
                       ? PyUnicode_DecodeUTF8(function, strlen(function),
                                              "surrogateescape")
                       : Py_NewRef(Py_None);
    if (fn == NULL) {
        Py_DECREF(lib);
        return NULL;
    }
    return Py_BuildValue("(NNKK)", lib, fn, (unsigned long long)offset,
                         (unsigned long long)pc);
}

PyObject *
mh_binding_native_frames_new(const uintptr_t *pcs, int depth)
{
    PyObject *frames = PyTuple_New(depth);
    if (frames == NULL) {
        return NULL;
    }
    for (int k = 0; k < depth; k++) {
        PyObject *frame = native_frame_new(pcs[k]);
        if (frame == NULL) {
            Py_DECREF(frames);
            return NULL;
        }
        PyTuple_SET_ITEM(frames, k, frame);
    }
    return frames;
}
