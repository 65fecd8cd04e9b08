/*
 * capacity.c - room for keys in the slot table: claiming a slot for a new
 * key, the key count that makes max_keys exact, sweeps of expired keys at
 * the cap (fixed tables), and rebuilds that grow or shrink a growing
 * memory table.
 * Invariant: a slot changes hands only under its lock and only when it
 * holds no key or its state is indistinguishable from a fresh key's; the
 * key count is reserved before a claim and released after a retire, so
 * the table never holds more than its cap (a crash leaves the count high,
 * never low, and a sweep holding every insert stripe recounts it); a
 * retired slot becomes empty only when no key lies past it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "capacity.h"
#include "lock.h"

/* ---- claims: a slot for a new key, and the key count ------------------------- */

/* A slot may change hands when it holds no key, or when its state has been
 * fresh since before `now` (strictly: a slot claimed at `now` is not taken
 * back at that same `now`, see try_claim). A GCRA-family key's freshness is
 * read from `cur` itself, the pair the claim's CAS then checks. */
static int claimable(fwi_slot_t *s, unit_t cur, int64_t now)
{
    return vacant_tag(unit_tag(cur)) || fresh_at_of(s, cur) < now;
}

/* Count one more key against the cap; 0 when the table is at its cap. */
static int key_reserve(fw_table_t *t)
{
    uint64_t had = __atomic_fetch_add(&t->hdr->keys, 1, __ATOMIC_SEQ_CST);
    if (had < t->cap)
        return 1;
    __atomic_fetch_sub(&t->hdr->keys, 1, __ATOMIC_SEQ_CST);
    return 0;
}

#define CLAIM_NONE 0   /* not claimable (or lost to another claimer) */
#define CLAIM_TAKEN 1
#define CLAIM_AT_CAP 2 /* a vacant slot, but the table holds its cap  */

/* Take slot `s` for fingerprint h if it is claimable. The slot lock is held
 * while the slot changes hands, so two claimers never interleave their
 * writes of `check` (which would leave a slot that no key finds) and no
 * sliding-log update or sweep runs meanwhile. A vacant slot adds a key to
 * the count (reserved first, so the cap holds under concurrency); an
 * expired key's slot changes key, not the count. The claimed slot's expiry
 * becomes at least `now`: otherwise the parts of one request, or two
 * requests at the same time, could take each other's fresh slots back
 * forever. Returns a CLAIM_* or FW_EBUSY (its lock is stuck). */
static int try_claim(fw_table_t *t, fwi_slot_t *s, fwi_hash128_t h, int64_t now)
{
    unit_t cur = unit_load(s);
    if (!claimable(s, cur, now))
        return CLAIM_NONE;
    /* A vacant slot is waited for: its holder is another claimer (done in a
     * moment), a sweep, or a dead one. Skipping an empty one could leave it
     * empty before the slot this key then takes, hiding the key from fwi_table_find(). */
    if (vacant_tag(unit_tag(cur))) {
        int rc = fwi_lock_acquire(&s->lock);
        if (rc)
            return rc;
    } else if (!fwi_lock_try(&s->lock)) {
        return CLAIM_NONE;
    }
    cur = unit_load(s); /* re-read under the lock */
    int vacant = vacant_tag(unit_tag(cur));
    int won = CLAIM_NONE;
    if (claimable(s, cur, now)) {
        if (vacant && !key_reserve(t)) {
            won = CLAIM_AT_CAP;
        } else {
            /* counted before the CAS: a claim killed halfway still voids
             * the sweep hint (its slot may be fresh again soon) */
            __atomic_fetch_add(&t->hdr->claims, 1, __ATOMIC_SEQ_CST);
            if (unit_cas(s, &cur, unit_pack(h.lo, 0))) {
                expiry_raise(s, now);
                __atomic_store_n(&s->check, h.hi, __ATOMIC_SEQ_CST);
                __atomic_store_n(&s->log_pos, 0, __ATOMIC_SEQ_CST);
                __atomic_store_n(&s->damaged_at, 0, __ATOMIC_SEQ_CST);
                won = CLAIM_TAKEN;
            } else if (vacant) {
                __atomic_fetch_sub(&t->hdr->keys, 1, __ATOMIC_SEQ_CST);
            }
        }
    }
    fwi_lock_release(&s->lock);
    return won;
}

/* ---- sweeps (fixed tables) and rebuilds (growing tables) ---------------------- */

/* Does the last sweep that freed nothing still hold: no claim since, and no
 * slot can have expired yet? */
static int sweep_hint_holds(const fw_table_t *t, int64_t now)
{
    uint64_t hint = __atomic_load_n(&t->hdr->hint_claims, __ATOMIC_ACQUIRE);
    int64_t quiet = __atomic_load_n(&t->hdr->quiet_until, __ATOMIC_SEQ_CST);
    return hint != 0 && hint - 1 == __atomic_load_n(&t->hdr->claims, __ATOMIC_SEQ_CST) &&
           now <= quiet;
}

static void sweep_hint_set(fw_table_t *t, uint64_t claims_before, int64_t quiet)
{
    __atomic_store_n(&t->hdr->quiet_until, quiet, __ATOMIC_SEQ_CST);
    __atomic_store_n(&t->hdr->hint_claims, claims_before + 1, __ATOMIC_RELEASE);
}

/* Retire slot s if its key has expired: (tag, state) becomes (RETIRED, 0) by
 * one CAS from exactly what was read, under the slot lock, so a concurrent
 * update of the key makes it fail. 1 retired. */
static int retire_expired(fw_table_t *t, fwi_slot_t *s, int64_t now)
{
    if (!fwi_lock_try(&s->lock))
        return 0;
    unit_t cur = unit_load(s);
    int done = !vacant_tag(unit_tag(cur)) && fresh_at_of(s, cur) < now &&
               unit_cas(s, &cur, unit_pack(FWI_TAG_RETIRED, 0));
    if (done) {
        __atomic_store_n(&s->check, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&s->log_pos, 0, __ATOMIC_SEQ_CST);
        __atomic_fetch_sub(&t->hdr->keys, 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&t->hdr->retired, 1, __ATOMIC_RELAXED);
    }
    fwi_lock_release(&s->lock);
    return done;
}

/* With no insert running anywhere (every stripe lock held): empty each
 * retired slot that ends a run (its successor is empty), walking backwards
 * from an empty slot so that runs of them go in one pass. No key lies past
 * such a slot on its probe sequence (it would have to lie past the empty
 * successor), so lookups stay right. Returns the keys counted. */
static uint64_t compact_and_count(fw_table_t *t)
{
    uint64_t n = t->mask + 1, start = n, keys = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t tag = __atomic_load_n(&slot_at(t, i)->tag, __ATOMIC_SEQ_CST);
        if (!vacant_tag(tag))
            keys++;
        else if (tag == FWI_TAG_EMPTY && start == n)
            start = i;
    }
    if (start == n)
        return keys; /* no empty slot: nothing can end a run */
    int next_empty = 1;
    for (uint64_t k = 1; k < n; k++) {
        fwi_slot_t *s = slot_at(t, start - k);
        unit_t cur = unit_load(s);
        if (unit_tag(cur) == FWI_TAG_RETIRED && next_empty) {
            if (!unit_cas(s, &cur, unit_pack(FWI_TAG_EMPTY, 0)))
                next_empty = 0;
        } else {
            next_empty = unit_tag(cur) == FWI_TAG_EMPTY;
        }
    }
    return keys;
}

/* At the cap, with no reclaimable slot on a new key's probe sequence: retire
 * every expired key of the table, so that a key fits whenever fewer than
 * max_keys keys are live. The caller holds the stripe lock `own`. When every
 * other stripe lock can be taken at once (no insert is running), the key
 * count is also recounted (a process killed between a count and a claim
 * leaves it high) and retired slots that end a run are emptied. A sweep
 * that frees nothing leaves a hint (sweep_hint_holds), so a flood of new
 * keys at a full table of live keys costs one sweep per expiry or claim,
 * not one per key. Returns 1 when room was made, 0 if none, or FW_EBUSY. */
static int sweep(fw_table_t *t, uint64_t *own, int64_t now)
{
    if (sweep_hint_holds(t, now))
        return 0;
    int rc = fwi_lock_acquire(&t->hdr->sweep_lock);
    if (rc)
        return rc;
    if (sweep_hint_holds(t, now)) {
        fwi_lock_release(&t->hdr->sweep_lock);
        return 0;
    }
    uint64_t claims = __atomic_load_n(&t->hdr->claims, __ATOMIC_SEQ_CST);
    uint64_t keys_before = __atomic_load_n(&t->hdr->keys, __ATOMIC_SEQ_CST);
    uint64_t n = t->mask + 1, freed = 0;
    int64_t quiet = INT64_MAX;
    for (uint64_t i = 0; i < n; i++) {
        fwi_slot_t *s = slot_at(t, i);
        unit_t cur = unit_load(s);
        if (vacant_tag(unit_tag(cur)))
            continue;
        int64_t exp = fresh_at_of(s, cur);
        if (exp < now && retire_expired(t, s, now)) {
            freed++;
            continue;
        }
        if (exp < quiet)
            quiet = exp;
    }
    /* every other stripe at once, or not at all */
    uint64_t *stripes = t->hdr->stripe_locks;
    uint32_t held = 0;
    for (; held < FWI_TABLE_STRIPES; held++)
        if (&stripes[held] != own && !fwi_lock_try(&stripes[held]))
            break;
    if (held == FWI_TABLE_STRIPES) {
        uint64_t keys = compact_and_count(t);
        __atomic_store_n(&t->hdr->keys, keys, __ATOMIC_SEQ_CST);
        uint64_t expected = keys_before > freed ? keys_before - freed : 0;
        if (keys < expected)
            freed += expected - keys; /* a crash had left it high */
    }
    while (held-- > 0)
        if (&stripes[held] != own)
            fwi_lock_release(&stripes[held]);
    if (freed == 0)
        sweep_hint_set(t, claims, quiet);
    fwi_lock_release(&t->hdr->sweep_lock);
    if (freed && t->after_write)
        t->after_write(t, t->slots, (size_t)n * t->slot_size);
    return freed > 0;
}

/* Copy the live slots `from` (n of them) into zeroed `slots` of `want`. */
static void place_live(const fw_table_t *t, const unsigned char *from, uint64_t n,
                       int64_t now, unsigned char *slots, uint64_t want)
{
    for (uint64_t i = 0; i < n; i++) {
        const fwi_slot_t *s = (const fwi_slot_t *)(const void *)(from + i * t->slot_size);
        if (vacant_tag(s->tag) || fwi_slot_fresh_at(s->tag, s->state, s->expiry) < now)
            continue;
        for (uint64_t j = s->check;; j++) {
            fwi_slot_t *d = (fwi_slot_t *)(void *)(slots + (j & (want - 1)) * t->slot_size);
            if (d->tag == FWI_TAG_EMPTY) {
                memcpy(d, s, t->slot_size);
                d->lock = 0;
                break;
            }
        }
    }
}

/* Growing tables (one caller at a time): keep every key that is not
 * expired at `now`, in a table sized for it (3 to 6 slots per key, so at
 * least a sixth of the table fills before the next rebuild; at least
 * FWI_MIN_SLOTS, at most max_slots, and at least half the current size, so
 * that it shrinks gradually), dropping expired and retired slots. The same
 * size is rebuilt in place (no system call, no new pages). Slot pointers die:
 * the generation says so. Returns 1 when it rebuilt, 0 if it could not (no
 * memory; the table is unchanged and serves on). *quiet: the earliest
 * expiry kept. */
static int rebuild(fw_table_t *t, int64_t now, int64_t *quiet)
{
    uint64_t n = t->mask + 1, live = 0;
    *quiet = INT64_MAX;
    for (uint64_t i = 0; i < n; i++) {
        fwi_slot_t *s = slot_at(t, i);
        int64_t fresh = fwi_slot_fresh_at(s->tag, s->state, s->expiry);
        if (!vacant_tag(s->tag) && fresh >= now) {
            live++;
            if (fresh < *quiet)
                *quiet = fresh;
        }
    }
    uint64_t want = fwi_next_pow2(live * 3 + 2);
    if (want < n / 2)
        want = n / 2;
    if (want < FWI_MIN_SLOTS)
        want = FWI_MIN_SLOTS;
    if (want > t->max_slots)
        want = t->max_slots;
    size_t bytes;
    if (fwi_table_bytes_for(want, t->slot_size, &bytes) != 0)
        return 0;
    if (want == n) {
        size_t keep = (size_t)n * t->slot_size;
        unsigned char *copy = malloc(keep);
        if (!copy)
            return 0;
        memcpy(copy, t->slots, keep);
        memset(t->slots, 0, keep);
        place_live(t, copy, n, now, t->slots, n);
        free(copy);
    } else {
        unsigned char *mem = fwi_map_anonymous(bytes);
        if (!mem)
            return 0;
        memcpy(mem, t->hdr, FWI_TABLE_HEADER_SIZE);
        fwi_table_header_t *h = (fwi_table_header_t *)(void *)mem;
        h->nslots = want;
        h->checksum = fwi_table_header_checksum(h);
        place_live(t, t->slots, n, now, mem + FWI_TABLE_HEADER_SIZE, want);
        munmap(t->hdr, t->len);
        fwi_table_view_set(t, mem, bytes);
    }
    t->hdr->keys = live;
    t->hdr->hint_claims = 0;
    t->generation++;
    return 1;
}

/* A growing table about to take an empty slot: rebuild first when that
 * would pass half load and it may still grow. */
static int grow_due(const fw_table_t *t)
{
    return t->grows && t->mask + 1 < t->max_slots &&
           (t->hdr->keys + 1) * 2 > t->mask + 1;
}

/* Rounds of "at the cap: sweep, then probe again" an insert may take: other
 * inserters may take the room a sweep made before this one probes again. */
#define INSERT_ROUNDS 4

/* Insert the key (absent when last looked up) while holding stripe `own`:
 * the first claimable slot of its probe sequence, up to the first empty
 * one. At the cap with nothing reclaimable on the way, sweep (or rebuild)
 * and try again, while there is room (at most INSERT_ROUNDS times).
 * FW_EFULL when max_keys keys are live. */
static int insert_locked(fw_table_t *t, fwi_hash128_t h, int64_t now, uint64_t *own,
                         fwi_slot_t **out)
{
    for (int round = 0;; round++) {
        int64_t quiet;
        if (grow_due(t))
            rebuild(t, now, &quiet);
        uint64_t home = h.hi & t->mask;
        int at_cap = 0;
        for (uint64_t i = 0; i <= t->mask; i++) {
            fwi_slot_t *c = slot_at(t, home + i);
            int rc = try_claim(t, c, h, now);
            if (rc == CLAIM_TAKEN) {
                *out = c;
                return 0;
            }
            if (rc < 0)
                return rc;
            if (rc == CLAIM_AT_CAP) {
                at_cap = 1;
                if (__atomic_load_n(&c->tag, __ATOMIC_SEQ_CST) == FWI_TAG_EMPTY)
                    break; /* never past an empty slot */
            }
        }
        if (!at_cap || round >= INSERT_ROUNDS)
            break;
        int rc;
        if (!t->grows) {
            rc = sweep(t, own, now);
        } else if (sweep_hint_holds(t, now)) {
            rc = 0;
        } else {
            /* a rebuild is a sweep: it drops the expired keys */
            rebuild(t, now, &quiet);
            rc = t->hdr->keys < t->cap;
            if (!rc)
                sweep_hint_set(t, t->hdr->claims, quiet);
        }
        if (rc < 0)
            return rc;
        /* Room made by another inserter's sweep, which ran while this one
         * waited for the sweep lock, counts as room: this sweep then frees
         * nothing itself. */
        if (rc == 0 && __atomic_load_n(&t->hdr->keys, __ATOMIC_SEQ_CST) >= t->cap)
            break;
    }
    __atomic_fetch_add(&t->hdr->full_errors, 1, __ATOMIC_RELAXED);
    return FW_EFULL;
}

int fwi_table_insert(fw_table_t *t, fwi_hash128_t h, int64_t now, fwi_slot_t **out)
{
    uint64_t home = h.hi & t->mask;
    uint64_t *stripe = &t->hdr->stripe_locks[home % FWI_TABLE_STRIPES];
    int rc = fwi_lock_acquire(stripe);
    if (rc)
        return rc;
    fwi_slot_t *s = fwi_table_find(t, h); /* inserts of one key are serialised by its stripe */
    if (!s)
        rc = insert_locked(t, h, now, stripe, &s);
    /* a rebuild moved the header: release the same stripe in the new one */
    fwi_lock_release(&t->hdr->stripe_locks[home % FWI_TABLE_STRIPES]);
    if (rc)
        return rc;
    *out = s;
    return 0;
}
