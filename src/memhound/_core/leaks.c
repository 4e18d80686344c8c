/* leaks.c: the leak verdict from generations (see leaks.h).
 *
 * Per site, in one pass over its survivors (sorted by generation):
 *   1. the run: walking back from the newest closed generation, the oldest
 *      generation f such that at least RUN_DENSITY of the closed
 *      generations [f, G) left survivors (and f itself did);
 *   2. growth: the slope of the site's live-size series (least squares from
 *      the last scan at or before f to now) times the time since, against
 *      what survived of the generations since that scan.  A leak grows by
 *      about what survived; a cache that turns over does not grow at all;
 *   3. confidence = evidence(span) * density * growth match.
 * Generations in which the program allocated next to nothing (it slept,
 * waited for I/O) are no evidence either way: a leak that happens in
 * bursts is judged on the generations in which the program was busy.
 * Python-free; the caller holds the GIL.
 */
#include "leaks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rawmem.h"
#include "table.h"

/* At least this share of the generations of a run must leave survivors. */
#define RUN_DENSITY 0.7
/* Evidence grows with the run's length: 1 - EVIDENCE_BASE^span (span 8:
 * 0.91, span 10: 0.95). */
#define EVIDENCE_BASE 0.74
/* growth match: ratio of series growth to survivors; below LOW it is no
 * growth at all, above LOW + WIDTH full match. */
#define GROWTH_LOW 0.3
#define GROWTH_WIDTH 0.5
/* Without any series to check growth against, the match is unknown. */
#define GROWTH_UNKNOWN 0.5
/* A generation is idle when it allocated less than this share of the mean
 * per generation. */
#define IDLE_SHARE 0.05

struct mh_survivors {
    mh_table_t index; /* (site << 16 | generation) + 1 -> entry index */
    mh_survivor_t *entries;
    size_t n;
    size_t cap;
    int failed;
};

mh_survivors_t *
mh_survivors_new(void)
{
    mh_survivors_t *surv = mh_rawmem_calloc(1, sizeof(*surv));
    if (surv != NULL) {
        mh_table_init(&surv->index);
    }
    return surv;
}

void
mh_survivors_free(mh_survivors_t *surv)
{
    if (surv == NULL) {
        return;
    }
    mh_table_fini(&surv->index);
    mh_rawmem_free(surv->entries, surv->cap * sizeof(mh_survivor_t));
    mh_rawmem_free(surv, sizeof(*surv));
}

int
mh_survivors_add(mh_survivors_t *surv, uint32_t site, uint16_t generation,
                 uint64_t bytes)
{
    if (surv->failed) {
        return -1;
    }
    uint64_t key = ((uint64_t)site << 16 | generation) + 1;
    uint32_t index;
    if (mh_table_get(&surv->index, key, &index)) {
        surv->entries[index].bytes += bytes;
        surv->entries[index].blocks++;
        return 0;
    }
    if (surv->n >= UINT32_MAX ||
        mh_rawmem_reserve((void **)&surv->entries, &surv->cap, surv->n + 1,
                          sizeof(mh_survivor_t)) < 0 ||
        mh_table_put(&surv->index, key, (uint32_t)surv->n) < 0) {
        surv->failed = 1;
        return -1;
    }
    mh_survivor_t *e = &surv->entries[surv->n++];
    e->site = site;
    e->generation = generation;
    e->bytes = bytes;
    e->blocks = 1;
    return 0;
}

static int
compare_survivors(const void *pa, const void *pb)
{
    const mh_survivor_t *a = pa, *b = pb;
    if (a->site != b->site) {
        return a->site < b->site ? -1 : 1;
    }
    return (a->generation > b->generation) - (a->generation < b->generation);
}

static double
clamp01(double x)
{
    return x < 0 ? 0 : (x > 1 ? 1 : x);
}

/* The last series column at or before generation g, or the first column
 * when all are later; -1 when there are none. */
static long
column_at_or_before(const mh_gens_t *gens, uint16_t g)
{
    size_t n = mh_gens_columns(gens);
    if (n == 0) {
        return -1;
    }
    long found = 0;
    for (size_t j = 0; j < n; j++) {
        if (mh_gens_column_generation(gens, j) <= g) {
            found = (long)j;
        }
        else {
            break;
        }
    }
    return found;
}

/* Where a generation record lies on the growth axis: its iteration count
 * when iterations are counted (growth per iteration is what a loop leaks,
 * however long each iteration takes), else its time. */
static double
axis_of(const mh_gen_record_t *r, int by_iteration)
{
    return by_iteration ? (double)r->iteration : r->t;
}

/* Least-squares growth of the site's live size from column c to now, in
 * bytes over that span.  The last point is the live size now. */
static double
series_growth(const mh_gens_t *gens, uint32_t site, size_t c, double t_now,
              int64_t iteration_now, uint64_t live_now)
{
    size_t n = mh_gens_columns(gens);
    const mh_gen_record_t *first =
        mh_gens_get(gens, mh_gens_column_generation(gens, c));
    int by_iteration = first->iteration >= 0 && iteration_now >= 0;
    double x0 = axis_of(first, by_iteration);
    double x_now = by_iteration ? (double)iteration_now : t_now;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    size_t k = 0;
    for (size_t j = c; j <= n; j++) {
        double x, y;
        if (j == n) {
            x = x_now - x0;
            y = (double)live_now;
        }
        else {
            const mh_gen_record_t *r =
                mh_gens_get(gens, mh_gens_column_generation(gens, j));
            if (by_iteration && r->iteration < 0) {
                continue;
            }
            x = axis_of(r, by_iteration) - x0;
            y = (double)mh_gens_series_bytes_at(gens, site, j);
        }
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        k++;
    }
    double denom = (double)k * sxx - sx * sx;
    if (k < 2 || denom <= 0) {
        return 0;
    }
    double slope = ((double)k * sxy - sx * sy) / denom;
    return slope * (x_now - x0);
}

/* The verdict on the site whose survivors are e[0..n), sorted by
 * generation. */
/* busy[g]: closed generations among 1 .. g-1 in which the program was
 * busy (see IDLE_SHARE); so busy[G] - busy[f] counts those of [f, G). */
static void
judge_site(const mh_gens_t *gens, const uint32_t *busy, const mh_survivor_t *e,
           size_t n, double t_now, int64_t iteration_now,
           const mh_leak_params_t *p, mh_site_verdict_t *v)
{
    size_t G = mh_gens_count(gens) - 1; /* the open generation */
    for (size_t i = 0; i < n; i++) {
        v->live_bytes += e[i].bytes;
        v->live_blocks += e[i].blocks;
    }
    v->growth_per_iteration = -1;
    if (G < 2) {
        return;
    }
    /* 1. The run: closed generations are 1 .. G-1 (0 is "before"). */
    size_t with = 0, best_with = 0, best_span = 0;
    uint16_t f = 0;
    for (size_t i = n; i-- > 0;) {
        uint16_t g = e[i].generation;
        if (g >= G || g == 0 || e[i].bytes == 0) {
            continue;
        }
        with++;
        size_t span_busy = busy[G] - busy[g];
        if (span_busy < with) { /* survivors from an "idle" generation */
            span_busy = with;
        }
        if ((double)with >= RUN_DENSITY * (double)span_busy) {
            f = g;
            best_with = with;
            best_span = span_busy;
        }
    }
    if (f == 0) {
        return;
    }
    size_t span = best_span;
    v->first_generation = f;
    v->generations_with_survivors = (uint32_t)best_with;
    v->generations_observed = (uint32_t)span;
    for (size_t i = 0; i < n; i++) {
        if (e[i].generation >= f) {
            v->growth_bytes += e[i].bytes;
        }
    }
    const mh_gen_record_t *start = mh_gens_get(gens, f);
    double elapsed = t_now - start->t;
    v->growth_per_s = elapsed > 0 ? (double)v->growth_bytes / elapsed : 0;
    if (start->iteration >= 0 && iteration_now > start->iteration) {
        v->growth_per_iteration = (double)v->growth_bytes /
                                  (double)(iteration_now - start->iteration);
    }
    if (span < p->min_generations) {
        return;
    }
    /* 2. Growth: did the live size grow by what survived? */
    double match = GROWTH_UNKNOWN;
    long c = column_at_or_before(gens, f);
    if (c >= 0) {
        uint16_t gc = mh_gens_column_generation(gens, (size_t)c);
        /* What survived of the generations since that scan, leaving out
         * the newest (open and last closed: still young, where churn that
         * lives a little while sits). */
        uint64_t survived = 0, survived_all = 0;
        for (size_t i = 0; i < n; i++) {
            if (e[i].generation >= gc) {
                survived_all += e[i].bytes;
                if ((size_t)e[i].generation + 2 <= G) {
                    survived += e[i].bytes;
                }
            }
        }
        if (survived == 0) {
            survived = survived_all;
        }
        double grown = series_growth(gens, v->site, (size_t)c, t_now,
                                     iteration_now, v->live_bytes);
        double ratio = survived ? grown / (double)survived : 0;
        match = clamp01((ratio - GROWTH_LOW) / GROWTH_WIDTH);
    }
    /* 3. Confidence. */
    double density = (double)best_with / (double)span;
    double evidence = 1 - pow(EVIDENCE_BASE, (double)span);
    v->confidence = evidence * clamp01(density / 0.9) * match;
    int known =
        mh_gens_site_traceback(v->site) != 0 || mh_gens_site_native(v->site);
    v->is_leak =
        known && v->growth_bytes > 0 && v->confidence >= p->min_confidence;
}

static int
compare_verdicts(const void *pa, const void *pb)
{
    const mh_site_verdict_t *a = pa, *b = pb;
    if (a->is_leak != b->is_leak) {
        return a->is_leak ? -1 : 1;
    }
    if (a->is_leak) {
        double sa = (double)a->growth_bytes * a->confidence;
        double sb = (double)b->growth_bytes * b->confidence;
        if (sa != sb) {
            return sa > sb ? -1 : 1;
        }
    }
    if (a->live_bytes != b->live_bytes) {
        return a->live_bytes > b->live_bytes ? -1 : 1;
    }
    return (a->site > b->site) - (a->site < b->site);
}

int
mh_leaks_analyze(const mh_gens_t *gens, mh_survivors_t *surv, double t_now,
                 int64_t iteration_now, const mh_leak_params_t *params,
                 mh_leak_result_t *result)
{
    memset(result, 0, sizeof(*result));
    if (surv->failed) {
        return -1;
    }
    /* qsort's pointer must not be NULL even for 0 items (C11 7.22.5). */
    if (surv->n > 1) {
        qsort(surv->entries, surv->n, sizeof(mh_survivor_t),
              compare_survivors);
    }
    size_t nsites = 0;
    for (size_t i = 0; i < surv->n; i++) {
        if (i == 0 || surv->entries[i].site != surv->entries[i - 1].site) {
            nsites++;
        }
    }
    mh_site_verdict_t *sites = NULL;
    if (nsites > 0) {
        sites = mh_rawmem_calloc(nsites, sizeof(*sites));
        if (sites == NULL) {
            return -1;
        }
    }
    /* busy[] prefix counts over the closed generations. */
    size_t G = mh_gens_count(gens) - 1;
    uint32_t *busy = mh_rawmem_calloc(G + 1, sizeof(uint32_t));
    if (busy == NULL) {
        mh_rawmem_free(sites, nsites * sizeof(*sites));
        return -1;
    }
    double mean = 0;
    if (G > 1) {
        mean = (double)(mh_gens_get(gens, G)->allocated_bytes -
                        mh_gens_get(gens, 1)->allocated_bytes) /
               (double)(G - 1);
    }
    for (size_t g = 1; g < G; g++) {
        uint64_t a = mh_gens_get(gens, g + 1)->allocated_bytes -
                     mh_gens_get(gens, g)->allocated_bytes;
        /* Unknown volumes (all 0) count every generation as busy. */
        int is_busy = mean <= 0 || (double)a >= IDLE_SHARE * mean;
        busy[g + 1] = busy[g] + (uint32_t)is_busy;
    }
    size_t k = 0, nleaks = 0;
    for (size_t i = 0; i < surv->n;) {
        size_t j = i;
        while (j < surv->n && surv->entries[j].site == surv->entries[i].site) {
            j++;
        }
        mh_site_verdict_t *v = &sites[k++];
        v->site = surv->entries[i].site;
        v->survivors_begin = i;
        v->survivors_end = j;
        judge_site(gens, busy, surv->entries + i, j - i, t_now, iteration_now,
                   params, v);
        nleaks += v->is_leak;
        i = j;
    }
    mh_rawmem_free(busy, (G + 1) * sizeof(uint32_t));
    if (nsites > 1) {
        qsort(sites, nsites, sizeof(*sites), compare_verdicts);
    }
    result->sites = sites;
    result->nsites = nsites;
    result->nleaks = nleaks;
    /* The survivors move into the result. */
    result->survivors = surv->entries;
    result->nsurvivors = surv->n;
    result->survivors_cap = surv->cap;
    surv->entries = NULL;
    surv->cap = 0;
    surv->n = 0;
    return 0;
}

void
mh_leaks_result_free(mh_leak_result_t *result)
{
    mh_rawmem_free(result->sites, result->nsites * sizeof(mh_site_verdict_t));
    mh_rawmem_free(result->survivors,
                   result->survivors_cap * sizeof(mh_survivor_t));
    memset(result, 0, sizeof(*result));
}
