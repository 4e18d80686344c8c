/* test_capfile.c: plain-C tests of the capture file container (capfile.c,
 * docs/capture-format.md): round trips with and without snapshots, every
 * truncation and byte flip rejected with a message, section order rules,
 * and running out of memory at every allocation of the decoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "capfile.h"
#include "crc32c.h"
#include "rawmem.h"
#include "snapdata.h"
#include "check.h"

static mh_snapdata_t *
small_snapshot(void)
{
    mh_snapdata_t *snap = mh_snapdata_new();
    if (snap == NULL) {
        abort();
    }
    int64_t file = mh_snapdata_add_string(snap, "app.py", 6);
    int64_t func = mh_snapdata_add_string(snap, "handle", 6);
    int64_t frame =
        mh_snapdata_add_frame(snap, (uint32_t)file, (uint32_t)func, 12);
    uint32_t ids[1] = {(uint32_t)frame};
    int64_t tb = mh_snapdata_add_traceback(snap, ids, 1, 3);
    if (file < 0 || func < 0 || frame < 0 || tb < 0) {
        abort();
    }
    for (int i = 0; i < 20; i++) {
        mh_snap_block_t b = {.size = 100 + (uint64_t)i,
                             .traceback = (uint32_t)tb,
                             .generation = (uint16_t)(i % 3),
                             .domain = MH_DOMAIN_OBJ};
        if (mh_snapdata_add_block(snap, &b) < 0) {
            abort();
        }
    }
    snap->timestamp = 1700000000.5;
    snap->traceback_limit = 64;
    return snap;
}

static const char REPORT[] = "{\"format\":\"memhound-report\",\"leaks\":[]}";

static void
test_round_trip(void)
{
    mh_snapdata_t *snap = small_snapshot();
    char err[256];
    for (int mask = 0; mask < 4; mask++) {
        uint8_t *buf;
        size_t len;
        const mh_snapdata_t *peak = (mask & 1) ? snap : NULL;
        const mh_snapdata_t *exit = (mask & 2) ? snap : NULL;
        CHECK(mh_capfile_encode(REPORT, strlen(REPORT), peak, exit, &buf, &len,
                                err, sizeof(err)) == 0);
        CHECK(memcmp(buf, MH_CAPFILE_MAGIC, MH_CAPFILE_MAGIC_SIZE) == 0);
        CHECK(mh_le_load(buf + MH_CAPHDR_FILE_SIZE, 8) == len);
        mh_capture_t *cap = mh_capfile_decode(buf, len, err, sizeof(err));
        if (CHECK(cap != NULL)) {
            CHECK(cap->report_len == strlen(REPORT));
            CHECK(strcmp(cap->report, REPORT) == 0);
            CHECK((cap->peak != NULL) == (peak != NULL));
            CHECK((cap->exit != NULL) == (exit != NULL));
            if (cap->exit) {
                CHECK(cap->exit->nblocks == 20);
                CHECK(cap->exit->timestamp == 1700000000.5);
            }
            mh_capture_free(cap);
        }
        /* Every truncation and every single-bit flip is an error with a
         * message. */
        for (size_t n = 0; n < len; n++) {
            err[0] = '\0';
            CHECK(mh_capfile_decode(buf, n, err, sizeof(err)) == NULL);
            CHECK(err[0] != '\0');
        }
        for (size_t i = 0; i < len; i++) {
            buf[i] ^= 0x08;
            err[0] = '\0';
            CHECK(mh_capfile_decode(buf, len, err, sizeof(err)) == NULL);
            CHECK(err[0] != '\0');
            buf[i] ^= 0x08;
        }
        free(buf);
    }
    mh_snapdata_free(snap);
}

/* A file of the given sections (tag, payload), header and checksum right. */
static uint8_t *
build(const uint8_t *sections, size_t n, size_t *len)
{
    *len = MH_CAPHDR_SIZE + n + MH_CAPFILE_CHECKSUM_SIZE;
    uint8_t *buf = calloc(1, *len);
    if (buf == NULL) {
        abort();
    }
    memcpy(buf, MH_CAPFILE_MAGIC, MH_CAPFILE_MAGIC_SIZE);
    mh_le_store(buf + MH_CAPHDR_VERSION, MH_CAPFILE_VERSION, 2);
    mh_le_store(buf + MH_CAPHDR_FILE_SIZE, *len, 8);
    memcpy(buf + MH_CAPHDR_SIZE, sections, n);
    mh_le_store(buf + *len - 4, mh_crc32c_compute(buf, *len - 4), 4);
    return buf;
}

static void
expect_error(const uint8_t *sections, size_t n, const char *needle)
{
    size_t len;
    char err[256] = "";
    uint8_t *buf = build(sections, n, &len);
    mh_capture_t *cap = mh_capfile_decode(buf, len, err, sizeof(err));
    CHECK(cap == NULL);
    if (!CHECK(strstr(err, needle) != NULL)) {
        fprintf(stderr, "  expected \"%s\" in \"%s\"\n", needle, err);
    }
    mh_capture_free(cap);
    free(buf);
}

static void
test_sections(void)
{
    static const uint8_t only_end[] = {0, 0};
    static const uint8_t twice[] = {1, 1, '1', 1, 1, '2', 0, 0};
    static const uint8_t order[] = {1, 0, 3, 0, 2, 0, 0, 0};
    static const uint8_t unknown[] = {1, 0, 7, 0, 0, 0};
    static const uint8_t bad_utf8[] = {1, 2, 0xc0, 0x80, 0, 0};
    static const uint8_t too_long[] = {1, 9, 'x', 0, 0};
    static const uint8_t overlong[] = {1, 0x80, 0x00, 0, 0};
    static const uint8_t no_end[] = {1, 1, 'x'};
    expect_error(only_end, sizeof(only_end), "missing report section");
    expect_error(twice, sizeof(twice), "duplicate or out of order");
    expect_error(order, sizeof(order), "embedded snapshot");
    expect_error(unknown, sizeof(unknown), "unknown section tag 7");
    expect_error(bad_utf8, sizeof(bad_utf8), "not valid UTF-8");
    expect_error(too_long, sizeof(too_long), "needs 9 bytes");
    expect_error(overlong, sizeof(overlong), "overlong");
    expect_error(no_end, sizeof(no_end), "no end section");

    static const uint8_t empty_report[] = {1, 0, 0, 0};
    size_t len;
    char err[256];
    uint8_t *buf = build(empty_report, sizeof(empty_report), &len);
    mh_capture_t *cap = mh_capfile_decode(buf, len, err, sizeof(err));
    if (CHECK(cap != NULL)) {
        CHECK(cap->report_len == 0 && cap->report[0] == '\0');
        CHECK(cap->peak == NULL && cap->exit == NULL);
    }
    mh_capture_free(cap);
    free(buf);
}

static void
test_out_of_memory(void)
{
    mh_snapdata_t *snap = small_snapshot();
    uint8_t *buf;
    size_t len;
    char err[256];
    CHECK(mh_capfile_encode(REPORT, strlen(REPORT), snap, snap, &buf, &len,
                            err, sizeof(err)) == 0);
    int succeeded = 0;
    size_t before = mh_rawmem_in_use;
    for (long after = 0; after < 200 && !succeeded; after++) {
        mh_rawmem_fail_after = after;
        mh_capture_t *cap = mh_capfile_decode(buf, len, err, sizeof(err));
        mh_rawmem_fail_after = -1;
        if (cap != NULL) {
            succeeded = 1;
            mh_capture_free(cap);
        }
        else {
            CHECK(err[0] != '\0');
        }
        /* Everything the decoder took is given back, success or not. */
        CHECK(mh_rawmem_in_use == before);
    }
    CHECK(succeeded);
    free(buf);
    /* Invalid report text is refused by the writer too. */
    CHECK(mh_capfile_encode("\xff", 1, NULL, NULL, &buf, &len, err,
                            sizeof(err)) == -1);
    CHECK(buf == NULL && strstr(err, "UTF-8") != NULL);
    free(buf);
    mh_snapdata_free(snap);
}

int
main(void)
{
    test_round_trip();
    test_sections();
    test_out_of_memory();
    return check_report("test_capfile");
}
