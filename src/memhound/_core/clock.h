/* clock.h: seconds on the monotonic clock, for the generation history and
 * the cycle-churn rates.  Header-only, Python-free, any thread; a plain
 * system call, so it allocates nothing and is safe inside the hooks.
 */
#ifndef MH_CLOCK_H
#define MH_CLOCK_H

#include <time.h>

/* CLOCK_MONOTONIC in seconds.  Can't fail on Linux. */
static inline double
mh_monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif /* MH_CLOCK_H */
