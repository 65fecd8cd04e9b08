/*
 * table.h - the on-memory layout of the slot table, shared by the memory,
 * shm and file stores (a file on disk is exactly this layout).
 * Invariant: the header's fixed part is covered by its checksum; a slot's
 * (tag, state) pair is only ever changed by one 16-byte compare-and-swap
 * (plain stores on a growing table, whose calls its caller serialises);
 * `keys` never counts fewer slots holding a key than there are.
 */
#ifndef FW_TABLE_H
#define FW_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "floodwall.h"
#include "hash.h"
#include "internal.h"

#define FWI_TABLE_MAGIC "FLOODWL\0"
#define FWI_TABLE_VERSION FW_TABLE_LAYOUT_VERSION
#define FWI_TABLE_HEADER_SIZE 4096u
#define FWI_TABLE_STRIPES 256u
#define FWI_SLOT_HEAD_SIZE 64u
/* The fewest slots of a table (a growing memory table starts here). */
#define FWI_MIN_SLOTS 64u

/* Tags with a meaning of their own (a fingerprint never takes them):
 * 0 a slot never used since the table was made (a lookup stops there);
 * FWI_TAG_RETIRED a slot whose expired key a sweep removed (a lookup passes
 * it; an insert may take it). */
#define FWI_TAG_EMPTY 0u
#define FWI_TAG_RETIRED UINT64_MAX

/* The top bit of a key's tag says what its state is (layout version 3): set
 * for the GCRA family, whose state is a TAT, fresh again at the TAT itself;
 * clear for every other algorithm. A GCRA commit then has no expiry to
 * raise: the slot is fresh again at max(expiry, state), computed from the
 * (tag, state) pair that a reclaim's CAS checks (fwi_slot_fresh_at). The
 * bit is a function of the limit, so a key's tag is still a function of
 * (seed, limit, key): 127 bits of keyed fingerprint in all. */
#define FWI_TAG_TAT ((uint64_t)1 << 63)

/* The fingerprint of `key` under limit `lim` in a table seeded `seed`: the
 * tag (low half, its top bit FWI_TAG_TAT for the GCRA family, never a
 * reserved tag) and the high half (home slot and check). */
static inline fwi_hash128_t fwi_fingerprint(const uint64_t seed[2], const fw_limit_t *lim,
                                           const void *key, size_t len)
{
    fwi_hash128_t h = fwi_hash128(seed[0] ^ lim->namespace_id, seed[1], key, len);
    if (fwi_algo_is_gcra(&lim->quota))
        h.lo |= FWI_TAG_TAT;
    else
        h.lo &= ~FWI_TAG_TAT;
    if (h.lo == FWI_TAG_EMPTY)
        h.lo = 1;
    else if (h.lo == FWI_TAG_RETIRED)
        h.lo = FWI_TAG_RETIRED - 1;
    return h;
}

/* When a slot holding key tag `tag`, state `state` and expiry `expiry` is
 * fresh again (it may change hands once this is before `now`): the expiry,
 * or for a GCRA-family key the later of it and its TAT. */
static inline int64_t fwi_slot_fresh_at(uint64_t tag, uint64_t state, int64_t expiry)
{
    if (!(tag & FWI_TAG_TAT) || tag == FWI_TAG_RETIRED)
        return expiry;
    int64_t tat = state > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)state;
    return tat > expiry ? tat : expiry;
}

typedef struct fwi_table_header {
    /* fixed part: written once by fw_table_format, checksummed */
    char magic[8];
    uint32_t version;
    uint32_t header_size;
    uint32_t slot_size;
    uint32_t log_capacity;
    uint64_t nslots;
    uint64_t max_keys;
    uint64_t seed[2];
    uint64_t created_ns;
    uint64_t checksum; /* SipHash of the bytes above, fixed key */
    /* mutable part */
    uint64_t full_errors;
    uint64_t damaged_states;    /* impossible states found (and repaired)   */
    uint64_t clamped_states;    /* states further ahead of now than their
                                   policy allows, clamped (clock excursion) */
    uint64_t last_damaged_slot; /* index + 1 of the latest; 0 = none        */
    /* capacity (docs/design.md, "Capacity"): `keys` counts the slots that
     * hold a key, expired or not (reserved before a claim, released after
     * a retire; a crash in between leaves it high, and a sweep that holds
     * every stripe lock recounts it). A sweep that frees nothing records
     * `quiet_until` (no slot expires before it), valid while `claims` (one
     * per claim) still equals `hint_claims` - 1. */
    uint64_t keys;
    uint64_t claims;
    int64_t quiet_until;
    uint64_t hint_claims;
    uint64_t stripe_locks[FWI_TABLE_STRIPES]; /* lock words (src/lock.h)    */
    uint64_t sweep_lock; /* lock word (src/lock.h): one sweep at a time */
    uint64_t retired;    /* slots retired by sweeps since creation     */
} fwi_table_header_t;

_Static_assert(sizeof(fwi_table_header_t) <= FWI_TABLE_HEADER_SIZE,
               "header must fit its page");
_Static_assert(offsetof(fwi_table_header_t, stripe_locks) == 136,
               "the stripe locks stay where layout 1 had them");

/* The head of every slot; sliding-log tables follow it with the log ring. */
typedef struct fwi_slot {
    _Alignas(16) uint64_t tag; /* fingerprint, low half; 0 = never used */
    uint64_t state;            /* algorithm state; with tag, one CAS unit */
    _Alignas(16) int64_t expiry; /* >= the time the state is fresh again;
                                  GCRA family: with the TAT, see
                                  fwi_slot_fresh_at (not raised by commits) */
    int64_t seen;              /* gcra family: latest `now` of a commit
                                  that forgave debt (its now was past the
                                  TAT, or the state was repaired), raised
                                  before it, kept across claims (bounds
                                  refunds); sliding log:
                                  commits since its entries were last
                                  counted (plain store, under the lock)   */
    uint64_t check;            /* fingerprint, high half                  */
    uint64_t lock;             /* lock word (src/lock.h), 0 = free:
                                  claims, and sliding-log updates         */
    uint64_t log_pos;          /* sliding log only: fwi_log_pos_pack      */
    int64_t damaged_at;        /* `now` when an impossible state was last
                                  found here (0 = never); reset by a claim */
} fwi_slot_t;

_Static_assert(sizeof(fwi_slot_t) == FWI_SLOT_HEAD_SIZE, "slot head is 64 bytes");

/* A slot's log position: the published extent of its log ring and the
 * log's running total, in one word so that one store publishes them
 * together, with check bits so that damage to it is seen:
 * len (bits 0..16, <= 65536), head (17..33), units (34..51, <= 2^18 - 1),
 * check (52..63: the top of a mix of bits 0..51; 0 for the empty log, so a
 * zeroed slot holds an empty log). */
#define FWI_LOG_POS_PAYLOAD_BITS 52
#define FWI_LOG_POS_UNITS_MAX ((1u << 18) - 1u)

static inline uint64_t fwi_log_pos_check(uint64_t payload)
{
    uint64_t x = payload; /* murmur3's finalizer: 0 stays 0 */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x >> FWI_LOG_POS_PAYLOAD_BITS;
}

static inline uint64_t fwi_log_pos_pack(uint32_t head, uint32_t len, int64_t units)
{
    uint64_t u = units < 0 ? 0 : units > FWI_LOG_POS_UNITS_MAX ? FWI_LOG_POS_UNITS_MAX
                                                               : (uint64_t)units;
    uint64_t payload = (uint64_t)(len & 0x1ffffu) | (uint64_t)(head & 0x1ffffu) << 17 |
                       u << 34;
    return payload | fwi_log_pos_check(payload) << FWI_LOG_POS_PAYLOAD_BITS;
}

/* Unpack; returns 0 when the check bits disagree (the fields are still
 * unpacked, for a recount from the entries). */
static inline int fwi_log_pos_unpack(uint64_t pos, uint32_t *head, uint32_t *len,
                                     int64_t *units)
{
    uint64_t payload = pos & (((uint64_t)1 << FWI_LOG_POS_PAYLOAD_BITS) - 1);
    *len = (uint32_t)(payload & 0x1ffffu);
    *head = (uint32_t)((payload >> 17) & 0x1ffffu);
    *units = (int64_t)(payload >> 34);
    return pos >> FWI_LOG_POS_PAYLOAD_BITS == fwi_log_pos_check(payload);
}

/* An open table: a view on memory laid out as above. */
struct fw_table {
    fwi_table_header_t *hdr;
    unsigned char *slots;
    size_t len;
    uint64_t mask;
    uint64_t cap;     /* the most keys it holds (max_keys, or no cap)    */
    uint32_t slot_size;
    uint32_t log_capacity;
    int owns_memory; /* memory tables: munmap on close */
    int grows;       /* fw_table_open_growing: rebuilt larger (or smaller) as keys
                        come and go; calls serialised by the caller       */
    uint64_t max_slots; /* grows: the largest size it may reach           */
    uint64_t generation; /* grows: rebuilds so far (slot pointers die)    */
    /* stores that persist writes (file://) set these; NULL otherwise */
    void (*after_write)(struct fw_table *t, void *addr, size_t len);
    void (*on_close)(struct fw_table *t);
    void *store;
};

/* Checksum of the header's fixed part. */
uint64_t fwi_table_header_checksum(const fwi_table_header_t *h);

/* ---- layout (table.c), shared with the rebuilds of capacity.c ---------------- */

static inline uint64_t fwi_next_pow2(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/* The bytes of a table of nslots slots of slot_size (FW_ERANGE: too many). */
int fwi_table_bytes_for(uint64_t nslots, uint32_t slot_size, size_t *bytes);

/* Point the handle at the laid-out table at `mem` (len bytes). */
void fwi_table_view_set(fw_table_t *t, void *mem, size_t len);

/* Private zeroed memory of `bytes` for a memory table; NULL when none. */
void *fwi_map_anonymous(size_t bytes);

#endif
