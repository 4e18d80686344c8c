/* bench_snapfile.c: encode/decode speed and size of the snapshot format.
 *
 * Builds a synthetic snapshot (default 10M blocks over 10k tracebacks, in
 * random order as a live-trace table would yield them; sizes mostly 16-512
 * bytes, some up to 16 KiB, a few up to 1 MiB), then times
 * mh_snapfile_encode and mh_snapfile_decode (best of 5) and prints bytes
 * per block.  Plain C, no Python:
 *   cc -std=gnu11 -O2 -Isrc/memhound/_core -o /tmp/bench_snapfile \
 *     bench/bench_snapfile.c $(make -s print-pyfree-srcs) -lm
 *   /tmp/bench_snapfile [nblocks] [ntracebacks]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapdata.h"
#include "snapfile.h"

static uint64_t rng_state = 0x853c49e6748fea9bu;

static uint64_t
rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t
block_size(void)
{
    uint64_t r = rng() % 1000;
    if (r < 900) {
        return 16 + rng() % 497; /* 16-512 */
    }
    if (r < 995) {
        return 513 + rng() % 16384;
    }
    return 16384 + rng() % (1 << 20);
}

static mh_snapdata_t *
build(size_t nblocks, size_t ntracebacks)
{
    mh_snapdata_t *snap = mh_snapdata_new();
    char name[64];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(name, sizeof(name), "/srv/app/module_%d.py", i);
        mh_snapdata_add_string(snap, name, (size_t)n);
    }
    for (int i = 0; i < 4000; i++) {
        mh_snapdata_add_frame(snap, 1 + (uint32_t)(rng() % 1000),
                              1 + (uint32_t)(rng() % 1000),
                              (int32_t)(rng() % 3000));
    }
    uint32_t ids[25];
    while (snap->ntracebacks < ntracebacks) {
        uint16_t depth = (uint16_t)(1 + rng() % 25);
        for (int k = 0; k < depth; k++) {
            ids[k] = (uint32_t)(rng() % 4000);
        }
        mh_snapdata_add_traceback(snap, ids, depth, depth);
    }
    mh_snapdata_reserve_blocks(snap, nblocks);
    for (size_t i = 0; i < nblocks; i++) {
        /* Skewed: a few tracebacks own most blocks. */
        double u = (double)(rng() >> 11) / 9007199254740992.0;
        mh_snap_block_t b = {
            .size = block_size(),
            .traceback = (uint32_t)(1 + (ntracebacks - 1) * u * u),
            .generation = (uint16_t)(rng() % 8),
            .domain = (uint8_t)(rng() % 10 < 8 ? MH_DOMAIN_OBJ : rng() % 3),
        };
        snap->blocks[snap->nblocks++] = b;
    }
    snap->timestamp = 1732540000.0;
    snap->python_hexversion = 0x030C04F0;
    snap->traceback_limit = 25;
    return snap;
}

int
main(int argc, char **argv)
{
    size_t nblocks = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    size_t ntracebacks = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000;
    char err[256];
    mh_snapdata_t *snap = build(nblocks, ntracebacks);
    double best_enc = 1e9, best_dec = 1e9;
    size_t len = 0;
    for (int rep = 0; rep < 5; rep++) {
        uint8_t *buf;
        double t0 = now();
        if (mh_snapfile_encode(snap, &buf, &len, err, sizeof(err)) < 0) {
            fprintf(stderr, "encode: %s\n", err);
            return 1;
        }
        double t1 = now();
        mh_snapdata_t *back = mh_snapfile_decode(buf, len, err, sizeof(err));
        double t2 = now();
        if (back == NULL || back->nblocks != nblocks) {
            fprintf(stderr, "decode: %s\n", err);
            return 1;
        }
        mh_snapdata_free(back);
        free(buf);
        best_enc = t1 - t0 < best_enc ? t1 - t0 : best_enc;
        best_dec = t2 - t1 < best_dec ? t2 - t1 : best_dec;
    }
    printf(
        "blocks %zu, tracebacks %zu: file %zu bytes (%.3f bytes/block), "
        "encode %.1f ms, decode %.1f ms (best of 5)\n",
        nblocks, ntracebacks, len, (double)len / (double)nblocks,
        best_enc * 1e3, best_dec * 1e3);
    mh_snapdata_free(snap);
    return 0;
}
