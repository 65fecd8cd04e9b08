/*
 * sliding_log.c - the exact rolling window: a log of (time, cost) entries;
 * a request is admitted iff the units of the entries younger than W plus
 * its own cost fit in B. A check costs O(1) amortised: the log keeps its
 * running total (`units`), a check reads the entries that expire (and drops
 * them), the oldest and the newest; a denial of cost n reads at most n more.
 * Invariant: the log holds at most B entries, in time order (an entry made
 * at an earlier time than the newest one is inserted at its place), so the
 * dead entries are always at the front, and `units` is never below the sum
 * of the entries' costs (equal to it, but for a crash mid-move). A header
 * that disagrees with itself, an entry that disagrees with its neighbour,
 * and every B commits, the log is recounted in full, entry by entry: a log
 * no algorithm run can produce (an entry with a negative time, a cost
 * outside [1, B], out of time order) is replaced by one entry of B units at
 * now: full, until one window passes; an entry more than max(W, 1 s) ahead
 * of now (a clock excursion) is moved back to the newest time within reach,
 * or now (a peek, which writes nothing, reads it there); a total below the
 * entries' sum (damage) is raised to it.
 */
#include "internal.h"

static uint32_t ring_index(const fw_log_t *log, uint32_t i)
{
    uint64_t k = (uint64_t)log->head + i; /* head < capacity, i <= capacity */
    return (uint32_t)(k >= log->capacity ? k - log->capacity : k);
}

static fw_log_entry_t *entry_at(fw_log_t *log, uint32_t i)
{
    return &log->entries[ring_index(log, i)];
}

static int live(const fw_quota_t *q, const fw_log_entry_t *e, int64_t now)
{
    return (fwi_i128)e->t + q->window_ns > now;
}

static int entry_ok(const fw_quota_t *q, const fw_log_entry_t *e)
{
    return e->t >= 0 && e->cost >= 1 && e->cost <= q->burst;
}

/* Can the header (len, units) be what the algorithm keeps? Each entry holds
 * 1..B units; a crash mid-move may leave units above the sum, never above
 * 2B (the move of a duplicate while a commit of at most B - units runs). */
static int header_ok(const fw_quota_t *q, const fw_log_t *log)
{
    if (log->len == 0)
        return log->units == 0;
    return log->units >= (int64_t)log->len && log->units <= 2 * q->burst;
}

static void publish(const fw_log_t *log, fwi_log_publish_fn pub, void *ctx)
{
    if (pub)
        pub(ctx, log);
}

/* Overwrite entry i (inside the extent) with e, keeping the published units
 * at or above the entries' sum at every instant: raised before the write,
 * lowered after it. */
static void put(fw_log_t *log, uint32_t i, fw_log_entry_t e, fwi_log_publish_fn pub,
                void *ctx)
{
    fw_log_entry_t *at = entry_at(log, i);
    int64_t units = log->units - at->cost + e.cost;
    if (units > log->units) {
        log->units = units;
        publish(log, pub, ctx);
    }
    *at = e;
    if (units < log->units) {
        log->units = units;
        publish(log, pub, ctx);
    }
}

/* The slow path: drop the dead front, read every other entry, check it
 * against what the algorithm can produce, and set `units` to their sum.
 * With `repair`, a far-ahead entry is moved back to now and an impossible
 * log becomes one entry of B units at now; without, only the verdict says
 * so. A recount that finds fewer units than the header claims (an
 * over-count a crash left) is no damage; more, or a header that disagreed
 * with itself, is. */
static fwi_verdict_t recount(const fw_quota_t *q, fw_log_t *log, int64_t now,
                             int repair, int header_bad)
{
    fwi_verdict_t v = FWI_STATE_OK;
    int64_t claimed = log->units;
    while (log->len > 0 && !live(q, entry_at(log, 0), now)) {
        fw_log_entry_t *e = entry_at(log, 0);
        claimed -= entry_ok(q, e) ? e->cost : 0;
        log->head = ring_index(log, 1);
        log->len--;
    }
    fwi_i128 ahead = (fwi_i128)now + fwi_clamp_slack(q->window_ns);
    int64_t used = 0, prev = 0;
    for (uint32_t i = 0; i < log->len; i++) {
        fw_log_entry_t *e = entry_at(log, i);
        if (e->t < prev || !entry_ok(q, e)) {
            v = FWI_STATE_IMPOSSIBLE; /* e->t < 0 included (prev >= 0) */
            break;
        }
        if ((fwi_i128)e->t > ahead) {
            v = FWI_STATE_AHEAD;
            /* a peek counts the entry where it is (its decision reads it
             * moved: see clamp_view); a check moves it */
            if (repair)
                e->t = now > prev ? now : prev; /* keeps the time order */
        }
        prev = e->t;
        used += e->cost;
    }
    if (v == FWI_STATE_IMPOSSIBLE) {
        if (repair) {
            log->entries[log->head].t = now; /* full at now, for one window */
            log->entries[log->head].cost = q->burst;
            log->len = 1;
            log->units = q->burst;
        }
        return v;
    }
    if (v == FWI_STATE_OK && (header_bad || claimed < used))
        v = FWI_STATE_IMPOSSIBLE; /* decided on the recount, not as full */
    log->units = used;
    log->unchecked = 0;
    return v;
}

/* Drop the dead entries from the front, reading only those and the two
 * ends, and return the verdict; anything the quick reads cannot vouch for
 * falls back to a recount. */
static fwi_verdict_t prune(const fw_quota_t *q, fw_log_t *log, int64_t now, int repair)
{
    if (!header_ok(q, log))
        return recount(q, log, now, repair, 1);
    if (repair && log->unchecked >= (uint64_t)q->burst)
        return recount(q, log, now, repair, 0);
    while (log->len > 0) {
        const fw_log_entry_t *e = entry_at(log, 0);
        if (live(q, e, now))
            break;
        if (!entry_ok(q, e) || log->units - e->cost < (int64_t)log->len - 1 ||
            (log->len > 1 && entry_at(log, 1)->t < e->t))
            return recount(q, log, now, repair, 0);
        log->units -= e->cost;
        log->head = ring_index(log, 1);
        log->len--;
    }
    if (log->len == 0)
        return log->units == 0 ? FWI_STATE_OK : recount(q, log, now, repair, 0);
    const fw_log_entry_t *first = entry_at(log, 0), *last = entry_at(log, log->len - 1);
    if (!entry_ok(q, first) || !entry_ok(q, last) || last->t < first->t ||
        (fwi_i128)last->t > (fwi_i128)now + fwi_clamp_slack(q->window_ns))
        return recount(q, log, now, repair, 0);
    return FWI_STATE_OK;
}

/* Where a decision reads an entry: where it is, or, for a peek of a log a
 * clock excursion left ahead (which a peek may not repair), where a check
 * would move it: an entry beyond `reach` is read at `base`. */
typedef struct clamp_view {
    fwi_i128 reach;
    int64_t base;
} clamp_view_t;

static const clamp_view_t AS_STORED = {((fwi_i128)1) << 100, 0};

static int64_t time_of(const clamp_view_t *cv, const fw_log_entry_t *e)
{
    return (fwi_i128)e->t > cv->reach ? cv->base : e->t;
}

/* The view a check's repair would leave (recount): entries more than
 * max(W, 1 s) ahead of now at the newest time within reach, or now. */
static clamp_view_t clamp_view(const fw_quota_t *q, fw_log_t *log, int64_t now)
{
    clamp_view_t cv = {(fwi_i128)now + fwi_clamp_slack(q->window_ns), now};
    for (uint32_t i = 0; i < log->len; i++) {
        int64_t t = entry_at(log, i)->t;
        if ((fwi_i128)t <= cv.reach && t > cv.base)
            cv.base = t;
    }
    return cv;
}

static int64_t newest_reset(const fw_quota_t *q, fw_log_t *log, int64_t now,
                            const clamp_view_t *cv)
{
    if (log->len == 0)
        return 0;
    fwi_i128 end = (fwi_i128)time_of(cv, entry_at(log, log->len - 1)) + q->window_ns;
    return end > now ? fwi_sat64(end - now) : 0;
}

static void decide(const fw_quota_t *q, fw_log_t *log, int64_t now, int64_t cost,
                   const clamp_view_t *cv, fw_decision_t *d)
{
    int64_t b = q->burst;
    /* an over-count a crash left is never read beyond B */
    int64_t used = log->units < b ? log->units : b;
    d->limit = b;
    d->delay_ns = 0;
    if (used + cost <= b) {
        d->allowed = 1;
        d->remaining = b - used - cost;
        d->retry_after_ns = 0;
        return;
    }
    d->allowed = 0;
    d->remaining = b - used;
    /* every entry is live after prune: the oldest expire first */
    int64_t need = used + cost - b, freed = 0;
    d->retry_after_ns = 0;
    for (uint32_t i = 0; i < log->len; i++) {
        const fw_log_entry_t *e = entry_at(log, i);
        freed += e->cost;
        if (freed >= need) {
            d->retry_after_ns = fwi_sat64((fwi_i128)time_of(cv, e) + q->window_ns - now);
            break;
        }
    }
}

void fwi_log_insert(fw_log_t *log, int64_t now, int64_t cost, fwi_log_publish_fn pub,
                    void *ctx)
{
    uint32_t i = log->len; /* < B <= capacity: the caller admitted it */
    if (i > 0 && entry_at(log, i - 1)->t > now) {
        /* an earlier clock read: copy the newest one place on and publish
         * the extent with that duplicate, then move the newer ones up (a
         * crash meanwhile leaves a duplicate, counted: never a gap) */
        *entry_at(log, i) = *entry_at(log, i - 1);
        log->len++;
        log->units += entry_at(log, i)->cost;
        publish(log, pub, ctx);
        for (i--; i > 0 && entry_at(log, i - 1)->t > now; i--)
            put(log, i, *entry_at(log, i - 1), pub, ctx);
        put(log, i, (fw_log_entry_t){now, cost}, pub, ctx);
    } else {
        /* written outside the extent, then published with it */
        *entry_at(log, i) = (fw_log_entry_t){now, cost};
        log->len++;
        log->units += cost;
        publish(log, pub, ctx);
    }
    log->unchecked++;
}

void fwi_log_remove(fw_log_t *log, int64_t at, int64_t cost, fwi_log_publish_fn pub,
                    void *ctx)
{
    /* newest first: the entry appended at `at` is at or near the tail */
    for (uint32_t i = log->len; i-- > 0 && cost > 0;) {
        fw_log_entry_t *e = entry_at(log, i);
        if (e->t != at || e->cost < 1)
            continue;
        if (e->cost > cost) {
            put(log, i, (fw_log_entry_t){e->t, e->cost - cost}, pub, ctx);
            return;
        }
        /* removed by moving the newer entries over it (a crash meanwhile
         * leaves a duplicate, counted), then dropping the last copy */
        cost -= e->cost;
        for (uint32_t j = i; j + 1 < log->len; j++)
            put(log, j, *entry_at(log, j + 1), pub, ctx);
        log->units -= entry_at(log, log->len - 1)->cost;
        log->len--;
        publish(log, pub, ctx);
    }
}

int fwi_log_restore_front(const fw_quota_t *q, fw_log_t *log, uint32_t head0,
                          uint32_t len0)
{
    if (head0 >= log->capacity || len0 > log->capacity || len0 < log->len)
        return 0;
    uint32_t dropped = len0 - log->len;
    fw_log_t old = *log;
    old.head = head0;
    if (ring_index(&old, dropped) != log->head)
        return 0; /* the kept entries are not the old extent's tail */
    int64_t units = log->units;
    for (uint32_t i = 0; i < dropped; i++) {
        const fw_log_entry_t *e = entry_at(&old, i);
        /* intact and in time order up to the first kept entry */
        if (!entry_ok(q, e) || (i + 1 < len0 && entry_at(&old, i + 1)->t < e->t))
            return 0;
        units += e->cost;
    }
    if (units > 2 * q->burst)
        return 0;
    log->head = head0;
    log->len = len0;
    log->units = units;
    return 1;
}

void fwi_log_full_decision(const fw_quota_t *q, fw_decision_t *d)
{
    d->allowed = 0;
    d->limit = q->burst;
    d->remaining = 0;
    d->retry_after_ns = q->window_ns;
    d->reset_after_ns = q->window_ns;
    d->delay_ns = 0;
}

int fwi_log_eval(const fw_quota_t *q, fw_log_t *log, int64_t now, int64_t cost,
                 fw_decision_t *d, int append, int repair, fwi_verdict_t *verdict)
{
    int rc = fwi_check_step_args(q, now, cost, d);
    if (rc)
        return rc;
    if (!log || !log->entries || log->capacity < q->burst ||
        log->head >= log->capacity || log->len > log->capacity)
        return FW_EINVAL;
    fwi_verdict_t v = prune(q, log, now, repair);
    if (verdict)
        *verdict = v;
    if (v == FWI_STATE_IMPOSSIBLE && !repair) {
        fwi_log_full_decision(q, d); /* decided as if repaired */
        return 0;
    }
    /* a peek of a log left ahead: decided as if repaired, without writing */
    clamp_view_t cv = v == FWI_STATE_AHEAD && !repair ? clamp_view(q, log, now) : AS_STORED;
    if (cost > 0) {
        decide(q, log, now, cost, &cv, d);
        if (d->allowed && append)
            fwi_log_insert(log, now, cost, NULL, NULL);
        d->reset_after_ns = newest_reset(q, log, now, &cv);
        if (d->allowed && !append && d->reset_after_ns < q->window_ns)
            d->reset_after_ns = q->window_ns; /* the entry it would add */
        return 0;
    }
    fw_decision_t one = {0}; /* copied whole: no stray padding bytes */
    decide(q, log, now, 1, &cv, &one);
    fwi_peek_from(d, &one, newest_reset(q, log, now, &cv));
    return 0;
}

int fw_log_step(const fw_quota_t *q, fw_log_t *log, int64_t now, int64_t cost,
                fw_decision_t *d)
{
    return fwi_log_eval(q, log, now, cost, d, 1, cost > 0, NULL);
}

void fw_log_refund(fw_log_t *log, int64_t at, int64_t cost)
{
    if (!log || !log->entries || log->capacity == 0 || log->head >= log->capacity ||
        log->len > log->capacity)
        return;
    fwi_log_remove(log, at, cost, NULL, NULL);
}
