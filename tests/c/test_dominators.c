/* test_dominators.c: plain-C tests of the dominator tree and retained
 * sizes (heapgraph_dominators.h).
 *
 * Hand-checked graphs (diamond, loop, the Lengauer-Tarjan paper's
 * example), random graphs against a naive dominator computation (iterated
 * set intersection), also leaf-heavy ones (leaves with one, several or no
 * predecessors, roots among them) with cover_all and retained sizes, a
 * million-node chain (no recursion), unreached nodes, and injected
 * out-of-memory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "heapgraph_dominators.h"
#include "rawmem.h"
#include "check.h"

typedef struct {
    uint32_t n, m;
    uint32_t *off, *edges, *roff, *redges;
} graph;

/* A CSR graph and its reverse from an edge list (pairs). */
static graph
make_graph(uint32_t n, const uint32_t *pairs, uint32_t m)
{
    graph g = {.n = n, .m = m};
    g.off = calloc(n + 1, sizeof(uint32_t));
    g.roff = calloc(n + 1, sizeof(uint32_t));
    g.edges = malloc((m + 1) * sizeof(uint32_t));
    g.redges = malloc((m + 1) * sizeof(uint32_t));
    for (uint32_t e = 0; e < m; e++) {
        g.off[pairs[2 * e] + 1]++;
        g.roff[pairs[2 * e + 1] + 1]++;
    }
    for (uint32_t v = 0; v < n; v++) {
        g.off[v + 1] += g.off[v];
        g.roff[v + 1] += g.roff[v];
    }
    uint32_t *fo = calloc(n + 1, sizeof(uint32_t));
    uint32_t *ro = calloc(n + 1, sizeof(uint32_t));
    for (uint32_t e = 0; e < m; e++) {
        uint32_t a = pairs[2 * e], b = pairs[2 * e + 1];
        g.edges[g.off[a] + fo[a]++] = b;
        g.redges[g.roff[b] + ro[b]++] = a;
    }
    free(fo);
    free(ro);
    return g;
}

static void
free_graph(graph *g)
{
    free(g->off);
    free(g->edges);
    free(g->roff);
    free(g->redges);
}

static int64_t
run(const graph *g, const uint32_t *roots, size_t nroots, const uint64_t *size,
    uint32_t *idom, uint64_t *retained)
{
    mh_dom_graph_t dg = {g->n, g->off, g->edges};
    uint32_t *small = NULL;
    if (size != NULL) {
        small = malloc((g->n ? g->n : 1) * sizeof(uint32_t));
        for (uint32_t v = 0; v < g->n; v++) {
            small[v] = (uint32_t)size[v];
        }
    }
    int64_t r = mh_dominators(&dg, roots, nroots, 0, small, NULL, NULL, idom,
                              retained);
    free(small);
    return r;
}

static void
test_diamond(void)
{
    /* 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, 3 -> 4 */
    uint32_t pairs[] = {0, 1, 0, 2, 1, 3, 2, 3, 3, 4};
    graph g = make_graph(5, pairs, 5);
    uint32_t root = 0, idom[5];
    uint64_t size[5] = {1, 10, 100, 1000, 10000}, retained[5];
    CHECK(run(&g, &root, 1, size, idom, retained) == 5);
    CHECK(idom[0] == MH_DOM_NONE);
    CHECK(idom[1] == 0 && idom[2] == 0 && idom[3] == 0 && idom[4] == 3);
    CHECK(retained[0] == 11111);
    CHECK(retained[1] == 10 && retained[2] == 100);
    CHECK(retained[3] == 11000 && retained[4] == 10000);
    free_graph(&g);
}

static void
test_two_roots_share(void)
{
    /* Roots 0 and 1 both reach 2: only the virtual root dominates it. */
    uint32_t pairs[] = {0, 2, 1, 2, 2, 3};
    graph g = make_graph(5, pairs, 3);
    uint32_t roots[] = {0, 1, 0, 99}, idom[5];
    uint64_t size[5] = {1, 1, 5, 7, 3}, retained[5];
    CHECK(run(&g, roots, 4, size, idom, retained) == 4);
    CHECK(idom[2] == MH_DOM_NONE && idom[3] == 2);
    CHECK(retained[0] == 1 && retained[2] == 12);
    /* Node 4 is not reached. */
    CHECK(idom[4] == MH_DOM_NONE && retained[4] == 0);
    free_graph(&g);
}

static void
test_lengauer_tarjan_example(void)
{
    /* The flow graph of Lengauer & Tarjan (1979), R=0 A=1 B=2 C=3 D=4
     * E=5 F=6 G=7 H=8 I=9 J=10 K=11 L=12. */
    uint32_t pairs[] = {0, 1, 0, 2,  0, 3,  1,  4, 2,  1, 2,  4, 2,  5,
                        3, 6, 3, 7,  4, 12, 5,  8, 6,  9, 7,  9, 7,  10,
                        8, 5, 8, 11, 9, 11, 10, 9, 11, 0, 11, 9, 12, 8};
    graph g = make_graph(13, pairs, sizeof(pairs) / sizeof(pairs[0]) / 2);
    uint32_t root = 0, idom[13];
    CHECK(run(&g, &root, 1, NULL, idom, NULL) == 13);
    /* Expected: A,B,C,D,E,H,I,K -> R; F,G -> C; J -> G; L -> D. */
    uint32_t want[13] = {MH_DOM_NONE, 0, 0, 0, 0, 0, 3, 3, 0, 0, 7, 0, 4};
    for (int v = 0; v < 13; v++) {
        CHECK(idom[v] == want[v]);
    }
    free_graph(&g);
}

/* Naive dominators: dom(v) = {v} + intersection of dom(preds), iterated
 * to a fixpoint with bit sets; the virtual root is node n. */
static void
naive(const graph *g, const uint32_t *roots, size_t nroots, uint32_t *idom)
{
    uint32_t n = g->n + 1;
    uint8_t *dom = malloc((size_t)n * n);
    uint8_t *isroot = calloc(n, 1);
    uint8_t *reach = calloc(n, 1);
    uint32_t *queue = malloc(n * sizeof(uint32_t));
    size_t head = 0, tail = 0;
    for (size_t r = 0; r < nroots; r++) {
        isroot[roots[r]] = 1;
        if (!reach[roots[r]]) {
            reach[roots[r]] = 1;
            queue[tail++] = roots[r];
        }
    }
    while (head < tail) {
        uint32_t u = queue[head++];
        for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
            if (!reach[g->edges[e]]) {
                reach[g->edges[e]] = 1;
                queue[tail++] = g->edges[e];
            }
        }
    }
    memset(dom, 1, (size_t)n * n);
    memset(dom + (size_t)(n - 1) * n, 0, n);
    dom[(size_t)(n - 1) * n + n - 1] = 1;
    for (int changed = 1; changed;) {
        changed = 0;
        for (uint32_t v = 0; v < g->n; v++) {
            if (!reach[v]) {
                continue;
            }
            uint8_t row[64];
            memset(row, 1, n);
            if (isroot[v]) {
                for (uint32_t k = 0; k < n; k++) {
                    row[k] &= dom[(size_t)(n - 1) * n + k];
                }
            }
            for (uint32_t e = g->roff[v]; e < g->roff[v + 1]; e++) {
                uint32_t p = g->redges[e];
                if (!reach[p]) {
                    continue;
                }
                for (uint32_t k = 0; k < n; k++) {
                    row[k] &= dom[(size_t)p * n + k];
                }
            }
            row[v] = 1;
            if (memcmp(row, dom + (size_t)v * n, n) != 0) {
                memcpy(dom + (size_t)v * n, row, n);
                changed = 1;
            }
        }
    }
    /* idom(v): the strict dominator that every other strict dominator
     * dominates. */
    for (uint32_t v = 0; v < g->n; v++) {
        idom[v] = MH_DOM_NONE;
        if (!reach[v]) {
            continue;
        }
        for (uint32_t d = 0; d < g->n; d++) {
            if (d == v || !dom[(size_t)v * n + d]) {
                continue;
            }
            int all = 1;
            for (uint32_t k = 0; k < g->n; k++) {
                if (k != v && dom[(size_t)v * n + k] &&
                    !dom[(size_t)d * n + k]) {
                    all = 0;
                }
            }
            if (all) {
                idom[v] = d;
            }
        }
    }
    free(dom);
    free(isroot);
    free(reach);
    free(queue);
}

static void
test_random_against_naive(void)
{
    srand(12345);
    for (int round = 0; round < 300; round++) {
        uint32_t n = 2 + (uint32_t)(rand() % 30);
        uint32_t m = (uint32_t)(rand() % (3 * n));
        uint32_t *pairs = malloc((m + 1) * 2 * sizeof(uint32_t));
        for (uint32_t e = 0; e < m; e++) {
            pairs[2 * e] = (uint32_t)rand() % n;
            pairs[2 * e + 1] = (uint32_t)rand() % n;
        }
        graph g = make_graph(n, pairs, m);
        uint32_t roots[3] = {(uint32_t)rand() % n, (uint32_t)rand() % n,
                             (uint32_t)rand() % n};
        size_t nroots = 1 + (size_t)(rand() % 3);
        uint32_t got[64], want[64];
        CHECK(run(&g, roots, nroots, NULL, got, NULL) > 0);
        naive(&g, roots, nroots, want);
        int same = 1;
        for (uint32_t v = 0; v < n; v++) {
            same &= got[v] == want[v];
        }
        if (!CHECK(same)) {
            fprintf(stderr, "round %d n %u m %u\n", round, n, m);
        }
        free(pairs);
        free_graph(&g);
    }
}

/* Leaf-heavy random graphs: about half the nodes have no out-edges and are
 * pointed at once, several times or never, roots and garbage included.
 * The reference: cover_all's virtual-root children found the way its
 * contract says (roots, then each node still unreached, in id order), then
 * the naive dominators over those, and retained sizes by walking each
 * node's dominator chain. */
static void
test_random_leaves_against_naive(void)
{
    srand(777);
    for (int round = 0; round < 400; round++) {
        uint32_t n = 2 + (uint32_t)(rand() % 30);
        uint32_t inner = 1 + (uint32_t)rand() % n; /* nodes [0, inner) */
        uint32_t m = (uint32_t)(rand() % (3 * n));
        uint32_t *pairs = malloc((m + 1) * 2 * sizeof(uint32_t));
        for (uint32_t e = 0; e < m; e++) {
            pairs[2 * e] = (uint32_t)rand() % inner;
            /* Leaves get several edges often: pick among few of them. */
            pairs[2 * e + 1] = rand() % 2 ? (uint32_t)rand() % n
                                          : inner + (uint32_t)rand() % 3;
            if (pairs[2 * e + 1] >= n) {
                pairs[2 * e + 1] = n - 1;
            }
        }
        graph g = make_graph(n, pairs, m);
        uint32_t roots[4];
        size_t nroots = (size_t)(rand() % 4);
        for (size_t r = 0; r < nroots; r++) {
            roots[r] = (uint32_t)rand() % n;
        }
        int cover_all = rand() % 2;
        uint32_t size[64], got[64], want[64];
        uint64_t retained[64];
        for (uint32_t v = 0; v < n; v++) {
            size[v] = 1 + (uint32_t)rand() % 1000;
        }
        mh_dom_graph_t dg = {g.n, g.off, g.edges};
        int64_t reached = mh_dominators(&dg, roots, nroots, cover_all, size,
                                        NULL, NULL, got, retained);
        /* The reference's roots: with cover_all, every node still
         * unreached, in id order, after the given roots. */
        uint32_t all[128];
        size_t nall = 0;
        uint8_t seen[64] = {0};
        uint32_t stack[64 * 64];
        for (uint32_t k = 0; k < nroots + (cover_all ? n : 0); k++) {
            uint32_t s = k < nroots ? roots[k] : (uint32_t)(k - nroots);
            if (k >= nroots && seen[s]) {
                continue;
            }
            all[nall++] = s;
            size_t top = 0;
            stack[top++] = s;
            seen[s] = 1;
            while (top > 0) {
                uint32_t u = stack[--top];
                for (uint32_t e = g.off[u]; e < g.off[u + 1]; e++) {
                    if (!seen[g.edges[e]]) {
                        seen[g.edges[e]] = 1;
                        stack[top++] = g.edges[e];
                    }
                }
            }
        }
        naive(&g, all, nall, want);
        int64_t nseen = 0;
        int same = 1;
        for (uint32_t v = 0; v < n; v++) {
            nseen += seen[v];
            same &= got[v] == want[v];
            uint64_t r = 0;
            for (uint32_t u = 0; seen[v] && u < n; u++) {
                uint32_t d = u;
                while (d != MH_DOM_NONE && d != v) {
                    d = want[d];
                }
                r += d == v && seen[u] ? size[u] : 0;
            }
            same &= retained[v] == r;
        }
        if (!CHECK(same && reached == nseen)) {
            fprintf(stderr, "leaves round %d n %u m %u\n", round, n, m);
        }
        free(pairs);
        free_graph(&g);
    }
}

static void
test_long_chain(void)
{
    uint32_t n = 1000000;
    uint32_t *pairs = malloc((size_t)n * 2 * sizeof(uint32_t));
    for (uint32_t v = 0; v + 1 < n; v++) {
        pairs[2 * v] = v;
        pairs[2 * v + 1] = v + 1;
    }
    /* A back edge from the end to the middle: still a chain of
     * dominators. */
    pairs[2 * (n - 1)] = n - 1;
    pairs[2 * (n - 1) + 1] = n / 2;
    graph g = make_graph(n, pairs, n);
    uint32_t root = 0;
    uint32_t *idom = malloc(n * sizeof(uint32_t));
    uint64_t *size = malloc(n * sizeof(uint64_t));
    uint64_t *retained = malloc(n * sizeof(uint64_t));
    for (uint32_t v = 0; v < n; v++) {
        size[v] = 2;
    }
    CHECK(run(&g, &root, 1, size, idom, retained) == n);
    CHECK(idom[0] == MH_DOM_NONE && idom[1] == 0 && idom[n - 1] == n - 2);
    CHECK(retained[0] == 2ULL * n && retained[n - 1] == 2);
    free(idom);
    free(size);
    free(retained);
    free(pairs);
    free_graph(&g);
}

static void
test_cover_all(void)
{
    /* 0 -> 1; a garbage cycle 2 <-> 3 -> 4 that no root reaches. */
    uint32_t pairs[] = {0, 1, 2, 3, 3, 2, 3, 4};
    graph g = make_graph(5, pairs, 4);
    mh_dom_graph_t dg = {g.n, g.off, g.edges};
    uint32_t root = 0, idom[5];
    uint32_t size[5] = {1, 1, 10, 100, 1000};
    uint64_t retained[5];
    CHECK(mh_dominators(&dg, &root, 1, 1, size, NULL, NULL, idom, retained) ==
          5);
    CHECK(idom[1] == 0 && idom[2] == MH_DOM_NONE);
    CHECK(idom[3] == 2 && idom[4] == 3);
    CHECK(retained[2] == 1110 && retained[0] == 2);
    /* A root listed again after it was reached keeps its own edge from
     * the virtual root. */
    uint32_t roots[] = {0, 1};
    CHECK(mh_dominators(&dg, roots, 2, 0, size, NULL, NULL, idom, retained) ==
          2);
    CHECK(idom[1] == MH_DOM_NONE && retained[0] == 1);
    free_graph(&g);
}

/* Sizes of 4 GiB and more: MH_DOM_BIG in the array, the size from the
 * callback. */
static uint64_t
five_gib(const void *ctx, uint32_t node)
{
    CHECK(ctx == (const void *)five_gib && node == 2);
    return (uint64_t)5 << 30;
}

static void
test_big_sizes(void)
{
    /* 0 -> 1 -> 2 */
    uint32_t pairs[] = {0, 1, 1, 2};
    graph g = make_graph(3, pairs, 2);
    mh_dom_graph_t dg = {g.n, g.off, g.edges};
    uint32_t root = 0, idom[3];
    uint32_t size[3] = {7, 3, MH_DOM_BIG};
    uint64_t retained[3];
    CHECK(mh_dominators(&dg, &root, 1, 0, size, five_gib,
                        (const void *)five_gib, idom, retained) == 3);
    CHECK(retained[2] == (uint64_t)5 << 30);
    CHECK(retained[1] == ((uint64_t)5 << 30) + 3);
    CHECK(retained[0] == ((uint64_t)5 << 30) + 10);
    free_graph(&g);
}

static void
test_out_of_memory(void)
{
    uint32_t pairs[] = {0, 1, 1, 2};
    graph g = make_graph(3, pairs, 2);
    uint32_t root = 0, idom[3];
    size_t before = mh_rawmem_in_use;
    for (long after = 0; after < 10; after++) {
        mh_rawmem_fail_after = after;
        int64_t r = run(&g, &root, 1, NULL, idom, NULL);
        mh_rawmem_fail_after = -1;
        CHECK(r == -1 || r == 3);
        CHECK(mh_rawmem_in_use == before);
    }
    free_graph(&g);
}

int
main(void)
{
    test_diamond();
    test_two_roots_share();
    test_lengauer_tarjan_example();
    test_random_against_naive();
    test_random_leaves_against_naive();
    test_long_chain();
    test_cover_all();
    test_big_sizes();
    test_out_of_memory();
    return check_report("test_dominators");
}
