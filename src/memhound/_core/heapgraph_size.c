/* heapgraph_size.c: per-type size recipes and the __sizeof__ call for
 * the types that need one (heapgraph_size.h). */
#include "heapgraph_size.h"

void
mh_heapgraph_size_recipe(PyTypeObject *tp, mh_size_recipe_t *recipe)
{
    recipe->pre = (uint32_t)mh_frames_preheader_size(tp);
    recipe->base = (uint64_t)tp->tp_basicsize;
    recipe->item = (uint64_t)tp->tp_itemsize;
    if (tp == &PyUnicode_Type) {
        recipe->kind = MH_SIZE_STR;
    }
    else if (tp == &PyList_Type) {
        recipe->kind = MH_SIZE_LIST;
    }
    else if (PyType_FastSubclass(tp, Py_TPFLAGS_LONG_SUBCLASS)) {
        /* int, bool and int's subclasses all use int.__sizeof__ unless a
         * class overrides it, which would be a user's code. */
        recipe->kind = MH_SIZE_INT;
    }
    else if (tp == &PyTuple_Type || tp == &PyBytes_Type) {
        recipe->kind = MH_SIZE_ITEMS;
    }
    else if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) &&
             (tp->tp_itemsize > 0 || tp == &PyDict_Type || tp == &PySet_Type ||
              tp == &PyFrozenSet_Type || tp == &PyByteArray_Type)) {
        /* Builtin types whose size is not basicsize, or whose ob_size is
         * not an item count (generators, code objects, ...): their own
         * __sizeof__, which is C code, not a user's. */
        recipe->kind = MH_SIZE_CALL;
    }
    else if (tp->tp_itemsize > 0) {
        /* A class derived from a variable-size builtin (tuple, bytes). */
        recipe->kind = MH_SIZE_ITEMS;
    }
    else {
        recipe->kind = MH_SIZE_FIXED;
    }
}

/* The type's own __sizeof__ (a builtin's C method), called with obj; the
 * recipe's basicsize when that fails. */
static uint64_t
sizeof_method(const mh_size_recipe_t *recipe, PyObject *obj)
{
    /* No attribute lookup on obj, which for a class would go through its
     * MRO and could reach a user's descriptor. */
    static PyObject *name;
    if (name == NULL) {
        name = PyUnicode_InternFromString("__sizeof__");
        if (name == NULL) {
            PyErr_Clear();
            return recipe->base;
        }
    }
    PyObject *method = _PyType_Lookup(Py_TYPE(obj), name); /* borrowed */
    if (method == NULL) {
        return recipe->base;
    }
    /* The call allocates: no collection (finalizers, gc.callbacks: user
     * code) may run in the middle of an analysis, whoever calls. */
    Py_INCREF(method);
    int gc_was_enabled = PyGC_Disable();
    PyObject *r = PyObject_CallOneArg(method, obj);
    if (gc_was_enabled) {
        PyGC_Enable();
    }
    Py_DECREF(method);
    if (r == NULL) {
        PyErr_Clear();
        return recipe->base;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(r);
    Py_DECREF(r);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return recipe->base;
    }
    return v;
}

uint64_t
mh_heapgraph_sizeof_by(const mh_size_recipe_t *recipe, PyObject *obj)
{
    uint64_t size = mh_heapgraph_size_apply(recipe, obj);
    return size != 0 ? size : sizeof_method(recipe, obj) + recipe->pre;
}

uint64_t
mh_heapgraph_sizeof(PyObject *obj)
{
    mh_size_recipe_t recipe;
    mh_heapgraph_size_recipe(Py_TYPE(obj), &recipe);
    return mh_heapgraph_sizeof_by(&recipe, obj);
}
