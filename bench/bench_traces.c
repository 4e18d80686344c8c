/* bench_traces.c: microbenchmark of the live-block table (traces.h).
 *
 * Measures, without Python: the latency of every insert while filling to
 * 10 million blocks (mean, 99.99th percentile and maximum, to show that
 * incremental growth has no long pause), the steady-state cost of a
 * remove + insert pair at 1M and 10M live blocks (FIFO turnover, the
 * pattern of a program whose heap stays the same size), lookups, and the
 * bytes held per block.  Build without sanitizers, e.g.
 *   cc -std=gnu11 -O2 -Isrc/memhound/_core -o /tmp/bench_traces \
 *      bench/bench_traces.c src/memhound/_core/traces.c \
 *      src/memhound/_core/rawmem.c src/memhound/_core/snapdata.c -lm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rawmem.h"
#include "traces.h"

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The k-th block address: 16-byte aligned, spread over a few arenas the
 * way a real heap is, never 0. */
static uintptr_t
block_addr(size_t k)
{
    return (uintptr_t)0x7f0000000000 + ((uintptr_t)(k & 15) << 36) +
           (uintptr_t)(k >> 4) * 48;
}

static mh_trace_t
block(size_t k)
{
    mh_trace_t t;
    memset(&t, 0, sizeof(t));
    t.ptr = block_addr(k);
    t.size = 32 + (k & 255);
    t.traceback = (uint32_t)(k & 0xffff);
    t.generation = 1;
    t.domain = 2;
    return t;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fill to n blocks timing every insert; returns the table.  Calls that
 * changed mh_traces_memory() (starting a resize, shrinking or freeing the
 * old half) are reported apart from the rest, whose outliers on a shared
 * machine are mostly preemption and page faults. */
static mh_traces_t *
fill_timed(size_t n)
{
    mh_traces_t *t = mh_traces_new();
    double *lat = malloc(n * sizeof(double));
    if (t == NULL || lat == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    double max_mem_call = 0, max_other = 0, timer = now_ns();
    for (int k = 0; k < 1000; k++) {
        (void)now_ns();
    }
    timer = (now_ns() - timer) / 1000;
    size_t mem_calls = 0, imax_mem = 0, imax_other = 0;
    size_t mem = mh_traces_memory(t);
    double start = now_ns();
    for (size_t k = 0; k < n; k++) {
        mh_trace_t tr = block(k);
        double t0 = now_ns();
        if (mh_traces_insert(t, &tr, NULL) != 0) {
            fprintf(stderr, "insert failed\n");
            exit(1);
        }
        lat[k] = now_ns() - t0;
        size_t m = mh_traces_memory(t);
        if (m != mem) {
            mem = m;
            mem_calls++;
            if (lat[k] > max_mem_call) {
                max_mem_call = lat[k];
                imax_mem = k;
            }
        }
        else if (lat[k] > max_other) {
            max_other = lat[k];
            imax_other = k;
        }
    }
    double total = now_ns() - start;
    qsort(lat, n, sizeof(double), cmp_double);
    printf(
        "fill to %zu: %.1f ns/insert wall (timer %.0f ns incl.), "
        "median %.0f ns, p99.99 %.0f ns\n"
        "  max %.1f us over the %zu calls that grew, shrank or freed "
        "(insert %zu); max %.1f us over the others (insert %zu)\n",
        n, total / (double)n, timer, lat[n / 2], lat[n - n / 10000 - 1],
        max_mem_call / 1e3, mem_calls, imax_mem, max_other / 1e3, imax_other);
    free(lat);
    return t;
}

/* FIFO turnover at a constant live count: remove the oldest block, insert
 * a new one.  Timed in 10 chunks; the best chunk is the least disturbed
 * by other load on the machine. */
static void
turnover(mh_traces_t *t, size_t live, size_t rounds)
{
    double best = 1e30, sum = 0;
    size_t chunk = rounds / 10;
    for (size_t c = 0; c < 10; c++) {
        double start = now_ns();
        for (size_t k = c * chunk; k < (c + 1) * chunk; k++) {
            mh_trace_t tr = block(live + k);
            if (mh_traces_remove(t, block_addr(k), NULL) != 1 ||
                mh_traces_insert(t, &tr, NULL) != 0) {
                fprintf(stderr, "turnover failed\n");
                exit(1);
            }
        }
        double ns = (now_ns() - start) / (double)chunk;
        sum += ns;
        best = ns < best ? ns : best;
    }
    /* Lookups of live blocks, spread over the table. */
    size_t hits = 0, done = chunk * 10;
    double g0 = now_ns();
    for (size_t k = 0; k < done; k++) {
        mh_trace_t out;
        hits +=
            (size_t)mh_traces_get(t, block_addr(done + k * 7 % live), &out);
    }
    double gns = (now_ns() - g0) / (double)done;
    printf(
        "%zu live: remove+insert pair %.1f ns mean, %.1f ns best chunk; "
        "get %.1f ns (%zu/%zu hits); %.2f bytes/block\n",
        live, sum / 10, best, gns, hits, done,
        (double)mh_traces_memory(t) / (double)mh_traces_count(t));
}

int
main(void)
{
    mh_traces_t *t = fill_timed(1000000);
    turnover(t, 1000000, 5000000);
    mh_traces_free(t);

    t = fill_timed(10000000);
    printf("10000000 blocks: %zu bytes, %.2f bytes/block\n",
           mh_traces_memory(t),
           (double)mh_traces_memory(t) / (double)mh_traces_count(t));
    turnover(t, 10000000, 5000000);
    mh_traces_free(t);
    return 0;
}
