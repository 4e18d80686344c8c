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
