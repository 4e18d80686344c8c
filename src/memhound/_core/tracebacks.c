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

#include "rawmem.h"
#include "table.h"

struct mh_tbstore {
    mh_tbnode_t *nodes;
    size_t nnodes, nodes_cap;
    mh_table_t node_index; /* hash -> first node of its chain */
    uint64_t serial;
};

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

int
mh_tbcache_reserve(mh_tbcache_t *cache, int depth)
{
    if (cache->capacity >= depth) {
        return 0;
    }
    mh_raw_frame_t *frames[2] = {NULL, NULL};
    uint32_t *nodes[2] = {NULL, NULL};
    for (int b = 0; b < 2; b++) {
        /* One spare node slot: nodes[b][n] is the root. */
        frames[b] = malloc((size_t)depth * sizeof(mh_raw_frame_t));
        nodes[b] = malloc((size_t)(depth + 1) * sizeof(uint32_t));
        if (frames[b] == NULL || nodes[b] == NULL) {
            for (int k = 0; k <= b; k++) {
                free(frames[k]);
                free(nodes[k]);
            }
            return -1;
        }
    }
    mh_tbcache_release(cache);
    for (int b = 0; b < 2; b++) {
        cache->frames[b] = frames[b];
        cache->nodes[b] = nodes[b];
    }
    cache->capacity = depth;
    return 0;
}

void
mh_tbcache_release(mh_tbcache_t *cache)
{
    for (int b = 0; b < 2; b++) {
        free(cache->frames[b]);
        free(cache->nodes[b]);
        cache->frames[b] = NULL;
        cache->nodes[b] = NULL;
    }
    cache->capacity = 0;
    cache->last = 0;
    cache->nlast = 0;
    cache->store_serial = 0;
}

mh_tbstore_t *
mh_tbstore_new(void)
{
    mh_tbstore_t *store = mh_rawmem_calloc(1, sizeof(*store));
    if (store == NULL) {
        return NULL;
    }
    mh_table_init(&store->node_index);
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
        Py_XDECREF(store->nodes[i].code);
    }
    mh_rawmem_free(store->nodes, store->nodes_cap * sizeof(mh_tbnode_t));
    mh_table_fini(&store->node_index);
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

uint32_t
mh_tbstore_intern(mh_tbstore_t *store, mh_tbcache_t *cache, int n,
                  uint32_t total)
{
    if (n <= 0) {
        return 0;
    }
    int cur = cache->last ^ 1;
    const mh_raw_frame_t *frames = cache->frames[cur];
    uint32_t *nodes = cache->nodes[cur];

    /* How many outer frames the last traceback shares with this one,
     * aligned at the outer end. */
    int shared = 0;
    if (cache->nlast > 0 && cache->store_serial == store->serial) {
        const mh_raw_frame_t *old = cache->frames[cache->last];
        const uint32_t *old_nodes = cache->nodes[cache->last];
        int nold = cache->nlast;
        int limit = n < nold ? n : nold;
        while (shared < limit &&
               frames[n - 1 - shared].code == old[nold - 1 - shared].code &&
               frames[n - 1 - shared].offset ==
                   old[nold - 1 - shared].offset) {
            shared++;
        }
        for (int k = 0; k <= shared; k++) {
            nodes[n - k] = old_nodes[nold - k];
        }
    }
    else {
        nodes[n] = 0;
    }
    for (int i = n - 1 - shared; i >= 0; i--) {
        uint32_t node =
            intern_node(store, nodes[i + 1], frames[i].code, frames[i].offset);
        if (node == MH_TB_NONE) {
            cache->nlast = 0;
            return MH_TB_NONE;
        }
        nodes[i] = node;
    }
    cache->last = cur;
    cache->nlast = n;
    cache->store_serial = store->serial;

    uint32_t leaf = nodes[0];
    if (total > UINT16_MAX) {
        total = UINT16_MAX;
    }
    if (total > store->nodes[leaf].depth) {
        return intern_node(store, leaf, NULL, total);
    }
    return leaf;
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
           mh_table_memory(&store->node_index);
}

mh_tbnode_t *
mh_tbstore_node(mh_tbstore_t *store, uint32_t index)
{
    return &store->nodes[index];
}
uint64_t
mh_tbstore_serial(const mh_tbstore_t *store)
{
    return store->serial;
}
