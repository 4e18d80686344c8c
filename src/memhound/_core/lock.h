/* lock.h: the lock that guards the raw-domain live-block table.
 *
 * A test-and-test-and-set spinlock that yields the CPU when it has spun for
 * a while.  Not PyThread_type_lock or PyMutex: the raw allocator domain
 * calls memhound without the GIL, from threads Python may not know, during
 * start-up and finalization, and across fork(); this lock needs nothing
 * from the interpreter, can be reset in a forked child (hooks.c registers
 * the pthread_atfork handlers), and costs one atomic exchange and one plain
 * store when uncontended (on every traced raw-domain allocation and free;
 * mem and object blocks are guarded by the GIL instead, see hooks.c). Critical
 * sections are a few table operations long, so spinning is cheap; the
 * yield keeps a preempted holder from being starved by spinners.
 * Holders must never call Python, take the GIL, block, or call the
 * allocators memhound hooks while holding it.
 */
#ifndef MH_LOCK_H
#define MH_LOCK_H

#include <sched.h>

typedef struct {
    int locked; /* 0 or 1, atomics only */
} mh_lock_t;

#define MH_LOCK_INIT {0}

static inline void
mh_lock_acquire(mh_lock_t *lock)
{
    for (;;) {
        if (!__atomic_exchange_n(&lock->locked, 1, __ATOMIC_ACQUIRE)) {
            return;
        }
        int spins = 0;
        while (__atomic_load_n(&lock->locked, __ATOMIC_RELAXED)) {
            if (++spins < 128) {
                __builtin_ia32_pause();
            }
            else {
                sched_yield();
                spins = 0;
            }
        }
    }
}

static inline void
mh_lock_release(mh_lock_t *lock)
{
    __atomic_store_n(&lock->locked, 0, __ATOMIC_RELEASE);
}

/* In a forked child only: the parent's holder does not exist here. */
static inline void
mh_lock_reinit_after_fork(mh_lock_t *lock)
{
    __atomic_store_n(&lock->locked, 0, __ATOMIC_RELAXED);
}

#endif /* MH_LOCK_H */
