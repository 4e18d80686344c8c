/* tracebacks.c: the interned traceback store (see tracebacks.h).
 *
 * Lookup of a captured traceback is one hash over its frames, one probe of
 * tb_index and a compare of the frames: the common case on every traced
 * allocation.  Hash collisions chain through the records' `next` fields, so
 * the 64-bit hash never has to be unique.  Protected by the main GIL.
 */
#include "tracebacks.h"

#include <string.h>

#include "rawmem.h"
#include "table.h"

struct mh_tbstore {
    mh_tbframe_t *frames;
    size_t nframes, frames_cap;
    mh_table_t frame_index; /* frame hash -> first frame of its chain */

    mh_tbrecord_t *tracebacks;
    size_t ntracebacks, tracebacks_cap;
    uint32_t *frame_ids;
    size_t nframe_ids, frame_ids_cap;
    /* The same frames again, as captured, parallel to frame_ids: the hot
     * lookup compares against these sequentially instead of chasing frame
     * ids into the frame table. */
    mh_raw_frame_t *raw_frames;
    size_t raw_frames_cap;
    mh_table_t tb_index; /* traceback hash -> first record of its chain */
};

static inline uint64_t
frame_hash(const PyCodeObject *code, uint32_t offset)
{
    uint64_t h = mh_table_mix((uint64_t)(uintptr_t)code ^
                              ((uint64_t)offset << 47 | offset));
    return h ? h : 1;
}

/* One multiply per frame on the dependency chain (this runs on every
 * traced allocation, over every frame); the final mix spreads the bits.
 * Collisions only cost a compare. */
static inline uint64_t
traceback_hash(const mh_raw_frame_t *frames, int n, uint32_t total)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)total << 32 | (uint32_t)n);
    for (int i = 0; i < n; i++) {
        uint64_t word = (uint64_t)(uintptr_t)frames[i].code ^
                        ((uint64_t)frames[i].offset << 47) ^ frames[i].offset;
        h = (h ^ word) * 0x9fb21c651e98df25ULL;
    }
    h = mh_table_mix(h);
    return h ? h : 1;
}

mh_tbstore_t *
mh_tbstore_new(void)
{
    mh_tbstore_t *store = mh_rawmem_calloc(1, sizeof(*store));
    if (store == NULL) {
        return NULL;
    }
    mh_table_init(&store->frame_index);
    mh_table_init(&store->tb_index);
    if (mh_rawmem_reserve((void **)&store->tracebacks, &store->tracebacks_cap,
                          64, sizeof(mh_tbrecord_t)) < 0) {
        mh_rawmem_free(store, sizeof(*store));
        return NULL;
    }
    /* Index 0: the empty traceback, never entered in tb_index. */
    memset(&store->tracebacks[0], 0, sizeof(mh_tbrecord_t));
    store->tracebacks[0].next = MH_TB_NONE;
    store->ntracebacks = 1;
    return store;
}

void
mh_tbstore_free(mh_tbstore_t *store)
{
    if (store == NULL) {
        return;
    }
    for (size_t i = 0; i < store->nframes; i++) {
        /* One reference per frame record (see intern_frame). */
        Py_DECREF(store->frames[i].code);
    }
    mh_rawmem_free(store->frames, store->frames_cap * sizeof(mh_tbframe_t));
    mh_rawmem_free(store->tracebacks,
                   store->tracebacks_cap * sizeof(mh_tbrecord_t));
    mh_rawmem_free(store->frame_ids, store->frame_ids_cap * sizeof(uint32_t));
    mh_rawmem_free(store->raw_frames,
                   store->raw_frames_cap * sizeof(mh_raw_frame_t));
    mh_table_fini(&store->frame_index);
    mh_table_fini(&store->tb_index);
    mh_rawmem_free(store, sizeof(*store));
}

/* Index of the frame (code, offset), added if new.  Each frame record owns
 * one reference to its code object: simpler than a separate code table and
 * the count of distinct frames is small.  MH_TB_NONE when out of memory. */
static uint32_t
intern_frame(mh_tbstore_t *store, PyCodeObject *code, uint32_t offset)
{
    uint64_t h = frame_hash(code, offset);
    uint32_t head = MH_TB_NONE;
    if (mh_table_get(&store->frame_index, h, &head)) {
        for (uint32_t i = head; i != MH_TB_NONE; i = store->frames[i].next) {
            if (store->frames[i].code == code &&
                store->frames[i].offset == offset) {
                return i;
            }
        }
    }
    if (store->nframes >= MH_TB_LIMIT ||
        mh_rawmem_reserve((void **)&store->frames, &store->frames_cap,
                          store->nframes + 1, sizeof(mh_tbframe_t)) < 0) {
        return MH_TB_NONE;
    }
    uint32_t index = (uint32_t)store->nframes;
    if (mh_table_put(&store->frame_index, h, index) < 0) {
        return MH_TB_NONE;
    }
    mh_tbframe_t *frame = &store->frames[index];
    Py_INCREF(code);
    frame->code = code;
    frame->offset = offset;
    frame->next = head;
    frame->lineno = -1;
    store->nframes++;
    return index;
}

static inline int
traceback_matches(const mh_tbstore_t *store, const mh_tbrecord_t *record,
                  const mh_raw_frame_t *frames, int n, uint32_t total)
{
    if (record->nframe != n || record->total_nframe != total) {
        return 0;
    }
    const mh_raw_frame_t *stored = store->raw_frames + record->first;
    for (int i = 0; i < n; i++) {
        if (stored[i].code != frames[i].code ||
            stored[i].offset != frames[i].offset) {
            return 0;
        }
    }
    return 1;
}

uint32_t
mh_tbstore_intern(mh_tbstore_t *store, const mh_raw_frame_t *frames, int n,
                  uint32_t total)
{
    if (n <= 0) {
        return 0;
    }
    if (n > UINT16_MAX) {
        n = UINT16_MAX;
    }
    if (total > UINT16_MAX) {
        total = UINT16_MAX;
    }
    if (total < (uint32_t)n) {
        total = (uint32_t)n;
    }
    uint64_t h = traceback_hash(frames, n, total);
    uint32_t head = MH_TB_NONE;
    if (mh_table_get(&store->tb_index, h, &head)) {
        for (uint32_t i = head; i != MH_TB_NONE;
             i = store->tracebacks[i].next) {
            if (store->tracebacks[i].hash == h &&
                traceback_matches(store, &store->tracebacks[i], frames, n,
                                  total)) {
                return i;
            }
        }
    }

    /* New traceback. */
    if (store->ntracebacks >= MH_TB_LIMIT ||
        mh_rawmem_reserve((void **)&store->tracebacks, &store->tracebacks_cap,
                          store->ntracebacks + 1, sizeof(mh_tbrecord_t)) < 0 ||
        mh_rawmem_reserve((void **)&store->frame_ids, &store->frame_ids_cap,
                          store->nframe_ids + (size_t)n,
                          sizeof(uint32_t)) < 0 ||
        mh_rawmem_reserve((void **)&store->raw_frames, &store->raw_frames_cap,
                          store->nframe_ids + (size_t)n,
                          sizeof(mh_raw_frame_t)) < 0) {
        return MH_TB_NONE;
    }
    size_t first = store->nframe_ids;
    for (int i = 0; i < n; i++) {
        uint32_t id = intern_frame(store, frames[i].code, frames[i].offset);
        if (id == MH_TB_NONE) {
            return MH_TB_NONE;
        }
        store->frame_ids[first + i] = id;
        store->raw_frames[first + i] = frames[i];
    }
    uint32_t index = (uint32_t)store->ntracebacks;
    if (mh_table_put(&store->tb_index, h, index) < 0) {
        return MH_TB_NONE;
    }
    mh_tbrecord_t *record = &store->tracebacks[index];
    record->hash = h;
    record->first = (uint32_t)first;
    record->next = head;
    record->nframe = (uint16_t)n;
    record->total_nframe = (uint16_t)total;
    store->nframe_ids += (size_t)n;
    store->ntracebacks++;
    return index;
}

size_t
mh_tbstore_count(const mh_tbstore_t *store)
{
    return store->ntracebacks;
}

size_t
mh_tbstore_frame_count(const mh_tbstore_t *store)
{
    return store->nframes;
}

size_t
mh_tbstore_memory(const mh_tbstore_t *store)
{
    return sizeof(*store) + store->frames_cap * sizeof(mh_tbframe_t) +
           store->tracebacks_cap * sizeof(mh_tbrecord_t) +
           store->frame_ids_cap * sizeof(uint32_t) +
           store->raw_frames_cap * sizeof(mh_raw_frame_t) +
           mh_table_memory(&store->frame_index) +
           mh_table_memory(&store->tb_index);
}

const mh_tbrecord_t *
mh_tbstore_traceback(const mh_tbstore_t *store, uint32_t index)
{
    return &store->tracebacks[index];
}

const uint32_t *
mh_tbstore_frame_ids(const mh_tbstore_t *store, const mh_tbrecord_t *record)
{
    return store->frame_ids + record->first;
}

mh_tbframe_t *
mh_tbstore_frame(mh_tbstore_t *store, uint32_t index)
{
    return &store->frames[index];
}
