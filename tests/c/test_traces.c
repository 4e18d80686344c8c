/* test_traces.c: plain-C tests of the live-block table (traces.h).
 *
 * Round trips of every field, replace semantics, refusals, a randomized
 * run against a reference model across several incremental resizes,
 * export/foreach consistency, clear, memory accounting, injected
 * out-of-memory (rawmem.h's mh_rawmem_fail_after) and a 10-million-block
 * fill.  Prints one line per failed CHECK and a final summary; exits
 * non-zero on any failure.  Optional argv[1]: the random seed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rawmem.h"
#include "traces.h"
#include "check.h"

#define ADDR_LIMIT (UINT64_C(1) << 48)
/* Old-half slots traces.c migrates per insert or remove. */
#ifdef MH_TRACES_MIGRATE_SLOTS
#define SLOTS_PER_CALL MH_TRACES_MIGRATE_SLOTS
#else
#define SLOTS_PER_CALL 32
#endif
#define TB_LIMIT (UINT32_C(1) << 30)

static uint64_t rng_state;

/* splitmix64: deterministic for a given seed. */
static uint64_t
rnd(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t
rnd_below(uint64_t n)
{
    return rnd() % n;
}

static int
same(const mh_trace_t *a, const mh_trace_t *b)
{
    return a->ptr == b->ptr && a->size == b->size &&
           a->traceback == b->traceback && a->generation == b->generation &&
           a->domain == b->domain;
}

static mh_trace_t
make(uintptr_t ptr, uint64_t size, uint32_t tb, uint16_t gen, uint8_t dom)
{
    mh_trace_t t;
    memset(&t, 0, sizeof(t));
    t.ptr = ptr;
    t.size = size;
    t.traceback = tb;
    t.generation = gen;
    t.domain = dom;
    return t;
}

/* A size that exercises the 32-bit field and the side table. */
static uint64_t
random_size(void)
{
    switch (rnd_below(64)) {
    case 0:
        return UINT32_MAX; /* the escape value itself */
    case 1:
        return (uint64_t)UINT32_MAX - 1;
    case 2:
        return UINT64_MAX - rnd_below(3);
    case 3:
        return ((uint64_t)1 << 32) + rnd_below((uint64_t)1 << 40);
    default:
        return rnd_below(4096);
    }
}

static mh_trace_t
random_trace(uintptr_t ptr)
{
    return make(ptr, random_size(), (uint32_t)rnd_below(TB_LIMIT),
                (uint16_t)rnd(), (uint8_t)rnd_below(4));
}

/* ---- whole-table checks ---------------------------------------------- */

typedef struct {
    size_t n;
    uint64_t sum_size;
    uint64_t sum_tb;
    uint64_t sum_gen;
    uint64_t sum_dom;
    const mh_traces_t *table;
    size_t mismatches;
    size_t stop_after;
} tally_t;

static int
tally_visit(const mh_trace_t *trace, void *arg)
{
    tally_t *t = arg;
    t->n++;
    t->sum_size += trace->size;
    t->sum_tb += trace->traceback;
    t->sum_gen += trace->generation;
    t->sum_dom += trace->domain;
    mh_trace_t got;
    if (!mh_traces_get(t->table, trace->ptr, &got) || !same(&got, trace)) {
        t->mismatches++;
    }
    if (t->stop_after && t->n == t->stop_after) {
        return 7;
    }
    return 0;
}

/* foreach and export agree with each other and with expected sums. */
static void
check_table(const mh_traces_t *t, size_t count, uint64_t sum_size)
{
    tally_t ft = {0};
    ft.table = t;
    CHECK(mh_traces_foreach(t, tally_visit, &ft) == 0);
    CHECK(ft.n == count);
    CHECK(ft.mismatches == 0);
    CHECK(ft.sum_size == sum_size);
    CHECK(mh_traces_count(t) == count);

    size_t cap = count + 1;
    mh_snap_block_t *blocks = calloc(cap, sizeof(*blocks));
    CHECK(blocks != NULL);
    if (blocks == NULL) {
        return;
    }
    size_t n = mh_traces_export(t, blocks, cap);
    CHECK(n == count);
    uint64_t s = 0, tb = 0, gen = 0, dom = 0;
    int flags_ok = 1;
    for (size_t i = 0; i < n; i++) {
        s += blocks[i].size;
        tb += blocks[i].traceback;
        gen += blocks[i].generation;
        dom += blocks[i].domain;
        flags_ok &= blocks[i].flags == 0;
    }
    CHECK(s == sum_size);
    CHECK(tb == ft.sum_tb);
    CHECK(gen == ft.sum_gen);
    CHECK(dom == ft.sum_dom);
    CHECK(flags_ok);
    if (count > 0) {
        /* A short buffer is filled, never overrun. */
        CHECK(mh_traces_export(t, blocks, count - 1) == count - 1);
    }
    free(blocks);
}

/* ---- simple cases ---------------------------------------------------- */

static void
test_roundtrip(void)
{
    static const uint64_t sizes[] = {0,
                                     1,
                                     4096,
                                     (uint64_t)UINT32_MAX - 1,
                                     UINT32_MAX,
                                     (uint64_t)1 << 32,
                                     (uint64_t)5 << 30,
                                     (uint64_t)SIZE_MAX,
                                     UINT64_MAX - 1,
                                     UINT64_MAX};
    static const uint32_t tbs[] = {0, 1, TB_LIMIT - 1};
    static const uint16_t gens[] = {0, 1, 0x8000, 65535};
    static const uintptr_t base[] = {1,
                                     16,
                                     0x7fff12345670,
                                     (uintptr_t)(ADDR_LIMIT - 1),
                                     (uintptr_t)(ADDR_LIMIT - 16),
                                     0x1001};
    enum { NSIZE = sizeof(sizes) / sizeof(sizes[0]) };
    enum { NBASE = sizeof(base) / sizeof(base[0]) };
    enum { N = NSIZE * 3 * 4 * 4 };
    mh_trace_t all[N];
    size_t n = 0;
    uint64_t sum = 0;

    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    CHECK(mh_traces_count(t) == 0);
    for (size_t s = 0; s < NSIZE; s++) {
        for (size_t a = 0; a < 3; a++) {
            for (size_t g = 0; g < 4; g++) {
                for (uint8_t d = 0; d < 4; d++) {
                    uintptr_t ptr =
                        n < NBASE ? base[n] : 0x10000 + (uintptr_t)n * 48;
                    all[n] = make(ptr, sizes[s], tbs[a], gens[g], d);
                    CHECK(mh_traces_insert(t, &all[n], NULL) == 0);
                    sum += sizes[s];
                    n++;
                }
            }
        }
    }
    CHECK(mh_traces_count(t) == N);
    check_table(t, N, sum);
    for (size_t i = 0; i < N; i++) {
        mh_trace_t got;
        CHECK(mh_traces_get(t, all[i].ptr, &got) == 1 && same(&got, &all[i]));
    }
    for (size_t i = 0; i < N; i++) {
        mh_trace_t got;
        memset(&got, 0xab, sizeof(got));
        CHECK(mh_traces_remove(t, all[i].ptr, &got) == 1);
        CHECK(same(&got, &all[i]));
        CHECK(mh_traces_get(t, all[i].ptr, &got) == 0);
        CHECK(mh_traces_remove(t, all[i].ptr, &got) == 0);
        CHECK(mh_traces_count(t) == N - 1 - i);
    }
    /* remove with a NULL out pointer */
    mh_trace_t x = make(0x5550, (uint64_t)1 << 40, 3, 4, 1);
    CHECK(mh_traces_insert(t, &x, NULL) == 0);
    CHECK(mh_traces_remove(t, x.ptr, NULL) == 1);
    CHECK(mh_traces_count(t) == 0);
    check_table(t, 0, 0);
    mh_traces_free(t);
    mh_traces_free(NULL);
}

static void
test_replace(void)
{
    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    uintptr_t p = 0x7f0000001230;
    mh_trace_t a = make(p, 10, 1, 2, 0);
    mh_trace_t b = make(p, 20, 3, 4, 1);
    mh_trace_t huge1 = make(p, (uint64_t)1 << 33, 5, 6, 2);
    mh_trace_t huge2 = make(p, UINT64_MAX, TB_LIMIT - 1, 65535, 3);
    mh_trace_t r;

    CHECK(mh_traces_insert(t, &a, &r) == 0);
    memset(&r, 0, sizeof(r));
    CHECK(mh_traces_insert(t, &b, &r) == 1 && same(&r, &a));
    CHECK(mh_traces_insert(t, &huge1, &r) == 1 && same(&r, &b));
    CHECK(mh_traces_insert(t, &huge2, &r) == 1 && same(&r, &huge1));
    CHECK(mh_traces_get(t, p, &r) == 1 && same(&r, &huge2));
    CHECK(mh_traces_insert(t, &a, &r) == 1 && same(&r, &huge2));
    CHECK(mh_traces_insert(t, &b, NULL) == 1);
    CHECK(mh_traces_count(t) == 1);
    CHECK(mh_traces_remove(t, p, &r) == 1 && same(&r, &b));
    CHECK(mh_traces_count(t) == 0);

    /* Absent keys, including ones that share low bits with present ones. */
    CHECK(mh_traces_insert(t, &huge1, NULL) == 0);
    CHECK(mh_traces_remove(t, p + 16, &r) == 0);
    CHECK(mh_traces_get(t, p + 16, &r) == 0);
    CHECK(mh_traces_get(t, p | (uintptr_t)1 << 48, &r) == 0);
    CHECK(mh_traces_remove(t, p | (uintptr_t)1 << 48, &r) == 0);
    CHECK(mh_traces_get(t, p, &r) == 1 && same(&r, &huge1));
    CHECK(mh_traces_remove(t, p, &r) == 1 && same(&r, &huge1));
    mh_traces_free(t);
}

static void
test_refusals(void)
{
    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    mh_trace_t ok = make(0x1000, 1, 0, 0, 0);
    CHECK(mh_traces_insert(t, &ok, NULL) == 0);

    mh_trace_t bad[] = {
        make(0, 1, 0, 0, 0),
        make((uintptr_t)ADDR_LIMIT, 1, 0, 0, 0),
        make((uintptr_t)ADDR_LIMIT + 0x1000, 1, 0, 0, 0),
        make(UINTPTR_MAX, 1, 0, 0, 0),
        make(0x2000, 1, TB_LIMIT, 0, 0),
        make(0x2000, 1, UINT32_MAX, 0, 0),
        make(0x2000, 1, 0, 0, 4),
        make(0x2000, 1, 0, 0, 255),
        /* replacing must validate too */
        make(0x1000, 1, TB_LIMIT, 0, 0),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mh_trace_t r;
        CHECK(mh_traces_insert(t, &bad[i], &r) == -1);
    }
    CHECK(mh_traces_count(t) == 1);
    mh_trace_t got;
    CHECK(mh_traces_get(t, 0x1000, &got) == 1 && same(&got, &ok));
    CHECK(mh_traces_get(t, 0, &got) == 0);
    CHECK(mh_traces_get(t, (uintptr_t)ADDR_LIMIT, &got) == 0);
    CHECK(mh_traces_get(t, (uintptr_t)ADDR_LIMIT + 0x1000, &got) == 0);
    CHECK(mh_traces_remove(t, 0, &got) == 0);
    CHECK(mh_traces_remove(t, (uintptr_t)ADDR_LIMIT + 0x1000, &got) == 0);
    CHECK(mh_traces_remove(t, 0x2000, &got) == 0);
    CHECK(mh_traces_count(t) == 1);
    mh_traces_free(t);
}

static int
count_visit(const mh_trace_t *trace, void *arg)
{
    (void)trace;
    ++*(size_t *)arg;
    return 0;
}

/* ---- reference model --------------------------------------------------
 * Keys are indices into a universe; index i maps to one address, dense
 * (16-byte stride, like a fresh arena) for even i and scattered below 2^46
 * for odd i, so both ranges stay disjoint. */

#define UNIVERSE ((size_t)1 << 20)

typedef struct {
    mh_trace_t *entries; /* by key index; ptr 0 when absent */
    size_t count;
    uint64_t sum_size;
} model_t;

static uintptr_t
key_addr(size_t i)
{
    if (i % 2 == 0) {
        return (uintptr_t)0x7f0000000000 + (uintptr_t)i * 16;
    }
    uint64_t scattered = ((uint64_t)i * UINT64_C(0x9e3779b97f4a7c15)) &
                         ((UINT64_C(1) << 42) - 1);
    return (uintptr_t)(scattered << 4);
}

static void
model_put(model_t *m, size_t i, const mh_trace_t *trace)
{
    if (m->entries[i].ptr != 0) {
        m->sum_size -= m->entries[i].size;
        m->count--;
    }
    m->entries[i] = *trace;
    m->sum_size += trace->size;
    m->count++;
}

static void
model_del(model_t *m, size_t i)
{
    m->sum_size -= m->entries[i].size;
    m->count--;
    m->entries[i].ptr = 0;
}

/* One random operation on key i, checked against the model.  An insert
 * the table refuses (-1, only with allocation failures injected) must
 * leave both unchanged.  Returns the operation's result. */
static int
model_op(mh_traces_t *t, model_t *m, size_t i, unsigned kind)
{
    uintptr_t ptr = key_addr(i);
    mh_trace_t *e = &m->entries[i];
    mh_trace_t r;
    if (kind == 0) {
        mh_trace_t tr = random_trace(ptr);
        int rc = mh_traces_insert(t, &tr, &r);
        if (rc == -1) {
            mh_trace_t got;
            CHECK(mh_traces_get(t, ptr, &got) == (e->ptr != 0));
            if (e->ptr != 0) {
                CHECK(same(&got, e));
            }
            return rc;
        }
        CHECK(rc == (e->ptr != 0));
        if (rc == 1) {
            CHECK(same(&r, e));
        }
        model_put(m, i, &tr);
        return rc;
    }
    if (kind == 1) {
        int rc = mh_traces_remove(t, ptr, &r);
        CHECK(rc == (e->ptr != 0));
        if (rc == 1) {
            CHECK(same(&r, e));
            model_del(m, i);
        }
        return rc;
    }
    int rc = mh_traces_get(t, ptr, &r);
    CHECK(rc == (e->ptr != 0));
    if (rc == 1) {
        CHECK(same(&r, e));
    }
    return rc;
}

static void
model_check_all(mh_traces_t *t, model_t *m)
{
    check_table(t, m->count, m->sum_size);
    size_t found = 0;
    int ok = 1;
    for (size_t i = 0; i < UNIVERSE; i++) {
        if (m->entries[i].ptr != 0) {
            mh_trace_t got;
            ok &= mh_traces_get(t, m->entries[i].ptr, &got) == 1 &&
                  same(&got, &m->entries[i]);
            found++;
        }
    }
    CHECK(ok);
    CHECK(found == m->count);
}

static void
model_clear(model_t *m)
{
    memset(m->entries, 0, UNIVERSE * sizeof(mh_trace_t));
    m->count = 0;
    m->sum_size = 0;
}

/* Tracks whether a resize is under way from the outside: the table's
 * memory jumps to about 3x when the new half is allocated and drops to
 * about 2/3 of that when the old half is freed.  The side table grows in
 * much smaller steps. */
typedef struct {
    size_t stable;
    size_t peak;
    int resizing;
    long resizes;
} resize_watch_t;

static void
watch(resize_watch_t *w, const mh_traces_t *t)
{
    size_t mem = mh_traces_memory(t);
    if (!w->resizing) {
        if (mem >= w->stable * 2) {
            w->resizing = 1;
            w->resizes++;
            w->peak = mem;
        }
        else {
            w->stable = mem;
        }
    }
    else if (mem < w->peak / 4 * 3) {
        w->resizing = 0;
        w->stable = mem;
    }
}

static void
test_model(void)
{
    model_t m = {0};
    m.entries = calloc(UNIVERSE, sizeof(mh_trace_t));
    CHECK(m.entries != NULL);
    if (m.entries == NULL) {
        return;
    }
    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    resize_watch_t w = {mh_traces_memory(t), 0, 0, 0};
    long mid_resize_removes = 0, mid_resize_replaces = 0, mid_checks = 0;
    long since_check = 0;
    int cleared_mid_resize = 0;
    const long total = 2000000;

    for (long op = 0; op < total; op++) {
        /* Phases: grow with removals, shrink, clear mid-resize and grow
         * again. */
        unsigned p_insert = op < 1000000 ? 65 : op < 1500000 ? 20 : 70;
        unsigned p_remove = op < 1000000 ? 30 : op < 1500000 ? 75 : 25;
        unsigned dice = (unsigned)rnd_below(100);
        unsigned kind = dice < p_insert              ? 0
                        : dice < p_insert + p_remove ? 1
                                                     : 2;
        /* The last phase uses a smaller universe slice. */
        size_t universe = op < 1500000 ? UNIVERSE : UNIVERSE / 4;
        size_t i = (size_t)rnd_below(universe);
        int rc = model_op(t, &m, i, kind);
        CHECK(mh_traces_count(t) == m.count);
        if (w.resizing) {
            mid_resize_removes += kind == 1 && rc == 1;
            mid_resize_replaces += kind == 0 && rc == 1;
            if (since_check++ % 4096 == 0) {
                model_check_all(t, &m);
                mid_checks++;
            }
        }
        else {
            since_check = 0;
        }
        watch(&w, t);
        if (op == 1500000) {
            model_check_all(t, &m);
            mh_traces_clear(t);
            model_clear(&m);
            check_table(t, 0, 0);
            w.stable = mh_traces_memory(t);
            w.resizing = 0;
        }
        if (op > 1600000 && w.resizing && !cleared_mid_resize &&
            m.count > 50000) {
            model_check_all(t, &m);
            mh_traces_clear(t);
            model_clear(&m);
            check_table(t, 0, 0);
            cleared_mid_resize = 1;
            w.stable = mh_traces_memory(t);
            w.resizing = 0;
        }
    }
    model_check_all(t, &m);
    /* Resizes seen: 1024 -> 2^20 in the first phase, then again after each
     * clear. */
    CHECK(w.resizes >= 14);
    printf(
        "test_traces: model run saw %ld resizes, %ld removes and %ld "
        "replaces mid-resize, %ld mid-resize full checks\n",
        w.resizes, mid_resize_removes, mid_resize_replaces, mid_checks);
    CHECK(mid_resize_removes > 1000);
    CHECK(mid_resize_replaces > 1000);
    CHECK(mid_checks >= 10);
    CHECK(cleared_mid_resize);

    /* foreach stops early with the callback's value. */
    tally_t stop = {0};
    stop.table = t;
    stop.stop_after = 5;
    CHECK(mh_traces_foreach(t, tally_visit, &stop) == 7);
    CHECK(stop.n == 5);

    mh_traces_free(t);
    free(m.entries);
}

/* ---- clear and memory accounting ------------------------------------- */

static void
test_clear_memory(void)
{
    size_t base = mh_rawmem_in_use;
    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    size_t m0 = mh_traces_memory(t);
    CHECK(m0 > 0);
    CHECK(mh_rawmem_in_use - base == m0);
    for (int round = 0; round < 3; round++) {
        uint64_t sum = 0;
        for (uintptr_t i = 1; i <= 100000; i++) {
            uint64_t size = i % 97 == 0 ? (uint64_t)1 << 36 : i;
            mh_trace_t tr = make(i * 32, size, (uint32_t)i, 0, 1);
            CHECK(mh_traces_insert(t, &tr, NULL) == 0);
            sum += size;
        }
        CHECK(mh_traces_memory(t) > m0);
        CHECK(mh_rawmem_in_use - base == mh_traces_memory(t));
        check_table(t, 100000, sum);
        mh_traces_clear(t);
        CHECK(mh_traces_count(t) == 0);
        CHECK(mh_traces_memory(t) == m0);
        CHECK(mh_rawmem_in_use - base == m0);
        mh_trace_t got;
        CHECK(mh_traces_get(t, 32, &got) == 0);
        CHECK(mh_traces_remove(t, 64, &got) == 0);
        check_table(t, 0, 0);
    }
    /* clear of a table still at its initial size */
    mh_trace_t tr = make(0x40, 1, 0, 0, 0);
    CHECK(mh_traces_insert(t, &tr, NULL) == 0);
    mh_traces_clear(t);
    CHECK(mh_traces_count(t) == 0);
    CHECK(mh_traces_memory(t) == m0);
    CHECK(mh_traces_get(t, 0x40, &tr) == 0);
    mh_traces_free(t);
    CHECK(mh_rawmem_in_use == base);
}

/* ---- injected allocation failures -------------------------------------- */

static void
no_failures(void)
{
    mh_rawmem_fail_after = -1;
}

static void
test_oom_new(void)
{
    size_t base = mh_rawmem_in_use;
    for (long k = 0; k < 2; k++) {
        mh_rawmem_fail_after = k;
        CHECK(mh_traces_new() == NULL);
        CHECK(mh_rawmem_in_use == base);
    }
    no_failures();
}

/* Insert keys [from, to) with small sizes into t and the model. */
static void
fill(mh_traces_t *t, model_t *m, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        mh_trace_t tr = make(key_addr(i), i, (uint32_t)i, (uint16_t)i, 0);
        CHECK(mh_traces_insert(t, &tr, NULL) == 0);
        model_put(m, i, &tr);
    }
}

/* Growth fails: the table keeps working in place up to 15/16 of its
 * capacity, then refuses new addresses; replace, remove and get keep
 * working; once allocation works again, growth resumes. */
static void
test_oom_growth(model_t *m)
{
    model_clear(m);
    size_t base = mh_rawmem_in_use;
    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    size_t m0 = mh_traces_memory(t);
    fill(t, m, 1, 769); /* 768 entries: the grow point of 1024 slots */
    CHECK(mh_traces_memory(t) == m0);

    mh_rawmem_fail_after = 0;
    size_t i = 769;
    int rc;
    for (;;) {
        mh_trace_t tr = make(key_addr(i), i, 1, 2, 3);
        rc = mh_traces_insert(t, &tr, NULL);
        if (rc != 0) {
            break;
        }
        model_put(m, i, &tr);
        i++;
        if (i > 2000) {
            break;
        }
    }
    CHECK(rc == -1);
    CHECK(mh_traces_count(t) == 1024 - 1024 / 16);
    CHECK(mh_traces_memory(t) == m0);
    /* Still refused, not looping, not crashing. */
    mh_trace_t tr = make(key_addr(i), 5, 0, 0, 0);
    CHECK(mh_traces_insert(t, &tr, NULL) == -1);
    CHECK(mh_traces_get(t, key_addr(i), &tr) == 0);
    /* Replace in a full table works without allocating... */
    tr = make(key_addr(1), 77, 7, 7, 1);
    mh_trace_t r;
    CHECK(mh_traces_insert(t, &tr, &r) == 1 && same(&r, &m->entries[1]));
    model_put(m, 1, &tr);
    /* ...unless it needs the side table: then nothing changes. */
    tr = make(key_addr(2), (uint64_t)1 << 35, 7, 7, 1);
    CHECK(mh_traces_insert(t, &tr, &r) == -1);
    CHECK(mh_traces_get(t, key_addr(2), &r) == 1 && same(&r, &m->entries[2]));
    /* Remove then insert again. */
    CHECK(mh_traces_remove(t, key_addr(3), &r) == 1);
    model_del(m, 3);
    tr = make(key_addr(5000), 9, 9, 9, 2);
    CHECK(mh_traces_insert(t, &tr, NULL) == 0);
    model_put(m, 5000, &tr);
    model_check_all(t, m);

    /* Allocation works again: growth resumes on the next insert. */
    no_failures();
    tr = make(key_addr(5001), 9, 9, 9, 2);
    CHECK(mh_traces_insert(t, &tr, NULL) == 0);
    model_put(m, 5001, &tr);
    CHECK(mh_traces_memory(t) > m0);
    fill(t, m, 6000, 20000);
    model_check_all(t, m);
    mh_traces_free(t);
    CHECK(mh_rawmem_in_use == base);
}

/* Allocation fails while a resize is under way: the resize needs no
 * memory and completes; the table then fills to 15/16 of the new size. */
static void
test_oom_mid_resize(model_t *m)
{
    model_clear(m);
    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    size_t m0 = mh_traces_memory(t);
    fill(t, m, 1, 770); /* the 769th insert started a resize to 2048 */
    size_t mid = mh_traces_memory(t);
    CHECK(mid == m0 + 2048 * 16);

    mh_rawmem_fail_after = 0;
    size_t next = 770;
    long removed = 0;
    for (int guard = 0; guard < 5000; guard++) {
        /* Interleave removes so some hit the old half. */
        if (guard % 3 == 0 && guard < 60) {
            size_t victim = 1 + (size_t)rnd_below(768);
            mh_trace_t r;
            int rc = mh_traces_remove(t, key_addr(victim), &r);
            CHECK(rc == (m->entries[victim].ptr != 0));
            if (rc == 1) {
                CHECK(same(&r, &m->entries[victim]));
                model_del(m, victim);
                removed++;
            }
            continue;
        }
        mh_trace_t tr = make(key_addr(next), next, 1, 1, 1);
        if (mh_traces_insert(t, &tr, NULL) != 0) {
            break;
        }
        model_put(m, next, &tr);
        next++;
    }
    CHECK(removed > 5);
    CHECK(mh_traces_count(t) == 2048 - 2048 / 16);
    CHECK(mh_traces_count(t) == m->count);
    /* Old half freed, the new one kept. */
    CHECK(mh_traces_memory(t) == mid - 1024 * 16);
    model_check_all(t, m);

    /* A clear that cannot allocate leaves an empty, storage-less table
     * that refuses inserts until memory is back. */
    mh_traces_clear(t);
    model_clear(m);
    CHECK(mh_traces_count(t) == 0);
    CHECK(mh_traces_memory(t) < m0);
    mh_trace_t r;
    CHECK(mh_traces_get(t, key_addr(1), &r) == 0);
    CHECK(mh_traces_remove(t, key_addr(1), &r) == 0);
    mh_snap_block_t blk;
    CHECK(mh_traces_export(t, &blk, 1) == 0);
    size_t visits = 0;
    CHECK(mh_traces_foreach(t, count_visit, &visits) == 0 && visits == 0);
    mh_trace_t tr = make(key_addr(1), 1, 1, 1, 1);
    CHECK(mh_traces_insert(t, &tr, NULL) == -1);
    CHECK(mh_traces_count(t) == 0);
    mh_traces_clear(t); /* clear of the storage-less table */
    CHECK(mh_traces_insert(t, &tr, NULL) == -1);
    no_failures();
    CHECK(mh_traces_insert(t, &tr, NULL) == 0);
    model_put(m, 1, &tr);
    CHECK(mh_traces_memory(t) == m0);
    fill(t, m, 2, 3000);
    model_check_all(t, m);
    mh_traces_free(t);

    /* Freeing the storage-less table. */
    t = mh_traces_new();
    CHECK(t != NULL);
    fill(t, m, 3000, 5000);
    mh_rawmem_fail_after = 0;
    mh_traces_clear(t);
    model_clear(m);
    mh_traces_free(t);
    no_failures();
}

/* The old half of a big resize is shrunk as it empties (realloc); when
 * that fails the resize goes on and frees the array whole at the end. */
static void
test_oom_trim(model_t *m)
{
    model_clear(m);
    size_t base = mh_rawmem_in_use;
    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    size_t grow_point = ((size_t)1 << 17) / 4 * 3;
    fill(t, m, 1, grow_point + 2); /* resize from 2^17 to 2^18 slots */
    size_t mid = mh_traces_memory(t);
    CHECK(mh_rawmem_in_use - base == mid);
    mh_rawmem_fail_after = 0;
    /* Each phase moves 1.5 * 2^16 old slots: in the first the shrink is
     * tried (and fails), by the end of the second the resize is over. */
    for (int phase = 0; phase < 2; phase++) {
        for (size_t k = 0; k < ((size_t)3 << 15) / SLOTS_PER_CALL; k++) {
            size_t victim = 1 + (size_t)rnd_below(grow_point);
            model_op(t, m, victim, 1);
        }
        CHECK(mh_traces_memory(t) ==
              (phase == 0 ? mid : mid - ((size_t)1 << 17) * 16));
    }
    CHECK(mh_rawmem_in_use - base == mh_traces_memory(t));
    CHECK(mh_traces_count(t) == m->count);
    model_check_all(t, m);
    no_failures();
    mh_traces_free(t);
    CHECK(mh_rawmem_in_use == base);
}

/* Fail the k-th allocation of a scripted run, for every k that falls
 * inside the run: each refused insert must leave the table as it was. */
static void
test_oom_sweep(model_t *m)
{
    size_t base = mh_rawmem_in_use;
    long refused_total = 0;
    for (long k = 0; k < 16; k++) {
        model_clear(m);
        mh_traces_t *t = mh_traces_new();
        CHECK(t != NULL);
        mh_rawmem_fail_after = k;
        uint64_t saved = rng_state;
        rng_state = 12345; /* the same script for every k */
        long refused = 0;
        for (int op = 0; op < 12000; op++) {
            size_t i = (size_t)rnd_below(8192);
            unsigned kind = rnd_below(10) < 7 ? 0 : 1;
            refused += model_op(t, m, i, kind) == -1;
        }
        rng_state = saved;
        refused_total += refused;
        CHECK(mh_traces_count(t) == m->count);
        model_check_all(t, m);
        no_failures();
        /* Resumes normally. */
        for (size_t i = 0; i < 8192; i++) {
            model_op(t, m, i, 0);
        }
        CHECK(m->count == 8192);
        model_check_all(t, m);
        mh_traces_free(t);
        CHECK(mh_rawmem_in_use == base);
    }
    CHECK(refused_total > 0);
}

/* ---- slow migration -------------------------------------------------- */

#ifdef MH_TRACES_MIGRATE_SLOTS
/* Only when both files are built with -DMH_TRACES_MIGRATE_SLOTS=1: then
 * removes and replaces can empty the old half before the migration cursor
 * reaches its end, which the default build (32 slots per call) never
 * does. */
static void
test_slow_migration(model_t *m)
{
    for (int replace = 0; replace < 2; replace++) {
        model_clear(m);
        mh_traces_t *t = mh_traces_new();
        CHECK(t != NULL);
        size_t m0 = mh_traces_memory(t);
        fill(t, m, 1, 770); /* resize to 2048 slots under way */
        CHECK(mh_traces_memory(t) == m0 + 2048 * 16);
        for (size_t i = 768; i >= 1; i--) {
            mh_trace_t r;
            if (replace) {
                mh_trace_t tr = make(key_addr(i), i + 1, 2, 3, 1);
                CHECK(mh_traces_insert(t, &tr, &r) == 1);
                CHECK(same(&r, &m->entries[i]));
                model_put(m, i, &tr);
            }
            else {
                CHECK(mh_traces_remove(t, key_addr(i), &r) == 1);
                CHECK(same(&r, &m->entries[i]));
                model_del(m, i);
            }
        }
        /* The old half is gone although the cursor did not reach its
         * end. */
        CHECK(mh_traces_memory(t) == m0 + 2048 * 16 - 1024 * 16);
        model_check_all(t, m);
        mh_traces_free(t);
    }
}
#endif

static void
test_oom(void)
{
    model_t m = {0};
    m.entries = calloc(UNIVERSE, sizeof(mh_trace_t));
    CHECK(m.entries != NULL);
    if (m.entries == NULL) {
        return;
    }
    test_oom_new();
    test_oom_growth(&m);
    test_oom_mid_resize(&m);
    test_oom_trim(&m);
    test_oom_sweep(&m);
    no_failures();
#ifdef MH_TRACES_MIGRATE_SLOTS
    test_slow_migration(&m);
#endif
    free(m.entries);
}

/* ---- ten million blocks ----------------------------------------------- */

static void
test_ten_million(void)
{
    const size_t n = 10000000;
    size_t base = mh_rawmem_in_use;
    mh_traces_t *t = mh_traces_new();
    CHECK(t != NULL);
    int ok = 1;
    for (size_t i = 1; i <= n; i++) {
        /* Block-like addresses: a 48-byte stride across a few arenas. */
        uintptr_t ptr = (uintptr_t)0x7f0000000000 +
                        ((uintptr_t)(i & 7) << 36) + (uintptr_t)(i >> 3) * 48;
        mh_trace_t tr = make(ptr, i, (uint32_t)i, 0, 2);
        ok &= mh_traces_insert(t, &tr, NULL) == 0;
    }
    CHECK(ok);
    CHECK(mh_traces_count(t) == n);
    size_t mem = mh_traces_memory(t);
    printf("test_traces: 10M blocks use %zu bytes (%.2f bytes per block)\n",
           mem, (double)mem / (double)n);
#ifndef MH_TRACES_MIGRATE_SLOTS
    /* (A slow migration may still hold the old half here.) */
    CHECK(mem < 32 * n);
#endif
    CHECK(mh_rawmem_in_use - base == mem);
    for (size_t i = 1; i <= n; i += 9973) {
        uintptr_t ptr = (uintptr_t)0x7f0000000000 +
                        ((uintptr_t)(i & 7) << 36) + (uintptr_t)(i >> 3) * 48;
        mh_trace_t got;
        CHECK(mh_traces_get(t, ptr, &got) == 1 && got.size == i &&
              got.traceback == i && got.domain == 2);
    }
    mh_traces_free(t);
    CHECK(mh_rawmem_in_use == base);
}

int
main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 20261125;
    rng_state = seed;
    test_roundtrip();
    test_replace();
    test_refusals();
    test_clear_memory();
    test_oom();
    test_model();
    test_ten_million();
    printf("test_traces: seed %" PRIu64 "\n", seed);
    return check_report("test_traces");
}
