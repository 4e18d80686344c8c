/* rawmem.c: the process-wide counters behind rawmem.h.  Python-free. */
#include "rawmem.h"

/* Relaxed atomics only; see rawmem.h. */
long mh_rawmem_fail_after = -1;
size_t mh_rawmem_in_use = 0;
