/* test_primitives.c: plain-C tests of the snapshot format's byte-level
 * primitives: bytes.h (little-endian fields, LEB128 varints, zigzag),
 * crc32c.h and utf8.h.
 *
 * Edge values and every rejected form, checked against independent
 * bitwise references; the format-level behaviour built on them is
 * test_snapfile.c.  Prints one line per failed CHECK and a final summary;
 * exits non-zero on any failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "utf8.h"
#include "check.h"

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

static void
test_crc32c(void)
{
    CHECK(mh_crc32c_compute((const uint8_t *)"123456789", 9) == 0xE3069283u);
    CHECK(mh_crc32c_compute(NULL, 0) == 0);
    /* Every length around the 8-byte stride, at every alignment. */
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i * 167 + 13);
    }
    int same = 1;
    for (size_t start = 0; start < 8; start++) {
        for (size_t n = 0; n + start <= sizeof(buf); n++) {
            same &= mh_crc32c_compute(buf + start, n) ==
                    crc32c_ref(buf + start, n);
        }
    }
    CHECK(same);
}

static void
test_varints(void)
{
    static const uint64_t values[] = {0,
                                      1,
                                      127,
                                      128,
                                      300,
                                      16383,
                                      16384,
                                      UINT32_MAX,
                                      (1ull << 35) - 1,
                                      1ull << 35,
                                      (1ull << 63) - 1,
                                      1ull << 63,
                                      UINT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint8_t buf[MH_VARINT_MAX_BYTES + 1];
        uint64_t v = values[i], got = 0;
        uint8_t *end = mh_varint_encode(buf, v);
        CHECK((size_t)(end - buf) == mh_varint_len(v));
        const uint8_t *p = buf;
        CHECK(mh_varint_decode(&p, end, &got) == MH_VARINT_OK);
        CHECK(p == end && got == v);
        /* Every proper prefix is truncated and leaves p where it was. */
        for (const uint8_t *cut = buf; cut < end; cut++) {
            p = buf;
            CHECK(mh_varint_decode(&p, cut, &got) == MH_VARINT_TRUNCATED);
            CHECK(p == buf);
        }
    }
    CHECK(mh_varint_len(0) == 1 && mh_varint_len(127) == 1);
    CHECK(mh_varint_len(128) == 2 && mh_varint_len(UINT64_MAX) == 10);

    static const struct {
        uint8_t bytes[12];
        size_t n;
        mh_varint_status_t status;
    } bad[] = {
        {{0x80, 0x00}, 2, MH_VARINT_OVERLONG},
        {{0xff, 0x80, 0x00}, 3, MH_VARINT_OVERLONG},
        /* The 10th byte may hold bit 63 only. */
        {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
         10,
         MH_VARINT_TOO_LONG},
        {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         11,
         MH_VARINT_TOO_LONG},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const uint8_t *p = bad[i].bytes;
        uint64_t got = 12345;
        CHECK(mh_varint_decode(&p, bad[i].bytes + bad[i].n, &got) ==
              bad[i].status);
        CHECK(p == bad[i].bytes && got == 12345);
    }

    static const int32_t lines[] = {0, -1, 1, -2, 2, INT32_MAX, INT32_MIN};
    static const uint64_t zz[] = {0, 1, 2, 3, 4, UINT32_MAX - 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        CHECK(mh_zigzag_encode(lines[i]) == zz[i]);
        CHECK(mh_zigzag_decode(zz[i]) == lines[i]);
    }

    uint8_t le[8];
    mh_le_store(le, 0x0807060504030201ull, 8);
    CHECK(le[0] == 1 && le[7] == 8);
    CHECK(mh_le_load(le, 8) == 0x0807060504030201ull);
    CHECK(mh_le_load(le, 2) == 0x0201);
}

static void
test_utf8(void)
{
    static const struct {
        const char *s;
        size_t bad; /* index of the first bad byte; SIZE_MAX: valid */
    } cases[] = {
        {"", SIZE_MAX},
        {"plain.py", SIZE_MAX},
        {"\xc3\xa9t\xc3\xa9", SIZE_MAX}, /* U+00E9 */
        {"\xe2\x82\xac", SIZE_MAX},      /* U+20AC */
        {"\xf0\x9f\x98\x80", SIZE_MAX},  /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", SIZE_MAX},  /* U+10FFFF */
        {"a\xed\xa0\x80", SIZE_MAX},     /* a surrogate */
        {"a\xc0\x80", 1},                /* overlong NUL */
        {"ab\xe0\x80\x80", 2},           /* overlong */
        {"\xf0\x8f\xbf\xbf", 0},         /* overlong */
        {"\xf4\x90\x80\x80", 0},         /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 0},
        {"x\x80", 1},    /* lone continuation */
        {"\xe2\x82", 0}, /* cut off */
        {"\xe2\x82x", 0},
        {"ok\xff", 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].s);
        size_t want = cases[i].bad == SIZE_MAX ? n : cases[i].bad;
        size_t got = mh_utf8_check((const uint8_t *)cases[i].s, n);
        if (!CHECK(got == want)) {
            fprintf(stderr, "  utf8 case %zu: got %zu, want %zu\n", i, got,
                    want);
        }
    }
    CHECK(mh_utf8_check(NULL, 0) == 0);
}

int
main(void)
{
    test_crc32c();
    test_varints();
    test_utf8();
    return check_report("test_primitives");
}
