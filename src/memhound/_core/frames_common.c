/* frames_common.c: the parts of frames.h that every supported CPython
 * shares.  Line numbers come from the public PyCode_Addr2Line(), which takes
 * the byte offset the version-specific readers record.  GIL held.
 */
#include "frames.h"

int
mh_frames_lineno(PyCodeObject *code, uint32_t offset)
{
    int lineno = PyCode_Addr2Line(code, (int)offset);
    if (PyErr_Occurred()) {
        PyErr_Clear();
    }
    return lineno < 0 ? 0 : lineno;
}

void *
mh_frames_object_block(PyObject *obj)
{
    return (char *)obj - mh_frames_preheader_size(Py_TYPE(obj));
}

#if PY_VERSION_HEX < 0x030D0000
/* Before 3.13 there is no hook on object creation: only the builtin
 * tracemalloc is told of free-list reuse.  3.13+ implements these in its
 * own frames file (PyRefTracer). */
int
mh_frames_watch_creations(void (*on_create)(PyObject *obj))
{
    (void)on_create;
    return 0;
}

void
mh_frames_unwatch_creations(void)
{
}
#endif
