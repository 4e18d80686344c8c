/* rawmem.h: the one door through which memhound's bookkeeping gets memory.
 *
 * Every table, arena and snapshot array comes from libc's malloc family
 * through these helpers, never from the PyMem/PyObject allocators memhound
 * hooks (that would recurse into the hooks).  The helpers also hold the
 * failure-injection point that tests use to prove that running out of memory
 * in memhound's own tables degrades tracing instead of crashing the program.
 * Python-free; safe without the GIL and from any thread.
 */
#ifndef MH_RAWMEM_H
#define MH_RAWMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Number of further bookkeeping allocations allowed to succeed before every
 * one fails; negative (the default) means never fail.  Tests set it through
 * _core._inject_alloc_failures().  Read and written with relaxed atomics: a
 * test sets it while no other thread is expected to care about the exact
 * moment it takes effect.  Defined in rawmem.c. */
extern long mh_rawmem_fail_after;

/* The count of bookkeeping bytes currently held, for get_memory_overhead().
 * Updated with relaxed atomics. */
extern size_t mh_rawmem_in_use;

static inline int
mh_rawmem_should_fail(void)
{
    long left = __atomic_load_n(&mh_rawmem_fail_after, __ATOMIC_RELAXED);
    if (left < 0) {
        return 0;
    }
    if (left == 0) {
        return 1;
    }
    __atomic_store_n(&mh_rawmem_fail_after, left - 1, __ATOMIC_RELAXED);
    return 0;
}

/* malloc/calloc/realloc/free for bookkeeping.  They return NULL on failure
 * (real or injected) and never raise.  Sizes are tracked by the caller:
 * pass the same size to mh_rawmem_free (and the old size to realloc) so
 * that the overhead counter stays exact without a header per allocation. */
static inline void *
mh_rawmem_malloc(size_t size)
{
    if (mh_rawmem_should_fail()) {
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (p) {
        __atomic_add_fetch(&mh_rawmem_in_use, size, __ATOMIC_RELAXED);
    }
    return p;
}

static inline void *
mh_rawmem_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        return NULL;
    }
    if (mh_rawmem_should_fail()) {
        return NULL;
    }
    void *p = calloc(total ? total : 1, 1);
    if (p) {
        __atomic_add_fetch(&mh_rawmem_in_use, total, __ATOMIC_RELAXED);
    }
    return p;
}

static inline void *
mh_rawmem_realloc(void *old, size_t old_size, size_t new_size)
{
    if (mh_rawmem_should_fail()) {
        return NULL;
    }
    void *p = realloc(old, new_size ? new_size : 1);
    if (p) {
        __atomic_sub_fetch(&mh_rawmem_in_use, old_size, __ATOMIC_RELAXED);
        __atomic_add_fetch(&mh_rawmem_in_use, new_size, __ATOMIC_RELAXED);
    }
    return p;
}

static inline void
mh_rawmem_free(void *p, size_t size)
{
    if (p) {
        __atomic_sub_fetch(&mh_rawmem_in_use, size, __ATOMIC_RELAXED);
        free(p);
    }
}

/* Large scratch arrays straight from the system (anonymous mmap): the
 * memory is zero-filled, costs nothing until touched, and goes back to the
 * system at mh_rawmem_unmap.  malloc keeps freed holes of this size
 * resident, so a phase's scratch would otherwise stay in the process's
 * peak memory for the next phase.  mh_rawmem_map returns NULL on failure
 * (real or injected); pass the same size to mh_rawmem_unmap (NULL is
 * allowed).  Counted in mh_rawmem_in_use.  Defined in rawmem.c. */
void *mh_rawmem_map(size_t size);
void mh_rawmem_unmap(void *p, size_t size);

/* Resize a mapped array (NULL p: map one), moving it without a copy when
 * it must move; bytes past old_size read as zero.  Returns the new address,
 * or NULL on failure with p left as it was. */
void *mh_rawmem_remap(void *p, size_t old_size, size_t new_size);

/* The capacity and byte size that mh_rawmem_reserve* grow an array of
 * cap elements to (doubling from `first`) to hold need.  Returns 0, or -1
 * on overflow. */
static inline int
mh_rawmem_grown(size_t cap, size_t need, size_t elem_size, size_t first,
                size_t *new_cap, size_t *new_bytes)
{
    size_t c = cap ? cap : first;
    while (c < need) {
        if (c > SIZE_MAX / 2) {
            return -1;
        }
        c *= 2;
    }
    *new_cap = c;
    return __builtin_mul_overflow(c, elem_size, new_bytes) ? -1 : 0;
}

/* Grow-by-doubling helper for arrays: ensure *cap >= need elements of
 * elem_size bytes, reallocating *array.  Returns 0, or -1 on overflow or
 * out of memory (the array is left unchanged). */
static inline int
mh_rawmem_reserve(void **array, size_t *cap, size_t need, size_t elem_size)
{
    size_t new_cap, new_bytes;
    if (need <= *cap) {
        return 0;
    }
    if (mh_rawmem_grown(*cap, need, elem_size, 16, &new_cap, &new_bytes) < 0) {
        return -1;
    }
    void *p = mh_rawmem_realloc(*array, *cap * elem_size, new_bytes);
    if (p == NULL) {
        return -1;
    }
    *array = p;
    *cap = new_cap;
    return 0;
}

/* mh_rawmem_reserve for a mapped array (mh_rawmem_map). */
static inline int
mh_rawmem_reserve_mapped(void **array, size_t *cap, size_t need,
                         size_t elem_size)
{
    size_t new_cap, new_bytes;
    if (need <= *cap) {
        return 0;
    }
    if (mh_rawmem_grown(*cap, need, elem_size, 1024, &new_cap, &new_bytes) <
        0) {
        return -1;
    }
    void *p = mh_rawmem_remap(*array, *cap * elem_size, new_bytes);
    if (p == NULL) {
        return -1;
    }
    *array = p;
    *cap = new_cap;
    return 0;
}

#endif /* MH_RAWMEM_H */
