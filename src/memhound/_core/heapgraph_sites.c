/* heapgraph_sites.c: joining the heap graph with the live-block table:
 * each node's allocation site and block size, garbage per site.
 *
 * GIL held (hooks.h's lookup and the nodes' objects need it).  Memory from
 * rawmem.h; results owned by the caller.
 */
#include "heapgraph_query.h"

#include <stdlib.h>

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

int
mh_heapgraph_node_sites(const mh_heapgraph_t *g, uint32_t **tb,
                        uint64_t **size)
{
    size_t n = g->nnodes ? g->nnodes : 1;
    uint32_t *t = mh_rawmem_malloc(n * sizeof(uint32_t));
    uint64_t *s = mh_rawmem_malloc(n * sizeof(uint64_t));
    if (t == NULL || s == NULL) {
        mh_rawmem_free(t, n * sizeof(uint32_t));
        mh_rawmem_free(s, n * sizeof(uint64_t));
        return -1;
    }
    for (uint32_t id = 0; id < g->nnodes; id++) {
        mh_heapgraph_block(g, id, &s[id], &t[id]);
    }
    *tb = t;
    *size = s;
    return 0;
}
