/* module.c: memhound._core, its functions and its state.
 *
 * The binding layer is module.c (this module's functions and init),
 * snapshot_type.c (the Snapshot type) and snapshot_from_traces.c; they are
 * the only files that speak Python: they convert arguments and results and
 * raise.  Everything else lives in the engine files, which export plain C.
 * Multi-phase init; module state holds the Snapshot type.  The tracer
 * itself is process-wide (see hooks.c): importing the module in a
 * subinterpreter is refused.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>

#include "capfile.h"
#include "frames.h"
#include "gcchurn_binding.h"
#include "heap_binding.h"
#include "hooks.h"
#include "leaks_binding.h"
#include "native.h"
#include "nativestack.h"
#include "nativestack_binding.h"
#include "rawmem.h"
#include "sigrelay.h"
#include "snapshot.h"
#include "snapshot_type.h"

typedef struct {
    PyTypeObject *snapshot_type;
} module_state;

static inline module_state *
get_state(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

/* ---- module functions -------------------------------------------------- */

static PyObject *
core_start(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"depth",  "sample",       "count_total", "native",
                             "python", "native_stack", NULL};
    int depth = MH_DEFAULT_DEPTH;
    unsigned long long sample = 0;
    int count_total = 0;
    int native = 0;
    int python = 1;
    int native_stack = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|iKpppp:start", kwlist,
                                     &depth, &sample, &count_total, &native,
                                     &python, &native_stack)) {
        return NULL;
    }
    native = native || native_stack;
    if (!python && !native) {
        PyErr_SetString(PyExc_ValueError,
                        "python=False traces nothing without native=True");
        return NULL;
    }
    if (depth < 1 || depth > MH_MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError,
                     "depth must be in the range [1; %d], got %d",
                     MH_MAX_DEPTH, depth);
        return NULL;
    }
    mh_config_t config = {.depth = depth,
                          .sample_mean = sample,
                          .count_total = count_total,
                          .skip_python = !python};
    /* Cycle churn keeps its counts when the traceback store survives. */
    int keep_churn = mh_hooks_is_tracing() &&
                     mh_hooks_config().sample_mean == (uint64_t)sample;
    if (mh_hooks_start(&config) < 0) {
        return NULL;
    }
    /* The last start()'s native setting applies. */
    if (!native_stack) {
        mh_nstack_stop();
    }
    else if (mh_nstack_start() < 0) {
        mh_native_stop();
        mh_hooks_stop();
        PyErr_NoMemory();
        return NULL;
    }
    if (native) {
        mh_native_start();
    }
    else {
        mh_native_stop();
    }
    if (mh_gcchurn_binding_start(python, keep_churn) < 0) {
        mh_native_stop();
        mh_nstack_stop();
        mh_hooks_stop();
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
core_stop(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    /* Wrappers first: nothing native is recorded into tables going away. */
    mh_native_stop();
    mh_nstack_stop();
    mh_gcchurn_binding_stop();
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
    mh_gcchurn_binding_reset(); /* its traceback indices are gone */
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
        "{s:O,s:i,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:I,s:K}", "tracing",
        mh_hooks_is_tracing() ? Py_True : Py_False, "depth", config.depth,
        "sample_mean", (unsigned long long)config.sample_mean, "traced_blocks",
        (unsigned long long)s.traced_blocks, "traced_bytes",
        (unsigned long long)s.traced_bytes, "peak_bytes",
        (unsigned long long)s.peak_bytes, "dropped_blocks",
        (unsigned long long)s.dropped_blocks, "lost_tracebacks",
        (unsigned long long)s.lost_tracebacks, "tracebacks",
        (unsigned long long)s.tracebacks, "overhead_bytes",
        (unsigned long long)s.overhead_bytes, "bookkeeping_bytes",
        (unsigned long long)__atomic_load_n(&mh_rawmem_in_use,
                                            __ATOMIC_RELAXED),
        "generation", (unsigned int)s.generation, "allocated_bytes",
        (unsigned long long)s.allocated_bytes);
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
    mh_snapshot_object_t *snap =
        (mh_snapshot_object_t *)mh_snapshot_wrap_steal(state->snapshot_type,
                                                       data);
    if (snap == NULL) {
        return NULL;
    }
    /* The one-traceback snapshot holds it at index 1 (0: empty). */
    PyObject *result = mh_snapshot_traceback_new(snap, tb == 0 ? 0 : 1);
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
    return mh_snapshot_wrap_steal(get_state(module)->snapshot_type, data);
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

/* ---- capture files (capfile.c) ----------------------------------------- */

/* The _core.Snapshot's data, or NULL for None; NULL with TypeError set
 * (and *ok = 0) for anything else. */
static const mh_snapdata_t *
snapdata_or_none(module_state *state, PyObject *obj, const char *what, int *ok)
{
    *ok = 1;
    if (obj == Py_None) {
        return NULL;
    }
    if (!PyObject_TypeCheck(obj, state->snapshot_type)) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a _core.Snapshot or None, not %s", what,
                     Py_TYPE(obj)->tp_name);
        *ok = 0;
        return NULL;
    }
    return ((mh_snapshot_object_t *)obj)->data;
}

/* capture_encode(report: str, peak, exit) -> bytes of a capture file. */
static PyObject *
core_capture_encode(PyObject *module, PyObject *args)
{
    module_state *state = get_state(module);
    PyObject *report, *peak_obj, *exit_obj;
    if (!PyArg_ParseTuple(args, "UOO:capture_encode", &report, &peak_obj,
                          &exit_obj)) {
        return NULL;
    }
    int ok;
    const mh_snapdata_t *peak = snapdata_or_none(state, peak_obj, "peak", &ok);
    if (!ok) {
        return NULL;
    }
    const mh_snapdata_t *exit = snapdata_or_none(state, exit_obj, "exit", &ok);
    if (!ok) {
        return NULL;
    }
    Py_ssize_t report_len;
    const char *text = PyUnicode_AsUTF8AndSize(report, &report_len);
    if (text == NULL) {
        return NULL;
    }
    uint8_t *buf;
    size_t len;
    char err[256] = "";
    if (mh_capfile_encode(text, (size_t)report_len, peak, exit, &buf, &len,
                          err, sizeof(err)) < 0) {
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    PyObject *result =
        PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
    free(buf);
    return result;
}

/* capture_decode(data: bytes-like) -> (report: str, peak, exit), the
 * snapshots as _core.Snapshot or None; ValueError names what is wrong. */
static PyObject *
core_capture_decode(PyObject *module, PyObject *arg)
{
    module_state *state = get_state(module);
    Py_buffer view;
    PyObject *report = NULL, *peak = NULL, *exit = NULL, *result = NULL;
    char err[256] = "";
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    mh_capture_t *cap = mh_capfile_decode((const uint8_t *)view.buf,
                                          (size_t)view.len, err, sizeof(err));
    PyBuffer_Release(&view);
    if (cap == NULL) {
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    /* surrogatepass: the format accepts surrogates as the snapshot strings
     * do; json.loads then sees them as lone surrogates. */
    report = PyUnicode_DecodeUTF8(cap->report, (Py_ssize_t)cap->report_len,
                                  "surrogatepass");
    if (report == NULL) {
        goto done;
    }
    mh_snapdata_t *data[2] = {cap->peak, cap->exit};
    PyObject **objs[2] = {&peak, &exit};
    cap->peak = cap->exit = NULL;
    for (int i = 0; i < 2; i++) {
        if (data[i] == NULL) {
            *objs[i] = Py_NewRef(Py_None);
            continue;
        }
        *objs[i] = mh_snapshot_wrap_steal(state->snapshot_type, data[i]);
        data[i] = NULL;
        if (*objs[i] == NULL) {
            mh_snapdata_free(data[1]);
            goto done;
        }
    }
    result = PyTuple_Pack(3, report, peak, exit);
done:
    mh_capture_free(cap);
    Py_XDECREF(report);
    Py_XDECREF(peak);
    Py_XDECREF(exit);
    return result;
}

static PyObject *
core_native_status(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_native_status_t s;
    mh_native_status(&s);
    return Py_BuildValue("{s:O,s:K,s:K,s:K}", "active",
                         s.active ? Py_True : Py_False, "patched_slots",
                         (unsigned long long)s.patched_slots, "failed_slots",
                         (unsigned long long)s.failed_slots, "rescans",
                         (unsigned long long)s.rescans);
}

/* Whether the block at ptr is still traced (the main table decides which
 * side-table entries of nativestack.c are live).  GIL held. */
static int
block_is_traced(uintptr_t ptr, void *arg)
{
    (void)arg;
    uint32_t tb;
    uint64_t size;
    uint16_t gen;
    uint8_t domain;
    return mh_hooks_lookup(ptr, &tb, &size, &gen, &domain) &&
           domain == MH_DOMAIN_NATIVE;
}

/* [(size, count, ((library, function, offset, pc), ...)), ...] of live
 * native blocks by native stack, largest first, at most `limit`. */
static PyObject *
core_native_stacks(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 0");
        return NULL;
    }
    mh_nstack_group_t *groups = NULL;
    size_t n = 0;
    PyObject *result = NULL;
    if (mh_nstack_groups(&groups, &n, (size_t)limit, block_is_traced, NULL) <
        0) {
        return PyErr_NoMemory();
    }
    result = PyList_New((Py_ssize_t)n);
    if (result == NULL) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *frames =
            mh_binding_native_frames_new(groups[i].pcs, groups[i].depth);
        if (frames == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyObject *item =
            Py_BuildValue("(KKN)", (unsigned long long)groups[i].size,
                          (unsigned long long)groups[i].count, frames);
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)i, item);
    }
done:
    mh_nstack_groups_free(groups, n);
    return result;
}

static PyObject *
core_suspend_thread(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_hooks_suspend_thread();
    Py_RETURN_NONE;
}

static PyObject *
core_resume_thread(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_hooks_resume_thread();
    Py_RETURN_NONE;
}

static PyObject *
core_sigrelay_start(PyObject *module, PyObject *arg)
{
    (void)module;
    long signum = PyLong_AsLong(arg);
    if (signum == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (signum < 0 || signum > INT_MAX) {
        signum = 0; /* EINVAL below */
    }
    if (mh_sigrelay_start((int)signum) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
core_sigrelay_stop(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    mh_sigrelay_stop();
    Py_RETURN_NONE;
}

static PyObject *
core_sigrelay_wait(PyObject *module, PyObject *args)
{
    (void)module;
    unsigned deadline = 0;
    if (!PyArg_ParseTuple(args, "|I:_sigrelay_wait", &deadline)) {
        return NULL;
    }
    int signum;
    Py_BEGIN_ALLOW_THREADS
    signum = mh_sigrelay_wait(1);
    /* Armed before the GIL is taken back: the program's thread may hold it
     * for good (a blocking call that keeps it). */
    if (signum != 0 && deadline != 0) {
        (void)mh_sigrelay_deadline(deadline, 128 + signum);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(signum);
}

static PyMethodDef core_methods[] = {
    {"start", (PyCFunction)(void (*)(void))core_start,
     METH_VARARGS | METH_KEYWORDS,
     "start(depth=64, sample=0, count_total=False, native=False, "
     "python=True, native_stack=False)"},
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
    {"capture_encode", core_capture_encode, METH_VARARGS,
     "capture_encode(report, peak, exit) -> bytes of a capture file"},
    {"capture_decode", core_capture_decode, METH_O,
     "capture_decode(data) -> (report, peak, exit); ValueError when bad"},
    {"gens_restart", (PyCFunction)(void (*)(void))mh_binding_gens_restart,
     METH_VARARGS | METH_KEYWORDS, "gens_restart(iteration=-1)"},
    {"gens_checkpoint",
     (PyCFunction)(void (*)(void))mh_binding_gens_checkpoint,
     METH_VARARGS | METH_KEYWORDS,
     "gens_checkpoint(iteration=-1, scan=True) -> (generation, seconds)"},
    {"gens_info", mh_binding_gens_info, METH_NOARGS, NULL},
    {"gens_analyze", (PyCFunction)(void (*)(void))mh_binding_gens_analyze,
     METH_VARARGS | METH_KEYWORDS,
     "gens_analyze(iteration=-1, min_confidence=0.5, min_generations=3, "
     "max_leaks=50, largest=10) -> dict"},
    {"_suspend_thread", core_suspend_thread, METH_NOARGS,
     "stop tracing the calling thread's own allocations (nests)"},
    {"_resume_thread", core_resume_thread, METH_NOARGS, NULL},
    {"native_stacks", core_native_stacks, METH_O,
     "native_stacks(limit) -> [(size, count, frames)]: live native blocks "
     "by native stack (start(native_stack=True))"},
    {"native_status", core_native_status, METH_NOARGS,
     "native interception: active, patched_slots, failed_slots, rescans"},
    {"_sigrelay_start", core_sigrelay_start, METH_O,
     "_sigrelay_start(signum): relay the signal to _sigrelay_wait "
     "(sigrelay.h); OSError when it can't"},
    {"_sigrelay_stop", core_sigrelay_stop, METH_NOARGS,
     "put back the action _sigrelay_start replaced"},
    {"_sigrelay_wait", core_sigrelay_wait, METH_VARARGS,
     "_sigrelay_wait(deadline=0) -> signum: wait (without the GIL) for a "
     "relayed signal; with a deadline, the process then ends with status "
     "128 + signum that many seconds later whatever it does "
     "(mh_sigrelay_deadline)"},
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
    if (mh_native_init_process() < 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "memhound: cannot register the native fork handlers");
        return -1;
    }
    /* The heap-graph functions live in heap_binding.c (issue #4). */
    if (PyModule_AddFunctions(module, mh_heap_methods) < 0) {
        return -1;
    }
    /* Cycle churn: gcchurn_binding.c. */
    if (PyModule_AddFunctions(module, mh_gcchurn_methods) < 0) {
        return -1;
    }
    state->snapshot_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &mh_snapshot_spec, NULL);
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
    .m_doc =
        "memhound's tracing engine: allocator hooks, tracebacks, "
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
