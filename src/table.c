/*
 * table.c - the slot table behind memory://, shm:// and file:// : its
 * layout (64-byte slots keyed by a 128-bit keyed fingerprint, after one
 * header page), opening and attaching, lazy expiry, and checks (one key,
 * or all-or-nothing over several) that decide and commit each key's
 * state. Finding a key's slot and making room for new keys (probing,
 * claims, the key count, sweeps, growth) is capacity.c's.
 *
 * Invariant: on a table that others may share, a slot's (tag, state) pair
 * changes only by one 16-byte CAS, so a process killed at any instruction
 * leaves every key either before or after its update (a growing table,
 * whose caller serialises its calls, writes the same values with plain
 * stores). The only locks (insert stripes, per-slot, the sweep) are those
 * of src/lock.h: taken over from a dead owner, and waited for a bounded
 * time (FW_EBUSY). Every state read is brought within what its algorithm
 * can produce before it decides.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "capacity.h"
#include "hash.h"
#include "internal.h"
#include "lock.h"
#include "slot.h"
#include "table.h"

#define MAX_PARTS FW_CHECK_PARTS_MAX

/* ---- the commit path: atomic on shared tables, plain on growing ones --------
 *
 * A growing table's calls are serialised by its caller (the GIL), so its
 * hot path needs no locked instruction; every other table may be written by
 * other threads and processes at any moment. */

/* Raise the slot's expiry to `expiry` and, when `seen` >= 0, its seen to
 * `seen`: both with one 16-byte CAS on a shared table. */
static inline void commit_raise(const fw_table_t *t, fwi_slot_t *s, int64_t expiry,
                                int64_t seen)
{
    int64_t e = __atomic_load_n(&s->expiry, __ATOMIC_SEQ_CST);
    int64_t w = __atomic_load_n(&s->seen, __ATOMIC_SEQ_CST);
    if (e >= expiry && w >= seen)
        return;
    if (t->grows) {
        if (e < expiry)
            s->expiry = expiry;
        if (w < seen)
            s->seen = seen;
        return;
    }
    if (seen < 0) {
        expiry_raise(s, expiry);
        return;
    }
    fwi_u128 *pair = (fwi_u128 *)(void *)&s->expiry;
    fwi_u128 cur = ((fwi_u128)(uint64_t)w << 64) | (uint64_t)e;
    for (;;) {
        int64_t ne = e > expiry ? e : expiry, nw = w > seen ? w : seen;
        fwi_u128 want = ((fwi_u128)(uint64_t)nw << 64) | (uint64_t)ne;
        fwi_u128 prev = __sync_val_compare_and_swap(pair, cur, want);
        if (prev == cur)
            return;
        cur = prev;
        e = (int64_t)(uint64_t)prev;
        w = (int64_t)(uint64_t)(prev >> 64);
        if (e >= expiry && w >= seen)
            return;
    }
}

/* Raise the slot's seen to `seen` (a GCRA commit that forgave debt). */
static inline void commit_raise_seen(const fw_table_t *t, fwi_slot_t *s, int64_t seen)
{
    if (__atomic_load_n(&s->seen, __ATOMIC_SEQ_CST) >= seen)
        return;
    if (t->grows)
        s->seen = seen;
    else
        raise_to(&s->seen, seen);
}

/* unit_cas, or its plain twin on a growing table. */
static inline int commit_cas(const fw_table_t *t, fwi_slot_t *s, unit_t *expected,
                             unit_t desired)
{
    if (!t->grows)
        return unit_cas(s, expected, desired);
    unit_t cur = unit_pack(s->tag, s->state);
    if (cur != *expected) {
        *expected = cur;
        return 0;
    }
    s->tag = unit_tag(desired);
    s->state = unit_state(desired);
    return 1;
}

/* ---- layout ---------------------------------------------------------------- */

/* Slots of a fixed table for max_keys keys: load at most one half. */
static uint64_t fixed_slots(uint64_t max_keys)
{
    uint64_t n = fwi_next_pow2(max_keys) * 2;
    return n < FWI_MIN_SLOTS ? FWI_MIN_SLOTS : n;
}

static int slot_bytes(uint32_t log_capacity, uint32_t *slot_size)
{
    if (log_capacity > FW_LOG_CAPACITY_MAX)
        return FW_EINVAL;
    uint64_t log_bytes = (uint64_t)log_capacity * sizeof(fw_log_entry_t);
    *slot_size = (uint32_t)(FWI_SLOT_HEAD_SIZE + ((log_bytes + 63) & ~(uint64_t)63));
    return 0;
}

int fwi_table_bytes_for(uint64_t nslots, uint32_t slot_size, size_t *bytes)
{
    fwi_u128 total = (fwi_u128)nslots * slot_size + FWI_TABLE_HEADER_SIZE;
    if (total > (fwi_u128)SIZE_MAX / 2)
        return FW_ERANGE;
    *bytes = (size_t)total;
    return 0;
}

static int layout(const fw_table_options_t *opt, uint64_t *nslots,
                  uint32_t *slot_size, size_t *bytes)
{
    if (!opt || opt->max_keys < 1 || opt->max_keys > FW_MAX_KEYS_MAX ||
        opt->log_capacity > FW_LOG_CAPACITY_MAX)
        return FW_EINVAL;
    uint64_t n = fixed_slots(opt->max_keys);
    int rc = slot_bytes(opt->log_capacity, slot_size);
    if (rc == 0)
        rc = fwi_table_bytes_for(n, *slot_size, bytes);
    if (rc)
        return rc;
    *nslots = n;
    return 0;
}

int fw_table_size(const fw_table_options_t *opt, size_t *bytes)
{
    uint64_t nslots;
    uint32_t slot_size;
    if (!bytes)
        return FW_EINVAL;
    return layout(opt, &nslots, &slot_size, bytes);
}

uint64_t fwi_table_header_checksum(const fwi_table_header_t *h)
{
    fwi_hash128_t d = fwi_hash128(0x666c6f6f6477616cULL, 0x6865616465723031ULL, h,
                                offsetof(fwi_table_header_t, checksum));
    return d.lo;
}

static void random_seed(uint64_t seed[2])
{
    if (getrandom(seed, 2 * sizeof(uint64_t), 0) == (ssize_t)(2 * sizeof(uint64_t)))
        return;
    /* no entropy source: still unpredictable enough to separate tables */
    seed[0] = (uint64_t)fw_clock_realtime_ns() ^ ((uint64_t)getpid() << 32);
    seed[1] = (uint64_t)fw_clock_monotonic_ns() * 0x9e3779b97f4a7c15ULL;
}

int fw_table_format(void *mem, size_t len, const fw_table_options_t *opt)
{
    uint64_t nslots;
    uint32_t slot_size;
    size_t bytes;
    if (!mem || ((uintptr_t)mem % 64) != 0)
        return FW_EINVAL;
    int rc = layout(opt, &nslots, &slot_size, &bytes);
    if (rc)
        return rc;
    if (len < bytes)
        return FW_EINVAL;
    fwi_table_header_t *h = mem;
    memset(h, 0, FWI_TABLE_HEADER_SIZE);
    memcpy(h->magic, FWI_TABLE_MAGIC, sizeof(h->magic));
    h->version = FWI_TABLE_VERSION;
    h->header_size = FWI_TABLE_HEADER_SIZE;
    h->slot_size = slot_size;
    h->log_capacity = opt->log_capacity;
    h->nslots = nslots;
    h->max_keys = opt->max_keys;
    random_seed(h->seed);
    h->created_ns = (uint64_t)fw_clock_realtime_ns();
    h->checksum = fwi_table_header_checksum(h);
    return 0;
}

/* The handle's view of a laid-out table at `mem`. */
void fwi_table_view_set(fw_table_t *t, void *mem, size_t len)
{
    fwi_table_header_t *h = mem;
    t->hdr = h;
    t->slots = (unsigned char *)mem + FWI_TABLE_HEADER_SIZE;
    t->len = len;
    t->mask = h->nslots - 1;
    t->slot_size = h->slot_size;
    t->log_capacity = h->log_capacity;
}

int fw_table_attach(fw_table_t **out, void *mem, size_t len)
{
    if (!out || !mem || ((uintptr_t)mem % 64) != 0)
        return FW_EINVAL;
    *out = NULL;
    fwi_table_header_t *h = mem;
    if (len < FWI_TABLE_HEADER_SIZE || memcmp(h->magic, FWI_TABLE_MAGIC, 8) != 0)
        return FW_EBADFILE;
    if (h->version != FWI_TABLE_VERSION)
        return FW_EVERSION;
    if (h->checksum != fwi_table_header_checksum(h))
        return FW_EBADFILE;
    fw_table_options_t opt = {h->max_keys, h->log_capacity};
    uint64_t nslots;
    uint32_t slot_size;
    size_t bytes;
    if (h->header_size != FWI_TABLE_HEADER_SIZE ||
        layout(&opt, &nslots, &slot_size, &bytes) != 0 ||
        nslots != h->nslots || slot_size != h->slot_size)
        return FW_EBADFILE;
    if (len < bytes)
        return FW_EBADFILE; /* truncated */
    fw_table_t *t = calloc(1, sizeof(*t));
    if (!t)
        return FW_ENOMEM;
    fwi_table_view_set(t, mem, len);
    t->cap = h->max_keys;
    *out = t;
    return 0;
}

void *fwi_map_anonymous(size_t bytes)
{
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return mem == MAP_FAILED ? NULL : mem;
}

/* A growing table: FWI_MIN_SLOTS slots to start with, at most enough for
 * its cap at half load (as a fixed table of that cap). */
int fw_table_open_growing(fw_table_t **out, const fw_table_options_t *opt)
{
    if (!out)
        return FW_EINVAL;
    *out = NULL;
    if (!opt || opt->max_keys > FW_MAX_KEYS_MAX)
        return FW_EINVAL;
    uint64_t cap = opt->max_keys ? opt->max_keys : FW_MAX_KEYS_MAX;
    uint32_t slot_size;
    size_t bytes;
    int rc = slot_bytes(opt->log_capacity, &slot_size);
    if (rc == 0)
        rc = fwi_table_bytes_for(fixed_slots(cap), slot_size, &bytes); /* it can get there */
    if (rc == 0)
        rc = fwi_table_bytes_for(FWI_MIN_SLOTS, slot_size, &bytes);
    if (rc)
        return rc;
    void *mem = fwi_map_anonymous(bytes);
    if (!mem)
        return FW_ENOMEM;
    fw_table_t *t = calloc(1, sizeof(*t));
    if (!t) {
        munmap(mem, bytes);
        return FW_ENOMEM;
    }
    fwi_table_header_t *h = mem;
    memcpy(h->magic, FWI_TABLE_MAGIC, sizeof(h->magic));
    h->version = FWI_TABLE_VERSION;
    h->header_size = FWI_TABLE_HEADER_SIZE;
    h->slot_size = slot_size;
    h->log_capacity = opt->log_capacity;
    h->nslots = FWI_MIN_SLOTS;
    h->max_keys = opt->max_keys; /* 0: no cap */
    random_seed(h->seed);
    h->created_ns = (uint64_t)fw_clock_realtime_ns();
    h->checksum = fwi_table_header_checksum(h);
    fwi_table_view_set(t, mem, bytes);
    t->cap = cap;
    t->grows = 1;
    t->max_slots = fixed_slots(cap);
    t->owns_memory = 1;
    *out = t;
    return 0;
}

int fw_table_open_memory(fw_table_t **out, const fw_table_options_t *opt)
{
    size_t bytes;
    if (!out)
        return FW_EINVAL;
    *out = NULL;
    int rc = fw_table_size(opt, &bytes);
    if (rc)
        return rc;
    void *mem = fwi_map_anonymous(bytes);
    if (!mem)
        return FW_ENOMEM;
    rc = fw_table_format(mem, bytes, opt);
    if (rc == 0)
        rc = fw_table_attach(out, mem, bytes);
    if (rc) {
        munmap(mem, bytes);
        return rc;
    }
    (*out)->owns_memory = 1;
    return 0;
}

void fw_table_close(fw_table_t *t)
{
    if (!t)
        return;
    if (t->on_close)
        t->on_close(t);
    if (t->owns_memory)
        munmap(t->hdr, t->len);
    free(t);
}

/* ---- a key's fingerprint, and what a write tells --------------------------- */

static inline fwi_hash128_t fingerprint(const fw_table_t *t, const fw_limit_t *lim,
                                       const void *key, size_t len)
{
    return fwi_fingerprint(t->hdr->seed, lim, key, len);
}

/* Let a persisting store flush what a commit changed. */
static void table_wrote(fw_table_t *t, fwi_slot_t *s)
{
    if (t->after_write)
        t->after_write(t, s, t->slot_size);
}

/* Count a state that was not what its algorithm can produce at `now`. */
static void note_verdict(fw_table_t *t, fwi_slot_t *s, fwi_verdict_t v, int64_t now)
{
    if (v == FWI_STATE_OK)
        return;
    if (v == FWI_STATE_AHEAD) {
        __atomic_fetch_add(&t->hdr->clamped_states, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_fetch_add(&t->hdr->damaged_states, 1, __ATOMIC_RELAXED);
    uint64_t index = (uint64_t)((unsigned char *)s - t->slots) / t->slot_size;
    __atomic_store_n(&t->hdr->last_damaged_slot, index + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->damaged_at, now > 0 ? now : 1, __ATOMIC_RELAXED);
}

/* ---- sliding-log slots ----------------------------------------------------- */

/* A view of the slot's log: extent and running total from log_pos, the
 * commits since the last recount from `seen`. *bad is set when the extent
 * lies outside the ring (damage: the view is then empty); a position whose
 * check bits disagree keeps its extent with units -1, which makes the step
 * recount the entries. */
static fw_log_t log_view(const fw_table_t *t, fwi_slot_t *s, int *bad)
{
    uint64_t pos = __atomic_load_n(&s->log_pos, __ATOMIC_SEQ_CST);
    int64_t seen = __atomic_load_n(&s->seen, __ATOMIC_SEQ_CST);
    fw_log_t log;
    log.entries = (fw_log_entry_t *)(void *)((unsigned char *)s + FWI_SLOT_HEAD_SIZE);
    log.capacity = t->log_capacity;
    if (!fwi_log_pos_unpack(pos, &log.head, &log.len, &log.units))
        log.units = -1;
    log.unchecked = seen < 0 || seen > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)seen;
    *bad = log.head >= log.capacity || log.len > log.capacity;
    if (*bad)
        log.head = log.len = 0, log.units = 0;
    return log;
}

/* Publish the view's extent and running total (release: the entries
 * written before it are seen with it; only the lock holder reads it). */
static void log_publish(void *slot, const fw_log_t *log)
{
    fwi_slot_t *s = slot;
    __atomic_store_n(&s->log_pos, fwi_log_pos_pack(log->head, log->len, log->units),
                     __ATOMIC_RELEASE);
}

/* Publish the view whole: extent, running total and commit count. */
static void log_store_pos(fwi_slot_t *s, const fw_log_t *log)
{
    log_publish(s, log);
    __atomic_store_n(&s->seen, (int64_t)log->unchecked, __ATOMIC_RELEASE);
}

/* Append an admitted entry so that a crash at any point leaves a valid log:
 * first publish the pruned extent (when pruning moved it: the new entry's
 * place may be a dropped one's), then let fwi_log_insert write the entry
 * outside it and publish the extent (and running total) that includes it. */
static void log_append(fwi_slot_t *s, fw_log_t *log, const fw_quota_t *q,
                       int64_t now, int64_t cost, uint32_t published_head)
{
    if (log->head != published_head)
        log_publish(s, log);
    /* The expiry, raised with a load and a store: under the slot's lock (or
     * on a growing table, whose caller serialises its calls) nobody else
     * writes it, as claims and sweeps take the lock too. */
    int64_t expiry = fwi_sat64((fwi_i128)now + q->window_ns);
    if (__atomic_load_n(&s->expiry, __ATOMIC_RELAXED) < expiry)
        __atomic_store_n(&s->expiry, expiry, __ATOMIC_RELEASE);
    fwi_log_insert(log, now, cost, log_publish, s);
    __atomic_store_n(&s->seen, (int64_t)log->unchecked, __ATOMIC_RELEASE);
}

/* ---- checks ---------------------------------------------------------------- */

typedef struct part {
    const fw_limit_t *limit;
    fwi_hash128_t h;
    fwi_slot_t *slot;   /* NULL: key absent (peek) */
    uint64_t before;   /* state the decision was made from */
    uint64_t after;    /* state committed */
    int committed;     /* consumed units (a refund may give them back) */
    int wrote;         /* changed the slot: consumed, or repaired a state */
    int locked;        /* sliding log: holds slot->lock */
    int64_t cost;      /* units this part consumes; 0 peeks */
    fwi_verdict_t verdict; /* 64-bit state: what the last step found */
} part_t;

static int is_log(const part_t *p)
{
    return p->limit->quota.algorithm == FW_SLIDING_LOG;
}

/* A sliding-log decision for a key that has no slot yet (an empty log). */
static void log_fresh_decision(const fw_quota_t *q, int64_t cost, fw_decision_t *d)
{
    d->allowed = 1;
    d->limit = q->burst;
    d->remaining = q->burst - cost;
    d->retry_after_ns = 0;
    d->reset_after_ns = cost > 0 ? q->window_ns : 0;
    d->delay_ns = 0;
}

/* Evaluate a sliding-log part under its lock; publish it if `commit`.
 * Returns 1 when the slot no longer holds the key. */
static int log_part_step(fw_table_t *t, part_t *p, int64_t now, int64_t cost,
                         int commit, fw_decision_t *d)
{
    if (!p->slot) {
        log_fresh_decision(&p->limit->quota, cost, d);
        return 0;
    }
    if (__atomic_load_n(&p->slot->tag, __ATOMIC_SEQ_CST) != p->h.lo)
        return 1;
    const fw_quota_t *q = &p->limit->quota;
    int bad, repair = cost > 0; /* under the slot's lock; a peek never writes */
    fw_log_t log = log_view(t, p->slot, &bad); /* a local view of the extent */
    if (bad) {
        if (!repair) {
            fwi_log_full_decision(q, d);
            return 0;
        }
        log.entries[0].t = now; /* full at now, for one window */
        log.entries[0].cost = q->burst;
        log.len = 1;
        log.units = q->burst;
        log_store_pos(p->slot, &log);
        note_verdict(t, p->slot, FWI_STATE_IMPOSSIBLE, now);
        table_wrote(t, p->slot);
    }
    fwi_verdict_t v = FWI_STATE_OK;
    uint32_t unchecked = log.unchecked, head = log.head, len = log.len;
    fwi_log_eval(q, &log, now, cost, d, 0, repair, &v);
    if (repair && (v != FWI_STATE_OK || log.unchecked != unchecked)) {
        /* Repaired or recounted: publish it, even on a denial. Invariant:
         * the published front moves (dead entries leave the log) only when
         * an entry is committed, as the log's semantics say: a later call
         * with an earlier clock still counts what only a denial, or the
         * dry run of a request that ends denied, found dead at its own
         * `now`. So the entries the recount dropped are published back. */
        fw_log_t pub = log;
        if (!(commit && d->allowed))
            fwi_log_restore_front(q, &pub, head, len);
        log_store_pos(p->slot, &pub);
        head = pub.head;
        note_verdict(t, p->slot, v, now);
        table_wrote(t, p->slot);
    }
    if (commit && cost > 0 && d->allowed) {
        log_append(p->slot, &log, q, now, cost, head);
        p->committed = p->wrote = 1;
    }
    return 0;
}

/* fwi_algo_step for a part whose arguments validate_parts checked, calling
 * the algorithms of a cost >= 1 without the dispatch (an allowed-only check
 * decides its verdict alone); a peek goes through it. *fresh_at is set to
 * when *next is fresh when the step knew it without unpacking *next (a
 * windowed algorithm's admission), and left alone otherwise. */
static inline void state_step(const fw_quota_t *q, uint64_t state, int64_t now,
                              int64_t cost, uint64_t *next, fw_decision_t *d,
                              fwi_verdict_t *v, int full, int64_t *fresh_at)
{
#define WINDOWED(name)                                                         \
    do {                                                                       \
        *v = fwi_##name##_sanitize(q, &state, now);                            \
        if (!full) /* FW_CHECK_ALLOWED_ONLY */                                 \
            d->allowed = fwi_##name##_admit(q, state, now, cost, next, fresh_at); \
        else                                                                   \
            fwi_##name##_decide_fresh(q, state, now, cost, next, d, fresh_at); \
        return;                                                                \
    } while (0)
    if (cost > 0) {
        switch (q->algorithm) {
        case FW_GCRA:
        case FW_TOKEN_BUCKET:
        case FW_LEAKY_BUCKET:
        case FW_LEAKY_BUCKET_SHAPING:
            if (!full) { /* FW_CHECK_ALLOWED_ONLY */
                *v = fwi_gcra_sanitize(q, &state, now);
                d->allowed = fwi_gcra_admit(q, state, now, cost, next);
                return;
            }
            *v = fwi_gcra_sanitize(q, &state, now);
            fwi_gcra_decide(q, state, now, cost, next, d);
            return;
        case FW_FIXED_WINDOW:
            WINDOWED(fixed_window);
        case FW_SLIDING_WINDOW:
            WINDOWED(sliding_window);
        default:
            break;
        }
    }
#undef WINDOWED
    fwi_algo_step(q, state, now, cost, next, d, v);
}

static inline int64_t state_fresh_at(const fw_quota_t *q, uint64_t state)
{
    switch (q->algorithm) {
    case FW_FIXED_WINDOW:
        return fwi_fixed_window_fresh_at(q, state);
    case FW_SLIDING_WINDOW:
        return fwi_sliding_window_fresh_at(q, state);
    default:
        return fwi_algo_is_gcra(q) ? fwi_gcra_fresh_at(q, state)
                                   : fw_algo_fresh_at(q, state);
    }
}

/* state_part_step's `commit`: decide only; write the decision (an
 * admission, or the repair of a state that was not OK); or write only a
 * repair, never an admission. */
enum { STEP_DRY = 0, STEP_COMMIT = 1, STEP_REPAIR_ONLY = 2 };

/* One 64-bit-state part: evaluate, and commit with CAS if asked to. Returns
 * 1 when the slot no longer holds the key (the caller locates it again). */
static int state_part_step(fw_table_t *t, part_t *p, int64_t now, int64_t cost,
                           int commit, fw_decision_t *d, int full)
{
    const fw_quota_t *q = &p->limit->quota;
    if (!p->slot) {
        uint64_t next;
        fw_algo_step(q, 0, now, cost, &next, d);
        return 0;
    }
    unit_t cur = unit_load(p->slot);
    for (;;) {
        if (unit_tag(cur) != p->h.lo)
            return 1;
        uint64_t next;
        fwi_verdict_t v;
        int64_t fresh_at = -1; /* not known yet: state_fresh_at(q, next) */
        state_step(q, unit_state(cur), now, cost, &next, d, &v, full, &fresh_at);
        p->before = unit_state(cur);
        p->after = next;
        p->verdict = v;
        if (!commit || next == unit_state(cur) ||
            (commit == STEP_REPAIR_ONLY && d->allowed)) {
            /* nothing to write: make sure the read was not torn */
            if (commit_cas(t, p->slot, &cur, cur))
                return 0;
            continue;
        }
        /* an admission, or the repair of a state that was not OK: the
         * expiry (or a GCRA's seen) first, so that whoever sees the new
         * state sees it too. A GCRA TAT is its own expiry (table.h,
         * FWI_TAG_TAT); seen is raised only by a commit that forgives
         * debt (now past the TAT, or a repaired state): any other commit
         * adds n*T to the TAT and leaves earlier debts whole, so it
         * changes no refund (fwi_gcra_refund_committed). */
        if (!fwi_algo_is_gcra(q)) {
            commit_raise(t, p->slot,
                         fresh_at >= 0 ? fresh_at : state_fresh_at(q, next), -1);
        } else if (v != FWI_STATE_OK || unit_state(cur) < (uint64_t)now) {
            commit_raise_seen(t, p->slot, now);
        }
        if (commit_cas(t, p->slot, &cur, unit_pack(p->h.lo, next))) {
            p->committed = d->allowed;
            p->wrote = 1;
            note_verdict(t, p->slot, v, now);
            return 0;
        }
    }
}

static void refund_part(part_t *p, const fw_table_t *t, int64_t now, int64_t cost)
{
    if (!p->committed)
        return;
    if (is_log(p)) {
        int bad;
        fw_log_t log = log_view(t, p->slot, &bad);
        if (!bad)
            fwi_log_remove(&log, now, cost, log_publish, p->slot);
        p->committed = 0;
        return;
    }
    const fw_quota_t *q = &p->limit->quota;
    unit_t cur = unit_load(p->slot);
    while (unit_tag(cur) == p->h.lo) {
        uint64_t back;
        if (fwi_algo_is_gcra(q)) {
            /* the slot stays live until the TAT this request committed, as
             * when commits raised the expiry: a refund never makes a slot
             * fresh earlier than that (a sweep's hint counts on it) */
            expiry_raise(p->slot, fwi_gcra_fresh_at(q, p->after));
            int64_t seen = __atomic_load_n(&p->slot->seen, __ATOMIC_SEQ_CST);
            back = fwi_gcra_refund_committed(q, unit_state(cur), p->after, seen, cost);
        } else {
            back = fw_algo_refund(q, unit_state(cur), now, cost);
        }
        if (unit_cas(p->slot, &cur, unit_pack(p->h.lo, back)))
            break;
    }
    p->committed = 0;
}

static int compare_slots(const void *a, const void *b)
{
    const part_t *const *pa = a, *const *pb = b;
    uintptr_t x = (uintptr_t)(*pa)->slot, y = (uintptr_t)(*pb)->slot;
    return (x > y) - (x < y);
}

static void unlock_logs(part_t *parts, size_t n);

/* Lock the sliding-log slots in address order (no deadlock), once each.
 * FW_EBUSY (nothing held) when one stays held by a live owner too long. A
 * growing table takes no lock: its caller serialises its calls. */
static int lock_logs(const fw_table_t *t, part_t *parts, size_t n)
{
    if (t->grows)
        return 0;
    part_t *order[MAX_PARTS];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (is_log(&parts[i]) && parts[i].slot)
            order[m++] = &parts[i];
    if (m > 1)
        qsort(order, m, sizeof(order[0]), compare_slots);
    for (size_t i = 0; i < m; i++) {
        if (i > 0 && order[i]->slot == order[i - 1]->slot)
            continue;
        if (fwi_lock_acquire(&order[i]->slot->lock) != 0) {
            unlock_logs(parts, n);
            return FW_EBUSY;
        }
        order[i]->locked = 1;
    }
    return 0;
}

static void unlock_logs(part_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (parts[i].locked) {
            fwi_lock_release(&parts[i].slot->lock);
            parts[i].locked = 0;
        }
}

static inline int validate_part(const fw_table_t *t, const fw_request_t *r, int64_t cost)
{
    if (cost < 0)
        return FW_EINVAL;
    if (!r->limit || (!r->key && r->key_len > 0))
        return FW_EINVAL;
    const fw_quota_t *q = &r->limit->quota;
    if ((int)q->algorithm < 0 || q->algorithm >= FW_ALGORITHM_COUNT ||
        q->burst < 1 || q->interval_ns < 1 || q->window_ns < 1)
        return FW_EINVAL;
    if (cost > q->burst)
        return FW_ECOST;
    if (q->algorithm == FW_SLIDING_LOG && q->burst > (int64_t)t->log_capacity)
        return FW_EINVAL;
    return 0;
}

static int validate_parts(const fw_table_t *t, const fw_request_t *reqs,
                          size_t n, const int64_t *costs)
{
    for (size_t i = 0; i < n; i++) {
        int rc = validate_part(t, &reqs[i], costs[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Locate every part's slot (inserting when consuming); FW_EFULL if one
 * cannot get a slot, FW_EBUSY if a lock it needs stayed held too long. */
static int locate_parts(fw_table_t *t, part_t *parts, size_t n, int64_t now)
{
    uint64_t generation = t->generation;
    for (size_t i = 0; i < n; i++) {
        part_t *p = &parts[i];
        if (p->cost == 0) {
            p->slot = fwi_table_find(t, p->h);
            continue;
        }
        int rc = fwi_table_find_or_insert(t, p->h, now, &p->slot);
        if (rc)
            return rc;
        if (t->generation != generation) {
            /* a growing table was rebuilt: earlier parts moved */
            generation = t->generation;
            i = (size_t)-1;
        }
    }
    return 0;
}

/* Pick the denying part with the longest wait. */
static size_t worst_denial(const fw_decision_t *out, size_t n)
{
    size_t worst = n;
    for (size_t i = 0; i < n; i++)
        if (!out[i].allowed &&
            (worst == n || out[i].retry_after_ns > out[worst].retry_after_ns))
            worst = i;
    return worst;
}

/* A group that is denied consumes nothing, but a denying part whose state
 * a clock excursion (or damage) left out of reach is repaired, as a single
 * key's check repairs it: otherwise a key checked only in groups would be
 * clamped to "full at now" at every check and never come back. A part that
 * a concurrent request changed since the dry run is decided afresh and
 * written only if it still denies. (Sliding-log parts repair under their
 * lock in the dry run itself.) */
static void repair_denied_parts(fw_table_t *t, part_t *parts, size_t n, int64_t now,
                                const fw_decision_t *out)
{
    for (size_t i = 0; i < n; i++) {
        part_t *p = &parts[i];
        if (p->cost == 0 || is_log(p) || !p->slot || out[i].allowed ||
            p->verdict == FWI_STATE_OK)
            continue;
        fw_decision_t scratch;
        if (!state_part_step(t, p, now, p->cost, STEP_REPAIR_ONLY, &scratch, 1) && p->wrote)
            table_wrote(t, p->slot);
    }
}

/* The whole check with every part located; returns 1 to start over, 0 when
 * decided, FW_EBUSY when a sliding-log lock stayed held too long. */
static int check_located(fw_table_t *t, part_t *parts, size_t n, int64_t now,
                         fw_decision_t *out, size_t *violated)
{
    if (lock_logs(t, parts, n) != 0)
        return FW_EBUSY;
    if (n == 1 && is_log(&parts[0])) {
        /* one sliding log, under its lock: its commit step decides as a
         * dry run would (a peek or a denial writes only a repair), and there
         * is nothing to roll back, so it runs alone */
        part_t *p = &parts[0];
        int moved = log_part_step(t, p, now, p->cost, 1, &out[0]);
        if (!moved && p->wrote)
            table_wrote(t, p->slot);
        unlock_logs(parts, n);
        if (moved)
            return 1;
        *violated = out[0].allowed ? n : 0;
        return 0;
    }
    int again = 0, consumes = 0;
    /* dry run: decide every part without writing */
    for (size_t i = 0; i < n && !again; i++) {
        part_t *p = &parts[i];
        consumes |= p->cost > 0;
        again = is_log(p) ? log_part_step(t, p, now, p->cost, 0, &out[i])
                          : state_part_step(t, p, now, p->cost, STEP_DRY, &out[i], 1);
    }
    if (again) {
        unlock_logs(parts, n);
        return 1;
    }
    *violated = worst_denial(out, n);
    if (*violated < n || !consumes) {
        if (*violated < n)
            repair_denied_parts(t, parts, n, now, out);
        unlock_logs(parts, n);
        return 0;
    }
    /* commit, rolling back on a denial that a concurrent request caused; a
     * part of cost 0 peeks: its dry-run decision stands and it writes nothing */
    for (size_t i = 0; i < n; i++) {
        part_t *p = &parts[i];
        if (p->cost == 0)
            continue;
        again = is_log(p) ? log_part_step(t, p, now, p->cost, 1, &out[i])
                          : state_part_step(t, p, now, p->cost, STEP_COMMIT, &out[i], 1);
        if (again || !out[i].allowed) {
            for (size_t j = 0; j < i; j++)
                refund_part(&parts[j], t, now, parts[j].cost);
            for (size_t j = 0; j <= i; j++)
                if (parts[j].wrote)
                    table_wrote(t, parts[j].slot);
            unlock_logs(parts, n);
            if (again)
                return 1;
            *violated = i;
            return 0;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (parts[i].wrote)
            table_wrote(t, parts[i].slot);
    unlock_logs(parts, n);
    *violated = n;
    return 0;
}

/* One key of a 64-bit-state algorithm: the hot path, with a small frame
 * (six arguments: all in registers). `full`: 0 computes the verdict only. */
static int check_one(fw_table_t *t, const fw_request_t *r, int64_t cost, int64_t now,
                     fw_decision_t *out, int full)
{
    part_t p;
    p.limit = r->limit;
    p.h = fingerprint(t, r->limit, r->key, r->key_len);
    p.wrote = 0;
    for (;;) {
        if (cost == 0) {
            p.slot = fwi_table_find(t, p.h);
        } else {
            int rc = fwi_table_find_or_insert(t, p.h, now, &p.slot);
            if (rc)
                return rc;
        }
        if (!state_part_step(t, &p, now, cost, STEP_COMMIT, out, full))
            break;
    }
    if (p.wrote)
        table_wrote(t, p.slot);
    return 0;
}

/* Several parts, or a sliding log: locate, decide, commit or roll back. */
static __attribute__((noinline)) int check_many(fw_table_t *t, const fw_request_t *reqs,
                                                size_t n, const int64_t *costs,
                                                int64_t now, fw_decision_t *out,
                                                size_t *violated)
{
    part_t parts[MAX_PARTS];
    for (size_t i = 0; i < n; i++) {
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].limit = reqs[i].limit;
        parts[i].h = fingerprint(t, reqs[i].limit, reqs[i].key, reqs[i].key_len);
        parts[i].cost = costs[i];
    }
    for (;;) {
        int rc = locate_parts(t, parts, n, now);
        if (rc)
            return rc;
        rc = check_located(t, parts, n, now, out, violated);
        if (rc <= 0)
            return rc;
    }
}

int fw_table_check(fw_table_t *t, const fw_request_t *reqs, size_t n,
                   int64_t cost, int64_t now, fw_decision_t *out,
                   size_t *violated)
{
    if (n == 0 || n > MAX_PARTS || cost < 0)
        return FW_EINVAL;
    int64_t costs[MAX_PARTS];
    for (size_t i = 0; i < n; i++)
        costs[i] = cost;
    return fw_table_check_costs(t, reqs, n, costs, now, out, violated);
}

int fw_table_check_costs(fw_table_t *t, const fw_request_t *reqs, size_t n,
                         const int64_t *costs, int64_t now, fw_decision_t *out,
                         size_t *violated)
{
    if (!t || !reqs || !costs || !out || !violated || n == 0 || n > MAX_PARTS ||
        now < 0)
        return FW_EINVAL;
    int rc = validate_parts(t, reqs, n, costs);
    if (rc)
        return rc;
    if (n == 1 && reqs[0].limit->quota.algorithm != FW_SLIDING_LOG) {
        rc = check_one(t, reqs, costs[0], now, out, 1);
        if (rc == 0)
            *violated = out->allowed ? 1 : 0;
        return rc;
    }
    return check_many(t, reqs, n, costs, now, out, violated);
}

int fw_table_check_one(fw_table_t *t, const fw_request_t *req, int64_t cost,
                       int64_t now, unsigned flags, fw_decision_t *out)
{
    if (!t || !req || !out || now < 0 || (flags & ~FW_CHECK_ALLOWED_ONLY) != 0)
        return FW_EINVAL;
    int rc = validate_part(t, req, cost);
    if (rc)
        return rc;
    size_t violated;
    if (req->limit->quota.algorithm != FW_SLIDING_LOG)
        return check_one(t, req, cost, now, out, !(flags & FW_CHECK_ALLOWED_ONLY));
    return check_many(t, req, 1, &cost, now, out, &violated);
}

int fw_table_peek(fw_table_t *t, const fw_limit_t *limit, const void *key,
                  size_t key_len, int64_t now, fw_decision_t *d)
{
    fw_request_t r = {limit, key, key_len};
    size_t violated;
    return fw_table_check(t, &r, 1, 0, now, d, &violated);
}

int fw_table_reset(fw_table_t *t, const fw_limit_t *limit, const void *key,
                   size_t key_len)
{
    if (!t || !limit || (!key && key_len > 0))
        return FW_EINVAL;
    fwi_hash128_t h = fingerprint(t, limit, key, key_len);
    fwi_slot_t *s = fwi_table_find(t, h);
    if (!s)
        return 0;
    if (limit->quota.algorithm == FW_SLIDING_LOG) {
        int rc = t->grows ? 0 : fwi_lock_acquire(&s->lock);
        if (rc)
            return rc;
        if (__atomic_load_n(&s->tag, __ATOMIC_SEQ_CST) == h.lo)
            __atomic_store_n(&s->log_pos, 0, __ATOMIC_SEQ_CST);
        if (!t->grows)
            fwi_lock_release(&s->lock);
        table_wrote(t, s);
        return 0;
    }
    unit_t cur = unit_load(s);
    while (unit_tag(cur) == h.lo && !unit_cas(s, &cur, unit_pack(h.lo, 0)))
        ;
    table_wrote(t, s);
    return 0;
}

int fw_table_clear(fw_table_t *t)
{
    if (!t)
        return FW_EINVAL;
    for (uint64_t i = 0; i <= t->mask; i++) {
        fwi_slot_t *s = slot_at(t, i);
        unit_t cur = unit_load(s);
        while (!unit_cas(s, &cur, 0))
            ;
        __atomic_store_n(&s->check, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&s->expiry, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&s->log_pos, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&s->damaged_at, 0, __ATOMIC_SEQ_CST);
    }
    __atomic_store_n(&t->hdr->keys, 0, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&t->hdr->claims, 1, __ATOMIC_SEQ_CST); /* no hint holds */
    if (t->after_write)
        t->after_write(t, t->slots, (size_t)(t->mask + 1) * t->slot_size);
    return 0;
}

int fw_table_stats(fw_table_t *t, int64_t now, fw_table_stats_t *st)
{
    if (!t || !st)
        return FW_EINVAL;
    memset(st, 0, sizeof(*st));
    st->slots = t->mask + 1;
    st->max_keys = t->hdr->max_keys;
    st->full_errors = __atomic_load_n(&t->hdr->full_errors, __ATOMIC_RELAXED);
    st->damaged_states = __atomic_load_n(&t->hdr->damaged_states, __ATOMIC_RELAXED);
    st->clamped_states = __atomic_load_n(&t->hdr->clamped_states, __ATOMIC_RELAXED);
    st->last_damaged_slot = __atomic_load_n(&t->hdr->last_damaged_slot, __ATOMIC_RELAXED);
    st->keys = __atomic_load_n(&t->hdr->keys, __ATOMIC_RELAXED);
    st->retired = __atomic_load_n(&t->hdr->retired, __ATOMIC_RELAXED);
    for (uint64_t i = 0; i <= t->mask; i++) {
        fwi_slot_t *s = slot_at(t, i);
        uint64_t tag = __atomic_load_n(&s->tag, __ATOMIC_RELAXED);
        if (vacant_tag(tag))
            continue;
        st->used++;
        if (fwi_slot_fresh_at(tag, __atomic_load_n(&s->state, __ATOMIC_RELAXED),
                              __atomic_load_n(&s->expiry, __ATOMIC_RELAXED)) > now)
            st->active++;
    }
    return 0;
}

int fw_table_info(fw_table_t *t, fw_table_info_t *info)
{
    if (!t || !info)
        return FW_EINVAL;
    memset(info, 0, sizeof(*info));
    info->version = t->hdr->version;
    info->slot_size = t->slot_size;
    info->log_capacity = t->log_capacity;
    info->max_keys = t->hdr->max_keys;
    info->slots = t->mask + 1;
    info->bytes = t->len;
    info->created_ns = t->hdr->created_ns;
    info->shared = !t->owns_memory;
    info->blocking = t->after_write != NULL;
    info->grows = t->grows;
    return 0;
}

int fw_table_damaged(fw_table_t *t, fw_slot_info_t *out, size_t cap, size_t *n)
{
    if (!t || (!out && cap > 0) || !n)
        return FW_EINVAL;
    size_t found = 0;
    for (uint64_t i = 0; i <= t->mask; i++) {
        fwi_slot_t *s = slot_at(t, i);
        int64_t at = __atomic_load_n(&s->damaged_at, __ATOMIC_RELAXED);
        if (at == 0)
            continue;
        if (found < cap) {
            fw_slot_info_t *o = &out[found];
            memset(o, 0, sizeof(*o));
            o->index = i;
            o->fingerprint[0] = __atomic_load_n(&s->tag, __ATOMIC_RELAXED);
            o->fingerprint[1] = __atomic_load_n(&s->check, __ATOMIC_RELAXED);
            o->state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
            o->expiry_ns = fwi_slot_fresh_at(o->fingerprint[0], o->state,
                                             __atomic_load_n(&s->expiry, __ATOMIC_RELAXED));
            uint32_t head, len;
            int64_t units;
            fwi_log_pos_unpack(__atomic_load_n(&s->log_pos, __ATOMIC_RELAXED), &head,
                               &len, &units);
            o->log_len = len;
            o->damaged_ns = at;
            o->present = 1;
        }
        found++;
    }
    *n = found;
    return 0;
}
