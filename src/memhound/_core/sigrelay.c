/* sigrelay.c: a signal handed to a thread that waits for it (sigrelay.h).
 *
 * Owns the relayed signal's action while it is installed, the action it
 * replaced, and an unnamed semaphore (sem_post is async-signal-safe; no file
 * descriptor that the program could close or reuse).  Process-wide state,
 * written only by start/stop (callers serialize: memhound holds the GIL);
 * the handler, in whatever thread takes the signal, reads the owner pid
 * (atomic) and `previous`, and posts `received`; the handler is
 * async-signal-safe throughout: atomics, getpid, sem_post, sigaction,
 * raise.  Also the deadline that bounds what the waiter does next: a
 * detached thread that sleeps, then _exit()s the process.
 */
#include "sigrelay.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct deadline {
    time_t seconds;
    int status;
};

/* The relayed signal, 0 when none.  Written by start/stop. */
static int relay_signum;
/* The signal of the last start(), what mh_sigrelay_wait returns (stop()
 * leaves it).  Written by start. */
static int waited_signum;
/* The process the relay was started in; 0 when none.  Written by
 * start/stop, read by the handler. */
static pid_t relay_pid;
/* One post per received signal; taken by mh_sigrelay_wait.  Initialized by
 * start() in each process (a forked child's copy may count a waiter of the
 * parent's). */
static sem_t received;
/* The action start() replaced.  Written by start() before the handler is
 * installed; read by the handler (in a process that is not relay_pid) and
 * by stop(). */
static struct sigaction previous;

static void
relay_handler(int signum)
{
    int saved_errno = errno;
    pid_t owner = __atomic_load_n(&relay_pid, __ATOMIC_ACQUIRE);
    if (owner != 0 && owner == getpid()) {
        sem_post(&received); /* EOVERFLOW drops it: plenty wait already */
    }
    else {
        /* A process fork() made without memhound's after-fork step (fork()
         * called from C): no thread of its waits for the semaphore.  Act as
         * if the relay was never installed here: the signal is blocked
         * while this handler runs, so the raise() is delivered, under the
         * kept action, when it returns. */
        sigaction(signum, &previous, NULL);
        raise(signum);
    }
    errno = saved_errno;
}

static int
relay_installed(int signum)
{
    struct sigaction current;
    if (sigaction(signum, NULL, &current) != 0) {
        return 0;
    }
    return !(current.sa_flags & SA_SIGINFO) &&
           current.sa_handler == relay_handler;
}

int
mh_sigrelay_start(int signum)
{
    if (signum <= 0 || signum >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    if (relay_signum != 0 && relay_signum != signum) {
        errno = EBUSY;
        return -1;
    }
    pid_t self = getpid();
    int installed = relay_installed(signum);
    if (installed && relay_signum == signum &&
        __atomic_load_n(&relay_pid, __ATOMIC_ACQUIRE) == self) {
        return 0;
    }
    if (__atomic_load_n(&relay_pid, __ATOMIC_ACQUIRE) != self) {
        /* This process has no waiter yet: a fresh count.  (In the process
         * that started it, a waiter may be in sem_wait: never again.) */
        sem_init(&received, 0, 0);
    }
    if (!installed) {
        struct sigaction action;
        memset(&action, 0, sizeof(action));
        action.sa_handler = relay_handler;
        sigemptyset(&action.sa_mask);
        /* SA_ONSTACK as CPython's own handlers (bpo-43390). */
        action.sa_flags = SA_RESTART | SA_ONSTACK;
        struct sigaction replaced;
        /* The owner is set first: from the moment the handler is in, it
         * posts in this process and never reads `previous`. */
        __atomic_store_n(&relay_pid, self, __ATOMIC_RELEASE);
        if (sigaction(signum, &action, &replaced) != 0) {
            int saved_errno = errno;
            __atomic_store_n(&relay_pid, 0, __ATOMIC_RELEASE);
            relay_signum = 0;
            errno = saved_errno;
            return -1;
        }
        previous = replaced;
    }
    else {
        __atomic_store_n(&relay_pid, self, __ATOMIC_RELEASE);
    }
    relay_signum = signum;
    waited_signum = signum;
    return 0;
}

void
mh_sigrelay_stop(void)
{
    if (relay_signum == 0) {
        return;
    }
    if (relay_installed(relay_signum)) {
        sigaction(relay_signum, &previous, NULL);
    }
    relay_signum = 0;
}

int
mh_sigrelay_wait(int block)
{
    for (;;) {
        int rc = block ? sem_wait(&received) : sem_trywait(&received);
        if (rc == 0) {
            return waited_signum;
        }
        if (errno != EINTR) {
            return 0;
        }
    }
}

int
mh_sigrelay_signal(void)
{
    return relay_signum;
}

static void *
exit_after(void *arg)
{
    const struct deadline *d = arg;
    struct timespec left = {d->seconds, 0};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
    _exit(d->status);
    return NULL;
}

int
mh_sigrelay_deadline(unsigned seconds, int status)
{
    /* One deadline per process, static: the thread reads it after this
     * returns. */
    static struct deadline d;
    static int armed_in; /* the pid that armed it */
    pid_t self = getpid();
    if (armed_in == self) {
        return 0;
    }
    d.seconds = (time_t)seconds;
    d.status = status;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        return -1;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* No signal for this thread: they stay the program's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, exit_after, &d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    armed_in = (int)self;
    return 0;
}
