/* snapdata.c: construction, validation and release of mh_snapdata_t.
 * Python-free; see snapdata.h for the invariants this file enforces. */
#include "snapdata.h"

#include <math.h>
#include <string.h>

#include "rawmem.h"
#include "utf8.h"

mh_snapdata_t *
mh_snapdata_new(void)
{
    mh_snapdata_t *snap = mh_rawmem_calloc(1, sizeof(*snap));
    if (snap == NULL) {
        return NULL;
    }
    if (mh_rawmem_reserve((void **)&snap->string_offsets, &snap->strings_cap,
                          2, sizeof(uint64_t)) < 0) {
        goto error;
    }
    snap->string_offsets[0] = 0;
    snap->string_offsets[1] = 0;
    snap->nstrings = 1; /* string 0 is "" */
    snap->string_bytes = 0;
    if (mh_snapdata_add_traceback(snap, NULL, 0, 0) != 0) {
        goto error;
    }
    return snap;
error:
    mh_snapdata_free(snap);
    return NULL;
}

void
mh_snapdata_free(mh_snapdata_t *snap)
{
    if (snap == NULL) {
        return;
    }
    mh_rawmem_free(snap->blocks, snap->blocks_cap * sizeof(mh_snap_block_t));
    mh_rawmem_free(snap->tracebacks,
                   snap->tracebacks_cap * sizeof(mh_snap_traceback_t));
    mh_rawmem_free(snap->frame_ids, snap->frame_ids_cap * sizeof(uint32_t));
    mh_rawmem_free(snap->frames, snap->frames_cap * sizeof(mh_snap_frame_t));
    mh_rawmem_free(snap->string_offsets, snap->strings_cap * sizeof(uint64_t));
    mh_rawmem_free(snap->string_data, snap->string_bytes_cap);
    mh_rawmem_free(snap->attributes, snap->attributes_len);
    mh_rawmem_free(snap, sizeof(*snap));
}

size_t
mh_snapdata_memory(const mh_snapdata_t *snap)
{
    return sizeof(*snap) + snap->blocks_cap * sizeof(mh_snap_block_t) +
           snap->tracebacks_cap * sizeof(mh_snap_traceback_t) +
           snap->frame_ids_cap * sizeof(uint32_t) +
           snap->frames_cap * sizeof(mh_snap_frame_t) +
           snap->strings_cap * sizeof(uint64_t) + snap->string_bytes_cap +
           snap->attributes_len;
}

const char *
mh_snapdata_validate(const mh_snapdata_t *snap)
{
    if (snap->ntracebacks == 0 || snap->tracebacks[0].nframe != 0) {
        return "traceback 0 must exist and be empty";
    }
    if (snap->nstrings == 0 || snap->string_offsets == NULL) {
        return "string table is empty";
    }
    if (snap->string_offsets[0] != 0) {
        return "string offsets must start at 0";
    }
    for (size_t s = 0; s < snap->nstrings; s++) {
        if (snap->string_offsets[s + 1] < snap->string_offsets[s]) {
            return "string offsets are not ascending";
        }
    }
    if (snap->string_offsets[snap->nstrings] != snap->string_bytes) {
        return "string offsets do not cover the string data";
    }
    for (size_t f = 0; f < snap->nframes; f++) {
        if (snap->frames[f].filename >= snap->nstrings ||
            snap->frames[f].function >= snap->nstrings) {
            return "frame names a string that does not exist";
        }
    }
    for (size_t k = 0; k < snap->nframe_ids; k++) {
        if (snap->frame_ids[k] >= snap->nframes) {
            return "traceback names a frame that does not exist";
        }
    }
    for (size_t t = 0; t < snap->ntracebacks; t++) {
        const mh_snap_traceback_t *tb = &snap->tracebacks[t];
        if ((uint64_t)tb->first + tb->nframe > snap->nframe_ids) {
            return "traceback frames run past the frame list";
        }
        if (tb->nframe > tb->total_nframe) {
            return "traceback stores more frames than its total";
        }
    }
    for (size_t b = 0; b < snap->nblocks; b++) {
        if (snap->blocks[b].traceback >= snap->ntracebacks) {
            return "block names a traceback that does not exist";
        }
        if (snap->blocks[b].domain >= MH_DOMAIN_COUNT) {
            return "block has an unknown domain";
        }
    }
    if (snap->attributes == NULL) {
        if (snap->attributes_len != 0) {
            return "attributes have a length but no text";
        }
    }
    else if (snap->attributes_len > MH_SNAPDATA_MAX_ATTRIBUTES) {
        return "attributes are longer than MH_SNAPDATA_MAX_ATTRIBUTES";
    }
    else if (mh_utf8_check((const uint8_t *)snap->attributes,
                           snap->attributes_len) != snap->attributes_len) {
        return "attributes are not valid UTF-8";
    }
    return NULL;
}

int
mh_snapdata_set_attributes(mh_snapdata_t *snap, const char *utf8, size_t len)
{
    char *copy = NULL;
    if (utf8 != NULL) {
        if (len > MH_SNAPDATA_MAX_ATTRIBUTES) {
            return -1;
        }
        /* mh_rawmem_malloc(0) returns a 1-byte block: an empty text is
         * still distinct from none. */
        copy = mh_rawmem_malloc(len);
        if (copy == NULL) {
            return -1;
        }
        if (len) {
            memcpy(copy, utf8, len);
        }
    }
    mh_rawmem_free(snap->attributes, snap->attributes_len);
    snap->attributes = copy;
    snap->attributes_len = utf8 != NULL ? len : 0;
    return 0;
}

int64_t
mh_snapdata_add_string(mh_snapdata_t *snap, const char *utf8, size_t len)
{
    if (snap->nstrings >= UINT32_MAX) {
        return -1;
    }
    size_t need;
    if (__builtin_add_overflow(snap->string_bytes, len, &need)) {
        return -1;
    }
    if (mh_rawmem_reserve((void **)&snap->string_data, &snap->string_bytes_cap,
                          need, 1) < 0 ||
        mh_rawmem_reserve((void **)&snap->string_offsets, &snap->strings_cap,
                          snap->nstrings + 2, sizeof(uint64_t)) < 0) {
        return -1;
    }
    if (len) {
        memcpy(snap->string_data + snap->string_bytes, utf8, len);
    }
    snap->string_bytes = need;
    snap->string_offsets[snap->nstrings + 1] = need;
    return (int64_t)snap->nstrings++;
}

int64_t
mh_snapdata_add_frame(mh_snapdata_t *snap, uint32_t filename,
                      uint32_t function, int32_t lineno)
{
    if (snap->nframes >= UINT32_MAX ||
        mh_rawmem_reserve((void **)&snap->frames, &snap->frames_cap,
                          snap->nframes + 1, sizeof(mh_snap_frame_t)) < 0) {
        return -1;
    }
    mh_snap_frame_t *f = &snap->frames[snap->nframes];
    f->filename = filename;
    f->function = function;
    f->lineno = lineno;
    return (int64_t)snap->nframes++;
}

int64_t
mh_snapdata_add_traceback(mh_snapdata_t *snap, const uint32_t *frame_ids,
                          uint16_t nframe, uint16_t total_nframe)
{
    if (snap->ntracebacks >= UINT32_MAX ||
        snap->nframe_ids + nframe > UINT32_MAX) {
        return -1;
    }
    if (mh_rawmem_reserve((void **)&snap->tracebacks, &snap->tracebacks_cap,
                          snap->ntracebacks + 1,
                          sizeof(mh_snap_traceback_t)) < 0 ||
        mh_rawmem_reserve((void **)&snap->frame_ids, &snap->frame_ids_cap,
                          snap->nframe_ids + nframe, sizeof(uint32_t)) < 0) {
        return -1;
    }
    mh_snap_traceback_t *tb = &snap->tracebacks[snap->ntracebacks];
    tb->first = (uint32_t)snap->nframe_ids;
    tb->nframe = nframe;
    tb->total_nframe = total_nframe < nframe ? nframe : total_nframe;
    if (nframe) {
        memcpy(snap->frame_ids + snap->nframe_ids, frame_ids,
               nframe * sizeof(uint32_t));
    }
    snap->nframe_ids += nframe;
    return (int64_t)snap->ntracebacks++;
}

int
mh_snapdata_reserve_blocks(mh_snapdata_t *snap, size_t n)
{
    size_t need;
    if (__builtin_add_overflow(snap->nblocks, n, &need)) {
        return -1;
    }
    return mh_rawmem_reserve((void **)&snap->blocks, &snap->blocks_cap, need,
                             sizeof(mh_snap_block_t));
}

int
mh_snapdata_add_block(mh_snapdata_t *snap, const mh_snap_block_t *block)
{
    if (mh_snapdata_reserve_blocks(snap, 1) < 0) {
        return -1;
    }
    snap->blocks[snap->nblocks++] = *block;
    return 0;
}

double
mh_snapdata_block_weight(uint64_t sample_mean, uint64_t size)
{
    if (sample_mean == 0) {
        return 1.0;
    }
    if (size == 0) {
        /* A zero-byte block is sampled only when the countdown had already
         * run out; count it once rather than dividing by zero. */
        return 1.0;
    }
    double p = -expm1(-(double)size / (double)sample_mean);
    return p > 0.0 ? 1.0 / p : 1.0;
}
