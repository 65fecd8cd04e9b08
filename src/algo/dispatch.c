/*
 * dispatch.c - the public entry points of the 64-bit-state algorithms:
 * argument checks, the peek (cost 0), and routing to each algorithm.
 * Invariant: token_bucket and both leaky buckets are GCRA maths; every
 * decision is made from a state brought within what the algorithm can
 * produce at `now`; a peek never changes the state.
 */
#include "internal.h"

typedef struct algorithm_ops {
    fwi_verdict_t (*sanitize)(const fw_quota_t *, uint64_t *, int64_t);
    void (*decide)(const fw_quota_t *, uint64_t, int64_t, int64_t, uint64_t *,
                   fw_decision_t *);
    int64_t (*reset_after)(const fw_quota_t *, uint64_t, int64_t);
    int64_t (*fresh_at)(const fw_quota_t *, uint64_t);
    uint64_t (*refund)(const fw_quota_t *, uint64_t, int64_t, int64_t);
} algorithm_ops_t;

#define OPS(name)                                                              \
    {fwi_##name##_sanitize, fwi_##name##_decide, fwi_##name##_reset_after, fwi_##name##_fresh_at,       \
     fwi_##name##_refund}

static const algorithm_ops_t gcra_ops = OPS(gcra);
static const algorithm_ops_t fixed_window_ops = OPS(fixed_window);
static const algorithm_ops_t sliding_window_ops = OPS(sliding_window);

/* NULL for sliding_log, which keeps a log (fw_log_step), and bad values. */
static const algorithm_ops_t *ops_for(const fw_quota_t *q)
{
    switch (q->algorithm) {
    case FW_GCRA:
    case FW_TOKEN_BUCKET:
    case FW_LEAKY_BUCKET:
    case FW_LEAKY_BUCKET_SHAPING:
        return &gcra_ops;
    case FW_FIXED_WINDOW:
        return &fixed_window_ops;
    case FW_SLIDING_WINDOW:
        return &sliding_window_ops;
    default:
        return NULL;
    }
}

int fwi_algo_step(const fw_quota_t *q, uint64_t state, int64_t now, int64_t cost,
                  uint64_t *next, fw_decision_t *d, fwi_verdict_t *verdict)
{
    int rc = fwi_check_step_args(q, now, cost, d);
    if (rc)
        return rc;
    const algorithm_ops_t *ops = ops_for(q);
    if (!ops)
        return FW_EINVAL;
    uint64_t unused, clean = state;
    fwi_verdict_t v = ops->sanitize(q, &clean, now);
    if (verdict)
        *verdict = v;
    if (cost > 0) {
        /* on a denial, decide leaves *next = clean: the repair is kept */
        ops->decide(q, clean, now, cost, next ? next : &unused, d);
        return 0;
    }
    fw_decision_t one = {0}; /* copied whole: no stray padding bytes */
    ops->decide(q, clean, now, 1, &unused, &one);
    fwi_peek_from(d, &one, ops->reset_after(q, clean, now));
    if (next)
        *next = state;
    return 0;
}

int fw_algo_step(const fw_quota_t *q, uint64_t state, int64_t now,
                 int64_t cost, uint64_t *next, fw_decision_t *d)
{
    return fwi_algo_step(q, state, now, cost, next, d, NULL);
}

int64_t fw_algo_fresh_at(const fw_quota_t *q, uint64_t state)
{
    const algorithm_ops_t *ops = q ? ops_for(q) : NULL;
    return ops ? ops->fresh_at(q, state) : 0;
}

uint64_t fw_algo_refund(const fw_quota_t *q, uint64_t state, int64_t at,
                        int64_t cost)
{
    const algorithm_ops_t *ops = q ? ops_for(q) : NULL;
    return ops && cost > 0 ? ops->refund(q, state, at, cost) : state;
}

const char *fw_algorithm_name(fw_algorithm_t a)
{
    switch (a) {
#define FW_ALGORITHM_CASE(name, value, text)                                   \
    case FW_##name:                                                            \
        return text;
        FW_ALGORITHM_MAP(FW_ALGORITHM_CASE)
#undef FW_ALGORITHM_CASE
    default:
        return NULL;
    }
}
