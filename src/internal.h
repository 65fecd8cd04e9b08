/*
 * internal.h - helpers shared by the engine's files (not installed).
 * Invariant: nothing here is visible outside the shared library.
 */
#ifndef FW_INTERNAL_H
#define FW_INTERNAL_H

#include <stdint.h>

#include "floodwall.h"

typedef unsigned __int128 fw_u128;
typedef __int128 fw_i128;

#define FW_TIME_MAX INT64_MAX

static inline int64_t fw_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Clamp a 128-bit signed value into int64 (saturating). */
static inline int64_t fw_sat64(fw_i128 v)
{
    if (v > (fw_i128)INT64_MAX)
        return INT64_MAX;
    if (v < (fw_i128)INT64_MIN)
        return INT64_MIN;
    return (int64_t)v;
}

/* Clamp a non-negative 128-bit value into int64 (saturating). */
static inline int64_t fw_sat64u(fw_u128 v)
{
    return v > (fw_u128)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Validate the arguments shared by every algorithm step. */
static inline int fw_check_step_args(const fw_quota_t *q, int64_t now,
                                     int64_t cost, const fw_decision_t *d)
{
    if (!q || !d || now < 0 || cost < 0)
        return FW_EINVAL;
    if (cost > q->burst)
        return FW_ECOST;
    return 0;
}

/* Each 64-bit-state algorithm (src/algo/) provides: `decide` for a cost
 * >= 1 (arguments already checked; *next is the state to keep),
 * `reset_after` of an untouched state, `fresh_at` and `refund`. */
#define FW_DECLARE_ALGORITHM(name)                                             \
    void fw_##name##_decide(const fw_quota_t *q, uint64_t state, int64_t now,  \
                            int64_t cost, uint64_t *next, fw_decision_t *d);   \
    int64_t fw_##name##_reset_after(const fw_quota_t *q, uint64_t state,       \
                                    int64_t now);                              \
    int64_t fw_##name##_fresh_at(const fw_quota_t *q, uint64_t state);         \
    uint64_t fw_##name##_refund(const fw_quota_t *q, uint64_t state,           \
                                int64_t at, int64_t cost);

FW_DECLARE_ALGORITHM(gcra)
FW_DECLARE_ALGORITHM(fixed_window)
FW_DECLARE_ALGORITHM(sliding_window)

/* The sliding-log step; with append == 0 it decides (and prunes the view)
 * without writing the new entry: the table publishes it itself. */
int fw_log_eval(const fw_quota_t *q, fw_log_t *log, int64_t now, int64_t cost,
                fw_decision_t *d, int append);

/* A peek (cost 0) expressed through a cost-1 step, as docs/algorithms.md
 * defines it: `one` is the cost-1 decision, `still` the state's own reset. */
static inline void fw_peek_from(fw_decision_t *d, const fw_decision_t *one,
                                int64_t reset_after_ns)
{
    *d = *one;
    if (one->allowed)
        d->remaining = one->remaining + 1;
    d->reset_after_ns = reset_after_ns;
}

#endif
