/* frames_gilstate.h: mh_frames_attached_tstate and mh_frames_current_tstate
 * for CPython 3.10 and 3.11, where the "current" thread state is the GIL
 * holder's, whichever thread asks.  Written once for frames_310.c and
 * frames_311.c, which include this after CPython's internal pystate
 * header.  Checked against CPython 3.10.13 and 3.11.7.
 */
#ifndef MH_FRAMES_GILSTATE_H
#define MH_FRAMES_GILSTATE_H

#include <pthread.h>

PyThreadState *
mh_frames_attached_tstate(void)
{
    /* PyGILState_Check() is not usable: it answers 1 whenever GIL state
     * checking is disabled (as it is once a subinterpreter exists).  Compare
     * this thread's own state with the one holding the GIL instead.  Its
     * own state is PyGILState_GetThisThreadState() read directly (its body
     * in these versions, without its two calls: this runs on every native
     * allocation and free), after the cheaper test that a thread holds the
     * GIL at all.  The answer is not cached per thread: a thread state's
     * address and thread_id do not prove whose it is (a state freed by
     * PyGILState_Release and made again at the same address by the same
     * thread with PyThreadState_New can be handed to another thread, which
     * then holds the GIL with it; the review of issue 5, session 4, showed
     * a cache answering "yes" there to a thread without the GIL). */
    PyThreadState *holder = _PyThreadState_GET();
    struct _gilstate_runtime_state *gilstate = &_PyRuntime.gilstate;
    if (holder == NULL || gilstate->autoInterpreterState == NULL ||
        pthread_getspecific(gilstate->autoTSSkey._key) != holder) {
        return NULL;
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
