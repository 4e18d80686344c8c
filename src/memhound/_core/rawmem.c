/* rawmem.c: the process-wide counters behind rawmem.h, and its mmap door
 * for large scratch arrays.  Python-free. */
#define _GNU_SOURCE /* mremap */
#include "rawmem.h"

#include <string.h>
#include <sys/mman.h>

/* Relaxed atomics only; see rawmem.h. */
long mh_rawmem_fail_after = -1;
size_t mh_rawmem_in_use = 0;

/* Under AddressSanitizer the mapped arrays come from calloc instead, so
 * that their bounds stay checked (an mmap'd array is only checked at page
 * ends). */
#if defined(__SANITIZE_ADDRESS__)
#define MH_MAP_WITH_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MH_MAP_WITH_MALLOC 1
#endif
#endif

void *
mh_rawmem_map(size_t size)
{
    if (mh_rawmem_should_fail()) {
        return NULL;
    }
#ifdef MH_MAP_WITH_MALLOC
    void *p = calloc(size ? size : 1, 1);
    if (p == NULL) {
        return NULL;
    }
#else
    void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
#endif
    __atomic_add_fetch(&mh_rawmem_in_use, size, __ATOMIC_RELAXED);
    return p;
}

void
mh_rawmem_unmap(void *p, size_t size)
{
    if (p) {
        __atomic_sub_fetch(&mh_rawmem_in_use, size, __ATOMIC_RELAXED);
#ifdef MH_MAP_WITH_MALLOC
        free(p);
#else
        munmap(p, size ? size : 1);
#endif
    }
}

void *
mh_rawmem_remap(void *p, size_t old_size, size_t new_size)
{
    if (p == NULL) {
        return mh_rawmem_map(new_size);
    }
    if (mh_rawmem_should_fail()) {
        return NULL;
    }
#ifdef MH_MAP_WITH_MALLOC
    void *q = realloc(p, new_size ? new_size : 1);
    if (q == NULL) {
        return NULL;
    }
    if (new_size > old_size) {
        memset((char *)q + old_size, 0, new_size - old_size);
    }
#else
    void *q = mremap(p, old_size ? old_size : 1, new_size ? new_size : 1,
                     MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
        return NULL;
    }
#endif
    __atomic_sub_fetch(&mh_rawmem_in_use, old_size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&mh_rawmem_in_use, new_size, __ATOMIC_RELAXED);
    return q;
}
