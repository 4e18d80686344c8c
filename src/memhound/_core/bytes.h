/* bytes.h: byte-level encodings of the snapshot format
 * (docs/snapshot-format.md, "Conventions"): fixed-width little-endian
 * integers, unsigned LEB128 varints and the zigzag map for signed values.
 *
 * The hot helpers are static inline here; bytes.c holds the out-of-line
 * varint decoder for multi-byte forms.  Writers never check bounds: the
 * caller reserves room first (mh_varint_len, MH_VARINT_MAX_BYTES).  The
 * decoder checks every byte against its end pointer and rejects forms the
 * format forbids.  No state, no allocation, Python-free, any thread.
 */
#ifndef MH_BYTES_H
#define MH_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Longest varint: 64 bits in groups of 7. */
#define MH_VARINT_MAX_BYTES 10

/* Store the low n bytes (0 <= n <= 8) of v at p[0..n), least significant
 * first, whatever the host's byte order.  p must have room for n bytes.
 * Can't fail. */
static inline void
mh_le_store(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* The n-byte (0 <= n <= 8) little-endian unsigned integer at p[0..n); p
 * must hold n readable bytes.  Can't fail. */
static inline uint64_t
mh_le_load(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* Bytes of the shortest varint of v: 1 to MH_VARINT_MAX_BYTES (0 takes
 * one byte).  Can't fail. */
static inline size_t
mh_varint_len(uint64_t v)
{
    int bits = 64 - __builtin_clzll(v | 1);
    return (size_t)(bits + 6) / 7;
}

/* Write the shortest unsigned LEB128 form of v at p (7 bits per byte,
 * least significant group first, the high bit set on every byte but the
 * last) and return the byte after it.  p must have room for
 * mh_varint_len(v) bytes.  Can't fail. */
static inline uint8_t *
mh_varint_encode(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

typedef enum {
    MH_VARINT_OK = 0,
    MH_VARINT_TRUNCATED, /* runs past end */
    MH_VARINT_TOO_LONG,  /* more than 10 bytes, or a value above 2^64 - 1 */
    MH_VARINT_OVERLONG,  /* a multi-byte form ending in a zero byte */
} mh_varint_status_t;

/* Decode the varint at *pp, reading no byte at or past end (*pp <= end).
 * On MH_VARINT_OK stores the value in *out and advances *pp past it; on
 * any other status leaves *pp and *out untouched.  Rejects what the format
 * forbids (see mh_varint_status_t), so every value has exactly one
 * accepted form.  Handles every length; mh_varint_decode is the same with
 * the one-byte form inlined.  Can't fail otherwise. */
mh_varint_status_t mh_varint_decode_slow(const uint8_t **pp,
                                         const uint8_t *end, uint64_t *out);

static inline mh_varint_status_t
mh_varint_decode(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *out = *p;
        *pp = p + 1;
        return MH_VARINT_OK;
    }
    return mh_varint_decode_slow(pp, end, out);
}

/* Zigzag maps signed values to small unsigned ones: 0, -1, 1, -2 -> 0, 1,
 * 2, 3.  Written without shifting negative values.  Can't fail. */
static inline uint64_t
mh_zigzag_encode(int32_t v)
{
    return v >= 0 ? 2 * (uint64_t)v : 2 * (uint64_t)(-(int64_t)v) - 1;
}

/* The inverse of mh_zigzag_encode for z <= UINT32_MAX (the caller checks
 * the range; larger z do not come from an int32_t).  Can't fail. */
static inline int32_t
mh_zigzag_decode(uint64_t z)
{
    int64_t half = (int64_t)(z >> 1);
    return (int32_t)((z & 1) ? -half - 1 : half);
}

#endif /* MH_BYTES_H */
