/*
 * slot.h - how the table's files read and write a slot (not installed): its
 * (tag, state) pair as one 128-bit unit changed by a 16-byte CAS, raising
 * a time word, a slot's address, and whether it holds a key and until when.
 * Invariant: a slot's (tag, state) changes only by unit_cas on a table
 * that others may share; every read of the pair (unit_load) may be torn,
 * and is validated by a CAS before anything is decided from it.
 */
#ifndef FW_SLOT_H
#define FW_SLOT_H

#include "table.h"

typedef fwi_u128 unit_t;

static inline unit_t unit_pack(uint64_t tag, uint64_t state)
{
    return ((unit_t)state << 64) | tag;
}
static inline uint64_t unit_tag(unit_t u) { return (uint64_t)u; }
static inline uint64_t unit_state(unit_t u) { return (uint64_t)(u >> 64); }

/* A possibly torn read: every use is validated by a CAS. */
static inline unit_t unit_load(fwi_slot_t *s)
{
    uint64_t tag = __atomic_load_n(&s->tag, __ATOMIC_SEQ_CST);
    uint64_t state = __atomic_load_n(&s->state, __ATOMIC_SEQ_CST);
    return unit_pack(tag, state);
}

/* On failure, *expected receives the current value (read atomically). */
static inline int unit_cas(fwi_slot_t *s, unit_t *expected, unit_t desired)
{
    unit_t prev = __sync_val_compare_and_swap((unit_t *)(void *)&s->tag,
                                              *expected, desired);
    if (prev == *expected)
        return 1;
    *expected = prev;
    return 0;
}

static inline void raise_to(int64_t *word, int64_t at)
{
    int64_t cur = __atomic_load_n(word, __ATOMIC_SEQ_CST);
    while (cur < at && !__atomic_compare_exchange_n(word, &cur, at, 0,
                                                    __ATOMIC_SEQ_CST,
                                                    __ATOMIC_SEQ_CST))
        ;
}

static inline void expiry_raise(fwi_slot_t *s, int64_t at) { raise_to(&s->expiry, at); }

static inline fwi_slot_t *slot_at(const fw_table_t *t, uint64_t i)
{
    return (fwi_slot_t *)(void *)(t->slots + (i & t->mask) * t->slot_size);
}

/* A tag that holds no key (never used, or retired by a sweep). */
static inline int vacant_tag(uint64_t tag)
{
    return tag == FWI_TAG_EMPTY || tag == FWI_TAG_RETIRED;
}

/* When the slot whose (tag, state) is `cur` is fresh again. */
static inline int64_t fresh_at_of(fwi_slot_t *s, unit_t cur)
{
    return fwi_slot_fresh_at(unit_tag(cur), unit_state(cur),
                             __atomic_load_n(&s->expiry, __ATOMIC_SEQ_CST));
}

#endif
