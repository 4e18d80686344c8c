/* heapgraph_sites.c: joining the heap graph with the live-block table:
 * each node's allocation site and block size, garbage per site.
 *
 * GIL held (hooks.h's lookup and the nodes' objects need it).  Memory from
 * rawmem.h; results owned by the caller.
 */
#include "heapgraph_query.h"

#include <stdlib.h>
#include <string.h>

#include "heapgraph_dominators.h"
#include "heapgraph_shapes.h"
#include "rawmem.h"
#include "table.h"

static int
by_bytes_desc(const void *a, const void *b)
{
    const mh_hg_sitesum_t *x = a, *y = b;
    if (x->bytes != y->bytes) {
        return x->bytes < y->bytes ? 1 : -1;
    }
    return x->traceback < y->traceback ? -1 : x->traceback > y->traceback;
}

int
mh_heapgraph_garbage_by_site(const mh_heapgraph_t *g, mh_hg_sitesum_t **out,
                             size_t *count)
{
    mh_table_t index;
    mh_table_init(&index);
    mh_hg_sitesum_t *sums = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t id = 0; id < g->nnodes; id++) {
        if (g->flags[id] & MH_HG_LIVE) {
            continue;
        }
        uint64_t size;
        uint32_t tb;
        if (!mh_heapgraph_block(g, id, &size, &tb)) {
            continue;
        }
        uint32_t slot;
        /* Keys are traceback + 1: key 0 is the table's empty marker. */
        if (!mh_table_get(&index, (uint64_t)tb + 1, &slot)) {
            void *p = sums;
            if (mh_rawmem_reserve(&p, &cap, n + 1, sizeof(*sums)) < 0) {
                goto nomem;
            }
            sums = p;
            slot = (uint32_t)n++;
            sums[slot] = (mh_hg_sitesum_t){.traceback = tb};
            if (mh_table_put(&index, (uint64_t)tb + 1, slot) < 0) {
                goto nomem;
            }
        }
        sums[slot].bytes += size;
        sums[slot].blocks++;
    }
    mh_table_fini(&index);
    if (n > 0) {
        qsort(sums, n, sizeof(*sums), by_bytes_desc);
    }
    /* Hand over exactly n entries' worth so the caller's free matches. */
    if (n == 0) {
        mh_rawmem_free(sums, cap * sizeof(*sums));
        sums = NULL;
    }
    else if (cap > n) {
        void *p =
            mh_rawmem_realloc(sums, cap * sizeof(*sums), n * sizeof(*sums));
        if (p == NULL) {
            goto nomem;
        }
        sums = p;
    }
    *out = sums;
    *count = n;
    return 0;
nomem:
    mh_table_fini(&index);
    mh_rawmem_free(sums, cap * sizeof(*sums));
    return -1;
}

uint64_t
mh_heapgraph_size_big(const mh_heapgraph_t *g, uint32_t n)
{
    size_t lo = 0, hi = g->nbig;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->bigids[mid] < n) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo < g->nbig && g->bigids[lo] == n ? g->bigsize[lo] : MH_HG_BIG;
}

int
mh_heapgraph_ensure_sites(mh_heapgraph_t *g)
{
    if (g->tb != NULL) {
        return 0;
    }
    size_t n = g->nnodes;
    uint32_t *t = mh_rawmem_map(n * sizeof(uint32_t));
    uint32_t *s = mh_rawmem_map(n * sizeof(uint32_t));
    if (t == NULL || s == NULL) {
        goto nomem;
    }
    /* Sizes of 4 GiB and more go to a list sorted by node (filled in
     * node order): a node costs 4 bytes, not 8. */
    for (uint32_t id = 0; id < g->nnodes; id++) {
        uint64_t size;
        mh_heapgraph_block(g, id, &size, &t[id]);
        s[id] = size < MH_HG_BIG ? (uint32_t)size : MH_HG_BIG;
        if (size < MH_HG_BIG) {
            continue;
        }
        void *ids = g->bigids, *sizes = g->bigsize;
        if (mh_rawmem_reserve(&ids, &g->bigidcap, g->nbig + 1,
                              sizeof(uint32_t)) < 0) {
            goto nomem;
        }
        g->bigids = ids;
        if (mh_rawmem_reserve(&sizes, &g->bigsizecap, g->nbig + 1,
                              sizeof(uint64_t)) < 0) {
            goto nomem;
        }
        g->bigsize = sizes;
        g->bigids[g->nbig] = id;
        g->bigsize[g->nbig++] = size;
    }
    g->tb = t;
    g->size = s;
    return 0;
nomem:
    mh_rawmem_unmap(t, n * sizeof(uint32_t));
    mh_rawmem_unmap(s, n * sizeof(uint32_t));
    return -1;
}

static void
add_type(mh_hg_site_t *s, PyTypeObject *type, uint64_t bytes)
{
    size_t i = 0;
    for (; i < s->ntypes; i++) {
        if (s->types[i].type == type) {
            break;
        }
    }
    if (i == s->ntypes) {
        if (s->ntypes < MH_HG_SITE_TYPES) {
            s->types[s->ntypes++] = (mh_hg_typesum_t){.type = type};
        }
        else {
            /* The slot after the last: every other type. */
            i = MH_HG_SITE_TYPES;
            if (s->ntypes == MH_HG_SITE_TYPES) {
                s->types[i] = (mh_hg_typesum_t){.type = NULL};
                s->ntypes++;
            }
        }
    }
    s->types[i].count++;
    s->types[i].bytes += bytes;
}

/* 1 when node p is, by all signs, the __dict__ of an object of site tb
 * (an exact dict whose shortest-path parent is such an object of a class
 * with a __dict__): the dict is part of that object, so chains of the
 * site's objects linked through attributes stay one group (CPython 3.10
 * allocates instance dicts at the first attribute store, another site). */
static int
is_own_dict(const mh_heapgraph_t *g, uint32_t p, uint32_t tb)
{
    if (!PyDict_CheckExact(g->objs[p])) {
        return 0;
    }
    uint32_t pp = g->parent[p];
    if (pp == MH_HG_NONE || pp == MH_HG_ROOT || g->tb[pp] != tb) {
        return 0;
    }
    PyTypeObject *tp = Py_TYPE(g->objs[pp]);
#ifdef Py_TPFLAGS_MANAGED_DICT
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
        return 1;
    }
#endif
    return tp->tp_dictoffset != 0;
}

/* The nearest holder of node n outside site tb: its ancestors on the
 * shortest path are followed while they belong to the same site.  memo
 * caches answers + 1 (0: not known yet), so chains of a site's own
 * objects cost O(length) once in all.  path is scratch of nnodes entries. */
static uint32_t
holder_of(const mh_heapgraph_t *g, uint32_t n, uint32_t *memo, uint32_t *path)
{
    size_t len = 0;
    uint32_t tb = g->tb[n];
    uint32_t u = n, answer;
    for (;;) {
        if (memo[u] != 0) {
            answer = memo[u] - 1;
            break;
        }
        path[len++] = u;
        uint32_t p = g->parent[u];
        if (p == MH_HG_NONE) {
            answer = MH_HG_GARBAGE;
            break;
        }
        if (p == MH_HG_ROOT) {
            answer = u; /* a root of the search holds it directly */
            break;
        }
        if (g->tb[p] != tb && !is_own_dict(g, p, tb)) {
            answer = p;
            break;
        }
        u = p;
    }
    for (size_t i = 0; i < len; i++) {
        memo[path[i]] = answer + 1;
    }
    return answer;
}

static int
by_objects_desc(const void *a, const void *b)
{
    const mh_hg_group_t *x = a, *y = b;
    if (x->objects != y->objects) {
        return x->objects < y->objects ? 1 : -1;
    }
    return x->holder < y->holder ? -1 : x->holder > y->holder;
}

static int
by_type_bytes_desc(const void *a, const void *b)
{
    const mh_hg_typesum_t *x = a, *y = b;
    if (x->type == NULL || y->type == NULL) {
        return (x->type == NULL) - (y->type == NULL);
    }
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static uint64_t
big_size(const void *g, uint32_t node)
{
    return mh_heapgraph_size_big(g, node);
}

int
mh_heapgraph_ensure_dominators(mh_heapgraph_t *g)
{
    if (g->retained != NULL) {
        return 0;
    }
    if (mh_heapgraph_ensure_sites(g) < 0) {
        return -1;
    }
    size_t n = g->nnodes;
    size_t nr = 0;
    uint32_t *roots = mh_rawmem_malloc((g->nroots + n) * sizeof(uint32_t));
    uint32_t *idom = mh_rawmem_map(n * sizeof(uint32_t));
    uint64_t *retained = mh_rawmem_map(n * sizeof(uint64_t));
    int rc = -1;
    if (roots == NULL || idom == NULL || retained == NULL) {
        goto done;
    }
    for (size_t i = 0; i < g->nroots; i++) {
        roots[nr++] = g->roots[i];
    }
    for (uint32_t id = 0; id < n; id++) {
        if (g->flags[id] & MH_HG_EXTERNAL) {
            roots[nr++] = id;
        }
    }
    /* Garbage, which no root reaches, hangs from the virtual root too
     * (cover_all). */
    mh_dom_graph_t dg = {g->nnodes, g->off, g->edges};
    if (mh_dominators(&dg, roots, nr, 1, g->size, big_size, g, idom,
                      retained) < 0) {
        goto done;
    }
    g->idom = idom;
    g->retained = retained;
    idom = NULL;
    retained = NULL;
    rc = 0;
done:
    mh_rawmem_free(roots, (g->nroots + n) * sizeof(uint32_t));
    mh_rawmem_unmap(idom, n * sizeof(uint32_t));
    mh_rawmem_unmap(retained, n * sizeof(uint64_t));
    return rc;
}

/* Retained bytes per site: a site object counts when no dominator of it
 * belongs to the same site (it would be counted twice).  The answer "is
 * there a same-site dominator above u" is memoized per site in memo
 * (slot * 2 + answer + 1; 0 unknown, as memo comes zero-filled), so each
 * site costs O(nodes of the dominator chains walked) once. */
static int
site_retained(const mh_heapgraph_t *g, mh_hg_site_t *sites, size_t n,
              const mh_table_t *slots, uint32_t *memo, uint32_t *path)
{
    (void)n;
    for (uint32_t id = 0; id < g->nnodes; id++) {
        uint32_t slot;
        if (g->tb[id] == 0 ||
            !mh_table_get(slots, (uint64_t)g->tb[id] + 1, &slot)) {
            continue;
        }
        uint32_t tb = g->tb[id];
        size_t len = 0;
        uint32_t covered = 0;
        for (uint32_t u = g->idom[id]; u != MH_DOM_NONE; u = g->idom[u]) {
            if (memo[u] != 0 && (memo[u] - 1) / 2 == slot) {
                covered = (memo[u] - 1) % 2;
                break;
            }
            if (g->tb[u] == tb) {
                covered = 1;
                break;
            }
            path[len++] = u;
        }
        /* Every node walked has no same-site node between it and where
         * the walk stopped: it shares the answer. */
        for (size_t k = 0; k < len; k++) {
            memo[path[k]] = slot * 2 + covered + 1;
        }
        if (!covered) {
            sites[slot].retained += g->retained[id];
        }
    }
    return 0;
}

int
mh_heapgraph_sites(mh_heapgraph_t *g, mh_hg_site_t *sites, size_t n)
{
    if (mh_heapgraph_ensure_sites(g) < 0) {
        return -1;
    }
    int rc = -1;
    size_t nn = g->nnodes;
    mh_table_t slots, groups_index;
    mh_table_init(&slots);
    mh_table_init(&groups_index);
    mh_hg_shapes_t shapes;
    mh_hg_shapes_init(&shapes);
    mh_hg_group_t *groups = NULL;
    uint32_t *group_site = NULL;
    size_t ngroups = 0, cap = 0, site_cap = 0;
    /* Mapped, zero-filled scratch: only the pages of the nodes walked
     * cost memory (a node-sized array would be 4 bytes a node more at
     * the session's fullest). */
    uint32_t *memo = mh_rawmem_map(nn * sizeof(uint32_t));
    uint32_t *path = mh_rawmem_map(nn * sizeof(uint32_t));
    if (memo == NULL || path == NULL) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t tb = sites[i].traceback;
        memset(&sites[i], 0, sizeof(sites[i]));
        sites[i].traceback = tb;
        if (mh_table_put(&slots, (uint64_t)tb + 1, (uint32_t)i) < 0) {
            goto done;
        }
    }
    for (uint32_t id = 0; id < nn; id++) {
        uint32_t slot;
        if (g->tb[id] == 0 ||
            !mh_table_get(&slots, (uint64_t)g->tb[id] + 1, &slot)) {
            continue;
        }
        mh_hg_site_t *s = &sites[slot];
        uint64_t bytes = mh_heapgraph_size(g, id);
        s->bytes += bytes;
        s->blocks++;
        if (!(g->flags[id] & MH_HG_LIVE)) {
            s->garbage_bytes += bytes;
            s->garbage_blocks++;
        }
        add_type(s, Py_TYPE(g->objs[id]), bytes);
        uint32_t holder =
            g->parent != NULL ? holder_of(g, id, memo, path) : MH_HG_GARBAGE;
        /* Objects held the same way are one group, whichever holder:
         * registry[k][i].buf is one way for all k and i. */
        uint32_t shape = UINT32_MAX;
        if (holder != MH_HG_GARBAGE &&
            mh_hg_shape(g, &shapes, holder, path, &shape) < 0) {
            goto done;
        }
        uint64_t key = (((uint64_t)slot << 32) | shape) + 1;
        uint32_t gi;
        if (!mh_table_get(&groups_index, key, &gi)) {
            void *p = groups;
            if (mh_rawmem_reserve(&p, &cap, ngroups + 1, sizeof(*groups)) <
                0) {
                goto done;
            }
            groups = p;
            p = group_site;
            if (mh_rawmem_reserve(&p, &site_cap, ngroups + 1,
                                  sizeof(uint32_t)) < 0) {
                goto done;
            }
            group_site = p;
            gi = (uint32_t)ngroups++;
            groups[gi] = (mh_hg_group_t){.holder = holder, .example = id};
            group_site[gi] = slot;
            if (mh_table_put(&groups_index, key, gi) < 0) {
                goto done;
            }
        }
        groups[gi].objects++;
    }
    /* Keep each site's largest groups: a selection per site over the
     * (few) groups. */
    for (size_t gi = 0; gi < ngroups; gi++) {
        mh_hg_site_t *s = &sites[group_site[gi]];
        if (s->ngroups < MH_HG_SITE_GROUPS) {
            s->groups[s->ngroups++] = groups[gi];
            continue;
        }
        size_t smallest = 0;
        for (size_t k = 1; k < s->ngroups; k++) {
            if (s->groups[k].objects < s->groups[smallest].objects) {
                smallest = k;
            }
        }
        if (groups[gi].objects > s->groups[smallest].objects) {
            s->groups[smallest] = groups[gi];
        }
    }
    if (g->idom != NULL) {
        mh_rawmem_unmap(memo, nn * sizeof(uint32_t));
        memo = mh_rawmem_map(nn * sizeof(uint32_t)); /* zeroed again */
        if (memo == NULL ||
            site_retained(g, sites, n, &slots, memo, path) < 0) {
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        qsort(sites[i].groups, sites[i].ngroups, sizeof(mh_hg_group_t),
              by_objects_desc);
        qsort(sites[i].types, sites[i].ntypes, sizeof(mh_hg_typesum_t),
              by_type_bytes_desc);
    }
    rc = 0;
done:
    mh_table_fini(&slots);
    mh_table_fini(&groups_index);
    mh_hg_shapes_fini(&shapes);
    mh_rawmem_free(groups, cap * sizeof(*groups));
    mh_rawmem_free(group_site, site_cap * sizeof(uint32_t));
    mh_rawmem_unmap(memo, nn * sizeof(uint32_t));
    mh_rawmem_unmap(path, nn * sizeof(uint32_t));
    return rc;
}
