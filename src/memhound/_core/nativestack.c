/* nativestack.c: native call stacks of native blocks (see nativestack.h).
 *
 * State: the interned stacks (stacks[] of ranges into pcs[], found by
 * stack_index: hash -> id) and the side table of live blocks (an
 * mh_traces_t whose traceback field holds the stack id), all guarded by
 * stack_lock, a spin lock whose holders only call libc and the table code.
 * `enabled` is a relaxed atomic written with the GIL.  Ids start at 1; the
 * traces table packs them in 30 bits, so at most 2^30 - 1 stacks are kept.
 */
#define _GNU_SOURCE
#include "nativestack.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "rawmem.h"
#include "table.h"
#include "traces.h"

#define MH_TLS __thread __attribute__((tls_model("initial-exec")))

typedef struct {
    uint32_t first; /* index of the innermost pc in pcs */
    uint32_t depth;
} nstack_t;

static mh_lock_t stack_lock = MH_LOCK_INIT;
static int enabled;
static nstack_t *stacks; /* stacks[id - 1] */
static size_t nstacks, stacks_cap;
static uintptr_t *pcs;
static size_t npcs, pcs_cap;
static mh_table_t stack_index;
static mh_traces_t *blocks;
static uint64_t dropped;
/* memhound's own code: its frames are dropped from the top of a stack. */
static uintptr_t own_lo, own_hi;

static MH_TLS int tls_busy; /* backtrace() or libgcc reaching a wrapper */

static int
find_own_range(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) {
            continue;
        }
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        lo = start < lo ? start : lo;
        hi = start + ph->p_memsz > hi ? start + ph->p_memsz : hi;
    }
    if (me >= lo && me < hi) {
        own_lo = lo;
        own_hi = hi;
        return 1;
    }
    return 0;
}

int
mh_nstack_start(void)
{
    if (__atomic_load_n(&enabled, __ATOMIC_RELAXED)) {
        return 0;
    }
    /* The first backtrace() dlopens libgcc_s and allocates: do it here,
     * outside any hook. */
    void *warm[4];
    backtrace(warm, 4);
    dl_iterate_phdr(find_own_range, (void *)(uintptr_t)mh_nstack_start);
    mh_traces_t *table = mh_traces_new();
    if (table == NULL) {
        return -1;
    }
    mh_lock_acquire(&stack_lock);
    blocks = table;
    dropped = 0;
    mh_lock_release(&stack_lock);
    __atomic_store_n(&enabled, 1, __ATOMIC_RELAXED);
    return 0;
}

void
mh_nstack_stop(void)
{
    __atomic_store_n(&enabled, 0, __ATOMIC_RELAXED);
    mh_lock_acquire(&stack_lock);
    mh_traces_t *table = blocks;
    blocks = NULL;
    mh_rawmem_free(stacks, stacks_cap * sizeof(nstack_t));
    mh_rawmem_free(pcs, pcs_cap * sizeof(uintptr_t));
    stacks = NULL;
    pcs = NULL;
    nstacks = stacks_cap = npcs = pcs_cap = 0;
    mh_table_fini(&stack_index);
    mh_lock_release(&stack_lock);
    mh_traces_free(table);
}

int
mh_nstack_enabled(void)
{
    return __atomic_load_n(&enabled, __ATOMIC_RELAXED);
}

static uint64_t
hash_pcs(const uintptr_t *frames, int n)
{
    uint64_t h = (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h = mh_table_mix(h ^ frames[i]);
    }
    return h;
}

/* The id of this stack, interning it; 0 when out of memory or when the
 * hash keeps colliding.  stack_lock held. */
static uint32_t
intern_locked(const uintptr_t *frames, int n)
{
    uint64_t key = hash_pcs(frames, n);
    for (int attempt = 0; attempt < 8; attempt++) {
        uint64_t probe = key | 1; /* 0 marks empty slots */
        uint32_t id;
        if (!mh_table_get(&stack_index, probe, &id)) {
            break;
        }
        const nstack_t *s = &stacks[id - 1];
        if (s->depth == (uint32_t)n &&
            memcmp(&pcs[s->first], frames, (size_t)n * sizeof(*frames)) == 0) {
            return id;
        }
        key = mh_table_mix(key + 1); /* another stack with this hash */
        if (attempt == 7) {
            return 0;
        }
    }
    if (nstacks + 1 >= ((size_t)1 << 30) ||
        mh_rawmem_reserve((void **)&stacks, &stacks_cap, nstacks + 1,
                          sizeof(nstack_t)) < 0 ||
        mh_rawmem_reserve((void **)&pcs, &pcs_cap, npcs + (size_t)n,
                          sizeof(uintptr_t)) < 0) {
        return 0;
    }
    uint32_t id = (uint32_t)nstacks + 1;
    if (mh_table_put(&stack_index, key | 1, id) < 0) {
        return 0;
    }
    if (n > 0) {
        memcpy(&pcs[npcs], frames, (size_t)n * sizeof(*frames));
    }
    stacks[nstacks].first = (uint32_t)npcs;
    stacks[nstacks].depth = (uint32_t)n;
    nstacks++;
    npcs += (size_t)n;
    return id;
}

void
mh_nstack_record(uintptr_t ptr, uint64_t size, int skip)
{
    if (!__atomic_load_n(&enabled, __ATOMIC_RELAXED) || tls_busy) {
        return;
    }
    tls_busy = 1;
    void *raw[MH_NSTACK_DEPTH + 2];
    int n = backtrace(raw, MH_NSTACK_DEPTH + 2);
    /* memhound's own frames are dropped from the top; an interceptor of
     * backtrace() itself (ASan's) may come before them. */
    int first = skip < n ? skip : n;
    for (int i = first; i < n && i < first + 3; i++) {
        if ((uintptr_t)raw[i] >= own_lo && (uintptr_t)raw[i] < own_hi) {
            first = i;
            break;
        }
    }
    while (first < n && (uintptr_t)raw[first] >= own_lo &&
           (uintptr_t)raw[first] < own_hi) {
        first++;
    }
    int depth = n - first;
    if (depth > MH_NSTACK_DEPTH) {
        depth = MH_NSTACK_DEPTH;
    }
    uintptr_t frames[MH_NSTACK_DEPTH];
    for (int i = 0; i < depth; i++) {
        frames[i] = (uintptr_t)raw[first + i];
    }
    mh_lock_acquire(&stack_lock);
    if (blocks != NULL) {
        uint32_t id = intern_locked(frames, depth);
        mh_trace_t trace = {.ptr = ptr, .size = size, .traceback = id};
        if (id == 0 || mh_traces_insert(blocks, &trace, NULL) < 0) {
            dropped++;
        }
    }
    mh_lock_release(&stack_lock);
    tls_busy = 0;
}

void
mh_nstack_forget(uintptr_t ptr)
{
    /* Busy: a signal handler freeing while this thread holds stack_lock
     * (the entry stays; groups skip blocks the main table no longer has). */
    if (!__atomic_load_n(&enabled, __ATOMIC_RELAXED) || tls_busy) {
        return;
    }
    tls_busy = 1;
    mh_lock_acquire(&stack_lock);
    if (blocks != NULL) {
        mh_traces_remove(blocks, ptr, NULL);
    }
    mh_lock_release(&stack_lock);
    tls_busy = 0;
}

typedef struct {
    mh_nstack_group_t *sums; /* by id - 1 */
    int (*keep)(uintptr_t ptr, void *arg);
    void *arg;
} visit_t;

static int
add_block(const mh_trace_t *trace, void *arg)
{
    visit_t *v = arg;
    if (trace->traceback == 0 || trace->traceback > nstacks ||
        (v->keep != NULL && !v->keep(trace->ptr, v->arg))) {
        return 0;
    }
    mh_nstack_group_t *g = &v->sums[trace->traceback - 1];
    g->size += trace->size;
    g->count++;
    return 0;
}

static int
larger_first(const void *a, const void *b)
{
    const mh_nstack_group_t *x = a, *y = b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

int
mh_nstack_groups(mh_nstack_group_t **out, size_t *n, size_t max,
                 int (*keep)(uintptr_t ptr, void *arg), void *arg)
{
    *out = NULL;
    *n = 0;
    mh_lock_acquire(&stack_lock);
    if (blocks == NULL || nstacks == 0) {
        mh_lock_release(&stack_lock);
        return 0;
    }
    size_t total = nstacks;
    mh_nstack_group_t *sums = mh_rawmem_calloc(total, sizeof(*sums));
    if (sums == NULL) {
        mh_lock_release(&stack_lock);
        return -1;
    }
    visit_t v = {sums, keep, arg};
    mh_traces_foreach(blocks, add_block, &v);
    for (size_t i = 0; i < total; i++) {
        const nstack_t *s = &stacks[i];
        sums[i].depth = (int)s->depth;
        memcpy(sums[i].pcs, &pcs[s->first], s->depth * sizeof(uintptr_t));
    }
    mh_lock_release(&stack_lock);
    qsort(sums, total, sizeof(*sums), larger_first);
    size_t kept = 0;
    while (kept < total && kept < max && sums[kept].count > 0) {
        kept++;
    }
    mh_nstack_group_t *result =
        mh_rawmem_malloc((kept ? kept : 1) * sizeof(*result));
    if (result != NULL) {
        memcpy(result, sums, kept * sizeof(*result));
    }
    mh_rawmem_free(sums, total * sizeof(*sums));
    if (result == NULL) {
        return -1;
    }
    *out = result;
    *n = kept;
    return 0;
}

void
mh_nstack_groups_free(mh_nstack_group_t *groups, size_t n)
{
    mh_rawmem_free(groups, (n ? n : 1) * sizeof(*groups));
}

/* Blocks of one (site, stack) pair, for mh_nstack_top_by_site. */
typedef struct {
    uint32_t top;   /* index into tops[] */
    uint32_t stack; /* id */
    uint64_t blocks;
    uint64_t bytes;
} pair_t;

typedef struct {
    mh_table_t wanted; /* site key + 1 -> index into tops[] */
    mh_table_t index;  /* (top + 1) << 32 | stack -> index into pairs */
    pair_t *pairs;
    size_t npairs, pairs_cap;
    int (*site_of)(uintptr_t ptr, uint32_t *site, void *arg);
    void *arg;
} top_visit_t;

/* Count one side-table block for its (site, stack) pair.  stack_lock
 * held.  Non-zero: out of memory. */
static int
count_pair(const mh_trace_t *trace, void *arg)
{
    top_visit_t *v = arg;
    uint32_t site, top, at;
    if (trace->traceback == 0 || trace->traceback > nstacks ||
        !v->site_of(trace->ptr, &site, v->arg) ||
        !mh_table_get(&v->wanted, (uint64_t)site + 1, &top)) {
        return 0;
    }
    uint64_t key = ((uint64_t)top + 1) << 32 | trace->traceback;
    if (!mh_table_get(&v->index, key, &at)) {
        if (v->npairs >= UINT32_MAX ||
            mh_rawmem_reserve((void **)&v->pairs, &v->pairs_cap, v->npairs + 1,
                              sizeof(pair_t)) < 0 ||
            mh_table_put(&v->index, key, (uint32_t)v->npairs) < 0) {
            return 1;
        }
        at = (uint32_t)v->npairs++;
        v->pairs[at] = (pair_t){top, trace->traceback, 0, 0};
    }
    v->pairs[at].blocks++;
    v->pairs[at].bytes += trace->size;
    return 0;
}

int
mh_nstack_top_by_site(mh_nstack_top_t *tops, size_t n,
                      int (*site_of)(uintptr_t ptr, uint32_t *site, void *arg),
                      void *arg)
{
    top_visit_t v = {.site_of = site_of, .arg = arg};
    mh_table_init(&v.wanted);
    mh_table_init(&v.index);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        tops[i].depth = 0;
        tops[i].blocks = tops[i].bytes = 0;
        if (i >= UINT32_MAX ||
            mh_table_put(&v.wanted, (uint64_t)tops[i].site + 1, (uint32_t)i) <
                0) {
            rc = -1;
            goto done;
        }
    }
    mh_lock_acquire(&stack_lock);
    if (blocks != NULL && n > 0 &&
        mh_traces_foreach(blocks, count_pair, &v) != 0) {
        rc = -1;
    }
    for (size_t p = 0; rc == 0 && p < v.npairs; p++) {
        const pair_t *pair = &v.pairs[p];
        mh_nstack_top_t *top = &tops[pair->top];
        if (pair->blocks < top->blocks ||
            (pair->blocks == top->blocks && pair->bytes <= top->bytes)) {
            continue;
        }
        const nstack_t *s = &stacks[pair->stack - 1];
        top->blocks = pair->blocks;
        top->bytes = pair->bytes;
        top->depth = (int)s->depth;
        memcpy(top->pcs, &pcs[s->first], s->depth * sizeof(uintptr_t));
    }
    mh_lock_release(&stack_lock);
done:
    mh_rawmem_free(v.pairs, v.pairs_cap * sizeof(pair_t));
    mh_table_fini(&v.index);
    mh_table_fini(&v.wanted);
    return rc;
}

void
mh_nstack_set_own_range(uintptr_t lo, uintptr_t hi)
{
    own_lo = lo;
    own_hi = hi;
}

uint64_t
mh_nstack_dropped(void)
{
    mh_lock_acquire(&stack_lock);
    uint64_t result = dropped;
    mh_lock_release(&stack_lock);
    return result;
}

void
mh_nstack_before_fork(void)
{
    mh_lock_acquire(&stack_lock);
}

void
mh_nstack_after_fork_parent(void)
{
    mh_lock_release(&stack_lock);
}

void
mh_nstack_after_fork_child(void)
{
    mh_lock_reinit_after_fork(&stack_lock);
}

int
mh_nstack_symbolize(uintptr_t pc, const char **library, const char **function,
                    uintptr_t *offset)
{
    Dl_info info;
    if (dladdr((void *)pc, &info) == 0 || info.dli_fname == NULL) {
        return 0;
    }
    *library = info.dli_fname;
    *function = info.dli_sname;
    *offset = pc - (uintptr_t)info.dli_fbase;
    return 1;
}
