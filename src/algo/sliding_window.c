/*
 * sliding_window.c - the two-window weighted counter: the count of the
 * previous window, weighted by how much of it still overlaps the rolling
 * window, plus the count of the current one.
 * Invariant: the state packs (k, prev, cur) as (k*(B+1) + prev)*(B+1) + cur;
 * admission compares exact integers (no floating point); a stored window
 * ahead of now by more than max(W, 1 s) (a clock excursion, or damage) is
 * brought back to now's window with its counts.
 */
#include "internal.h"

typedef struct sliding_view {
    int64_t k, prev, cur;
    int64_t elapsed; /* ns into window k, in [0, W) */
} sliding_view_t;

static sliding_view_t view_at(const fw_quota_t *q, uint64_t state, int64_t now)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    int64_t w = q->window_ns;
    int64_t ks = (int64_t)(state / b1 / b1);
    int64_t ps = (int64_t)((state / b1) % b1);
    int64_t cs = (int64_t)(state % b1);
    int64_t k_now = now / w;
    sliding_view_t v;
    if (ks >= k_now) {
        v.k = ks;
        v.prev = ps;
        v.cur = cs;
    } else if (ks == k_now - 1) {
        v.k = k_now;
        v.prev = cs;
        v.cur = 0;
    } else {
        v.k = k_now;
        v.prev = 0;
        v.cur = 0;
    }
    fwi_i128 start = (fwi_i128)v.k * w;
    v.elapsed = now > start ? (int64_t)(now - start) : 0;
    return v;
}

fwi_verdict_t fwi_sliding_window_sanitize(const fw_quota_t *q, uint64_t *state,
                                          int64_t now)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    uint64_t k = *state / b1 / b1, rest = *state % (b1 * b1);
    uint64_t k_now = (uint64_t)(now / q->window_ns);
    /* the stored window starts more than max(W, 1 s) after now? */
    if ((fwi_i128)k * q->window_ns - now <= fwi_clamp_slack(q->window_ns))
        return FWI_STATE_OK;
    if (k > (uint64_t)(INT64_MAX / q->window_ns)) { /* beyond any clock */
        *state = k_now * b1 * b1 + (uint64_t)q->burst; /* cur = B: full */
        return FWI_STATE_IMPOSSIBLE;
    }
    *state = k_now * b1 * b1 + rest;
    return FWI_STATE_AHEAD;
}

static uint64_t pack(const fw_quota_t *q, const sliding_view_t *v)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    return ((uint64_t)v->k * b1 + (uint64_t)v->prev) * b1 + (uint64_t)v->cur;
}

/* Weighted usage times W: prev*(W - e) + cur*W. */
static fwi_i128 usage_w(const fw_quota_t *q, const sliding_view_t *v, int64_t cur)
{
    int64_t w = q->window_ns;
    return (fwi_i128)v->prev * (w - v->elapsed) + (fwi_i128)cur * w;
}

static int64_t reset_after(const fw_quota_t *q, const sliding_view_t *v,
                           int64_t cur, int64_t now)
{
    int64_t w = q->window_ns;
    if (cur > 0)
        return fwi_sat64((fwi_i128)(v->k + 2) * w - now);
    if (v->prev > 0)
        return fwi_sat64((fwi_i128)(v->k + 1) * w - now);
    return 0;
}

static int64_t retry_after(const fw_quota_t *q, const sliding_view_t *v,
                           int64_t cost, int64_t now)
{
    int64_t w = q->window_ns, b = q->burst;
    int64_t x = b - v->cur - cost;
    if (x >= 0 && v->prev > 0) {
        fwi_i128 e1 = w - ((fwi_i128)x * w) / v->prev;
        if (e1 < w)
            return fwi_sat64((fwi_i128)v->k * w + e1 - now);
    }
    fwi_i128 e2 = 0;
    if (v->cur > 0) {
        e2 = w - ((fwi_i128)(b - cost) * w) / v->cur;
        if (e2 < 0)
            e2 = 0;
    }
    return fwi_sat64((fwi_i128)(v->k + 1) * w + e2 - now);
}

void fwi_sliding_window_decide(const fw_quota_t *q, uint64_t state, int64_t now,
                              int64_t cost, uint64_t *next, fw_decision_t *d)
{
    sliding_view_t v = view_at(q, state, now);
    int64_t w = q->window_ns, b = q->burst;
    fwi_i128 cap = (fwi_i128)b * w;
    d->limit = b;
    d->delay_ns = 0;
    int64_t cur = v.cur;
    if (v.prev == 0) {
        /* no previous window to weigh (a key busy in one window only): the
         * same decision in plain counts, usage_w(c) = c*W <= B*W iff c <= B,
         * and (B*W - c*W) / W = B - c, with no 128-bit arithmetic */
        if (cur + cost <= b) {
            cur += cost;
            d->allowed = 1;
            d->retry_after_ns = 0;
            *next = pack(q, &(sliding_view_t){v.k, 0, cur, v.elapsed});
        } else {
            d->allowed = 0;
            d->retry_after_ns = retry_after(q, &v, cost, now);
            *next = state;
        }
        d->remaining = b - cur > 0 ? b - cur : 0;
        d->reset_after_ns = reset_after(q, &v, cur, now);
        return;
    }
    if (usage_w(q, &v, v.cur + cost) <= cap) {
        cur = v.cur + cost;
        d->allowed = 1;
        d->retry_after_ns = 0;
        sliding_view_t after = v;
        after.cur = cur;
        *next = pack(q, &after);
    } else {
        d->allowed = 0;
        d->retry_after_ns = retry_after(q, &v, cost, now);
        *next = state;
    }
    fwi_i128 left = (cap - usage_w(q, &v, cur)) / w;
    d->remaining = left > 0 ? (int64_t)left : 0;
    d->reset_after_ns = reset_after(q, &v, cur, now);
}

int64_t fwi_sliding_window_reset_after(const fw_quota_t *q, uint64_t state,
                                      int64_t now)
{
    sliding_view_t v = view_at(q, state, now);
    return reset_after(q, &v, v.cur, now);
}

int64_t fwi_sliding_window_fresh_at(const fw_quota_t *q, uint64_t state)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    uint64_t k = state / b1 / b1, p = (state / b1) % b1, c = state % b1;
    if (c > 0)
        return fwi_sat64((fwi_i128)(k + 2) * q->window_ns);
    if (p > 0)
        return fwi_sat64((fwi_i128)(k + 1) * q->window_ns);
    return 0;
}

uint64_t fwi_sliding_window_refund(const fw_quota_t *q, uint64_t state,
                                  int64_t at, int64_t cost)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    uint64_t k = state / b1 / b1, p = (state / b1) % b1, c = state % b1;
    uint64_t k_at = (uint64_t)(at / q->window_ns);
    uint64_t n = (uint64_t)cost;
    if (k == k_at)
        c = c > n ? c - n : 0;
    else if (k == k_at + 1)
        p = p > n ? p - n : 0;
    else
        return state;
    return (k * b1 + p) * b1 + c;
}
