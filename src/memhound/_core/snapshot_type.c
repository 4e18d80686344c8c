/* snapshot_type.c: the Snapshot type of memhound._core (binding code).
 *
 * Converts mh_snapdata_t contents and statistics results into Python
 * objects, parses arguments and raises; the work itself is in stats.c and
 * snapfile_*.c, run with the GIL released where they touch only the
 * snapshot.  Python objects made from a snapshot are cached on it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>

#include "rawmem.h"
#include "snapdata.h"
#include "snapfile.h"
#include "snapshot_type.h"
#include "stats.h"

PyObject *
mh_snapshot_wrap_steal(PyTypeObject *type, mh_snapdata_t *data)
{
    mh_snapshot_object_t *self =
        (mh_snapshot_object_t *)type->tp_alloc(type, 0);
    if (self == NULL) {
        mh_snapdata_free(data);
        return NULL;
    }
    self->data = data;
    self->strings = mh_rawmem_calloc(data->nstrings, sizeof(PyObject *));
    self->frames = mh_rawmem_calloc(data->nframes, sizeof(PyObject *));
    self->tracebacks = mh_rawmem_calloc(data->ntracebacks, sizeof(PyObject *));
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
snapshot_dealloc(mh_snapshot_object_t *self)
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
snapshot_string(mh_snapshot_object_t *self, uint32_t s)
{
    if (self->strings[s] == NULL) {
        const mh_snapdata_t *d = self->data;
        uint64_t start = d->string_offsets[s];
        uint64_t end = d->string_offsets[s + 1];
        self->strings[s] =
            PyUnicode_DecodeUTF8(d->string_data + start,
                                 (Py_ssize_t)(end - start), "surrogatepass");
        if (self->strings[s] == NULL) {
            /* Hostile files may hold invalid UTF-8: never fail on a name. */
            PyErr_Clear();
            self->strings[s] = PyUnicode_DecodeUTF8(
                d->string_data + start, (Py_ssize_t)(end - start), "replace");
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
snapshot_frame(mh_snapshot_object_t *self, uint32_t f, int with_lineno)
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
snapshot_traceback(mh_snapshot_object_t *self, uint32_t t)
{
    if (self->tracebacks[t] == NULL) {
        const mh_snap_traceback_t *tb = &self->data->tracebacks[t];
        PyObject *tuple = PyTuple_New(tb->nframe);
        if (tuple == NULL) {
            return NULL;
        }
        for (uint16_t i = 0; i < tb->nframe; i++) {
            PyObject *frame =
                snapshot_frame(self, self->data->frame_ids[tb->first + i], 1);
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
key_frames(mh_snapshot_object_t *self, mh_key_type_t key_type, uint32_t key)
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
snapshot_statistics(mh_snapshot_object_t *self, PyObject *args,
                    PyObject *kwargs)
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
snapshot_compare_to(mh_snapshot_object_t *self, PyObject *args,
                    PyObject *kwargs)
{
    static char *kwlist[] = {"old", "key_type", "cumulative", NULL};
    mh_snapshot_object_t *old;
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
        mh_snapshot_object_t *owner = d->side ? old : self;
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
snapshot_filter(mh_snapshot_object_t *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"filters", "min_size", "max_size", NULL};
    PyObject *arg;
    unsigned long long min_size = 0, max_size = UINT64_MAX;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|KK:filter", kwlist, &arg,
                                     &min_size, &max_size)) {
        return NULL;
    }
    /* A tuple: parsing the items can run Python code, which must not be
     * able to resize what is being walked. */
    PyObject *seq = PySequence_Tuple(arg);
    mh_filter_t *filters = NULL;
    mh_snapdata_t *out = NULL;
    PyObject *result = NULL;
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    filters = mh_rawmem_calloc((size_t)n, sizeof(mh_filter_t));
    if (filters == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(seq, i);
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
    rc = mh_stats_filter_sized(self->data, filters, (size_t)n, min_size,
                               max_size, &out);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = mh_snapshot_wrap_steal(Py_TYPE(self), out);
done:
    mh_rawmem_free(filters, (size_t)n * sizeof(mh_filter_t));
    Py_DECREF(seq);
    return result;
}

static Py_ssize_t
snapshot_len(mh_snapshot_object_t *self)
{
    return (Py_ssize_t)self->data->nblocks;
}

static PyObject *
snapshot_trace(mh_snapshot_object_t *self, PyObject *arg)
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
snapshot_get_traceback(mh_snapshot_object_t *self, PyObject *arg)
{
    unsigned long t = PyLong_AsUnsignedLong(arg);
    if (t == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (t > UINT32_MAX) {
        PyErr_SetString(PyExc_IndexError, "traceback index out of range");
        return NULL;
    }
    return mh_snapshot_traceback_new(self, (uint32_t)t);
}

PyObject *
mh_snapshot_traceback_new(mh_snapshot_object_t *self, uint32_t t)
{
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
snapshot_dump(mh_snapshot_object_t *self, PyObject *arg)
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
    return mh_snapshot_wrap_steal(type, data);
}

static PyObject *
snapshot_get_traceback_limit(mh_snapshot_object_t *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(self->data->traceback_limit);
}

static PyObject *
snapshot_get_sample_mean(mh_snapshot_object_t *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->data->sample_mean);
}

static PyObject *
snapshot_get_timestamp(mh_snapshot_object_t *self, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(self->data->timestamp);
}

static PyObject *
snapshot_get_ntracebacks(mh_snapshot_object_t *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->data->ntracebacks);
}

/* _attributes: the snapshot's attributes text (str) or None. */
static PyObject *
snapshot_get_attributes(mh_snapshot_object_t *self, void *closure)
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
snapshot_set_attributes(mh_snapshot_object_t *self, PyObject *value,
                        void *closure)
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
snapshot_memory(mh_snapshot_object_t *self, PyObject *unused)
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
    {"filter", (PyCFunction)(void (*)(void))snapshot_filter,
     METH_VARARGS | METH_KEYWORDS,
     "filter([(inclusive, pattern, lineno, all_frames, domain_mask[, "
     "has_lineno])], min_size=0, max_size=2**64-1)"},
    {"trace", (PyCFunction)snapshot_trace, METH_O,
     "trace(i) -> (domain, size, traceback_index, generation)"},
    {"traceback", (PyCFunction)snapshot_get_traceback, METH_O,
     "traceback(i) -> (frames, total_nframe); frames innermost first"},
    {"dump", (PyCFunction)snapshot_dump, METH_O,
     "dump(path): write the snapshot in memhound's file format"},
    {"load", (PyCFunction)snapshot_load, METH_O | METH_CLASS,
     "load(path) -> Snapshot; ValueError names what is wrong in a bad "
     "file"},
    {"_from_traces", (PyCFunction)(void (*)(void))mh_snapshot_from_traces,
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

PyType_Spec mh_snapshot_spec = {
    .name = "memhound._core.Snapshot",
    .basicsize = sizeof(mh_snapshot_object_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = snapshot_slots,
};
