/*
 * capacity.h - where a key's slot is, and room for a new key (not
 * installed): the probe of a lookup, inlined into the hot path, and the
 * insert of capacity.c, which claims, sweeps, grows and counts keys.
 * Invariant: a key is never placed past an empty slot of its probe
 * sequence, and a table never holds more than its cap of keys.
 */
#ifndef FW_CAPACITY_H
#define FW_CAPACITY_H

#include "slot.h"

/* Linear probing from the key's home slot over the whole table: a key is
 * never placed past an empty slot of its probe sequence, and a slot never
 * becomes empty while a key lies past it (see sweep in capacity.c), so a lookup
 * stops at the first empty slot. At half load the sequence is short. */
static inline fwi_slot_t *fwi_table_find(const fw_table_t *t, fwi_hash128_t h)
{
    uint64_t home = h.hi & t->mask;
    for (uint64_t i = 0; i <= t->mask; i++) {
        fwi_slot_t *s = slot_at(t, home + i);
        uint64_t tag = __atomic_load_n(&s->tag, __ATOMIC_SEQ_CST);
        if (tag == h.lo && __atomic_load_n(&s->check, __ATOMIC_SEQ_CST) == h.hi)
            return s;
        if (tag == FWI_TAG_EMPTY)
            return NULL;
    }
    return NULL;
}

/* Insert the key, absent when last looked up, into *out (under its insert
 * stripe, looking it up again first). FW_EFULL: no slot for it; FW_EBUSY:
 * a lock it needs stayed held by a live owner. */
int fwi_table_insert(fw_table_t *t, fwi_hash128_t h, int64_t now, fwi_slot_t **out);

/* Find the key's slot into *out, inserting it if absent (fwi_table_insert's
 * errors). */
static inline int fwi_table_find_or_insert(fw_table_t *t, fwi_hash128_t h, int64_t now,
                                           fwi_slot_t **out)
{
    fwi_slot_t *s = fwi_table_find(t, h);
    *out = s;
    return s ? 0 : fwi_table_insert(t, h, now, out);
}

#endif
