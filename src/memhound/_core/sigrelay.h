/* sigrelay.h: a signal handed to a thread that waits for it.
 *
 * Why: CPython runs a Python signal handler in the main thread, when that
 * thread next checks; a blocking call returns early only if the signal lands
 * while the thread is inside the system call.  One that lands just before it,
 * or while the call retries by itself (glibc's sem_wait after losing a
 * wake-up, pthread_mutex_lock), trips the handler and never runs it.  With
 * the relay, a thread of memhound's learns of the signal whatever the main
 * thread is doing.  One relayed signal per process; no file descriptor (a
 * program may close or reuse any).  Python-free.
 */
#ifndef MH_SIGRELAY_H
#define MH_SIGRELAY_H

/* Relay signum in this process (getpid() now): its handler posts a
 * semaphore that mh_sigrelay_wait takes.  The handler restarts interrupted
 * system calls (SA_RESTART) and blocks no other signal.  The action it
 * replaces is kept.  When signum is relayed already, in this process this
 * does nothing; in a process fork() made since, it starts afresh (nothing
 * the parent had received is waiting), and the caller must keep signum from
 * being delivered meanwhile (memhound's at-fork step runs with it blocked,
 * in the only thread).  In a process fork() made that did not call this, the
 * handler puts the kept action back and raises the signal again, as if the
 * relay was never installed.  Returns 0, or -1 with errno set: EINVAL for a
 * bad signum, EBUSY when another signal is relayed, or sigaction's errno.
 * Any thread; callers serialize (memhound holds the GIL).  Can't
 * allocate. */
int mh_sigrelay_start(int signum);

/* Put back the action mh_sigrelay_start replaced, when the relay's handler
 * is still the installed one (a handler set since then stays).  Signals
 * received before stay to be taken by mh_sigrelay_wait.  Does nothing when
 * not relaying.  Any thread; callers serialize.  Can't fail. */
void mh_sigrelay_stop(void);

/* Take one received signal: its number, waiting for it when block is
 * non-zero (through EINTR), or 0 at once when block is 0 and none is
 * waiting.  Only after a start() in this process (before, a blocking wait
 * never returns).  Call without the GIL when blocking.  One waiting thread
 * at a time.  Can't fail. */
int mh_sigrelay_wait(int block);

/* The relayed signal, or 0.  Any thread.  Can't fail. */
int mh_sigrelay_signal(void);

/* End the process with _exit(status) in `seconds` from now, from a
 * detached thread of its own (all signals blocked), whatever its other
 * threads are doing: the bound on what a relayed signal's waiter does next
 * (a report that can't get the GIL, or waits for a lock the stopped main
 * thread holds).  Once per process: later calls do nothing.  Call without
 * the GIL is fine.  Returns 0, or -1 with errno set when no thread can be
 * made. */
int mh_sigrelay_deadline(unsigned seconds, int status);

#endif /* MH_SIGRELAY_H */
