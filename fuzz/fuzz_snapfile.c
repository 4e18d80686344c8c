/* fuzz_snapfile.c: libFuzzer target for the snapshot file reader.
 *
 * Decodes the input; when that succeeds, encodes the snapshot, decodes the
 * result and aborts unless both snapshots are equal (blocks compared as a
 * multiset, attributes byte for byte) and re-encoding is byte-stable.
 * Inputs of odd length get their header's file size and their checksum
 * rewritten first (fuzz_input.h) so that mutations reach the section
 * parsers; even-length inputs are decoded exactly as they are, which
 * exercises the header and checksum checks (fuzz/README.md).  Single-threaded,
 * as libFuzzer runs it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "snapdata.h"
#include "snapfile.h"

/* Offsets from docs/snapshot-format.md. */
enum { FILE_SIZE_OFFSET = 16, MIN_SEALABLE = 52 };

static int
block_cmp(const void *pa, const void *pb)
{
    const mh_snap_block_t *a = pa, *b = pb;
    uint64_t ka = ((uint64_t)a->traceback << 32) | ((uint64_t)a->flags << 24) |
                  ((uint64_t)a->domain << 16) | a->generation;
    uint64_t kb = ((uint64_t)b->traceback << 32) | ((uint64_t)b->flags << 24) |
                  ((uint64_t)b->domain << 16) | b->generation;
    if (ka != kb) {
        return ka < kb ? -1 : 1;
    }
    return a->size < b->size ? -1 : a->size > b->size;
}

static int
same_blocks(const mh_snapdata_t *a, const mh_snapdata_t *b)
{
    size_t n = a->nblocks, bytes = n * sizeof(mh_snap_block_t);
    if (n != b->nblocks) {
        return 0;
    }
    if (n == 0) {
        return 1;
    }
    mh_snap_block_t *x = malloc(bytes), *y = malloc(bytes);
    if (x == NULL || y == NULL) {
        abort();
    }
    memcpy(x, a->blocks, bytes);
    memcpy(y, b->blocks, bytes);
    qsort(x, n, sizeof(*x), block_cmp);
    qsort(y, n, sizeof(*y), block_cmp);
    int same = memcmp(x, y, bytes) == 0;
    free(x);
    free(y);
    return same;
}

static int
same_snapshot(const mh_snapdata_t *a, const mh_snapdata_t *b)
{
    if (a->python_hexversion != b->python_hexversion ||
        a->traceback_limit != b->traceback_limit ||
        a->sample_mean != b->sample_mean ||
        memcmp(&a->timestamp, &b->timestamp, sizeof(double)) != 0 ||
        a->nstrings != b->nstrings || a->string_bytes != b->string_bytes ||
        a->nframes != b->nframes || a->ntracebacks != b->ntracebacks ||
        (a->attributes == NULL) != (b->attributes == NULL) ||
        a->attributes_len != b->attributes_len) {
        return 0;
    }
    if (a->attributes_len &&
        memcmp(a->attributes, b->attributes, a->attributes_len) != 0) {
        return 0;
    }
    if (memcmp(a->string_offsets, b->string_offsets,
               (a->nstrings + 1) * sizeof(uint64_t)) != 0 ||
        (a->string_bytes &&
         memcmp(a->string_data, b->string_data, a->string_bytes) != 0) ||
        (a->nframes && memcmp(a->frames, b->frames,
                              a->nframes * sizeof(mh_snap_frame_t)) != 0)) {
        return 0;
    }
    for (size_t t = 0; t < a->ntracebacks; t++) {
        const mh_snap_traceback_t *x = &a->tracebacks[t];
        const mh_snap_traceback_t *y = &b->tracebacks[t];
        if (x->nframe != y->nframe || x->total_nframe != y->total_nframe ||
            (x->nframe &&
             memcmp(a->frame_ids + x->first, b->frame_ids + y->first,
                    x->nframe * sizeof(uint32_t)) != 0)) {
            return 0;
        }
    }
    return same_blocks(a, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    uint8_t *input =
        fuzz_input_copy(data, size, FILE_SIZE_OFFSET, MIN_SEALABLE);
    mh_snapdata_t *a = mh_snapfile_decode(input, size, err, sizeof(err));
    free(input);
    if (a == NULL) {
        if (err[0] == '\0') {
            abort(); /* every failure must say why */
        }
        return 0;
    }
    if (mh_snapdata_validate(a) != NULL) {
        abort();
    }
    uint8_t *e1, *e2;
    size_t n1, n2;
    if (mh_snapfile_encode(a, &e1, &n1, err, sizeof(err)) < 0) {
        fprintf(stderr, "re-encode failed: %s\n", err);
        abort();
    }
    mh_snapdata_t *b = mh_snapfile_decode(e1, n1, err, sizeof(err));
    if (b == NULL) {
        fprintf(stderr, "re-decode failed: %s\n", err);
        abort();
    }
    if (!same_snapshot(a, b)) {
        fprintf(stderr, "round trip changed the snapshot\n");
        abort();
    }
    if (mh_snapfile_encode(b, &e2, &n2, err, sizeof(err)) < 0 || n1 != n2 ||
        memcmp(e1, e2, n1) != 0) {
        fprintf(stderr, "encoding is not stable\n");
        abort();
    }
    free(e1);
    free(e2);
    mh_snapdata_free(a);
    mh_snapdata_free(b);
    return 0;
}
