/* test_sigrelay.c: plain-C tests of the signal relay (sigrelay.h).
 *
 * The relayed signal is counted for the waiter and does not reach the
 * replaced handler; a blocked waiter wakes when another thread takes the
 * signal; bad arguments and a second signal are refused; stop() puts the
 * replaced action back, but leaves a handler installed since; a child that
 * fork() made without starting the relay again gets the replaced action,
 * and one that starts it again waits for its own signals only; a deadline
 * ends a process whose other thread never returns, with the status given,
 * once.  Exits non-zero on any failure.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sigrelay.h"
#include "check.h"

static volatile sig_atomic_t replaced_calls;
static volatile sig_atomic_t other_calls;

static void
replaced_handler(int signum)
{
    (void)signum;
    replaced_calls++;
}

static void
other_handler(int signum)
{
    (void)signum;
    other_calls++;
}

static void
set_handler(int signum, void (*handler)(int))
{
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    sigaction(signum, &action, NULL);
}

/* The signals waiting, taken without blocking. */
static int
drain(void)
{
    int n = 0;
    while (mh_sigrelay_wait(0) != 0) {
        n++;
    }
    return n;
}

static void
test_relays_to_the_waiter(void)
{
    set_handler(SIGUSR1, replaced_handler);
    replaced_calls = 0;
    CHECK(mh_sigrelay_wait(0) == 0);
    CHECK(mh_sigrelay_start(SIGUSR1) == 0);
    CHECK(mh_sigrelay_signal() == SIGUSR1);
    CHECK(mh_sigrelay_wait(0) == 0);
    raise(SIGUSR1);
    raise(SIGUSR1);
    CHECK(mh_sigrelay_wait(1) == SIGUSR1);
    CHECK(mh_sigrelay_wait(0) == SIGUSR1);
    CHECK(mh_sigrelay_wait(0) == 0);
    CHECK(replaced_calls == 0);
    /* Starting again in the same process changes nothing. */
    raise(SIGUSR1);
    CHECK(mh_sigrelay_start(SIGUSR1) == 0);
    CHECK(drain() == 1);
    mh_sigrelay_stop();
    CHECK(mh_sigrelay_signal() == 0);
    raise(SIGUSR1);
    CHECK(replaced_calls == 1); /* the replaced action is back */
    CHECK(drain() == 0);
}

static void *
waiter(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* as memhound's thread */
    *(int *)arg = mh_sigrelay_wait(1);
    return NULL;
}

static void
test_wakes_a_blocked_waiter(void)
{
    CHECK(mh_sigrelay_start(SIGUSR1) == 0);
    int got = -1;
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, waiter, &got) == 0);
    usleep(20000); /* the waiter may or may not block yet: either works */
    kill(getpid(), SIGUSR1); /* process-directed: this thread takes it */
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(got == SIGUSR1);
    mh_sigrelay_stop();
}

static void
test_refuses_bad_arguments(void)
{
    errno = 0;
    CHECK(mh_sigrelay_start(0) == -1 && errno == EINVAL);
    CHECK(mh_sigrelay_start(NSIG) == -1 && errno == EINVAL);
    CHECK(mh_sigrelay_start(SIGKILL) == -1);
    CHECK(mh_sigrelay_signal() == 0);
    CHECK(mh_sigrelay_start(SIGUSR1) == 0);
    CHECK(mh_sigrelay_start(SIGUSR2) == -1 && errno == EBUSY);
    mh_sigrelay_stop();
    mh_sigrelay_stop(); /* a second stop does nothing */
}

static void
test_stop_keeps_a_newer_handler(void)
{
    set_handler(SIGUSR1, replaced_handler);
    replaced_calls = 0;
    other_calls = 0;
    CHECK(mh_sigrelay_start(SIGUSR1) == 0);
    set_handler(SIGUSR1, other_handler); /* as the program's signal.signal */
    mh_sigrelay_stop();
    raise(SIGUSR1);
    CHECK(other_calls == 1 && replaced_calls == 0);
    CHECK(drain() == 0);
}

static void
test_forked_child(int start_again)
{
    set_handler(SIGUSR1, replaced_handler);
    replaced_calls = 0;
    CHECK(mh_sigrelay_start(SIGUSR1) == 0);
    raise(SIGUSR1); /* received by the parent before the fork */
    int result[2];
    CHECK(pipe(result) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        /* In the child: (replaced calls, signals waiting). */
        unsigned char report[2] = {0xff, 0xff};
        if (start_again) {
            if (mh_sigrelay_start(SIGUSR1) == 0) {
                raise(SIGUSR1);
                report[1] = (unsigned char)drain();
            }
        }
        else {
            raise(SIGUSR1);
        }
        report[0] = (unsigned char)replaced_calls;
        ssize_t n = write(result[1], report, 2);
        _exit(n == 2 ? 0 : 1);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unsigned char report[2] = {0xff, 0xff};
    CHECK(read(result[0], report, 2) == 2);
    if (start_again) {
        /* Its own signal only, not the parent's from before the fork. */
        CHECK(report[0] == 0 && report[1] == 1);
    }
    else {
        CHECK(report[0] == 1); /* the replaced action ran in the child */
    }
    CHECK(replaced_calls == 0);
    CHECK(drain() == 1); /* the parent's own, still waiting */
    raise(SIGUSR1);      /* and the parent still relays */
    CHECK(drain() == 1);
    mh_sigrelay_stop();
    close(result[0]);
    close(result[1]);
}

static void
test_deadline_ends_a_stuck_process(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (mh_sigrelay_deadline(1, 42) != 0 ||
            mh_sigrelay_deadline(30, 7) !=
                0) { /* once: this one is kept out */
            _exit(3);
        }
        for (;;) {
            pause(); /* stuck for good: only the deadline ends this */
        }
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42);
}

int
main(void)
{
    test_relays_to_the_waiter();
    test_wakes_a_blocked_waiter();
    test_refuses_bad_arguments();
    test_stop_keeps_a_newer_handler();
    test_forked_child(0);
    test_forked_child(1);
    test_deadline_ends_a_stuck_process();
    return check_report("sigrelay");
}
