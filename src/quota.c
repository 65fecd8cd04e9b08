/*
 * quota.c - turns (algorithm, rate, period, burst) into the integer maths
 * of docs/algorithms.md.
 * Invariant: a quota that passes fw_quota_init can never overflow the
 * 64-bit state of its algorithm for any now in [0, INT64_MAX].
 */
#include <string.h>

#include "internal.h"



/* Does ((INT64_MAX / w + 1) * mult) fit in an unsigned 64-bit state? */
static int packed_state_fits(int64_t w, fwi_u128 mult)
{
    fwi_u128 windows = (fwi_u128)(INT64_MAX / w) + 1;
    return windows * mult <= (fwi_u128)UINT64_MAX;
}

int fw_quota_init(fw_quota_t *q, fw_algorithm_t algorithm, int64_t rate,
                  int64_t period_ns, int64_t burst)
{
    if (!q)
        return FW_EINVAL;
    if ((int)algorithm < 0 || algorithm >= FW_ALGORITHM_COUNT)
        return FW_EINVAL;
    if (rate < 1 || period_ns < 1 || burst < 0 || rate > period_ns)
        return FW_EINVAL;
    if (burst == 0)
        burst = rate;

    int64_t interval = period_ns / rate + (period_ns % rate != 0);
    fwi_u128 tau = (fwi_u128)interval * (fwi_u128)burst;
    if (tau > (fwi_u128)FW_TAU_MAX)
        return FW_ERANGE;
    fwi_u128 pb = (fwi_u128)period_ns * (fwi_u128)burst;
    fwi_u128 window = pb / (fwi_u128)rate + (pb % (fwi_u128)rate != 0);
    if (window > (fwi_u128)INT64_MAX)
        return FW_ERANGE;

    fwi_u128 b1 = (fwi_u128)burst + 1;
    switch (algorithm) {
    case FW_FIXED_WINDOW:
        if (!packed_state_fits((int64_t)window, b1))
            return FW_ERANGE;
        break;
    case FW_SLIDING_WINDOW:
        if (b1 * b1 > (fwi_u128)UINT64_MAX ||
            !packed_state_fits((int64_t)window, b1 * b1))
            return FW_ERANGE;
        break;
    case FW_SLIDING_LOG:
        if (burst > FW_LOG_CAPACITY_MAX)
            return FW_ERANGE;
        break;
    default:
        break;
    }

    memset(q, 0, sizeof(*q));
    q->algorithm = algorithm;
    q->rate = rate;
    q->period_ns = period_ns;
    q->burst = burst;
    q->interval_ns = interval;
    q->tau_ns = (int64_t)tau;
    q->window_ns = (int64_t)window;
    return 0;
}
