/* test_stats.c: plain-C tests of statistics, comparison and filtering
 * (stats.h).
 *
 * Ports the expectations of CPython's test_tracemalloc (TestSnapshot,
 * TestFilters), then checks what those do not: content keys across
 * duplicate tables, the unknown frame, cumulative multiplicity, tie-breaks,
 * sampled estimates, exact sums, and injected out-of-memory (rawmem.h's
 * mh_rawmem_fail_after) without leaks.  Snapshots are built twice, with
 * interned and with duplicated tables, which must not matter. Prints one line
 * per failed CHECK and a final summary; exits non-zero on any failure.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rawmem.h"
#include "snapdata.h"
#include "stats.h"
#include "check.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Building snapshots ------------------------------------------------ */

/* 1: reuse equal strings, frames and tracebacks; 0: add new ones every
 * time, so that only content can tell keys apart. */
static int intern = 1;

static mh_snapdata_t *
snap_new(void)
{
    mh_snapdata_t *s = mh_snapdata_new();
    if (s == NULL) {
        fprintf(stderr, "out of memory building a test snapshot\n");
        exit(1);
    }
    return s;
}

static uint32_t
get_string(mh_snapdata_t *s, const char *text, size_t len)
{
    if (intern) {
        for (size_t i = 0; i < s->nstrings; i++) {
            uint64_t a = s->string_offsets[i], b = s->string_offsets[i + 1];
            if (b - a == len &&
                (len == 0 || memcmp(s->string_data + a, text, len) == 0)) {
                return (uint32_t)i;
            }
        }
    }
    int64_t i = mh_snapdata_add_string(s, text, len);
    if (i < 0) {
        exit(1);
    }
    return (uint32_t)i;
}

static uint32_t
get_frame(mh_snapdata_t *s, const char *file, size_t len, int32_t line,
          const char *function)
{
    uint32_t f = get_string(s, file, len);
    uint32_t fn = get_string(s, function, strlen(function));
    if (intern) {
        for (size_t i = 0; i < s->nframes; i++) {
            if (s->frames[i].filename == f && s->frames[i].function == fn &&
                s->frames[i].lineno == line) {
                return (uint32_t)i;
            }
        }
    }
    int64_t i = mh_snapdata_add_frame(s, f, fn, line);
    if (i < 0) {
        exit(1);
    }
    return (uint32_t)i;
}

/* A traceback from "file:line file:line ..." (innermost first; the empty
 * spec is traceback 0).  Every frame's function is `function`. */
static uint32_t
get_traceback_fn(mh_snapdata_t *s, const char *spec, const char *function,
                 uint16_t total)
{
    uint32_t ids[64];
    uint16_t n = 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ' ');
        if (end == NULL) {
            end = p + strlen(p);
        }
        const char *colon = end;
        while (colon > p && colon[-1] != ':') {
            colon--;
        }
        ids[n++] = get_frame(s, p, (size_t)(colon - 1 - p),
                             (int32_t)atoi(colon), function);
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        return 0;
    }
    if (intern) {
        for (size_t t = 1; t < s->ntracebacks; t++) {
            const mh_snap_traceback_t *tb = &s->tracebacks[t];
            if (tb->nframe == n && tb->total_nframe == (total ? total : n) &&
                memcmp(s->frame_ids + tb->first, ids, n * sizeof(*ids)) == 0) {
                return (uint32_t)t;
            }
        }
    }
    int64_t t = mh_snapdata_add_traceback(s, ids, n, total ? total : n);
    if (t < 0) {
        exit(1);
    }
    return (uint32_t)t;
}

/* Add a block; its generation is its index, to identify it after
 * filtering. */
static void
add_block_tb(mh_snapdata_t *s, int domain, uint64_t size, uint32_t tb)
{
    mh_snap_block_t b = {size, tb, (uint16_t)s->nblocks, (uint8_t)domain, 0};
    if (mh_snapdata_add_block(s, &b) < 0) {
        exit(1);
    }
}

static void
add_trace(mh_snapdata_t *s, int domain, uint64_t size, const char *spec)
{
    add_block_tb(s, domain, size, get_traceback_fn(s, spec, "f", 0));
}

/* ---- Reading results --------------------------------------------------- */

static void
append_frame(char *buf, size_t cap, const mh_snapdata_t *s, uint32_t f,
             int with_line)
{
    size_t used = strlen(buf);
    if (f == MH_STATS_UNKNOWN_FRAME) {
        snprintf(buf + used, cap - used,
                 with_line ? "<unknown>:0" : "<unknown>");
        return;
    }
    uint32_t st = s->frames[f].filename;
    int len = (int)(s->string_offsets[st + 1] - s->string_offsets[st]);
    const char *name =
        s->string_data ? s->string_data + s->string_offsets[st] : "";
    if (with_line) {
        snprintf(buf + used, cap - used, "%.*s:%d", len, name,
                 (int)s->frames[f].lineno);
    }
    else {
        snprintf(buf + used, cap - used, "%.*s", len, name);
    }
}

/* A key as text: "a.py" (FILENAME), "a.py:2" (LINENO), "a.py:2 b.py:4"
 * (TRACEBACK, innermost first; an empty traceback is "<unknown>:0"). */
static const char *
key_text(const mh_snapdata_t *s, mh_key_type_t type, uint32_t key)
{
    static char buf[512];
    buf[0] = '\0';
    if (type != MH_KEY_TRACEBACK) {
        append_frame(buf, sizeof(buf), s, key, type == MH_KEY_LINENO);
        return buf;
    }
    const mh_snap_traceback_t *tb = &s->tracebacks[key];
    if (tb->nframe == 0) {
        append_frame(buf, sizeof(buf), s, MH_STATS_UNKNOWN_FRAME, 1);
    }
    for (uint16_t i = 0; i < tb->nframe; i++) {
        if (i) {
            strcat(buf, " ");
        }
        append_frame(buf, sizeof(buf), s, s->frame_ids[tb->first + i], 1);
    }
    return buf;
}

typedef struct {
    const char *key;
    uint64_t size, count;
} exp_stat_t;

typedef struct {
    const char *key;
    uint64_t size;
    int64_t size_diff;
    uint64_t count;
    int64_t count_diff;
} exp_diff_t;

static int
stats_are(const mh_snapdata_t *s, mh_key_type_t type, int cumulative,
          const exp_stat_t *exp, size_t n)
{
    mh_stats_t st;
    if (mh_stats_group(s, type, cumulative, &st) < 0) {
        fprintf(stderr, "  mh_stats_group failed\n");
        return 0;
    }
    int ok = st.n == n;
    for (size_t i = 0; i < st.n && ok; i++) {
        ok = strcmp(key_text(s, type, st.items[i].key), exp[i].key) == 0 &&
             st.items[i].size == exp[i].size &&
             st.items[i].count == exp[i].count;
    }
    if (!ok) {
        fprintf(stderr, "  type %d cumulative %d, got:\n", (int)type,
                cumulative);
        for (size_t i = 0; i < st.n; i++) {
            fprintf(stderr, "    %s size=%" PRIu64 " count=%" PRIu64 "\n",
                    key_text(s, type, st.items[i].key), st.items[i].size,
                    st.items[i].count);
        }
    }
    mh_stats_free(&st);
    return ok;
}

static int
diff_is(const mh_snapdata_t *new_snap, const mh_snapdata_t *old_snap,
        mh_key_type_t type, int cumulative, const exp_diff_t *exp, size_t n)
{
    mh_stats_diff_t d;
    if (mh_stats_compare(new_snap, old_snap, type, cumulative, &d) < 0) {
        fprintf(stderr, "  mh_stats_compare failed\n");
        return 0;
    }
    int ok = d.n == n;
    for (size_t i = 0; i < d.n && ok; i++) {
        const mh_stat_diff_t *x = &d.items[i];
        const mh_snapdata_t *owner = x->side ? old_snap : new_snap;
        ok = strcmp(key_text(owner, type, x->key), exp[i].key) == 0 &&
             x->size == exp[i].size && x->size_diff == exp[i].size_diff &&
             x->count == exp[i].count && x->count_diff == exp[i].count_diff &&
             x->side == (exp[i].size == 0 && exp[i].count == 0 &&
                         (exp[i].size_diff || exp[i].count_diff));
    }
    if (!ok) {
        fprintf(stderr, "  type %d cumulative %d, got:\n", (int)type,
                cumulative);
        for (size_t i = 0; i < d.n; i++) {
            const mh_stat_diff_t *x = &d.items[i];
            fprintf(stderr,
                    "    %s side=%d size=%" PRIu64 " (%+" PRId64
                    ") count=%" PRIu64 " (%+" PRId64 ")\n",
                    key_text(x->side ? old_snap : new_snap, type, x->key),
                    x->side, x->size, x->size_diff, x->count, x->count_diff);
        }
    }
    mh_stats_diff_free(&d);
    return ok;
}

/* Filter s and return the kept blocks' generations (= their indices in
 * s) as a string such as "0 1 3"; "FAIL" if filtering failed. */
static const char *
kept(const mh_snapdata_t *s, const mh_filter_t *filters, size_t n)
{
    static char buf[512];
    mh_snapdata_t *out;
    if (mh_stats_filter(s, filters, n, &out) < 0) {
        return "FAIL";
    }
    buf[0] = '\0';
    for (size_t b = 0; b < out->nblocks; b++) {
        size_t used = strlen(buf);
        snprintf(buf + used, sizeof(buf) - used, b ? " %u" : "%u",
                 (unsigned)out->blocks[b].generation);
    }
    if (mh_snapdata_validate(out) != NULL) {
        strcpy(buf, "INVALID");
    }
    mh_snapdata_free(out);
    return buf;
}

static mh_filter_t
filter(int inclusive, const char *pattern)
{
    mh_filter_t f = {inclusive, pattern, 0, 0, 0, 0};
    return f;
}

/* ---- CPython's test_tracemalloc: TestSnapshot ------------------------- */

/* create_snapshots() of test_tracemalloc: ('<unknown>', 0) is traceback 0
 * here, and domain 4 (not a memhound domain) becomes 3; domains do not
 * matter to statistics. */
static void
create_snapshots(mh_snapdata_t **s1, mh_snapdata_t **s2)
{
    mh_snapdata_t *a = snap_new();
    a->traceback_limit = 2;
    add_trace(a, 0, 10, "a.py:2 b.py:4");
    add_trace(a, 0, 10, "a.py:2 b.py:4");
    add_trace(a, 0, 10, "a.py:2 b.py:4");
    add_trace(a, 1, 2, "a.py:5 b.py:4");
    add_trace(a, 2, 66, "b.py:1");
    add_trace(a, 3, 7, "");

    mh_snapdata_t *b = snap_new();
    b->traceback_limit = 2;
    /* Some noise first, so that the two numberings differ. */
    (void)get_traceback_fn(b, "zz.py:1", "g", 0);
    add_trace(b, 0, 10, "a.py:2 b.py:4");
    add_trace(b, 0, 10, "a.py:2 b.py:4");
    add_trace(b, 0, 10, "a.py:2 b.py:4");
    add_trace(b, 2, 2, "a.py:5 b.py:4");
    add_trace(b, 2, 5000, "a.py:5 b.py:4");
    add_trace(b, 3, 400, "c.py:578");
    CHECK(mh_snapdata_validate(a) == NULL);
    CHECK(mh_snapdata_validate(b) == NULL);
    *s1 = a;
    *s2 = b;
}

static void
test_group_by_line(void)
{
    mh_snapdata_t *s1, *s2;
    create_snapshots(&s1, &s2);
    const exp_stat_t e1[] = {{"b.py:1", 66, 1},
                             {"a.py:2", 30, 3},
                             {"<unknown>:0", 7, 1},
                             {"a.py:5", 2, 1}};
    CHECK(stats_are(s1, MH_KEY_LINENO, 0, e1, NELEM(e1)));
    const exp_stat_t e2[] = {
        {"a.py:5", 5002, 2}, {"c.py:578", 400, 1}, {"a.py:2", 30, 3}};
    CHECK(stats_are(s2, MH_KEY_LINENO, 0, e2, NELEM(e2)));
    const exp_diff_t d[] = {{"a.py:5", 5002, 5000, 2, 1},
                            {"c.py:578", 400, 400, 1, 1},
                            {"b.py:1", 0, -66, 0, -1},
                            {"<unknown>:0", 0, -7, 0, -1},
                            {"a.py:2", 30, 0, 3, 0}};
    CHECK(diff_is(s2, s1, MH_KEY_LINENO, 0, d, NELEM(d)));
    mh_snapdata_free(s1);
    mh_snapdata_free(s2);
}

static void
test_group_by_file(void)
{
    mh_snapdata_t *s1, *s2;
    create_snapshots(&s1, &s2);
    const exp_stat_t e1[] = {
        {"b.py", 66, 1}, {"a.py", 32, 4}, {"<unknown>", 7, 1}};
    CHECK(stats_are(s1, MH_KEY_FILENAME, 0, e1, NELEM(e1)));
    const exp_stat_t e2[] = {{"a.py", 5032, 5}, {"c.py", 400, 1}};
    CHECK(stats_are(s2, MH_KEY_FILENAME, 0, e2, NELEM(e2)));
    const exp_diff_t d[] = {{"a.py", 5032, 5000, 5, 1},
                            {"c.py", 400, 400, 1, 1},
                            {"b.py", 0, -66, 0, -1},
                            {"<unknown>", 0, -7, 0, -1}};
    CHECK(diff_is(s2, s1, MH_KEY_FILENAME, 0, d, NELEM(d)));
    mh_snapdata_free(s1);
    mh_snapdata_free(s2);
}

static void
test_group_by_traceback(void)
{
    mh_snapdata_t *s1, *s2;
    create_snapshots(&s1, &s2);
    const exp_stat_t e1[] = {{"b.py:1", 66, 1},
                             {"a.py:2 b.py:4", 30, 3},
                             {"<unknown>:0", 7, 1},
                             {"a.py:5 b.py:4", 2, 1}};
    CHECK(stats_are(s1, MH_KEY_TRACEBACK, 0, e1, NELEM(e1)));
    const exp_stat_t e2[] = {{"a.py:5 b.py:4", 5002, 2},
                             {"c.py:578", 400, 1},
                             {"a.py:2 b.py:4", 30, 3}};
    CHECK(stats_are(s2, MH_KEY_TRACEBACK, 0, e2, NELEM(e2)));
    const exp_diff_t d[] = {{"a.py:5 b.py:4", 5002, 5000, 2, 1},
                            {"c.py:578", 400, 400, 1, 1},
                            {"b.py:1", 0, -66, 0, -1},
                            {"<unknown>:0", 0, -7, 0, -1},
                            {"a.py:2 b.py:4", 30, 0, 3, 0}};
    CHECK(diff_is(s2, s1, MH_KEY_TRACEBACK, 0, d, NELEM(d)));
    /* tracemalloc raises for cumulative tracebacks; here it is ignored. */
    CHECK(stats_are(s1, MH_KEY_TRACEBACK, 1, e1, NELEM(e1)));
    mh_snapdata_free(s1);
    mh_snapdata_free(s2);
}

static void
test_group_by_cumulative(void)
{
    mh_snapdata_t *s1, *s2;
    create_snapshots(&s1, &s2);
    const exp_stat_t ef[] = {
        {"b.py", 98, 5}, {"a.py", 32, 4}, {"<unknown>", 7, 1}};
    CHECK(stats_are(s1, MH_KEY_FILENAME, 1, ef, NELEM(ef)));
    const exp_stat_t el[] = {{"b.py:1", 66, 1},
                             {"b.py:4", 32, 4},
                             {"a.py:2", 30, 3},
                             {"<unknown>:0", 7, 1},
                             {"a.py:5", 2, 1}};
    CHECK(stats_are(s1, MH_KEY_LINENO, 1, el, NELEM(el)));
    /* Not in the stdlib test; checked against CPython 3.11. */
    const exp_diff_t d[] = {{"a.py", 5032, 5000, 5, 1},
                            {"b.py", 5032, 4934, 5, 0},
                            {"c.py", 400, 400, 1, 1},
                            {"<unknown>", 0, -7, 0, -1}};
    CHECK(diff_is(s2, s1, MH_KEY_FILENAME, 1, d, NELEM(d)));
    mh_snapdata_free(s1);
    mh_snapdata_free(s2);
}

static void
test_filter_traces(void)
{
    mh_snapdata_t *s1, *s2;
    create_snapshots(&s1, &s2);
    mh_filter_t f1 = filter(0, "b.py");
    mh_filter_t f23[2] = {filter(1, "a.py"), filter(1, "a.py")};
    f23[0].lineno = 2;
    f23[1].lineno = 5;

    /* exclude b.py */
    mh_snapdata_t *s3;
    CHECK(mh_stats_filter(s1, &f1, 1, &s3) == 0);
    CHECK(strcmp(kept(s1, &f1, 1), "0 1 2 3 5") == 0);
    /* only include two lines of a.py */
    CHECK(strcmp(kept(s3, f23, 2), "0 1 2 3") == 0);
    mh_snapdata_free(s3);

    /* No filter: a copy of everything, tables and header included. */
    mh_snapdata_t *s5;
    s1->sample_mean = 0;
    s1->timestamp = 1234.5;
    s1->python_hexversion = 0x030b07f0;
    CHECK(mh_stats_filter(s1, NULL, 0, &s5) == 0);
    CHECK(s5 != s1 && mh_snapdata_validate(s5) == NULL);
    CHECK(s5->nblocks == s1->nblocks &&
          memcmp(s5->blocks, s1->blocks,
                 s1->nblocks * sizeof(mh_snap_block_t)) == 0);
    CHECK(s5->ntracebacks == s1->ntracebacks &&
          memcmp(s5->tracebacks, s1->tracebacks,
                 s1->ntracebacks * sizeof(mh_snap_traceback_t)) == 0);
    CHECK(s5->nframe_ids == s1->nframe_ids &&
          memcmp(s5->frame_ids, s1->frame_ids,
                 s1->nframe_ids * sizeof(uint32_t)) == 0);
    CHECK(s5->nframes == s1->nframes &&
          memcmp(s5->frames, s1->frames,
                 s1->nframes * sizeof(mh_snap_frame_t)) == 0);
    CHECK(s5->nstrings == s1->nstrings &&
          s5->string_bytes == s1->string_bytes &&
          memcmp(s5->string_offsets, s1->string_offsets,
                 (s1->nstrings + 1) * sizeof(uint64_t)) == 0 &&
          memcmp(s5->string_data, s1->string_data, s1->string_bytes) == 0);
    CHECK(s5->traceback_limit == 2 && s5->timestamp == 1234.5 &&
          s5->python_hexversion == 0x030b07f0 && s5->sample_mean == 0);
    mh_snapdata_free(s5);
    mh_snapdata_free(s1);
    mh_snapdata_free(s2);
}

static void
test_filter_traces_domain(void)
{
    mh_snapdata_t *s1, *s2;
    create_snapshots(&s1, &s2);
    mh_filter_t f1 = filter(0, "a.py");
    mh_filter_t f2 = filter(1, "a.py");
    f1.domain_mask = f2.domain_mask = 1u << 1;
    /* exclude a.py of domain 1 */
    CHECK(strcmp(kept(s1, &f1, 1), "0 1 2 4 5") == 0);
    /* include a.py of domain 1 (the stdlib test repeats filter1 here) */
    CHECK(strcmp(kept(s1, &f2, 1), "3") == 0);

    /* test_filter_traces_domain_filter */
    mh_filter_t d1 = filter(0, NULL);
    mh_filter_t d2 = filter(1, NULL);
    d1.domain_mask = d2.domain_mask = 1u << 3;
    CHECK(strcmp(kept(s1, &d1, 1), "0 1 2 3 4") == 0);
    CHECK(strcmp(kept(s1, &d2, 1), "5") == 0);
    /* A DomainFilter naming several mh_domain_t values (tracemalloc's
     * domain 0 is memhound's RAW, MEM and OBJ). */
    d2.domain_mask = (1u << 0) | (1u << 2);
    CHECK(strcmp(kept(s1, &d2, 1), "0 1 2 4") == 0);
    d1.domain_mask = (1u << 0) | (1u << 2);
    CHECK(strcmp(kept(s1, &d1, 1), "3 5") == 0);
    mh_snapdata_free(s1);
    mh_snapdata_free(s2);
}

/* ---- CPython's test_tracemalloc: TestFilters -------------------------- */

/* Filter._match_frame(filename, lineno) through mh_stats_filter, on a
 * snapshot whose one block has the one frame (filename, lineno); the
 * filename "<unknown>" at line 0 is the empty traceback. */
static int
match_frame(const mh_filter_t *f, const char *filename, int lineno)
{
    mh_snapdata_t *s = snap_new();
    if (strcmp(filename, "<unknown>") == 0 && lineno == 0) {
        add_block_tb(s, 0, 1, 0);
    }
    else {
        char spec[256];
        snprintf(spec, sizeof(spec), "%s:%d", filename, lineno);
        add_trace(s, 0, 1, spec);
    }
    const char *r = kept(s, f, 1);
    int result = strcmp(r, "0") == 0;
    if (!result && strcmp(r, "") != 0) {
        fprintf(stderr, "  filtering failed: %s\n", r);
    }
    mh_snapdata_free(s);
    return result;
}

static void
test_filter_match(void)
{
    static const char *names[] = {"abc", "12356"};
    static const int lines[] = {0, 5, 10};
    /* Rows: inclusive, lineno (-1: None), then the expected
     * _match_frame for abc:0, abc:5, abc:10, 12356:0, 12356:5,
     * 12356:10. */
    static const int rows[][8] = {
        {1, -1, 1, 1, 1, 0, 0, 0}, {0, -1, 0, 0, 0, 1, 1, 1},
        {1, 5, 0, 1, 0, 0, 0, 0},  {0, 5, 1, 0, 1, 1, 1, 1},
        {1, 0, 1, 0, 0, 0, 0, 0},  {0, 0, 0, 1, 1, 1, 1, 1},
    };
    for (size_t r = 0; r < NELEM(rows); r++) {
        mh_filter_t f = filter(rows[r][0], "abc");
        if (rows[r][1] >= 0) {
            f.lineno = rows[r][1];
            f.has_lineno = 1;
        }
        for (int i = 0; i < 6; i++) {
            int got = match_frame(&f, names[i / 3], lines[i % 3]);
            if (got != rows[r][2 + i]) {
                fprintf(stderr, "  row %zu case %d\n", r, i);
            }
            CHECK(got == rows[r][2 + i]);
        }
    }
    /* Without has_lineno, lineno 0 keeps its meaning "any line". */
    mh_filter_t any = filter(1, "abc");
    CHECK(match_frame(&any, "abc", 7));

    /* test_filter_match_filename */
    mh_filter_t inc = filter(1, "abc");
    mh_filter_t exc = filter(0, "abc");
    CHECK(match_frame(&inc, "abc", 0));
    CHECK(!match_frame(&inc, "12356", 0));
    CHECK(!match_frame(&inc, "<unknown>", 0));
    CHECK(!match_frame(&exc, "abc", 0));
    CHECK(match_frame(&exc, "12356", 0));
    CHECK(match_frame(&exc, "<unknown>", 0));
}

/* test_filter_match_filename_joker: fnmatch(filename, pattern) is
 * Filter(True, pattern)._match_frame(filename, 0).  The caller normalizes
 * patterns (".pyc" -> ".py"), as memhound.tracemalloc does; frame file
 * names are normalized by mh_stats_filter. */
static int
joker(const char *filename, const char *pattern)
{
    char norm[256];
    size_t n = strlen(pattern);
    snprintf(norm, sizeof(norm), "%s", pattern);
    if (n >= 4 && strcmp(pattern + n - 4, ".pyc") == 0) {
        norm[n - 1] = '\0';
    }
    mh_filter_t f = filter(1, norm);
    return match_frame(&f, filename, 0);
}

static void
test_filter_match_filename_joker(void)
{
    /* empty string */
    CHECK(!joker("abc", ""));
    CHECK(!joker("", "abc"));
    CHECK(joker("", ""));
    CHECK(joker("", "*"));
    /* no * */
    CHECK(joker("abc", "abc"));
    CHECK(!joker("abc", "abcd"));
    CHECK(!joker("abc", "def"));
    /* a* */
    CHECK(joker("abc", "a*"));
    CHECK(joker("abc", "abc*"));
    CHECK(!joker("abc", "b*"));
    CHECK(!joker("abc", "abcd*"));
    /* a*b */
    CHECK(joker("abc", "a*c"));
    CHECK(joker("abcdcx", "a*cx"));
    CHECK(!joker("abb", "a*c"));
    CHECK(!joker("abcdce", "a*cx"));
    /* a*b*c */
    CHECK(joker("abcde", "a*c*e"));
    CHECK(joker("abcbdefeg", "a*bd*eg"));
    CHECK(!joker("abcdd", "a*c*e"));
    CHECK(!joker("abcbdefef", "a*bd*eg"));
    /* replace .pyc suffix with .py */
    CHECK(joker("a.pyc", "a.py"));
    CHECK(joker("a.py", "a.pyc"));
    /* case sensitive (POSIX) */
    CHECK(!joker("aBC", "ABc"));
    CHECK(!joker("aBcDe", "Ab*dE"));
    CHECK(!joker("a.pyc", "a.PY"));
    CHECK(!joker("a.py", "a.PYC"));
    /* there is no alternate separator */
    CHECK(!joker("a/b", "a\\b"));
    CHECK(!joker("a\\b", "a/b"));
    CHECK(!joker("a/b\\c", "a\\b/c"));
    CHECK(!joker("a/b/c", "a\\b\\c"));
    /* as of 3.5, .pyo is no longer munged to .py */
    CHECK(!joker("a.pyo", "a.py"));
}

static void
test_filter_match_trace(void)
{
    /* t1, t2, t3, unknown of the stdlib test, one block each. */
    mh_snapdata_t *s = snap_new();
    add_trace(s, 0, 1, "a.py:2 b.py:3");
    add_trace(s, 0, 1, "b.py:4 b.py:5");
    add_trace(s, 0, 1, "c.py:5 <unknown>:0");
    add_trace(s, 0, 1, "");
    static const struct {
        int inclusive;
        const char *pattern;
        int all_frames;
        const char *kept;
    } rows[] = {
        {1, "b.py", 1, "0 1"},        {1, "b.py", 0, "1"},
        {0, "b.py", 1, "2 3"},        {0, "b.py", 0, "0 2 3"},
        {0, "<unknown>", 0, "0 1 2"}, {1, "<unknown>", 1, "2 3"},
        {0, "<unknown>", 1, "0 1"},
    };
    for (size_t r = 0; r < NELEM(rows); r++) {
        mh_filter_t f = filter(rows[r].inclusive, rows[r].pattern);
        f.all_frames = rows[r].all_frames;
        const char *got = kept(s, &f, 1);
        if (strcmp(got, rows[r].kept) != 0) {
            fprintf(stderr, "  row %zu kept \"%s\"\n", r, got);
        }
        CHECK(strcmp(got, rows[r].kept) == 0);
    }
    mh_snapdata_free(s);
}

/* Filter rules beyond the stdlib test: several filters, Filter domains,
 * ".pyc" in frames, original order, original untouched. */
static void
test_filter_rules(void)
{
    mh_snapdata_t *s = snap_new();
    add_trace(s, 0, 1, "x/a.pyc:1 main.py:9"); /* 0 */
    add_trace(s, 1, 1, "x/b.py:2 main.py:9");  /* 1 */
    add_trace(s, 2, 1, "x/a.py:3");            /* 2 */
    add_trace(s, 3, 1, "lib/c.py:4 x/a.py:1"); /* 3 */
    add_trace(s, 1, 1, "");                    /* 4 */
    add_trace(s, 0, 1, "x/a.py:1 main.py:9");  /* 5 */
    size_t nblocks = s->nblocks;

    /* Inclusive filters: any of them. */
    mh_filter_t inc[2] = {filter(1, "x/a.py"), filter(1, "lib/*")};
    CHECK(strcmp(kept(s, inc, 2), "0 2 3 5") == 0);
    /* Plus an exclusive one: none of those. */
    mh_filter_t mix[3] = {filter(1, "x/*"), filter(1, "lib/*"),
                          filter(0, "*.py")};
    mix[2].lineno = 1;
    CHECK(strcmp(kept(s, mix, 3), "1 2 3") == 0);
    /* Only exclusive filters: nothing else is required. */
    mh_filter_t exc = filter(0, "main.py");
    exc.all_frames = 1;
    CHECK(strcmp(kept(s, &exc, 1), "2 3 4") == 0);
    /* An inclusive Filter with a domain: the domain is required too. */
    mh_filter_t fd = filter(1, "x/*");
    fd.domain_mask = (1u << 0) | (1u << 1);
    CHECK(strcmp(kept(s, &fd, 1), "0 1 5") == 0);
    /* An exclusive one: only blocks of its domain are excluded. */
    fd.inclusive = 0;
    CHECK(strcmp(kept(s, &fd, 1), "2 3 4") == 0);
    /* all_frames with a line. */
    mh_filter_t af = filter(1, "x/a.py");
    af.all_frames = 1;
    af.lineno = 1;
    CHECK(strcmp(kept(s, &af, 1), "0 3 5") == 0);
    /* An inclusive filter that matches nothing. */
    mh_filter_t none = filter(1, "nothing");
    CHECK(strcmp(kept(s, &none, 1), "") == 0);
    mh_snapdata_t *out;
    CHECK(mh_stats_filter(s, &none, 1, &out) == 0);
    CHECK(out->nblocks == 0 && out->ntracebacks == s->ntracebacks &&
          mh_snapdata_validate(out) == NULL);
    mh_snapdata_free(out);
    CHECK(s->nblocks == nblocks && mh_snapdata_validate(s) == NULL);
    mh_snapdata_free(s);
}

/* ---- Beyond the stdlib tests ------------------------------------------ */

static void
test_content_keys(void)
{
    int saved = intern;
    intern = 0; /* every frame, string and traceback is a new index */
    mh_snapdata_t *s = snap_new();
    add_trace(s, 0, 1, "a.py:1 m.py:9");
    add_block_tb(s, 0, 2, get_traceback_fn(s, "a.py:1 m.py:9", "other", 7));
    add_trace(s, 0, 4, "a.py:2 m.py:9");
    add_trace(s, 0, 8, "<unknown>:0"); /* a real frame, merges with tb 0 */
    add_trace(s, 0, 16, "");
    add_trace(s, 0, 32, "<unknown>:5");
    intern = saved;

    const exp_stat_t el[] = {{"<unknown>:5", 32, 1},
                             {"<unknown>:0", 24, 2},
                             {"a.py:2", 4, 1},
                             {"a.py:1", 3, 2}};
    CHECK(stats_are(s, MH_KEY_LINENO, 0, el, NELEM(el)));
    const exp_stat_t ef[] = {{"<unknown>", 56, 3}, {"a.py", 7, 3}};
    CHECK(stats_are(s, MH_KEY_FILENAME, 0, ef, NELEM(ef)));
    /* The function name and total_nframe are not part of the key. */
    const exp_stat_t et[] = {{"<unknown>:5", 32, 1},
                             {"<unknown>:0", 24, 2},
                             {"a.py:2 m.py:9", 4, 1},
                             {"a.py:1 m.py:9", 3, 2}};
    CHECK(stats_are(s, MH_KEY_TRACEBACK, 0, et, NELEM(et)));
    const exp_stat_t ec[] = {{"<unknown>:5", 32, 1},
                             {"<unknown>:0", 24, 2},
                             {"m.py:9", 7, 3},
                             {"a.py:2", 4, 1},
                             {"a.py:1", 3, 2}};
    CHECK(stats_are(s, MH_KEY_LINENO, 1, ec, NELEM(ec)));

    /* The key of a merged group is one of its indices: the first seen. */
    mh_stats_t st;
    CHECK(mh_stats_group(s, MH_KEY_LINENO, 0, &st) == 0);
    CHECK(st.n == 4 &&
          st.items[3].key == s->frame_ids[s->tracebacks[1].first]);
    mh_stats_free(&st);
    CHECK(mh_stats_group(s, MH_KEY_TRACEBACK, 0, &st) == 0);
    CHECK(st.n == 4 && st.items[3].key == 1);
    mh_stats_free(&st);

    /* Only the unknown traceback: the key is MH_STATS_UNKNOWN_FRAME. */
    mh_snapdata_t *u = snap_new();
    add_trace(u, 0, 3, "");
    CHECK(mh_stats_group(u, MH_KEY_FILENAME, 1, &st) == 0);
    CHECK(st.n == 1 && st.items[0].key == MH_STATS_UNKNOWN_FRAME &&
          st.items[0].size == 3 && st.items[0].count == 1);
    mh_stats_free(&st);
    CHECK(mh_stats_group(u, MH_KEY_TRACEBACK, 0, &st) == 0);
    CHECK(st.n == 1 && st.items[0].key == 0);
    mh_stats_free(&st);
    mh_snapdata_free(u);
    mh_snapdata_free(s);
}

static void
test_cumulative_repeats(void)
{
    /* tracemalloc counts a block once per frame, repeats included
     * (checked against CPython 3.10-3.13); DISTINCT once per key. */
    mh_snapdata_t *s = snap_new();
    add_trace(s, 0, 10, "a.py:2 a.py:3 a.py:2");
    add_trace(s, 0, 1, "b.py:1");
    const exp_stat_t ef[] = {{"a.py", 30, 3}, {"b.py", 1, 1}};
    CHECK(stats_are(s, MH_KEY_FILENAME, 1, ef, NELEM(ef)));
    const exp_stat_t el[] = {
        {"a.py:2", 20, 2}, {"a.py:3", 10, 1}, {"b.py:1", 1, 1}};
    CHECK(stats_are(s, MH_KEY_LINENO, 1, el, NELEM(el)));
    const exp_stat_t dfl[] = {{"a.py", 10, 1}, {"b.py", 1, 1}};
    CHECK(stats_are(s, MH_KEY_FILENAME, MH_STATS_CUMULATIVE_DISTINCT, dfl,
                    NELEM(dfl)));
    const exp_stat_t dl[] = {
        {"a.py:3", 10, 1}, {"a.py:2", 10, 1}, {"b.py:1", 1, 1}};
    CHECK(stats_are(s, MH_KEY_LINENO, MH_STATS_CUMULATIVE_DISTINCT, dl,
                    NELEM(dl)));
    mh_snapdata_free(s);
}

static void
test_sort_order(void)
{
    /* Equal size and count: the key decides, descending, as Python
     * compares (filename, lineno): by code point, shorter first. */
    mh_snapdata_t *s = snap_new();
    static const char *specs[] = {"a.py:1", "b.py:1",        "B.py:1",
                                  "a:7",    "\xc3\xa9.py:1", "z.py:1",
                                  "a.py:2", "a.py:-1"};
    for (size_t i = 0; i < NELEM(specs); i++) {
        add_trace(s, 0, 10, specs[i]);
    }
    const exp_stat_t el[] = {{"\xc3\xa9.py:1", 10, 1}, {"z.py:1", 10, 1},
                             {"b.py:1", 10, 1},        {"a.py:2", 10, 1},
                             {"a.py:1", 10, 1},        {"a.py:-1", 10, 1},
                             {"a:7", 10, 1},           {"B.py:1", 10, 1}};
    CHECK(stats_are(s, MH_KEY_LINENO, 0, el, NELEM(el)));
    const exp_stat_t ef[] = {{"a.py", 30, 3}, {"\xc3\xa9.py", 10, 1},
                             {"z.py", 10, 1}, {"b.py", 10, 1},
                             {"a", 10, 1},    {"B.py", 10, 1}};
    CHECK(stats_are(s, MH_KEY_FILENAME, 0, ef, NELEM(ef)));
    mh_snapdata_free(s);

    /* Tracebacks compare from their OLDEST frame (Traceback._frames). */
    s = snap_new();
    add_trace(s, 0, 5, "z.py:1 a.py:1");
    add_trace(s, 0, 5, "a.py:1 b.py:1");
    add_trace(s, 0, 5, "a.py:1");
    add_trace(s, 0, 5, "a.py:2 a.py:1");
    add_trace(s, 0, 5, "");
    const exp_stat_t et[] = {{"a.py:1 b.py:1", 5, 1},
                             {"z.py:1 a.py:1", 5, 1},
                             {"a.py:2 a.py:1", 5, 1},
                             {"a.py:1", 5, 1},
                             {"<unknown>:0", 5, 1}};
    CHECK(stats_are(s, MH_KEY_TRACEBACK, 0, et, NELEM(et)));
    /* Size first, then count. */
    add_trace(s, 0, 4, "a.py:1");
    add_trace(s, 0, 4, "a.py:1");
    add_trace(s, 0, 12, "b.py:1");
    const exp_stat_t ec[] = {{"a.py:1", 13, 3},       {"b.py:1", 12, 1},
                             {"a.py:1 b.py:1", 5, 1}, {"z.py:1 a.py:1", 5, 1},
                             {"a.py:2 a.py:1", 5, 1}, {"<unknown>:0", 5, 1}};
    CHECK(stats_are(s, MH_KEY_TRACEBACK, 0, ec, NELEM(ec)));
    mh_snapdata_free(s);

    /* compare_to: abs(size_diff), size, abs(count_diff), count, key;
     * checked against CPython 3.11. */
    mh_snapdata_t *o = snap_new();
    add_trace(o, 0, 10, "a.py:1");
    add_trace(o, 0, 30, "b.py:1");
    add_trace(o, 0, 5, "c.py:1");
    add_trace(o, 0, 5, "c.py:1");
    add_trace(o, 0, 7, "d.py:1");
    mh_snapdata_t *n = snap_new();
    add_trace(n, 0, 20, "a.py:1");
    add_trace(n, 0, 40, "b.py:1");
    add_trace(n, 0, 15, "c.py:1");
    add_trace(n, 0, 7, "e.py:1");
    const exp_diff_t d[] = {{"b.py:1", 40, 10, 1, 0},
                            {"a.py:1", 20, 10, 1, 0},
                            {"e.py:1", 7, 7, 1, 1},
                            {"d.py:1", 0, -7, 0, -1},
                            {"c.py:1", 15, 5, 1, -1}};
    CHECK(diff_is(n, o, MH_KEY_LINENO, 0, d, NELEM(d)));
    /* Against itself: all differences 0. */
    const exp_diff_t same[] = {{"b.py:1", 40, 0, 1, 0},
                               {"a.py:1", 20, 0, 1, 0},
                               {"c.py:1", 15, 0, 1, 0},
                               {"e.py:1", 7, 0, 1, 0}};
    CHECK(diff_is(n, n, MH_KEY_LINENO, 0, same, NELEM(same)));
    mh_snapdata_free(o);
    mh_snapdata_free(n);
}

static void
test_filter_by_size(void)
{
    mh_snapdata_t *e = snap_new();
    uint64_t sizes[] = {0, 10, 100, 1000, UINT64_MAX};
    for (size_t i = 0; i < NELEM(sizes); i++) {
        add_trace(e, 0, sizes[i], "a.py:1");
    }
    struct {
        uint64_t min, max;
        size_t kept;
    } cases[] = {
        {0, UINT64_MAX, 5},
        {10, 1000, 3},
        {11, 999, 1},
        {1001, UINT64_MAX - 1, 0},
        {UINT64_MAX, UINT64_MAX, 1},
        {5, 4, 0},
    };
    for (size_t c = 0; c < NELEM(cases); c++) {
        mh_snapdata_t *out = NULL;
        CHECK(mh_stats_filter_sized(e, NULL, 0, cases[c].min, cases[c].max,
                                    &out) == 0);
        CHECK(out != NULL && out->nblocks == cases[c].kept);
        for (size_t b = 0; out != NULL && b < out->nblocks; b++) {
            CHECK(out->blocks[b].size >= cases[c].min &&
                  out->blocks[b].size <= cases[c].max);
        }
        mh_snapdata_free(out);
    }
    mh_snapdata_free(e);
}

static void
test_empty_and_exact(void)
{
    mh_snapdata_t *e = snap_new();
    mh_stats_t st;
    mh_stats_diff_t d;
    CHECK(mh_stats_group(e, MH_KEY_LINENO, 1, &st) == 0);
    CHECK(st.n == 0 && st.items == NULL);
    mh_stats_free(&st);
    CHECK(mh_stats_compare(e, e, MH_KEY_TRACEBACK, 0, &d) == 0);
    CHECK(d.n == 0 && d.items == NULL);
    mh_stats_diff_free(&d);
    CHECK(strcmp(kept(e, NULL, 0), "") == 0);

    /* Sums are exact integers: 3 * (2^53 + 1) is not a double. */
    uint64_t big = (UINT64_C(1) << 53) + 1;
    add_trace(e, 0, big, "a.py:1");
    add_trace(e, 1, big, "a.py:1");
    add_trace(e, 2, big, "a.py:1");
    CHECK(mh_stats_group(e, MH_KEY_LINENO, 0, &st) == 0);
    CHECK(st.n == 1 && st.items[0].size == 3 * big && st.items[0].count == 3);
    mh_stats_free(&st);
    mh_snapdata_t *z = snap_new();
    CHECK(mh_stats_compare(z, e, MH_KEY_FILENAME, 0, &d) == 0);
    CHECK(d.n == 1 && d.items[0].side == 1 && d.items[0].size == 0 &&
          d.items[0].size_diff == -(int64_t)(3 * big) &&
          d.items[0].count_diff == -3);
    mh_stats_diff_free(&d);
    mh_snapdata_free(z);
    mh_snapdata_free(e);

    /* No string bytes at all (string_data is NULL): the one file name is
     * the empty string 0. */
    mh_snapdata_t *nul = snap_new();
    uint32_t fid = (uint32_t)mh_snapdata_add_frame(nul, 0, 0, 3);
    add_block_tb(nul, 0, 5,
                 (uint32_t)mh_snapdata_add_traceback(nul, &fid, 1, 1));
    add_block_tb(nul, 0, 6, 0);
    CHECK(nul->string_data == NULL && mh_snapdata_validate(nul) == NULL);
    const exp_stat_t en[] = {{"<unknown>", 6, 1}, {"", 5, 1}};
    CHECK(stats_are(nul, MH_KEY_FILENAME, 0, en, NELEM(en)));
    const exp_stat_t et[] = {{"<unknown>:0", 6, 1}, {":3", 5, 1}};
    CHECK(stats_are(nul, MH_KEY_TRACEBACK, 0, et, NELEM(et)));
    mh_filter_t any = filter(1, "*");
    mh_filter_t empty = filter(1, "");
    CHECK(strcmp(kept(nul, &any, 1), "0 1") == 0);
    CHECK(strcmp(kept(nul, &empty, 1), "0") == 0);
    mh_snapdata_free(nul);
}

static void
test_sampled(void)
{
    const uint64_t mean = 1000000;
    mh_snapdata_t *s = snap_new();
    s->sample_mean = mean;
    /* Weight 1.5 each: rounding per group gives 3, per block would give
     * 4. */
    uint64_t half = (uint64_t)llround((double)mean * log(3.0));
    double wh = mh_snapdata_block_weight(mean, half);
    CHECK(fabs(wh - 1.5) < 1e-6);
    add_trace(s, 0, half, "a.py:1");
    add_trace(s, 0, half, "a.py:1 b.py:2");
    add_trace(s, 0, 100, "b.py:2");
    add_trace(s, 0, 0, "b.py:2");
    double wsmall = mh_snapdata_block_weight(mean, 100);

    mh_stats_t st;
    CHECK(mh_stats_group(s, MH_KEY_LINENO, 0, &st) == 0);
    CHECK(st.n == 2);
    if (st.n == 2) {
        CHECK(strcmp(key_text(s, MH_KEY_LINENO, st.items[0].key), "a.py:1") ==
              0);
        CHECK(st.items[0].count == 3);
        CHECK(st.items[0].size == (uint64_t)llround(2.0 * (double)half * wh));
        /* b.py:2: 100 * w(100) bytes, w(100) + 1 blocks (size 0 weighs
         * 1). */
        CHECK(st.items[1].size == (uint64_t)llround(100.0 * wsmall));
        CHECK(st.items[1].count == (uint64_t)llround(wsmall + 1.0));
    }
    mh_stats_free(&st);

    /* Cumulative: b.py:2 also gets the second block's estimate. */
    CHECK(mh_stats_group(s, MH_KEY_LINENO, 1, &st) == 0);
    CHECK(st.n == 2);
    if (st.n == 2) {
        CHECK(strcmp(key_text(s, MH_KEY_LINENO, st.items[1].key), "b.py:2") ==
              0);
        CHECK(st.items[1].size ==
              (uint64_t)llround((double)half * wh + 100.0 * wsmall));
        CHECK(st.items[1].count == (uint64_t)llround(wh + wsmall + 1.0));
    }
    mh_stats_free(&st);

    /* compare_to takes the difference of the rounded estimates. */
    mh_snapdata_t *o = snap_new();
    add_trace(o, 0, 5, "a.py:1");
    mh_stats_diff_t d;
    CHECK(mh_stats_compare(s, o, MH_KEY_LINENO, 0, &d) == 0);
    CHECK(d.n == 2 && d.items[0].count == 3 && d.items[0].count_diff == 2 &&
          d.items[0].size_diff == (int64_t)d.items[0].size - 5);
    mh_stats_diff_free(&d);
    mh_snapdata_free(o);
    mh_snapdata_free(s);
}

/* ---- Random property check: interning does not matter ---------------- */

static uint64_t rng_state = 42;

static uint64_t
rnd(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static mh_snapdata_t *
random_snapshot(uint64_t seed, int interned)
{
    static const char *files[] = {"a.py",      "b.py",        "ab.py",
                                  "<unknown>", "\xc3\xa9.py", "a"};
    int saved = intern;
    intern = interned;
    rng_state = seed;
    mh_snapdata_t *s = snap_new();
    for (int i = 0; i < 300; i++) {
        char spec[256] = "";
        int depth = (int)(rnd() % 5);
        for (int k = 0; k < depth; k++) {
            size_t used = strlen(spec);
            snprintf(spec + used, sizeof(spec) - used, "%s%s:%d", k ? " " : "",
                     files[rnd() % NELEM(files)], (int)(rnd() % 4));
        }
        add_trace(s, (int)(rnd() % 4), rnd() % 50, spec);
    }
    intern = saved;
    return s;
}

/* The two results, as text, are equal. */
static int
same_stats(const mh_snapdata_t *a, const mh_snapdata_t *b, mh_key_type_t type,
           int cumulative)
{
    mh_stats_t x, y;
    if (mh_stats_group(a, type, cumulative, &x) < 0) {
        return 0;
    }
    if (mh_stats_group(b, type, cumulative, &y) < 0) {
        mh_stats_free(&x);
        return 0;
    }
    int ok = x.n == y.n;
    for (size_t i = 0; i < x.n && ok; i++) {
        char ka[512];
        snprintf(ka, sizeof(ka), "%s", key_text(a, type, x.items[i].key));
        ok = strcmp(ka, key_text(b, type, y.items[i].key)) == 0 &&
             x.items[i].size == y.items[i].size &&
             x.items[i].count == y.items[i].count;
    }
    mh_stats_free(&x);
    mh_stats_free(&y);
    return ok;
}

static void
test_random_interning(void)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        mh_snapdata_t *a = random_snapshot(seed, 1);
        mh_snapdata_t *b = random_snapshot(seed, 0);
        CHECK(a->nframes < b->nframes);
        for (int t = 0; t < 3; t++) {
            CHECK(same_stats(a, b, (mh_key_type_t)t, 0));
            if (t < 2) {
                CHECK(same_stats(a, b, (mh_key_type_t)t, 1));
            }
            /* Same content, different numbering: nothing changed. */
            mh_stats_diff_t d;
            CHECK(mh_stats_compare(a, b, (mh_key_type_t)t, 0, &d) == 0);
            int zero = 1;
            for (size_t i = 0; i < d.n; i++) {
                zero &= d.items[i].side == 0 && d.items[i].size_diff == 0 &&
                        d.items[i].count_diff == 0;
            }
            CHECK(zero);
            mh_stats_diff_free(&d);
        }
        mh_snapdata_free(a);
        mh_snapdata_free(b);
    }
}

/* ---- Out of memory ----------------------------------------------------- */

/* Fail the k-th allocation for k = 0, 1, ... until the call succeeds;
 * every failure must return -1 with nothing allocated. */
static void
test_out_of_memory(void)
{
    mh_snapdata_t *s1, *s2;
    create_snapshots(&s1, &s2);
    mh_filter_t filters[3] = {filter(1, "a.py"), filter(1, "c*"),
                              filter(0, NULL)};
    filters[2].domain_mask = 1u << 2;
    size_t base = mh_rawmem_in_use;

    for (int t = 0; t < 3; t++) {
        for (int cum = 0; cum < (t < 2 ? 2 : 1); cum++) {
            mh_stats_t ref, st;
            CHECK(mh_stats_group(s2, (mh_key_type_t)t, cum, &ref) == 0);
            long k;
            for (k = 0; k < 1000; k++) {
                mh_rawmem_fail_after = k;
                int rc = mh_stats_group(s2, (mh_key_type_t)t, cum, &st);
                mh_rawmem_fail_after = -1;
                if (rc == 0) {
                    break;
                }
                CHECK(rc == -1 && st.items == NULL && st.n == 0);
                CHECK(mh_rawmem_in_use == base + ref.n * sizeof(mh_stat_t));
            }
            CHECK(k > 0 && k < 1000);
            int same = st.n == ref.n;
            for (size_t i = 0; i < st.n && same; i++) {
                same = st.items[i].key == ref.items[i].key &&
                       st.items[i].size == ref.items[i].size &&
                       st.items[i].count == ref.items[i].count;
            }
            CHECK(same);
            mh_stats_free(&st);
            mh_stats_free(&ref);

            mh_stats_diff_t dref, d;
            CHECK(mh_stats_compare(s2, s1, (mh_key_type_t)t, cum, &dref) == 0);
            for (k = 0; k < 1000; k++) {
                mh_rawmem_fail_after = k;
                int rc = mh_stats_compare(s2, s1, (mh_key_type_t)t, cum, &d);
                mh_rawmem_fail_after = -1;
                if (rc == 0) {
                    break;
                }
                CHECK(rc == -1 && d.items == NULL && d.n == 0);
                CHECK(mh_rawmem_in_use ==
                      base + dref.n * sizeof(mh_stat_diff_t));
            }
            CHECK(k > 0 && k < 1000);
            same = d.n == dref.n;
            for (size_t i = 0; i < d.n && same; i++) {
                const mh_stat_diff_t *x = &d.items[i], *y = &dref.items[i];
                same = x->key == y->key && x->side == y->side &&
                       x->size == y->size && x->size_diff == y->size_diff &&
                       x->count == y->count && x->count_diff == y->count_diff;
            }
            CHECK(same);
            mh_stats_diff_free(&d);
            mh_stats_diff_free(&dref);
        }
    }

    long k;
    mh_snapdata_t *out = NULL;
    for (k = 0; k < 1000; k++) {
        mh_rawmem_fail_after = k;
        int rc = mh_stats_filter(s1, filters, 3, &out);
        mh_rawmem_fail_after = -1;
        if (rc == 0) {
            break;
        }
        CHECK(rc == -1 && out == NULL);
        CHECK(mh_rawmem_in_use == base);
    }
    CHECK(k > 0 && k < 1000);
    CHECK(out != NULL && mh_snapdata_validate(out) == NULL);
    CHECK(strcmp(kept(s1, filters, 3), "0 1 2 3") == 0);
    mh_snapdata_free(out);
    CHECK(mh_rawmem_in_use == base);
    mh_snapdata_free(s1);
    mh_snapdata_free(s2);
}

int
main(void)
{
    for (intern = 1; intern >= 0; intern--) {
        test_group_by_line();
        test_group_by_file();
        test_group_by_traceback();
        test_group_by_cumulative();
        test_filter_traces();
        test_filter_traces_domain();
        test_filter_match();
        test_filter_match_filename_joker();
        test_filter_match_trace();
        test_filter_rules();
        test_sort_order();
        test_sampled();
        test_out_of_memory();
    }
    intern = 1;
    test_content_keys();
    test_cumulative_repeats();
    test_empty_and_exact();
    test_filter_by_size();
    test_random_interning();
    return check_report("test_stats");
}
