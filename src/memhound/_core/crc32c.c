/* crc32c.c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) by
 * slicing-by-8, for the snapshot file's checksum (see crc32c.h).
 *
 * Reads the input 8 bytes at a time as two little-endian words, so the
 * result is the same on any host byte order.  No global state: the tables
 * are rebuilt on the stack by each call.  Python-free, any thread.
 */
#include "crc32c.h"

#include "bytes.h"

/* table[0] is the byte-at-a-time table; table[t][i] is the CRC of byte i
 * followed by t zero bytes, which lets 8 bytes be folded at once. */
static void
crc32c_tables(uint32_t table[8][256])
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        }
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = table[0][i];
        for (int t = 1; t < 8; t++) {
            c = (c >> 8) ^ table[0][c & 0xff];
            table[t][i] = c;
        }
    }
}

uint32_t
mh_crc32c_compute(const uint8_t *p, size_t n)
{
    uint32_t t[8][256];
    crc32c_tables(t);
    uint32_t c = 0xFFFFFFFFu;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = c ^ (uint32_t)mh_le_load(p, 4);
        uint32_t hi = (uint32_t)mh_le_load(p + 4, 4);
        c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^
            t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
            t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    }
    for (; n > 0; p++, n--) {
        c = (c >> 8) ^ t[0][(c ^ *p) & 0xff];
    }
    return ~c;
}
