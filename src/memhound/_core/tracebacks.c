/* tracebacks.c: the traceback tree (see tracebacks.h).
 *
 * Nodes live in one array; node_index maps hash(parent, code, offset) to
 * the first node of a collision chain linked through `next`.  Every store
 * gets a serial number so a thread's cache made against an older store is
 * never trusted.  Protected by the main GIL.
 */
#include "tracebacks.h"

#include <stdlib.h>
#include <string.h>

#include "frames.h"
#include "rawmem.h"
#include "table.h"

/* The names of a code object that died, shared by all its nodes and by
 * every other dead code with the same file and function names. */
typedef struct {
    PyObject *filename; /* strong references */
    PyObject *name;
    uint32_t next; /* next ghost with the same hash; MH_TB_NONE ends */
} ghost_t;

struct mh_tbstore {
    mh_tbnode_t *nodes;
    size_t nnodes, nodes_cap;
    mh_table_t node_index; /* hash -> first node of its chain */
    uint64_t serial;
    ghost_t *ghosts;
    size_t nghosts, ghosts_cap;
    mh_table_t ghost_index; /* hash of the names -> first ghost */
};

/* node->code of a node whose code object died: the address of a static,
 * so it never equals a live code object and lookups never match it; its
 * names are then ghosts[node->offset]. */
static const char ghost_tag;
#define GHOST_CODE ((PyCodeObject *)(uintptr_t)&ghost_tag)

/* Store serials start at 1, so a zeroed cache matches no store.  GIL. */
static uint64_t last_serial;

static inline uint64_t
node_hash(uint32_t parent, const PyCodeObject *code, uint32_t offset)
{
    uint64_t h = mh_table_mix((uint64_t)(uintptr_t)code ^
                              ((uint64_t)parent << 32 | offset) ^
                              ((uint64_t)offset << 48));
    return h ? h : 1;
}

/* The recent-cache slot of (parent, code, offset): cheaper than
 * node_hash, only a few bits are used. */
static inline size_t
recent_slot(uint32_t parent, const PyCodeObject *code, uint32_t offset)
{
    uint64_t h = ((uint64_t)(uintptr_t)code >> 4) ^ offset ^
                 ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);
    h *= 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 56) & (MH_TBCACHE_RECENT - 1);
}

int
mh_tbcache_reserve(mh_tbcache_t *cache, int depth)
{
    if (cache->capacity >= depth) {
        return 0;
    }
    mh_tbrecent_t *recent = cache->recent;
    if (recent == NULL) {
        recent = calloc(MH_TBCACHE_RECENT, sizeof(*recent));
        if (recent == NULL) {
            return -1;
        }
    }
    cache->recent = recent; /* kept by a failure below too */
    mh_raw_frame_t *scratch = malloc((size_t)depth * sizeof(*scratch));
    mh_raw_frame_t *frames = malloc((size_t)depth * sizeof(*frames));
    /* One more node than frames: nodes[0] is the root. */
    uint32_t *nodes = malloc((size_t)(depth + 1) * sizeof(*nodes));
    if (scratch == NULL || frames == NULL || nodes == NULL) {
        free(scratch);
        free(frames);
        free(nodes);
        return -1;
    }
    free(cache->scratch);
    free(cache->frames);
    free(cache->nodes);
    cache->scratch = scratch;
    cache->frames = frames;
    cache->nodes = nodes;
    cache->capacity = depth;
    cache->nlast = 0;
    cache->store_serial = 0;
    return 0;
}

void
mh_tbcache_release(mh_tbcache_t *cache)
{
    free(cache->scratch);
    free(cache->frames);
    free(cache->nodes);
    free(cache->recent);
    memset(cache, 0, sizeof(*cache));
}

mh_tbstore_t *
mh_tbstore_new(void)
{
    mh_tbstore_t *store = mh_rawmem_calloc(1, sizeof(*store));
    if (store == NULL) {
        return NULL;
    }
    mh_table_init(&store->node_index);
    mh_table_init(&store->ghost_index);
    if (mh_rawmem_reserve((void **)&store->nodes, &store->nodes_cap, 256,
                          sizeof(mh_tbnode_t)) < 0) {
        mh_rawmem_free(store, sizeof(*store));
        return NULL;
    }
    /* Node 0: the root, the empty traceback; never in node_index. */
    memset(&store->nodes[0], 0, sizeof(mh_tbnode_t));
    store->nodes[0].next = MH_TB_NONE;
    store->nnodes = 1;
    store->serial = ++last_serial;
    return store;
}

void
mh_tbstore_free(mh_tbstore_t *store)
{
    if (store == NULL) {
        return;
    }
    for (size_t i = 1; i < store->nnodes; i++) {
        if (store->nodes[i].code != GHOST_CODE) {
            Py_XDECREF(store->nodes[i].code);
        }
    }
    for (size_t i = 0; i < store->nghosts; i++) {
        Py_DECREF(store->ghosts[i].filename);
        Py_DECREF(store->ghosts[i].name);
    }
    mh_rawmem_free(store->nodes, store->nodes_cap * sizeof(mh_tbnode_t));
    mh_rawmem_free(store->ghosts, store->ghosts_cap * sizeof(ghost_t));
    mh_table_fini(&store->node_index);
    mh_table_fini(&store->ghost_index);
    mh_rawmem_free(store, sizeof(*store));
}

/* The node (parent, code, offset), added if new.  code NULL makes an alias
 * node with total_nframe `offset`.  MH_TB_NONE when out of memory. */
static uint32_t
intern_node(mh_tbstore_t *store, uint32_t parent, PyCodeObject *code,
            uint32_t offset)
{
    uint64_t h = node_hash(parent, code, offset);
    uint32_t head = MH_TB_NONE;
    if (mh_table_get(&store->node_index, h, &head)) {
        for (uint32_t i = head; i != MH_TB_NONE; i = store->nodes[i].next) {
            const mh_tbnode_t *node = &store->nodes[i];
            if (node->parent == parent && node->code == code &&
                node->offset == offset) {
                return i;
            }
        }
    }
    if (store->nnodes >= MH_TB_LIMIT ||
        mh_rawmem_reserve((void **)&store->nodes, &store->nodes_cap,
                          store->nnodes + 1, sizeof(mh_tbnode_t)) < 0) {
        return MH_TB_NONE;
    }
    uint32_t index = (uint32_t)store->nnodes;
    if (mh_table_put(&store->node_index, h, index) < 0) {
        return MH_TB_NONE;
    }
    const mh_tbnode_t *up = &store->nodes[parent];
    mh_tbnode_t *node = &store->nodes[index];
    Py_XINCREF(code);
    node->code = code;
    node->offset = offset;
    node->parent = parent;
    node->next = head;
    if (code != NULL) {
        node->depth = up->depth < UINT16_MAX ? up->depth + 1 : UINT16_MAX;
        node->total_nframe = node->depth;
    }
    else {
        node->depth = up->depth;
        node->total_nframe = (uint16_t)offset;
    }
    node->lineno = -1;
    store->nnodes++;
    return index;
}

/* The node (parent, code, offset) through the thread's recent-node cache,
 * else the store.  MH_TB_NONE when out of memory. */
static inline uint32_t
intern_cached(mh_tbstore_t *store, mh_tbrecent_t *recent, uint32_t parent,
              PyCodeObject *code, uint32_t offset)
{
    mh_tbrecent_t *entry = &recent[recent_slot(parent, code, offset)];
    if (entry->code == code && entry->offset == offset &&
        entry->parent == parent && code != NULL) {
        return entry->node;
    }
    uint32_t node = intern_node(store, parent, code, offset);
    if (node != MH_TB_NONE) {
        *entry = (mh_tbrecent_t){code, offset, parent, node};
    }
    return node;
}

/* The thread's recent-node cache, emptied first if it was filled against
 * another store (its nodes mean nothing in this one). */
static inline mh_tbrecent_t *
recent_for(const mh_tbstore_t *store, mh_tbcache_t *cache)
{
    if (cache->recent_serial != store->serial) {
        memset(cache->recent, 0, MH_TBCACHE_RECENT * sizeof(*cache->recent));
        cache->recent_serial = store->serial;
    }
    return cache->recent;
}

uint32_t
mh_tbstore_intern(mh_tbstore_t *store, mh_tbcache_t *cache, int n,
                  uint32_t total)
{
    if (n <= 0) {
        return 0;
    }
    const mh_raw_frame_t *captured = cache->scratch;
    mh_raw_frame_t *frames = cache->frames;
    uint32_t *nodes = cache->nodes;
    mh_tbrecent_t *recent = recent_for(store, cache);

    /* How many outer frames the last traceback shares with this one; they
     * and their nodes stay where they are.  All n are compared: the usual
     * case is one differing innermost frame, or none (several blocks
     * allocated at one instruction, mallocs of one C call). */
    int shared = 0;
    if (cache->store_serial != store->serial) {
        cache->nlast = 0;
        nodes[0] = 0;
    }
    int limit = n < cache->nlast ? n : cache->nlast;
    while (shared < limit &&
           captured[n - 1 - shared].code == frames[shared].code &&
           captured[n - 1 - shared].offset == frames[shared].offset) {
        shared++;
    }
    for (int j = shared; j < n; j++) {
        frames[j] = captured[n - 1 - j];
        uint32_t node = intern_cached(store, recent, nodes[j], frames[j].code,
                                      frames[j].offset);
        if (node == MH_TB_NONE) {
            cache->nlast = 0;
            return MH_TB_NONE;
        }
        nodes[j + 1] = node;
    }
    cache->nlast = n;
    cache->store_serial = store->serial;

    uint32_t leaf = nodes[n];
    if (total > UINT16_MAX) {
        total = UINT16_MAX;
    }
    /* total == n unless whole stacks are counted: spare the leaf node's
     * load (a cache miss in a large store) on the usual path. */
    if (total > (uint32_t)n && total > store->nodes[leaf].depth) {
        return intern_node(store, leaf, NULL, total);
    }
    return leaf;
}

uint32_t
mh_tbstore_intern_leaf(mh_tbstore_t *store, mh_tbcache_t *cache,
                       mh_raw_frame_t leaf)
{
    int n = cache->nlast;
    mh_raw_frame_t *last = &cache->frames[n - 1];
    if (last->code == leaf.code && last->offset == leaf.offset) {
        return cache->nodes[n];
    }
    uint32_t node = intern_cached(store, recent_for(store, cache),
                                  cache->nodes[n - 1], leaf.code, leaf.offset);
    if (node == MH_TB_NONE) {
        cache->nlast = 0;
        return MH_TB_NONE;
    }
    *last = leaf;
    cache->nodes[n] = node;
    return node;
}

size_t
mh_tbstore_count(const mh_tbstore_t *store)
{
    return store->nnodes;
}

size_t
mh_tbstore_memory(const mh_tbstore_t *store)
{
    return sizeof(*store) + store->nodes_cap * sizeof(mh_tbnode_t) +
           mh_table_memory(&store->node_index) +
           store->ghosts_cap * sizeof(ghost_t) +
           mh_table_memory(&store->ghost_index);
}

mh_tbnode_t *
mh_tbstore_node(mh_tbstore_t *store, uint32_t index)
{
    return &store->nodes[index];
}

static PyObject *
code_name(PyCodeObject *code)
{
#if PY_VERSION_HEX >= 0x030B0000
    return code->co_qualname;
#else
    return code->co_name;
#endif
}

void
mh_tbstore_frame(mh_tbstore_t *store, uint32_t index, PyObject **filename,
                 PyObject **name, int *lineno)
{
    mh_tbnode_t *node = &store->nodes[index];
    if (node->code == GHOST_CODE) {
        *filename = store->ghosts[node->offset].filename;
        *name = store->ghosts[node->offset].name;
    }
    else {
        if (node->lineno < 0) {
            node->lineno = mh_frames_lineno(node->code, node->offset);
        }
        *filename = node->code->co_filename;
        *name = code_name(node->code);
    }
    *lineno = node->lineno;
}

uint64_t
mh_tbstore_serial(const mh_tbstore_t *store)
{
    return __atomic_load_n(&store->serial, __ATOMIC_RELAXED);
}

/* A hash of a dead code's names.  Only exact str are hashed by value (a
 * subclass's __hash__ would be Python code); other names hash by address
 * and are never shared. */
static uint64_t
names_hash(PyObject *filename, PyObject *name)
{
    uint64_t h;
    if (PyUnicode_CheckExact(filename) && PyUnicode_CheckExact(name)) {
        /* Can't fail for an exact str. */
        uint64_t a = (uint64_t)PyObject_Hash(filename);
        uint64_t b = (uint64_t)PyObject_Hash(name);
        h = mh_table_mix(a ^ (b * 0x9E3779B97F4A7C15ULL));
    }
    else {
        h = mh_table_mix((uint64_t)(uintptr_t)filename ^
                         ((uint64_t)(uintptr_t)name << 1));
    }
    return h ? h : 1;
}

static int
same_name(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    return PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b) &&
           PyUnicode_Compare(a, b) == 0;
}

/* The ghost for (filename, name), added if new; MH_TB_NONE when out of
 * memory.  Sharing ghosts by value keeps one copy of the names however
 * many times the same source is compiled anew (exec, namedtuple). */
static uint32_t
intern_ghost(mh_tbstore_t *store, PyObject *filename, PyObject *name)
{
    uint64_t h = names_hash(filename, name);
    uint32_t head = MH_TB_NONE;
    if (mh_table_get(&store->ghost_index, h, &head)) {
        for (uint32_t i = head; i != MH_TB_NONE; i = store->ghosts[i].next) {
            if (same_name(store->ghosts[i].filename, filename) &&
                same_name(store->ghosts[i].name, name)) {
                return i;
            }
        }
    }
    if (store->nghosts >= MH_TB_LIMIT ||
        mh_rawmem_reserve((void **)&store->ghosts, &store->ghosts_cap,
                          store->nghosts + 1, sizeof(ghost_t)) < 0) {
        return MH_TB_NONE;
    }
    uint32_t index = (uint32_t)store->nghosts;
    if (mh_table_put(&store->ghost_index, h, index) < 0) {
        return MH_TB_NONE;
    }
    Py_INCREF(filename);
    Py_INCREF(name);
    store->ghosts[index] = (ghost_t){filename, name, head};
    store->nghosts++;
    return index;
}

/* Set in a code's refs-table value once it is found dead; the rest is its
 * ghost index.  Reference counts stay far below (MH_TB_LIMIT nodes). */
#define DEAD_BIT (UINT32_C(1) << 31)

typedef struct {
    PyCodeObject *code;
    uint32_t refs; /* references the store holds */
} dead_code_t;

/* One round of mh_tbstore_release_dead_code. */
static Py_ssize_t
release_round(mh_tbstore_t *store)
{
    mh_table_t refs; /* code -> references held, then DEAD_BIT | ghost */
    mh_table_init(&refs);
    dead_code_t *dead = NULL;
    size_t ndead = 0, deadcap = 0;
    Py_ssize_t result = -1;

    for (size_t i = 1; i < store->nnodes; i++) {
        PyCodeObject *code = store->nodes[i].code;
        if (code == NULL || code == GHOST_CODE) {
            continue;
        }
        uint64_t key = (uint64_t)(uintptr_t)code;
        uint32_t n = 0;
        (void)mh_table_get(&refs, key, &n);
        if (mh_table_put(&refs, key, n + 1) < 0) {
            goto done;
        }
    }
    /* Codes nothing but the store holds.  Out of memory part way: those
     * found so far are released, the others wait for the next round. */
    for (size_t j = 0; j < refs.capacity; j++) {
        mh_table_slot_t *slot = &refs.slots[j];
        if (slot->key == 0) {
            continue;
        }
        PyCodeObject *code = (PyCodeObject *)(uintptr_t)slot->key;
        if (Py_REFCNT(code) != (Py_ssize_t)slot->value) {
            continue;
        }
        uint32_t ghost =
            intern_ghost(store, code->co_filename, code_name(code));
        if (ghost == MH_TB_NONE ||
            mh_rawmem_reserve((void **)&dead, &deadcap, ndead + 1,
                              sizeof(dead_code_t)) < 0) {
            break;
        }
        dead[ndead++] = (dead_code_t){code, slot->value};
        slot->value = DEAD_BIT | ghost;
    }
    /* Their nodes keep their line numbers (computed now, while the code
     * lives) and take the ghost's names. */
    for (size_t i = 1; ndead > 0 && i < store->nnodes; i++) {
        mh_tbnode_t *node = &store->nodes[i];
        uint32_t value = 0;
        if (node->code == NULL || node->code == GHOST_CODE ||
            !mh_table_get(&refs, (uint64_t)(uintptr_t)node->code, &value) ||
            !(value & DEAD_BIT)) {
            continue;
        }
        if (node->lineno < 0) {
            node->lineno = mh_frames_lineno(node->code, node->offset);
        }
        node->code = GHOST_CODE;
        node->offset = value & ~DEAD_BIT;
    }
    if (ndead > 0) {
        /* Threads' caches hold raw code addresses, which a new code object
         * may now take: they must not trust their nodes any more. */
        __atomic_store_n(&store->serial, ++last_serial, __ATOMIC_RELAXED);
    }
    /* The references go last: a code's deallocation can run code (co_extra
     * free functions, watchers, weakref callbacks) that allocates, and so
     * interns tracebacks; the store is consistent by then. */
    for (size_t k = 0; k < ndead; k++) {
        for (uint32_t r = 0; r < dead[k].refs; r++) {
            Py_DECREF(dead[k].code);
        }
    }
    result = (Py_ssize_t)ndead;
done:
    mh_rawmem_free(dead, deadcap * sizeof(dead_code_t));
    mh_table_fini(&refs);
    return result;
}

Py_ssize_t
mh_tbstore_release_dead_code(mh_tbstore_t *store)
{
    return release_round(store);
}
