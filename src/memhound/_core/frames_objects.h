/* frames_objects.h: object layout answers of the frames interface
 * (mh_frames_preheader_size, mh_frames_int_sizeof) for CPython 3.12 on,
 * where a type's pre-header is _PyType_PreHeaderSize() and an int's digit
 * count sits in lv_tag.  Written once for frames_312.c and frames_313.c,
 * which include it after CPython's internal headers; included by those
 * files only.
 */
#ifndef MH_FRAMES_OBJECTS_H
#define MH_FRAMES_OBJECTS_H

#include <stddef.h>

size_t
mh_frames_preheader_size(PyTypeObject *tp)
{
    /* GC links and, for types with managed dicts/weakrefs, two more
     * pointers sit before the object. */
    return _PyType_PreHeaderSize(tp);
}

uint64_t
mh_frames_int_sizeof(PyObject *obj)
{
    /* The digit count is in lv_tag above the sign bits; int.__sizeof__
     * counts at least one digit, as one is always allocated. */
    uintptr_t digits =
        ((PyLongObject *)obj)->long_value.lv_tag >> _PyLong_NON_SIZE_BITS;
    return offsetof(PyLongObject, long_value.ob_digit) +
           (uint64_t)(digits > 1 ? digits : 1) * sizeof(digit);
}

#endif /* MH_FRAMES_OBJECTS_H */
