/* gens.h: the history of generations that the leak analysis reads.
 *
 * A generation is a span of the run; the tracer stamps each block with the
 * generation it was allocated in (hooks.c).  This file keeps what the live
 * table alone cannot tell afterwards: when each generation began (time,
 * iteration count, traced bytes, RSS) and, at the boundaries where the
 * caller scanned the live table, each site's live size ("series"), so that
 * the analysis can tell growth from turnover.  A site is a traceback index
 * and a native bit (mh_gens_site_key).
 *
 * Memory is bounded: at most MH_GENS_MAX_COLUMNS series columns are kept
 * (every other one is dropped when full), and a site gets a series only
 * once its live size reaches MH_GENS_SERIES_MIN_BYTES.
 *
 * Python-free, not thread-safe: the binding serializes every call with the
 * GIL.  Memory comes from rawmem.h; nothing here raises.
 */
#ifndef MH_GENS_H
#define MH_GENS_H

#include <stddef.h>
#include <stdint.h>

#define MH_GENS_MAX_COLUMNS 256
#define MH_GENS_SERIES_MIN_BYTES 256
/* Generation numbers are 16-bit in the live table. */
#define MH_GENS_MAX_GENERATIONS 65535

/* A site: traceback index (< 2^30) and whether its blocks are native. */
static inline uint32_t
mh_gens_site_key(uint32_t traceback, int native)
{
    return traceback << 1 | (native ? 1u : 0u);
}

static inline uint32_t
mh_gens_site_traceback(uint32_t site)
{
    return site >> 1;
}

static inline int
mh_gens_site_native(uint32_t site)
{
    return (int)(site & 1u);
}

/* When a generation began.  Record g describes generation g; record 0 is
 * the start of the history. */
typedef struct {
    double t;                 /* seconds since the history began */
    int64_t iteration;        /* iterations counted at that point, -1: none */
    uint64_t traced_bytes;    /* traced bytes at that point */
    uint64_t rss_bytes;       /* resident set size, 0 when unknown */
    uint64_t allocated_bytes; /* traced bytes ever allocated at that point
                                 (0 everywhere: unknown) */
} mh_gen_record_t;

/* One point of a site's series. */
typedef struct {
    uint64_t bytes;
    uint64_t blocks;
} mh_series_point_t;

typedef struct mh_gens mh_gens_t;

/* A new, empty history whose record 0 is `start`.  NULL when out of
 * memory. */
mh_gens_t *mh_gens_new(const mh_gen_record_t *start);

/* Free it; NULL is allowed.  Can't fail. */
void mh_gens_free(mh_gens_t *gens);

/* Record that generation `generation` began (it must be the last recorded
 * generation + 1).  Returns 0, or -1 when out of memory or when the
 * generation numbers are exhausted (the history is unchanged). */
int mh_gens_record(mh_gens_t *gens, uint16_t generation,
                   const mh_gen_record_t *record);

/* Generations recorded so far, record 0 included (so the last generation
 * begun is mh_gens_count() - 1).  Can't fail. */
size_t mh_gens_count(const mh_gens_t *gens);

/* Record g; g < mh_gens_count().  Can't fail. */
const mh_gen_record_t *mh_gens_get(const mh_gens_t *gens, size_t g);

/* A series column: accumulate live blocks with scan_add between
 * scan_begin and scan_commit.  The column belongs to the last recorded
 * generation (its live state as it began).  scan_begin and scan_add return
 * 0, or -1 when out of memory: the scan is then abandoned (commit does
 * nothing and returns -1) and the history is left as it was. */
int mh_gens_scan_begin(mh_gens_t *gens);
int mh_gens_scan_add(mh_gens_t *gens, uint32_t site, uint64_t bytes);
int mh_gens_scan_commit(mh_gens_t *gens);

/* Series columns kept, and the generation each one belongs to
 * (increasing).  Can't fail. */
size_t mh_gens_columns(const mh_gens_t *gens);
uint16_t mh_gens_column_generation(const mh_gens_t *gens, size_t column);

/* A site's series: *first is the first column it has a point for and
 * *points the points for columns [*first, mh_gens_columns()); the return
 * value is their number (0 when the site has no series: it never reached
 * MH_GENS_SERIES_MIN_BYTES at a scan).  Borrowed until the next call that
 * changes the history.  Can't fail. */
size_t mh_gens_series(const mh_gens_t *gens, uint32_t site, size_t *first,
                      const mh_series_point_t **points);

/* Live bytes of `site` at column `column` (0 before its series begins).
 * Can't fail. */
uint64_t mh_gens_series_bytes_at(const mh_gens_t *gens, uint32_t site,
                                 size_t column);

/* Bytes the history holds.  Can't fail. */
size_t mh_gens_memory(const mh_gens_t *gens);

#endif /* MH_GENS_H */
