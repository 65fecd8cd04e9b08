/*
 * internal.h - helpers shared by the engine's files (not installed).
 * Invariant: nothing here is visible outside the shared library.
 */
#ifndef FW_INTERNAL_H
#define FW_INTERNAL_H

#include <stdint.h>

#include "floodwall.h"

typedef unsigned __int128 fwi_u128;
typedef __int128 fwi_i128;

#define FWI_TIME_MAX INT64_MAX

static inline int64_t fwi_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Clamp a 128-bit signed value into int64 (saturating). */
static inline int64_t fwi_sat64(fwi_i128 v)
{
    if (v > (fwi_i128)INT64_MAX)
        return INT64_MAX;
    if (v < (fwi_i128)INT64_MIN)
        return INT64_MIN;
    return (int64_t)v;
}

/* Clamp a non-negative 128-bit value into int64 (saturating). */
static inline int64_t fwi_sat64u(fwi_u128 v)
{
    return v > (fwi_u128)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* a * b for a, b >= 0, saturated at INT64_MAX (in 64 bits: no 128-bit
 * product). */
static inline int64_t fwi_mul_sat64(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

/* Validate the arguments shared by every algorithm step. */
static inline int fwi_check_step_args(const fw_quota_t *q, int64_t now,
                                     int64_t cost, const fw_decision_t *d)
{
    if (!q || !d || now < 0 || cost < 0)
        return FW_EINVAL;
    if (cost > q->burst)
        return FW_ECOST;
    return 0;
}

/* A stored state is clamped when it demands a wait longer than its policy
 * can produce by more than max(the policy's horizon, this): a clock
 * excursion, or damage. A caller whose clock read is merely late (a stalled
 * thread) never gets there, so a clamp never gives back units that another
 * caller's commit consumed. */
#define FWI_CLAMP_SLACK_NS ((int64_t)1000 * 1000 * 1000)

/* max(horizon, FWI_CLAMP_SLACK_NS) */
static inline int64_t fwi_clamp_slack(int64_t horizon)
{
    return horizon > FWI_CLAMP_SLACK_NS ? horizon : FWI_CLAMP_SLACK_NS;
}

/* What a stored state is, compared with what the algorithm can produce at
 * `now` (docs/algorithms.md, "States the engine does not trust"). */
typedef enum fwi_verdict {
    FWI_STATE_OK = 0,
    FWI_STATE_AHEAD = 1,     /* further ahead of now than the policy allows:
                                clamped (a clock excursion, or damage)     */
    FWI_STATE_IMPOSSIBLE = 2 /* no clock could have produced it: damaged,
                                replaced by "full at now"                  */
} fwi_verdict_t;

/* Each 64-bit-state algorithm (src/algo/) provides: `sanitize` (bring a
 * stored state within what the algorithm can produce at `now`, in place,
 * and say what it was), `decide` for a cost >= 1 (arguments already
 * checked, state sanitized; *next is the state to keep), `reset_after` of
 * an untouched state, `fresh_at` and `refund`. */
#define FWI_DECLARE_ALGORITHM(name)                                             \
    fwi_verdict_t fwi_##name##_sanitize(const fw_quota_t *q, uint64_t *state,  \
                                        int64_t now);                          \
    void fwi_##name##_decide(const fw_quota_t *q, uint64_t state, int64_t now,  \
                            int64_t cost, uint64_t *next, fw_decision_t *d);   \
    int64_t fwi_##name##_reset_after(const fw_quota_t *q, uint64_t state,       \
                                    int64_t now);                              \
    int64_t fwi_##name##_fresh_at(const fw_quota_t *q, uint64_t state);         \
    uint64_t fwi_##name##_refund(const fw_quota_t *q, uint64_t state,           \
                                int64_t at, int64_t cost);

FWI_DECLARE_ALGORITHM(gcra)
/* fwi_gcra_decide's verdict alone (1 admitted) and the same *next, with
 * none of the decision's waits: no division (an allow() asks nothing else). */
int fwi_gcra_admit(const fw_quota_t *q, uint64_t tat, int64_t now, int64_t cost,
                   uint64_t *next);
/* The windowed algorithms (a packed state with an expiry of its own) also
 * provide `decide_fresh`: decide, also setting *fresh_at, when it admits,
 * to fresh_at(*next), known without unpacking *next; and `admit`: its
 * verdict alone (1 admitted), the same *next and *fresh_at, with none of
 * the decision's waits (what an allow() asks). */
#define FWI_DECLARE_WINDOWED(name)                                              \
    FWI_DECLARE_ALGORITHM(name)                                                 \
    void fwi_##name##_decide_fresh(const fw_quota_t *q, uint64_t state,         \
                                   int64_t now, int64_t cost, uint64_t *next,   \
                                   fw_decision_t *d, int64_t *fresh_at);        \
    int fwi_##name##_admit(const fw_quota_t *q, uint64_t state, int64_t now,    \
                           int64_t cost, uint64_t *next, int64_t *fresh_at);
FWI_DECLARE_WINDOWED(fixed_window)
FWI_DECLARE_WINDOWED(sliding_window)

/* fw_algo_step, also saying what the stored state was (*verdict). When the
 * state was not FWI_STATE_OK and cost >= 1, *next is the repaired state even
 * on a denial (a repair, never a consumption); a peek never changes it. */
int fwi_algo_step(const fw_quota_t *q, uint64_t state, int64_t now, int64_t cost,
                  uint64_t *next, fw_decision_t *d, fwi_verdict_t *verdict);

/* The decision on a sliding log that is full at `now` (a damaged log is
 * decided so: one entry of B units at now), for any cost >= 0. */
void fwi_log_full_decision(const fw_quota_t *q, fw_decision_t *d);

/* Is this quota's state a GCRA TAT (gcra, token_bucket, both leaky buckets)? */
static inline int fwi_algo_is_gcra(const fw_quota_t *q)
{
    return q->algorithm == FW_GCRA || q->algorithm == FW_TOKEN_BUCKET ||
           q->algorithm == FW_LEAKY_BUCKET || q->algorithm == FW_LEAKY_BUCKET_SHAPING;
}

/* Undo an admitted GCRA commit of `cost` units that stored `committed`,
 * given `seen` (the latest `now` any commit of the slot made, raised before
 * its CAS) and the slot's current TAT `state`: returns the refunded TAT. A
 * commit made later at a time past this one's start (max(tat, now)) has
 * already forgiven part of this debt, which is not given back twice. */
uint64_t fwi_gcra_refund_committed(const fw_quota_t *q, uint64_t state,
                                   uint64_t committed, int64_t seen, int64_t cost);

/* The sliding-log step; with append == 0 it decides (and prunes the view)
 * without writing the new entry: the table publishes it itself. With
 * repair != 0 it may rewrite entries in place to bring the log within what
 * the algorithm can produce (the caller holds the log's lock); otherwise it
 * only decides as if it had. *verdict says what the log was. */
int fwi_log_eval(const fw_quota_t *q, fw_log_t *log, int64_t now, int64_t cost,
                 fw_decision_t *d, int append, int repair, fwi_verdict_t *verdict);

/* Put back in front of the view the entries that fwi_log_eval dropped as
 * dead (a recount or a prune) from the extent (head0, len0) it started
 * from, adding their units to the running total: so that a recount can be
 * published without moving the extent's front. Returns 0, leaving the view
 * as it is, when those entries are not an intact, time-ordered prefix of
 * the kept ones (a repair rewrote the log: it is published as repaired). */
int fwi_log_restore_front(const fw_quota_t *q, fw_log_t *log, uint32_t head0,
                          uint32_t len0);

/* Publish a log's extent and running total (the table: one store of the
 * slot's log_pos); NULL for a caller-owned log that nobody else reads. */
typedef void (*fwi_log_publish_fn)(void *ctx, const fw_log_t *log);

/* Append an admitted entry of `cost` units at `now` in time order (the
 * caller checked it fits), publishing so that a crash at any point leaves a
 * log whose units are at least its entries' sum and no gap. */
void fwi_log_insert(fw_log_t *log, int64_t now, int64_t cost, fwi_log_publish_fn pub,
                    void *ctx);

/* Remove up to `cost` units appended at `at` (rollback), publishing as
 * fwi_log_insert does. */
void fwi_log_remove(fw_log_t *log, int64_t at, int64_t cost, fwi_log_publish_fn pub,
                    void *ctx);

/* A peek (cost 0) expressed through a cost-1 step, as docs/algorithms.md
 * defines it: `one` is the cost-1 decision, `still` the state's own reset. */
static inline void fwi_peek_from(fw_decision_t *d, const fw_decision_t *one,
                                int64_t reset_after_ns)
{
    *d = *one;
    if (one->allowed)
        d->remaining = one->remaining + 1;
    d->reset_after_ns = reset_after_ns;
}

#endif
