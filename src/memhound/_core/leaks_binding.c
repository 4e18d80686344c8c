/* leaks_binding.c: the Python face of the leak analysis.
 *
 * Owns the process-wide history of generations (gens.h) and turns the
 * verdicts of leaks.c into Python data for memhound.leaks.  Functions:
 * gens_restart, gens_checkpoint, gens_info and gens_analyze (registered by
 * module.c).  Everything here runs with the GIL held, which also guards
 * `history`; the calling thread's own allocations are not traced while it
 * builds results (mh_hooks_suspend_thread), so memhound never reports
 * itself.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "gcchurn_binding.h"
#include "gens.h"
#include "hooks.h"
#include "leaks.h"
#include "leaks_binding.h"
#include "nativestack.h"
#include "nativestack_binding.h"
#include "rawmem.h"
#include "snapshot.h"
#include "tracebacks.h"

/* Guarded by the GIL. */
static mh_gens_t *history;
static double history_t0; /* CLOCK_MONOTONIC seconds at restart */
static uint64_t history_sample_mean;
static int history_saturated;         /* generation numbers ran out */
static Py_ssize_t history_lost_scans; /* scans dropped for lack of memory */

/* Resident set size from /proc/self/statm, 0 when unreadable.  Plain
 * system calls: nothing allocates. */
static uint64_t
rss_bytes(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    unsigned long long size = 0, resident = 0;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) {
        return 0;
    }
    long page = sysconf(_SC_PAGESIZE);
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

static void
fill_record(mh_gen_record_t *record, long long iteration)
{
    mh_stats_snapshot_t stats;
    mh_hooks_stats(&stats);
    record->t = mh_monotonic_seconds() - history_t0;
    record->iteration = iteration;
    record->traced_bytes = stats.traced_bytes;
    record->rss_bytes = rss_bytes();
    record->allocated_bytes = stats.allocated_bytes;
}

static int
require_tracing(void)
{
    if (!mh_hooks_is_tracing()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "memhound is not tracing: call memhound.start() "
                        "first");
        return -1;
    }
    return 0;
}

/* A new history; the live blocks become generation 0.  -1 with an
 * exception set. */
static int
restart(long long iteration)
{
    mh_hooks_restart_generations();
    history_t0 = mh_monotonic_seconds();
    history_sample_mean = mh_hooks_config().sample_mean;
    history_saturated = 0;
    history_lost_scans = 0;
    mh_gen_record_t start;
    fill_record(&start, iteration);
    mh_gens_t *fresh = mh_gens_new(&start);
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    mh_gens_free(history);
    history = fresh;
    mh_gcchurn_binding_reset(); /* churn counts cover the same span */
    return 0;
}

/* The history, restarted when there is none or when tracing restarted
 * under it (the generation counter went back, or sampling changed). */
static int
ensure_history(void)
{
    mh_stats_snapshot_t stats;
    mh_hooks_stats(&stats);
    if (history != NULL &&
        (size_t)stats.generation + 1 == mh_gens_count(history) &&
        mh_hooks_config().sample_mean == history_sample_mean) {
        return 0;
    }
    return restart(-1);
}

PyObject *
mh_binding_gens_restart(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"iteration", NULL};
    long long iteration = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|L:gens_restart", kwlist,
                                     &iteration)) {
        return NULL;
    }
    if (require_tracing() < 0 || restart(iteration) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

typedef struct {
    mh_gens_t *gens;
    mh_survivors_t *surv;
    uint64_t sample_mean;
} scan_state_t;

static inline uint64_t
block_charge(uint64_t sample_mean, uint64_t size)
{
    if (sample_mean == 0) {
        return size;
    }
    return (uint64_t)llround((double)size *
                             mh_snapdata_block_weight(sample_mean, size));
}

static inline uint32_t
block_site(const mh_trace_t *trace)
{
    return mh_gens_site_key(trace->traceback,
                            trace->domain == MH_DOMAIN_NATIVE);
}

static int
scan_series_visit(const mh_trace_t *trace, void *arg)
{
    scan_state_t *st = arg;
    return mh_gens_scan_add(st->gens, block_site(trace),
                            block_charge(st->sample_mean, trace->size)) < 0;
}

static int
scan_survivors_visit(const mh_trace_t *trace, void *arg)
{
    scan_state_t *st = arg;
    return mh_survivors_add(st->surv, block_site(trace), trace->generation,
                            block_charge(st->sample_mean, trace->size)) < 0;
}

/* Free the code objects only the traceback store still holds, before a
 * scan: otherwise code the program compiled at run time and dropped (exec,
 * namedtuple, dataclasses) lives on because memhound names it, and its
 * blocks look like a leak.  Out of memory: they wait for the next scan. */
static void
release_dead_code(void)
{
    /* A few rounds free whole families (a code dies with the code that
     * held it in co_consts).  The store is re-read each round: a code's
     * deallocation can run code that stops tracing. */
    for (int round = 0; round < 8; round++) {
        mh_tbstore_t *store = mh_hooks_store();
        if (store == NULL || mh_tbstore_release_dead_code(store) <= 0) {
            break;
        }
    }
}

PyObject *
mh_binding_gens_checkpoint(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"iteration", "scan", NULL};
    long long iteration = -1;
    int scan = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Lp:gens_checkpoint",
                                     kwlist, &iteration, &scan)) {
        return NULL;
    }
    double began = mh_monotonic_seconds();
    if (scan) {
        /* First: it may run code that stops tracing, checked next. */
        release_dead_code();
    }
    if (require_tracing() < 0 || ensure_history() < 0) {
        return NULL;
    }
    size_t next = mh_gens_count(history);
    if (next > MH_GENS_MAX_GENERATIONS) {
        /* Out of generation numbers: the last generation simply goes on;
         * the report says so. */
        history_saturated = 1;
        return Py_BuildValue("(nd)", (Py_ssize_t)(next - 1), 0.0);
    }
    mh_gen_record_t record;
    fill_record(&record, iteration);
    if (mh_gens_record(history, (uint16_t)next, &record) < 0) {
        return PyErr_NoMemory();
    }
    (void)mh_hooks_next_generation();
    if (scan) {
        scan_state_t st = {history, NULL, history_sample_mean};
        mh_gens_scan_begin(history);
        int failed = mh_hooks_foreach_block(scan_series_visit, &st);
        /* Out of memory for this column only: the history stays as it
         * was, the analysis has one scan fewer, and the report says so. */
        if (mh_gens_scan_commit(history) < 0 || failed) {
            history_lost_scans++;
        }
    }
    return Py_BuildValue("(nd)", (Py_ssize_t)next,
                         mh_monotonic_seconds() - began);
}

PyObject *
mh_binding_gens_info(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (history == NULL) {
        Py_RETURN_NONE;
    }
    size_t n = mh_gens_count(history);
    const mh_gen_record_t *last = mh_gens_get(history, n - 1);
    return Py_BuildValue("{s:n,s:d,s:d,s:L,s:n,s:n,s:O}", "generation",
                         (Py_ssize_t)(n - 1), "elapsed",
                         mh_monotonic_seconds() - history_t0, "last_t",
                         last->t, "iteration", (long long)last->iteration,
                         "columns", (Py_ssize_t)mh_gens_columns(history),
                         "memory", (Py_ssize_t)mh_gens_memory(history),
                         "saturated", history_saturated ? Py_True : Py_False);
}

PyObject *
mh_binding_traceback_frames_new(uint32_t tb)
{
    mh_snapdata_t *data = mh_snapshot_of_traceback(tb);
    if (data == NULL) {
        return NULL;
    }
    PyObject *frames = NULL, *frame = NULL;
    uint32_t t = tb == 0 ? 0 : 1;
    const mh_snap_traceback_t *trace = &data->tracebacks[t];
    frames = PyList_New(0);
    if (frames == NULL) {
        goto error;
    }
    for (uint16_t i = 0; i < trace->nframe; i++) {
        const mh_snap_frame_t *f =
            &data->frames[data->frame_ids[trace->first + i]];
        const char *filename =
            data->string_data + data->string_offsets[f->filename];
        Py_ssize_t filename_len =
            (Py_ssize_t)(data->string_offsets[f->filename + 1] -
                         data->string_offsets[f->filename]);
        const char *function =
            data->string_data + data->string_offsets[f->function];
        Py_ssize_t function_len =
            (Py_ssize_t)(data->string_offsets[f->function + 1] -
                         data->string_offsets[f->function]);
        frame = Py_BuildValue("{s:s#,s:i,s:s#}", "filename", filename,
                              filename_len, "lineno", (int)f->lineno,
                              "function", function, function_len);
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            goto error;
        }
        Py_CLEAR(frame);
    }
    mh_snapdata_free(data);
    return frames;
error:
    Py_XDECREF(frame);
    Py_XDECREF(frames);
    mh_snapdata_free(data);
    return NULL;
}

/* The generation records as a list of dicts. */
static PyObject *
generations_new(void)
{
    size_t n = mh_gens_count(history);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        return NULL;
    }
    for (size_t g = 0; g < n; g++) {
        const mh_gen_record_t *r = mh_gens_get(history, g);
        PyObject *item =
            Py_BuildValue("{s:n,s:d,s:L,s:K,s:K}", "generation", (Py_ssize_t)g,
                          "t", r->t, "iteration", (long long)r->iteration,
                          "traced_bytes", (unsigned long long)r->traced_bytes,
                          "rss_bytes", (unsigned long long)r->rss_bytes);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)g, item);
    }
    return list;
}

/* A site's series: [(generation, t, bytes, blocks), ...]. */
static PyObject *
series_new(uint32_t site)
{
    size_t first;
    const mh_series_point_t *points;
    size_t n = mh_gens_series(history, site, &first, &points);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t g = mh_gens_column_generation(history, first + i);
        PyObject *item =
            Py_BuildValue("(ndKK)", (Py_ssize_t)g, mh_gens_get(history, g)->t,
                          (unsigned long long)points[i].bytes,
                          (unsigned long long)points[i].blocks);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* A site's survivors: [(generation, bytes, blocks), ...]. */
static PyObject *
survivors_new(const mh_leak_result_t *result, const mh_site_verdict_t *v)
{
    Py_ssize_t n = (Py_ssize_t)(v->survivors_end - v->survivors_begin);
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const mh_survivor_t *s = &result->survivors[v->survivors_begin + i];
        PyObject *item = Py_BuildValue("(nKK)", (Py_ssize_t)s->generation,
                                       (unsigned long long)s->bytes,
                                       (unsigned long long)s->blocks);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* (blocks, bytes, frames) of a site's most common native stack, for
 * "native_frames" (see mh_binding_native_frames_new). */
static PyObject *
native_stack_new(const mh_nstack_top_t *top)
{
    PyObject *frames = mh_binding_native_frames_new(top->pcs, top->depth);
    if (frames == NULL) {
        return NULL;
    }
    return Py_BuildValue("(KKN)", (unsigned long long)top->blocks,
                         (unsigned long long)top->bytes, frames);
}

/* One site as a dict (the fields of a LEAK in docs/report-schema.md, before
 * memhound.leaks shapes them).  nstack: the site's most common native
 * stack ("native_stack" key), NULL for none. */
static PyObject *
verdict_new(const mh_leak_result_t *result, const mh_site_verdict_t *v,
            const mh_nstack_top_t *nstack)
{
    PyObject *frames = NULL, *series = NULL, *survivors = NULL;
    PyObject *dict = NULL;
    frames = mh_binding_traceback_frames_new(mh_gens_site_traceback(v->site));
    series = frames ? series_new(v->site) : NULL;
    survivors = series ? survivors_new(result, v) : NULL;
    if (survivors == NULL) {
        goto done;
    }
    dict = Py_BuildValue(
        "{s:I,s:O,s:O,s:d,s:K,s:K,s:K,s:d,s:d,s:n,s:I,s:I,s:O,s:O,s:O}",
        "site", (unsigned int)v->site, "native",
        mh_gens_site_native(v->site) ? Py_True : Py_False, "leaking",
        v->is_leak ? Py_True : Py_False, "confidence", v->confidence,
        "live_bytes", (unsigned long long)v->live_bytes, "live_blocks",
        (unsigned long long)v->live_blocks, "growth_bytes",
        (unsigned long long)v->growth_bytes, "growth_bytes_per_s",
        v->growth_per_s, "growth_bytes_per_iteration", v->growth_per_iteration,
        "first_generation", (Py_ssize_t)v->first_generation,
        "generations_with_survivors",
        (unsigned int)v->generations_with_survivors, "generations_observed",
        (unsigned int)v->generations_observed, "traceback", frames, "series",
        series, "survivors", survivors);
    if (dict != NULL && nstack != NULL && nstack->blocks > 0) {
        PyObject *stack = native_stack_new(nstack);
        if (stack == NULL ||
            PyDict_SetItemString(dict, "native_stack", stack) < 0) {
            Py_CLEAR(dict);
        }
        Py_XDECREF(stack);
    }
done:
    Py_XDECREF(frames);
    Py_XDECREF(series);
    Py_XDECREF(survivors);
    return dict;
}

/* The native stacks of the native sites a report shows (issue 5): one
 * pass over nativestack.c's side table for all of them.  tops[k] belongs
 * to result->sites[i] when slot[i] == k + 1. */
typedef struct {
    mh_nstack_top_t *tops;
    size_t tops_cap;
    uint32_t *slot; /* by site index; 0: no stack asked for */
    size_t nslots;
} site_stacks_t;

/* site_of for mh_nstack_top_by_site: a native block's site key.  Takes the
 * raw table's lock (nativestack.c's lock is held: that order only). */
static int
native_block_site(uintptr_t ptr, uint32_t *site, void *arg)
{
    (void)arg;
    uint32_t tb;
    uint64_t size;
    uint16_t gen;
    uint8_t domain;
    if (!mh_hooks_lookup(ptr, &tb, &size, &gen, &domain) ||
        domain != MH_DOMAIN_NATIVE) {
        return 0;
    }
    *site = mh_gens_site_key(tb, 1);
    return 1;
}

static void
site_stacks_free(site_stacks_t *st)
{
    mh_rawmem_free(st->tops, st->tops_cap * sizeof(*st->tops));
    mh_rawmem_free(st->slot, st->nslots * sizeof(*st->slot));
    memset(st, 0, sizeof(*st));
}

/* Fill st for the native sites among result->sites[0, nleaks) and
 * result->sites[top[0..ntop)].  Nothing to do (st stays empty) unless
 * native stacks are recorded.  0, or -1 when out of memory (no exception
 * set). */
static int
site_stacks_fill(site_stacks_t *st, const mh_leak_result_t *result,
                 size_t nleaks, const size_t *top, size_t ntop)
{
    memset(st, 0, sizeof(*st));
    if (!mh_nstack_enabled() || result->nsites == 0) {
        return 0;
    }
    st->slot = mh_rawmem_calloc(result->nsites, sizeof(*st->slot));
    st->tops = mh_rawmem_calloc(nleaks + ntop + 1, sizeof(*st->tops));
    if (st->slot == NULL || st->tops == NULL) {
        mh_rawmem_free(st->slot, result->nsites * sizeof(*st->slot));
        mh_rawmem_free(st->tops, (nleaks + ntop + 1) * sizeof(*st->tops));
        memset(st, 0, sizeof(*st));
        return -1;
    }
    st->nslots = result->nsites;
    st->tops_cap = nleaks + ntop + 1;
    size_t n = 0;
    for (size_t k = 0; k < nleaks + ntop; k++) {
        size_t i = k < nleaks ? k : top[k - nleaks];
        uint32_t site = result->sites[i].site;
        if (!mh_gens_site_native(site) || st->slot[i] != 0) {
            continue;
        }
        st->tops[n].site = site;
        st->slot[i] = (uint32_t)++n;
    }
    if (n > 0 &&
        mh_nstack_top_by_site(st->tops, n, native_block_site, NULL) < 0) {
        site_stacks_free(st);
        return -1;
    }
    return 0;
}

static const mh_nstack_top_t *
site_stack_of(const site_stacks_t *st, size_t i)
{
    if (st->slot == NULL || st->slot[i] == 0) {
        return NULL;
    }
    return &st->tops[st->slot[i] - 1];
}

/* Append the verdicts [begin, end) of result to list. */
static int
append_verdicts(PyObject *list, const mh_leak_result_t *result, size_t begin,
                size_t end, const site_stacks_t *stacks)
{
    for (size_t i = begin; i < end; i++) {
        PyObject *item =
            verdict_new(result, &result->sites[i], site_stack_of(stacks, i));
        if (item == NULL) {
            return -1;
        }
        int rc = PyList_Append(list, item);
        Py_DECREF(item);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* The largest sites by live size (result->sites is sorted leaks first):
 * indices of the top `n` by live_bytes, in *out (caller's array). */
static size_t
largest_sites(const mh_leak_result_t *result, size_t n, size_t *out)
{
    size_t count = 0;
    for (size_t i = 0; i < result->nsites; i++) {
        uint64_t bytes = result->sites[i].live_bytes;
        if (count < n) {
            out[count++] = i;
        }
        else if (bytes > result->sites[out[count - 1]].live_bytes) {
            out[count - 1] = i;
        }
        else {
            continue;
        }
        /* Keep out[] sorted by live bytes, largest first. */
        for (size_t k = count - 1;
             k > 0 && result->sites[out[k]].live_bytes >
                          result->sites[out[k - 1]].live_bytes;
             k--) {
            size_t tmp = out[k];
            out[k] = out[k - 1];
            out[k - 1] = tmp;
        }
    }
    return count;
}

PyObject *
mh_binding_gens_analyze(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"iteration", "min_confidence", "min_generations",
                             "max_leaks", "largest",        NULL};
    long long iteration = -1;
    double min_confidence = 0.5;
    unsigned int min_generations = 3;
    Py_ssize_t max_leaks = 50, nlargest = 10;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "|LdInn:gens_analyze", kwlist, &iteration,
            &min_confidence, &min_generations, &max_leaks, &nlargest)) {
        return NULL;
    }
    if (max_leaks < 0 || nlargest < 0 || nlargest > 100000) {
        PyErr_SetString(PyExc_ValueError,
                        "max_leaks and largest must be >= 0 (largest at "
                        "most 100000)");
        return NULL;
    }
    /* First: it may run code that stops tracing, checked next. */
    release_dead_code();
    if (require_tracing() < 0 || ensure_history() < 0) {
        return NULL;
    }
    PyObject *out = NULL, *leaks = NULL, *largest = NULL, *gens = NULL;
    size_t *top = NULL;
    mh_leak_result_t result = {0};
    site_stacks_t stacks = {0};
    mh_hooks_suspend_thread();
    mh_survivors_t *surv = mh_survivors_new();
    scan_state_t st = {history, surv, history_sample_mean};
    if (surv == NULL || mh_hooks_foreach_block(scan_survivors_visit, &st) ||
        mh_leaks_analyze(history, surv, mh_monotonic_seconds() - history_t0,
                         iteration,
                         &(mh_leak_params_t){min_confidence, min_generations},
                         &result) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    leaks = PyList_New(0);
    largest = PyList_New(0);
    gens = generations_new();
    if (leaks == NULL || largest == NULL || gens == NULL) {
        goto done;
    }
    size_t nleaks =
        result.nleaks < (size_t)max_leaks ? result.nleaks : (size_t)max_leaks;
    top = mh_rawmem_malloc(((size_t)nlargest + 1) * sizeof(size_t));
    if (top == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t ntop = largest_sites(&result, (size_t)nlargest, top);
    if (site_stacks_fill(&stacks, &result, nleaks, top, ntop) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (append_verdicts(leaks, &result, 0, nleaks, &stacks) < 0) {
        goto done;
    }
    for (size_t i = 0; i < ntop; i++) {
        if (append_verdicts(largest, &result, top[i], top[i] + 1, &stacks) <
            0) {
            goto done;
        }
    }
    out = Py_BuildValue("{s:O,s:O,s:O,s:n,s:n,s:d,s:O,s:n}", "leaks", leaks,
                        "largest", largest, "generations", gens, "sites",
                        (Py_ssize_t)result.nsites, "candidates",
                        (Py_ssize_t)result.nleaks, "elapsed",
                        mh_monotonic_seconds() - history_t0, "saturated",
                        history_saturated ? Py_True : Py_False, "lost_scans",
                        history_lost_scans);
done:
    mh_rawmem_free(top, ((size_t)nlargest + 1) * sizeof(size_t));
    site_stacks_free(&stacks);
    Py_XDECREF(leaks);
    Py_XDECREF(largest);
    Py_XDECREF(gens);
    mh_leaks_result_free(&result);
    mh_survivors_free(surv);
    mh_hooks_resume_thread();
    return out;
}
