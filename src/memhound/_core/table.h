/* table.h: a small open-addressing hash map from 64-bit keys to 32-bit
 * values, for memhound's side indexes (interning code objects, frames and
 * tracebacks; mapping store indices to snapshot indices).
 *
 * Header-only, Python-free, not thread-safe (callers say what protects each
 * map).  Keys are caller-computed 64-bit values; key 0 is reserved (callers
 * that may produce 0 must remap it).  Storage comes from rawmem.h.  The hot
 * live-block table is traces.c's own, more compact, structure.
 */
#ifndef MH_TABLE_H
#define MH_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "rawmem.h"

typedef struct {
    uint64_t key; /* 0: empty */
    uint32_t value;
} mh_table_slot_t;

typedef struct {
    mh_table_slot_t *slots;
    size_t capacity; /* power of two, or 0 before the first insert */
    size_t count;
} mh_table_t;

/* Mix a key so that nearby pointers spread over the table. */
static inline uint64_t
mh_table_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline void
mh_table_init(mh_table_t *t)
{
    t->slots = NULL;
    t->capacity = 0;
    t->count = 0;
}

static inline void
mh_table_fini(mh_table_t *t)
{
    mh_rawmem_free(t->slots, t->capacity * sizeof(mh_table_slot_t));
    mh_table_init(t);
}

static inline size_t
mh_table_memory(const mh_table_t *t)
{
    return t->capacity * sizeof(mh_table_slot_t);
}

/* Returns 1 and sets *value when key is present, else 0.  Can't fail. */
static inline int
mh_table_get(const mh_table_t *t, uint64_t key, uint32_t *value)
{
    if (t->capacity == 0) {
        return 0;
    }
    size_t mask = t->capacity - 1;
    for (size_t i = mh_table_mix(key) & mask;; i = (i + 1) & mask) {
        if (t->slots[i].key == key) {
            *value = t->slots[i].value;
            return 1;
        }
        if (t->slots[i].key == 0) {
            return 0;
        }
    }
}

static inline int
mh_table_grow(mh_table_t *t)
{
    size_t new_cap = t->capacity ? t->capacity * 2 : 64;
    mh_table_slot_t *slots =
        (mh_table_slot_t *)mh_rawmem_calloc(new_cap, sizeof(*slots));
    if (slots == NULL) {
        return -1;
    }
    size_t mask = new_cap - 1;
    for (size_t j = 0; j < t->capacity; j++) {
        if (t->slots[j].key == 0) {
            continue;
        }
        size_t i = mh_table_mix(t->slots[j].key) & mask;
        while (slots[i].key != 0) {
            i = (i + 1) & mask;
        }
        slots[i] = t->slots[j];
    }
    mh_rawmem_free(t->slots, t->capacity * sizeof(mh_table_slot_t));
    t->slots = slots;
    t->capacity = new_cap;
    return 0;
}

/* Insert or overwrite.  Returns 0, or -1 when out of memory (the map is
 * unchanged).  key must not be 0. */
static inline int
mh_table_put(mh_table_t *t, uint64_t key, uint32_t value)
{
    if ((t->count + 1) * 4 > t->capacity * 3 && mh_table_grow(t) < 0) {
        return -1;
    }
    size_t mask = t->capacity - 1;
    size_t i = mh_table_mix(key) & mask;
    while (t->slots[i].key != 0 && t->slots[i].key != key) {
        i = (i + 1) & mask;
    }
    if (t->slots[i].key == 0) {
        t->count++;
    }
    t->slots[i].key = key;
    t->slots[i].value = value;
    return 0;
}

#endif /* MH_TABLE_H */
