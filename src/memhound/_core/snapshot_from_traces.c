/* snapshot_from_traces.c: Snapshot._from_traces (binding code).
 *
 * What the tracemalloc facade needs for Snapshot(traces, traceback_limit):
 * a snapshot built from Python trace tuples.  Untrusted input: every item
 * is type-checked, and user code that runs during hashing or comparison
 * (keys of the dedup dicts) can't pull data from under the builder.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "rawmem.h"
#include "snapdata.h"
#include "snapshot_type.h"

/* ---- Snapshot._from_traces: a snapshot built from Python data ----------
 *
 * What the tracemalloc facade needs for Snapshot(traces, traceback_limit).
 * Strings, frames and tracebacks are deduplicated through dicts that live
 * only for the call; nothing here is on the tracing path.
 */
typedef struct {
    mh_snapdata_t *data;
    PyObject *strings;    /* str -> string index */
    PyObject *frames;     /* frame tuple -> frame index */
    PyObject *tracebacks; /* bytes(frame ids, total) -> traceback index */
    PyObject *domains;    /* list of domain labels (borrowed), or NULL */
    uint32_t *ids;        /* scratch: the frame ids of one traceback */
    size_t ids_cap;
} from_traces_t;

/* The index cached under key in dict, or -1 (no exception) when absent,
 * or -2 with an exception set. */
static int64_t
cached_index(PyObject *dict, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(dict, key);
    if (value == NULL) {
        return PyErr_Occurred() ? -2 : -1;
    }
    return (int64_t)PyLong_AsLongLong(value);
}

/* Remember index under key.  0, or -1 with an exception set. */
static int
cache_index(PyObject *dict, PyObject *key, int64_t index)
{
    PyObject *value = PyLong_FromLongLong(index);
    if (value == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(dict, key, value);
    Py_DECREF(value);
    return rc;
}

/* The string index of str, or -1 with an exception set. */
static int64_t
from_traces_string(from_traces_t *b, PyObject *str)
{
    int64_t index = cached_index(b->strings, str);
    if (index != -1) {
        return index < 0 ? -1 : index;
    }
    /* surrogatepass: undecodable file names survive, as in snapshot.c. */
    PyObject *bytes = PyUnicode_AsEncodedString(str, "utf-8", "surrogatepass");
    if (bytes == NULL) {
        return -1;
    }
    index = mh_snapdata_add_string(b->data, PyBytes_AS_STRING(bytes),
                                   (size_t)PyBytes_GET_SIZE(bytes));
    Py_DECREF(bytes);
    if (index < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return cache_index(b->strings, str, index) < 0 ? -1 : index;
}

/* The frame index of a (filename, lineno[, function]) tuple, or -1 with an
 * exception set. */
static int64_t
from_traces_frame(from_traces_t *b, PyObject *frame)
{
    Py_ssize_t n = PyTuple_Check(frame) ? PyTuple_GET_SIZE(frame) : 0;
    if (n != 2 && n != 3) {
        PyErr_Format(PyExc_TypeError,
                     "a frame must be a (filename, lineno[, function]) "
                     "tuple, not %R",
                     frame);
        return -1;
    }
    PyObject *filename = PyTuple_GET_ITEM(frame, 0);
    PyObject *lineno_obj = PyTuple_GET_ITEM(frame, 1);
    PyObject *function = n == 3 ? PyTuple_GET_ITEM(frame, 2) : NULL;
    if (!PyUnicode_Check(filename) || !PyLong_Check(lineno_obj) ||
        (function != NULL && !PyUnicode_Check(function))) {
        PyErr_Format(PyExc_TypeError,
                     "a frame must be a (str, int[, str]) tuple, not %R",
                     frame);
        return -1;
    }
    int64_t index = cached_index(b->frames, frame);
    if (index != -1) {
        return index < 0 ? -1 : index;
    }
    int overflow;
    long long lineno = PyLong_AsLongLongAndOverflow(lineno_obj, &overflow);
    if (overflow || lineno < INT32_MIN || lineno > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "line number out of range in %R",
                     frame);
        return -1;
    }
    int64_t file_index = from_traces_string(b, filename);
    int64_t func_index = 0; /* "" */
    if (file_index < 0) {
        return -1;
    }
    if (function != NULL) {
        func_index = from_traces_string(b, function);
        if (func_index < 0) {
            return -1;
        }
    }
    index = mh_snapdata_add_frame(b->data, (uint32_t)file_index,
                                  (uint32_t)func_index, (int32_t)lineno);
    if (index < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return cache_index(b->frames, frame, index) < 0 ? -1 : index;
}

/* The traceback index of a sequence of frames (innermost first), or -1
 * with an exception set.  An empty sequence is traceback 0. */
static int64_t
from_traces_traceback(from_traces_t *b, PyObject *frames_obj,
                      PyObject *total_obj)
{
    int64_t index = -1;
    PyObject *key = NULL;
    /* A tuple, not PySequence_Fast's list: hashing a frame may run Python
     * code that changes a list under our feet. */
    if (!PySequence_Check(frames_obj)) {
        PyErr_Format(PyExc_TypeError,
                     "a traceback must be a sequence of frames, not %.100s",
                     Py_TYPE(frames_obj)->tp_name);
        return -1;
    }
    PyObject *frames = PySequence_Tuple(frames_obj);
    if (frames == NULL) {
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(frames);
    if (n > UINT16_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "a traceback holds at most %d frames, got %zd",
                     UINT16_MAX, n);
        goto done;
    }
    unsigned long long total = (unsigned long long)n;
    if (total_obj != Py_None) {
        total = PyLong_AsUnsignedLongLong(total_obj);
        if (total == (unsigned long long)-1 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Format(PyExc_ValueError,
                             "total_nframe must be a non-negative int, "
                             "not %R",
                             total_obj);
            }
            goto done;
        }
    }
    /* Saturate like the tracer does (snapdata.h). */
    uint16_t total16 = total > UINT16_MAX ? UINT16_MAX : (uint16_t)total;
    if (n == 0) {
        index = 0;
        goto done;
    }
    if (mh_rawmem_reserve((void **)&b->ids, &b->ids_cap, (size_t)n + 1,
                          sizeof(uint32_t)) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t f = from_traces_frame(b, PyTuple_GET_ITEM(frames, i));
        if (f < 0) {
            goto done;
        }
        b->ids[i] = (uint32_t)f;
    }
    b->ids[n] = total16;
    key = PyBytes_FromStringAndSize((const char *)b->ids,
                                    (n + 1) * (Py_ssize_t)sizeof(uint32_t));
    if (key == NULL) {
        goto done;
    }
    index = cached_index(b->tracebacks, key);
    if (index != -1) {
        index = index < 0 ? -1 : index;
        goto done;
    }
    index = mh_snapdata_add_traceback(b->data, b->ids, (uint16_t)n, total16);
    if (index < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (cache_index(b->tracebacks, key, index) < 0) {
        index = -1;
    }
done:
    Py_XDECREF(key);
    Py_DECREF(frames);
    return index;
}

/* The memhound domain code of a trace's domain, or -1 with an exception
 * set.  Without a label list the domain must be a memhound domain; with
 * one, each distinct label gets the next code (see _from_traces). */
static int
from_traces_domain(from_traces_t *b, PyObject *domain)
{
    if (!PyLong_Check(domain)) {
        PyErr_Format(PyExc_TypeError, "a domain must be an int, not %.100s",
                     Py_TYPE(domain)->tp_name);
        return -1;
    }
    if (b->domains == NULL) {
        int overflow;
        long code = PyLong_AsLongAndOverflow(domain, &overflow);
        if (!overflow && code >= 0 && code < MH_DOMAIN_COUNT) {
            return (int)code;
        }
        PyErr_Format(PyExc_ValueError,
                     "unknown domain %R (memhound domains are 0 to %d)",
                     domain, MH_DOMAIN_COUNT - 1);
        return -1;
    }
    /* The list is re-read every time round: __eq__ may change it. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(b->domains); i++) {
        PyObject *label = PyList_GET_ITEM(b->domains, i);
        Py_INCREF(label);
        int eq = PyObject_RichCompareBool(label, domain, Py_EQ);
        Py_DECREF(label);
        if (eq != 0) {
            return eq < 0 ? -1 : (int)i;
        }
    }
    Py_ssize_t n = PyList_GET_SIZE(b->domains);
    if (n >= MH_DOMAIN_COUNT) {
        PyErr_Format(PyExc_ValueError,
                     "a snapshot holds at most %d distinct domains",
                     MH_DOMAIN_COUNT);
        return -1;
    }
    return PyList_Append(b->domains, domain) < 0 ? -1 : (int)n;
}

/* Append one (domain, size, frames[, total_nframe]) tuple as a block.
 * 0, or -1 with an exception set. */
static int
from_traces_add(from_traces_t *b, PyObject *trace)
{
    Py_ssize_t n = PyTuple_Check(trace) ? PyTuple_GET_SIZE(trace) : 0;
    if (n != 3 && n != 4) {
        PyErr_Format(PyExc_TypeError,
                     "a trace must be a (domain, size, frames[, "
                     "total_nframe]) tuple, not %R",
                     trace);
        return -1;
    }
    mh_snap_block_t block = {0};
    int code = from_traces_domain(b, PyTuple_GET_ITEM(trace, 0));
    if (code < 0) {
        return -1;
    }
    block.domain = (uint8_t)code;
    PyObject *size = PyTuple_GET_ITEM(trace, 1);
    block.size = PyLong_AsUnsignedLongLong(size);
    if (block.size == (unsigned long long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Format(PyExc_ValueError,
                         "a trace size must be in [0; 2**64), not %R", size);
        }
        return -1;
    }
    PyObject *total = n == 4 ? PyTuple_GET_ITEM(trace, 3) : Py_None;
    int64_t tb = from_traces_traceback(b, PyTuple_GET_ITEM(trace, 2), total);
    if (tb < 0) {
        return -1;
    }
    block.traceback = (uint32_t)tb;
    if (mh_snapdata_add_block(b->data, &block) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

PyObject *
mh_snapshot_from_traces(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"traces", "traceback_limit", "domains", NULL};
    PyObject *traces;
    PyObject *limit_obj;
    PyObject *domains = Py_None;
    PyObject *iter = NULL;
    PyObject *result = NULL;
    from_traces_t b = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!|O:_from_traces",
                                     kwlist, &traces, &PyLong_Type, &limit_obj,
                                     &domains)) {
        return NULL;
    }
    unsigned long limit = PyLong_AsUnsignedLong(limit_obj);
    if ((limit == (unsigned long)-1 && PyErr_Occurred()) ||
        limit > UINT32_MAX) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "traceback_limit must be in [0; %u], got %R",
                     (unsigned int)UINT32_MAX, limit_obj);
        return NULL;
    }
    if (domains != Py_None && !PyList_CheckExact(domains)) {
        PyErr_SetString(PyExc_TypeError, "domains must be a list or None");
        return NULL;
    }
    b.domains = domains == Py_None ? NULL : domains;
    b.data = mh_snapdata_new();
    b.strings = PyDict_New();
    b.frames = PyDict_New();
    b.tracebacks = PyDict_New();
    if (b.data == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (b.strings == NULL || b.frames == NULL || b.tracebacks == NULL) {
        goto done;
    }
    iter = PyObject_GetIter(traces);
    if (iter == NULL) {
        goto done;
    }
    Py_ssize_t hint = PyObject_LengthHint(traces, 0);
    if (hint < 0) {
        goto done;
    }
    if (mh_snapdata_reserve_blocks(b.data, (size_t)hint) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *trace;
    while ((trace = PyIter_Next(iter)) != NULL) {
        int rc = from_traces_add(&b, trace);
        Py_DECREF(trace);
        if (rc < 0) {
            goto done;
        }
    }
    if (PyErr_Occurred()) {
        goto done;
    }
    b.data->traceback_limit = (uint32_t)limit;
    b.data->python_hexversion = PY_VERSION_HEX;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    b.data->timestamp = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
    const char *problem = mh_snapdata_validate(b.data);
    if (problem != NULL) {
        /* A backstop: the checks above should leave nothing to find. */
        PyErr_Format(PyExc_ValueError, "inconsistent traces: %s", problem);
        goto done;
    }
    result = mh_snapshot_wrap_steal(type, b.data);
    b.data = NULL; /* the wrapper took it, even on failure */
done:
    mh_snapdata_free(b.data);
    mh_rawmem_free(b.ids, b.ids_cap * sizeof(uint32_t));
    Py_XDECREF(iter);
    Py_XDECREF(b.strings);
    Py_XDECREF(b.frames);
    Py_XDECREF(b.tracebacks);
    return result;
}
