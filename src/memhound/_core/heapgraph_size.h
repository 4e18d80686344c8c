/* heapgraph_size.h: the size of an object, as sys.getsizeof() reports it,
 * without running user code.
 *
 * How to size an object depends on its type only, so the type's answer is
 * worked out once (a recipe) and applied to each object: a census or a
 * graph build sizes millions of objects of a few dozen types.  Applying a
 * recipe reads the object and nothing else; types whose size only their
 * builtin __sizeof__ knows (dict, set, bytearray, code objects, ...) get
 * 0 from it, and mh_heapgraph_sizeof() then makes that call.
 */
#ifndef MEMHOUND_HEAPGRAPH_SIZE_H
#define MEMHOUND_HEAPGRAPH_SIZE_H

#include <Python.h>
#include <stdint.h>

#include "frames.h"

typedef enum {
    MH_SIZE_FIXED, /* the same for every object: base */
    MH_SIZE_ITEMS, /* base + |ob_size| * item (tuple, bytes, subclasses of
                      variable-size builtins) */
    MH_SIZE_LIST,  /* base + the item array's capacity */
    MH_SIZE_STR,   /* compact str: header + characters; else a call */
    MH_SIZE_INT,   /* int.__sizeof__, from the digits (per version) */
    MH_SIZE_CALL,  /* only the builtin __sizeof__ knows */
} mh_size_kind_t;

typedef struct {
    uint8_t kind;  /* mh_size_kind_t */
    uint32_t pre;  /* bytes before the object: GC links, managed dict */
    uint64_t base; /* tp_basicsize */
    uint64_t item; /* tp_itemsize */
} mh_size_recipe_t;

/* How objects of type tp are sized.  GIL held; can't fail. */
void mh_heapgraph_size_recipe(PyTypeObject *tp, mh_size_recipe_t *recipe);

/* The size of obj (whose type recipe was made for), pre-header included;
 * 0 when it needs a __sizeof__ call.  Reads obj only: allocates nothing,
 * never raises, safe inside a tp_traverse callback. */
static inline uint64_t
mh_heapgraph_size_apply(const mh_size_recipe_t *recipe, PyObject *obj)
{
    uint64_t size;
    switch ((mh_size_kind_t)recipe->kind) {
    case MH_SIZE_FIXED:
        size = recipe->base;
        break;
    case MH_SIZE_ITEMS: {
        /* ob_size counts items; bounded, as a subclass might store
         * anything there. */
        Py_ssize_t items = Py_SIZE(obj);
        if (items < 0) {
            items = -items;
        }
        if (items > (Py_ssize_t)1 << 32) {
            items = 0;
        }
        size = recipe->base + (uint64_t)items * recipe->item;
        break;
    }
    case MH_SIZE_LIST:
        size = recipe->base +
               (uint64_t)((PyListObject *)obj)->allocated * sizeof(void *);
        break;
    case MH_SIZE_STR:
        if (PyUnicode_IS_COMPACT_ASCII(obj)) {
            size = sizeof(PyASCIIObject) +
                   (uint64_t)PyUnicode_GET_LENGTH(obj) + 1;
        }
        else if (PyUnicode_IS_COMPACT(obj)) {
            size = sizeof(PyCompactUnicodeObject) +
                   ((uint64_t)PyUnicode_GET_LENGTH(obj) + 1) *
                       PyUnicode_KIND(obj);
        }
        else {
            return 0;
        }
        break;
    case MH_SIZE_INT:
        size = mh_frames_int_sizeof(obj);
        break;
    default:
        return 0;
    }
    return size + recipe->pre;
}

/* The memory of obj as sys.getsizeof() would report it without running
 * user code: __sizeof__ is called only for builtin types whose size only
 * it knows (dict, set, frozenset, bytearray, code, ...), never a class's
 * own; otherwise the recipe's answer.  The collector is paused during the
 * call.  Never raises. */
uint64_t mh_heapgraph_sizeof(PyObject *obj);

/* The same as mh_heapgraph_sizeof() for an object whose type's recipe is
 * at hand. */
uint64_t mh_heapgraph_sizeof_by(const mh_size_recipe_t *recipe, PyObject *obj);

#endif /* MEMHOUND_HEAPGRAPH_SIZE_H */
