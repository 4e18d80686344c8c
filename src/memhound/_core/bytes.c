/* bytes.c: the out-of-line part of bytes.h, the varint decoder for forms
 * longer than one byte (the one-byte form is inlined in mh_varint_decode).
 *
 * Every byte is checked against the end pointer before it is read, so the
 * decoder is safe on hostile input; it accepts only the shortest form of a
 * value that fits 64 bits.  No state, no allocation, Python-free, any
 * thread.
 */
#include "bytes.h"

mh_varint_status_t
mh_varint_decode_slow(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned i = 0;; i++) {
        if (p == end) {
            return MH_VARINT_TRUNCATED;
        }
        uint8_t b = *p++;
        if (i == MH_VARINT_MAX_BYTES - 1 && b > 1) {
            /* The 10th byte holds bit 63 only and must end the varint. */
            return MH_VARINT_TOO_LONG;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            if (b == 0 && i > 0) {
                return MH_VARINT_OVERLONG;
            }
            *out = v;
            *pp = p;
            return MH_VARINT_OK;
        }
    }
}
