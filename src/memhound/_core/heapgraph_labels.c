/* heapgraph_labels.c: naming one edge of a retention path as a user would
 * write it (`._store`, `['req-991']`, `[3]`, closure variable 'cache').
 *
 * Labels are computed lazily, only for the edges of a returned path, by
 * re-reading the holder's C representation; nothing here calls a user
 * __repr__, __eq__, __hash__, property or __getattr__.  GIL held.  Errors
 * are cleared: a label that cannot be computed becomes "referent".
 */
#include "heapgraph_query.h"

#include <frameobject.h> /* PyFrame_Check on 3.10 */

#include <structmember.h> /* PyMemberDef before 3.12 */

#include <stdio.h>
#include <string.h>

#include "frames.h"

/* PyMemberDef type codes of object members: T_OBJECT and T_OBJECT_EX
 * (_Py_T_OBJECT / Py_T_OBJECT_EX from 3.12): the same values in CPython
 * 3.10 to 3.13. */
#define MEMBER_T_OBJECT 6
#define MEMBER_T_OBJECT_EX 16

static void
copy_text(char *buf, size_t size, const char *text, Py_ssize_t len)
{
    if (size == 0) {
        return;
    }
    if (len < 0) {
        len = (Py_ssize_t)strlen(text);
    }
    if ((size_t)len < size) {
        memcpy(buf, text, (size_t)len);
        buf[len] = '\0';
        return;
    }
    /* Truncate on a UTF-8 character boundary and mark it. */
    size_t keep = size > 4 ? size - 4 : 0;
    while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) {
        keep--;
    }
    memcpy(buf, text, keep);
    memcpy(buf + keep, "...", size - keep > 3 ? 4 : size - keep);
    buf[size - 1] = '\0';
}

/* 1 when obj's builtin repr is safe and cheap to call: it runs no user
 * code (exact builtin types all the way down, bounded nesting). */
static int
repr_is_safe(PyObject *obj, int depth)
{
    if (obj == Py_None || PyBool_Check(obj) || PyUnicode_CheckExact(obj) ||
        PyBytes_CheckExact(obj) || PyFloat_CheckExact(obj)) {
        return 1;
    }
    if (PyLong_CheckExact(obj)) {
        /* Huge ints: the decimal conversion costs and may be refused. */
        int overflow = 0;
        (void)PyLong_AsLongLongAndOverflow(obj, &overflow);
        return overflow == 0;
    }
    if (PyTuple_CheckExact(obj) && depth < 3 && PyTuple_GET_SIZE(obj) <= 8) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(obj); i++) {
            if (!repr_is_safe(PyTuple_GET_ITEM(obj, i), depth + 1)) {
                return 0;
            }
        }
        return 1;
    }
    return 0;
}

void
mh_heapgraph_type_name(PyTypeObject *tp, char *buf, size_t size)
{
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        PyHeapTypeObject *ht = (PyHeapTypeObject *)tp;
        PyObject *module = NULL;
        if (tp->tp_dict != NULL && PyDict_Check(tp->tp_dict)) {
            /* A scan comparing exact str keys in C: a lookup could call
             * the __eq__ of a user's key object on a hash collision. */
            Py_ssize_t pos = 0;
            PyObject *key, *value;
            while (PyDict_Next(tp->tp_dict, &pos, &key, &value)) {
                if (PyUnicode_CheckExact(key) &&
                    PyUnicode_CompareWithASCIIString(key, "__module__") == 0) {
                    module = value;
                    break;
                }
            }
        }
        const char *q =
            ht->ht_qualname != NULL && PyUnicode_CheckExact(ht->ht_qualname)
                ? PyUnicode_AsUTF8(ht->ht_qualname)
                : NULL;
        const char *m = module != NULL && PyUnicode_CheckExact(module)
                            ? PyUnicode_AsUTF8(module)
                            : NULL;
        if (PyErr_Occurred()) {
            PyErr_Clear();
        }
        if (q != NULL && m != NULL && strcmp(m, "builtins") != 0) {
            snprintf(buf, size, "%s.%s", m, q);
            return;
        }
        if (q != NULL) {
            copy_text(buf, size, q, -1);
            return;
        }
    }
    copy_text(buf, size, tp->tp_name, -1);
}

void
mh_heapgraph_safe_repr(PyObject *obj, char *buf, size_t size)
{
    if (repr_is_safe(obj, 0)) {
        PyObject *r = PyObject_Repr(obj);
        if (r != NULL) {
            Py_ssize_t len;
            const char *s = PyUnicode_AsUTF8AndSize(r, &len);
            if (s != NULL) {
                copy_text(buf, size, s, len);
                Py_DECREF(r);
                return;
            }
            Py_DECREF(r);
        }
        PyErr_Clear();
    }
    char name[112];
    mh_heapgraph_type_name(Py_TYPE(obj), name, sizeof(name));
    snprintf(buf, size, "<%s object at %p>", name, (void *)obj);
}

/* 1 when s (UTF-8) is an ASCII Python identifier: `.name` is then how a
 * user writes the attribute. */
static int
is_identifier(PyObject *key)
{
    return PyUnicode_CheckExact(key) && PyUnicode_IS_ASCII(key) &&
           PyUnicode_IsIdentifier(key) == 1;
}

static int
label_dict(PyObject *dict, PyObject *child, mh_hg_edge_t *out)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    /* PyDict_Next reads the table: no __eq__ or __hash__ is called. */
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (value == child || key == child) {
            out->kind =
                value == child ? MH_HG_EDGE_DICT_VALUE : MH_HG_EDGE_DICT_KEY;
            out->ident = value == child && is_identifier(key);
            if (out->ident) {
                Py_ssize_t len;
                const char *s = PyUnicode_AsUTF8AndSize(key, &len);
                if (s != NULL) {
                    copy_text(out->text, sizeof(out->text), s, len);
                    return 1;
                }
                PyErr_Clear();
                out->ident = 0;
            }
            mh_heapgraph_safe_repr(key, out->text, sizeof(out->text));
            return 1;
        }
    }
    return 0;
}

/* Object members (PyMemberDef) of holder's type and its bases: __slots__
 * of Python classes, and e.g. a bound method's __self__ / __func__. */
static int
label_members(PyObject *holder, PyObject *child, mh_hg_edge_t *out)
{
    PyObject *mro = Py_TYPE(holder)->tp_mro;
    Py_ssize_t n =
        mro != NULL && PyTuple_Check(mro) ? PyTuple_GET_SIZE(mro) : 0;
    for (Py_ssize_t i = -1; i < n; i++) {
        PyTypeObject *tp =
            i < 0 ? Py_TYPE(holder) : (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (i >= 0 &&
            (!PyType_Check((PyObject *)tp) || tp == Py_TYPE(holder))) {
            continue;
        }
        for (PyMemberDef *m = tp->tp_members; m != NULL && m->name != NULL;
             m++) {
#ifdef Py_RELATIVE_OFFSET
            /* 3.12+: CPython makes offsets absolute when it creates the
             * type; one still relative is not an offset into holder. */
            if (m->flags & Py_RELATIVE_OFFSET) {
                continue;
            }
#endif
            if ((m->type != MEMBER_T_OBJECT &&
                 m->type != MEMBER_T_OBJECT_EX) ||
                m->offset <= 0 || m->offset > tp->tp_basicsize - 8) {
                continue;
            }
            PyObject *v = *(PyObject **)((char *)holder + m->offset);
            if (v == child) {
                out->kind = MH_HG_EDGE_ATTR;
                copy_text(out->text, sizeof(out->text), m->name, -1);
                return 1;
            }
        }
    }
    return 0;
}

static int
has_dict(PyTypeObject *tp)
{
#ifdef Py_TPFLAGS_MANAGED_DICT
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
        return 1;
    }
#endif
    return tp->tp_dictoffset != 0;
}

/* The instance's attributes: its __dict__ itself, or a value in it. */
static int
label_instance_dict(PyObject *holder, PyObject *child, mh_hg_edge_t *out)
{
    if (!has_dict(Py_TYPE(holder)) || PyType_Check(holder)) {
        return 0;
    }
    /* The generic getter reads the dict slot (materializing the dict of
     * inline attributes on 3.11+); it never calls user code. */
    PyObject *dict = PyObject_GenericGetDict(holder, NULL);
    if (dict == NULL) {
        PyErr_Clear();
        return 0;
    }
    int found = 0;
    if (dict == child) {
        out->kind = MH_HG_EDGE_OWN_DICT;
        copy_text(out->text, sizeof(out->text), "instance", -1);
        found = 1;
    }
    else if (PyDict_Check(dict) && label_dict(dict, child, out)) {
        if (out->kind == MH_HG_EDGE_DICT_VALUE) {
            /* Attribute values live inline: the edge skips the dict. */
            out->kind = MH_HG_EDGE_ATTR;
            if (!out->ident) {
                out->kind = MH_HG_EDGE_DICT_VALUE;
            }
        }
        found = 1;
    }
    Py_DECREF(dict);
    return found;
}

static int
label_closure(PyObject *grand, PyObject *holder, PyObject *child,
              mh_hg_edge_t *out)
{
    if (grand == NULL || !PyFunction_Check(grand) ||
        PyFunction_GET_CLOSURE(grand) != holder) {
        return 0;
    }
    PyObject *names =
        PyObject_GetAttrString(PyFunction_GET_CODE(grand), "co_freevars");
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(holder); i++) {
        if (PyTuple_GET_ITEM(holder, i) != child) {
            continue;
        }
        out->kind = MH_HG_EDGE_CLOSURE;
        out->index = i;
        if (names != NULL && PyTuple_Check(names) &&
            i < PyTuple_GET_SIZE(names) &&
            PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
            const char *s = PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, i));
            copy_text(out->text, sizeof(out->text), s ? s : "?", -1);
        }
        break;
    }
    Py_XDECREF(names);
    PyErr_Clear();
    return out->kind == MH_HG_EDGE_CLOSURE;
}

static int
label_frame(PyObject *holder, PyObject *child, mh_hg_edge_t *out)
{
    /* Frame objects of finished or suspended frames (a traceback's, a
     * generator's) hold their locals: "function()", then " variable" when
     * a variable of the frame holds child (its slots are read: f_locals
     * would make a dict, or on 3.13 a proxy). */
    PyCodeObject *code = PyFrame_GetCode((PyFrameObject *)holder);
    out->kind = MH_HG_EDGE_FRAME;
    if (code != NULL) {
        const char *s = PyUnicode_AsUTF8(code->co_name);
        PyObject *name = mh_frames_local_name(holder, child);
        const char *var = name == NULL ? NULL : PyUnicode_AsUTF8(name);
        snprintf(out->text, sizeof(out->text), "%s()%s%s", s ? s : "?",
                 var ? " " : "", var ? var : "");
        Py_XDECREF(name);
        Py_DECREF(code);
    }
    PyErr_Clear();
    return 1;
}

/* A variable of a running or suspended generator's (coroutine's) frame,
 * which 3.11+ embeds: "function() variable", as label_frame does. */
static int
label_generator(PyObject *holder, PyObject *child, mh_hg_edge_t *out)
{
    PyObject *var = mh_frames_generator_local_name(holder, child);
    if (var == NULL) {
        return 0;
    }
    PyObject *qualname = ((PyGenObject *)holder)->gi_qualname;
    const char *s =
        PyUnicode_Check(qualname) ? PyUnicode_AsUTF8(qualname) : NULL;
    const char *v = PyUnicode_AsUTF8(var);
    out->kind = MH_HG_EDGE_FRAME;
    snprintf(out->text, sizeof(out->text), "%s() %s", s ? s : "?",
             v ? v : "?");
    Py_DECREF(var);
    PyErr_Clear();
    return 1;
}

/* 1 when obj is a threading.local (_thread._local, a heap type of the
 * _thread module, named the same in 3.10-3.13). */
static int
is_thread_local(PyObject *obj)
{
    return obj != NULL && strcmp(Py_TYPE(obj)->tp_name, "_thread._local") == 0;
}

/* A threading.local keeps, in a dict of its own, one attribute dict per
 * thread, keyed by an object standing for the thread (a weak reference
 * to it before 3.13).  Both steps are plumbing: `local.name` is how a user
 * writes what the thread's dict holds. */
static int
label_thread_local(PyObject *grand, PyObject *holder, PyObject *child,
                   mh_hg_edge_t *out)
{
    if (is_thread_local(holder) && PyDict_CheckExact(child)) {
        out->kind = MH_HG_EDGE_OWN_DICT;
        copy_text(out->text, sizeof(out->text), "thread-local", -1);
        return 1;
    }
    if (is_thread_local(grand) && PyDict_CheckExact(holder) &&
        PyDict_CheckExact(child) && label_dict(holder, child, out) &&
        out->kind == MH_HG_EDGE_DICT_VALUE && !out->ident) {
        memset(out, 0, sizeof(*out));
        out->kind = MH_HG_EDGE_THREAD_DATA;
        return 1;
    }
    memset(out, 0, sizeof(*out));
    return 0;
}

/* Label the edge as attribute `name`; 0 (nothing labelled) when name is
 * NULL: the child is none of the holder's named fields. */
static int
label_attr(const char *name, mh_hg_edge_t *out)
{
    if (name == NULL) {
        return 0;
    }
    out->kind = MH_HG_EDGE_ATTR;
    copy_text(out->text, sizeof(out->text), name, -1);
    return 1;
}

/* An exception's own fields (getters, not PyMemberDef): its traceback,
 * context, cause and args. */
static int
label_exception(PyObject *holder, PyObject *child, mh_hg_edge_t *out)
{
    PyBaseExceptionObject *e = (PyBaseExceptionObject *)holder;
    return label_attr(child == e->traceback ? "__traceback__"
                      : child == e->context ? "__context__"
                      : child == e->cause   ? "__cause__"
                      : child == e->args    ? "args"
                                            : NULL,
                      out);
}

/* A traceback entry's next entry and frame. */
static int
label_traceback(PyObject *holder, PyObject *child, mh_hg_edge_t *out)
{
    PyTracebackObject *tb = (PyTracebackObject *)holder;
    return label_attr(child == (PyObject *)tb->tb_next    ? "tb_next"
                      : child == (PyObject *)tb->tb_frame ? "tb_frame"
                                                          : NULL,
                      out);
}

/* The edge from a builtin container, cell, type, module, function, frame,
 * generator, traceback or exception, read from its C fields. */
static int
label_builtin(PyObject *grand, PyObject *holder, PyObject *child,
              mh_hg_edge_t *out)
{
    int found = 0;
    if (PyDict_Check(holder)) {
        found = label_dict(holder, child, out);
    }
    else if (PyList_Check(holder) || PyTuple_Check(holder)) {
        found = label_closure(grand, holder, child, out);
        Py_ssize_t n = PySequence_Fast_GET_SIZE(holder);
        PyObject **items = PySequence_Fast_ITEMS(holder);
        for (Py_ssize_t i = 0; !found && i < n; i++) {
            if (items[i] == child) {
                out->kind = MH_HG_EDGE_INDEX;
                out->index = i;
                found = 1;
            }
        }
    }
    else if (PyAnySet_Check(holder)) {
        out->kind = MH_HG_EDGE_SET;
        mh_heapgraph_safe_repr(child, out->text, sizeof(out->text));
        found = 1;
    }
    else if (PyCell_Check(holder)) {
        out->kind = MH_HG_EDGE_CELL;
        found = PyCell_GET(holder) == child;
    }
    else if (PyType_Check(holder)) {
        PyTypeObject *tp = (PyTypeObject *)holder;
        if (tp->tp_dict == child) {
            out->kind = MH_HG_EDGE_OWN_DICT;
            copy_text(out->text, sizeof(out->text), "class", -1);
            found = 1;
        }
        else if (tp->tp_mro == child || tp->tp_bases == child) {
            out->kind = MH_HG_EDGE_ATTR;
            copy_text(out->text, sizeof(out->text),
                      tp->tp_mro == child ? "__mro__" : "__bases__", -1);
            found = 1;
        }
    }
    else if (PyModule_Check(holder)) {
        if (PyModule_GetDict(holder) == child) {
            out->kind = MH_HG_EDGE_OWN_DICT;
            copy_text(out->text, sizeof(out->text), "module", -1);
            found = 1;
        }
    }
    else if (PyFunction_Check(holder)) {
        if (PyFunction_GET_CLOSURE(holder) == child) {
            out->kind = MH_HG_EDGE_ATTR;
            copy_text(out->text, sizeof(out->text), "__closure__", -1);
            found = 1;
        }
        else if (PyFunction_GET_DEFAULTS(holder) == child) {
            out->kind = MH_HG_EDGE_ATTR;
            copy_text(out->text, sizeof(out->text), "__defaults__", -1);
            found = 1;
        }
    }
    else if (PyFrame_Check(holder)) {
        found = label_frame(holder, child, out);
    }
    else if (PyGen_Check(holder) || PyCoro_CheckExact(holder) ||
             PyAsyncGen_CheckExact(holder)) {
        found = label_generator(holder, child, out);
    }
    else if (PyTraceBack_Check(holder)) {
        found = label_traceback(holder, child, out);
    }
    else if (PyExceptionInstance_Check(holder)) {
        found = label_exception(holder, child, out);
    }
    return found;
}

void
mh_heapgraph_label(PyObject *grand, PyObject *holder, PyObject *child,
                   mh_hg_edge_t *out)
{
    memset(out, 0, sizeof(*out));
    int found = label_thread_local(grand, holder, child, out) ||
                label_builtin(grand, holder, child, out);
    if (!found) {
        memset(out, 0, sizeof(*out));
        found = label_members(holder, child, out) ||
                label_instance_dict(holder, child, out);
    }
    if (!found) {
        memset(out, 0, sizeof(*out));
        out->kind = MH_HG_EDGE_OTHER;
        mh_heapgraph_type_name(Py_TYPE(holder), out->text, sizeof(out->text));
    }
    if (PyErr_Occurred()) {
        PyErr_Clear();
    }
}
