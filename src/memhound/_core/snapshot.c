/* snapshot.c: live state -> mh_snapdata_t (see snapshot.h).
 *
 * The blocks are copied under the table lock in one pass (hooks.c); the
 * rest works on the traceback store, which the GIL protects.  Python is
 * called only to turn names into UTF-8 and line offsets into numbers, with
 * this thread's allocations untraced so the store can't change underneath.
 */
#include "snapshot.h"

#include <string.h>
#include <time.h>

#include "hooks.h"
#include "rawmem.h"
#include "table.h"
#include "tracebacks.h"

typedef struct {
    mh_snapdata_t *snap;
    mh_tbstore_t *store;
    uint32_t *tb_map;    /* store node -> snapshot traceback (0: none);
                            NULL when building a single traceback */
    uint32_t *frame_map; /* store node -> snapshot frame + 1 (0: none);
                            NULL likewise */
    size_t map_len;      /* nodes in the store */
    mh_table_t strings;  /* str object address -> string index */
    uint32_t *frame_ids; /* scratch for one traceback */
    size_t frame_ids_cap;
} builder_t;

/* The snapshot string index of a str object.  -1 with an exception set. */
static int64_t
intern_string(builder_t *b, PyObject *str)
{
    uint32_t index;
    if (str == NULL || !PyUnicode_Check(str)) {
        return 0; /* "" */
    }
    if (mh_table_get(&b->strings, (uint64_t)(uintptr_t)str, &index)) {
        return index;
    }
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(str, &len);
    PyObject *bytes = NULL;
    if (utf8 == NULL) {
        /* Lone surrogates (undecodable file names): keep them. */
        PyErr_Clear();
        bytes = PyUnicode_AsEncodedString(str, "utf-8", "surrogatepass");
        if (bytes == NULL) {
            return -1;
        }
        utf8 = PyBytes_AS_STRING(bytes);
        len = PyBytes_GET_SIZE(bytes);
    }
    int64_t added = mh_snapdata_add_string(b->snap, utf8, (size_t)len);
    Py_XDECREF(bytes);
    if (added < 0 || mh_table_put(&b->strings, (uint64_t)(uintptr_t)str,
                                  (uint32_t)added) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return added;
}

/* The snapshot frame for the frame of store node `id` (not an alias). */
static int64_t
map_frame(builder_t *b, uint32_t id)
{
    if (b->frame_map != NULL && b->frame_map[id] != 0) {
        return b->frame_map[id] - 1;
    }
    PyObject *filename_obj, *name;
    int lineno;
    mh_tbstore_frame(b->store, id, &filename_obj, &name, &lineno);
    int64_t filename = intern_string(b, filename_obj);
    if (filename < 0) {
        return -1;
    }
    int64_t function = intern_string(b, name);
    if (function < 0) {
        return -1;
    }
    int64_t index = mh_snapdata_add_frame(b->snap, (uint32_t)filename,
                                          (uint32_t)function, lineno);
    if (index < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->frame_map != NULL) {
        b->frame_map[id] = (uint32_t)index + 1;
    }
    return index;
}

/* The snapshot traceback for store node `leaf`: its parent chain, innermost
 * first, made into frames. */
static int64_t
map_traceback(builder_t *b, uint32_t leaf)
{
    if (leaf == 0) {
        return 0;
    }
    if (b->tb_map != NULL && b->tb_map[leaf] != 0) {
        return b->tb_map[leaf];
    }
    const mh_tbnode_t *node = mh_tbstore_node(b->store, leaf);
    uint16_t total = node->total_nframe;
    uint32_t id = node->code == NULL ? node->parent : leaf;
    uint16_t n = mh_tbstore_node(b->store, id)->depth;
    if (mh_rawmem_reserve((void **)&b->frame_ids, &b->frame_ids_cap, n,
                          sizeof(uint32_t)) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint16_t i = 0; i < n && id != 0; i++) {
        int64_t f = map_frame(b, id);
        if (f < 0) {
            return -1;
        }
        b->frame_ids[i] = (uint32_t)f;
        id = mh_tbstore_node(b->store, id)->parent;
    }
    int64_t index = mh_snapdata_add_traceback(b->snap, b->frame_ids, n, total);
    if (index < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->tb_map != NULL) {
        b->tb_map[leaf] = (uint32_t)index;
    }
    return index;
}

/* with_maps: dense maps over every store node, so that the tracebacks
 * and frames that many blocks share are resolved once (take_snapshot).
 * Without them each traceback asked for is built afresh, which is right
 * for one traceback (get_object_traceback) and costs nothing per node of
 * the store. */
static int
builder_init(builder_t *b, mh_snapdata_t *snap, int with_maps)
{
    memset(b, 0, sizeof(*b));
    b->snap = snap;
    b->store = mh_hooks_store();
    mh_table_init(&b->strings);
    b->map_len = mh_tbstore_count(b->store);
    if (!with_maps) {
        return 0;
    }
    b->tb_map = mh_rawmem_calloc(b->map_len, sizeof(uint32_t));
    b->frame_map = mh_rawmem_calloc(b->map_len, sizeof(uint32_t));
    if (b->tb_map == NULL || b->frame_map == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
builder_fini(builder_t *b)
{
    if (b->tb_map != NULL) {
        mh_rawmem_free(b->tb_map, b->map_len * sizeof(uint32_t));
    }
    if (b->frame_map != NULL) {
        mh_rawmem_free(b->frame_map, b->map_len * sizeof(uint32_t));
    }
    mh_rawmem_free(b->frame_ids, b->frame_ids_cap * sizeof(uint32_t));
    mh_table_fini(&b->strings);
}

/* The order of blocks inside one traceback's bucket: the file format's
 * group order (see snapfile_encode.c). */
static inline uint32_t
block_group_key(const mh_snap_block_t *b)
{
    return ((uint32_t)(b->flags << 2 | b->domain) << 16) | b->generation;
}

static int
compare_group_keys(const void *a, const void *b)
{
    uint32_t ka = block_group_key(a), kb = block_group_key(b);
    return ka < kb ? -1 : ka > kb;
}

/* Put the blocks in the snapshot file's canonical order: by traceback,
 * then by (flags, domain, generation).  The file keeps the order of blocks
 * within one (traceback, flags, domain, generation) group, so a snapshot
 * in this order reads back from its file exactly as it was taken, and the
 * blocks of one site sit together.  In place (American flag sort by
 * traceback, then qsort of the rare buckets that mix domains or
 * generations): a second array of tens of millions of blocks would cost
 * more in page faults than the sort itself.  Returns 0, or -1 when out of
 * memory (the blocks are then unchanged). */
static int
sort_blocks(mh_snapdata_t *snap)
{
    size_t n = snap->nblocks, nt = snap->ntracebacks;
    mh_snap_block_t *blocks = snap->blocks;
    size_t *end = mh_rawmem_calloc(nt, sizeof(size_t));
    size_t *next = mh_rawmem_malloc(nt * sizeof(size_t));
    int result = -1;
    if (end == NULL || next == NULL) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        end[blocks[i].traceback]++;
    }
    size_t sum = 0;
    for (size_t t = 0; t < nt; t++) {
        next[t] = sum;
        sum += end[t];
        end[t] = sum;
    }
    /* Each swap puts one block into its bucket for good. */
    for (size_t t = 0; t < nt; t++) {
        while (next[t] < end[t]) {
            mh_snap_block_t block = blocks[next[t]];
            uint32_t home = block.traceback;
            if (home == t) {
                next[t]++;
                continue;
            }
            blocks[next[t]] = blocks[next[home]];
            blocks[next[home]++] = block;
        }
    }
    size_t begin = 0;
    for (size_t t = 0; t < nt; t++) {
        for (size_t i = begin + 1; i < end[t]; i++) {
            if (block_group_key(&blocks[i]) !=
                block_group_key(&blocks[begin])) {
                qsort(blocks + begin, end[t] - begin, sizeof(*blocks),
                      compare_group_keys);
                break;
            }
        }
        begin = end[t];
    }
    result = 0;
done:
    mh_rawmem_free(end, nt * sizeof(size_t));
    mh_rawmem_free(next, nt * sizeof(size_t));
    return result;
}

static mh_snapdata_t *
new_snapdata(void)
{
    mh_snapdata_t *snap = mh_snapdata_new();
    if (snap == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    mh_config_t config = mh_hooks_config();
    snap->traceback_limit = (uint32_t)config.depth;
    snap->sample_mean = config.sample_mean;
    snap->python_hexversion = PY_VERSION_HEX;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snap->timestamp = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
    return snap;
}

/* Start building: this thread untraced, a new snapshot, the builder.
 * Returns 0, or -1 with an exception set (then everything is undone). */
static int
build_begin(builder_t *b, mh_snapdata_t **snap, int with_maps)
{
    mh_hooks_suspend_thread();
    *snap = new_snapdata();
    if (*snap != NULL && builder_init(b, *snap, with_maps) == 0) {
        return 0;
    }
    if (*snap != NULL) {
        builder_fini(b);
        mh_snapdata_free(*snap);
        *snap = NULL;
    }
    mh_hooks_resume_thread();
    return -1;
}

/* Finish building: returns snap, or frees it and returns NULL when !ok. */
static mh_snapdata_t *
build_end(builder_t *b, mh_snapdata_t *snap, int ok)
{
    builder_fini(b);
    if (!ok) {
        mh_snapdata_free(snap);
        snap = NULL;
    }
    mh_hooks_resume_thread();
    return snap;
}

mh_snapdata_t *
mh_snapshot_take(void)
{
    if (!mh_hooks_is_tracing() || mh_hooks_store() == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "memhound must be tracing memory allocations to "
                        "take a snapshot (call memhound.start() first)");
        return NULL;
    }
    builder_t b;
    mh_snapdata_t *snap;
    if (build_begin(&b, &snap, 1) < 0) {
        return NULL;
    }
    if (mh_hooks_export_blocks(snap) < 0) {
        PyErr_NoMemory();
        return build_end(&b, snap, 0);
    }
    for (size_t i = 0; i < snap->nblocks; i++) {
        uint32_t store_tb = snap->blocks[i].traceback;
        if (store_tb >= b.map_len) {
            /* Interned by another thread after builder_init: impossible
             * while we hold the GIL, but never index out of bounds. */
            snap->blocks[i].traceback = 0;
            continue;
        }
        int64_t tb = map_traceback(&b, store_tb);
        if (tb < 0) {
            return build_end(&b, snap, 0);
        }
        snap->blocks[i].traceback = (uint32_t)tb;
    }
    if (sort_blocks(snap) < 0) {
        PyErr_NoMemory();
        return build_end(&b, snap, 0);
    }
    return build_end(&b, snap, 1);
}

mh_snapdata_t *
mh_snapshot_of_traceback(uint32_t store_traceback)
{
    if (mh_hooks_store() == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "memhound is not tracing");
        return NULL;
    }
    builder_t b;
    mh_snapdata_t *snap;
    if (build_begin(&b, &snap, 0) < 0) {
        return NULL;
    }
    if (store_traceback >= b.map_len) {
        PyErr_SetString(PyExc_ValueError, "unknown traceback");
        return build_end(&b, snap, 0);
    }
    int ok = store_traceback == 0 || map_traceback(&b, store_traceback) >= 0;
    return build_end(&b, snap, ok);
}
