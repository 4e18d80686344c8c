/* fuzz_capfile.c: libFuzzer target for the capture file reader
 * (capfile.c, docs/capture-format.md).
 *
 * Decodes the input; when that succeeds, encodes the capture again,
 * decodes the result and aborts unless the report text and the snapshots'
 * sizes survived and re-encoding is byte-stable.  As in fuzz_snapfile.c,
 * odd-length inputs get their header's file size and checksum rewritten so
 * mutations reach the section parser and the embedded snapshot reader;
 * even-length ones are decoded as they are.  Single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capfile.h"
#include "fuzz_input.h"
#include "snapdata.h"

/* Offsets from docs/capture-format.md. */
enum { FILE_SIZE_OFFSET = 16, MIN_SEALABLE = 28 };

static int
same_snap(const mh_snapdata_t *a, const mh_snapdata_t *b)
{
    if ((a == NULL) != (b == NULL)) {
        return 0;
    }
    return a == NULL ||
           (a->nblocks == b->nblocks && a->ntracebacks == b->ntracebacks &&
            a->nframes == b->nframes && a->nstrings == b->nstrings);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    uint8_t *input =
        fuzz_input_copy(data, size, FILE_SIZE_OFFSET, MIN_SEALABLE);
    err[0] = '\0';
    mh_capture_t *a = mh_capfile_decode(input, size, err, sizeof(err));
    free(input);
    if (a == NULL) {
        if (err[0] == '\0') {
            abort(); /* every failure must say why */
        }
        return 0;
    }
    if (a->report[a->report_len] != '\0') {
        abort();
    }
    uint8_t *e1, *e2;
    size_t n1, n2;
    if (mh_capfile_encode(a->report, a->report_len, a->peak, a->exit, &e1, &n1,
                          err, sizeof(err)) < 0) {
        fprintf(stderr, "re-encode failed: %s\n", err);
        abort();
    }
    mh_capture_t *b = mh_capfile_decode(e1, n1, err, sizeof(err));
    if (b == NULL) {
        fprintf(stderr, "re-decode failed: %s\n", err);
        abort();
    }
    if (a->report_len != b->report_len ||
        memcmp(a->report, b->report, a->report_len) != 0 ||
        !same_snap(a->peak, b->peak) || !same_snap(a->exit, b->exit)) {
        fprintf(stderr, "round trip changed the capture\n");
        abort();
    }
    if (mh_capfile_encode(b->report, b->report_len, b->peak, b->exit, &e2, &n2,
                          err, sizeof(err)) < 0 ||
        n1 != n2 || memcmp(e1, e2, n1) != 0) {
        fprintf(stderr, "encoding is not stable\n");
        abort();
    }
    free(e1);
    free(e2);
    mh_capture_free(a);
    mh_capture_free(b);
    return 0;
}
