/*
 * gcra.c - the Generic Cell Rate Algorithm; also serves token_bucket and
 * leaky_bucket (policing and shaping), which are the same maths.
 * Invariant: the state is the theoretical arrival time (TAT); a denial or a
 * peek never changes it, and new_tat - now <= tau after every admission.
 */
#include "internal.h"

/* Decide `cost` >= 1 units. */
void fw_gcra_decide(const fw_quota_t *q, uint64_t tat, int64_t now,
                        int64_t cost, uint64_t *next, fw_decision_t *d)
{
    fw_u128 base = tat > (uint64_t)now ? tat : (uint64_t)now;
    fw_u128 new_tat = base + (fw_u128)cost * (fw_u128)q->interval_ns;
    int64_t tau = q->tau_ns;
    int64_t t = q->interval_ns;

    d->limit = q->burst;
    d->delay_ns = 0;
    /* after a clock step back, base - now can exceed tau: saturate */
    if (new_tat - (fw_u128)now <= (fw_u128)tau) {
        int64_t used = (int64_t)(new_tat - (fw_u128)now);
        d->allowed = 1;
        d->remaining = (tau - used) / t;
        d->retry_after_ns = 0;
        d->reset_after_ns = used;
        if (q->algorithm == FW_LEAKY_BUCKET_SHAPING)
            d->delay_ns = (int64_t)(base - (fw_u128)now);
        *next = (uint64_t)new_tat;
    } else {
        fw_u128 used = base - (fw_u128)now;
        d->allowed = 0;
        d->remaining = used < (fw_u128)tau ? (tau - (int64_t)used) / t : 0;
        d->retry_after_ns = fw_sat64u(new_tat - (fw_u128)tau - (fw_u128)now);
        d->reset_after_ns = fw_sat64u(used);
        *next = tat;
    }
}

int64_t fw_gcra_reset_after(const fw_quota_t *q, uint64_t state, int64_t now)
{
    (void)q;
    uint64_t base = state > (uint64_t)now ? state : (uint64_t)now;
    return fw_sat64u(base - (uint64_t)now);
}

int64_t fw_gcra_fresh_at(const fw_quota_t *q, uint64_t state)
{
    (void)q;
    return state > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)state;
}

uint64_t fw_gcra_refund(const fw_quota_t *q, uint64_t state, int64_t at,
                        int64_t cost)
{
    (void)at;
    fw_u128 back = (fw_u128)cost * (fw_u128)q->interval_ns;
    return (fw_u128)state > back ? (uint64_t)((fw_u128)state - back) : 0;
}
