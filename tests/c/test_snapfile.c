/* test_snapfile.c: plain-C tests of the snapshot file format (snapfile.h:
 * snapfile_encode.c, snapfile_decode.c, snapfile_io.c; its byte-level
 * primitives are tested in test_primitives.c).
 *
 * Round trips (empty and rich snapshots, through memory and a real file),
 * the optional attributes section, the byte layout of the header, every
 * truncation and every single-byte
 * corruption of a small file, hand-made hostile files, and allocation
 * failure injection through mh_rawmem_fail_after.  Meant to run under
 * ASan+UBSan (see the Makefile's ctest target).
 *
 * `test_snapfile --write-corpus DIR` writes the fuzzer's seed files instead.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rawmem.h"
#include "snapdata.h"
#include "snapfile.h"
#include "check.h"

/* ---- building snapshots ------------------------------------------------ */

static uint32_t
add_string(mh_snapdata_t *snap, const char *s, size_t len)
{
    int64_t i = mh_snapdata_add_string(snap, s, len);
    if (i < 0) {
        abort();
    }
    return (uint32_t)i;
}

static uint32_t
add_frame(mh_snapdata_t *snap, uint32_t file, uint32_t func, int32_t line)
{
    int64_t i = mh_snapdata_add_frame(snap, file, func, line);
    if (i < 0) {
        abort();
    }
    return (uint32_t)i;
}

static uint32_t
add_traceback(mh_snapdata_t *snap, const uint32_t *ids, uint16_t n,
              uint16_t total)
{
    int64_t i = mh_snapdata_add_traceback(snap, ids, n, total);
    if (i < 0) {
        abort();
    }
    return (uint32_t)i;
}

static void
add_block(mh_snapdata_t *snap, uint64_t size, uint32_t tb, uint16_t gen,
          uint8_t domain, uint8_t flags)
{
    mh_snap_block_t b = {.size = size,
                         .traceback = tb,
                         .generation = gen,
                         .domain = domain,
                         .flags = flags};
    if (mh_snapdata_add_block(snap, &b) < 0) {
        abort();
    }
}

static const uint64_t SIZES[] = {
    0, 1, 127, 128, 16383, 16384, 4096, (1ull << 32) + 5, 48, UINT64_MAX};
#define NSIZES (sizeof(SIZES) / sizeof(SIZES[0]))

/* A small snapshot for truncation, corruption and fuzz seeds; nblocks
 * blocks spread over its tracebacks. */
static mh_snapdata_t *
make_small(size_t nblocks)
{
    mh_snapdata_t *snap = mh_snapdata_new();
    if (snap == NULL) {
        abort();
    }
    snap->python_hexversion = 0x030C04F0;
    snap->traceback_limit = 10;
    snap->sample_mean = 0;
    snap->timestamp = 1732540000.25;
    uint32_t file = add_string(snap, "app.py", 6);
    uint32_t f1 = add_string(snap, "main", 4);
    uint32_t f2 = add_string(snap, "caf\xc3\xa9", 5);
    uint32_t frames[3] = {add_frame(snap, file, f1, 12),
                          add_frame(snap, file, f2, 7),
                          add_frame(snap, file, f1, -1)};
    add_traceback(snap, frames, 2, 2);
    add_traceback(snap, frames + 1, 2, 40);
    for (size_t i = 0; i < nblocks; i++) {
        add_block(snap, SIZES[i % NSIZES], (uint32_t)(i % 3),
                  (uint16_t)(i % 5), (uint8_t)(i % MH_DOMAIN_COUNT), 0);
    }
    return snap;
}

static void
set_attributes(mh_snapdata_t *snap, const char *text)
{
    if (mh_snapdata_set_attributes(snap, text, strlen(text)) < 0) {
        abort();
    }
}

/* Attributes text with 2-, 3- and 4-byte UTF-8 and a lone surrogate. */
#define RICH_ATTRIBUTES \
    "{\"name\": \"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x90\x8d \xed\xb2\x80\"}"

/* Everything the format has to carry, at its edges. */
static mh_snapdata_t *
make_rich(void)
{
    mh_snapdata_t *snap = mh_snapdata_new();
    if (snap == NULL) {
        abort();
    }
    snap->python_hexversion = 0x030D00F0;
    snap->traceback_limit = 65535;
    snap->sample_mean = 262144;
    snap->timestamp = -1234.5e-3;
    char long_name[300];
    memset(long_name, 'x', sizeof(long_name));
    const char *const strs[] = {
        "", /* a second empty string */
        "/usr/lib/python3.13/re/_parser.py",
        "caf\xc3\xa9",              /* 2-byte UTF-8 */
        "\xe6\x97\xa5\xe6\x9c\xac", /* 3-byte */
        "\xf0\x9f\x90\x8d",         /* 4-byte */
        "\xed\xb2\x80",             /* lone surrogate U+DC80, surrogatepass */
        "<module>",
    };
    uint32_t s[8];
    for (int i = 0; i < 7; i++) {
        s[i] = add_string(snap, strs[i], strlen(strs[i]));
    }
    s[7] = add_string(snap, long_name, sizeof(long_name));
    const int32_t lines[] = {0, 1, -1, 63, 64, -65, INT32_MAX, INT32_MIN};
    uint32_t fr[8];
    for (int i = 0; i < 8; i++) {
        fr[i] = add_frame(snap, s[i], s[7 - i], lines[i]);
    }
    uint32_t ids[300];
    for (int i = 0; i < 300; i++) {
        ids[i] = fr[(i * 5) % 8];
    }
    uint32_t tbs[6];
    tbs[0] = 0;
    tbs[1] = add_traceback(snap, ids, 1, 1);
    tbs[2] = add_traceback(snap, ids, 3, 3);
    tbs[3] = add_traceback(snap, ids + 2, 2, 100); /* truncated */
    tbs[4] = add_traceback(snap, ids, 300, 65535); /* saturated total */
    tbs[5] = add_traceback(snap, ids + 1, 7, 9);
    /* Every generation, every domain, sizes at the varint edges, a few
     * nonzero (reserved) flags. */
    for (uint32_t g = 0; g <= 65535; g++) {
        add_block(snap, SIZES[g % NSIZES], tbs[g % 6], (uint16_t)g,
                  (uint8_t)(g % MH_DOMAIN_COUNT), g % 1000 == 0 ? 0x5 : 0);
    }
    for (int i = 0; i < 1000; i++) {
        add_block(snap, 16 + (uint64_t)i, tbs[1], 3, MH_DOMAIN_OBJ, 0);
    }
    set_attributes(snap, RICH_ATTRIBUTES);
    return snap;
}

/* ---- comparing snapshots ----------------------------------------------- */

static int
block_cmp(const void *pa, const void *pb)
{
    const mh_snap_block_t *a = pa, *b = pb;
    if (a->traceback != b->traceback) {
        return a->traceback < b->traceback ? -1 : 1;
    }
    if (a->domain != b->domain) {
        return a->domain < b->domain ? -1 : 1;
    }
    if (a->generation != b->generation) {
        return a->generation < b->generation ? -1 : 1;
    }
    if (a->flags != b->flags) {
        return a->flags < b->flags ? -1 : 1;
    }
    if (a->size != b->size) {
        return a->size < b->size ? -1 : 1;
    }
    return 0;
}

static mh_snap_block_t *
sorted_blocks(const mh_snapdata_t *snap)
{
    mh_snap_block_t *b = malloc(snap->nblocks * sizeof(*b) + 1);
    if (b == NULL) {
        abort();
    }
    if (snap->nblocks) {
        memcpy(b, snap->blocks, snap->nblocks * sizeof(*b));
    }
    qsort(b, snap->nblocks, sizeof(*b), block_cmp);
    return b;
}

/* NULL when a and b hold the same snapshot (blocks as a multiset), else
 * what differs. */
static const char *
snap_diff(const mh_snapdata_t *a, const mh_snapdata_t *b)
{
    if (a->python_hexversion != b->python_hexversion ||
        a->traceback_limit != b->traceback_limit ||
        a->sample_mean != b->sample_mean ||
        memcmp(&a->timestamp, &b->timestamp, sizeof(double)) != 0) {
        return "header";
    }
    if (a->nstrings != b->nstrings || a->string_bytes != b->string_bytes) {
        return "string count";
    }
    for (size_t s = 0; s <= a->nstrings; s++) {
        if (a->string_offsets[s] != b->string_offsets[s]) {
            return "string offsets";
        }
    }
    if (a->string_bytes &&
        memcmp(a->string_data, b->string_data, a->string_bytes) != 0) {
        return "string bytes";
    }
    if (a->nframes != b->nframes ||
        (a->nframes && memcmp(a->frames, b->frames,
                              a->nframes * sizeof(mh_snap_frame_t)) != 0)) {
        return "frames";
    }
    if (a->ntracebacks != b->ntracebacks) {
        return "traceback count";
    }
    for (size_t t = 0; t < a->ntracebacks; t++) {
        const mh_snap_traceback_t *x = &a->tracebacks[t];
        const mh_snap_traceback_t *y = &b->tracebacks[t];
        if (x->nframe != y->nframe || x->total_nframe != y->total_nframe) {
            return "traceback frame counts";
        }
        for (size_t k = 0; k < x->nframe; k++) {
            if (a->frame_ids[x->first + k] != b->frame_ids[y->first + k]) {
                return "traceback frames";
            }
        }
    }
    if ((a->attributes == NULL) != (b->attributes == NULL) ||
        a->attributes_len != b->attributes_len ||
        (a->attributes_len &&
         memcmp(a->attributes, b->attributes, a->attributes_len) != 0)) {
        return "attributes";
    }
    if (a->nblocks != b->nblocks) {
        return "block count";
    }
    mh_snap_block_t *x = sorted_blocks(a), *y = sorted_blocks(b);
    int same = a->nblocks == 0 ||
               memcmp(x, y, a->nblocks * sizeof(mh_snap_block_t)) == 0;
    free(x);
    free(y);
    return same ? NULL : "blocks";
}

/* ---- helpers over encoded files ---------------------------------------- */

static uint8_t *
encode(const mh_snapdata_t *snap, size_t *len)
{
    uint8_t *buf;
    char err[256];
    if (mh_snapfile_encode(snap, &buf, len, err, sizeof(err)) < 0) {
        fprintf(stderr, "encode failed: %s\n", err);
        abort();
    }
    return buf;
}

/* Decode from a heap copy of exactly len bytes, so that ASan catches any
 * read past the end. */
static mh_snapdata_t *
decode_exact(const uint8_t *data, size_t len, char *err, size_t err_len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }
    if (len) {
        memcpy(copy, data, len);
    }
    err[0] = '\0';
    mh_snapdata_t *snap =
        mh_snapfile_decode(len ? copy : NULL, len, err, err_len);
    free(copy);
    return snap;
}

/* Bitwise CRC-32C, independent of crc32c.c's table-driven one. */
static uint32_t
crc32c_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
    }
    return ~c;
}

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t
le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

static void
put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void
put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* Make buf[0..len) self-consistent again: file size and checksum. */
static void
reseal(uint8_t *buf, size_t len)
{
    if (len >= 52) {
        put_le64(buf + 16, len);
        put_le32(buf + len - 4, crc32c_ref(buf, len - 4));
    }
}

/* ---- tests ------------------------------------------------------------- */

static void
test_checksum(void)
{
    CHECK(crc32c_ref((const uint8_t *)"123456789", 9) == 0xE3069283u);
    mh_snapdata_t *snap = make_small(40);
    size_t len;
    uint8_t *buf = encode(snap, &len);
    CHECK(le32(buf + len - 4) == crc32c_ref(buf, len - 4));
    free(buf);
    mh_snapdata_free(snap);
}

static void
test_empty_round_trip(void)
{
    char err[256];
    mh_snapdata_t *snap = mh_snapdata_new();
    size_t len;
    uint8_t *buf = encode(snap, &len);
    /* header 48 + strings 4 + frames 3 + tracebacks 6 + blocks 3 + end 2
     * + checksum 4 */
    CHECK(len == 70);
    mh_snapdata_t *back = decode_exact(buf, len, err, sizeof(err));
    CHECK(back != NULL);
    if (back) {
        CHECK(snap_diff(snap, back) == NULL);
        CHECK(back->nblocks == 0 && back->ntracebacks == 1 &&
              back->nstrings == 1);
    }
    mh_snapdata_free(back);
    mh_snapdata_free(snap);
    free(buf);
}

static void
test_rich_round_trip(void)
{
    char err[256];
    mh_snapdata_t *snap = make_rich();
    CHECK(mh_snapdata_validate(snap) == NULL);
    size_t len;
    uint8_t *buf = encode(snap, &len);
    mh_snapdata_t *back = decode_exact(buf, len, err, sizeof(err));
    if (!CHECK(back != NULL)) {
        fprintf(stderr, "  decode: %s\n", err);
        goto done;
    }
    const char *diff = snap_diff(snap, back);
    if (!CHECK(diff == NULL)) {
        fprintf(stderr, "  differs in %s\n", diff);
    }
    CHECK(mh_snapdata_validate(back) == NULL);
    /* The reader returns blocks grouped: traceback never decreases. */
    int grouped = 1;
    for (size_t i = 1; i < back->nblocks; i++) {
        grouped &= back->blocks[i - 1].traceback <= back->blocks[i].traceback;
    }
    CHECK(grouped);
    /* Re-encoding the decoded snapshot gives the same bytes. */
    size_t len2;
    uint8_t *buf2 = encode(back, &len2);
    CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
    free(buf2);
done:
    mh_snapdata_free(back);
    mh_snapdata_free(snap);
    free(buf);
}

static void
test_header_layout(void)
{
    mh_snapdata_t *snap = make_small(10);
    size_t len;
    uint8_t *buf = encode(snap, &len);
    static const uint8_t magic[8] = {0x89, 'M',  'H',  'S',
                                     '\r', '\n', 0x1a, '\n'};
    CHECK(memcmp(buf, magic, 8) == 0);
    CHECK(buf[8] == 1 && buf[9] == 0); /* version 1, u16 LE */
    CHECK(buf[10] == sizeof(void *));
    CHECK(buf[11] == 0 && le32(buf + 12) == 0);
    CHECK(le64(buf + 16) == len);
    CHECK(le32(buf + 24) == 0x030C04F0);
    CHECK(le32(buf + 28) == 10);
    CHECK(le64(buf + 32) == 0);
    double ts;
    uint64_t bits = le64(buf + 40);
    memcpy(&ts, &bits, sizeof(ts));
    CHECK(ts == 1732540000.25);
    CHECK(buf[48] == 1);                           /* strings section first */
    CHECK(buf[len - 6] == 0 && buf[len - 5] == 0); /* END, length 0 */
    free(buf);
    mh_snapdata_free(snap);
}

static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void
test_files(void)
{
    char err[512];
    char dir[] = "/tmp/test_snapfile.XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL)) {
        return;
    }
    char path[600], missing[600];
    snprintf(path, sizeof(path), "%s/snap.mhs", dir);
    snprintf(missing, sizeof(missing), "%s/no/such/dir/snap.mhs", dir);
    mh_snapdata_t *snap = make_rich();
    mh_snapdata_t *small = make_small(5);

    CHECK(mh_snapfile_write(small, path, err, sizeof(err)) == 0);
    /* Overwrite through the temporary-and-rename path. */
    CHECK(mh_snapfile_write(snap, path, err, sizeof(err)) == 0);
    CHECK(count_entries(dir) == 1); /* no temporary file left behind */
    mh_snapdata_t *back = mh_snapfile_read(path, err, sizeof(err));
    if (CHECK(back != NULL)) {
        CHECK(snap_diff(snap, back) == NULL);
    }
    mh_snapdata_free(back);

    /* The rename replaces a symlink at the target instead of writing
     * through it, and the new file's mode is 0666 & ~umask. */
    char elsewhere[600];
    snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", dir);
    FILE *other = fopen(elsewhere, "w");
    if (CHECK(other != NULL)) {
        fputs("keep", other);
        fclose(other);
    }
    unlink(path);
    CHECK(symlink(elsewhere, path) == 0);
    CHECK(mh_snapfile_write(small, path, err, sizeof(err)) == 0);
    struct stat st;
    mode_t mask = umask(0);
    umask(mask);
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == (0666 & ~mask));
    CHECK(stat(elsewhere, &st) == 0 && st.st_size == 4);
    unlink(elsewhere);
    CHECK(count_entries(dir) == 1);

    errno = 0;
    CHECK(mh_snapfile_write(snap, missing, err, sizeof(err)) == -1);
    CHECK(errno == ENOENT);
    CHECK(strstr(err, strerror(ENOENT)) != NULL);
    errno = 0;
    CHECK(mh_snapfile_read(missing, err, sizeof(err)) == NULL);
    CHECK(errno == ENOENT);
    CHECK(strstr(err, "cannot open") != NULL);
    CHECK(mh_snapfile_read(dir, err, sizeof(err)) == NULL);
    CHECK(strstr(err, strerror(EISDIR)) != NULL);

    FILE *f = fopen(path, "w");
    if (CHECK(f != NULL)) {
        fputs("# not a snapshot\n", f);
        fclose(f);
    }
    CHECK(mh_snapfile_read(path, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "bad magic") != NULL);
    f = fopen(path, "w");
    if (CHECK(f != NULL)) {
        fclose(f);
    }
    CHECK(mh_snapfile_read(path, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "empty file") != NULL);

    unlink(path);
    CHECK(count_entries(dir) == 0);
    rmdir(dir);
    mh_snapdata_free(snap);
    mh_snapdata_free(small);
}

static void
test_truncations(void)
{
    char err[256];
    mh_snapdata_t *snap = make_small(30);
    size_t len;
    uint8_t *buf = encode(snap, &len);
    int all_fail = 1, all_said = 1;
    for (size_t n = 0; n < len; n++) {
        mh_snapdata_t *s = decode_exact(buf, n, err, sizeof(err));
        if (s != NULL) {
            all_fail = 0;
            fprintf(stderr, "  truncation to %zu bytes decoded\n", n);
            mh_snapdata_free(s);
        }
        all_said &= err[0] != '\0';
    }
    CHECK(all_fail);
    CHECK(all_said);
    decode_exact(buf, 20, err, sizeof(err));
    CHECK(strstr(err, "truncated file") != NULL);
    decode_exact(buf, len - 1, err, sizeof(err));
    CHECK(strstr(err, "truncated file") != NULL);
    decode_exact(buf, 8, err, sizeof(err));
    CHECK(strstr(err, "truncated file") != NULL);
    free(buf);
    mh_snapdata_free(snap);
}

/* Every single-byte change, first as is (the checksum must catch it), then
 * with the file size and checksum made consistent again (the parser must
 * catch it or produce a valid snapshot). */
static void
test_corruptions(void)
{
    char err[256];
    mh_snapdata_t *snap = make_small(12);
    size_t len;
    uint8_t *buf = encode(snap, &len);
    uint8_t *copy = malloc(len);
    size_t raw_ok = 0, sealed_ok = 0, sealed_total = 0;
    int all_valid = 1;
    for (size_t pos = 0; pos < len; pos++) {
        for (unsigned v = 0; v < 256; v++) {
            if (v == buf[pos]) {
                continue;
            }
            for (int sealed = 0; sealed < 2; sealed++) {
                memcpy(copy, buf, len);
                copy[pos] = (uint8_t)v;
                if (sealed) {
                    if (pos >= len - 4 || (pos >= 16 && pos < 24)) {
                        continue; /* resealing would undo the change */
                    }
                    reseal(copy, len);
                    sealed_total++;
                }
                mh_snapdata_t *s = decode_exact(copy, len, err, sizeof(err));
                if (s != NULL) {
                    all_valid &= mh_snapdata_validate(s) == NULL;
                    raw_ok += !sealed;
                    sealed_ok += sealed;
                    mh_snapdata_free(s);
                }
                else if (err[0] == '\0') {
                    all_valid = 0;
                }
            }
        }
    }
    CHECK(all_valid);
    CHECK(raw_ok == 0); /* CRC-32C catches every single-byte error */
    printf(
        "  corruptions: %zu bytes x 255 values; with resealed checksum "
        "%zu of %zu still decode (all validated)\n",
        len, sealed_ok, sealed_total);
    free(copy);
    free(buf);
    mh_snapdata_free(snap);
}

/* ---- hand-made hostile files ------------------------------------------- */

typedef struct {
    uint8_t b[1024];
    size_t n;
} fb_t;

static void
fb_bytes(fb_t *f, const void *p, size_t n)
{
    if (f->n + n > sizeof(f->b)) {
        abort();
    }
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void
fb_u8(fb_t *f, unsigned v)
{
    uint8_t b = (uint8_t)v;
    fb_bytes(f, &b, 1);
}

static void
fb_varint(fb_t *f, uint64_t v)
{
    while (v >= 0x80) {
        fb_u8(f, (unsigned)(v & 0x7f) | 0x80);
        v >>= 7;
    }
    fb_u8(f, (unsigned)v);
}

static void
fb_varints(fb_t *f, size_t n, const uint64_t *v)
{
    for (size_t i = 0; i < n; i++) {
        fb_varint(f, v[i]);
    }
}

static void
fb_header(fb_t *f)
{
    uint8_t h[48] = {0x89, 'M', 'H', 'S', '\r', '\n', 0x1a, '\n', 1, 0, 8};
    put_le32(h + 24, 0x030C00F0);
    fb_bytes(f, h, sizeof(h));
}

static void
fb_section(fb_t *f, unsigned tag, const fb_t *payload)
{
    fb_u8(f, tag);
    fb_varint(f, payload->n);
    fb_bytes(f, payload->b, payload->n);
}

static void
fb_finish(fb_t *f)
{
    fb_bytes(f, "\0\0\0\0", 4);
    reseal(f->b, f->n);
}

/* Section payloads of a minimal valid file; tests replace one of them. */
typedef struct {
    fb_t strings, frames, tracebacks, blocks;
} parts_t;

static void
parts_default(parts_t *p)
{
    memset(p, 0, sizeof(*p));
    fb_varints(&p->strings, 3, (uint64_t[]){2, 0, 1});
    fb_u8(&p->strings, 'a');
    fb_varints(&p->frames, 4, (uint64_t[]){1, 1, 0, 2}); /* "a" line 1 */
    fb_varints(&p->tracebacks, 7, (uint64_t[]){2, 1, 0, 0, 1, 0, 0});
    /* 1 block: traceback 1, 1 group of kind 2 (domain 2, flags 0),
     * generation 0, count 1, size 64. */
    fb_varints(&p->blocks, 7, (uint64_t[]){1, 1, 1, 2, 0, 1, 64});
}

static void
parts_build(fb_t *f, const parts_t *p)
{
    memset(f, 0, sizeof(*f));
    fb_header(f);
    fb_section(f, 1, &p->strings);
    fb_section(f, 2, &p->frames);
    fb_section(f, 3, &p->tracebacks);
    fb_section(f, 4, &p->blocks);
    fb_varints(f, 2, (uint64_t[]){0, 0});
    fb_finish(f);
}

static void
expect_error(const fb_t *f, const char *what)
{
    char err[256];
    mh_snapdata_t *s = decode_exact(f->b, f->n, err, sizeof(err));
    if (!CHECK(s == NULL && strstr(err, what) != NULL)) {
        fprintf(stderr, "  wanted \"%s\", got %s \"%s\"\n", what,
                s ? "success" : "error", err);
    }
    mh_snapdata_free(s);
}

static void
expect_blocks_error(const uint64_t *v, size_t n, const char *what)
{
    parts_t p;
    fb_t f;
    parts_default(&p);
    memset(&p.blocks, 0, sizeof(p.blocks));
    fb_varints(&p.blocks, n, v);
    parts_build(&f, &p);
    expect_error(&f, what);
}

static void
test_hostile(void)
{
    char err[256];
    parts_t p;
    fb_t f, t;

    /* The minimal file itself is valid. */
    parts_default(&p);
    parts_build(&f, &p);
    mh_snapdata_t *s = decode_exact(f.b, f.n, err, sizeof(err));
    if (CHECK(s != NULL)) {
        CHECK(s->nblocks == 1 && s->blocks[0].size == 64 &&
              s->blocks[0].traceback == 1 && s->blocks[0].domain == 2 &&
              s->frames[0].lineno == 1 && s->nstrings == 2);
    }
    else {
        fprintf(stderr, "  minimal file: %s\n", err);
    }
    mh_snapdata_free(s);

    /* Header problems. */
    t = f;
    t.n = 0;
    expect_error(&t, "empty file");
    t.n = 8;
    expect_error(&t, "truncated file");
    t = f;
    t.b[1] = 'X';
    expect_error(&t, "not a memhound snapshot (bad magic)");
    t = f;
    t.b[8] = 7;
    expect_error(&t, "unsupported format version 7 (this memhound reads 1)");
    t = f;
    t.b[t.n++] = 0;
    expect_error(&t, "1 bytes of trailing data");
    t = f;
    t.b[60] ^= 1;
    expect_error(&t, "checksum mismatch");
    t = f;
    t.b[10] = 5;
    reseal(t.b, t.n);
    expect_error(&t, "pointer size 5");
    t = f;
    t.b[13] = 1;
    reseal(t.b, t.n);
    expect_error(&t, "header flags");
    t = f;
    put_le64(t.b + 40, 0x7FF0000000000000ull); /* +inf */
    reseal(t.b, t.n);
    expect_error(&t, "timestamp");

    /* Section order. */
    memset(&f, 0, sizeof(f));
    parts_default(&p);
    fb_header(&f);
    fb_section(&f, 1, &p.strings);
    fb_section(&f, 9, &p.frames);
    fb_finish(&f);
    expect_error(&f, "unknown section tag 9");
    memset(&f, 0, sizeof(f));
    fb_header(&f);
    fb_section(&f, 1, &p.strings);
    fb_section(&f, 1, &p.strings);
    fb_finish(&f);
    expect_error(&f, "duplicate strings section");
    memset(&f, 0, sizeof(f));
    fb_header(&f);
    fb_section(&f, 1, &p.strings);
    fb_section(&f, 3, &p.tracebacks);
    fb_finish(&f);
    expect_error(&f, "missing frames section");
    memset(&f, 0, sizeof(f));
    fb_header(&f);
    fb_section(&f, 1, &p.strings);
    fb_section(&f, 2, &p.frames);
    fb_section(&f, 3, &p.tracebacks);
    fb_section(&f, 4, &p.blocks);
    fb_finish(&f);
    expect_error(&f, "missing end section");
    memset(&f, 0, sizeof(f));
    fb_header(&f);
    fb_finish(&f);
    expect_error(&f, "cannot hold a snapshot");
    memset(&f, 0, sizeof(f));
    fb_header(&f);
    fb_varints(&f, 2, (uint64_t[]){0, 0});
    fb_finish(&f);
    expect_error(&f, "missing strings section (found the end section");
    memset(&f, 0, sizeof(f));
    fb_header(&f);
    fb_u8(&f, 1);
    fb_varint(&f, 1200);
    fb_bytes(&f, p.strings.b, p.strings.n);
    fb_finish(&f);
    expect_error(&f, "truncated file: strings section needs 1200 bytes");
    parts_build(&f, &p);
    f.n -= 4;
    f.b[f.n - 1] = 1; /* END with a length */
    fb_u8(&f, 0);
    fb_finish(&f);
    expect_error(&f, "unexpected bytes after the end section");
    parts_default(&p);
    fb_u8(&p.frames, 0);
    parts_build(&f, &p);
    expect_error(&f, "frames section has 1 unused bytes");

    /* Huge counts in tiny files. */
    parts_default(&p);
    memset(&p.strings, 0, sizeof(fb_t));
    fb_varint(&p.strings, 1ull << 40);
    parts_build(&f, &p);
    expect_error(&f, "cannot fit");
    parts_default(&p);
    memset(&p.frames, 0, sizeof(fb_t));
    fb_varints(&p.frames, 4, (uint64_t[]){1000, 0, 0, 0});
    parts_build(&f, &p);
    expect_error(&f, "1000 frames cannot fit");
    parts_default(&p);
    memset(&p.tracebacks, 0, sizeof(fb_t));
    fb_varints(&p.tracebacks, 4, (uint64_t[]){1, UINT64_MAX, 0, 0});
    parts_build(&f, &p);
    expect_error(&f, "frame ids cannot fit");
    expect_blocks_error((uint64_t[]){1ull << 60, 1}, 2, "cannot fit");
    expect_blocks_error((uint64_t[]){UINT64_MAX, 1}, 2, "cannot fit");
    expect_blocks_error((uint64_t[]){0, 1ull << 50}, 2, "unused bytes");

    /* Indices out of range, with a correct checksum. */
    expect_blocks_error((uint64_t[]){1, 99, 1, 0, 0, 1, 5}, 7,
                        "block 0 names traceback 99 of 2");
    expect_blocks_error((uint64_t[]){2, 1, 1, 0, 0, 1, 5, 40, 1, 0, 0, 1, 5},
                        13, "block 1 names traceback 40 of 2");
    parts_default(&p);
    memset(&p.frames, 0, sizeof(fb_t));
    fb_varints(&p.frames, 4, (uint64_t[]){1, 0, 7, 0});
    parts_build(&f, &p);
    expect_error(&f, "frame 0 names string 7 of 2 (function name)");
    parts_default(&p);
    memset(&p.tracebacks, 0, sizeof(fb_t));
    fb_varints(&p.tracebacks, 7, (uint64_t[]){2, 1, 0, 0, 1, 0, 3});
    parts_build(&f, &p);
    expect_error(&f, "traceback 1 names frame 3 of 1");

    /* Field values out of range. */
    expect_blocks_error((uint64_t[]){1, 1, 1, 1024, 0, 1, 5}, 7,
                        "unknown domain or flags (kind 1024)");
    expect_blocks_error((uint64_t[]){1, 1, 1, 0, 65536, 1, 5}, 7,
                        "generation 65536");
    expect_blocks_error((uint64_t[]){1, 1, 1, 0, 0, 0, 5}, 7,
                        "a group of 0 blocks");
    expect_blocks_error((uint64_t[]){1, 1, 0, 0, 0, 1, 5}, 7,
                        "traceback 1 has 0 groups");
    expect_blocks_error((uint64_t[]){1, 1, 2, 0, 0, 1, 5}, 7,
                        "traceback 1 has 2 groups, 1 blocks are left");
    expect_blocks_error((uint64_t[]){3, 1, 1, 0, 0, 2, 5, 6}, 8,
                        "varint traceback at offset");
    expect_blocks_error((uint64_t[]){1, 1, 1, 0, 0, 2, 5, 6}, 8,
                        "a group of 2 blocks");
    expect_blocks_error((uint64_t[]){1, 1}, 2, "runs past the end");
    parts_default(&p);
    memset(&p.tracebacks, 0, sizeof(fb_t));
    fb_varints(&p.tracebacks, 5, (uint64_t[]){2, 0, 0, 0, 70000});
    fb_varints(&p.tracebacks, 1, (uint64_t[]){0});
    parts_build(&f, &p);
    expect_error(&f, "at most 65535");
    parts_default(&p);
    memset(&p.tracebacks, 0, sizeof(fb_t));
    fb_varints(&p.tracebacks, 7, (uint64_t[]){2, 1, 1, 0, 0, 0, 0});
    parts_build(&f, &p);
    expect_error(&f, "traceback 0 must be empty");
    parts_default(&p);
    memset(&p.frames, 0, sizeof(fb_t));
    fb_varints(&p.frames, 4, (uint64_t[]){1, 1, 0, 1ull << 32});
    parts_build(&f, &p);
    expect_error(&f, "line number");
    parts_default(&p);
    memset(&p.strings, 0, sizeof(fb_t));
    fb_varint(&p.strings, 0);
    parts_build(&f, &p);
    expect_error(&f, "no strings");
    parts_default(&p);
    memset(&p.strings, 0, sizeof(fb_t));
    fb_varints(&p.strings, 3, (uint64_t[]){2, 0, 2});
    fb_bytes(&p.strings, "\xc0\x80", 2); /* overlong NUL */
    parts_build(&f, &p);
    expect_error(&f, "string 1 is not valid UTF-8");
    parts_default(&p);
    memset(&p.strings, 0, sizeof(fb_t));
    fb_varints(&p.strings, 3, (uint64_t[]){2, 0, 9});
    fb_bytes(&p.strings, "abc", 3);
    parts_build(&f, &p);
    expect_error(&f, "string 1 needs 9 bytes, 3 remain");
    parts_default(&p);
    memset(&p.tracebacks, 0, sizeof(fb_t));
    fb_varints(&p.tracebacks, 2, (uint64_t[]){0, 0});
    parts_build(&f, &p);
    expect_error(&f, "no tracebacks");

    /* Malformed varints. */
    static const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x80, 0x01};
    static const uint8_t ten_big[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0x02};
    static const uint8_t overlong[] = {0x80, 0x00};
    const struct {
        const uint8_t *b;
        size_t n;
        const char *what;
    } bad[] = {{eleven, sizeof(eleven), "longer than 10 bytes"},
               {ten_big, sizeof(ten_big), "longer than 10 bytes"},
               {overlong, sizeof(overlong), "overlong"}};
    for (size_t i = 0; i < 3; i++) {
        /* as a block size ... */
        parts_default(&p);
        memset(&p.blocks, 0, sizeof(fb_t));
        fb_varints(&p.blocks, 6, (uint64_t[]){1, 1, 1, 0, 0, 1});
        fb_bytes(&p.blocks, bad[i].b, bad[i].n);
        fb_bytes(&p.blocks, "\0\0\0\0\0\0\0\0\0\0\0", 12 - bad[i].n);
        parts_build(&f, &p);
        expect_error(&f, bad[i].what);
        /* ... and as a section length. */
        memset(&f, 0, sizeof(f));
        fb_header(&f);
        fb_u8(&f, 1);
        fb_bytes(&f, bad[i].b, bad[i].n);
        fb_bytes(&f, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 14);
        fb_finish(&f);
        expect_error(&f, bad[i].what);
    }
}

static void
test_encode_rejects(void)
{
    char err[256];
    uint8_t *buf = (uint8_t *)&err; /* must be reset to NULL */
    size_t len = 1;
    mh_snapdata_t *snap = make_small(3);
    snap->blocks[1].traceback = 77;
    CHECK(mh_snapfile_encode(snap, &buf, &len, err, sizeof(err)) == -1);
    CHECK(buf == NULL && len == 0);
    CHECK(strstr(err, "invalid snapshot") != NULL);
    snap->blocks[1].traceback = 0;
    snap->timestamp = NAN;
    CHECK(mh_snapfile_encode(snap, &buf, &len, err, sizeof(err)) == -1);
    CHECK(strstr(err, "timestamp") != NULL);
    snap->timestamp = 0;
    add_string(snap, "\xff", 1);
    CHECK(mh_snapfile_encode(snap, &buf, &len, err, sizeof(err)) == -1);
    CHECK(strstr(err, "UTF-8") != NULL);
    mh_snapdata_free(snap);
}

/* ---- the attributes section -------------------------------------------- */

/* plain (a file without attributes) with an attributes section spliced in
 * before END: payload[0..n) under an announced length, resealed. */
static uint8_t *
splice_attributes(const uint8_t *plain, size_t plain_len, const void *payload,
                  size_t n, uint64_t announced, size_t *len)
{
    size_t k = plain_len - 6; /* END and the checksum follow */
    uint8_t *buf = malloc(k + 1 + 10 + n + 6);
    if (buf == NULL) {
        abort();
    }
    memcpy(buf, plain, k);
    buf[k++] = 5;
    for (; announced >= 0x80; announced >>= 7) {
        buf[k++] = (uint8_t)(announced | 0x80);
    }
    buf[k++] = (uint8_t)announced;
    if (n) {
        memcpy(buf + k, payload, n);
    }
    k += n;
    memset(buf + k, 0, 6);
    *len = k + 6;
    reseal(buf, *len);
    return buf;
}

static void
expect_spliced_error(const uint8_t *plain, size_t plain_len,
                     const void *payload, size_t n, uint64_t announced,
                     const char *what)
{
    char err[256];
    size_t len;
    uint8_t *buf =
        splice_attributes(plain, plain_len, payload, n, announced, &len);
    mh_snapdata_t *s = decode_exact(buf, len, err, sizeof(err));
    if (!CHECK(s == NULL && strstr(err, what) != NULL)) {
        fprintf(stderr, "  wanted \"%s\", got %s \"%s\"\n", what,
                s ? "success" : "error", err);
    }
    mh_snapdata_free(s);
    free(buf);
}

/* The sections of the minimal file in the order of tags (5: "{}"). */
static void
expect_sections_error(const unsigned *tags, size_t n, const char *what)
{
    parts_t p;
    fb_t f = {0}, attrs = {0}, none = {0};
    fb_bytes(&attrs, "{}", 2);
    parts_default(&p);
    const fb_t *payloads[6] = {&none,         &p.strings, &p.frames,
                               &p.tracebacks, &p.blocks,  &attrs};
    fb_header(&f);
    for (size_t i = 0; i < n; i++) {
        fb_section(&f, tags[i], payloads[tags[i] < 6 ? tags[i] : 5]);
    }
    fb_finish(&f);
    if (what != NULL) {
        expect_error(&f, what);
        return;
    }
    char err[256];
    mh_snapdata_t *s = decode_exact(f.b, f.n, err, sizeof(err));
    if (CHECK(s != NULL)) {
        CHECK(s->attributes_len == 2 && memcmp(s->attributes, "{}", 2) == 0);
    }
    else {
        fprintf(stderr, "  sections: %s\n", err);
    }
    mh_snapdata_free(s);
}

static void
test_attributes(void)
{
    char err[256];
    size_t base = mh_rawmem_in_use, len, plain_len;
    mh_snapdata_t *snap = make_small(12), *back;
    uint8_t *plain = encode(snap, &plain_len), *buf;
    size_t mem = mh_snapdata_memory(snap);

    /* An empty text and "{}" round-trip and differ from none; the section
     * is tag 5, a varint length and the text, just before END. */
    const char *texts[] = {"", "{}", RICH_ATTRIBUTES};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(texts[i]); /* < 128: a 1-byte length */
        set_attributes(snap, texts[i]);
        CHECK(mh_snapdata_memory(snap) == mem + n);
        buf = encode(snap, &len);
        CHECK(len == plain_len + 2 + n);
        CHECK(memcmp(buf + 48, plain + 48, plain_len - 54) == 0);
        CHECK(buf[len - 8 - n] == 5 && buf[len - 7 - n] == n);
        CHECK(memcmp(buf + len - 6 - n, texts[i], n) == 0);
        back = decode_exact(buf, len, err, sizeof(err));
        if (CHECK(back != NULL && back->attributes != NULL)) {
            CHECK(snap_diff(snap, back) == NULL);
            size_t len2;
            uint8_t *buf2 = encode(back, &len2);
            CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
            free(buf2);
        }
        mh_snapdata_free(back);
        free(buf);
    }
    /* Failing to replace the text keeps the old one. */
    mh_rawmem_fail_after = 0;
    CHECK(mh_snapdata_set_attributes(snap, "x", 1) == -1);
    mh_rawmem_fail_after = -1;
    CHECK(snap->attributes_len == strlen(RICH_ATTRIBUTES));
    CHECK(mh_snapdata_set_attributes(snap, NULL, 0) == 0);
    CHECK(snap->attributes == NULL && mh_snapdata_memory(snap) == mem);
    buf = encode(snap, &len);
    CHECK(len == plain_len && memcmp(buf, plain, len) == 0);
    free(buf);

    /* The size cap, on both sides. */
    size_t max = MH_SNAPDATA_MAX_ATTRIBUTES;
    char *big = malloc(max + 1);
    if (big == NULL) {
        abort();
    }
    memset(big, 'a', max + 1);
    CHECK(mh_snapdata_set_attributes(snap, big, max + 1) == -1);
    CHECK(snap->attributes == NULL);
    CHECK(mh_snapdata_set_attributes(snap, big, max) == 0);
    buf = encode(snap, &len);
    back = decode_exact(buf, len, err, sizeof(err));
    CHECK(back != NULL && back->attributes_len == max);
    mh_snapdata_free(back);
    free(buf);
    expect_spliced_error(plain, plain_len, big, max + 1, max + 1,
                         "attributes section: 16777217 bytes, at most "
                         "16777216");
    free(big);

    /* Hostile sections, checksum made valid. */
    buf = splice_attributes(plain, plain_len, "{}", 2, 2, &len);
    back = decode_exact(buf, len, err, sizeof(err));
    CHECK(back != NULL && back->attributes_len == 2);
    mh_snapdata_free(back);
    int all_fail = 1; /* every truncation */
    for (size_t n = 0; n < len; n++) {
        back = decode_exact(buf, n, err, sizeof(err));
        all_fail &= back == NULL && err[0] != '\0';
        mh_snapdata_free(back);
    }
    CHECK(all_fail);
    free(buf);
    expect_spliced_error(plain, plain_len, "{\xc0\x80}", 4, 4,
                         "attributes section: not valid UTF-8 (byte 1, at "
                         "offset");
    expect_spliced_error(plain, plain_len, "ab\xff", 3, 3,
                         "not valid UTF-8 (byte 2");
    expect_spliced_error(plain, plain_len, "a\xe6\x97", 3, 3,
                         "not valid UTF-8 (byte 1");
    expect_spliced_error(plain, plain_len, "{}", 2, 50,
                         "truncated file: attributes section needs 50 "
                         "bytes, 4 remain");
    expect_spliced_error(plain, plain_len, "{}", 2, 1,
                         "unknown section tag 125");
    expect_sections_error((unsigned[]){1, 2, 3, 4, 5, 0}, 6, NULL);
    expect_sections_error((unsigned[]){1, 2, 3, 5, 4, 0}, 6,
                          "missing blocks section (found the attributes "
                          "section");
    expect_sections_error((unsigned[]){1, 2, 3, 4, 5, 5, 0}, 7,
                          "duplicate attributes section");
    expect_sections_error((unsigned[]){1, 2, 3, 4, 0, 5}, 6,
                          "unexpected bytes after the end section");
    expect_sections_error((unsigned[]){1, 2, 3, 4, 5}, 5,
                          "missing end section");
    expect_sections_error((unsigned[]){1, 2, 3, 4, 6, 0}, 6,
                          "unknown section tag 6");

    /* The writer refuses what the reader would. */
    set_attributes(snap, "ok \xed\xa0\x80"); /* a surrogate is fine */
    CHECK(mh_snapdata_validate(snap) == NULL);
    set_attributes(snap, "\xc0\x80");
    CHECK(mh_snapfile_encode(snap, &buf, &len, err, sizeof(err)) == -1);
    CHECK(strstr(err, "attributes are not valid UTF-8") != NULL);
    CHECK(mh_snapdata_set_attributes(snap, NULL, 0) == 0);
    snap->attributes_len = 3;
    CHECK(mh_snapdata_validate(snap) != NULL);
    snap->attributes_len = 0;

    free(plain);
    mh_snapdata_free(snap);
    CHECK(mh_rawmem_in_use == base);
}

/* Every allocation of decode and encode fails in turn: NULL / -1 with a
 * message, and every byte of bookkeeping memory returned. */
static void
test_alloc_failures(void)
{
    char err[256];
    mh_snapdata_t *snap = make_small(200);
    set_attributes(snap, RICH_ATTRIBUTES);
    size_t len;
    uint8_t *buf = encode(snap, &len);
    size_t base = mh_rawmem_in_use;
    int clean = 1, said = 1;
    long k;
    for (k = 0; k < 1000; k++) {
        mh_rawmem_fail_after = k;
        mh_snapdata_t *s = mh_snapfile_decode(buf, len, err, sizeof(err));
        mh_rawmem_fail_after = -1;
        if (s != NULL) {
            CHECK(snap_diff(snap, s) == NULL);
            mh_snapdata_free(s);
            break;
        }
        said &= strstr(err, "out of memory") != NULL;
        clean &= mh_rawmem_in_use == base;
    }
    CHECK(k > 3 && k < 1000);
    CHECK(said);
    CHECK(clean);

    said = clean = 1;
    for (k = 0; k < 1000; k++) {
        uint8_t *out;
        size_t out_len;
        mh_rawmem_fail_after = k;
        int rc = mh_snapfile_encode(snap, &out, &out_len, err, sizeof(err));
        mh_rawmem_fail_after = -1;
        clean &= mh_rawmem_in_use == base;
        if (rc == 0) {
            CHECK(out_len == len && memcmp(out, buf, len) == 0);
            free(out);
            break;
        }
        said &= strstr(err, "out of memory") != NULL && out == NULL;
    }
    CHECK(k > 0 && k < 1000);
    CHECK(said);
    CHECK(clean);

    /* Through files: no temporary file survives a failed write. */
    char dir[] = "/tmp/test_snapfile.XXXXXX";
    char path[600];
    if (CHECK(mkdtemp(dir) != NULL)) {
        snprintf(path, sizeof(path), "%s/snap.mhs", dir);
        int ok = 1;
        for (k = 0; k < 1000; k++) {
            mh_rawmem_fail_after = k;
            int rc = mh_snapfile_write(snap, path, err, sizeof(err));
            mh_rawmem_fail_after = -1;
            ok &= mh_rawmem_in_use == base;
            ok &= count_entries(dir) == (rc == 0);
            if (rc == 0) {
                break;
            }
        }
        CHECK(ok && k < 1000);
        for (k = 0; k < 1000; k++) {
            mh_rawmem_fail_after = k;
            errno = 0;
            mh_snapdata_t *s = mh_snapfile_read(path, err, sizeof(err));
            mh_rawmem_fail_after = -1;
            if (s != NULL) {
                mh_snapdata_free(s);
                break;
            }
            ok &= mh_rawmem_in_use == base;
            ok &= strstr(err, "out of memory") != NULL;
            ok &= k > 0 || errno == ENOMEM; /* the read buffer */
        }
        CHECK(ok && k > 1 && k < 1000);
        unlink(path);
        rmdir(dir);
    }
    free(buf);
    mh_snapdata_free(snap);
}

/* A large snapshot of small blocks costs about one byte per block. */
static void
test_compactness(void)
{
    char err[256];
    mh_snapdata_t *snap = make_small(0);
    for (uint32_t i = 0; i < 200000; i++) {
        add_block(snap, 16 + (i * 7919u) % 100, i % 3, (uint16_t)(i % 2),
                  MH_DOMAIN_OBJ, 0);
    }
    size_t len;
    uint8_t *buf = encode(snap, &len);
    CHECK(len < snap->nblocks + 200);
    mh_snapdata_t *back = decode_exact(buf, len, err, sizeof(err));
    CHECK(back != NULL && snap_diff(snap, back) == NULL);
    mh_snapdata_free(back);
    free(buf);
    mh_snapdata_free(snap);
}

/* Seeds for fuzz/corpus (see fuzz/README.md). */
static int
write_corpus(const char *dir)
{
    char err[256], path[1024];
    mh_snapdata_t *seeds[4] = {mh_snapdata_new(), make_small(12),
                               make_small(300), make_small(5)};
    const char *names[4] = {"empty.mhs", "small.mhs", "medium.mhs",
                            "attributes.mhs"};
    set_attributes(seeds[3], RICH_ATTRIBUTES);
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (mh_snapfile_write(seeds[i], path, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            rc = 1;
        }
        mh_snapdata_free(seeds[i]);
    }
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
        return write_corpus(argv[2]);
    }
    test_checksum();
    test_empty_round_trip();
    test_rich_round_trip();
    test_header_layout();
    test_files();
    test_truncations();
    test_corruptions();
    test_hostile();
    test_encode_rejects();
    test_attributes();
    test_alloc_failures();
    test_compactness();
    return check_report("test_snapfile");
}
