/* rawmem.c: the process-wide counters behind rawmem.h, and its mmap door
 * for large scratch arrays.  Python-free. */
#define _GNU_SOURCE /* mremap */
#include "rawmem.h"

#include <sys/mman.h>

/* Relaxed atomics only; see rawmem.h. */
long mh_rawmem_fail_after = -1;
size_t mh_rawmem_in_use = 0;

void *
mh_rawmem_map(size_t size)
{
    if (mh_rawmem_should_fail()) {
        return NULL;
    }
    void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    __atomic_add_fetch(&mh_rawmem_in_use, size, __ATOMIC_RELAXED);
    return p;
}

void
mh_rawmem_unmap(void *p, size_t size)
{
    if (p) {
        __atomic_sub_fetch(&mh_rawmem_in_use, size, __ATOMIC_RELAXED);
        munmap(p, size ? size : 1);
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
    void *q = mremap(p, old_size ? old_size : 1, new_size ? new_size : 1,
                     MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
        return NULL;
    }
    __atomic_sub_fetch(&mh_rawmem_in_use, old_size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&mh_rawmem_in_use, new_size, __ATOMIC_RELAXED);
    return q;
}
