/* gcchurn.c: counts of what the collector frees, by site (see gcchurn.h).
 *
 * Sites sit in an array indexed through a table.h map (traceback + 1 ->
 * index); a one-entry cache catches the common run of frees from the same
 * site (a cycle's objects die together).  The sites a collection touched
 * are listed in `touched` so that its end commits or discards only those.
 * Collection ids come from one process-wide counter that is never reset,
 * so a thread left marked by a collection whose end never came (the
 * callback was removed under it) never matches a later one.  Python-free;
 * GIL held throughout.
 */
#include "gcchurn.h"

#include <string.h>

#include "rawmem.h"
#include "snapdata.h"
#include "table.h"

__thread uint32_t mh_gcchurn_tls_collection
    __attribute__((tls_model("initial-exec")));

/* Guarded by the GIL (gcchurn.h). */
mh_churn_t *mh_gcchurn_active;

/* Guarded by the GIL; never reset (see above). */
static uint32_t last_collection_id;

struct mh_churn {
    mh_churn_site_t *sites;
    size_t nsites;
    size_t sites_cap;
    mh_table_t index; /* traceback + 1 -> index into sites */
    uint32_t *touched;
    size_t ntouched;
    size_t touched_cap;
    uint32_t cached_traceback; /* last site counted, UINT32_MAX: none */
    uint32_t cached_index;
    /* The open collection: id 0 when none. */
    uint32_t collection;
    int gc_generation;
    uint16_t mh_generation;
    double began;
    uintptr_t ignore[MH_GCCHURN_IGNORE_MAX];
    size_t nignore;
    mh_churn_totals_t totals;
};

mh_churn_t *
mh_churn_new(void)
{
    mh_churn_t *churn = mh_rawmem_calloc(1, sizeof(*churn));
    if (churn == NULL) {
        return NULL;
    }
    mh_table_init(&churn->index);
    churn->cached_traceback = UINT32_MAX;
    return churn;
}

void
mh_churn_free(mh_churn_t *churn)
{
    if (churn == NULL) {
        return;
    }
    mh_rawmem_free(churn->sites, churn->sites_cap * sizeof(mh_churn_site_t));
    mh_rawmem_free(churn->touched, churn->touched_cap * sizeof(uint32_t));
    mh_table_fini(&churn->index);
    mh_rawmem_free(churn, sizeof(*churn));
}

void
mh_churn_reset(mh_churn_t *churn)
{
    churn->nsites = 0;
    churn->ntouched = 0;
    churn->cached_traceback = UINT32_MAX;
    churn->collection = 0;
    mh_table_fini(&churn->index);
    memset(&churn->totals, 0, sizeof(churn->totals));
}

static int
clamp_generation(int gc_generation)
{
    if (gc_generation < 0) {
        return 0;
    }
    if (gc_generation >= MH_GCCHURN_GC_GENERATIONS) {
        return MH_GCCHURN_GC_GENERATIONS - 1;
    }
    return gc_generation;
}

/* Drop the open collection's pending counts (into discarded_objects). */
static void
discard_pending(mh_churn_t *churn)
{
    for (size_t i = 0; i < churn->ntouched; i++) {
        mh_churn_site_t *site = &churn->sites[churn->touched[i]];
        churn->totals.discarded_objects += site->pending_objects;
        site->pending_objects = 0;
        site->pending_blocks = 0;
        site->pending_bytes = 0;
    }
    churn->ntouched = 0;
}

static void
commit_pending(mh_churn_t *churn)
{
    int g = churn->gc_generation;
    for (size_t i = 0; i < churn->ntouched; i++) {
        mh_churn_site_t *site = &churn->sites[churn->touched[i]];
        site->objects += site->pending_objects;
        site->objects_by_gc[g] += site->pending_objects;
        site->blocks += site->pending_blocks;
        site->bytes += site->pending_bytes;
        site->collections++;
        if (site->generations == 0 ||
            site->last_generation != churn->mh_generation) {
            site->generations++;
            site->last_generation = churn->mh_generation;
        }
        churn->totals.objects[g] += site->pending_objects;
        site->pending_objects = 0;
        site->pending_blocks = 0;
        site->pending_bytes = 0;
    }
    churn->ntouched = 0;
}

void
mh_churn_begin(mh_churn_t *churn, int gc_generation, uint16_t mh_generation,
               double now, const uintptr_t *ignore, size_t nignore)
{
    if (churn->collection != 0) {
        discard_pending(churn);
    }
    last_collection_id++;
    if (last_collection_id == 0) { /* 0 means "none": skip it */
        last_collection_id = 1;
    }
    churn->collection = last_collection_id;
    churn->gc_generation = clamp_generation(gc_generation);
    churn->mh_generation = mh_generation;
    churn->began = now;
    churn->nignore = 0;
    for (size_t i = 0; i < nignore && i < MH_GCCHURN_IGNORE_MAX; i++) {
        churn->ignore[churn->nignore++] = ignore[i];
    }
    mh_gcchurn_tls_collection = churn->collection;
}

void
mh_churn_end(mh_churn_t *churn, int64_t collected, int64_t uncollectable,
             double now)
{
    mh_gcchurn_tls_collection = 0;
    if (churn->collection == 0) {
        return;
    }
    int g = churn->gc_generation;
    churn->totals.collections[g]++;
    churn->totals.collected[g] += collected > 0 ? (uint64_t)collected : 0;
    churn->totals.uncollectable[g] +=
        uncollectable > 0 ? (uint64_t)uncollectable : 0;
    churn->totals.seconds[g] += now > churn->began ? now - churn->began : 0.0;
    if (collected > 0) {
        commit_pending(churn);
    }
    else {
        discard_pending(churn);
    }
    churn->collection = 0;
}

/* The index of traceback's site, created when new; -1 when out of memory. */
static int64_t
site_index(mh_churn_t *churn, uint32_t traceback)
{
    if (traceback == churn->cached_traceback) {
        return churn->cached_index;
    }
    uint32_t index;
    if (!mh_table_get(&churn->index, (uint64_t)traceback + 1, &index)) {
        if (churn->nsites >= UINT32_MAX ||
            mh_rawmem_reserve((void **)&churn->sites, &churn->sites_cap,
                              churn->nsites + 1,
                              sizeof(mh_churn_site_t)) < 0) {
            return -1;
        }
        index = (uint32_t)churn->nsites;
        if (mh_table_put(&churn->index, (uint64_t)traceback + 1, index) < 0) {
            return -1;
        }
        memset(&churn->sites[index], 0, sizeof(mh_churn_site_t));
        churn->sites[index].traceback = traceback;
        churn->nsites++;
    }
    churn->cached_traceback = traceback;
    churn->cached_index = index;
    return index;
}

void
mh_churn_count(mh_churn_t *churn, const mh_trace_t *trace, uint64_t charge)
{
    if (churn->collection == 0 ||
        mh_gcchurn_tls_collection != churn->collection ||
        (trace->domain != MH_DOMAIN_OBJ && trace->domain != MH_DOMAIN_MEM)) {
        return;
    }
    for (size_t i = 0; i < churn->nignore; i++) {
        if (churn->ignore[i] == trace->ptr) {
            churn->ignore[i] = churn->ignore[--churn->nignore];
            return;
        }
    }
    int64_t index = site_index(churn, trace->traceback);
    if (index < 0) {
        churn->totals.dropped++;
        return;
    }
    mh_churn_site_t *site = &churn->sites[index];
    if (site->last_collection != churn->collection) {
        if (mh_rawmem_reserve((void **)&churn->touched, &churn->touched_cap,
                              churn->ntouched + 1, sizeof(uint32_t)) < 0) {
            churn->totals.dropped++;
            return;
        }
        churn->touched[churn->ntouched++] = (uint32_t)index;
        site->last_collection = churn->collection;
    }
    /* When sampling, a block stands for charge / size blocks. */
    double weight =
        trace->size > 0 ? (double)charge / (double)trace->size : 1.0;
    if (trace->domain == MH_DOMAIN_OBJ) {
        site->pending_objects += weight;
    }
    site->pending_blocks += weight;
    site->pending_bytes += charge;
}

size_t
mh_churn_sites(const mh_churn_t *churn, const mh_churn_site_t **sites)
{
    *sites = churn->sites;
    return churn->nsites;
}

void
mh_churn_totals(const mh_churn_t *churn, mh_churn_totals_t *out)
{
    *out = churn->totals;
}

size_t
mh_churn_memory(const mh_churn_t *churn)
{
    return sizeof(*churn) + churn->sites_cap * sizeof(mh_churn_site_t) +
           churn->touched_cap * sizeof(uint32_t) +
           mh_table_memory(&churn->index);
}

void
mh_gcchurn_count(const mh_trace_t *trace, uint64_t charge)
{
    mh_churn_t *churn = mh_gcchurn_active;
    if (churn != NULL) {
        mh_churn_count(churn, trace, charge);
    }
}
