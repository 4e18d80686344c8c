/* gens.c: the history of generations (see gens.h for the contract).
 *
 * Series are stored per site as a run of points over the columns
 * [first, ncolumns): every commit appends one point to every series, so
 * that invariant holds without per-point column numbers.  When the column
 * limit is reached, every other column is dropped in place (the interval
 * between scans has doubled in effect), which keeps memory bounded for runs
 * of any length.  Python-free; the caller serializes access.
 */
#include "gens.h"

#include <string.h>

#include "rawmem.h"
#include "table.h"

typedef struct {
    uint32_t site;
    uint32_t first; /* column of points[0] */
    size_t n;       /* points held: columns [first, first + n) */
    size_t cap;
    mh_series_point_t *points;
} series_t;

struct mh_gens {
    mh_gen_record_t *records;
    size_t nrecords;
    size_t records_cap;
    uint16_t column_generation[MH_GENS_MAX_COLUMNS];
    size_t ncolumns;
    mh_table_t site_index; /* site + 1 -> index into series */
    series_t *series;
    size_t nseries;
    size_t series_cap;
    /* Scratch of the scan under way: site + 1 -> index into scan_points. */
    mh_table_t scan_index;
    uint32_t *scan_sites;
    size_t scan_sites_cap;
    mh_series_point_t *scan_points;
    size_t scan_points_cap;
    size_t nscan;
    int scan_state; /* 0: none, 1: under way, -1: abandoned */
};

mh_gens_t *
mh_gens_new(const mh_gen_record_t *start)
{
    mh_gens_t *gens = mh_rawmem_calloc(1, sizeof(*gens));
    if (gens == NULL) {
        return NULL;
    }
    mh_table_init(&gens->site_index);
    mh_table_init(&gens->scan_index);
    if (mh_rawmem_reserve((void **)&gens->records, &gens->records_cap, 64,
                          sizeof(mh_gen_record_t)) < 0) {
        mh_rawmem_free(gens, sizeof(*gens));
        return NULL;
    }
    gens->records[0] = *start;
    gens->nrecords = 1;
    return gens;
}

void
mh_gens_free(mh_gens_t *gens)
{
    if (gens == NULL) {
        return;
    }
    for (size_t i = 0; i < gens->nseries; i++) {
        mh_rawmem_free(gens->series[i].points,
                       gens->series[i].cap * sizeof(mh_series_point_t));
    }
    mh_rawmem_free(gens->series, gens->series_cap * sizeof(series_t));
    mh_rawmem_free(gens->records, gens->records_cap * sizeof(mh_gen_record_t));
    mh_rawmem_free(gens->scan_sites, gens->scan_sites_cap * sizeof(uint32_t));
    mh_rawmem_free(gens->scan_points,
                   gens->scan_points_cap * sizeof(mh_series_point_t));
    mh_table_fini(&gens->site_index);
    mh_table_fini(&gens->scan_index);
    mh_rawmem_free(gens, sizeof(*gens));
}

int
mh_gens_record(mh_gens_t *gens, uint16_t generation,
               const mh_gen_record_t *record)
{
    if ((size_t)generation != gens->nrecords ||
        gens->nrecords > MH_GENS_MAX_GENERATIONS) {
        return -1;
    }
    if (mh_rawmem_reserve((void **)&gens->records, &gens->records_cap,
                          gens->nrecords + 1, sizeof(mh_gen_record_t)) < 0) {
        return -1;
    }
    gens->records[gens->nrecords++] = *record;
    return 0;
}

size_t
mh_gens_count(const mh_gens_t *gens)
{
    return gens->nrecords;
}

const mh_gen_record_t *
mh_gens_get(const mh_gens_t *gens, size_t g)
{
    return &gens->records[g];
}

int
mh_gens_scan_begin(mh_gens_t *gens)
{
    /* Keep the scratch map's storage from scan to scan: clear its slots. */
    if (gens->scan_index.capacity) {
        memset(gens->scan_index.slots, 0,
               gens->scan_index.capacity * sizeof(mh_table_slot_t));
        gens->scan_index.count = 0;
    }
    gens->nscan = 0;
    gens->scan_state = 1;
    return 0;
}

int
mh_gens_scan_add(mh_gens_t *gens, uint32_t site, uint64_t bytes)
{
    if (gens->scan_state != 1) {
        return -1;
    }
    uint32_t index;
    if (mh_table_get(&gens->scan_index, (uint64_t)site + 1, &index)) {
        gens->scan_points[index].bytes += bytes;
        gens->scan_points[index].blocks++;
        return 0;
    }
    size_t n = gens->nscan;
    if (n >= UINT32_MAX ||
        mh_rawmem_reserve((void **)&gens->scan_sites, &gens->scan_sites_cap,
                          n + 1, sizeof(uint32_t)) < 0 ||
        mh_rawmem_reserve((void **)&gens->scan_points, &gens->scan_points_cap,
                          n + 1, sizeof(mh_series_point_t)) < 0 ||
        mh_table_put(&gens->scan_index, (uint64_t)site + 1, (uint32_t)n) < 0) {
        gens->scan_state = -1;
        return -1;
    }
    gens->scan_sites[n] = site;
    gens->scan_points[n].bytes = bytes;
    gens->scan_points[n].blocks = 1;
    gens->nscan = n + 1;
    return 0;
}

/* Drop every other column (keep the even ones).  Can't fail. */
static void
halve_columns(mh_gens_t *gens)
{
    size_t old_n = gens->ncolumns;
    size_t new_n = (old_n + 1) / 2;
    for (size_t j = 0; j < new_n; j++) {
        gens->column_generation[j] = gens->column_generation[2 * j];
    }
    gens->ncolumns = new_n;
    for (size_t i = 0; i < gens->nseries; i++) {
        series_t *s = &gens->series[i];
        size_t first = (s->first + 1) / 2; /* first even column >= s->first */
        size_t kept = 0;
        for (size_t j = first; j < new_n; j++) {
            s->points[kept++] = s->points[2 * j - s->first];
        }
        s->first = (uint32_t)first;
        s->n = kept;
        if (first > new_n) {
            s->first = (uint32_t)new_n;
        }
    }
}

/* Append a point to s (the column being committed).  -1 when out of
 * memory. */
static int
series_append(series_t *s, uint64_t bytes, uint64_t blocks)
{
    if (mh_rawmem_reserve((void **)&s->points, &s->cap, s->n + 1,
                          sizeof(mh_series_point_t)) < 0) {
        return -1;
    }
    s->points[s->n].bytes = bytes;
    s->points[s->n].blocks = blocks;
    s->n++;
    return 0;
}

int
mh_gens_scan_commit(mh_gens_t *gens)
{
    int state = gens->scan_state;
    gens->scan_state = 0;
    if (state != 1) {
        return -1;
    }
    /* Reserve everything first, so that a failure leaves the history as it
     * was: room for one more point in every series, and for new series. */
    for (size_t i = 0; i < gens->nseries; i++) {
        series_t *s = &gens->series[i];
        if (mh_rawmem_reserve((void **)&s->points, &s->cap, s->n + 1,
                              sizeof(mh_series_point_t)) < 0) {
            return -1;
        }
    }
    size_t new_series = 0;
    for (size_t k = 0; k < gens->nscan; k++) {
        uint32_t index;
        if (gens->scan_points[k].bytes >= MH_GENS_SERIES_MIN_BYTES &&
            !mh_table_get(&gens->site_index, (uint64_t)gens->scan_sites[k] + 1,
                          &index)) {
            new_series++;
        }
    }
    if (gens->nseries + new_series >= UINT32_MAX ||
        mh_rawmem_reserve((void **)&gens->series, &gens->series_cap,
                          gens->nseries + new_series, sizeof(series_t)) < 0) {
        return -1;
    }
    if (gens->ncolumns == MH_GENS_MAX_COLUMNS) {
        halve_columns(gens);
    }
    size_t column = gens->ncolumns;
    gens->column_generation[column] = (uint16_t)(gens->nrecords - 1);
    gens->ncolumns = column + 1;
    for (size_t i = 0; i < gens->nseries; i++) {
        (void)series_append(&gens->series[i], 0, 0); /* room reserved */
    }
    for (size_t k = 0; k < gens->nscan; k++) {
        const mh_series_point_t *p = &gens->scan_points[k];
        uint64_t key = (uint64_t)gens->scan_sites[k] + 1;
        uint32_t index;
        if (mh_table_get(&gens->site_index, key, &index)) {
            series_t *s = &gens->series[index];
            s->points[s->n - 1] = *p;
            continue;
        }
        if (p->bytes < MH_GENS_SERIES_MIN_BYTES) {
            continue;
        }
        series_t *s = &gens->series[gens->nseries];
        memset(s, 0, sizeof(*s));
        s->site = gens->scan_sites[k];
        s->first = (uint32_t)column;
        if (series_append(s, p->bytes, p->blocks) < 0 ||
            mh_table_put(&gens->site_index, key, (uint32_t)gens->nseries) <
                0) {
            /* Out of memory for this one series: the site simply has no
             * series (the analysis treats it as unknown). */
            mh_rawmem_free(s->points, s->cap * sizeof(mh_series_point_t));
            continue;
        }
        gens->nseries++;
    }
    return 0;
}

size_t
mh_gens_columns(const mh_gens_t *gens)
{
    return gens->ncolumns;
}

uint16_t
mh_gens_column_generation(const mh_gens_t *gens, size_t column)
{
    return gens->column_generation[column];
}

static const series_t *
find_series(const mh_gens_t *gens, uint32_t site)
{
    uint32_t index;
    if (!mh_table_get(&gens->site_index, (uint64_t)site + 1, &index)) {
        return NULL;
    }
    return &gens->series[index];
}

size_t
mh_gens_series(const mh_gens_t *gens, uint32_t site, size_t *first,
               const mh_series_point_t **points)
{
    const series_t *s = find_series(gens, site);
    if (s == NULL || s->n == 0) {
        *first = gens->ncolumns;
        *points = NULL;
        return 0;
    }
    *first = s->first;
    *points = s->points;
    return s->n;
}

uint64_t
mh_gens_series_bytes_at(const mh_gens_t *gens, uint32_t site, size_t column)
{
    const series_t *s = find_series(gens, site);
    if (s == NULL || column < s->first || column >= s->first + s->n) {
        return 0;
    }
    return s->points[column - s->first].bytes;
}

size_t
mh_gens_memory(const mh_gens_t *gens)
{
    size_t total = sizeof(*gens) +
                   gens->records_cap * sizeof(mh_gen_record_t) +
                   gens->series_cap * sizeof(series_t) +
                   mh_table_memory(&gens->site_index) +
                   mh_table_memory(&gens->scan_index) +
                   gens->scan_sites_cap * sizeof(uint32_t) +
                   gens->scan_points_cap * sizeof(mh_series_point_t);
    for (size_t i = 0; i < gens->nseries; i++) {
        total += gens->series[i].cap * sizeof(mh_series_point_t);
    }
    return total;
}
