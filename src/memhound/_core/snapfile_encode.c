/* snapfile_encode.c: the one writer of the snapshot file format
 * (docs/snapshot-format.md, layout in snapfile_format.h):
 * mh_snapfile_encode turns a mh_snapdata_t into the bytes of a file.
 *
 * Refuses whatever the reader would reject, so every buffer it returns
 * decodes.  Owns only per-call scratch (from rawmem.h, so failure
 * injection applies), freed before returning; the output buffer is plain
 * malloc, handed to the caller.  No global state: Python-free and
 * reentrant, callers may release the GIL around it.
 */
#include "snapfile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "rawmem.h"
#include "snapfile_format.h"
#include "utf8.h"

/* ---- scratch arrays -------------------------------------------------- */

static void *
scratch_new(size_t n, size_t elem_size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, elem_size, &bytes)) {
        return NULL;
    }
    return mh_rawmem_malloc(bytes);
}

/* ---- the blocks section ------------------------------------------------- */

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
        size_bytes += mh_varint_len(blocks[i].size);
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
        s->groups[j - 1].nbytes += mh_varint_len(entry_size(snap, entries[k]));
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
    size_t bytes = mh_varint_len(tb) + mh_varint_len(s->ngroups);
    for (size_t j = 0; j < s->ngroups; j++) {
        const group_t *g = &s->groups[j];
        s->order[j] = (slot_t){.key = g->key, .gid = (uint32_t)j};
        bytes += mh_varint_len(g->key >> 16) + mh_varint_len(g->key & 0xffff) +
                 mh_varint_len(g->count) + (size_t)g->nbytes;
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
    }
    else {
        qsort(s->order, s->ngroups, sizeof(slot_t), order_cmp);
    }
    if (output_reserve(out, bytes) < 0) {
        goto done;
    }

    uint8_t *p = out->buf + out->len;
    p = mh_varint_encode(p, tb);
    p = mh_varint_encode(p, s->ngroups);
    for (size_t j = 0; j < s->ngroups; j++) {
        group_t *g = &s->groups[s->order[j].gid];
        p = mh_varint_encode(p, g->key >> 16);    /* flags << 2 | domain */
        p = mh_varint_encode(p, g->key & 0xffff); /* generation */
        p = mh_varint_encode(p, g->count);
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
        }
        else {
            g = &s->groups[e >> ENTRY_SIZE_BITS];
            size = e & ENTRY_SIZE_MASK;
        }
        g->pos = (size_t)(mh_varint_encode(buf + g->pos, size) - buf);
    }
    rc = 0;
done:
    /* Empty the table for the next bucket. */
    for (size_t j = 0; j < s->ngroups; j++) {
        s->slots[s->groups[j].slot].gid = 0;
    }
    return rc;
}

/* ---- the other sections, header and checksum ---------------------------- */

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
    size_t n = mh_varint_len(snap->nstrings);
    for (size_t s = 0; s < snap->nstrings; s++) {
        n += mh_varint_len(string_len(snap, s)) + (size_t)string_len(snap, s);
    }
    return n;
}

static size_t
frames_size(const mh_snapdata_t *snap)
{
    size_t n = mh_varint_len(snap->nframes);
    for (size_t f = 0; f < snap->nframes; f++) {
        const mh_snap_frame_t *fr = &snap->frames[f];
        n += mh_varint_len(fr->filename) + mh_varint_len(fr->function) +
             mh_varint_len(mh_zigzag_encode(fr->lineno));
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
    size_t n = mh_varint_len(snap->ntracebacks) +
               mh_varint_len(traceback_frames(snap));
    for (size_t t = 0; t < snap->ntracebacks; t++) {
        const mh_snap_traceback_t *tb = &snap->tracebacks[t];
        n += mh_varint_len(tb->nframe) +
             mh_varint_len(tb->total_nframe - tb->nframe);
        for (size_t k = 0; k < tb->nframe; k++) {
            n += mh_varint_len(snap->frame_ids[tb->first + k]);
        }
    }
    return n;
}

static uint8_t *
write_strings(const mh_snapdata_t *snap, uint8_t *p)
{
    p = mh_varint_encode(p, snap->nstrings);
    for (size_t s = 0; s < snap->nstrings; s++) {
        uint64_t len = string_len(snap, s);
        p = mh_varint_encode(p, len);
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
    p = mh_varint_encode(p, snap->nframes);
    for (size_t f = 0; f < snap->nframes; f++) {
        const mh_snap_frame_t *fr = &snap->frames[f];
        p = mh_varint_encode(p, fr->filename);
        p = mh_varint_encode(p, fr->function);
        p = mh_varint_encode(p, mh_zigzag_encode(fr->lineno));
    }
    return p;
}

static uint8_t *
write_tracebacks(const mh_snapdata_t *snap, uint8_t *p)
{
    p = mh_varint_encode(p, snap->ntracebacks);
    p = mh_varint_encode(p, traceback_frames(snap));
    for (size_t t = 0; t < snap->ntracebacks; t++) {
        const mh_snap_traceback_t *tb = &snap->tracebacks[t];
        p = mh_varint_encode(p, tb->nframe);
        p = mh_varint_encode(p, tb->total_nframe - tb->nframe);
        for (size_t k = 0; k < tb->nframe; k++) {
            p = mh_varint_encode(p, snap->frame_ids[tb->first + k]);
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
        mh_snapfile_set_error(err, err_len,
                              "cannot encode an invalid snapshot: %s", why);
        return -1;
    }
    if (!isfinite(snap->timestamp)) {
        mh_snapfile_set_error(
            err, err_len,
            "cannot encode a snapshot whose timestamp is not finite");
        return -1;
    }
    for (size_t s = 0; s < snap->nstrings; s++) {
        size_t len = (size_t)string_len(snap, s);
        if (len == 0) {
            /* string_data may be NULL then, and NULL + 0 is undefined. */
            continue;
        }
        const uint8_t *str =
            (const uint8_t *)snap->string_data + snap->string_offsets[s];
        if (mh_utf8_check(str, len) != len) {
            mh_snapfile_set_error(
                err, err_len,
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
        mh_snapfile_set_error(err, err_len, "out of memory sorting %zu blocks",
                              snap->nblocks);
        goto error;
    }
    /* Everything but the blocks section has a size known up front.  The
     * blocks section is written after a gap of MH_VARINT_MAX_BYTES for its
     * length, closed by one memmove once the length is known; its first
     * estimate (size varints plus one group per used traceback) is
     * usually close. */
    size_t sizes[3] = {strings_size(snap), frames_size(snap),
                       tracebacks_size(snap)};
    size_t prefix = MH_HDR_SIZE + 1; /* + blocks tag */
    for (int i = 0; i < 3; i++) {
        prefix += 1 + mh_varint_len(sizes[i]) + sizes[i];
    }
    size_t body = prefix + MH_VARINT_MAX_BYTES;
    o.cap = body + MH_VARINT_MAX_BYTES + (size_t)s.size_bytes +
            16 * snap->ntracebacks + 2 + MH_CHECKSUM_SIZE;
    o.buf = malloc(o.cap);
    if (o.buf == NULL) {
        goto nomem;
    }

    uint8_t *buf = o.buf;
    memcpy(buf, MH_SNAPFILE_MAGIC, MH_SNAPFILE_MAGIC_SIZE);
    mh_le_store(buf + MH_HDR_VERSION, MH_SNAPFILE_VERSION, 2);
    buf[MH_HDR_POINTER_SIZE] = (uint8_t)sizeof(void *);
    buf[MH_HDR_RESERVED] = 0;
    mh_le_store(buf + MH_HDR_FLAGS, 0, 4);
    mh_le_store(buf + MH_HDR_HEXVERSION, snap->python_hexversion, 4);
    mh_le_store(buf + MH_HDR_TB_LIMIT, snap->traceback_limit, 4);
    mh_le_store(buf + MH_HDR_SAMPLE_MEAN, snap->sample_mean, 8);
    uint64_t ts_bits;
    memcpy(&ts_bits, &snap->timestamp, sizeof(ts_bits));
    mh_le_store(buf + MH_HDR_TIMESTAMP, ts_bits, 8);

    uint8_t *p = buf + MH_HDR_SIZE;
    uint8_t *(*const writers[3])(const mh_snapdata_t *, uint8_t *) = {
        write_strings, write_frames, write_tracebacks};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        *p++ = (uint8_t)(MH_SECTION_STRINGS + i);
        p = mh_varint_encode(p, sizes[i]);
        uint8_t *start = p;
        p = writers[i](snap, p);
        ok &= p == start + sizes[i];
    }
    *p++ = MH_SECTION_BLOCKS;
    ok &= p == buf + prefix;
    o.len = (size_t)(mh_varint_encode(buf + body, snap->nblocks) - buf);
    for (size_t t = 0; t < snap->ntracebacks; t++) {
        if (s.start[t + 1] > s.start[t] && write_bucket(snap, &s, t, &o) < 0) {
            goto nomem;
        }
    }
    /* The optional attributes section, END and the checksum follow the
     * blocks, which the memmove below only moves towards the start. */
    size_t tail = 2 + MH_CHECKSUM_SIZE;
    if (snap->attributes != NULL) {
        tail += 1 + MH_VARINT_MAX_BYTES + snap->attributes_len;
    }
    if (output_reserve(&o, tail) < 0) {
        goto nomem;
    }
    buf = o.buf;
    size_t blocks_len = o.len - body;
    p = mh_varint_encode(buf + prefix, blocks_len);
    memmove(p, buf + body, blocks_len);
    p += blocks_len;
    if (snap->attributes != NULL) {
        *p++ = MH_SECTION_ATTRIBUTES;
        p = mh_varint_encode(p, snap->attributes_len);
        if (snap->attributes_len) {
            memcpy(p, snap->attributes, snap->attributes_len);
            p += snap->attributes_len;
        }
    }
    *p++ = MH_SECTION_END;
    *p++ = 0;
    size_t total = (size_t)(p - buf) + MH_CHECKSUM_SIZE;
    if (!ok) {
        /* Size and write functions disagree: a bug, never bad input. */
        mh_snapfile_set_error(err, err_len,
                              "internal error: section sizes disagree");
        goto error;
    }
    mh_le_store(buf + MH_HDR_FILE_SIZE, total, 8);
    mh_le_store(p, mh_crc32c_compute(buf, total - MH_CHECKSUM_SIZE), 4);

    scratch_free(&s);
    *out = buf;
    *out_len = total;
    return 0;
nomem:
    mh_snapfile_set_error(err, err_len, "out of memory encoding %zu blocks",
                          snap->nblocks);
error:
    scratch_free(&s);
    free(o.buf);
    return -1;
}
