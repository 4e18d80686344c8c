/* test_leaks.c: plain-C tests of the generations history (gens.h) and the
 * leak verdict (leaks.h), plus mh_traces_restamp.
 *
 * Synthetic sites are simulated generation by generation with a tiny model
 * of a heap (blocks with a birth generation and a death generation), so
 * each allocation pattern of the leak corpus has a C twin here: a steady
 * leak, churn, a cache that turns over, lazy initialization, a leak that
 * starts late, a slow leak under churn.  Also: series compaction, and
 * out-of-memory at every allocation.  Prints the closing "N passed, N
 * failed" line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gens.h"
#include "leaks.h"
#include "rawmem.h"
#include "traces.h"
#include "check.h"

/* A simulated block: alive in generations [born, dies). */
typedef struct {
    uint32_t site;
    uint16_t born;
    uint16_t dies; /* UINT16_MAX: never */
    uint64_t bytes;
} sim_block_t;

typedef struct {
    sim_block_t *blocks;
    size_t n, cap;
} sim_t;

static void
sim_add(sim_t *sim, uint32_t site, uint16_t born, uint16_t dies,
        uint64_t bytes)
{
    if (sim->n == sim->cap) {
        sim->cap = sim->cap ? sim->cap * 2 : 1024;
        sim->blocks = realloc(sim->blocks, sim->cap * sizeof(sim_block_t));
        if (sim->blocks == NULL) {
            abort();
        }
    }
    sim->blocks[sim->n++] = (sim_block_t){site, born, dies, bytes};
}

/* Run the history over generations 1..G (the open one is G), scanning at
 * every boundary; then judge.  Time = generation * 0.1 s, iterations =
 * generation * 10. */
/* Bytes the program allocated in each generation (NULL: unknown). */
static const uint64_t *volume_per_generation;

static int
judge(sim_t *sim, uint16_t G, mh_leak_result_t *result)
{
    mh_gen_record_t start = {0, 0, 0, 0, 0};
    uint64_t allocated = 0;
    mh_gens_t *gens = mh_gens_new(&start);
    if (!CHECK(gens != NULL)) {
        return -1;
    }
    for (uint16_t g = 1; g <= G; g++) {
        if (volume_per_generation != NULL) {
            allocated += volume_per_generation[g - 1];
        }
        mh_gen_record_t r = {g * 0.1, (int64_t)g * 10, 0, 0, allocated};
        CHECK(mh_gens_record(gens, g, &r) == 0);
        CHECK(mh_gens_scan_begin(gens) == 0);
        for (size_t i = 0; i < sim->n; i++) {
            const sim_block_t *b = &sim->blocks[i];
            if (b->born < g && g < b->dies) {
                CHECK(mh_gens_scan_add(gens, b->site, b->bytes) == 0);
            }
        }
        CHECK(mh_gens_scan_commit(gens) == 0);
    }
    mh_survivors_t *surv = mh_survivors_new();
    for (size_t i = 0; i < sim->n; i++) {
        const sim_block_t *b = &sim->blocks[i];
        if (b->dies > G) {
            CHECK(mh_survivors_add(surv, b->site, b->born, b->bytes) == 0);
        }
    }
    mh_leak_params_t params = {0.5, 3};
    int rc = mh_leaks_analyze(gens, surv, G * 0.1 + 0.05, (int64_t)G * 10,
                              &params, result);
    mh_survivors_free(surv);
    mh_gens_free(gens);
    return rc;
}

static const mh_site_verdict_t *
verdict_of(const mh_leak_result_t *result, uint32_t site)
{
    for (size_t i = 0; i < result->nsites; i++) {
        if (result->sites[i].site == site) {
            return &result->sites[i];
        }
    }
    return NULL;
}

#define LEAK_SITE mh_gens_site_key(10, 0)
#define CHURN_SITE mh_gens_site_key(11, 0)
#define CACHE_SITE mh_gens_site_key(12, 0)
#define LAZY_SITE mh_gens_site_key(13, 0)
#define LATE_SITE mh_gens_site_key(14, 0)
#define SLOW_SITE mh_gens_site_key(15, 0)
#define NATIVE_SITE mh_gens_site_key(16, 1)
#define NEVER UINT16_MAX

static void
test_patterns(void)
{
    sim_t sim = {0};
    const uint16_t G = 30;
    for (uint16_t g = 0; g < G; g++) {
        /* A steady leak: 10 blocks of 100 bytes per generation. */
        for (int k = 0; k < 10; k++) {
            sim_add(&sim, LEAK_SITE, g, NEVER, 100);
        }
        /* Churn: 500 blocks that live into the next generation. */
        for (int k = 0; k < 500; k++) {
            sim_add(&sim, CHURN_SITE, g, g + 2, 64);
        }
        /* A cache of 40 entries that turns over: 10 new per generation,
         * each evicted 4 generations later. */
        for (int k = 0; k < 10; k++) {
            sim_add(&sim, CACHE_SITE, g, g + 4, 200);
        }
        /* Lazy initialization in generations 0-2 only. */
        if (g < 3) {
            sim_add(&sim, LAZY_SITE, g, NEVER, 100000);
        }
        /* A leak that starts in generation 15. */
        if (g >= 15) {
            sim_add(&sim, LATE_SITE, g, NEVER, 1000);
        }
        /* A slow leak of one small block per generation under the same
         * site's heavy churn. */
        sim_add(&sim, SLOW_SITE, g, NEVER, 48);
        for (int k = 0; k < 2000; k++) {
            sim_add(&sim, SLOW_SITE, g, g + 1, 512);
        }
        /* A native leak. */
        sim_add(&sim, NATIVE_SITE, g, NEVER, 4096);
    }
    mh_leak_result_t result;
    if (!CHECK(judge(&sim, G, &result) == 0)) {
        free(sim.blocks);
        return;
    }
    const mh_site_verdict_t *leak = verdict_of(&result, LEAK_SITE);
    const mh_site_verdict_t *churn = verdict_of(&result, CHURN_SITE);
    const mh_site_verdict_t *cache = verdict_of(&result, CACHE_SITE);
    const mh_site_verdict_t *lazy = verdict_of(&result, LAZY_SITE);
    const mh_site_verdict_t *late = verdict_of(&result, LATE_SITE);
    const mh_site_verdict_t *slow = verdict_of(&result, SLOW_SITE);
    const mh_site_verdict_t *native = verdict_of(&result, NATIVE_SITE);
    if (!CHECK(leak && churn && cache && lazy && late && slow && native)) {
        mh_leaks_result_free(&result);
        free(sim.blocks);
        return;
    }
    CHECK(leak->is_leak);
    CHECK(leak->confidence > 0.95);
    CHECK(leak->first_generation == 1);
    CHECK(leak->generations_with_survivors == G - 1);
    CHECK(leak->live_bytes == 10 * 100 * G);
    CHECK(leak->live_blocks == 10u * G);
    /* 1000 bytes per generation of 0.1 s and of 10 iterations. */
    CHECK(fabs(leak->growth_per_iteration - 100.0) < 5.0);
    CHECK(leak->growth_per_s > 8000 && leak->growth_per_s < 11000);

    CHECK(!churn->is_leak);
    CHECK(!cache->is_leak);
    CHECK(!lazy->is_leak);
    CHECK(lazy->live_bytes == 300000);

    CHECK(late->is_leak);
    CHECK(late->first_generation == 15);
    CHECK(late->growth_bytes == 1000u * (G - 15));

    CHECK(slow->is_leak);
    CHECK(slow->confidence > 0.9);
    CHECK(native->is_leak);
    CHECK(mh_gens_site_native(native->site));

    /* Leaks first, the largest growth first. */
    CHECK(result.nleaks == 4);
    CHECK(result.sites[0].is_leak && result.sites[0].site == NATIVE_SITE);
    for (size_t i = result.nleaks; i < result.nsites; i++) {
        CHECK(!result.sites[i].is_leak);
    }
    /* Survivors ranges are sorted by generation and belong to the site. */
    for (size_t i = 0; i < result.nsites; i++) {
        const mh_site_verdict_t *v = &result.sites[i];
        for (size_t k = v->survivors_begin; k < v->survivors_end; k++) {
            CHECK(result.survivors[k].site == v->site);
            if (k > v->survivors_begin) {
                CHECK(result.survivors[k].generation >
                      result.survivors[k - 1].generation);
            }
        }
    }
    mh_leaks_result_free(&result);
    free(sim.blocks);
}

/* Nothing survived (memhound's own work is untraced, so a program that
 * keeps nothing has no survivor at all): no sort of an empty array, whose
 * pointer is NULL (UBSan caught the qsort). */
static void
test_no_survivors(void)
{
    sim_t sim = {0};
    sim_add(&sim, CHURN_SITE, 1, 2, 100);
    mh_leak_result_t result;
    if (CHECK(judge(&sim, 8, &result) == 0)) {
        CHECK(result.nleaks == 0);
        CHECK(result.nsites == 0);
        mh_leaks_result_free(&result);
    }
    free(sim.blocks);
}

static void
test_too_few_generations(void)
{
    sim_t sim = {0};
    for (uint16_t g = 0; g < 3; g++) {
        sim_add(&sim, LEAK_SITE, g, NEVER, 100);
    }
    mh_leak_result_t result;
    if (CHECK(judge(&sim, 3, &result) == 0)) {
        CHECK(result.nleaks == 0);
        CHECK(result.nsites == 1);
        mh_leaks_result_free(&result);
    }
    free(sim.blocks);
}

static void
test_bursty_leak_with_idle_generations(void)
{
    /* A leak that happens only in busy bursts (every 5th generation, the
     * program sleeps in between): idle generations are no evidence. */
    sim_t sim = {0};
    const uint16_t G = 40;
    uint64_t volume[40];
    for (uint16_t g = 0; g < G; g++) {
        int busy = g % 5 == 0;
        volume[g] = busy ? 50000000 : 1000;
        if (busy) {
            for (int k = 0; k < 20; k++) {
                sim_add(&sim, LEAK_SITE, g, NEVER, 1000);
            }
            for (int k = 0; k < 500; k++) {
                sim_add(&sim, CHURN_SITE, g, g + 1, 10000);
            }
        }
    }
    mh_leak_result_t result;
    volume_per_generation = volume;
    int rc = judge(&sim, G, &result);
    volume_per_generation = NULL;
    if (CHECK(rc == 0)) {
        const mh_site_verdict_t *leak = verdict_of(&result, LEAK_SITE);
        CHECK(leak != NULL && leak->is_leak);
        CHECK(leak != NULL && leak->generations_observed == 7);
        CHECK(result.nleaks == 1);
        mh_leaks_result_free(&result);
    }
    /* The same survivors with every generation busy: too sparse. */
    if (CHECK(judge(&sim, G, &result) == 0)) {
        CHECK(result.nleaks == 0);
        mh_leaks_result_free(&result);
    }
    free(sim.blocks);
}

static void
test_series_compaction(void)
{
    mh_gen_record_t start = {0, -1, 0, 0, 0};
    mh_gens_t *gens = mh_gens_new(&start);
    if (!CHECK(gens != NULL)) {
        return;
    }
    const uint32_t site = mh_gens_site_key(7, 0);
    const uint32_t late = mh_gens_site_key(8, 0);
    size_t total = MH_GENS_MAX_COLUMNS * 2 + 10;
    for (size_t g = 1; g <= total; g++) {
        mh_gen_record_t r = {(double)g, -1, 0, 0, 0};
        CHECK(mh_gens_record(gens, (uint16_t)g, &r) == 0);
        CHECK(mh_gens_scan_begin(gens) == 0);
        CHECK(mh_gens_scan_add(gens, site, 1000 * g) == 0);
        if (g > total - 50) {
            CHECK(mh_gens_scan_add(gens, late, 300) == 0);
            CHECK(mh_gens_scan_add(gens, late, 300) == 0);
        }
        /* Below the series threshold: never gets a series. */
        CHECK(mh_gens_scan_add(gens, mh_gens_site_key(9, 0), 8) == 0);
        CHECK(mh_gens_scan_commit(gens) == 0);
    }
    size_t columns = mh_gens_columns(gens);
    CHECK(columns <= MH_GENS_MAX_COLUMNS);
    CHECK(columns >= MH_GENS_MAX_COLUMNS / 2);
    CHECK(mh_gens_count(gens) == total + 1);
    uint16_t prev = 0;
    for (size_t j = 0; j < columns; j++) {
        uint16_t g = mh_gens_column_generation(gens, j);
        CHECK(j == 0 || g > prev);
        prev = g;
        /* The value of each kept column is the one scanned then. */
        CHECK(mh_gens_series_bytes_at(gens, site, j) == 1000u * g);
    }
    CHECK(prev == total); /* the newest column is kept */
    size_t first;
    const mh_series_point_t *points;
    size_t n = mh_gens_series(gens, late, &first, &points);
    CHECK(n > 0 && first + n == columns);
    if (n > 0) {
        CHECK(points[n - 1].bytes == 600 && points[n - 1].blocks == 2);
    }
    CHECK(mh_gens_series(gens, mh_gens_site_key(9, 0), &first, &points) == 0);
    CHECK(mh_gens_memory(gens) > 0);
    /* Generation numbers must follow each other. */
    mh_gen_record_t r = {0, -1, 0, 0, 0};
    CHECK(mh_gens_record(gens, (uint16_t)(total + 5), &r) == -1);
    mh_gens_free(gens);
}

static void
test_out_of_memory(void)
{
    /* Every allocation point fails in turn; nothing may crash or leak,
     * and a failure is always reported. */
    for (long after = 0; after < 60; after++) {
        size_t in_use = mh_rawmem_in_use;
        mh_rawmem_fail_after = after;
        mh_gen_record_t start = {0, -1, 0, 0, 0};
        mh_gens_t *gens = mh_gens_new(&start);
        mh_survivors_t *surv = mh_survivors_new();
        int failed = gens == NULL || surv == NULL;
        for (uint16_t g = 1; !failed && g <= 6; g++) {
            mh_gen_record_t r = {g, -1, 0, 0, 0};
            failed |= mh_gens_record(gens, g, &r) < 0;
            failed |= mh_gens_scan_begin(gens) < 0;
            for (uint32_t s = 0; !failed && s < 40; s++) {
                failed |= mh_gens_scan_add(gens, s * 2, 500) < 0;
            }
            failed |= mh_gens_scan_commit(gens) < 0;
        }
        for (uint32_t s = 0; !failed && s < 40; s++) {
            for (uint16_t g = 0; g < 6; g++) {
                failed |= mh_survivors_add(surv, s * 2, g, 10) < 0;
            }
        }
        mh_leak_result_t result = {0};
        if (!failed) {
            mh_leak_params_t params = {0.5, 3};
            failed = mh_leaks_analyze(gens, surv, 7, -1, &params, &result) < 0;
        }
        mh_rawmem_fail_after = -1;
        if (!failed) {
            CHECK(result.nsites == 40);
        }
        mh_leaks_result_free(&result);
        mh_survivors_free(surv);
        mh_gens_free(gens);
        CHECK(mh_rawmem_in_use == in_use);
    }
}

static int
count_generation(const mh_trace_t *trace, void *arg)
{
    if (trace->generation == 0) {
        (*(size_t *)arg)++;
    }
    return 0;
}

static void
test_restamp(void)
{
    mh_traces_t *traces = mh_traces_new();
    if (!CHECK(traces != NULL)) {
        return;
    }
    /* Enough blocks to force incremental resizes, so both halves hold
     * entries when restamp runs. */
    for (uintptr_t i = 1; i <= 100000; i++) {
        mh_trace_t t = {i * 16, 32, 3, (uint16_t)(i % 500 + 1), 2};
        CHECK(mh_traces_insert(traces, &t, NULL) >= 0);
    }
    mh_traces_restamp(traces, 0);
    size_t zeros = 0;
    mh_traces_foreach(traces, count_generation, &zeros);
    CHECK(zeros == 100000);
    mh_trace_t out;
    CHECK(mh_traces_get(traces, 16 * 777, &out) == 1);
    CHECK(out.generation == 0 && out.size == 32 && out.traceback == 3);
    CHECK(mh_traces_remove(traces, 16 * 777, NULL) == 1);
    mh_traces_free(traces);
}

int
main(void)
{
    test_patterns();
    test_too_few_generations();
    test_no_survivors();
    test_bursty_leak_with_idle_generations();
    test_series_compaction();
    test_out_of_memory();
    test_restamp();
    return check_report("test_leaks");
}
