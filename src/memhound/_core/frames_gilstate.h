/* frames_gilstate.h: mh_frames_attached_tstate and mh_frames_current_tstate
 * for CPython 3.10 and 3.11, where the "current" thread state is the GIL
 * holder's, whichever thread asks.  Written once for frames_310.c and
 * frames_311.c, which include this after CPython's internal pystate
 * header.  Checked against CPython 3.10.13 and 3.11.7.  The cache below is
 * per thread (initial-exec TLS, no lock); it only ever holds a thread
 * state the slow test proved to be the calling thread's own.
 */
#ifndef MH_FRAMES_GILSTATE_H
#define MH_FRAMES_GILSTATE_H

#include <pthread.h>

/* The calling thread's own state as last proved by the slow test below,
 * and its thread id (pthread_self(), as CPython's thread_id), 0 until then.
 * Per thread, no lock. */
static __thread __attribute__((tls_model("initial-exec")))
PyThreadState *own_tstate;
static __thread
    __attribute__((tls_model("initial-exec"))) unsigned long own_ident;

PyThreadState *
mh_frames_attached_tstate(void)
{
    /* PyGILState_Check() is not usable: it answers 1 whenever GIL state
     * checking is disabled (as it is once a subinterpreter exists).  Compare
     * this thread's own state with the one holding the GIL instead.  Its
     * own state is PyGILState_GetThisThreadState() read directly (its body
     * in these versions, without its two calls).  This runs on every
     * native allocation and free, so the answer is cached per thread: the
     * holder is ours when it is the state the slow test last proved ours
     * and still carries our thread id (a state freed and made again at the
     * same address for another thread carries that thread's id). */
    PyThreadState *holder = _PyThreadState_GET();
    struct _gilstate_runtime_state *gilstate = &_PyRuntime.gilstate;
    if (holder == NULL || gilstate->autoInterpreterState == NULL) {
        return NULL;
    }
    if (holder != own_tstate || holder->thread_id != own_ident) {
        if (pthread_getspecific(gilstate->autoTSSkey._key) != holder) {
            return NULL;
        }
        unsigned long ident = (unsigned long)pthread_self();
        if (holder->thread_id == ident) {
            own_tstate = holder;
            own_ident = ident;
        }
    }
    if (!_Py_IsMainInterpreter(holder->interp)) {
        return NULL;
    }
    return holder;
}

PyThreadState *
mh_frames_current_tstate(void)
{
    /* The GIL holder, read inline from _PyRuntime: this runs on every
     * allocation and free of the mem and object domains. */
    PyThreadState *tstate = _PyThreadState_GET();
    if (tstate == NULL || !_Py_IsMainInterpreter(tstate->interp)) {
        return NULL;
    }
    return tstate;
}

#endif /* MH_FRAMES_GILSTATE_H */
