/* fuzz_input.h: how memhound's libFuzzer targets prepare an input.
 *
 * Every memhound file stores its total size as a little-endian u64 at a
 * fixed header offset and ends in a CRC-32C of everything before it, so
 * nearly every mutation would be rejected before the parsers run.  Inputs
 * of odd length (and at least min_sealable bytes) therefore get their size
 * field and checksum rewritten; even-length inputs are left as they are and
 * exercise the size and checksum checks (fuzz/README.md).
 */
#ifndef MH_FUZZ_INPUT_H
#define MH_FUZZ_INPUT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

/* A malloc'ed copy of data[0..size) (at least 1 byte), resealed when size
 * is odd and >= min_sealable (> size_offset + 8 + 4).  Aborts when out of
 * memory. */
static uint8_t *
fuzz_input_copy(const uint8_t *data, size_t size, size_t size_offset,
                size_t min_sealable)
{
    uint8_t *b = malloc(size ? size : 1);
    if (b == NULL) {
        abort();
    }
    if (size) {
        memcpy(b, data, size);
    }
    if ((size & 1) && size >= min_sealable) {
        for (int i = 0; i < 8; i++) {
            b[size_offset + i] = (uint8_t)((uint64_t)size >> (8 * i));
        }
        uint32_t c = mh_crc32c_compute(b, size - 4);
        for (int i = 0; i < 4; i++) {
            b[size - 4 + i] = (uint8_t)(c >> (8 * i));
        }
    }
    return b;
}

#endif /* MH_FUZZ_INPUT_H */
