/* frames_walk.h: mh_frames_capture, mh_frames_same and
 * mh_frames_same_outer, written once for every frames_3XX.c, which
 * includes this after defining, for its CPython version: the frame type
 * mh_walk_frame_t, and static inline
 * first_frame(tstate) (the innermost frame a traceback shows, or NULL),
 * next_frame(f) (the next one outwards, or NULL) and read_frame(f) (its
 * code object and instruction offset).  Included by those files only.
 */
#ifndef MH_FRAMES_WALK_H
#define MH_FRAMES_WALK_H

int
mh_frames_capture(PyThreadState *tstate, mh_raw_frame_t *out, int max,
                  uint32_t *total)
{
    int n = 0;
    uint32_t depth = 0;
    for (mh_walk_frame_t *f = first_frame(tstate); f != NULL;
         f = next_frame(f)) {
        if (n < max) {
            out[n++] = read_frame(f);
        }
        else if (total == NULL) {
            break;
        }
        if (depth < UINT16_MAX) {
            depth++;
        }
    }
    if (total != NULL) {
        *total = depth;
    }
    return n;
}

int
mh_frames_same(PyThreadState *tstate, const mh_raw_frame_t *last, int n,
               int max)
{
    mh_walk_frame_t *f = first_frame(tstate);
    int i = n;
    for (; f != NULL && i > 0; f = next_frame(f)) {
        mh_raw_frame_t raw = read_frame(f);
        i--;
        if (raw.code != last[i].code || raw.offset != last[i].offset) {
            return 0;
        }
    }
    return i == 0 && (n == max || f == NULL);
}

int
mh_frames_same_outer(PyThreadState *tstate, const mh_raw_frame_t *last, int n,
                     int max, mh_raw_frame_t *innermost)
{
    mh_walk_frame_t *f = first_frame(tstate);
    if (f == NULL) {
        return 0;
    }
    *innermost = read_frame(f);
    int i = n - 1; /* last[i - 1] is the next frame outwards */
    for (f = next_frame(f); f != NULL && i > 0; f = next_frame(f)) {
        mh_raw_frame_t raw = read_frame(f);
        i--;
        if (raw.code != last[i].code || raw.offset != last[i].offset) {
            return 0;
        }
    }
    return i == 0 && (n == max || f == NULL);
}

#endif /* MH_FRAMES_WALK_H */
