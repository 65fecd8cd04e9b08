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

/* The stored fields: two divisions by B+1, each giving a quotient and its
 * remainder. */
typedef struct sliding_packed {
    uint64_t k, prev, cur;
} sliding_packed_t;

static inline sliding_packed_t unpack(const fw_quota_t *q, uint64_t state)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    uint64_t kp = state / b1; /* k*(B+1) + prev */
    return (sliding_packed_t){kp / b1, kp % b1, state % b1};
}

/* The view at `now`, located from the stored window's start: no division
 * unless now is two windows or more past it (k_now = now / W otherwise is
 * the stored window, or the next), and no 128-bit arithmetic. */
static inline sliding_view_t view_at(const fw_quota_t *q, uint64_t state,
                                     int64_t now)
{
    int64_t w = q->window_ns, start, into;
    sliding_packed_t s = unpack(q, state); /* s.k < 2^62: B + 1 >= 2 */
    /* ns since the stored window started (negative: it starts after now) */
    if (__builtin_mul_overflow((int64_t)s.k, w, &start))
        into = -1; /* it starts after any clock */
    else
        into = now - start; /* both in [0, INT64_MAX]: no overflow */
    if (into < w) /* k_now <= ks: the stored window is in force */
        return (sliding_view_t){(int64_t)s.k, (int64_t)s.prev, (int64_t)s.cur,
                                into > 0 ? into : 0};
    if (into - w < w) /* k_now == ks + 1: cur becomes prev */
        return (sliding_view_t){(int64_t)s.k + 1, (int64_t)s.cur, 0, into - w};
    int64_t k_now = now / w;
    return (sliding_view_t){k_now, 0, 0, now - k_now * w};
}

fwi_verdict_t fwi_sliding_window_sanitize(const fw_quota_t *q, uint64_t *state,
                                          int64_t now)
{
    uint64_t b1 = (uint64_t)q->burst + 1, bb = b1 * b1; /* fits: quota.c */
    uint64_t k = *state / b1 / b1;
    int64_t w = q->window_ns, start;
    /* the stored window starts more than max(W, 1 s) after now? (a start
     * that fits int64 is compared in 64 bits: start - now cannot overflow) */
    if (__builtin_mul_overflow((int64_t)k, w, &start)
            ? (fwi_i128)k * w - now <= fwi_clamp_slack(w)
            : start - now <= fwi_clamp_slack(w))
        return FWI_STATE_OK;
    uint64_t k_now = (uint64_t)(now / w);
    if (k > (uint64_t)(INT64_MAX / w)) { /* beyond any clock */
        *state = k_now * bb + (uint64_t)q->burst; /* cur = B: full */
        return FWI_STATE_IMPOSSIBLE;
    }
    *state = k_now * bb + (*state - k * bb);
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

/* Does the view admit `cur` units in its window k (the count after the
 * request)? With no previous window to weigh (a key busy in one window
 * only), usage_w(c) = c*W <= B*W iff c <= B: plain counts, no 128-bit
 * arithmetic. */
static inline int admits(const fw_quota_t *q, const sliding_view_t *v, int64_t cur)
{
    if (v->prev == 0)
        return cur <= q->burst;
    return usage_w(q, v, cur) <= (fwi_i128)q->burst * q->window_ns;
}

/* fwi_sliding_window_decide_fresh, *fresh_at set only when admitted */
static inline void decide(const fw_quota_t *q, uint64_t state, int64_t now,
                          int64_t cost, uint64_t *next, fw_decision_t *d,
                          int64_t *fresh_at)
{
    sliding_view_t v = view_at(q, state, now);
    int64_t b = q->burst;
    d->limit = b;
    d->delay_ns = 0;
    int64_t cur = v.cur + cost;
    if (admits(q, &v, cur)) {
        d->allowed = 1;
        d->retry_after_ns = 0;
        *next = pack(q, &(sliding_view_t){v.k, v.prev, cur, v.elapsed});
        *fresh_at = fwi_mul_sat64(v.k + 2, q->window_ns); /* cur > 0 */
    } else {
        cur = v.cur;
        d->allowed = 0;
        d->retry_after_ns = retry_after(q, &v, cost, now);
        *next = state;
    }
    if (v.prev == 0) { /* (B*W - c*W) / W = B - c */
        d->remaining = b - cur > 0 ? b - cur : 0;
    } else {
        fwi_i128 left = ((fwi_i128)b * q->window_ns - usage_w(q, &v, cur)) / q->window_ns;
        d->remaining = left > 0 ? (int64_t)left : 0;
    }
    d->reset_after_ns = reset_after(q, &v, cur, now);
}

void fwi_sliding_window_decide(const fw_quota_t *q, uint64_t state, int64_t now,
                              int64_t cost, uint64_t *next, fw_decision_t *d)
{
    int64_t unused;
    decide(q, state, now, cost, next, d, &unused);
}

void fwi_sliding_window_decide_fresh(const fw_quota_t *q, uint64_t state,
                                     int64_t now, int64_t cost, uint64_t *next,
                                     fw_decision_t *d, int64_t *fresh_at)
{
    decide(q, state, now, cost, next, d, fresh_at);
}

int fwi_sliding_window_admit(const fw_quota_t *q, uint64_t state, int64_t now,
                             int64_t cost, uint64_t *next, int64_t *fresh_at)
{
    sliding_view_t v = view_at(q, state, now);
    int64_t cur = v.cur + cost;
    if (!admits(q, &v, cur)) { /* fwi_sliding_window_decide's test */
        *next = state;
        return 0;
    }
    v.cur = cur;
    *next = pack(q, &v);
    /* fwi_sliding_window_fresh_at(*next): cur > 0 */
    *fresh_at = fwi_mul_sat64(v.k + 2, q->window_ns);
    return 1;
}

int64_t fwi_sliding_window_reset_after(const fw_quota_t *q, uint64_t state,
                                      int64_t now)
{
    sliding_view_t v = view_at(q, state, now);
    return reset_after(q, &v, v.cur, now);
}

int64_t fwi_sliding_window_fresh_at(const fw_quota_t *q, uint64_t state)
{
    sliding_packed_t s = unpack(q, state);
    if (s.cur > 0)
        return fwi_sat64((fwi_i128)(s.k + 2) * q->window_ns);
    if (s.prev > 0)
        return fwi_sat64((fwi_i128)(s.k + 1) * q->window_ns);
    return 0;
}

uint64_t fwi_sliding_window_refund(const fw_quota_t *q, uint64_t state,
                                  int64_t at, int64_t cost)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    sliding_packed_t s = unpack(q, state);
    uint64_t k = s.k, p = s.prev, c = s.cur;
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
