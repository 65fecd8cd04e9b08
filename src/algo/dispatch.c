/*
 * dispatch.c - the public entry points for the 64-bit-state algorithms,
 * routing each algorithm to its implementation.
 * Invariant: token_bucket and both leaky buckets are GCRA maths.
 */
#include "internal.h"

int fw_algo_step(const fw_quota_t *q, uint64_t state, int64_t now,
                 int64_t cost, uint64_t *next, fw_decision_t *d)
{
    if (!q)
        return FW_EINVAL;
    switch (q->algorithm) {
    case FW_GCRA:
    case FW_TOKEN_BUCKET:
    case FW_LEAKY_BUCKET:
    case FW_LEAKY_BUCKET_SHAPING:
        return fw_gcra_step(q, state, now, cost, next, d);
    case FW_FIXED_WINDOW:
        return fw_fixed_window_step(q, state, now, cost, next, d);
    case FW_SLIDING_WINDOW:
        return fw_sliding_window_step(q, state, now, cost, next, d);
    default:
        return FW_EINVAL; /* sliding_log keeps a log: fw_log_step */
    }
}

int64_t fw_algo_fresh_at(const fw_quota_t *q, uint64_t state)
{
    if (!q)
        return 0;
    switch (q->algorithm) {
    case FW_FIXED_WINDOW:
        return fw_fixed_window_fresh_at(q, state);
    case FW_SLIDING_WINDOW:
        return fw_sliding_window_fresh_at(q, state);
    case FW_SLIDING_LOG:
        return 0;
    default:
        return fw_gcra_fresh_at(q, state);
    }
}

uint64_t fw_algo_refund(const fw_quota_t *q, uint64_t state, int64_t at,
                        int64_t cost)
{
    if (!q || cost <= 0)
        return state;
    switch (q->algorithm) {
    case FW_FIXED_WINDOW:
        return fw_fixed_window_refund(q, state, at, cost);
    case FW_SLIDING_WINDOW:
        return fw_sliding_window_refund(q, state, at, cost);
    case FW_SLIDING_LOG:
        return state;
    default:
        return fw_gcra_refund(q, state, at, cost);
    }
}
