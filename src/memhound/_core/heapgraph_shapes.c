/* heapgraph_shapes.c: retention-path shapes (see heapgraph_shapes.h).
 *
 * shape(root) is the root itself; shape(child) mixes shape(holder), how the
 * holder holds the child and the child's type.  "How" is the key when the
 * holder is a namespace: a structural root (a module's globals) or a dict
 * of at most NAMESPACE_KEYS entries (an instance's __dict__, a config);
 * anything else (list and tuple slots, the keys of a large data dict, a
 * slot) is left out, as the holder's type is already in its shape.
 */
#include "heapgraph_shapes.h"

#include <string.h>

#include "heapgraph_query.h"
#include "rawmem.h"

/* A dict larger than this is data: its keys are not part of the shape
 * (a cache keyed by request id would make every entry a shape). */
#define NAMESPACE_KEYS 64

void
mh_hg_shapes_init(mh_hg_shapes_t *s)
{
    memset(s, 0, sizeof(*s));
    mh_table_init(&s->memo);
    mh_table_init(&s->ids);
}

void
mh_hg_shapes_fini(mh_hg_shapes_t *s)
{
    mh_table_fini(&s->memo);
    mh_table_fini(&s->ids);
    mh_rawmem_free(s->hashes, s->cap * sizeof(uint64_t));
    mh_hg_shapes_init(s);
}

static int
is_structural_root(const mh_heapgraph_t *g, uint32_t n)
{
    for (size_t i = 0; i < g->nstructural; i++) {
        if (g->roots[i] == n) {
            return 1;
        }
    }
    return 0;
}

/* How holder p holds child c, as far as shapes tell: the key's address
 * when p is a namespace and the key an exact str (attribute and global
 * names are interned: one address per name), else 0. */
static uint64_t
edge_key(const mh_heapgraph_t *g, uint32_t p, uint32_t c)
{
    PyObject *holder = g->objs[p];
    if (!PyDict_Check(holder) ||
        (PyDict_GET_SIZE(holder) > NAMESPACE_KEYS &&
         !(g->parent[p] == MH_HG_ROOT && is_structural_root(g, p)))) {
        return 0;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(holder, &pos, &key, &value)) {
        if (value == g->objs[c]) {
            return PyUnicode_CheckExact(key) ? (uint64_t)(uintptr_t)key : 0;
        }
    }
    return 0;
}

/* The id of shape hash h, interned.  -1 when out of memory. */
static int
intern(mh_hg_shapes_t *s, uint64_t h, uint32_t *id)
{
    uint64_t key = h != 0 ? h : 1; /* 0 is the table's empty key */
    if (mh_table_get(&s->ids, key, id)) {
        return 0;
    }
    void *p = s->hashes;
    if (s->count >= UINT32_MAX - 4 ||
        mh_rawmem_reserve(&p, &s->cap, s->count + 1, sizeof(uint64_t)) < 0) {
        return -1;
    }
    s->hashes = p;
    *id = (uint32_t)s->count;
    s->hashes[s->count++] = key;
    return mh_table_put(&s->ids, key, *id);
}

int
mh_hg_shape(const mh_heapgraph_t *g, mh_hg_shapes_t *s, uint32_t n,
            uint32_t *path, uint32_t *shape)
{
    size_t len = 0;
    uint32_t u = n, id;
    uint64_t h;
    /* Climb to a node whose shape is known, or to the search's source. */
    for (;;) {
        if (mh_table_get(&s->memo, (uint64_t)u + 1, &id)) {
            h = s->hashes[id];
            break;
        }
        uint32_t p = g->parent[u];
        if (p == MH_HG_ROOT || p == MH_HG_NONE) {
            /* A source of the search is a shape of its own. */
            h = mh_table_mix(((uint64_t)u << 1 | (p == MH_HG_NONE)) ^
                             0x5bd1e9955bd1e995ULL);
            if (intern(s, h, &id) < 0 ||
                mh_table_put(&s->memo, (uint64_t)u + 1, id) < 0) {
                return -1;
            }
            break;
        }
        path[len++] = u;
        u = p;
    }
    /* Back down: each node's shape from its holder's. */
    while (len > 0) {
        uint32_t c = path[--len];
        uint32_t p = g->parent[c];
        uint64_t how = edge_key(g, p, c);
        uint64_t type = (uint64_t)(uintptr_t)Py_TYPE(g->objs[c]);
        h = mh_table_mix(h * 0x9e3779b97f4a7c15ULL ^ mh_table_mix(how) ^
                         (type * 31));
        if (intern(s, h, &id) < 0 ||
            mh_table_put(&s->memo, (uint64_t)c + 1, id) < 0) {
            return -1;
        }
    }
    *shape = id;
    return 0;
}
