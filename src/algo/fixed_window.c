/*
 * fixed_window.c - a counter per window [k*W, (k+1)*W), aligned on time 0.
 * Invariant: the state packs (k, count) as k*(B+1) + count, and count <= B;
 * a clock stepping back keeps the stored window (it never refills), unless
 * the stored window starts more than max(W, 1 s) after now (a clock excursion,
 * or damage): then its count is carried into now's window.
 */
#include "internal.h"

typedef struct window_view {
    int64_t k;     /* window index in force                */
    int64_t count; /* units consumed in it                 */
} window_view_t;

/* The view at `now`, located from the stored window's start: no division
 * by W unless now is two windows or more past it (k_now = now / W otherwise
 * is the stored window, or the next). A stored window ahead of now stays
 * in force (a clock stepping back never refills). */
static inline window_view_t view_at(const fw_quota_t *q, uint64_t state, int64_t now)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    window_view_t v = {(int64_t)(state / b1), (int64_t)(state % b1)}; /* k < 2^63 */
    int64_t w = q->window_ns, start, into;
    /* ns since the stored window started (negative: it starts after now) */
    if (__builtin_mul_overflow(v.k, w, &start))
        into = -1; /* it starts after any clock */
    else
        into = now - start; /* both in [0, INT64_MAX]: no overflow */
    if (into < w) /* k_now <= k: the stored window is in force */
        return v;
    v.k = into - w < w ? v.k + 1 : now / w;
    v.count = 0;
    return v;
}

fwi_verdict_t fwi_fixed_window_sanitize(const fw_quota_t *q, uint64_t *state,
                                        int64_t now)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    uint64_t k = *state / b1, c = *state % b1;
    int64_t w = q->window_ns, start;
    /* the stored window starts more than max(W, 1 s) after now? (a start
     * that fits int64 is compared in 64 bits: start - now cannot overflow) */
    if (__builtin_mul_overflow((int64_t)k, w, &start)
            ? (fwi_i128)k * w - now <= fwi_clamp_slack(w)
            : start - now <= fwi_clamp_slack(w))
        return FWI_STATE_OK;
    uint64_t k_now = (uint64_t)(now / w);
    if (k > (uint64_t)(INT64_MAX / w)) { /* beyond any clock */
        *state = k_now * b1 + (uint64_t)q->burst;     /* full at now */
        return FWI_STATE_IMPOSSIBLE;
    }
    *state = k_now * b1 + c;
    return FWI_STATE_AHEAD;
}

static int64_t window_end_after(const fw_quota_t *q, int64_t k, int64_t now)
{
    return fwi_sat64((fwi_i128)(k + 1) * q->window_ns - now);
}

/* fwi_fixed_window_decide_fresh, *fresh_at set only when admitted */
static inline void decide(const fw_quota_t *q, uint64_t state, int64_t now, int64_t cost,
                          uint64_t *next, fw_decision_t *d, int64_t *fresh_at)
{
    window_view_t v = view_at(q, state, now);
    int64_t b = q->burst;
    d->limit = b;
    d->delay_ns = 0;
    if (v.count + cost <= b) {
        int64_t c = v.count + cost;
        d->allowed = 1;
        d->remaining = b - c;
        d->retry_after_ns = 0;
        d->reset_after_ns = c > 0 ? window_end_after(q, v.k, now) : 0;
        *next = (uint64_t)v.k * (uint64_t)(b + 1) + (uint64_t)c;
        *fresh_at = fwi_mul_sat64(v.k + 1, q->window_ns); /* fresh_at(*next) */
    } else {
        d->allowed = 0;
        d->remaining = b - v.count;
        d->retry_after_ns = window_end_after(q, v.k, now);
        d->reset_after_ns = d->retry_after_ns;
        *next = state;
    }
}

void fwi_fixed_window_decide(const fw_quota_t *q, uint64_t state, int64_t now,
                            int64_t cost, uint64_t *next, fw_decision_t *d)
{
    int64_t unused;
    decide(q, state, now, cost, next, d, &unused);
}

void fwi_fixed_window_decide_fresh(const fw_quota_t *q, uint64_t state, int64_t now,
                                   int64_t cost, uint64_t *next, fw_decision_t *d,
                                   int64_t *fresh_at)
{
    decide(q, state, now, cost, next, d, fresh_at);
}

int fwi_fixed_window_admit(const fw_quota_t *q, uint64_t state, int64_t now,
                           int64_t cost, uint64_t *next, int64_t *fresh_at)
{
    window_view_t v = view_at(q, state, now);
    if (v.count + cost > q->burst) { /* fwi_fixed_window_decide's test */
        *next = state;
        return 0;
    }
    *next = (uint64_t)v.k * (uint64_t)(q->burst + 1) + (uint64_t)(v.count + cost);
    *fresh_at = fwi_mul_sat64(v.k + 1, q->window_ns); /* fresh_at(*next) */
    return 1;
}

int64_t fwi_fixed_window_reset_after(const fw_quota_t *q, uint64_t state,
                                    int64_t now)
{
    window_view_t v = view_at(q, state, now);
    return v.count > 0 ? window_end_after(q, v.k, now) : 0;
}

int64_t fwi_fixed_window_fresh_at(const fw_quota_t *q, uint64_t state)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    if (state % b1 == 0)
        return 0;
    return fwi_sat64((fwi_i128)(state / b1 + 1) * q->window_ns);
}

uint64_t fwi_fixed_window_refund(const fw_quota_t *q, uint64_t state,
                                int64_t at, int64_t cost)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    uint64_t k = state / b1, c = state % b1;
    if (k != (uint64_t)(at / q->window_ns))
        return state; /* that window is over: nothing left to give back */
    c = c > (uint64_t)cost ? c - (uint64_t)cost : 0;
    return k * b1 + c;
}
