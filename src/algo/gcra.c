/*
 * gcra.c - the Generic Cell Rate Algorithm; also serves token_bucket and
 * leaky_bucket (policing and shaping), which are the same maths.
 * Invariant: the state is the theoretical arrival time (TAT); a denial or a
 * peek never consumes, and new_tat - now <= tau after every admission; a
 * TAT more than tau + max(tau, 1 s) ahead of now (a clock excursion, or
 * damage) is clamped to now + tau (full), so no stored state demands much
 * more than the policy can.
 */
#include "internal.h"

fwi_verdict_t fwi_gcra_sanitize(const fw_quota_t *q, uint64_t *tat, int64_t now)
{
    fwi_u128 ahead = (fwi_u128)now + (fwi_u128)q->tau_ns +
                     (fwi_u128)fwi_clamp_slack(q->tau_ns);
    if ((fwi_u128)*tat <= ahead)
        return FWI_STATE_OK;
    fwi_verdict_t v = (fwi_u128)*tat > (fwi_u128)INT64_MAX + (fwi_u128)q->tau_ns
                          ? FWI_STATE_IMPOSSIBLE /* beyond any clock */
                          : FWI_STATE_AHEAD;
    *tat = (uint64_t)now + (uint64_t)q->tau_ns; /* full at now */
    return v;
}

/* Decide `cost` >= 1 units. */
void fwi_gcra_decide(const fw_quota_t *q, uint64_t tat, int64_t now,
                        int64_t cost, uint64_t *next, fw_decision_t *d)
{
    fwi_u128 base = tat > (uint64_t)now ? tat : (uint64_t)now;
    fwi_u128 new_tat = base + (fwi_u128)cost * (fwi_u128)q->interval_ns;
    int64_t tau = q->tau_ns;
    int64_t t = q->interval_ns;

    d->limit = q->burst;
    d->delay_ns = 0;
    /* after a clock step back, base - now can exceed tau: saturate */
    if (new_tat - (fwi_u128)now <= (fwi_u128)tau) {
        int64_t used = (int64_t)(new_tat - (fwi_u128)now);
        d->allowed = 1;
        d->remaining = (tau - used) / t;
        d->retry_after_ns = 0;
        d->reset_after_ns = used;
        if (q->algorithm == FW_LEAKY_BUCKET_SHAPING)
            d->delay_ns = (int64_t)(base - (fwi_u128)now);
        *next = (uint64_t)new_tat;
    } else {
        fwi_u128 used = base - (fwi_u128)now;
        d->allowed = 0;
        d->remaining = used < (fwi_u128)tau ? (tau - (int64_t)used) / t : 0;
        d->retry_after_ns = fwi_sat64u(new_tat - (fwi_u128)tau - (fwi_u128)now);
        d->reset_after_ns = fwi_sat64u(used);
        *next = tat;
    }
}

int fwi_gcra_admit(const fw_quota_t *q, uint64_t tat, int64_t now, int64_t cost,
                   uint64_t *next)
{
    fwi_u128 base = tat > (uint64_t)now ? tat : (uint64_t)now;
    fwi_u128 new_tat = base + (fwi_u128)cost * (fwi_u128)q->interval_ns;
    if (new_tat - (fwi_u128)now <= (fwi_u128)q->tau_ns) {
        *next = (uint64_t)new_tat;
        return 1;
    }
    *next = tat;
    return 0;
}

int64_t fwi_gcra_reset_after(const fw_quota_t *q, uint64_t state, int64_t now)
{
    (void)q;
    uint64_t base = state > (uint64_t)now ? state : (uint64_t)now;
    return fwi_sat64u(base - (uint64_t)now);
}

int64_t fwi_gcra_fresh_at(const fw_quota_t *q, uint64_t state)
{
    (void)q;
    return state > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)state;
}

uint64_t fwi_gcra_refund(const fw_quota_t *q, uint64_t state, int64_t at,
                        int64_t cost)
{
    (void)at;
    fwi_u128 back = (fwi_u128)cost * (fwi_u128)q->interval_ns;
    return (fwi_u128)state > back ? (uint64_t)((fwi_u128)state - back) : 0;
}

uint64_t fwi_gcra_refund_committed(const fw_quota_t *q, uint64_t state,
                                   uint64_t committed, int64_t seen, int64_t cost)
{
    /* The commit made tat = x0 + n*T, x0 = max(old tat, now). A later commit
     * at a time past its tat (max(tat, t) + ...) has forgiven that much of
     * this debt already: giving back all of n*T would return units that
     * request consumed. */
    fwi_u128 debt = (fwi_u128)cost * (fwi_u128)q->interval_ns;
    fwi_u128 x0 = committed > debt ? committed - debt : 0;
    if (seen > 0 && (fwi_u128)seen > x0)
        debt = (fwi_u128)seen - x0 >= debt ? 0 : debt - ((fwi_u128)seen - x0);
    return (fwi_u128)state > debt ? (uint64_t)((fwi_u128)state - debt) : 0;
}
