/* snapfile_decode.c: the one reader of the snapshot file format
 * (docs/snapshot-format.md, layout in snapfile_format.h):
 * mh_snapfile_decode turns the bytes of a file into a new mh_snapdata_t.
 *
 * The input is hostile: every count is bounded by the bytes left before
 * anything is allocated, every index and length is checked, and the result
 * must pass mh_snapdata_validate().  The snapshot and its arrays come from
 * rawmem.h (failure injection applies); a failed decode frees everything.
 * No global state: Python-free and reentrant, callers may release the GIL.
 */
#include "snapfile.h"

#include <math.h>
#include <string.h>

#include "bytes.h"
#include "filecheck.h"
#include "rawmem.h"
#include "snapfile_format.h"
#include "utf8.h"

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

/* ---- decoder ----------------------------------------------------------- */

/* Smallest encodings of one element, used to bound counts by the bytes
 * left before anything is allocated. */
enum {
    MIN_FRAME_BYTES = 3,     /* filename, function, lineno */
    MIN_TRACEBACK_BYTES = 2, /* nframe, extra frames */
};

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
    static const char *const names[] = {"end",        "strings", "frames",
                                        "tracebacks", "blocks",  "attributes"};
    return tag <= MH_SECTION_LAST ? names[tag] : "unknown";
}

/* Sections in the order a file holds them, END last; only ATTRIBUTES may
 * be left out. */
static const mh_section_tag_t section_order[] = {
    MH_SECTION_STRINGS, MH_SECTION_FRAMES,     MH_SECTION_TRACEBACKS,
    MH_SECTION_BLOCKS,  MH_SECTION_ATTRIBUTES, MH_SECTION_END};
#define NSECTIONS (sizeof(section_order) / sizeof(section_order[0]))

static inline int
section_optional(mh_section_tag_t tag)
{
    return tag == MH_SECTION_ATTRIBUTES;
}

/* Position of a known tag (<= MH_SECTION_LAST) in section_order. */
static size_t
section_rank(unsigned tag)
{
    size_t r = 0;
    while (r < NSECTIONS - 1 && section_order[r] != tag) {
        r++;
    }
    return r;
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
             mh_varint_status_t status)
{
    const char *problem = status == MH_VARINT_TRUNCATED
                              ? "runs past the end of the section"
                          : status == MH_VARINT_TOO_LONG
                              ? "is longer than 10 bytes or above 2^64-1"
                              : "is overlong (ends in a zero byte)";
    mh_snapfile_set_error(d->err, d->err_len,
                          "%s section: varint %s at offset %zu %s", d->section,
                          what, offset(d, at), problem);
}

static int
read_varint(decoder_t *d, const char *what, uint64_t *out)
{
    const uint8_t *at = d->p;
    mh_varint_status_t status = mh_varint_decode(&d->p, d->end, out);
    if (status != MH_VARINT_OK) {
        varint_error(d, at, what, status);
        return -1;
    }
    return 0;
}

static int
out_of_memory(decoder_t *d, const char *what, uint64_t n)
{
    mh_snapfile_set_error(d->err, d->err_len, "out of memory for %llu %s",
                          (unsigned long long)n, what);
    return -1;
}

/* A count of elements taking at least min_bytes each must fit in the bytes
 * left, which bounds every allocation by the input's size. */
static int
check_count(decoder_t *d, uint64_t n, size_t min_bytes, const char *what)
{
    if (n > left(d) / min_bytes || n > UINT32_MAX) {
        mh_snapfile_set_error(
            d->err, d->err_len,
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
        mh_snapfile_set_error(
            d->err, d->err_len,
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
            mh_snapfile_set_error(
                d->err, d->err_len,
                "strings section: string %zu needs %llu bytes, %zu "
                "remain",
                s, (unsigned long long)len, left(d));
            return -1;
        }
        size_t bad = mh_utf8_check(d->p, (size_t)len);
        if (bad != len) {
            mh_snapfile_set_error(
                d->err, d->err_len,
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
                mh_snapfile_set_error(
                    d->err, d->err_len,
                    "frame %zu names string %llu of %zu (%s)", f,
                    (unsigned long long)names[k], snap->nstrings,
                    k == 0 ? "file name" : "function name");
                return -1;
            }
        }
        if (z > UINT32_MAX) {
            mh_snapfile_set_error(
                d->err, d->err_len,
                "frame %zu has a line number out of the 32-bit range", f);
            return -1;
        }
        mh_snap_frame_t *fr = &snap->frames[f];
        fr->filename = (uint32_t)names[0];
        fr->function = (uint32_t)names[1];
        fr->lineno = mh_zigzag_decode(z);
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
        mh_snapfile_set_error(
            d->err, d->err_len,
            "tracebacks section: no tracebacks (traceback 0 is "
            "required)");
        return -1;
    }
    if (nids > left(d) - n * MIN_TRACEBACK_BYTES) {
        mh_snapfile_set_error(
            d->err, d->err_len,
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
            mh_snapfile_set_error(
                d->err, d->err_len,
                "traceback %zu has %llu + %llu frames (at most %u)", t,
                (unsigned long long)nframe, (unsigned long long)extra,
                (unsigned)UINT16_MAX);
            return -1;
        }
        if (t == 0 && nframe != 0) {
            mh_snapfile_set_error(
                d->err, d->err_len,
                "traceback 0 must be empty but has %llu frames",
                (unsigned long long)nframe);
            return -1;
        }
        if (nframe > nids - used) {
            mh_snapfile_set_error(
                d->err, d->err_len,
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
                mh_snapfile_set_error(d->err, d->err_len,
                                      "traceback %zu names frame %llu of %zu",
                                      t, (unsigned long long)id,
                                      snap->nframes);
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
        mh_snapfile_set_error(
            d->err, d->err_len,
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
        }
        else if (end - p >= 2 && p[1] < 0x80 && p[1] != 0) {
            size = (p[0] & 0x7fu) | ((uint64_t)p[1] << 7);
            p += 2;
        }
        else {
            const uint8_t *at = p;
            mh_varint_status_t status = mh_varint_decode_slow(&p, end, &size);
            if (status != MH_VARINT_OK) {
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
        mh_snapfile_set_error(
            d->err, d->err_len,
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
            mh_snapfile_set_error(
                d->err, d->err_len, "block %zu names traceback %llu of %zu",
                filled, (unsigned long long)tb, snap->ntracebacks);
            return -1;
        }
        if (ngroups == 0 || ngroups > nblocks - filled) {
            mh_snapfile_set_error(
                d->err, d->err_len,
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
                mh_snapfile_set_error(
                    d->err, d->err_len,
                    "block %zu has unknown domain or flags (kind "
                    "%llu)",
                    filled, (unsigned long long)kind);
                return -1;
            }
            if (gen > UINT16_MAX) {
                mh_snapfile_set_error(
                    d->err, d->err_len,
                    "block %zu has generation %llu (at most %u)", filled,
                    (unsigned long long)gen, (unsigned)UINT16_MAX);
                return -1;
            }
            if (count == 0 || count > nblocks - filled) {
                mh_snapfile_set_error(
                    d->err, d->err_len,
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

/* The whole payload is the text: UTF-8 as for strings, at most
 * MH_SNAPDATA_MAX_ATTRIBUTES bytes. */
static int
parse_attributes(decoder_t *d)
{
    size_t len = left(d);
    if (len > MH_SNAPDATA_MAX_ATTRIBUTES) {
        mh_snapfile_set_error(
            d->err, d->err_len,
            "attributes section: %zu bytes, at most %zu are allowed", len,
            MH_SNAPDATA_MAX_ATTRIBUTES);
        return -1;
    }
    size_t bad = mh_utf8_check(d->p, len);
    if (bad != len) {
        mh_snapfile_set_error(d->err, d->err_len,
                              "attributes section: not valid UTF-8 (byte "
                              "%zu, at offset %zu)",
                              bad, offset(d, d->p + bad));
        return -1;
    }
    /* d->p is never NULL here: it points into the file. */
    if (mh_snapdata_set_attributes(d->snap, (const char *)d->p, len) < 0) {
        return out_of_memory(d, "bytes of attributes", len);
    }
    d->p += len;
    return 0;
}

/* Magic, version, size, checksum, then the other header fields.  Reports
 * the most useful problem first: a truncated file says so rather than
 * "checksum mismatch". */
static int
check_header(const uint8_t *data, size_t len, char *err, size_t err_len)
{
    if (len == 0) {
        mh_snapfile_set_error(err, err_len,
                              "empty file (not a memhound snapshot)");
        return -1;
    }
    if (memcmp(data, MH_SNAPFILE_MAGIC,
               len < MH_SNAPFILE_MAGIC_SIZE ? len : MH_SNAPFILE_MAGIC_SIZE)) {
        mh_snapfile_set_error(err, err_len,
                              "not a memhound snapshot (bad magic)");
        return -1;
    }
    if (len < MH_HDR_VERSION + 2) {
        mh_snapfile_set_error(
            err, err_len,
            "truncated file: %zu bytes, the header alone needs %d", len,
            MH_HDR_SIZE);
        return -1;
    }
    unsigned version = (unsigned)mh_le_load(data + MH_HDR_VERSION, 2);
    if (version != MH_SNAPFILE_VERSION) {
        mh_snapfile_set_error(
            err, err_len,
            "unsupported format version %u (this memhound reads %d)", version,
            MH_SNAPFILE_VERSION);
        return -1;
    }
    if (len < MH_HDR_SIZE) {
        mh_snapfile_set_error(
            err, err_len,
            "truncated file: %zu bytes, the header alone needs %d", len,
            MH_HDR_SIZE);
        return -1;
    }
    uint64_t file_size = mh_le_load(data + MH_HDR_FILE_SIZE, 8);
    if (mh_filecheck_size_and_checksum(data, len, file_size,
                                       MH_HDR_SIZE + 2 + MH_CHECKSUM_SIZE,
                                       "snapshot", err, err_len) < 0) {
        return -1;
    }
    unsigned ptr_size = data[MH_HDR_POINTER_SIZE];
    if (ptr_size != 4 && ptr_size != 8) {
        mh_snapfile_set_error(err, err_len,
                              "unsupported pointer size %u in the header",
                              ptr_size);
        return -1;
    }
    uint32_t flags = (uint32_t)mh_le_load(data + MH_HDR_FLAGS, 4);
    if (data[MH_HDR_RESERVED] != 0 || flags != 0) {
        mh_snapfile_set_error(
            err, err_len,
            "unknown header flags 0x%08x or reserved byte 0x%02x "
            "(format version 1 defines none)",
            (unsigned)flags, (unsigned)data[MH_HDR_RESERVED]);
        return -1;
    }
    uint64_t ts_bits = mh_le_load(data + MH_HDR_TIMESTAMP, 8);
    double ts;
    memcpy(&ts, &ts_bits, sizeof(ts));
    if (!isfinite(ts)) {
        mh_snapfile_set_error(err, err_len,
                              "the header's timestamp is not finite");
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
        mh_snapfile_set_error(err, err_len, "out of memory for a snapshot");
        return NULL;
    }
    snap->python_hexversion =
        (uint32_t)mh_le_load(data + MH_HDR_HEXVERSION, 4);
    snap->traceback_limit = (uint32_t)mh_le_load(data + MH_HDR_TB_LIMIT, 4);
    snap->sample_mean = mh_le_load(data + MH_HDR_SAMPLE_MEAN, 8);
    uint64_t ts_bits = mh_le_load(data + MH_HDR_TIMESTAMP, 8);
    memcpy(&snap->timestamp, &ts_bits, sizeof(ts_bits));

    decoder_t d = {.base = data, .snap = snap, .err = err, .err_len = err_len};
    const uint8_t *p = data + MH_HDR_SIZE;
    const uint8_t *region_end = data + len - MH_CHECKSUM_SIZE;
    /* Sections in section_order: next is the rank of the first one that
     * may still come. */
    for (size_t next = 0;;) {
        if (p == region_end) {
            while (section_optional(section_order[next])) {
                next++; /* END is not optional: this stops */
            }
            mh_snapfile_set_error(
                err, err_len,
                "missing %s section (sections end at offset %zu)",
                section_name(section_order[next]), offset(&d, p));
            goto error;
        }
        const uint8_t *at = p;
        unsigned tag = *p++;
        if (tag > MH_SECTION_LAST) {
            mh_snapfile_set_error(
                err, err_len,
                "unknown section tag %u at offset %zu (format version "
                "1 has tags 0 to %d)",
                tag, offset(&d, at), (int)MH_SECTION_LAST);
            goto error;
        }
        size_t rank = section_rank(tag);
        if (rank < next) {
            /* Every section before next has been seen (the required ones
             * cannot be skipped, the optional one is passed only by
             * reading it). */
            mh_snapfile_set_error(err, err_len,
                                  "duplicate %s section at offset %zu",
                                  section_name(tag), offset(&d, at));
            goto error;
        }
        for (; next < rank; next++) {
            if (!section_optional(section_order[next])) {
                mh_snapfile_set_error(
                    err, err_len,
                    "missing %s section (found the %s section at "
                    "offset %zu)",
                    section_name(section_order[next]), section_name(tag),
                    offset(&d, at));
                goto error;
            }
        }
        next = rank + 1;
        d.section = section_name(tag);
        d.p = p;
        d.end = region_end;
        uint64_t size;
        if (read_varint(&d, "section length", &size) < 0) {
            goto error;
        }
        p = d.p;
        if (size > (size_t)(region_end - p)) {
            mh_snapfile_set_error(
                err, err_len,
                "truncated file: %s section needs %llu bytes, %zu "
                "remain",
                d.section, (unsigned long long)size, (size_t)(region_end - p));
            goto error;
        }
        if (tag == MH_SECTION_END) {
            if (size != 0 || p != region_end) {
                mh_snapfile_set_error(
                    err, err_len,
                    "%zu unexpected bytes after the end section at "
                    "offset %zu",
                    (size_t)(region_end - p), offset(&d, at));
                goto error;
            }
            break;
        }
        d.end = p + size;
        int rc = tag == MH_SECTION_STRINGS      ? parse_strings(&d)
                 : tag == MH_SECTION_FRAMES     ? parse_frames(&d)
                 : tag == MH_SECTION_TRACEBACKS ? parse_tracebacks(&d)
                 : tag == MH_SECTION_BLOCKS     ? parse_blocks(&d)
                                                : parse_attributes(&d);
        if (rc < 0) {
            goto error;
        }
        if (d.p != d.end) {
            mh_snapfile_set_error(
                err, err_len, "%s section has %zu unused bytes at offset %zu",
                d.section, left(&d), offset(&d, d.p));
            goto error;
        }
        p = d.end;
    }
    const char *why = mh_snapdata_validate(snap);
    if (why != NULL) {
        mh_snapfile_set_error(err, err_len, "inconsistent snapshot: %s", why);
        goto error;
    }
    return snap;
error:
    mh_snapdata_free(snap);
    return NULL;
}
