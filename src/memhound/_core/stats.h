/* stats.h: statistics over a snapshot: grouping, filtering and diffing.
 *
 * Implements tracemalloc's Snapshot.statistics, filter_traces and
 * compare_to semantics exactly (grouping keys, cumulative mode, filter
 * rules, sort order), on mh_snapdata_t, so that the Python layer only turns
 * results into objects.  Sampled snapshots (sample_mean != 0) weigh every
 * block with mh_snapdata_block_weight() and round the estimates.
 *
 * Python-free.  Results are owned by the caller and freed with the
 * matching _free function.  Every function returns 0 on success or -1 when
 * out of memory (nothing to free then); none raises.
 */
#ifndef MH_STATS_H
#define MH_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "snapdata.h"

typedef enum {
    MH_KEY_FILENAME = 0,  /* innermost frame's file */
    MH_KEY_LINENO = 1,    /* innermost frame's file and line */
    MH_KEY_TRACEBACK = 2, /* the whole traceback (file and line per frame) */
} mh_key_type_t;

/* Key value standing for "<unknown>", line 0: the frame that tracemalloc
 * reports for a block with an empty traceback. */
#define MH_STATS_UNKNOWN_FRAME UINT32_MAX

/* One group.  key is a frame index (FILENAME, LINENO; for FILENAME only the
 * frame's file is meaningful, report line 0) or a traceback index
 * (TRACEBACK) into the snapshot the group came from; MH_STATS_UNKNOWN_FRAME
 * for blocks with an empty traceback under FILENAME/LINENO.  Keys are
 * compared by content (file name bytes, line numbers), so two frame
 * indices that resolve to the same file and line are one group (the key
 * is the first index seen), and the unknown frame is one group with a
 * real frame ("<unknown>", 0).  Under TRACEBACK a traceback with no frames
 * stands for the one frame ("<unknown>", 0), as in tracemalloc. */
typedef struct {
    uint32_t key;
    uint64_t size;  /* bytes (estimated in sampled snapshots) */
    uint64_t count; /* blocks (estimated in sampled snapshots) */
} mh_stat_t;

typedef struct {
    mh_stat_t *items;
    size_t n;
} mh_stats_t;

/* Group every block of snap by key_type.  cumulative (FILENAME and LINENO
 * only; ignored for TRACEBACK, which tracemalloc refuses with a ValueError
 * that the caller raises) counts a block under the key of every frame of
 * its traceback, once per frame as tracemalloc (3.6-3.13) does: a block
 * whose traceback holds two frames of one file (or one line twice, in a
 * recursion) counts twice for that key.  cumulative ==
 * MH_STATS_CUMULATIVE_DISTINCT counts it once per distinct key instead
 * (not what tracemalloc does).  Items are sorted as tracemalloc sorts
 * statistics: by size, then count, then key, all descending, where keys
 * compare as tracemalloc's Traceback objects: frame by frame from the
 * OLDEST one (Traceback._frames is the reversed raw tuple), each frame by
 * file name (code point order) then line; a FILENAME key is a frame with
 * line 0.  snap must be valid (mh_snapdata_validate).  items is NULL when
 * n is 0; on failure *out is {NULL, 0}. */
#define MH_STATS_CUMULATIVE_DISTINCT 2
int mh_stats_group(const mh_snapdata_t *snap, mh_key_type_t key_type,
                   int cumulative, mh_stats_t *out);
void mh_stats_free(mh_stats_t *stats);

/* One line of a comparison.  side says which snapshot key indexes:
 * 0 the new snapshot, 1 the old one (a key found only in the old). */
typedef struct {
    uint32_t key;
    uint8_t side;
    uint64_t size; /* in the new snapshot */
    int64_t size_diff;
    uint64_t count; /* in the new snapshot */
    int64_t count_diff;
} mh_stat_diff_t;

typedef struct {
    mh_stat_diff_t *items;
    size_t n;
} mh_stats_diff_t;

/* Compare new_snap against old_snap as tracemalloc's compare_to does:
 * keys are matched by content across the two snapshots; every key of
 * new_snap (side 0) then every key found only in old_snap (side 1, size
 * and count 0, negative diffs), sorted by abs(size_diff), size,
 * abs(count_diff), count, key; all descending (keys compare as in
 * mh_stats_group).  Sampled estimates are rounded per group before the
 * differences are taken.  On failure *out is {NULL, 0}. */
int mh_stats_compare(const mh_snapdata_t *new_snap,
                     const mh_snapdata_t *old_snap, mh_key_type_t key_type,
                     int cumulative, mh_stats_diff_t *out);
void mh_stats_diff_free(mh_stats_diff_t *diff);

/* A trace filter: tracemalloc's Filter (pattern != NULL) or DomainFilter
 * (pattern == NULL).  domain_mask is a bit set of mh_domain_t values;
 * 0 means "any domain" for a Filter.  For a DomainFilter the mask is the
 * set the filter names.  Frame file names are normalized here as
 * tracemalloc does (a ".pyc" suffix matches as ".py"); an empty traceback
 * matches as the frame ("<unknown>", 0). */
typedef struct {
    int inclusive;
    const char *pattern; /* mh_fnmatch_match pattern (fnmatch.h), UTF-8,
                            NUL-terminated; already normalized (".pyc" ->
                            ".py") by the caller */
    int lineno;          /* 0: any line, unless has_lineno */
    int all_frames;
    uint32_t domain_mask;
    int has_lineno; /* 1: frames must be at lineno exactly, even 0
                       (tracemalloc's Filter(lineno=0) matches line 0
                       only); 0: lineno 0 means any line */
} mh_filter_t;

/* A new snapshot holding the blocks of snap that pass the filters, with
 * tracemalloc's rules (pass any inclusive filter when there are some, and
 * no exclusive one), in their original order.  The tables (tracebacks,
 * frames, strings) and header fields are copied whole.  No filters: a
 * copy.  snap must be valid; filters and their patterns are borrowed for
 * the call.  *out is NULL on failure. */
int mh_stats_filter(const mh_snapdata_t *snap, const mh_filter_t *filters,
                    size_t nfilters, mh_snapdata_t **out);

/* The same, keeping only blocks whose size lies in [min_size, max_size]
 * besides (memhound's size filter; tracemalloc has none). */
int mh_stats_filter_sized(const mh_snapdata_t *snap,
                          const mh_filter_t *filters, size_t nfilters,
                          uint64_t min_size, uint64_t max_size,
                          mh_snapdata_t **out);

#endif /* MH_STATS_H */
