/* module.c: memhound._core, the only file that speaks Python.
 *
 * Defines the module's functions and the Snapshot type, converts arguments
 * and results, and raises.  Everything else lives in the engine files,
 * which export plain C.  Multi-phase init; module state holds the Snapshot
 * type.  The tracer itself is process-wide (see hooks.c): importing the
 * module in a subinterpreter is refused.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "hooks.h"
#include "rawmem.h"
#include "snapdata.h"
#include "snapfile.h"
#include "snapshot.h"
#include "stats.h"
#include "tracebacks.h"

typedef struct {
    PyTypeObject *snapshot_type;
} module_state;

static inline module_state *
get_state(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

/* ---- Snapshot ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    mh_snapdata_t *data;
    PyObject **strings;    /* str per string index, made on demand */
    PyObject **frames;     /* (filename, lineno, function) per frame */
    PyObject **tracebacks; /* tuple of frame tuples per traceback */
    int dumping;           /* dump() calls reading data without the GIL:
                              the _attributes setter refuses meanwhile */
} SnapshotObject;

static PyObject *
snapshot_wrap(PyTypeObject *type, mh_snapdata_t *data)
{
    SnapshotObject *self = (SnapshotObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        mh_snapdata_free(data);
        return NULL;
    }
    self->data = data;
    self->strings = mh_rawmem_calloc(data->nstrings, sizeof(PyObject *));
    self->frames = mh_rawmem_calloc(data->nframes, sizeof(PyObject *));
    self->tracebacks =
        mh_rawmem_calloc(data->ntracebacks, sizeof(PyObject *));
    if (self->strings == NULL || self->frames == NULL ||
        self->tracebacks == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
clear_cache(PyObject **cache, size_t n)
{
    if (cache == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Py_CLEAR(cache[i]);
    }
    mh_rawmem_free(cache, n * sizeof(PyObject *));
}

static void
snapshot_dealloc(SnapshotObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (self->data != NULL) {
        clear_cache(self->strings, self->data->nstrings);
        clear_cache(self->frames, self->data->nframes);
        clear_cache(self->tracebacks, self->data->ntracebacks);
        mh_snapdata_free(self->data);
    }
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* Borrowed reference to string s, or NULL with an exception set. */
static PyObject *
snapshot_string(SnapshotObject *self, uint32_t s)
{
    if (self->strings[s] == NULL) {
        const mh_snapdata_t *d = self->data;
        uint64_t start = d->string_offsets[s];
        uint64_t end = d->string_offsets[s + 1];
        self->strings[s] = PyUnicode_DecodeUTF8(
            d->string_data + start, (Py_ssize_t)(end - start),
            "surrogatepass");
        if (self->strings[s] == NULL) {
            /* Hostile files may hold invalid UTF-8: never fail on a name. */
            PyErr_Clear();
            self->strings[s] = PyUnicode_DecodeUTF8(
                d->string_data + start, (Py_ssize_t)(end - start),
                "replace");
            if (self->strings[s] == NULL) {
                return NULL;
            }
        }
    }
    return self->strings[s];
}

/* Borrowed (filename, lineno, function) for frame f, or for the unknown
 * frame when f is MH_STATS_UNKNOWN_FRAME. */
static PyObject *
snapshot_frame(SnapshotObject *self, uint32_t f, int with_lineno)
{
    static PyObject *unknown_frame = NULL;
    if (f == MH_STATS_UNKNOWN_FRAME) {
        if (unknown_frame == NULL) {
            unknown_frame = Py_BuildValue("(sis)", "<unknown>", 0, "");
        }
        return unknown_frame;
    }
    if (!with_lineno) {
        const mh_snap_frame_t *fr = &self->data->frames[f];
        PyObject *filename = snapshot_string(self, fr->filename);
        if (filename == NULL) {
            return NULL;
        }
        /* Not cached: FILENAME statistics only. */
        return Py_BuildValue("(Ois)", filename, 0, "");
    }
    if (self->frames[f] == NULL) {
        const mh_snap_frame_t *fr = &self->data->frames[f];
        PyObject *filename = snapshot_string(self, fr->filename);
        PyObject *function = snapshot_string(self, fr->function);
        if (filename == NULL || function == NULL) {
            return NULL;
        }
        self->frames[f] =
            Py_BuildValue("(OiO)", filename, (int)fr->lineno, function);
        if (self->frames[f] == NULL) {
            return NULL;
        }
    }
    return self->frames[f];
}

/* Borrowed tuple of frame tuples, innermost first. */
static PyObject *
snapshot_traceback(SnapshotObject *self, uint32_t t)
{
    if (self->tracebacks[t] == NULL) {
        const mh_snap_traceback_t *tb = &self->data->tracebacks[t];
        PyObject *tuple = PyTuple_New(tb->nframe);
        if (tuple == NULL) {
            return NULL;
        }
        for (uint16_t i = 0; i < tb->nframe; i++) {
            PyObject *frame = snapshot_frame(
                self, self->data->frame_ids[tb->first + i], 1);
            if (frame == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
            Py_INCREF(frame);
            PyTuple_SET_ITEM(tuple, i, frame);
        }
        self->tracebacks[t] = tuple;
    }
    return self->tracebacks[t];
}

/* New reference: the frames tuple a statistics key stands for. */
static PyObject *
key_frames(SnapshotObject *self, mh_key_type_t key_type, uint32_t key)
{
    if (key_type == MH_KEY_TRACEBACK) {
        PyObject *tb = snapshot_traceback(self, key);
        Py_XINCREF(tb);
        return tb;
    }
    int with_lineno = key_type == MH_KEY_LINENO;
    PyObject *frame = snapshot_frame(self, key, with_lineno);
    if (frame == NULL) {
        return NULL;
    }
    PyObject *result = PyTuple_Pack(1, frame);
    if (!with_lineno && key != MH_STATS_UNKNOWN_FRAME) {
        Py_DECREF(frame);
    }
    return result;
}

static int
parse_key_type(const char *name, mh_key_type_t *out)
{
    if (strcmp(name, "filename") == 0) {
        *out = MH_KEY_FILENAME;
    }
    else if (strcmp(name, "lineno") == 0) {
        *out = MH_KEY_LINENO;
    }
    else if (strcmp(name, "traceback") == 0) {
        *out = MH_KEY_TRACEBACK;
    }
    else {
        PyErr_Format(PyExc_ValueError, "unknown key_type: '%s'", name);
        return -1;
    }
    return 0;
}

static PyObject *
snapshot_statistics(SnapshotObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"key_type", "cumulative", NULL};
    const char *key_name;
    int cumulative = 0;
    mh_key_type_t key_type;
    mh_stats_t stats = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|p:statistics", kwlist,
                                     &key_name, &cumulative) ||
        parse_key_type(key_name, &key_type) < 0) {
        return NULL;
    }
    if (cumulative && key_type == MH_KEY_TRACEBACK) {
        PyErr_SetString(PyExc_ValueError,
                        "cumulative mode cannot by used with key type "
                        "'traceback'");
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mh_stats_group(self->data, key_type, cumulative, &stats);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        return PyErr_NoMemory();
    }
    result = PyList_New((Py_ssize_t)stats.n);
    if (result == NULL) {
        goto done;
    }
    for (size_t i = 0; i < stats.n; i++) {
        const mh_stat_t *s = &stats.items[i];
        PyObject *frames = key_frames(self, key_type, s->key);
        if (frames == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyObject *item = Py_BuildValue("(KKN)", (unsigned long long)s->size,
                                       (unsigned long long)s->count, frames);
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)i, item);
    }
done:
    mh_stats_free(&stats);
    return result;
}

static PyObject *
snapshot_compare_to(SnapshotObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"old", "key_type", "cumulative", NULL};
    SnapshotObject *old;
    const char *key_name;
    int cumulative = 0;
    mh_key_type_t key_type;
    mh_stats_diff_t diff = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!s|p:compare_to", kwlist,
                                     Py_TYPE(self), &old, &key_name,
                                     &cumulative) ||
        parse_key_type(key_name, &key_type) < 0) {
        return NULL;
    }
    if (cumulative && key_type == MH_KEY_TRACEBACK) {
        PyErr_SetString(PyExc_ValueError,
                        "cumulative mode cannot by used with key type "
                        "'traceback'");
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mh_stats_compare(self->data, old->data, key_type, cumulative, &diff);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        return PyErr_NoMemory();
    }
    result = PyList_New((Py_ssize_t)diff.n);
    if (result == NULL) {
        goto done;
    }
    for (size_t i = 0; i < diff.n; i++) {
        const mh_stat_diff_t *d = &diff.items[i];
        SnapshotObject *owner = d->side ? old : self;
        PyObject *frames = key_frames(owner, key_type, d->key);
        if (frames == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyObject *item = Py_BuildValue(
            "(KLKLN)", (unsigned long long)d->size, (long long)d->size_diff,
            (unsigned long long)d->count, (long long)d->count_diff, frames);
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)i, item);
    }
done:
    mh_stats_diff_free(&diff);
    return result;
}

/* filters: a sequence of (inclusive, pattern or None, lineno, all_frames,
 * domain_mask[, has_lineno]) tuples, already normalized by the Python
 * layer.  lineno 0 means any line unless has_lineno is true (tracemalloc's
 * Filter(lineno=0) matches line 0 only). */
static PyObject *
snapshot_filter(SnapshotObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "filters must be a sequence");
    mh_filter_t *filters = NULL;
    mh_snapdata_t *out = NULL;
    PyObject *result = NULL;
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    filters = mh_rawmem_calloc((size_t)n, sizeof(mh_filter_t));
    if (filters == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *pattern;
        unsigned int mask;
        if (!PyArg_ParseTuple(item, "pOipI|p:filter", &filters[i].inclusive,
                              &pattern, &filters[i].lineno,
                              &filters[i].all_frames, &mask,
                              &filters[i].has_lineno)) {
            goto done;
        }
        filters[i].domain_mask = mask;
        if (pattern == Py_None) {
            filters[i].pattern = NULL;
        }
        else {
            /* Borrowed UTF-8, alive as long as seq holds the tuple. */
            filters[i].pattern = PyUnicode_AsUTF8(pattern);
            if (filters[i].pattern == NULL) {
                goto done;
            }
        }
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mh_stats_filter(self->data, filters, (size_t)n, &out);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = snapshot_wrap(Py_TYPE(self), out);
done:
    mh_rawmem_free(filters, (size_t)n * sizeof(mh_filter_t));
    Py_DECREF(seq);
    return result;
}

static Py_ssize_t
snapshot_len(SnapshotObject *self)
{
    return (Py_ssize_t)self->data->nblocks;
}

static PyObject *
snapshot_trace(SnapshotObject *self, PyObject *arg)
{
    Py_ssize_t i = PyNumber_AsSsize_t(arg, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (i < 0) {
        i += (Py_ssize_t)self->data->nblocks;
    }
    if (i < 0 || (size_t)i >= self->data->nblocks) {
        PyErr_SetString(PyExc_IndexError, "trace index out of range");
        return NULL;
    }
    const mh_snap_block_t *b = &self->data->blocks[i];
    return Py_BuildValue("(iKIH)", (int)b->domain, (unsigned long long)b->size,
                         (unsigned int)b->traceback,
                         (unsigned short)b->generation);
}

static PyObject *
snapshot_get_traceback(SnapshotObject *self, PyObject *arg)
{
    unsigned long t = PyLong_AsUnsignedLong(arg);
    if (t == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (t >= self->data->ntracebacks) {
        PyErr_SetString(PyExc_IndexError, "traceback index out of range");
        return NULL;
    }
    PyObject *frames = snapshot_traceback(self, (uint32_t)t);
    if (frames == NULL) {
        return NULL;
    }
    return Py_BuildValue("(OI)", frames,
                         (unsigned int)self->data->tracebacks[t].total_nframe);
}

static PyObject *
snapshot_dump(SnapshotObject *self, PyObject *arg)
{
    PyObject *path_bytes = NULL;
    char err[256] = "";
    if (!PyUnicode_FSConverter(arg, &path_bytes)) {
        return NULL;
    }
    int rc;
    self->dumping++;
    Py_BEGIN_ALLOW_THREADS
    rc = mh_snapfile_write(self->data, PyBytes_AS_STRING(path_bytes), err,
                           sizeof(err));
    Py_END_ALLOW_THREADS
    self->dumping--;
    int saved_errno = errno;
    if (rc < 0) {
        if (saved_errno != 0) {
            errno = saved_errno;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
        }
        else {
            PyErr_SetString(PyExc_OSError, err);
        }
    }
    Py_DECREF(path_bytes);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
snapshot_load(PyTypeObject *type, PyObject *arg)
{
    PyObject *path_bytes = NULL;
    char err[256] = "";
    if (!PyUnicode_FSConverter(arg, &path_bytes)) {
        return NULL;
    }
    mh_snapdata_t *data;
    errno = 0;
    Py_BEGIN_ALLOW_THREADS
    data = mh_snapfile_read(PyBytes_AS_STRING(path_bytes), err, sizeof(err));
    Py_END_ALLOW_THREADS
    int saved_errno = errno;
    if (data == NULL) {
        if (saved_errno == ENOENT || saved_errno == EACCES ||
            saved_errno == EISDIR || saved_errno == ENOTDIR) {
            errno = saved_errno;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
        }
        else {
            PyErr_Format(PyExc_ValueError, "%S: %s", arg, err);
        }
        Py_DECREF(path_bytes);
        return NULL;
    }
    Py_DECREF(path_bytes);
    return snapshot_wrap(type, data);
}

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

static PyObject *
snapshot_from_traces(PyTypeObject *type, PyObject *args, PyObject *kwargs)
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
    result = snapshot_wrap(type, b.data);
    b.data = NULL; /* snapshot_wrap took it, even on failure */
done:
    mh_snapdata_free(b.data);
    mh_rawmem_free(b.ids, b.ids_cap * sizeof(uint32_t));
    Py_XDECREF(iter);
    Py_XDECREF(b.strings);
    Py_XDECREF(b.frames);
    Py_XDECREF(b.tracebacks);
    return result;
}

static PyObject *
snapshot_get_traceback_limit(SnapshotObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(self->data->traceback_limit);
}

static PyObject *
snapshot_get_sample_mean(SnapshotObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->data->sample_mean);
}

static PyObject *
snapshot_get_timestamp(SnapshotObject *self, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(self->data->timestamp);
}

static PyObject *
snapshot_get_ntracebacks(SnapshotObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->data->ntracebacks);
}

/* _attributes: the snapshot's attributes text (str) or None. */
static PyObject *
snapshot_get_attributes(SnapshotObject *self, void *closure)
{
    (void)closure;
    const mh_snapdata_t *d = self->data;
    if (d->attributes == NULL) {
        Py_RETURN_NONE;
    }
    /* surrogatepass: the setter and the file reader accept surrogates. */
    return PyUnicode_DecodeUTF8(d->attributes, (Py_ssize_t)d->attributes_len,
                                "surrogatepass");
}

static int
snapshot_set_attributes(SnapshotObject *self, PyObject *value, void *closure)
{
    (void)closure;
    PyObject *utf8 = NULL;
    int rc = -1;
    if (self->dumping) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot change _attributes while the snapshot is "
                        "being dumped");
        return -1;
    }
    if (value == NULL || value == Py_None) {
        return mh_snapdata_set_attributes(self->data, NULL, 0);
    }
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError,
                     "_attributes must be str or None, not %s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    utf8 = PyUnicode_AsEncodedString(value, "utf-8", "surrogatepass");
    if (utf8 == NULL) {
        goto done;
    }
    size_t len = (size_t)PyBytes_GET_SIZE(utf8);
    if (len > MH_SNAPDATA_MAX_ATTRIBUTES) {
        PyErr_Format(PyExc_ValueError,
                     "_attributes takes %zu bytes of UTF-8, at most %zu are "
                     "allowed",
                     len, MH_SNAPDATA_MAX_ATTRIBUTES);
        goto done;
    }
    if (mh_snapdata_set_attributes(self->data, PyBytes_AS_STRING(utf8), len) <
        0) {
        PyErr_NoMemory();
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(utf8);
    return rc;
}

static PyObject *
snapshot_memory(SnapshotObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(mh_snapdata_memory(self->data));
}

static PyMethodDef snapshot_methods[] = {
    {"statistics", (PyCFunction)(void (*)(void))snapshot_statistics,
     METH_VARARGS | METH_KEYWORDS,
     "statistics(key_type, cumulative=False) -> [(size, count, frames)]"},
    {"compare_to", (PyCFunction)(void (*)(void))snapshot_compare_to,
     METH_VARARGS | METH_KEYWORDS,
     "compare_to(old, key_type, cumulative=False) -> "
     "[(size, size_diff, count, count_diff, frames)]"},
    {"filter", (PyCFunction)snapshot_filter, METH_O,
     "filter([(inclusive, pattern, lineno, all_frames, domain_mask[, "
     "has_lineno])])"},
    {"trace", (PyCFunction)snapshot_trace, METH_O,
     "trace(i) -> (domain, size, traceback_index, generation)"},
    {"traceback", (PyCFunction)snapshot_get_traceback, METH_O,
     "traceback(i) -> (frames, total_nframe); frames innermost first"},
    {"dump", (PyCFunction)snapshot_dump, METH_O,
     "dump(path): write the snapshot in memhound's file format"},
    {"load", (PyCFunction)snapshot_load, METH_O | METH_CLASS,
     "load(path) -> Snapshot; ValueError names what is wrong in a bad "
     "file"},
    {"_from_traces", (PyCFunction)(void (*)(void))snapshot_from_traces,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "_from_traces(traces, traceback_limit, domains=None) -> Snapshot\n\n"
     "Build a snapshot from (domain, size, frames[, total_nframe]) tuples;\n"
     "frames innermost first, each (filename, lineno[, function]).  With\n"
     "domains=None a domain must be a memhound domain (0-3).  With a list,\n"
     "domains are labels: each distinct label (at most 4) gets the next\n"
     "domain code, its index in the list, and is appended to the list.\n"
     "TypeError or ValueError on malformed input."},
    {"memory", (PyCFunction)snapshot_memory, METH_NOARGS,
     "bytes held by this snapshot"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef snapshot_getset[] = {
    {"traceback_limit", (getter)snapshot_get_traceback_limit, NULL, NULL,
     NULL},
    {"sample_mean", (getter)snapshot_get_sample_mean, NULL, NULL, NULL},
    {"timestamp", (getter)snapshot_get_timestamp, NULL, NULL, NULL},
    {"ntracebacks", (getter)snapshot_get_ntracebacks, NULL, NULL, NULL},
    {"_attributes", (getter)snapshot_get_attributes,
     (setter)snapshot_set_attributes,
     "text stored with the snapshot in its file (str or None)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *
snapshot_new_refused(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    (void)type;
    (void)args;
    (void)kwargs;
    PyErr_SetString(PyExc_TypeError,
                    "Snapshot objects come from take_snapshot() or "
                    "Snapshot.load()");
    return NULL;
}

static PyType_Slot snapshot_slots[] = {
    {Py_tp_dealloc, snapshot_dealloc},
    {Py_tp_methods, snapshot_methods},
    {Py_tp_getset, snapshot_getset},
    {Py_tp_new, snapshot_new_refused},
    {Py_sq_length, snapshot_len},
    {Py_tp_doc, "A snapshot of traced memory blocks (memhound._core)."},
    {0, NULL},
};

static PyType_Spec snapshot_spec = {
    .name = "memhound._core.Snapshot",
    .basicsize = sizeof(SnapshotObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = snapshot_slots,
};

/* ---- module functions -------------------------------------------------- */

static PyObject *
core_start(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"depth", "sample", "count_total", NULL};
    int depth = MH_DEFAULT_DEPTH;
    unsigned long long sample = 0;
    int count_total = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|iKp:start", kwlist,
                                     &depth, &sample, &count_total)) {
        return NULL;
    }
    if (depth < 1 || depth > MH_MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError,
                     "depth must be in the range [1; %d], got %d",
                     MH_MAX_DEPTH, depth);
        return NULL;
    }
    mh_config_t config = {
        .depth = depth, .sample_mean = sample, .count_total = count_total};
    if (mh_hooks_start(&config) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_stop(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_hooks_stop();
    Py_RETURN_NONE;
}

static PyObject *
core_is_tracing(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyBool_FromLong(mh_hooks_is_tracing());
}

static PyObject *
core_clear(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (mh_hooks_clear() < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_get_traced_memory(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_stats_snapshot_t s;
    mh_hooks_stats(&s);
    return Py_BuildValue("(KK)", (unsigned long long)s.traced_bytes,
                         (unsigned long long)s.peak_bytes);
}

static PyObject *
core_reset_peak(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_hooks_reset_peak();
    Py_RETURN_NONE;
}

static PyObject *
core_get_traceback_limit(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromLong(mh_hooks_config().depth);
}

static PyObject *
core_get_memory_overhead(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_stats_snapshot_t s;
    mh_hooks_stats(&s);
    return PyLong_FromUnsignedLongLong(s.overhead_bytes);
}

static PyObject *
core_get_stats(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_stats_snapshot_t s;
    mh_hooks_stats(&s);
    mh_config_t config = mh_hooks_config();
    return Py_BuildValue(
        "{s:O,s:i,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:I}", "tracing",
        mh_hooks_is_tracing() ? Py_True : Py_False, "depth", config.depth,
        "sample_mean", (unsigned long long)config.sample_mean,
        "traced_blocks", (unsigned long long)s.traced_blocks, "traced_bytes",
        (unsigned long long)s.traced_bytes, "peak_bytes",
        (unsigned long long)s.peak_bytes, "dropped_blocks",
        (unsigned long long)s.dropped_blocks, "lost_tracebacks",
        (unsigned long long)s.lost_tracebacks, "tracebacks",
        (unsigned long long)s.tracebacks, "overhead_bytes",
        (unsigned long long)s.overhead_bytes, "bookkeeping_bytes",
        (unsigned long long)__atomic_load_n(&mh_rawmem_in_use,
                                            __ATOMIC_RELAXED),
        "generation", (unsigned int)s.generation);
}

static PyObject *
core_next_generation(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromLong(mh_hooks_next_generation());
}

/* (frames, total_nframe) of the block holding obj, or None. */
static PyObject *
core_get_object_traceback(PyObject *module, PyObject *obj)
{
    module_state *state = get_state(module);
    uint32_t tb;
    uint64_t size;
    uint16_t gen;
    uint8_t domain;
    if (!mh_hooks_is_tracing()) {
        Py_RETURN_NONE;
    }
    uintptr_t ptr = (uintptr_t)mh_frames_object_block(obj);
    if (!mh_hooks_lookup(ptr, &tb, &size, &gen, &domain)) {
        Py_RETURN_NONE;
    }
    mh_snapdata_t *data = mh_snapshot_of_traceback(tb);
    if (data == NULL) {
        return NULL;
    }
    SnapshotObject *snap =
        (SnapshotObject *)snapshot_wrap(state->snapshot_type, data);
    if (snap == NULL) {
        return NULL;
    }
    PyObject *index = PyLong_FromLong(tb == 0 ? 0 : 1);
    PyObject *result =
        index ? snapshot_get_traceback(snap, index) : NULL;
    Py_XDECREF(index);
    Py_DECREF(snap);
    return result;
}

static PyObject *
core_take_snapshot(PyObject *module, PyObject *unused)
{
    (void)unused;
    mh_snapdata_t *data = mh_snapshot_take();
    if (data == NULL) {
        return NULL;
    }
    return snapshot_wrap(get_state(module)->snapshot_type, data);
}

static PyObject *
core_inject_alloc_failures(PyObject *module, PyObject *arg)
{
    (void)module;
    long after = PyLong_AsLong(arg);
    if (after == -1 && PyErr_Occurred()) {
        return NULL;
    }
    mh_hooks_inject_alloc_failures(after);
    Py_RETURN_NONE;
}

static PyMethodDef core_methods[] = {
    {"start", (PyCFunction)(void (*)(void))core_start,
     METH_VARARGS | METH_KEYWORDS,
     "start(depth=64, sample=0, count_total=False)"},
    {"stop", core_stop, METH_NOARGS, "Stop tracing and forget all traces."},
    {"is_tracing", core_is_tracing, METH_NOARGS, NULL},
    {"clear_traces", core_clear, METH_NOARGS, NULL},
    {"get_traced_memory", core_get_traced_memory, METH_NOARGS,
     "(current, peak) traced bytes"},
    {"reset_peak", core_reset_peak, METH_NOARGS, NULL},
    {"get_traceback_limit", core_get_traceback_limit, METH_NOARGS, NULL},
    {"get_memory_overhead", core_get_memory_overhead, METH_NOARGS,
     "bytes memhound uses for its traces and tracebacks"},
    {"get_stats", core_get_stats, METH_NOARGS, "tracer counters as a dict"},
    {"next_generation", core_next_generation, METH_NOARGS, NULL},
    {"get_object_traceback", core_get_object_traceback, METH_O, NULL},
    {"take_snapshot", core_take_snapshot, METH_NOARGS, NULL},
    {"_inject_alloc_failures", core_inject_alloc_failures, METH_O,
     "test support: let N more bookkeeping allocations succeed, then fail "
     "(-1: never)"},
    {NULL, NULL, 0, NULL},
};

static int
core_exec(PyObject *module)
{
    module_state *state = get_state(module);
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (interp != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "memhound._core traces the main interpreter only");
        return -1;
    }
    if (mh_hooks_init_process() < 0) {
        return -1;
    }
    state->snapshot_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &snapshot_spec, NULL);
    if (state->snapshot_type == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Snapshot",
                              (PyObject *)state->snapshot_type) < 0 ||
        PyModule_AddIntConstant(module, "DEFAULT_DEPTH", MH_DEFAULT_DEPTH) <
            0 ||
        PyModule_AddIntConstant(module, "MAX_DEPTH", MH_MAX_DEPTH) < 0 ||
        PyModule_AddIntConstant(module, "DOMAIN_RAW", MH_DOMAIN_RAW) < 0 ||
        PyModule_AddIntConstant(module, "DOMAIN_MEM", MH_DOMAIN_MEM) < 0 ||
        PyModule_AddIntConstant(module, "DOMAIN_OBJ", MH_DOMAIN_OBJ) < 0 ||
        PyModule_AddIntConstant(module, "DOMAIN_NATIVE", MH_DOMAIN_NATIVE) <
            0) {
        return -1;
    }
    return 0;
}

static int
core_traverse(PyObject *module, visitproc visit, void *arg)
{
    Py_VISIT(get_state(module)->snapshot_type);
    return 0;
}

static int
core_clear_state(PyObject *module)
{
    Py_CLEAR(get_state(module)->snapshot_type);
    return 0;
}

static void
core_free(void *module)
{
    core_clear_state((PyObject *)module);
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memhound._core",
    .m_doc = "memhound's tracing engine: allocator hooks, tracebacks, "
             "snapshots, statistics and files.",
    .m_size = sizeof(module_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear_state,
    .m_free = core_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
