/* leaks.h: the leak verdict, from generations.
 *
 * Input: the history of generations (gens.h) and the live blocks now,
 * grouped by site and by the generation each was allocated in (the
 * "survivors").  A leak leaves survivors from every generation since it
 * began, and those survivors never die; so for every site the analysis
 * looks for the longest recent run of generations that nearly all left
 * survivors, and then checks against the site's live-size series that the
 * site really grew by what survived (a cache that turns over leaves
 * survivors from its recent generations too, but does not grow).  From the
 * length of that run, how complete it is and how well growth matches, it
 * gives a confidence in [0, 1]; from the survivors' bytes over the run's
 * time (and iterations), a growth rate.  docs/leak-analysis.md explains the
 * method and its limits.
 *
 * Python-free, not thread-safe (the binding holds the GIL).  Memory comes
 * from rawmem.h; nothing here raises.
 */
#ifndef MH_LEAKS_H
#define MH_LEAKS_H

#include <stddef.h>
#include <stdint.h>

#include "gens.h"

/* Live bytes and blocks of one site that were allocated in one
 * generation. */
typedef struct {
    uint32_t site;
    uint16_t generation;
    uint64_t bytes;
    uint64_t blocks;
} mh_survivor_t;

typedef struct mh_survivors mh_survivors_t;

/* An empty accumulator.  NULL when out of memory. */
mh_survivors_t *mh_survivors_new(void);

/* Free it; NULL is allowed. */
void mh_survivors_free(mh_survivors_t *surv);

/* Count one live block of `bytes` of site `site` allocated in generation
 * `generation`.  0, or -1 when out of memory (the accumulator is then
 * unusable and mh_leaks_analyze fails). */
int mh_survivors_add(mh_survivors_t *surv, uint32_t site, uint16_t generation,
                     uint64_t bytes);

typedef struct {
    double min_confidence;    /* a site is a leak at or above this */
    uint32_t min_generations; /* closed generations a leak must span */
} mh_leak_params_t;

/* The verdict on one site. */
typedef struct {
    uint32_t site;
    int is_leak;
    double confidence;   /* 0 when not a leak candidate at all */
    uint64_t live_bytes; /* now */
    uint64_t live_blocks;
    uint64_t growth_bytes;       /* survivors born since first_generation */
    double growth_per_s;         /* growth_bytes over the time since then */
    double growth_per_iteration; /* < 0 when iterations are unknown */
    uint16_t first_generation;   /* 0 when no run of survivors was found */
    uint32_t generations_with_survivors; /* closed ones in the run */
    uint32_t generations_observed;       /* closed ones in the run */
    size_t survivors_begin; /* its entries in mh_leaks_survivors() */
    size_t survivors_end;
} mh_site_verdict_t;

typedef struct {
    mh_site_verdict_t *sites; /* leaks first, most severe first; then the
                                 rest, largest live size first */
    size_t nsites;
    size_t nleaks;
    mh_survivor_t *survivors; /* sorted by site, then generation */
    size_t nsurvivors;
    size_t survivors_cap; /* allocated entries (for freeing) */
} mh_leak_result_t;

/* Analyse every site of surv against gens, at time t_now (seconds, the
 * history's clock) and iteration count iteration_now (-1: unknown).  The
 * current generation is the history's last.  surv is consumed (its
 * entries move into the result).  Returns 0 and fills *result, or -1 when
 * out of memory.  Can't raise. */
int mh_leaks_analyze(const mh_gens_t *gens, mh_survivors_t *surv, double t_now,
                     int64_t iteration_now, const mh_leak_params_t *params,
                     mh_leak_result_t *result);

/* Free what mh_leaks_analyze put in *result; a zeroed result is allowed. */
void mh_leaks_result_free(mh_leak_result_t *result);

#endif /* MH_LEAKS_H */
