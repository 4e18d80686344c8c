/* test_gcchurn.c: plain-C tests of cycle churn counting (gcchurn.h).
 *
 * Collections are simulated: begin, frees of traced blocks, end.  Checks
 * commit and discard, domains, sites and the collections/generations they
 * churned in, frees outside a collection or on another thread, the ignore
 * list, a collection whose end never came, reset, and out of memory at
 * every bookkeeping allocation.  Prints the closing "N passed, N failed"
 * line.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gcchurn.h"
#include "rawmem.h"
#include "check.h"

static mh_trace_t
block(uintptr_t ptr, uint32_t traceback, uint64_t size, uint8_t domain)
{
    mh_trace_t t = {.ptr = ptr,
                    .size = size,
                    .traceback = traceback,
                    .generation = 0,
                    .domain = domain};
    return t;
}

static const mh_churn_site_t *
find_site(const mh_churn_t *churn, uint32_t traceback)
{
    const mh_churn_site_t *sites;
    size_t n = mh_churn_sites(churn, &sites);
    for (size_t i = 0; i < n; i++) {
        if (sites[i].traceback == traceback) {
            return &sites[i];
        }
    }
    return NULL;
}

static void
test_commit_and_discard(void)
{
    mh_churn_t *churn = mh_churn_new();
    if (!CHECK(churn != NULL)) {
        return;
    }
    mh_trace_t obj = block(0x1000, 7, 48, MH_DOMAIN_OBJ);
    mh_trace_t mem = block(0x2000, 7, 100, MH_DOMAIN_MEM);
    mh_trace_t raw = block(0x3000, 7, 64, MH_DOMAIN_RAW);

    /* Outside a collection: nothing counts. */
    mh_churn_count(churn, &obj, 48);
    CHECK(find_site(churn, 7) == NULL);

    mh_churn_begin(churn, 0, 3, 10.0, NULL, 0);
    CHECK(mh_gcchurn_collecting());
    for (int i = 0; i < 5; i++) {
        mh_churn_count(churn, &obj, 48);
    }
    mh_churn_count(churn, &mem, 100);
    mh_churn_count(churn, &raw, 64); /* raw domain: never */
    mh_churn_end(churn, 5, 0, 10.5);
    CHECK(!mh_gcchurn_collecting());
    const mh_churn_site_t *site = find_site(churn, 7);
    if (CHECK(site != NULL)) {
        CHECK(site->objects == 5.0);
        CHECK(site->blocks == 6.0);
        CHECK(site->bytes == 5 * 48 + 100);
        CHECK(site->collections == 1);
        CHECK(site->generations == 1);
        CHECK(site->objects_by_gc[0] == 5.0);
    }

    /* Collected nothing: the counts are discarded. */
    mh_churn_begin(churn, 2, 3, 11.0, NULL, 0);
    mh_churn_count(churn, &obj, 48);
    mh_churn_count(churn, &obj, 48);
    mh_churn_end(churn, 0, 0, 11.25);
    site = find_site(churn, 7);
    CHECK(site != NULL && site->objects == 5.0 && site->collections == 1);

    /* Same memhound generation: one more collection, no more
     * generations; a gen-1 collection goes to its column. */
    mh_churn_begin(churn, 1, 3, 12.0, NULL, 0);
    mh_churn_count(churn, &obj, 48);
    mh_churn_end(churn, 1, 0, 12.0);
    /* A later generation counts once more. */
    mh_churn_begin(churn, 9, 4, 13.0, NULL, 0); /* clamped to 2 */
    mh_churn_count(churn, &obj, 48);
    mh_churn_end(churn, 1, 2, 13.0);
    site = find_site(churn, 7);
    if (CHECK(site != NULL)) {
        CHECK(site->objects == 7.0);
        CHECK(site->collections == 3);
        CHECK(site->generations == 2);
        CHECK(site->objects_by_gc[1] == 1.0 && site->objects_by_gc[2] == 1.0);
    }
    mh_churn_totals_t totals;
    mh_churn_totals(churn, &totals);
    CHECK(totals.collections[0] == 1 && totals.collections[1] == 1 &&
          totals.collections[2] == 2);
    CHECK(totals.collected[0] == 5 && totals.uncollectable[2] == 2);
    CHECK(totals.objects[0] == 5.0 && totals.objects[2] == 1.0);
    CHECK(totals.discarded_objects == 2.0);
    CHECK(totals.seconds[0] == 0.5 && totals.seconds[2] == 0.25);
    CHECK(mh_churn_memory(churn) > sizeof(mh_churn_site_t));

    mh_churn_reset(churn);
    CHECK(find_site(churn, 7) == NULL);
    mh_churn_totals(churn, &totals);
    CHECK(totals.collections[0] == 0 && totals.discarded_objects == 0.0);
    mh_churn_free(churn);
}

static void
test_sampling_weight(void)
{
    mh_churn_t *churn = mh_churn_new();
    if (!CHECK(churn != NULL)) {
        return;
    }
    mh_trace_t obj = block(0x1000, 1, 100, MH_DOMAIN_OBJ);
    mh_churn_begin(churn, 0, 0, 0.0, NULL, 0);
    mh_churn_count(churn, &obj, 400); /* stands for 4 blocks */
    mh_churn_end(churn, 1, 0, 0.0);
    const mh_churn_site_t *site = find_site(churn, 1);
    CHECK(site != NULL && site->objects == 4.0 && site->bytes == 400);
    mh_churn_free(churn);
}

static void
test_ignore_and_stale_collection(void)
{
    mh_churn_t *churn = mh_churn_new();
    if (!CHECK(churn != NULL)) {
        return;
    }
    uintptr_t ignore[MH_GCCHURN_IGNORE_MAX + 2];
    for (size_t i = 0; i < MH_GCCHURN_IGNORE_MAX + 2; i++) {
        ignore[i] = 0x9000 + i * 16;
    }
    mh_churn_begin(churn, 0, 0, 0.0, ignore, MH_GCCHURN_IGNORE_MAX + 2);
    mh_trace_t own = block(0x9000, 2, 50, MH_DOMAIN_OBJ);
    mh_trace_t beyond =
        block(0x9000 + MH_GCCHURN_IGNORE_MAX * 16, 2, 50, MH_DOMAIN_OBJ);
    mh_churn_count(churn, &own, 50);    /* ignored, once */
    mh_churn_count(churn, &own, 50);    /* the address again: counted */
    mh_churn_count(churn, &beyond, 50); /* past the limit: counted */
    mh_churn_end(churn, 1, 0, 0.0);
    const mh_churn_site_t *site = find_site(churn, 2);
    CHECK(site != NULL && site->objects == 2.0);

    /* A collection whose end never came: the next begin discards it. */
    mh_churn_begin(churn, 0, 0, 0.0, NULL, 0);
    mh_churn_count(churn, &own, 50);
    mh_churn_begin(churn, 0, 0, 0.0, NULL, 0);
    mh_churn_end(churn, 1, 0, 0.0);
    site = find_site(churn, 2);
    CHECK(site != NULL && site->objects == 2.0);
    mh_churn_totals_t totals;
    mh_churn_totals(churn, &totals);
    CHECK(totals.discarded_objects == 1.0);

    /* An end without a begin changes nothing. */
    mh_churn_end(churn, 5, 0, 0.0);
    mh_churn_totals(churn, &totals);
    CHECK(totals.collections[0] == 2);
    mh_churn_free(churn);
}

/* Another thread frees during the collection (a finalizer released the
 * GIL): not counted, because that thread is not marked. */
static mh_churn_t *thread_churn;

static void *
free_on_other_thread(void *arg)
{
    (void)arg;
    mh_trace_t obj = block(0x5000, 3, 32, MH_DOMAIN_OBJ);
    CHECK(!mh_gcchurn_collecting());
    mh_churn_count(thread_churn, &obj, 32);
    return NULL;
}

static void
test_other_thread(void)
{
    thread_churn = mh_churn_new();
    if (!CHECK(thread_churn != NULL)) {
        return;
    }
    mh_churn_begin(thread_churn, 0, 0, 0.0, NULL, 0);
    pthread_t thread;
    if (CHECK(pthread_create(&thread, NULL, free_on_other_thread, NULL) ==
              0)) {
        pthread_join(thread, NULL);
    }
    mh_churn_end(thread_churn, 1, 0, 0.0);
    CHECK(find_site(thread_churn, 3) == NULL);
    mh_churn_free(thread_churn);
}

/* Many sites; the table and arrays grow. */
static void
test_many_sites(void)
{
    mh_churn_t *churn = mh_churn_new();
    if (!CHECK(churn != NULL)) {
        return;
    }
    mh_churn_begin(churn, 0, 0, 0.0, NULL, 0);
    for (uint32_t tb = 0; tb < 5000; tb++) {
        for (uint32_t k = 0; k <= tb % 3; k++) {
            mh_trace_t obj =
                block(0x10000 + tb * 64 + k, tb, 16, MH_DOMAIN_OBJ);
            mh_churn_count(churn, &obj, 16);
        }
    }
    mh_churn_end(churn, 1, 0, 0.0);
    const mh_churn_site_t *sites;
    size_t n = mh_churn_sites(churn, &sites);
    CHECK(n == 5000);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        ok &= sites[i].objects == (double)(sites[i].traceback % 3 + 1);
        ok &= sites[i].collections == 1;
    }
    CHECK(ok);
    mh_churn_free(churn);
}

/* Out of memory at each bookkeeping allocation in turn: counts are
 * dropped (and said so), never corrupted. */
static void
test_out_of_memory(void)
{
    for (long after = 0; after < 12; after++) {
        mh_rawmem_fail_after = after;
        mh_churn_t *churn = mh_churn_new();
        if (churn == NULL) {
            mh_rawmem_fail_after = -1;
            continue;
        }
        mh_churn_begin(churn, 0, 0, 0.0, NULL, 0);
        double expected = 0;
        for (uint32_t tb = 0; tb < 200; tb++) {
            mh_trace_t obj = block(0x1000 + tb * 16, tb, 16, MH_DOMAIN_OBJ);
            mh_churn_count(churn, &obj, 16);
            expected += 1;
        }
        mh_churn_end(churn, 1, 0, 0.0);
        mh_rawmem_fail_after = -1;
        mh_churn_totals_t totals;
        mh_churn_totals(churn, &totals);
        CHECK(totals.objects[0] + (double)totals.dropped == expected);
        mh_churn_free(churn);
    }
}

int
main(void)
{
    size_t before = mh_rawmem_in_use;
    test_commit_and_discard();
    test_sampling_weight();
    test_ignore_and_stale_collection();
    test_other_thread();
    test_many_sites();
    test_out_of_memory();
    CHECK(mh_rawmem_in_use == before);
    return check_report("test_gcchurn");
}
