/* stats.c: tracemalloc's Snapshot.statistics, compare_to and filter_traces
 * over mh_snapdata_t (contracts in stats.h; patterns match in fnmatch.c).
 *
 * Owns only per-call scratch tables, all from rawmem.h and all freed before
 * returning.  Groups are keyed by content (file name bytes, line numbers),
 * never by index: a snapshot may hold equal frames under several indices,
 * and two snapshots number their tables independently.  The only work per
 * block is one pass into per-traceback sums; everything after it is
 * proportional to the tracebacks, frames and strings.
 * Python-free, no global state; callers serialize access to a snapshot.
 */
#include "stats.h"

#include <assert.h>
#include <string.h>

#include "fnmatch.h"
#include "rawmem.h"

/* ---- Frames and tracebacks as tracemalloc sees them ------------------- */

/* A frame's content: tracemalloc's (filename, lineno) tuple. */
typedef struct {
    const char *name;
    size_t len;
    int32_t lineno;
} fkey_t;

static const char unknown_name[] = "<unknown>";

static fkey_t
frame_key(const mh_snapdata_t *snap, uint32_t frame)
{
    fkey_t k = {unknown_name, sizeof(unknown_name) - 1, 0};
    if (frame != MH_STATS_UNKNOWN_FRAME) {
        const mh_snap_frame_t *f = &snap->frames[frame];
        uint64_t start = snap->string_offsets[f->filename];
        uint64_t end = snap->string_offsets[f->filename + 1];
        k.len = (size_t)(end - start);
        /* No pointer arithmetic on a NULL string_data (no bytes at all). */
        k.name = k.len ? snap->string_data + start : "";
        k.lineno = f->lineno;
    }
    return k;
}

/* tracemalloc never shows an empty traceback: it reports the one frame
 * ("<unknown>", 0) instead.  These two give that view of traceback t. */
static uint32_t
tb_len(const mh_snapdata_t *snap, uint32_t t)
{
    uint16_t n = snap->tracebacks[t].nframe;
    return n ? n : 1;
}

/* Frame i of traceback t, innermost first. */
static uint32_t
tb_frame(const mh_snapdata_t *snap, uint32_t t, uint32_t i)
{
    const mh_snap_traceback_t *tb = &snap->tracebacks[t];
    return tb->nframe ? snap->frame_ids[tb->first + i]
                      : MH_STATS_UNKNOWN_FRAME;
}

/* Python's comparison of (filename, lineno) tuples.  Byte order of UTF-8
 * is code point order, which is how Python compares str. */
static int
frame_cmp(const mh_snapdata_t *sa, uint32_t fa, const mh_snapdata_t *sb,
          uint32_t fb, int with_line)
{
    if (sa == sb && fa == fb) {
        return 0;
    }
    fkey_t a = frame_key(sa, fa);
    fkey_t b = frame_key(sb, fb);
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.name, b.name, n) : 0;
    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    if (a.len != b.len) {
        return a.len < b.len ? -1 : 1;
    }
    if (!with_line) {
        return 0;
    }
    return (a.lineno > b.lineno) - (a.lineno < b.lineno);
}

/* Compare two keys as tracemalloc compares the Traceback objects standing
 * for them.  A FILENAME or LINENO key is a one-frame traceback (FILENAME
 * with line 0, so only the file counts).  A whole traceback compares as
 * Traceback._frames, which holds the frames OLDEST first (the reverse of
 * the raw tuple, CPython 3.7+), so walk ours from the outermost frame. */
static int
key_cmp(mh_key_type_t type, const mh_snapdata_t *sa, uint32_t ka,
        const mh_snapdata_t *sb, uint32_t kb)
{
    if (type != MH_KEY_TRACEBACK) {
        return frame_cmp(sa, ka, sb, kb, type == MH_KEY_LINENO);
    }
    if (sa == sb && ka == kb) {
        return 0;
    }
    uint32_t na = tb_len(sa, ka);
    uint32_t nb = tb_len(sb, kb);
    for (uint32_t i = 0; i < na && i < nb; i++) {
        int c = frame_cmp(sa, tb_frame(sa, ka, na - 1 - i), sb,
                          tb_frame(sb, kb, nb - 1 - i), 1);
        if (c != 0) {
            return c;
        }
    }
    return (na > nb) - (na < nb);
}

/* ---- Hashing by content ------------------------------------------------ */

static uint64_t
fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t
hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- Grouping -----------------------------------------------------------
 *
 * Per-traceback sums first (the pass over the blocks), then every used
 * traceback is mapped to its group(s) through an open-addressing table of
 * group indices keyed by content hash.  Memo arrays (per frame for LINENO,
 * per file name string for FILENAME) make the table lookup once per
 * distinct frame or file rather than once per traceback frame.
 */

/* Sums for one traceback or group: exact integers for complete snapshots,
 * weighted estimates for sampled ones. */
typedef union {
    struct {
        uint64_t size, count;
    } n;
    struct {
        double size, count;
    } w;
} acc_t;

typedef struct {
    uint64_t hash;
    acc_t sum;
    uint32_t key;     /* frame or traceback index, or UNKNOWN_FRAME */
    uint32_t last_tb; /* traceback + 1 last counted (distinct cumulative) */
    int matched;      /* compare: found in the other snapshot */
} group_t;

typedef struct {
    const mh_snapdata_t *snap;
    mh_key_type_t type;
    int sampled;
    group_t *groups;
    size_t ngroups, groups_cap;
    uint32_t *slots;    /* group index + 1; 0 is an empty slot */
    size_t nslots;      /* 0 or a power of two, at least twice ngroups */
    uint64_t *str_hash; /* per string: hash | 1, or 0 if not computed */
    uint32_t *memo;     /* per frame (LINENO) or string (FILENAME):
                           group index + 1, or 0 if not seen yet */
    size_t memo_len;
    uint32_t unknown_group; /* same, for the unknown frame */
} grouping_t;

static void
grouping_clear(grouping_t *g)
{
    mh_rawmem_free(g->groups, g->groups_cap * sizeof(group_t));
    mh_rawmem_free(g->slots, g->nslots * sizeof(uint32_t));
    if (g->str_hash != NULL) {
        mh_rawmem_free(g->str_hash, g->snap->nstrings * sizeof(uint64_t));
    }
    mh_rawmem_free(g->memo, g->memo_len * sizeof(uint32_t));
    memset(g, 0, sizeof(*g));
}

static uint64_t
filename_hash(grouping_t *g, uint32_t frame)
{
    if (frame == MH_STATS_UNKNOWN_FRAME) {
        return hash_bytes(unknown_name, sizeof(unknown_name) - 1) | 1;
    }
    uint32_t s = g->snap->frames[frame].filename;
    if (g->str_hash[s] == 0) {
        fkey_t k = frame_key(g->snap, frame);
        g->str_hash[s] = hash_bytes(k.name, k.len) | 1;
    }
    return g->str_hash[s];
}

static uint64_t
frame_hash(grouping_t *g, uint32_t frame, int with_line)
{
    uint64_t h = filename_hash(g, frame);
    if (with_line) {
        int32_t line = frame == MH_STATS_UNKNOWN_FRAME
                           ? 0
                           : g->snap->frames[frame].lineno;
        h += (uint64_t)(uint32_t)line * 0x9e3779b97f4a7c15ULL;
    }
    return fmix64(h);
}

static uint64_t
traceback_hash(grouping_t *g, uint32_t t)
{
    uint32_t n = tb_len(g->snap, t);
    uint64_t h = n;
    for (uint32_t i = 0; i < n; i++) {
        h = fmix64(h + frame_hash(g, tb_frame(g->snap, t, i), 1));
    }
    return h;
}

static int
grow_slots(grouping_t *g)
{
    size_t nslots = g->nslots ? g->nslots * 2 : 64;
    uint32_t *slots = mh_rawmem_calloc(nslots, sizeof(uint32_t));
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < g->ngroups; i++) {
        size_t j = (size_t)g->groups[i].hash & (nslots - 1);
        while (slots[j] != 0) {
            j = (j + 1) & (nslots - 1);
        }
        slots[j] = (uint32_t)(i + 1);
    }
    mh_rawmem_free(g->slots, g->nslots * sizeof(uint32_t));
    g->slots = slots;
    g->nslots = nslots;
    return 0;
}

/* Index of the group whose key has the content of (snap, key), or -1 if
 * none.  snap may be another snapshot than g's. */
static int64_t
group_find(const grouping_t *g, const mh_snapdata_t *snap, uint32_t key,
           uint64_t hash)
{
    if (g->nslots == 0) {
        return -1;
    }
    size_t mask = g->nslots - 1;
    for (size_t j = (size_t)hash & mask; g->slots[j] != 0;
         j = (j + 1) & mask) {
        const group_t *gr = &g->groups[g->slots[j] - 1];
        if (gr->hash == hash &&
            key_cmp(g->type, g->snap, gr->key, snap, key) == 0) {
            return (int64_t)g->slots[j] - 1;
        }
    }
    return -1;
}

/* Index of the group of key (of g's snapshot), added if new; -1 when out
 * of memory. */
static int64_t
group_get(grouping_t *g, uint32_t key, uint64_t hash)
{
    if ((g->ngroups + 1) * 2 > g->nslots && grow_slots(g) < 0) {
        return -1;
    }
    size_t mask = g->nslots - 1;
    size_t j = (size_t)hash & mask;
    for (; g->slots[j] != 0; j = (j + 1) & mask) {
        const group_t *gr = &g->groups[g->slots[j] - 1];
        if (gr->hash == hash &&
            key_cmp(g->type, g->snap, gr->key, g->snap, key) == 0) {
            return (int64_t)g->slots[j] - 1;
        }
    }
    if (g->ngroups >= UINT32_MAX - 1 ||
        mh_rawmem_reserve((void **)&g->groups, &g->groups_cap, g->ngroups + 1,
                          sizeof(group_t)) < 0) {
        return -1;
    }
    group_t *gr = &g->groups[g->ngroups];
    memset(gr, 0, sizeof(*gr));
    gr->hash = hash;
    gr->key = key;
    g->slots[j] = (uint32_t)(g->ngroups + 1);
    return (int64_t)g->ngroups++;
}

/* The group of a frame under FILENAME or LINENO, memoized per frame or
 * per file name string. */
static int64_t
frame_group(grouping_t *g, uint32_t frame)
{
    uint32_t *memo;
    if (frame == MH_STATS_UNKNOWN_FRAME) {
        memo = &g->unknown_group;
    }
    else if (g->type == MH_KEY_FILENAME) {
        memo = &g->memo[g->snap->frames[frame].filename];
    }
    else {
        memo = &g->memo[frame];
    }
    if (*memo != 0) {
        return (int64_t)*memo - 1;
    }
    int64_t gi =
        group_get(g, frame, frame_hash(g, frame, g->type == MH_KEY_LINENO));
    if (gi >= 0) {
        *memo = (uint32_t)(gi + 1);
    }
    return gi;
}

static void
acc_add(acc_t *to, const acc_t *from, int sampled)
{
    if (sampled) {
        to->w.size += from->w.size;
        to->w.count += from->w.count;
    }
    else {
        to->n.size += from->n.size;
        to->n.count += from->n.count;
    }
}

/* Round an estimate to the nearest integer, saturating. */
static uint64_t
round_u64(double x)
{
    if (!(x > 0.0)) {
        return 0;
    }
    if (x >= 18446744073709549568.0) {
        return UINT64_MAX;
    }
    return (uint64_t)(x + 0.5);
}

static void
group_totals(const grouping_t *g, const group_t *gr, uint64_t *size,
             uint64_t *count)
{
    if (g->sampled) {
        *size = round_u64(gr->sum.w.size);
        *count = round_u64(gr->sum.w.count);
    }
    else {
        *size = gr->sum.n.size;
        *count = gr->sum.n.count;
    }
}

/* Fill g with the groups of snap.  Returns 0, or -1 when out of memory
 * (g is then cleared). */
static int
build_groups(grouping_t *g, const mh_snapdata_t *snap, mh_key_type_t type,
             int cumulative)
{
    acc_t *acc = NULL;
    size_t ntb = snap->ntracebacks;

    memset(g, 0, sizeof(*g));
    g->snap = snap;
    g->type = type;
    g->sampled = snap->sample_mean != 0;
    if (type == MH_KEY_TRACEBACK) {
        cumulative = 0; /* tracemalloc refuses it; the caller says so */
    }

    /* The only loop over blocks. */
    acc = mh_rawmem_calloc(ntb, sizeof(acc_t));
    if (acc == NULL) {
        goto error;
    }
    const mh_snap_block_t *blocks = snap->blocks;
    size_t nblocks = snap->nblocks;
    if (!g->sampled) {
        for (size_t b = 0; b < nblocks; b++) {
            acc_t *a = &acc[blocks[b].traceback];
            a->n.size += blocks[b].size;
            a->n.count++;
        }
    }
    else {
        for (size_t b = 0; b < nblocks; b++) {
            acc_t *a = &acc[blocks[b].traceback];
            double w =
                mh_snapdata_block_weight(snap->sample_mean, blocks[b].size);
            a->w.size += (double)blocks[b].size * w;
            a->w.count += w;
        }
    }

    g->str_hash = mh_rawmem_calloc(snap->nstrings, sizeof(uint64_t));
    if (g->str_hash == NULL) {
        goto error;
    }
    if (type != MH_KEY_TRACEBACK) {
        size_t n = type == MH_KEY_FILENAME ? snap->nstrings : snap->nframes;
        g->memo = mh_rawmem_calloc(n, sizeof(uint32_t));
        if (g->memo == NULL) {
            goto error;
        }
        g->memo_len = n;
    }

    for (size_t t = 0; t < ntb; t++) {
        const acc_t *a = &acc[t];
        if (g->sampled ? !(a->w.count > 0.0) : a->n.count == 0) {
            continue; /* no block uses this traceback */
        }
        if (type == MH_KEY_TRACEBACK) {
            int64_t gi =
                group_get(g, (uint32_t)t, traceback_hash(g, (uint32_t)t));
            if (gi < 0) {
                goto error;
            }
            acc_add(&g->groups[gi].sum, a, g->sampled);
            continue;
        }
        /* tracemalloc's cumulative mode loops over the frames and counts
         * the block for each one, repeated keys included. */
        uint32_t n = cumulative ? tb_len(snap, (uint32_t)t) : 1;
        for (uint32_t i = 0; i < n; i++) {
            int64_t gi = frame_group(g, tb_frame(snap, (uint32_t)t, i));
            if (gi < 0) {
                goto error;
            }
            group_t *gr = &g->groups[gi];
            if (cumulative == MH_STATS_CUMULATIVE_DISTINCT) {
                if (gr->last_tb == (uint32_t)t + 1) {
                    continue;
                }
                gr->last_tb = (uint32_t)t + 1;
            }
            acc_add(&gr->sum, a, g->sampled);
        }
    }

    mh_rawmem_free(acc, ntb * sizeof(acc_t));
    return 0;

error:
    mh_rawmem_free(acc, ntb * sizeof(acc_t));
    grouping_clear(g);
    return -1;
}

/* ---- Sorting ------------------------------------------------------------ */

/* One result line with what its comparison needs: the snapshot its key
 * indexes.  Keys are unique by content within a result, so the order is
 * total and qsort's instability cannot show. */
typedef struct {
    const mh_snapdata_t *snap;
    mh_key_type_t type;
    mh_stat_diff_t s;
} rec_t;

static int
cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

static uint64_t
magnitude(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

/* Statistic._sort_key: (size, count, traceback), sorted descending. */
static int
rec_cmp_stat(const void *pa, const void *pb)
{
    const rec_t *a = pa;
    const rec_t *b = pb;
    int c = cmp_u64(a->s.size, b->s.size);
    if (c == 0) {
        c = cmp_u64(a->s.count, b->s.count);
    }
    if (c == 0) {
        c = key_cmp(a->type, a->snap, a->s.key, b->snap, b->s.key);
    }
    return -c;
}

/* StatisticDiff._sort_key: (abs(size_diff), size, abs(count_diff), count,
 * traceback), sorted descending. */
static int
rec_cmp_diff(const void *pa, const void *pb)
{
    const rec_t *a = pa;
    const rec_t *b = pb;
    int c = cmp_u64(magnitude(a->s.size_diff), magnitude(b->s.size_diff));
    if (c == 0) {
        c = cmp_u64(a->s.size, b->s.size);
    }
    if (c == 0) {
        c = cmp_u64(magnitude(a->s.count_diff), magnitude(b->s.count_diff));
    }
    if (c == 0) {
        c = cmp_u64(a->s.count, b->s.count);
    }
    if (c == 0) {
        c = key_cmp(a->type, a->snap, a->s.key, b->snap, b->s.key);
    }
    return -c;
}

/* new - old as a signed difference, saturating. */
static int64_t
difference(uint64_t new_value, uint64_t old_value)
{
    if (new_value >= old_value) {
        uint64_t d = new_value - old_value;
        return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
    }
    uint64_t d = old_value - new_value;
    return d > (uint64_t)INT64_MAX ? -INT64_MAX : -(int64_t)d;
}

/* ---- Public: statistics and compare_to --------------------------------- */

int
mh_stats_group(const mh_snapdata_t *snap, mh_key_type_t key_type,
               int cumulative, mh_stats_t *out)
{
    grouping_t g;
    rec_t *recs = NULL;
    size_t n = 0;

    out->items = NULL;
    out->n = 0;
    if (build_groups(&g, snap, key_type, cumulative) < 0) {
        return -1;
    }
    n = g.ngroups;
    if (n == 0) {
        grouping_clear(&g);
        return 0;
    }
    recs = mh_rawmem_malloc(n * sizeof(rec_t));
    out->items = mh_rawmem_malloc(n * sizeof(mh_stat_t));
    if (recs == NULL || out->items == NULL) {
        goto error;
    }
    for (size_t i = 0; i < n; i++) {
        rec_t *r = &recs[i];
        memset(r, 0, sizeof(*r));
        r->snap = snap;
        r->type = key_type;
        r->s.key = g.groups[i].key;
        group_totals(&g, &g.groups[i], &r->s.size, &r->s.count);
    }
    qsort(recs, n, sizeof(rec_t), rec_cmp_stat);
    memset(out->items, 0, n * sizeof(mh_stat_t)); /* padding too */
    for (size_t i = 0; i < n; i++) {
        out->items[i].key = recs[i].s.key;
        out->items[i].size = recs[i].s.size;
        out->items[i].count = recs[i].s.count;
    }
    out->n = n;
    mh_rawmem_free(recs, n * sizeof(rec_t));
    grouping_clear(&g);
    return 0;

error:
    mh_rawmem_free(recs, n * sizeof(rec_t));
    mh_rawmem_free(out->items, n * sizeof(mh_stat_t));
    out->items = NULL;
    grouping_clear(&g);
    return -1;
}

void
mh_stats_free(mh_stats_t *stats)
{
    mh_rawmem_free(stats->items, stats->n * sizeof(mh_stat_t));
    stats->items = NULL;
    stats->n = 0;
}

int
mh_stats_compare(const mh_snapdata_t *new_snap, const mh_snapdata_t *old_snap,
                 mh_key_type_t key_type, int cumulative, mh_stats_diff_t *out)
{
    grouping_t gn, go;
    rec_t *recs = NULL;
    size_t cap = 0, n = 0;

    out->items = NULL;
    out->n = 0;
    if (build_groups(&gn, new_snap, key_type, cumulative) < 0) {
        return -1;
    }
    if (build_groups(&go, old_snap, key_type, cumulative) < 0) {
        grouping_clear(&gn);
        return -1;
    }
    cap = gn.ngroups + go.ngroups;
    if (cap == 0) {
        goto done;
    }
    recs = mh_rawmem_malloc(cap * sizeof(rec_t));
    if (recs == NULL) {
        goto error;
    }
    /* _compare_grouped_stats: every new key, then the old-only keys. */
    for (size_t i = 0; i < gn.ngroups; i++) {
        const group_t *gr = &gn.groups[i];
        rec_t *r = &recs[n++];
        memset(r, 0, sizeof(*r));
        r->snap = new_snap;
        r->type = key_type;
        r->s.key = gr->key;
        r->s.side = 0;
        group_totals(&gn, gr, &r->s.size, &r->s.count);
        uint64_t old_size = 0, old_count = 0;
        int64_t oi = group_find(&go, new_snap, gr->key, gr->hash);
        if (oi >= 0) {
            go.groups[oi].matched = 1;
            group_totals(&go, &go.groups[oi], &old_size, &old_count);
        }
        r->s.size_diff = difference(r->s.size, old_size);
        r->s.count_diff = difference(r->s.count, old_count);
    }
    for (size_t i = 0; i < go.ngroups; i++) {
        const group_t *gr = &go.groups[i];
        if (gr->matched) {
            continue;
        }
        rec_t *r = &recs[n++];
        memset(r, 0, sizeof(*r));
        r->snap = old_snap;
        r->type = key_type;
        r->s.key = gr->key;
        r->s.side = 1;
        uint64_t old_size, old_count;
        group_totals(&go, gr, &old_size, &old_count);
        r->s.size_diff = difference(0, old_size);
        r->s.count_diff = difference(0, old_count);
    }
    qsort(recs, n, sizeof(rec_t), rec_cmp_diff);
    out->items = mh_rawmem_malloc(n * sizeof(mh_stat_diff_t));
    if (out->items == NULL) {
        goto error;
    }
    for (size_t i = 0; i < n; i++) {
        out->items[i] = recs[i].s;
    }
    out->n = n;

done:
    mh_rawmem_free(recs, cap * sizeof(rec_t));
    grouping_clear(&gn);
    grouping_clear(&go);
    return 0;

error:
    mh_rawmem_free(recs, cap * sizeof(rec_t));
    grouping_clear(&gn);
    grouping_clear(&go);
    return -1;
}

void
mh_stats_diff_free(mh_stats_diff_t *diff)
{
    mh_rawmem_free(diff->items, diff->n * sizeof(mh_stat_diff_t));
    diff->items = NULL;
    diff->n = 0;
}

/* ---- filter_traces -----------------------------------------------------
 *
 * A block's fate depends only on its traceback and its domain, so it is
 * decided once per (traceback, domain) pair, lazily for the tracebacks the
 * blocks use, and file name matches are memoized per (filter, string).
 */

#define VERDICT_KNOWN 0x80 /* low bits: one pass bit per mh_domain_t */

typedef struct {
    const mh_snapdata_t *snap;
    const mh_filter_t *filters;
    size_t nfilters;
    int has_inclusive;
    uint8_t *name_memo; /* nfilters x nstrings: 0 unknown, 1 no, 2 yes */
    uint8_t *tb_match;  /* per filter: _match_traceback of the current tb */
    uint8_t *verdict;   /* per traceback: VERDICT_KNOWN | pass bits */
    uint64_t min_size, max_size; /* blocks outside [min, max] fail */
} filter_ctx_t;

/* Filter._match_frame_impl: the file name (".pyc" normalized to ".py" as
 * _normalize_filename does; os.path.normcase is a no-op on POSIX) matches
 * the pattern, and the line matches if the filter names one. */
static int
frame_matches(filter_ctx_t *c, size_t fi, uint32_t frame)
{
    const mh_filter_t *f = &c->filters[fi];
    fkey_t k = frame_key(c->snap, frame);
    int line_ok;
    if (f->has_lineno) {
        line_ok = k.lineno == f->lineno;
    }
    else {
        line_ok = f->lineno == 0 || k.lineno == f->lineno;
    }
    if (!line_ok) {
        return 0;
    }
    uint8_t *memo = NULL;
    if (frame != MH_STATS_UNKNOWN_FRAME) {
        size_t s = c->snap->frames[frame].filename;
        memo = &c->name_memo[fi * c->snap->nstrings + s];
        if (*memo != 0) {
            return *memo == 2;
        }
    }
    size_t len = k.len;
    if (len >= 4 && memcmp(k.name + len - 4, ".pyc", 4) == 0) {
        len--;
    }
    int match = mh_fnmatch_match(f->pattern, k.name, len);
    if (memo != NULL) {
        *memo = (uint8_t)(match ? 2 : 1);
    }
    return match;
}

/* Filter._match_traceback, on tracemalloc's view of traceback t. */
static int
traceback_matches(filter_ctx_t *c, size_t fi, uint32_t t)
{
    const mh_filter_t *f = &c->filters[fi];
    int inclusive = f->inclusive != 0;
    if (f->all_frames) {
        uint32_t n = tb_len(c->snap, t);
        for (uint32_t i = 0; i < n; i++) {
            if (frame_matches(c, fi, tb_frame(c->snap, t, i))) {
                return inclusive;
            }
        }
        return !inclusive;
    }
    return frame_matches(c, fi, tb_frame(c->snap, t, 0)) ^ !inclusive;
}

/* Filter._match / DomainFilter._match for a block in domain d whose
 * traceback result is c->tb_match[fi]. */
static int
filter_matches(const filter_ctx_t *c, size_t fi, unsigned d)
{
    const mh_filter_t *f = &c->filters[fi];
    int inclusive = f->inclusive != 0;
    int in_domain = (f->domain_mask >> d) & 1;
    if (f->pattern == NULL) {
        return in_domain ^ !inclusive;
    }
    int res = c->tb_match[fi];
    if (f->domain_mask == 0) {
        return res;
    }
    return inclusive ? res && in_domain : res || !in_domain;
}

/* Snapshot._filter_trace for every domain, for traceback t. */
static uint8_t
traceback_verdict(filter_ctx_t *c, uint32_t t)
{
    uint8_t verdict = VERDICT_KNOWN;
    for (size_t fi = 0; fi < c->nfilters; fi++) {
        if (c->filters[fi].pattern != NULL) {
            c->tb_match[fi] = (uint8_t)traceback_matches(c, fi, t);
        }
    }
    for (unsigned d = 0; d < MH_DOMAIN_COUNT; d++) {
        int pass = !c->has_inclusive;
        for (size_t fi = 0; fi < c->nfilters && !pass; fi++) {
            pass = c->filters[fi].inclusive && filter_matches(c, fi, d);
        }
        for (size_t fi = 0; fi < c->nfilters && pass; fi++) {
            if (!c->filters[fi].inclusive && !filter_matches(c, fi, d)) {
                pass = 0;
            }
        }
        if (pass) {
            verdict |= (uint8_t)(1u << d);
        }
    }
    return verdict;
}

static int
block_passes(filter_ctx_t *c, const mh_snap_block_t *b)
{
    if (b->size < c->min_size || b->size > c->max_size) {
        return 0;
    }
    uint8_t v = c->verdict[b->traceback];
    if (v == 0) {
        v = c->verdict[b->traceback] = traceback_verdict(c, b->traceback);
    }
    return b->domain < MH_DOMAIN_COUNT && ((v >> b->domain) & 1);
}

/* Copy n elements of src into *array, growing it to exactly n if its
 * capacity *cap is smaller. */
static int
copy_array(void **array, size_t *cap, const void *src, size_t n, size_t elem)
{
    if (n > *cap) {
        size_t bytes;
        if (__builtin_mul_overflow(n, elem, &bytes)) {
            return -1;
        }
        void *p = mh_rawmem_realloc(*array, *cap * elem, bytes);
        if (p == NULL) {
            return -1;
        }
        *array = p;
        *cap = n;
    }
    if (n) {
        memcpy(*array, src, n * elem);
    }
    return 0;
}

int
mh_stats_filter(const mh_snapdata_t *snap, const mh_filter_t *filters,
                size_t nfilters, mh_snapdata_t **out)
{
    return mh_stats_filter_sized(snap, filters, nfilters, 0, UINT64_MAX, out);
}

int
mh_stats_filter_sized(const mh_snapdata_t *snap, const mh_filter_t *filters,
                      size_t nfilters, uint64_t min_size, uint64_t max_size,
                      mh_snapdata_t **out)
{
    filter_ctx_t c;
    mh_snapdata_t *res = NULL;
    size_t memo_len = 0, kept = 0;

    *out = NULL;
    memset(&c, 0, sizeof(c));
    c.min_size = min_size;
    c.max_size = max_size;
    c.snap = snap;
    c.filters = filters;
    c.nfilters = nfilters;
    for (size_t fi = 0; fi < nfilters; fi++) {
        c.has_inclusive |= filters[fi].inclusive != 0;
    }
    c.verdict = mh_rawmem_calloc(snap->ntracebacks, sizeof(uint8_t));
    c.tb_match = mh_rawmem_calloc(nfilters, sizeof(uint8_t));
    if (__builtin_mul_overflow(nfilters, snap->nstrings, &memo_len)) {
        memo_len = 0;
        goto error;
    }
    c.name_memo = mh_rawmem_calloc(memo_len, sizeof(uint8_t));
    if (c.verdict == NULL || c.tb_match == NULL || c.name_memo == NULL) {
        goto error;
    }

    for (size_t b = 0; b < snap->nblocks; b++) {
        kept += block_passes(&c, &snap->blocks[b]);
    }

    res = mh_snapdata_new();
    if (res == NULL ||
        copy_array((void **)&res->tracebacks, &res->tracebacks_cap,
                   snap->tracebacks, snap->ntracebacks,
                   sizeof(mh_snap_traceback_t)) < 0 ||
        copy_array((void **)&res->frame_ids, &res->frame_ids_cap,
                   snap->frame_ids, snap->nframe_ids, sizeof(uint32_t)) < 0 ||
        copy_array((void **)&res->frames, &res->frames_cap, snap->frames,
                   snap->nframes, sizeof(mh_snap_frame_t)) < 0 ||
        copy_array((void **)&res->string_offsets, &res->strings_cap,
                   snap->string_offsets, snap->nstrings + 1,
                   sizeof(uint64_t)) < 0 ||
        copy_array((void **)&res->string_data, &res->string_bytes_cap,
                   snap->string_data, snap->string_bytes, 1) < 0) {
        goto error;
    }
    res->ntracebacks = snap->ntracebacks;
    res->nframe_ids = snap->nframe_ids;
    res->nframes = snap->nframes;
    res->nstrings = snap->nstrings;
    res->string_bytes = snap->string_bytes;
    res->traceback_limit = snap->traceback_limit;
    res->sample_mean = snap->sample_mean;
    res->timestamp = snap->timestamp;
    res->python_hexversion = snap->python_hexversion;

    if (kept > 0) {
        /* Exactly the kept blocks: a filtered snapshot may be large. */
        res->blocks = mh_rawmem_malloc(kept * sizeof(mh_snap_block_t));
        if (res->blocks == NULL) {
            goto error;
        }
        res->blocks_cap = kept;
        for (size_t b = 0; b < snap->nblocks; b++) {
            if (block_passes(&c, &snap->blocks[b])) {
                res->blocks[res->nblocks++] = snap->blocks[b];
            }
        }
        assert(res->nblocks == kept);
    }

    mh_rawmem_free(c.verdict, snap->ntracebacks);
    mh_rawmem_free(c.tb_match, nfilters);
    mh_rawmem_free(c.name_memo, memo_len);
    *out = res;
    return 0;

error:
    mh_snapdata_free(res);
    mh_rawmem_free(c.verdict, snap->ntracebacks);
    mh_rawmem_free(c.tb_match, nfilters);
    mh_rawmem_free(c.name_memo, memo_len);
    return -1;
}
