/* snapfile.c: the snapshot file format (docs/snapshot-format.md), one
 * writer (encode, write) and one reader (decode, read) over mh_snapdata_t.
 *
 * No state outlives a call except an atomic counter for temporary file
 * names.  The reader treats its input as hostile: every count is bounded by
 * the bytes left before anything is allocated, every index and length is
 * checked, and the result must pass mh_snapdata_validate().  Snapshot and
 * scratch memory come from rawmem.h (failure injection applies); only the
 * encoder's output buffer is plain malloc, freed by the caller with free().
 * Python-free and reentrant: callers may release the GIL around any call.
 */
#include "snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rawmem.h"

/* The one list of section tags.  A version 1 file holds STRINGS, FRAMES,
 * TRACEBACKS and BLOCKS exactly once and in this order, then END; there are
 * no optional sections, so any other tag is an error. */
typedef enum {
    SECTION_END = 0,
    SECTION_STRINGS = 1,
    SECTION_FRAMES = 2,
    SECTION_TRACEBACKS = 3,
    SECTION_BLOCKS = 4,
} section_tag_t;

/* "\x89MHS\r\n\x1a\n": the high byte catches 7-bit transfers, CR LF and
 * ^Z catch text-mode line ending conversion (the PNG trick). */
static const uint8_t MAGIC[8] = {0x89, 'M', 'H', 'S', '\r', '\n', 0x1a, '\n'};

/* Fixed header: offsets of its little-endian fields. */
enum {
    FORMAT_VERSION = 1,
    OFF_VERSION = 8,       /* u16 */
    OFF_POINTER_SIZE = 10, /* u8: sizeof(void *) of the writer */
    OFF_RESERVED = 11,     /* u8: 0 */
    OFF_FLAGS = 12,        /* u32: no flag is defined in version 1 */
    OFF_FILE_SIZE = 16,    /* u64: total bytes, checksum included */
    OFF_HEXVERSION = 24,   /* u32: PY_VERSION_HEX of the writer */
    OFF_TB_LIMIT = 28,     /* u32 */
    OFF_SAMPLE_MEAN = 32,  /* u64 */
    OFF_TIMESTAMP = 40,    /* f64, IEEE 754 binary64 */
    HEADER_SIZE = 48,
    CHECKSUM_SIZE = 4, /* CRC-32C of every byte before it */
    VARINT_MAX_BYTES = 10,
    /* Smallest encodings, used to bound counts by the bytes left. */
    MIN_FRAME_BYTES = 3,     /* filename, function, lineno */
    MIN_TRACEBACK_BYTES = 2, /* nframe, extra frames */
};

/* ---- errors ---------------------------------------------------------- */

static void set_error(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_error(char *err, size_t err_len, const char *fmt, ...)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* ---- little-endian fields and varints -------------------------------- */

/* n-byte little-endian integers, whatever the host's byte order. */
static inline void
put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* Unsigned LEB128: 7 bits per byte, least significant group first, the
 * high bit set on every byte but the last. */
static inline size_t
varint_len(uint64_t v)
{
    int bits = 64 - __builtin_clzll(v | 1);
    return (size_t)(bits + 6) / 7;
}

static inline uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

typedef enum {
    VARINT_OK = 0,
    VARINT_TRUNCATED, /* runs past the end of its section */
    VARINT_TOO_LONG,  /* more than 10 bytes, or a value above 2^64 - 1 */
    VARINT_OVERLONG,  /* a multi-byte form ending in a zero byte */
} varint_status_t;

static varint_status_t
get_varint_slow(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned i = 0;; i++) {
        if (p == end) {
            return VARINT_TRUNCATED;
        }
        uint8_t b = *p++;
        if (i == VARINT_MAX_BYTES - 1 && b > 1) {
            /* The 10th byte holds bit 63 only and must end the varint. */
            return VARINT_TOO_LONG;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            if (b == 0 && i > 0) {
                return VARINT_OVERLONG;
            }
            *out = v;
            *pp = p;
            return VARINT_OK;
        }
    }
}

static inline varint_status_t
get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *out = *p;
        *pp = p + 1;
        return VARINT_OK;
    }
    return get_varint_slow(pp, end, out);
}

/* Zigzag maps signed line numbers to small unsigned ones: 0, -1, 1, -2 ->
 * 0, 1, 2, 3.  Written without shifting negative values. */
static inline uint64_t
zigzag(int32_t v)
{
    return v >= 0 ? 2 * (uint64_t)v : 2 * (uint64_t)(-(int64_t)v) - 1;
}

/* ---- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ----------- */

/* Slicing-by-8 tables, rebuilt on each call (about 4,000 operations) so
 * that no shared table needs thread-safe initialization. */
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

static uint32_t
crc32c(const uint8_t *p, size_t n)
{
    uint32_t t[8][256];
    crc32c_tables(t);
    uint32_t c = 0xFFFFFFFFu;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = c ^ (uint32_t)get_le(p, 4);
        uint32_t hi = (uint32_t)get_le(p + 4, 4);
        c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^
            t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
            t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    }
    for (; n > 0; p++, n--) {
        c = (c >> 8) ^ t[0][(c ^ *p) & 0xff];
    }
    return ~c;
}

/* ---- UTF-8 ----------------------------------------------------------- */

/* Index of the first byte that breaks UTF-8 in s[0..n), or n when it is
 * valid.  Surrogates (U+D800..U+DFFF, ED A0..BF xx) are accepted because
 * snapshots keep them ("surrogatepass"); overlong forms and code points
 * above U+10FFFF are not. */
static size_t
utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) {
                lo = 0xA0;
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) {
                lo = 0x90;
            } else if (c == 0xF4) {
                hi = 0x8F;
            }
        } else {
            return i;
        }
        if (n - i - 1 < need) {
            return i;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return i;
        }
        for (size_t k = 2; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return i;
            }
        }
        i += need + 1;
    }
    return n;
}

/* ---- scratch arrays -------------------------------------------------- */

/* Grow *array to exactly n elements (never shrinks), unlike
 * mh_rawmem_reserve which doubles: a decoded snapshot is not appended to,
 * and 10M blocks rounded up to a power of two would waste 100 MB. */
static int
reserve_exact(void **array, size_t *cap, size_t n, size_t elem_size)
{
    if (n <= *cap) {
        return 0;
    }
    size_t bytes;
    if (__builtin_mul_overflow(n, elem_size, &bytes)) {
        return -1;
    }
    void *p = mh_rawmem_realloc(*array, *cap * elem_size, bytes);
    if (p == NULL) {
        return -1;
    }
    *array = p;
    *cap = n;
    return 0;
}

static void *
scratch_new(size_t n, size_t elem_size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, elem_size, &bytes)) {
        return NULL;
    }
    return mh_rawmem_malloc(bytes);
}

/* ---- encoder: blocks --------------------------------------------------- */

/* Blocks are stored by traceback, each traceback's blocks in groups that
 * share (domain, flags, generation): a group header, then the sizes of its
 * blocks.  The encoder buckets blocks by traceback with a counting sort,
 * then groups each bucket with a small table that stays in L1, and writes
 * the output front to back.
 * What it sorts are packed entries, not block indices: reading blocks back
 * through indices costs a cache and TLB miss per block, which made encoding
 * 10M blocks five times slower.
 *
 * Entry layout: bit 63 clear: bits 37..62 are the low key (flags << 18 |
 * domain << 16 | generation), bits 0..36 the size; once a bucket's first
 * pass has found the entry's group, the group index replaces the key.
 * Bit 63 set: the size needs more than 37 bits (128 GiB), bits 0..62 are
 * the block's index and both passes look the block up. */
#define ENTRY_ESCAPE (1ull << 63)
#define ENTRY_SIZE_BITS 37
#define ENTRY_SIZE_MASK ((1ull << ENTRY_SIZE_BITS) - 1)

static inline uint32_t
low_key(const mh_snap_block_t *b)
{
    return ((uint32_t)b->flags << 18) | ((uint32_t)b->domain << 16) |
           b->generation;
}

static inline uint64_t
entry_pack(const mh_snap_block_t *b, size_t i)
{
    if (b->size >> ENTRY_SIZE_BITS) {
        return ENTRY_ESCAPE | i;
    }
    return ((uint64_t)low_key(b) << ENTRY_SIZE_BITS) | b->size;
}

static inline uint32_t
entry_key(const mh_snapdata_t *snap, uint64_t e)
{
    if (e & ENTRY_ESCAPE) {
        return low_key(&snap->blocks[e & ~ENTRY_ESCAPE]);
    }
    return (uint32_t)(e >> ENTRY_SIZE_BITS);
}

static inline uint64_t
entry_size(const mh_snapdata_t *snap, uint64_t e)
{
    if (e & ENTRY_ESCAPE) {
        return snap->blocks[e & ~ENTRY_ESCAPE].size;
    }
    return e & ENTRY_SIZE_MASK;
}

typedef struct {
    uint32_t key;    /* low key of the group's blocks */
    uint32_t slot;   /* its slot in the table, to clear it */
    uint64_t count;  /* blocks in the group */
    uint64_t nbytes; /* bytes of their size varints */
    size_t pos;      /* next output offset while writing sizes */
} group_t;

typedef struct {
    uint32_t key;
    uint32_t gid; /* group index + 1; 0 marks an empty slot */
} slot_t;

typedef struct {
    size_t *start;     /* ntracebacks + 1 bucket starts into entries */
    uint64_t *entries; /* packed blocks, bucketed by traceback */
    size_t nstart, nentries;
    slot_t *slots; /* one bucket's groups; power of two, linear probing */
    size_t nslots;
    group_t *groups; /* one bucket's groups, in order of appearance */
    size_t ngroups, groups_cap;
    slot_t *order; /* (key, group index) sorted by key */
    size_t order_cap;
    uint64_t size_bytes; /* bytes of all size varints */
} scratch_t;

typedef struct {
    uint8_t *buf; /* plain malloc: handed to the caller */
    size_t len, cap;
} output_t;

static void
scratch_free(scratch_t *s)
{
    mh_rawmem_free(s->start, s->nstart * sizeof(size_t));
    mh_rawmem_free(s->entries, s->nentries * sizeof(uint64_t));
    mh_rawmem_free(s->slots, s->nslots * sizeof(slot_t));
    mh_rawmem_free(s->groups, s->groups_cap * sizeof(group_t));
    mh_rawmem_free(s->order, s->order_cap * sizeof(slot_t));
}

static int
output_reserve(output_t *out, size_t more)
{
    if (out->cap - out->len >= more) {
        return 0;
    }
    size_t cap = out->cap + out->cap / 2;
    if (cap - out->len < more) {
        cap = out->len + more;
    }
    uint8_t *buf = realloc(out->buf, cap);
    if (buf == NULL) {
        return -1;
    }
    out->buf = buf;
    out->cap = cap;
    return 0;
}

/* Counting sort of packed blocks by traceback: two sequential passes over
 * the blocks, writes spread over one stream per traceback. */
static int
bucket_blocks(const mh_snapdata_t *snap, scratch_t *s)
{
    size_t nt = snap->ntracebacks;
    s->start = mh_rawmem_calloc(nt + 1, sizeof(size_t));
    if (s->start == NULL) {
        return -1;
    }
    s->nstart = nt + 1;
    if (snap->nblocks == 0) {
        return 0;
    }
    s->entries = scratch_new(snap->nblocks, sizeof(uint64_t));
    if (s->entries == NULL) {
        return -1;
    }
    s->nentries = snap->nblocks;
    const mh_snap_block_t *blocks = snap->blocks;
    size_t *start = s->start;
    uint64_t size_bytes = 0;
    for (size_t i = 0; i < snap->nblocks; i++) {
        start[blocks[i].traceback + 1]++;
        size_bytes += varint_len(blocks[i].size);
    }
    s->size_bytes = size_bytes;
    for (size_t t = 0; t < nt; t++) {
        start[t + 1] += start[t];
    }
    /* Scatter with start[t] as the cursor, which leaves start[t] at the
     * end of bucket t, i.e. the start of bucket t + 1; shift back after. */
    for (size_t i = 0; i < snap->nblocks; i++) {
        s->entries[start[blocks[i].traceback]++] = entry_pack(&blocks[i], i);
    }
    memmove(start + 1, start, nt * sizeof(size_t));
    start[0] = 0;
    return 0;
}

static inline size_t
slot_hash(uint32_t key, size_t nslots)
{
    return (size_t)((key * 0x9E3779B1u) >> 7) & (nslots - 1);
}

/* Slot of key: its group's, or the empty one where it belongs. */
static inline size_t
find_slot(const scratch_t *s, uint32_t key)
{
    size_t h = slot_hash(key, s->nslots);
    while (s->slots[h].gid && s->slots[h].key != key) {
        h = (h + 1) & (s->nslots - 1);
    }
    return h;
}

static int
grow_slots(scratch_t *s)
{
    size_t n = s->nslots ? s->nslots * 2 : 64;
    slot_t *old = s->slots;
    size_t nold = s->nslots;
    s->slots = mh_rawmem_calloc(n, sizeof(slot_t));
    if (s->slots == NULL) {
        s->slots = old;
        return -1;
    }
    s->nslots = n;
    for (size_t j = 0; j < s->ngroups; j++) {
        size_t h = find_slot(s, s->groups[j].key);
        s->slots[h].key = s->groups[j].key;
        s->slots[h].gid = (uint32_t)(j + 1);
        s->groups[j].slot = (uint32_t)h;
    }
    mh_rawmem_free(old, nold * sizeof(slot_t));
    return 0;
}

static int
order_cmp(const void *pa, const void *pb)
{
    const slot_t *a = pa, *b = pb;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* Group one traceback's blocks and append them to out. */
static int
write_bucket(const mh_snapdata_t *snap, scratch_t *s, size_t tb, output_t *out)
{
    uint64_t *entries = s->entries + s->start[tb];
    size_t n = s->start[tb + 1] - s->start[tb];
    int rc = -1;

    /* A group holds at most n blocks, and there are at most 2^26 low keys,
     * so group indices fit the table's uint32_t. */
    s->ngroups = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t key = entry_key(snap, entries[k]);
        size_t h = find_slot(s, key);
        size_t j = s->slots[h].gid;
        if (j == 0) {
            if (mh_rawmem_reserve((void **)&s->groups, &s->groups_cap,
                                  s->ngroups + 1, sizeof(group_t)) < 0) {
                goto done;
            }
            j = ++s->ngroups;
            s->groups[j - 1] = (group_t){.key = key, .slot = (uint32_t)h};
            s->slots[h].key = key;
            s->slots[h].gid = (uint32_t)j;
            if (s->ngroups * 4 > s->nslots && grow_slots(s) < 0) {
                goto done;
            }
        }
        s->groups[j - 1].count++;
        s->groups[j - 1].nbytes += varint_len(entry_size(snap, entries[k]));
        if (!(entries[k] & ENTRY_ESCAPE)) {
            /* Swap the key for the group index: pass two needs no lookup. */
            entries[k] = (entries[k] & ENTRY_SIZE_MASK) |
                         ((uint64_t)(j - 1) << ENTRY_SIZE_BITS);
        }
    }

    if (mh_rawmem_reserve((void **)&s->order, &s->order_cap, s->ngroups,
                          sizeof(slot_t)) < 0) {
        goto done;
    }
    size_t bytes = varint_len(tb) + varint_len(s->ngroups);
    for (size_t j = 0; j < s->ngroups; j++) {
        const group_t *g = &s->groups[j];
        s->order[j] = (slot_t){.key = g->key, .gid = (uint32_t)j};
        bytes += varint_len(g->key >> 16) + varint_len(g->key & 0xffff) +
                 varint_len(g->count) + (size_t)g->nbytes;
    }
    if (s->ngroups <= 16) {
        for (size_t j = 1; j < s->ngroups; j++) {
            slot_t x = s->order[j];
            size_t i = j;
            for (; i > 0 && s->order[i - 1].key > x.key; i--) {
                s->order[i] = s->order[i - 1];
            }
            s->order[i] = x;
        }
    } else {
        qsort(s->order, s->ngroups, sizeof(slot_t), order_cmp);
    }
    if (output_reserve(out, bytes) < 0) {
        goto done;
    }

    uint8_t *p = out->buf + out->len;
    p = put_varint(p, tb);
    p = put_varint(p, s->ngroups);
    for (size_t j = 0; j < s->ngroups; j++) {
        group_t *g = &s->groups[s->order[j].gid];
        p = put_varint(p, g->key >> 16);    /* flags << 2 | domain */
        p = put_varint(p, g->key & 0xffff); /* generation */
        p = put_varint(p, g->count);
        g->pos = (size_t)(p - out->buf);
        p += g->nbytes;
    }
    out->len = (size_t)(p - out->buf);
    uint8_t *buf = out->buf;
    for (size_t k = 0; k < n; k++) {
        uint64_t e = entries[k];
        group_t *g;
        uint64_t size;
        if (e & ENTRY_ESCAPE) {
            const mh_snap_block_t *b = &snap->blocks[e & ~ENTRY_ESCAPE];
            g = &s->groups[s->slots[find_slot(s, low_key(b))].gid - 1];
            size = b->size;
        } else {
            g = &s->groups[e >> ENTRY_SIZE_BITS];
            size = e & ENTRY_SIZE_MASK;
        }
        g->pos = (size_t)(put_varint(buf + g->pos, size) - buf);
    }
    rc = 0;
done:
    /* Empty the table for the next bucket. */
    for (size_t j = 0; j < s->ngroups; j++) {
        s->slots[s->groups[j].slot].gid = 0;
    }
    return rc;
}

/* ---- encoder: the other sections --------------------------------------- */

static inline uint64_t
string_len(const mh_snapdata_t *snap, size_t s)
{
    return snap->string_offsets[s + 1] - snap->string_offsets[s];
}

/* Payload sizes.  Sums cannot overflow: each is at most 11 bytes per
 * element of arrays that already fit in memory. */
static size_t
strings_size(const mh_snapdata_t *snap)
{
    size_t n = varint_len(snap->nstrings);
    for (size_t s = 0; s < snap->nstrings; s++) {
        n += varint_len(string_len(snap, s)) + (size_t)string_len(snap, s);
    }
    return n;
}

static size_t
frames_size(const mh_snapdata_t *snap)
{
    size_t n = varint_len(snap->nframes);
    for (size_t f = 0; f < snap->nframes; f++) {
        const mh_snap_frame_t *fr = &snap->frames[f];
        n += varint_len(fr->filename) + varint_len(fr->function) +
             varint_len(zigzag(fr->lineno));
    }
    return n;
}

static size_t
traceback_frames(const mh_snapdata_t *snap)
{
    size_t n = 0;
    for (size_t t = 0; t < snap->ntracebacks; t++) {
        n += snap->tracebacks[t].nframe;
    }
    return n;
}

static size_t
tracebacks_size(const mh_snapdata_t *snap)
{
    size_t n =
        varint_len(snap->ntracebacks) + varint_len(traceback_frames(snap));
    for (size_t t = 0; t < snap->ntracebacks; t++) {
        const mh_snap_traceback_t *tb = &snap->tracebacks[t];
        n +=
            varint_len(tb->nframe) + varint_len(tb->total_nframe - tb->nframe);
        for (size_t k = 0; k < tb->nframe; k++) {
            n += varint_len(snap->frame_ids[tb->first + k]);
        }
    }
    return n;
}

static uint8_t *
write_strings(const mh_snapdata_t *snap, uint8_t *p)
{
    p = put_varint(p, snap->nstrings);
    for (size_t s = 0; s < snap->nstrings; s++) {
        uint64_t len = string_len(snap, s);
        p = put_varint(p, len);
        if (len) {
            memcpy(p, snap->string_data + snap->string_offsets[s], len);
            p += len;
        }
    }
    return p;
}

static uint8_t *
write_frames(const mh_snapdata_t *snap, uint8_t *p)
{
    p = put_varint(p, snap->nframes);
    for (size_t f = 0; f < snap->nframes; f++) {
        const mh_snap_frame_t *fr = &snap->frames[f];
        p = put_varint(p, fr->filename);
        p = put_varint(p, fr->function);
        p = put_varint(p, zigzag(fr->lineno));
    }
    return p;
}

static uint8_t *
write_tracebacks(const mh_snapdata_t *snap, uint8_t *p)
{
    p = put_varint(p, snap->ntracebacks);
    p = put_varint(p, traceback_frames(snap));
    for (size_t t = 0; t < snap->ntracebacks; t++) {
        const mh_snap_traceback_t *tb = &snap->tracebacks[t];
        p = put_varint(p, tb->nframe);
        p = put_varint(p, tb->total_nframe - tb->nframe);
        for (size_t k = 0; k < tb->nframe; k++) {
            p = put_varint(p, snap->frame_ids[tb->first + k]);
        }
    }
    return p;
}

/* What the encoder refuses beyond mh_snapdata_validate: whatever the
 * reader would reject, so that a written file can always be read. */
static int
check_encodable(const mh_snapdata_t *snap, char *err, size_t err_len)
{
    const char *why = mh_snapdata_validate(snap);
    if (why != NULL) {
        set_error(err, err_len, "cannot encode an invalid snapshot: %s", why);
        return -1;
    }
    if (!isfinite(snap->timestamp)) {
        set_error(err, err_len,
                  "cannot encode a snapshot whose timestamp is not finite");
        return -1;
    }
    for (size_t s = 0; s < snap->nstrings; s++) {
        size_t len = (size_t)string_len(snap, s);
        const uint8_t *str =
            (const uint8_t *)snap->string_data + snap->string_offsets[s];
        if (len && utf8_check(str, len) != len) {
            set_error(err, err_len,
                      "cannot encode a snapshot whose string %zu is not "
                      "valid UTF-8",
                      s);
            return -1;
        }
    }
    return 0;
}

int
mh_snapfile_encode(const mh_snapdata_t *snap, uint8_t **out, size_t *out_len,
                   char *err, size_t err_len)
{
    scratch_t s = {0};
    output_t o = {0};
    *out = NULL;
    *out_len = 0;

    if (check_encodable(snap, err, err_len) < 0) {
        return -1;
    }
    if (bucket_blocks(snap, &s) < 0 || grow_slots(&s) < 0) {
        set_error(err, err_len, "out of memory sorting %zu blocks",
                  snap->nblocks);
        goto error;
    }
    /* Everything but the blocks section has a size known up front.  The
     * blocks section is written after a gap of VARINT_MAX_BYTES for its
     * length, closed by one memmove once the length is known; its first
     * estimate (size varints plus one group per used traceback) is
     * usually close. */
    size_t sizes[3] = {strings_size(snap), frames_size(snap),
                       tracebacks_size(snap)};
    size_t prefix = HEADER_SIZE + 1; /* + blocks tag */
    for (int i = 0; i < 3; i++) {
        prefix += 1 + varint_len(sizes[i]) + sizes[i];
    }
    size_t body = prefix + VARINT_MAX_BYTES;
    o.cap = body + VARINT_MAX_BYTES + (size_t)s.size_bytes +
            16 * snap->ntracebacks + 2 + CHECKSUM_SIZE;
    o.buf = malloc(o.cap);
    if (o.buf == NULL) {
        goto nomem;
    }

    uint8_t *buf = o.buf;
    memcpy(buf, MAGIC, sizeof(MAGIC));
    put_le(buf + OFF_VERSION, FORMAT_VERSION, 2);
    buf[OFF_POINTER_SIZE] = (uint8_t)sizeof(void *);
    buf[OFF_RESERVED] = 0;
    put_le(buf + OFF_FLAGS, 0, 4);
    put_le(buf + OFF_HEXVERSION, snap->python_hexversion, 4);
    put_le(buf + OFF_TB_LIMIT, snap->traceback_limit, 4);
    put_le(buf + OFF_SAMPLE_MEAN, snap->sample_mean, 8);
    uint64_t ts_bits;
    memcpy(&ts_bits, &snap->timestamp, sizeof(ts_bits));
    put_le(buf + OFF_TIMESTAMP, ts_bits, 8);

    uint8_t *p = buf + HEADER_SIZE;
    uint8_t *(*const writers[3])(const mh_snapdata_t *, uint8_t *) = {
        write_strings, write_frames, write_tracebacks};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        *p++ = (uint8_t)(SECTION_STRINGS + i);
        p = put_varint(p, sizes[i]);
        uint8_t *start = p;
        p = writers[i](snap, p);
        ok &= p == start + sizes[i];
    }
    *p++ = SECTION_BLOCKS;
    ok &= p == buf + prefix;
    o.len = (size_t)(put_varint(buf + body, snap->nblocks) - buf);
    for (size_t t = 0; t < snap->ntracebacks; t++) {
        if (s.start[t + 1] > s.start[t] && write_bucket(snap, &s, t, &o) < 0) {
            goto nomem;
        }
    }
    if (output_reserve(&o, 2 + CHECKSUM_SIZE) < 0) {
        goto nomem;
    }
    buf = o.buf;
    size_t blocks_len = o.len - body;
    p = put_varint(buf + prefix, blocks_len);
    memmove(p, buf + body, blocks_len);
    p += blocks_len;
    *p++ = SECTION_END;
    *p++ = 0;
    size_t total = (size_t)(p - buf) + CHECKSUM_SIZE;
    if (!ok) {
        /* Size and write functions disagree: a bug, never bad input. */
        set_error(err, err_len, "internal error: section sizes disagree");
        goto error;
    }
    put_le(buf + OFF_FILE_SIZE, total, 8);
    put_le(p, crc32c(buf, total - CHECKSUM_SIZE), 4);

    scratch_free(&s);
    *out = buf;
    *out_len = total;
    return 0;
nomem:
    set_error(err, err_len, "out of memory encoding %zu blocks",
              snap->nblocks);
error:
    scratch_free(&s);
    free(o.buf);
    return -1;
}

/* ---- decoder ----------------------------------------------------------- */

typedef struct {
    const uint8_t *base; /* start of the file, for offsets in messages */
    const uint8_t *p;    /* next byte of the current section */
    const uint8_t *end;  /* end of the current section */
    const char *section; /* its name, for messages */
    mh_snapdata_t *snap;
    char *err;
    size_t err_len;
} decoder_t;

static const char *
section_name(unsigned tag)
{
    static const char *const names[] = {"end", "strings", "frames",
                                        "tracebacks", "blocks"};
    return tag <= SECTION_BLOCKS ? names[tag] : "unknown";
}

static inline size_t
left(const decoder_t *d)
{
    return (size_t)(d->end - d->p);
}

static inline size_t
offset(const decoder_t *d, const uint8_t *p)
{
    return (size_t)(p - d->base);
}

static void
varint_error(decoder_t *d, const uint8_t *at, const char *what,
             varint_status_t status)
{
    const char *problem =
        status == VARINT_TRUNCATED  ? "runs past the end of the section"
        : status == VARINT_TOO_LONG ? "is longer than 10 bytes or above 2^64-1"
                                    : "is overlong (ends in a zero byte)";
    set_error(d->err, d->err_len, "%s section: varint %s at offset %zu %s",
              d->section, what, offset(d, at), problem);
}

static int
read_varint(decoder_t *d, const char *what, uint64_t *out)
{
    const uint8_t *at = d->p;
    varint_status_t status = get_varint(&d->p, d->end, out);
    if (status != VARINT_OK) {
        varint_error(d, at, what, status);
        return -1;
    }
    return 0;
}

static int
out_of_memory(decoder_t *d, const char *what, uint64_t n)
{
    set_error(d->err, d->err_len, "out of memory for %llu %s",
              (unsigned long long)n, what);
    return -1;
}

/* A count of elements taking at least min_bytes each must fit in the bytes
 * left, which bounds every allocation by the input's size. */
static int
check_count(decoder_t *d, uint64_t n, size_t min_bytes, const char *what)
{
    if (n > left(d) / min_bytes || n > UINT32_MAX) {
        set_error(d->err, d->err_len,
                  "%s section: %llu %s cannot fit in the %zu bytes left "
                  "(each takes at least %zu)",
                  d->section, (unsigned long long)n, what, left(d), min_bytes);
        return -1;
    }
    return 0;
}

/* varint count, then per string: varint length, bytes (UTF-8). */
static int
parse_strings(decoder_t *d)
{
    mh_snapdata_t *snap = d->snap;
    uint64_t n;
    if (read_varint(d, "string count", &n) < 0 ||
        check_count(d, n, 1, "strings") < 0) {
        return -1;
    }
    if (n == 0) {
        set_error(d->err, d->err_len,
                  "strings section: no strings (string 0 is required)");
        return -1;
    }
    /* The string bytes are fewer than the bytes left: allocate that bound
     * once instead of walking the section twice. */
    if (reserve_exact((void **)&snap->string_offsets, &snap->strings_cap,
                      (size_t)n + 1, sizeof(uint64_t)) < 0 ||
        reserve_exact((void **)&snap->string_data, &snap->string_bytes_cap,
                      left(d), 1) < 0) {
        return out_of_memory(d, "strings", n);
    }
    size_t total = 0;
    snap->string_offsets[0] = 0;
    for (size_t s = 0; s < n; s++) {
        uint64_t len;
        if (read_varint(d, "string length", &len) < 0) {
            return -1;
        }
        if (len > left(d)) {
            set_error(d->err, d->err_len,
                      "strings section: string %zu needs %llu bytes, %zu "
                      "remain",
                      s, (unsigned long long)len, left(d));
            return -1;
        }
        size_t bad = utf8_check(d->p, (size_t)len);
        if (bad != len) {
            set_error(d->err, d->err_len,
                      "strings section: string %zu is not valid UTF-8 "
                      "(byte %zu, at offset %zu)",
                      s, bad, offset(d, d->p + bad));
            return -1;
        }
        if (len) {
            memcpy(snap->string_data + total, d->p, (size_t)len);
        }
        d->p += len;
        total += (size_t)len;
        snap->string_offsets[s + 1] = total;
    }
    snap->nstrings = (size_t)n;
    snap->string_bytes = total;
    return 0;
}

/* varint count, then per frame: varint filename, varint function, zigzag
 * varint line number. */
static int
parse_frames(decoder_t *d)
{
    mh_snapdata_t *snap = d->snap;
    uint64_t n;
    if (read_varint(d, "frame count", &n) < 0 ||
        check_count(d, n, MIN_FRAME_BYTES, "frames") < 0) {
        return -1;
    }
    if (reserve_exact((void **)&snap->frames, &snap->frames_cap, (size_t)n,
                      sizeof(mh_snap_frame_t)) < 0) {
        return out_of_memory(d, "frames", n);
    }
    for (size_t f = 0; f < n; f++) {
        uint64_t names[2], z;
        if (read_varint(d, "frame file name", &names[0]) < 0 ||
            read_varint(d, "frame function name", &names[1]) < 0 ||
            read_varint(d, "frame line number", &z) < 0) {
            return -1;
        }
        for (int k = 0; k < 2; k++) {
            if (names[k] >= snap->nstrings) {
                set_error(d->err, d->err_len,
                          "frame %zu names string %llu of %zu (%s)", f,
                          (unsigned long long)names[k], snap->nstrings,
                          k == 0 ? "file name" : "function name");
                return -1;
            }
        }
        if (z > UINT32_MAX) {
            set_error(d->err, d->err_len,
                      "frame %zu has a line number out of the 32-bit range",
                      f);
            return -1;
        }
        int64_t half = (int64_t)(z >> 1);
        mh_snap_frame_t *fr = &snap->frames[f];
        fr->filename = (uint32_t)names[0];
        fr->function = (uint32_t)names[1];
        fr->lineno = (int32_t)((z & 1) ? -half - 1 : half);
    }
    snap->nframes = (size_t)n;
    return 0;
}

/* varint count, varint total frame ids, then per traceback: varint nframe,
 * varint total_nframe - nframe, nframe varint frame indices. */
static int
parse_tracebacks(decoder_t *d)
{
    mh_snapdata_t *snap = d->snap;
    uint64_t n, nids;
    if (read_varint(d, "traceback count", &n) < 0 ||
        read_varint(d, "frame id count", &nids) < 0 ||
        check_count(d, n, MIN_TRACEBACK_BYTES, "tracebacks") < 0) {
        return -1;
    }
    if (n == 0) {
        set_error(d->err, d->err_len,
                  "tracebacks section: no tracebacks (traceback 0 is "
                  "required)");
        return -1;
    }
    if (nids > left(d) - n * MIN_TRACEBACK_BYTES) {
        set_error(d->err, d->err_len,
                  "tracebacks section: %llu frame ids cannot fit in the %zu "
                  "bytes left",
                  (unsigned long long)nids,
                  left(d) - (size_t)n * MIN_TRACEBACK_BYTES);
        return -1;
    }
    if (reserve_exact((void **)&snap->tracebacks, &snap->tracebacks_cap,
                      (size_t)n, sizeof(mh_snap_traceback_t)) < 0 ||
        reserve_exact((void **)&snap->frame_ids, &snap->frame_ids_cap,
                      (size_t)nids, sizeof(uint32_t)) < 0) {
        return out_of_memory(d, "tracebacks", n);
    }
    size_t used = 0;
    for (size_t t = 0; t < n; t++) {
        uint64_t nframe, extra;
        if (read_varint(d, "traceback frame count", &nframe) < 0 ||
            read_varint(d, "traceback extra frame count", &extra) < 0) {
            return -1;
        }
        if (nframe > UINT16_MAX || extra > UINT16_MAX - nframe) {
            set_error(d->err, d->err_len,
                      "traceback %zu has %llu + %llu frames (at most %u)", t,
                      (unsigned long long)nframe, (unsigned long long)extra,
                      (unsigned)UINT16_MAX);
            return -1;
        }
        if (t == 0 && nframe != 0) {
            set_error(d->err, d->err_len,
                      "traceback 0 must be empty but has %llu frames",
                      (unsigned long long)nframe);
            return -1;
        }
        if (nframe > nids - used) {
            set_error(d->err, d->err_len,
                      "tracebacks section: traceback %zu runs past the %llu "
                      "frame ids announced",
                      t, (unsigned long long)nids);
            return -1;
        }
        for (size_t k = 0; k < nframe; k++) {
            uint64_t id;
            if (read_varint(d, "frame index", &id) < 0) {
                return -1;
            }
            if (id >= snap->nframes) {
                set_error(d->err, d->err_len,
                          "traceback %zu names frame %llu of %zu", t,
                          (unsigned long long)id, snap->nframes);
                return -1;
            }
            snap->frame_ids[used + k] = (uint32_t)id;
        }
        mh_snap_traceback_t *tb = &snap->tracebacks[t];
        tb->first = (uint32_t)used;
        tb->nframe = (uint16_t)nframe;
        tb->total_nframe = (uint16_t)(nframe + extra);
        used += (size_t)nframe;
    }
    if (used != nids) {
        set_error(d->err, d->err_len,
                  "tracebacks section announces %llu frame ids but its "
                  "tracebacks use %zu",
                  (unsigned long long)nids, used);
        return -1;
    }
    snap->ntracebacks = (size_t)n;
    snap->nframe_ids = used;
    return 0;
}

/* The hot loop of the reader: count size varints into blocks that are
 * copies of tmpl. */
static int
read_sizes(decoder_t *d, mh_snap_block_t *out, size_t count,
           const mh_snap_block_t *tmpl)
{
    const uint8_t *p = d->p, *end = d->end;
    for (size_t k = 0; k < count; k++) {
        uint64_t size;
        /* Inline the 1- and 2-byte forms: most sizes are < 16 KiB. */
        if (p < end && p[0] < 0x80) {
            size = p[0];
            p += 1;
        } else if (end - p >= 2 && p[1] < 0x80 && p[1] != 0) {
            size = (p[0] & 0x7fu) | ((uint64_t)p[1] << 7);
            p += 2;
        } else {
            const uint8_t *at = p;
            varint_status_t status = get_varint_slow(&p, end, &size);
            if (status != VARINT_OK) {
                varint_error(d, at, "block size", status);
                return -1;
            }
        }
        out[k] = *tmpl;
        out[k].size = size;
    }
    d->p = p;
    return 0;
}

/* varint block count, then records until that many blocks are read:
 * varint traceback, varint group count >= 1, and per group: varint kind
 * (flags << 2 | domain), varint generation, varint count >= 1, count
 * varint sizes. */
static int
parse_blocks(decoder_t *d)
{
    mh_snapdata_t *snap = d->snap;
    uint64_t nblocks;
    if (read_varint(d, "block count", &nblocks) < 0) {
        return -1;
    }
    if (nblocks > left(d)) {
        set_error(d->err, d->err_len,
                  "blocks section: %llu blocks cannot fit in the %zu bytes "
                  "left (each takes at least 1)",
                  (unsigned long long)nblocks, left(d));
        return -1;
    }
    if (reserve_exact((void **)&snap->blocks, &snap->blocks_cap,
                      (size_t)nblocks, sizeof(mh_snap_block_t)) < 0) {
        return out_of_memory(d, "blocks", nblocks);
    }
    size_t filled = 0;
    while (filled < nblocks) {
        uint64_t tb, ngroups;
        if (read_varint(d, "traceback", &tb) < 0 ||
            read_varint(d, "group count", &ngroups) < 0) {
            return -1;
        }
        if (tb >= snap->ntracebacks) {
            set_error(d->err, d->err_len,
                      "block %zu names traceback %llu of %zu", filled,
                      (unsigned long long)tb, snap->ntracebacks);
            return -1;
        }
        if (ngroups == 0 || ngroups > nblocks - filled) {
            set_error(d->err, d->err_len,
                      "blocks section: traceback %llu has %llu groups, "
                      "%llu blocks are left",
                      (unsigned long long)tb, (unsigned long long)ngroups,
                      (unsigned long long)(nblocks - filled));
            return -1;
        }
        for (uint64_t g = 0; g < ngroups; g++) {
            uint64_t kind, gen, count;
            if (read_varint(d, "group kind", &kind) < 0 ||
                read_varint(d, "group generation", &gen) < 0 ||
                read_varint(d, "group block count", &count) < 0) {
                return -1;
            }
            if ((kind & 3) >= MH_DOMAIN_COUNT || kind > 0x3ff) {
                set_error(d->err, d->err_len,
                          "block %zu has unknown domain or flags (kind "
                          "%llu)",
                          filled, (unsigned long long)kind);
                return -1;
            }
            if (gen > UINT16_MAX) {
                set_error(d->err, d->err_len,
                          "block %zu has generation %llu (at most %u)", filled,
                          (unsigned long long)gen, (unsigned)UINT16_MAX);
                return -1;
            }
            if (count == 0 || count > nblocks - filled) {
                set_error(d->err, d->err_len,
                          "blocks section: a group of %llu blocks at block "
                          "%zu, %llu of the %llu announced are left",
                          (unsigned long long)count, filled,
                          (unsigned long long)(nblocks - filled),
                          (unsigned long long)nblocks);
                return -1;
            }
            const mh_snap_block_t tmpl = {.size = 0,
                                          .traceback = (uint32_t)tb,
                                          .generation = (uint16_t)gen,
                                          .domain = (uint8_t)(kind & 3),
                                          .flags = (uint8_t)(kind >> 2)};
            if (read_sizes(d, snap->blocks + filled, (size_t)count, &tmpl) <
                0) {
                return -1;
            }
            filled += (size_t)count;
            snap->nblocks = filled;
        }
    }
    return 0;
}

/* Magic, version, size, checksum, then the other header fields.  Reports
 * the most useful problem first: a truncated file says so rather than
 * "checksum mismatch". */
static int
check_header(const uint8_t *data, size_t len, char *err, size_t err_len)
{
    if (len == 0) {
        set_error(err, err_len, "empty file (not a memhound snapshot)");
        return -1;
    }
    if (memcmp(data, MAGIC, len < sizeof(MAGIC) ? len : sizeof(MAGIC))) {
        set_error(err, err_len, "not a memhound snapshot (bad magic)");
        return -1;
    }
    if (len < OFF_VERSION + 2) {
        set_error(err, err_len,
                  "truncated file: %zu bytes, the header alone needs %d", len,
                  HEADER_SIZE);
        return -1;
    }
    unsigned version = (unsigned)get_le(data + OFF_VERSION, 2);
    if (version != FORMAT_VERSION) {
        set_error(err, err_len,
                  "unsupported format version %u (this memhound reads %d)",
                  version, FORMAT_VERSION);
        return -1;
    }
    if (len < HEADER_SIZE) {
        set_error(err, err_len,
                  "truncated file: %zu bytes, the header alone needs %d", len,
                  HEADER_SIZE);
        return -1;
    }
    uint64_t file_size = get_le(data + OFF_FILE_SIZE, 8);
    if (file_size > len) {
        set_error(err, err_len,
                  "truncated file: the header says %llu bytes, only %zu are "
                  "present",
                  (unsigned long long)file_size, len);
        return -1;
    }
    if (file_size < len) {
        set_error(err, err_len,
                  "%llu bytes of trailing data after the snapshot (the "
                  "header says %llu bytes, the file has %zu)",
                  (unsigned long long)(len - file_size),
                  (unsigned long long)file_size, len);
        return -1;
    }
    if (len < HEADER_SIZE + 2 + CHECKSUM_SIZE) {
        set_error(err, err_len,
                  "corrupt header: a %zu-byte file cannot hold a snapshot",
                  len);
        return -1;
    }
    uint32_t stored = (uint32_t)get_le(data + len - CHECKSUM_SIZE, 4);
    uint32_t computed = crc32c(data, len - CHECKSUM_SIZE);
    if (stored != computed) {
        set_error(err, err_len,
                  "checksum mismatch (stored 0x%08x, computed 0x%08x): the "
                  "file is corrupt",
                  (unsigned)stored, (unsigned)computed);
        return -1;
    }
    unsigned ptr_size = data[OFF_POINTER_SIZE];
    if (ptr_size != 4 && ptr_size != 8) {
        set_error(err, err_len, "unsupported pointer size %u in the header",
                  ptr_size);
        return -1;
    }
    uint32_t flags = (uint32_t)get_le(data + OFF_FLAGS, 4);
    if (data[OFF_RESERVED] != 0 || flags != 0) {
        set_error(err, err_len,
                  "unknown header flags 0x%08x or reserved byte 0x%02x "
                  "(format version 1 defines none)",
                  (unsigned)flags, (unsigned)data[OFF_RESERVED]);
        return -1;
    }
    uint64_t ts_bits = get_le(data + OFF_TIMESTAMP, 8);
    double ts;
    memcpy(&ts, &ts_bits, sizeof(ts));
    if (!isfinite(ts)) {
        set_error(err, err_len, "the header's timestamp is not finite");
        return -1;
    }
    return 0;
}

mh_snapdata_t *
mh_snapfile_decode(const uint8_t *data, size_t len, char *err, size_t err_len)
{
    if (check_header(data, len, err, err_len) < 0) {
        return NULL;
    }
    mh_snapdata_t *snap = mh_snapdata_new();
    if (snap == NULL) {
        set_error(err, err_len, "out of memory for a snapshot");
        return NULL;
    }
    snap->python_hexversion = (uint32_t)get_le(data + OFF_HEXVERSION, 4);
    snap->traceback_limit = (uint32_t)get_le(data + OFF_TB_LIMIT, 4);
    snap->sample_mean = get_le(data + OFF_SAMPLE_MEAN, 8);
    uint64_t ts_bits = get_le(data + OFF_TIMESTAMP, 8);
    memcpy(&snap->timestamp, &ts_bits, sizeof(ts_bits));

    decoder_t d = {.base = data, .snap = snap, .err = err, .err_len = err_len};
    const uint8_t *p = data + HEADER_SIZE;
    const uint8_t *region_end = data + len - CHECKSUM_SIZE;
    /* Sections in the only order version 1 allows; END comes last. */
    static const section_tag_t order[] = {SECTION_STRINGS, SECTION_FRAMES,
                                          SECTION_TRACEBACKS, SECTION_BLOCKS,
                                          SECTION_END};
    for (size_t next = 0;; next++) {
        section_tag_t want = order[next];
        if (p == region_end) {
            set_error(err, err_len,
                      "missing %s section (sections end at offset %zu)",
                      section_name(want), offset(&d, p));
            goto error;
        }
        const uint8_t *at = p;
        unsigned tag = *p++;
        if (tag > SECTION_BLOCKS) {
            set_error(err, err_len,
                      "unknown section tag %u at offset %zu (format version "
                      "1 has no optional sections)",
                      tag, offset(&d, at));
            goto error;
        }
        if (tag != want) {
            /* Rank END after BLOCKS to tell duplicates from gaps. */
            unsigned rank = tag == SECTION_END ? 5 : tag;
            unsigned want_rank = want == SECTION_END ? 5 : want;
            if (rank < want_rank) {
                set_error(err, err_len, "duplicate %s section at offset %zu",
                          section_name(tag), offset(&d, at));
            } else {
                set_error(err, err_len,
                          "missing %s section (found the %s section at "
                          "offset %zu)",
                          section_name(want), section_name(tag),
                          offset(&d, at));
            }
            goto error;
        }
        d.section = section_name(tag);
        d.p = p;
        d.end = region_end;
        uint64_t size;
        if (read_varint(&d, "section length", &size) < 0) {
            goto error;
        }
        p = d.p;
        if (size > (size_t)(region_end - p)) {
            set_error(err, err_len,
                      "truncated file: %s section needs %llu bytes, %zu "
                      "remain",
                      d.section, (unsigned long long)size,
                      (size_t)(region_end - p));
            goto error;
        }
        if (tag == SECTION_END) {
            if (size != 0 || p != region_end) {
                set_error(err, err_len,
                          "%zu unexpected bytes after the end section at "
                          "offset %zu",
                          (size_t)(region_end - p), offset(&d, at));
                goto error;
            }
            break;
        }
        d.end = p + size;
        int rc = tag == SECTION_STRINGS      ? parse_strings(&d)
                 : tag == SECTION_FRAMES     ? parse_frames(&d)
                 : tag == SECTION_TRACEBACKS ? parse_tracebacks(&d)
                                             : parse_blocks(&d);
        if (rc < 0) {
            goto error;
        }
        if (d.p != d.end) {
            set_error(err, err_len,
                      "%s section has %zu unused bytes at offset %zu",
                      d.section, left(&d), offset(&d, d.p));
            goto error;
        }
        p = d.end;
    }
    const char *why = mh_snapdata_validate(snap);
    if (why != NULL) {
        set_error(err, err_len, "inconsistent snapshot: %s", why);
        goto error;
    }
    return snap;
error:
    mh_snapdata_free(snap);
    return NULL;
}

/* ---- files ------------------------------------------------------------- */

/* Makes temporary names unique within the process (the pid makes them
 * unique across processes).  Relaxed atomic: only distinctness matters. */
static unsigned long tmp_counter;

static int
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
mh_snapfile_write(const mh_snapdata_t *snap, const char *path, char *err,
                  size_t err_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char *tmp = NULL;
    size_t tmp_size = 0;
    int fd = -1;
    int saved_errno = 0;

    if (mh_snapfile_encode(snap, &buf, &len, err, err_len) < 0) {
        return -1;
    }
    /* A temporary file beside the target, renamed over it once complete
     * and synced: a crash leaves the old file or the new one, never half a
     * file under the real name.  O_EXCL so that an existing file (or a
     * symlink planted there) is never written through. */
    tmp_size = strlen(path) + 64;
    tmp = mh_rawmem_malloc(tmp_size);
    if (tmp == NULL) {
        set_error(err, err_len, "out of memory writing %s", path);
        saved_errno = ENOMEM;
        goto error;
    }
    for (int attempt = 0; fd < 0; attempt++) {
        unsigned long n =
            __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED);
        snprintf(tmp, tmp_size, "%s.tmp-%ld-%lu", path, (long)getpid(), n);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && (errno != EEXIST || attempt >= 100)) {
            saved_errno = errno;
            set_error(err, err_len, "cannot create %s: %s", tmp,
                      strerror(saved_errno));
            mh_rawmem_free(tmp, tmp_size);
            tmp = NULL; /* nothing to unlink */
            goto error;
        }
    }
    if (write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
        saved_errno = errno;
        set_error(err, err_len, "cannot write %s: %s", tmp,
                  strerror(saved_errno));
        goto error;
    }
    int rc = close(fd);
    fd = -1;
    if (rc < 0) {
        saved_errno = errno;
        set_error(err, err_len, "cannot write %s: %s", tmp,
                  strerror(saved_errno));
        goto error;
    }
    if (rename(tmp, path) < 0) {
        saved_errno = errno;
        set_error(err, err_len, "cannot rename %s to %s: %s", tmp, path,
                  strerror(saved_errno));
        goto error;
    }
    mh_rawmem_free(tmp, tmp_size);
    free(buf);
    return 0;
error:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp != NULL) {
        unlink(tmp);
        mh_rawmem_free(tmp, tmp_size);
    }
    free(buf);
    errno = saved_errno;
    return -1;
}

mh_snapdata_t *
mh_snapfile_read(const char *path, char *err, size_t err_len)
{
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    int saved_errno = 0;
    mh_snapdata_t *snap = NULL;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        saved_errno = errno;
        set_error(err, err_len, "cannot open %s: %s", path,
                  strerror(saved_errno));
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        saved_errno = errno;
        set_error(err, err_len, "cannot stat %s: %s", path,
                  strerror(saved_errno));
        goto done;
    }
    /* One byte more than the size so that EOF shows in the first pass;
     * growing handles files that are not regular or that grow. */
    if (st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX / 2) {
        cap = (size_t)st.st_size + 1;
    } else {
        cap = 65536;
    }
    buf = mh_rawmem_malloc(cap);
    if (buf == NULL) {
        saved_errno = ENOMEM;
        set_error(err, err_len, "out of memory reading %s (%zu bytes)", path,
                  cap);
        cap = 0;
        goto done;
    }
    for (;;) {
        if (len == cap) {
            if (cap > SIZE_MAX / 2) {
                saved_errno = EFBIG;
                set_error(err, err_len, "%s is too large", path);
                goto done;
            }
            uint8_t *bigger = mh_rawmem_realloc(buf, cap, cap * 2);
            if (bigger == NULL) {
                saved_errno = ENOMEM;
                set_error(err, err_len, "out of memory reading %s", path);
                goto done;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            saved_errno = errno;
            set_error(err, err_len, "cannot read %s: %s", path,
                      strerror(saved_errno));
            goto done;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    snap = mh_snapfile_decode(buf, len, err, err_len);
done:
    if (fd >= 0) {
        close(fd);
    }
    mh_rawmem_free(buf, cap);
    if (snap == NULL && saved_errno != 0) {
        errno = saved_errno;
    }
    return snap;
}
