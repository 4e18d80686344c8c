/* leaky.c: a small C library that leaks, for memhound's native tests.
 *
 * Built by tests/native/build.py with the system compiler and called
 * through ctypes.  leak() keeps what it allocates, fixed() frees it; both
 * touch every byte so the allocation can't be optimized away.  The other
 * functions exercise the rest of the intercepted allocator family and
 * threads that never touch Python.
 */
#define _GNU_SOURCE /* asprintf */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *
leak(size_t n)
{
    char *p = malloc(n);
    if (p != NULL) {
        memset(p, 1, n);
    }
    return p;
}

void
fixed(size_t n)
{
    char *p = malloc(n);
    if (p != NULL) {
        memset(p, 1, n);
    }
    free(p);
}

/* One of each: calloc, realloc, posix_memalign, aligned_alloc, strdup and
 * an anonymous mmap, kept in out[0..6). */
void
leak_family(void **out)
{
    out[0] = calloc(10, 100);
    out[1] = realloc(malloc(10), 2000);
    out[2] = NULL;
    if (posix_memalign(&out[2], 64, 3000) != 0) {
        out[2] = NULL;
    }
    out[3] = aligned_alloc(64, 4096);
    out[4] = strdup("memhound native test");
    void *map = mmap(NULL, 65536, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    out[5] = map == MAP_FAILED ? NULL : map;
}

void
free_family(void **out)
{
    for (int i = 0; i < 5; i++) {
        free(out[i]);
    }
    if (out[5] != NULL) {
        munmap(out[5], 65536);
    }
}

/* n blocks of size bytes in out[0..n) (NULL where malloc failed). */
void
alloc_many(void **out, long n, size_t size)
{
    for (long i = 0; i < n; i++) {
        out[i] = malloc(size);
    }
}

/* Free blocks[0..n): one C call, so the caller's thread stays without
 * the GIL (ctypes releases it) for all of them. */
void
free_many(void **blocks, long n)
{
    for (long i = 0; i < n; i++) {
        free(blocks[i]);
    }
}

/* Free p, then, rounds times, let libc allocate memory of its own (not
 * through this library's malloc, so untraced) of p's size class and free
 * it here: libc often hands p's address out again.  One C call, without
 * the GIL throughout.  Returns how many rounds got p's address back. */
long
free_then_reuse(void *p, long rounds, int length)
{
    long same = 0;
    free(p);
    for (long i = 0; i < rounds; i++) {
        char *s = NULL;
        if (asprintf(&s, "%*s", length, "") < 0) {
            break;
        }
        same += (void *)s == p;
        free(s);
    }
    return same;
}

static void *
churn(void *arg)
{
    long rounds = (long)arg;
    void *keep[64] = {0};
    for (long i = 0; i < rounds; i++) {
        int slot = (int)(i % 64);
        free(keep[slot]);
        keep[slot] = malloc(16 + (size_t)(i % 500));
        if (i % 7 == 0) {
            keep[slot] = realloc(keep[slot], 1000);
        }
    }
    for (int i = 0; i < 64; i++) {
        free(keep[i]);
    }
    return NULL;
}

/* nthreads pthreads, unknown to Python, each doing rounds
 * malloc/realloc/free and freeing everything at the end.  Returns 0. */
int
hammer(int nthreads, long rounds)
{
    pthread_t threads[64];
    if (nthreads > 64) {
        nthreads = 64;
    }
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&threads[i], NULL, churn, (void *)rounds) != 0) {
            return -1;
        }
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
    }
    return 0;
}
