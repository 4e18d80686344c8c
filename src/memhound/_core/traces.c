/* traces.c: the live-block table (contract in traces.h).
 *
 * Owns every slot array and the side table for huge sizes; all memory
 * comes from rawmem.h and nothing is allocated per entry.  Open addressing
 * with linear probing in power-of-two arrays.  Growth is incremental: a
 * resize keeps the old array ("old half"), every insert or remove moves
 * MIGRATE_SLOTS of its slots (top down) into the new one, and the old
 * array's migrated tail is released as it goes.  Invariant: a live address
 * is in exactly one half.  Python-free; not thread-safe (hooks.c holds its
 * table lock around every call).
 */
#include "traces.h"

#include <string.h>

#include "rawmem.h"

/* Slot packing, 16 bytes, touched only through the inline helpers below.
 *
 *   key  bits  0..47  block address; 0 means the slot is empty
 *        bits 48..63  generation
 *   val  bits  0..31  size, or SIZE_ESCAPE: the real size (>= SIZE_ESCAPE)
 *                     is in the side table, keyed by address
 *        bits 32..61  traceback index (so at most TRACEBACK_MAX)
 *        bits 62..63  domain
 *
 * TOMBSTONE (address 0, generation 1) appears only in the old half of a
 * resize, where a slot that was migrated or removed must stay non-empty so
 * that the probe chains running through it stay intact.  Since no address
 * is 0, a key whose address bits are 0 never matches a lookup.  The current
 * half never holds tombstones: it deletes by backward shift.
 *
 * The old half is migrated from its last slot down to slot 0: slots
 * [0, cursor) are not migrated yet.  Every slot at or above the cursor
 * holds nothing live, so once TRIM_SLOTS of them pile up past old_len the
 * array is shrunk to cursor slots (realloc shrinks in place with glibc and
 * musl; freeing a 128 MiB array at once takes 10+ ms).  A probe in the old
 * half treats the released slots [old_len, capacity) as a bridge to slot
 * 0: they held nothing live, so a chain that entered them continues there.
 */
typedef struct {
    uint64_t key;
    uint64_t val;
} slot_t;

#define ADDR_MASK ((UINT64_C(1) << 48) - 1)
#define GEN_SHIFT 48
#define TOMBSTONE (UINT64_C(1) << 48)
#define SIZE_ESCAPE UINT32_MAX
#define TRACEBACK_MAX ((UINT32_C(1) << 30) - 1)
#define DOMAIN_MAX 3

/* Slots per half of the first table; clear() returns to this size. */
#define INITIAL_LOG2 10
/* Old-half slots examined per insert and remove during a resize.  A resize
 * starts at 3/4 load, so the next one is due after at least capacity/4
 * inserts while this one needs capacity/MIGRATE_SLOTS calls: any value
 * above 4 finishes in time; larger values shorten the window in which
 * inserts probe both halves, smaller values bound the per-call work.
 * Overridable at build time for tests of the slow-migration paths. */
#ifndef MH_TRACES_MIGRATE_SLOTS
#define MH_TRACES_MIGRATE_SLOTS 32
#endif
#define MIGRATE_SLOTS MH_TRACES_MIGRATE_SLOTS
/* Shrink the old half whenever this many migrated slots (1 MiB) sit at
 * its end. */
#define TRIM_SLOTS ((size_t)1 << 16)
#define SIDE_INITIAL 16

#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* One open-addressing array.  index = hash >> shift, so shift is
 * 64 - log2(capacity). */
typedef struct {
    slot_t *slots;
    size_t mask; /* capacity - 1 */
    unsigned shift;
} half_t;

typedef struct {
    uint64_t addr; /* 0: empty */
    uint64_t size;
} side_t;

struct mh_traces {
    half_t cur;      /* where inserts go */
    half_t old;      /* the half being migrated; slots NULL when none */
    size_t old_len;  /* slots of old still allocated: [0, old_len) */
    size_t cursor;   /* old slots [0, cursor) are not migrated yet */
    size_t old_live; /* live entries left in old; 0 iff no resize */
    int old_trim;    /* 0 once a shrink failed or moved the array */
    size_t count;    /* live entries in both halves */
    size_t grow_at;  /* try to grow when inserting at this count */
    size_t full_at;  /* refuse new addresses at this count */
    side_t *side;    /* huge sizes; NULL until the first one */
    size_t side_mask;
    unsigned side_shift;
    size_t side_count;
};

/* The state after clear() could not allocate: a two-slot empty array that
 * is never written (grow_at and full_at are 0, so an insert must grow
 * first).  Two slots so that shift 63 stays a valid shift. */
static const slot_t empty_slots[2];

static inline uint64_t
hash_addr(uint64_t addr)
{
    /* Multiply, fold, multiply; the index takes the top bits, which
     * depend on every input bit.  One multiply alone (Fibonacci hashing)
     * clusters on regular strides: 4 KiB strides at 3/4 load probed 3x
     * more slots than random keys do; with this mix every stride tried
     * (16, 48, 4096, 65552 bytes, random) probes like random keys. */
    uint64_t h = addr * UINT64_C(0x9e3779b97f4a7c15);
    h ^= h >> 32;
    return h * UINT64_C(0xd6e8feb86659fd93);
}

static inline size_t
home(const half_t *h, uint64_t hash)
{
    return (size_t)(hash >> h->shift);
}

static inline int
is_live(uint64_t key)
{
    return (key & ADDR_MASK) != 0;
}

/* Index of addr's slot in h, or of the empty slot that ends its chain.
 * Terminates because every half keeps at least one empty slot. */
static inline size_t
probe(const half_t *h, uint64_t hash, uint64_t addr)
{
    size_t i = home(h, hash);
    for (;;) {
        uint64_t key = h->slots[i].key;
        if (key == 0 || ((key ^ addr) & ADDR_MASK) == 0) {
            return i;
        }
        i = (i + 1) & h->mask;
    }
}

/* Index of the first empty slot on hash's chain (addr known absent). */
static inline size_t
probe_empty(const half_t *h, uint64_t hash)
{
    size_t i = home(h, hash);
    while (h->slots[i].key != 0) {
        i = (i + 1) & h->mask;
    }
    return i;
}

static inline uint64_t
pack_val(uint64_t size, uint32_t traceback, uint8_t domain)
{
    uint64_t size32 = size < SIZE_ESCAPE ? size : SIZE_ESCAPE;
    return size32 | (uint64_t)traceback << 32 | (uint64_t)domain << 62;
}

static inline int
is_huge(const slot_t *s)
{
    return (uint32_t)s->val == SIZE_ESCAPE;
}

static inline size_t
capacity(const half_t *h)
{
    return h->slots == empty_slots ? 0 : h->mask + 1;
}

/* ---- side table: address -> size for sizes >= SIZE_ESCAPE ------------ */

static side_t *
side_find(const mh_traces_t *t, uint64_t addr)
{
    if (t->side == NULL) {
        return NULL;
    }
    size_t i = (size_t)(hash_addr(addr) >> t->side_shift);
    for (;;) {
        side_t *e = &t->side[i];
        if (e->addr == addr) {
            return e;
        }
        if (e->addr == 0) {
            return NULL;
        }
        i = (i + 1) & t->side_mask;
    }
}

static void
side_put(side_t *side, size_t mask, unsigned shift, uint64_t addr,
         uint64_t size)
{
    size_t i = (size_t)(hash_addr(addr) >> shift);
    while (side[i].addr != 0) {
        i = (i + 1) & mask;
    }
    side[i].addr = addr;
    side[i].size = size;
}

/* Add addr (known absent).  Returns 0, or -1 when out of memory (the side
 * table is then unchanged).  Rehashes in one go: huge blocks are rare. */
static int
side_insert(mh_traces_t *t, uint64_t addr, uint64_t size)
{
    size_t cap = t->side ? t->side_mask + 1 : 0;
    if ((t->side_count + 1) * 2 > cap) {
        size_t new_cap = cap ? cap * 2 : SIDE_INITIAL;
        unsigned new_shift = cap ? t->side_shift - 1 : 64 - 4;
        if (cap > SIZE_MAX / (4 * sizeof(side_t))) {
            return -1;
        }
        side_t *side = mh_rawmem_calloc(new_cap, sizeof(side_t));
        if (side == NULL) {
            return -1;
        }
        for (size_t i = 0; i < cap; i++) {
            if (t->side[i].addr != 0) {
                side_put(side, new_cap - 1, new_shift, t->side[i].addr,
                         t->side[i].size);
            }
        }
        mh_rawmem_free(t->side, cap * sizeof(side_t));
        t->side = side;
        t->side_mask = new_cap - 1;
        t->side_shift = new_shift;
    }
    side_put(t->side, t->side_mask, t->side_shift, addr, size);
    t->side_count++;
    return 0;
}

/* Remove addr, which must be present, by backward shift. */
static void
side_remove(mh_traces_t *t, uint64_t addr)
{
    side_t *side = t->side;
    size_t mask = t->side_mask;
    size_t i = (size_t)(side_find(t, addr) - side);
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (side[j].addr == 0) {
            break;
        }
        size_t h = (size_t)(hash_addr(side[j].addr) >> t->side_shift);
        if (((j - h) & mask) >= ((j - i) & mask)) {
            side[i] = side[j];
            i = j;
        }
    }
    side[i].addr = 0;
    side[i].size = 0;
    t->side_count--;
}

static void
side_release(mh_traces_t *t)
{
    if (t->side != NULL) {
        mh_rawmem_free(t->side, (t->side_mask + 1) * sizeof(side_t));
    }
    t->side = NULL;
    t->side_mask = 0;
    t->side_count = 0;
}

/* ---- slots ---------------------------------------------------------- */

static void
unpack(const mh_traces_t *t, const slot_t *s, mh_trace_t *out)
{
    out->ptr = (uintptr_t)(s->key & ADDR_MASK);
    out->generation = (uint16_t)(s->key >> GEN_SHIFT);
    out->size = (uint32_t)s->val;
    out->traceback = (uint32_t)(s->val >> 32) & TRACEBACK_MAX;
    out->domain = (uint8_t)(s->val >> 62);
    if (is_huge(s)) {
        out->size = side_find(t, s->key & ADDR_MASK)->size;
    }
}

/* Delete slot i of the current half by backward shift: later entries of
 * the cluster move back when that does not put them before their home. */
static void
erase(half_t *h, size_t i)
{
    slot_t *s = h->slots;
    size_t j = i;
    for (;;) {
        j = (j + 1) & h->mask;
        uint64_t key = s[j].key;
        if (key == 0) {
            break;
        }
        size_t k = home(h, hash_addr(key & ADDR_MASK));
        if (((j - k) & h->mask) >= ((j - i) & h->mask)) {
            s[i] = s[j];
            i = j;
        }
    }
    s[i].key = 0;
    s[i].val = 0;
}

/* Index of addr's slot in the old half, or SIZE_MAX.  Like probe(), but
 * slots [old_len, capacity) may be gone (see the packing comment), so the
 * walk is bounded by one full cycle instead of relying on an empty slot
 * in what is left. */
static size_t
probe_old(const mh_traces_t *t, uint64_t hash, uint64_t addr)
{
    const slot_t *s = t->old.slots;
    size_t len = t->old_len;
    size_t i = home(&t->old, hash);
    if (i >= len) {
        i = 0;
    }
    for (size_t n = len; n > 0; n--) {
        uint64_t key = s[i].key;
        if (key == 0) {
            return SIZE_MAX;
        }
        if (((key ^ addr) & ADDR_MASK) == 0) {
            return i;
        }
        if (++i == len) {
            i = 0;
        }
    }
    return SIZE_MAX;
}

/* Delete slot i of the old half.  A tombstone is needed only when the
 * chain continues past i; when the next slot is empty, slot i and the
 * tombstones just below it can become empty instead.  Because migration
 * goes top down, the next slot is usually an already migrated one, so the
 * migrated region is mostly empty and probes for absent addresses in the
 * old half stay short.  Released slots count as non-empty, and the walk
 * down does not wrap into them. */
static void
bury(mh_traces_t *t, size_t i)
{
    slot_t *s = t->old.slots;
    size_t len = t->old_len;
    size_t cap = t->old.mask + 1;
    size_t next = i + 1 < len ? i + 1 : 0;
    if ((i + 1 >= len && len != cap) || s[next].key != 0) {
        s[i].key = TOMBSTONE;
        return;
    }
    s[i].key = 0;
    while (i > 0 || len == cap) {
        i = (i == 0 ? cap : i) - 1;
        if (s[i].key != TOMBSTONE) {
            break;
        }
        s[i].key = 0;
    }
}

static void
set_limits(mh_traces_t *t)
{
    size_t cap = capacity(&t->cur);
    t->grow_at = cap - cap / 4;
    t->full_at = cap - cap / 16;
}

static void
release_old(mh_traces_t *t)
{
    if (t->old.slots != NULL) {
        mh_rawmem_free(t->old.slots, t->old_len * sizeof(slot_t));
    }
    t->old.slots = NULL;
    t->old.mask = 0;
    t->old_len = 0;
    t->old_live = 0;
    t->cursor = 0;
}

/* Give the migrated slots [cursor, old_len) back.  Only ever shrinks, so
 * it never needs memory; if realloc fails, or moves the array (which
 * means it copied it), shrinking stops until this resize ends and the
 * array is freed whole. */
static void
trim_old(mh_traces_t *t)
{
    slot_t *slots = mh_rawmem_realloc(
        t->old.slots, t->old_len * sizeof(slot_t), t->cursor * sizeof(slot_t));
    if (slots == NULL) {
        t->old_trim = 0;
        return;
    }
    t->old_trim = slots == t->old.slots;
    t->old.slots = slots;
    t->old_len = t->cursor;
}

/* Move up to budget old slots, top down, into the current half; frees the
 * old half when nothing is left in it.  Never allocates. */
static void
migrate(mh_traces_t *t, size_t budget)
{
    slot_t *old = t->old.slots;
    size_t end = t->cursor > budget ? t->cursor - budget : 0;
    for (size_t i = t->cursor; i-- > end;) {
        if (is_live(old[i].key)) {
            uint64_t addr = old[i].key & ADDR_MASK;
            t->cur.slots[probe_empty(&t->cur, hash_addr(addr))] = old[i];
            bury(t, i);
            t->old_live--;
        }
    }
    t->cursor = end;
    if (end == 0 || t->old_live == 0) {
        release_old(t);
    }
    else if (t->old_len - end >= TRIM_SLOTS && t->old_trim) {
        trim_old(t);
    }
}

/* Allocate a first array for an empty table.  Returns 0 or -1. */
static int
start_empty(mh_traces_t *t)
{
    size_t cap = (size_t)1 << INITIAL_LOG2;
    slot_t *slots = mh_rawmem_calloc(cap, sizeof(slot_t));
    if (slots == NULL) {
        return -1;
    }
    t->cur.slots = slots;
    t->cur.mask = cap - 1;
    t->cur.shift = 64 - INITIAL_LOG2;
    set_limits(t);
    return 0;
}

static void
become_empty_sentinel(mh_traces_t *t)
{
    t->cur.slots = (slot_t *)empty_slots;
    t->cur.mask = 1;
    t->cur.shift = 63;
    set_limits(t); /* capacity 0: both limits 0 */
}

/* Called when count reached grow_at.  Finishes a resize under way (only
 * possible if inserts outran migration, which the MIGRATE_SLOTS bound
 * rules out, but cheap to guarantee), then starts a new one.  When the
 * allocation fails the table keeps working in place, up to full_at, and
 * retries after capacity/64 more entries, or on every insert once full. */
static void
grow(mh_traces_t *t)
{
    if (t->old.slots != NULL) {
        migrate(t, SIZE_MAX);
    }
    if (t->cur.slots == empty_slots) {
        (void)start_empty(t);
        return;
    }
    size_t cap = t->cur.mask + 1;
    slot_t *slots = NULL;
    /* 3 * cap slots are held during the resize: keep that in a size_t. */
    if (cap <= SIZE_MAX / (4 * 2 * sizeof(slot_t))) {
        slots = mh_rawmem_calloc(cap * 2, sizeof(slot_t));
    }
    if (slots == NULL) {
        size_t step = cap / 64;
        t->grow_at =
            t->full_at - t->count > step ? t->count + step : t->full_at;
        return;
    }
    t->old = t->cur;
    t->old_len = cap;
    t->old_live = t->count;
    t->cursor = cap;
    t->old_trim = 1;
    t->cur.slots = slots;
    t->cur.mask = cap * 2 - 1;
    t->cur.shift--;
    set_limits(t);
    if (t->old_live == 0) {
        release_old(t);
    }
}

/* ---- public API ------------------------------------------------------ */

mh_traces_t *
mh_traces_new(void)
{
    mh_traces_t *t = mh_rawmem_calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    if (start_empty(t) < 0) {
        mh_rawmem_free(t, sizeof(*t));
        return NULL;
    }
    return t;
}

void
mh_traces_free(mh_traces_t *t)
{
    if (t == NULL) {
        return;
    }
    release_old(t);
    side_release(t);
    if (t->cur.slots != empty_slots) {
        mh_rawmem_free(t->cur.slots, (t->cur.mask + 1) * sizeof(slot_t));
    }
    mh_rawmem_free(t, sizeof(*t));
}

/* The huge-size bookkeeping of an insert, kept off the common path.
 * found is the slot being replaced or NULL.  Returns 0 or -1 (out of
 * memory, nothing changed). */
static int
insert_side(mh_traces_t *t, uint64_t addr, uint64_t size, const slot_t *found)
{
    int was_huge = found != NULL && is_huge(found);
    if (size >= SIZE_ESCAPE) {
        if (was_huge) {
            side_find(t, addr)->size = size;
            return 0;
        }
        return side_insert(t, addr, size);
    }
    if (was_huge) {
        side_remove(t, addr);
    }
    return 0;
}

int
mh_traces_insert(mh_traces_t *t, const mh_trace_t *trace, mh_trace_t *replaced)
{
    uint64_t addr = trace->ptr;
    if (addr == 0 || addr > ADDR_MASK || trace->traceback > TRACEBACK_MAX ||
        trace->domain > DOMAIN_MAX) {
        return -1;
    }
    if (UNLIKELY(t->count >= t->grow_at)) {
        grow(t);
    }
    else if (UNLIKELY(t->old_live != 0)) {
        migrate(t, MIGRATE_SLOTS);
    }

    uint64_t hash = hash_addr(addr);
    slot_t *dst = &t->cur.slots[probe(&t->cur, hash, addr)];
    slot_t *found = dst->key != 0 ? dst : NULL;
    size_t old_index = SIZE_MAX;
    if (found == NULL && t->old_live != 0) {
        old_index = probe_old(t, hash, addr);
        if (old_index != SIZE_MAX) {
            found = &t->old.slots[old_index];
        }
    }
    if (found == NULL && t->count >= t->full_at) {
        return -1;
    }

    mh_trace_t previous;
    if (found != NULL && replaced != NULL) {
        unpack(t, found, &previous);
    }
    if (UNLIKELY(trace->size >= SIZE_ESCAPE ||
                 (found != NULL && is_huge(found)))) {
        if (insert_side(t, addr, trace->size, found) < 0) {
            return -1;
        }
    }
    if (found == NULL) {
        t->count++;
    }
    else if (found != dst) {
        bury(t, old_index);
        if (--t->old_live == 0) {
            release_old(t);
        }
    }
    dst->key = addr | (uint64_t)trace->generation << GEN_SHIFT;
    dst->val = pack_val(trace->size, trace->traceback, trace->domain);
    if (found == NULL) {
        return 0;
    }
    if (replaced != NULL) {
        *replaced = previous;
    }
    return 1;
}

int
mh_traces_remove(mh_traces_t *t, uintptr_t ptr, mh_trace_t *removed)
{
    uint64_t addr = ptr;
    if (UNLIKELY(t->old_live != 0)) {
        migrate(t, MIGRATE_SLOTS);
    }
    if (addr == 0 || addr > ADDR_MASK) {
        return 0;
    }
    uint64_t hash = hash_addr(addr);
    size_t i = probe(&t->cur, hash, addr);
    half_t *h = &t->cur;
    if (h->slots[i].key == 0) {
        if (t->old_live == 0) {
            return 0;
        }
        h = &t->old;
        i = probe_old(t, hash, addr);
        if (i == SIZE_MAX) {
            return 0;
        }
    }
    slot_t *s = &h->slots[i];
    if (removed != NULL) {
        unpack(t, s, removed);
    }
    if (UNLIKELY(is_huge(s))) {
        side_remove(t, addr);
    }
    t->count--;
    if (h == &t->cur) {
        erase(h, i);
    }
    else {
        bury(t, i);
        if (--t->old_live == 0) {
            release_old(t);
        }
    }
    return 1;
}

int
mh_traces_get(const mh_traces_t *t, uintptr_t ptr, mh_trace_t *out)
{
    uint64_t addr = ptr;
    if (addr == 0 || addr > ADDR_MASK) {
        return 0;
    }
    uint64_t hash = hash_addr(addr);
    const slot_t *s = &t->cur.slots[probe(&t->cur, hash, addr)];
    if (s->key == 0) {
        if (t->old_live == 0) {
            return 0;
        }
        size_t i = probe_old(t, hash, addr);
        if (i == SIZE_MAX) {
            return 0;
        }
        s = &t->old.slots[i];
    }
    unpack(t, s, out);
    return 1;
}

size_t
mh_traces_count(const mh_traces_t *t)
{
    return t->count;
}

size_t
mh_traces_memory(const mh_traces_t *t)
{
    size_t bytes = sizeof(*t) + capacity(&t->cur) * sizeof(slot_t);
    if (t->old.slots != NULL) {
        bytes += t->old_len * sizeof(slot_t);
    }
    if (t->side != NULL) {
        bytes += (t->side_mask + 1) * sizeof(side_t);
    }
    return bytes;
}

void
mh_traces_clear(mh_traces_t *t)
{
    release_old(t);
    side_release(t);
    t->count = 0;
    if (t->cur.slots != empty_slots &&
        t->cur.mask + 1 == (size_t)1 << INITIAL_LOG2) {
        memset(t->cur.slots, 0, (t->cur.mask + 1) * sizeof(slot_t));
        set_limits(t);
        return;
    }
    if (t->cur.slots != empty_slots) {
        mh_rawmem_free(t->cur.slots, (t->cur.mask + 1) * sizeof(slot_t));
    }
    if (start_empty(t) < 0) {
        /* The next insert allocates (or counts a drop). */
        become_empty_sentinel(t);
    }
}

/* Calls visit on every live slot of slots[0..n); stops at a non-zero
 * result. */
static int
scan(const mh_traces_t *t, const slot_t *slots, size_t n,
     int (*visit)(const mh_traces_t *, const slot_t *, void *), void *arg)
{
    for (size_t i = 0; i < n; i++) {
        if (is_live(slots[i].key)) {
            int rc = visit(t, &slots[i], arg);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int
scan_both(const mh_traces_t *t,
          int (*visit)(const mh_traces_t *, const slot_t *, void *), void *arg)
{
    int rc = scan(t, t->cur.slots, capacity(&t->cur), visit, arg);
    if (rc == 0 && t->old.slots != NULL) {
        rc = scan(t, t->old.slots, t->old_len, visit, arg);
    }
    return rc;
}

typedef struct {
    mh_snap_block_t *out;
    size_t cap;
    size_t n;
} export_state_t;

static int
export_one(const mh_traces_t *t, const slot_t *s, void *arg)
{
    export_state_t *st = arg;
    if (st->n == st->cap) {
        return 1;
    }
    mh_trace_t trace;
    unpack(t, s, &trace);
    mh_snap_block_t *b = &st->out[st->n++];
    b->size = trace.size;
    b->traceback = trace.traceback;
    b->generation = trace.generation;
    b->domain = trace.domain;
    b->flags = 0;
    return 0;
}

size_t
mh_traces_export(const mh_traces_t *t, mh_snap_block_t *out, size_t cap)
{
    export_state_t st = {out, cap, 0};
    (void)scan_both(t, export_one, &st);
    return st.n;
}

void
mh_traces_restamp(mh_traces_t *t, uint16_t generation)
{
    /* The generation bits take no part in hashing (home() hashes the
     * address), so rewriting them in place keeps every probe chain. */
    slot_t *halves[2] = {t->cur.slots, t->old.slots};
    size_t lens[2] = {capacity(&t->cur), t->old.slots ? t->old_len : 0};
    for (int h = 0; h < 2; h++) {
        for (size_t i = 0; i < lens[h]; i++) {
            uint64_t key = halves[h][i].key;
            if (is_live(key)) {
                halves[h][i].key = (key & ADDR_MASK) | (uint64_t)generation
                                                           << GEN_SHIFT;
            }
        }
    }
}

typedef struct {
    int (*visit)(const mh_trace_t *trace, void *arg);
    void *arg;
} foreach_state_t;

static int
foreach_one(const mh_traces_t *t, const slot_t *s, void *arg)
{
    foreach_state_t *st = arg;
    mh_trace_t trace;
    unpack(t, s, &trace);
    return st->visit(&trace, st->arg);
}

int
mh_traces_foreach(const mh_traces_t *t,
                  int (*visit)(const mh_trace_t *trace, void *arg), void *arg)
{
    foreach_state_t st = {visit, arg};
    return scan_both(t, foreach_one, &st);
}
