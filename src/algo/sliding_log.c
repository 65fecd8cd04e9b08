/*
 * sliding_log.c - the exact rolling window: a log of (time, cost) entries;
 * a request is admitted iff the units of the entries younger than W plus
 * its own cost fit in B.
 * Invariant: the log holds at most B entries, in time order (an entry made
 * at an earlier time than the newest one is inserted at its place), so the
 * dead entries are always at the front; only live entries count; a denial
 * or a peek only prunes dead entries. A log no algorithm run can produce (an
 * entry with a negative time, a cost outside [1, B], out of time order) is
 * replaced by one entry of B units at now: full, until one window passes;
 * an entry more than max(W, 1 s) ahead of now (a clock excursion) is
 * moved back to now.
 */
#include "internal.h"

static fw_log_entry_t *entry_at(fw_log_t *log, uint32_t i)
{
    return &log->entries[(log->head + i) % log->capacity];
}

static int live(const fw_quota_t *q, const fw_log_entry_t *e, int64_t now)
{
    return (fwi_i128)e->t + q->window_ns > now;
}

/* Drop dead entries from the front, check the others against what the
 * algorithm can produce (one pass: the hot path reads each entry once), and
 * return the units still live. With `repair`, a far-ahead entry is moved
 * back to now, and an impossible log becomes one entry of B units at now. */
static int64_t prune(const fw_quota_t *q, fw_log_t *log, int64_t now, int repair,
                     fwi_verdict_t *v)
{
    *v = FWI_STATE_OK;
    while (log->len > 0 && !live(q, entry_at(log, 0), now)) {
        log->head = (log->head + 1) % log->capacity;
        log->len--;
    }
    fwi_i128 ahead = (fwi_i128)now + fwi_clamp_slack(q->window_ns);
    int64_t used = 0, prev = 0;
    for (uint32_t i = 0; i < log->len; i++) {
        fw_log_entry_t *e = entry_at(log, i);
        if (e->t < prev || e->cost < 1 || e->cost > q->burst) {
            *v = FWI_STATE_IMPOSSIBLE; /* e->t < 0 included (prev >= 0) */
            break;
        }
        if ((fwi_i128)e->t > ahead) {
            *v = FWI_STATE_AHEAD;
            if (!repair)
                break;
            e->t = now > prev ? now : prev; /* keeps the time order */
        }
        prev = e->t;
        if (live(q, e, now))
            used += e->cost;
    }
    if (*v == FWI_STATE_IMPOSSIBLE && repair) {
        entry_at(log, 0)->t = now; /* full at now, for one window */
        entry_at(log, 0)->cost = q->burst;
        log->len = 1;
        used = q->burst;
    }
    /* duplicates left by a crash mid-insert over-count: never beyond B */
    return used < q->burst ? used : q->burst;
}

static int64_t newest_reset(const fw_quota_t *q, fw_log_t *log, int64_t now)
{
    if (log->len == 0)
        return 0;
    fwi_i128 end = (fwi_i128)entry_at(log, log->len - 1)->t + q->window_ns;
    return end > now ? fwi_sat64(end - now) : 0;
}

static void decide(const fw_quota_t *q, fw_log_t *log, int64_t used,
                   int64_t now, int64_t cost, int append, fw_decision_t *d)
{
    int64_t b = q->burst;
    d->limit = b;
    d->delay_ns = 0;
    if (used + cost <= b) {
        d->allowed = 1;
        d->remaining = b - used - cost;
        d->retry_after_ns = 0;
        if (append) {
            /* in time order: a caller whose clock read is older than the
             * newest entry goes before it (log->len < B <= capacity here) */
            uint32_t i = log->len;
            for (; i > 0 && entry_at(log, i - 1)->t > now; i--)
                *entry_at(log, i) = *entry_at(log, i - 1);
            entry_at(log, i)->t = now;
            entry_at(log, i)->cost = cost;
            log->len++;
        }
        return;
    }
    d->allowed = 0;
    d->remaining = b - used;
    int64_t need = used + cost - b, freed = 0;
    d->retry_after_ns = 0;
    for (uint32_t i = 0; i < log->len; i++) {
        const fw_log_entry_t *e = entry_at(log, i);
        if (!live(q, e, now))
            continue;
        freed += e->cost;
        if (freed >= need) {
            d->retry_after_ns = fwi_sat64((fwi_i128)e->t + q->window_ns - now);
            break;
        }
    }
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
    fwi_verdict_t v;
    int64_t used = prune(q, log, now, repair, &v);
    if (verdict)
        *verdict = v;
    if (v != FWI_STATE_OK && !repair) {
        fwi_log_full_decision(q, d); /* decided as if repaired */
        return 0;
    }
    if (cost > 0) {
        decide(q, log, used, now, cost, append, d);
        d->reset_after_ns = newest_reset(q, log, now);
        if (d->allowed && !append && d->reset_after_ns < q->window_ns)
            d->reset_after_ns = q->window_ns; /* the entry it would add */
        return 0;
    }
    fw_decision_t one = {0}; /* copied whole: no stray padding bytes */
    decide(q, log, used, now, 1, 0, &one);
    fwi_peek_from(d, &one, newest_reset(q, log, now));
    return 0;
}

int fw_log_step(const fw_quota_t *q, fw_log_t *log, int64_t now, int64_t cost,
                fw_decision_t *d)
{
    return fwi_log_eval(q, log, now, cost, d, 1, cost > 0, NULL);
}

void fw_log_refund(fw_log_t *log, int64_t at, int64_t cost)
{
    if (!log || !log->entries || log->capacity == 0)
        return;
    /* newest first: the entry appended at `at` is at or near the tail */
    for (uint32_t i = log->len; i-- > 0 && cost > 0;) {
        fw_log_entry_t *e = entry_at(log, i);
        if (e->t != at)
            continue;
        if (e->cost > cost) {
            e->cost -= cost;
            return;
        }
        /* removed by moving the newer entries over it (never an entry of
         * cost 0: a crash meanwhile leaves a duplicate, an over-count) */
        cost -= e->cost;
        for (uint32_t j = i; j + 1 < log->len; j++)
            *entry_at(log, j) = *entry_at(log, j + 1);
        log->len--;
    }
}
