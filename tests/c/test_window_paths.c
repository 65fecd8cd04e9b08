/*
 * test_window_paths.c - the table's two short cuts into each windowed
 * algorithm (fixed_window, sliding_window): `admit` (an allowed-only check)
 * and `decide_fresh` (a check that also says when the state it wrote is
 * fresh), which locate now's window from the stored window's start rather
 * than by dividing now by W.
 * Invariant checked: on states around every window edge (now just before,
 * at and after the stored window's start, its end, the next one's end, far
 * later, a start past INT64_MAX, and now at and just past the clamp's reach
 * before the start), both give fw_algo_step's verdict and
 * next state, decide_fresh its whole decision; the fresh time they give is
 * fw_algo_fresh_at of the state written; an admission is counted in now's
 * window (now / W) whenever the stored window is not ahead of now.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "internal.h"

#define S_NS 1000000000LL

typedef struct windowed {
    fwi_verdict_t (*sanitize)(const fw_quota_t *, uint64_t *, int64_t);
    int (*admit)(const fw_quota_t *, uint64_t, int64_t, int64_t, uint64_t *, int64_t *);
    void (*decide_fresh)(const fw_quota_t *, uint64_t, int64_t, int64_t, uint64_t *,
                         fw_decision_t *, int64_t *);
    int packed_counts; /* fields below k: 1 (count) or 2 (prev, cur) */
} windowed_t;

static const windowed_t fixed_window = {fwi_fixed_window_sanitize, fwi_fixed_window_admit,
                                        fwi_fixed_window_decide_fresh, 1};
static const windowed_t sliding_window = {fwi_sliding_window_sanitize,
                                          fwi_sliding_window_admit,
                                          fwi_sliding_window_decide_fresh, 2};

static uint64_t window_of(const fw_quota_t *q, const windowed_t *a, uint64_t state)
{
    uint64_t b1 = (uint64_t)q->burst + 1;
    return a->packed_counts == 1 ? state / b1 : state / b1 / b1;
}

static void check_state(const fw_quota_t *q, const windowed_t *a, uint64_t state,
                        int64_t now, int64_t cost)
{
    fw_decision_t want, got;
    memset(&want, 0, sizeof(want));
    memset(&got, 0, sizeof(got));
    uint64_t want_next, next_admit = 1, next_decide = 2, clean = state;
    if (fw_algo_step(q, state, now, cost, &want_next, &want) != 0)
        return; /* a time or cost the step refuses: nothing to compare */
    a->sanitize(q, &clean, now);
    int64_t fresh_admit = -1, fresh_decide = -1;
    int admitted = a->admit(q, clean, now, cost, &next_admit, &fresh_admit);
    a->decide_fresh(q, clean, now, cost, &next_decide, &got, &fresh_decide);
    CHECK(admitted == want.allowed && next_admit == want_next,
          "admit: algo %d, B %lld, state %llu, now %lld, cost %lld", q->algorithm,
          (long long)q->burst, (unsigned long long)state, (long long)now, (long long)cost);
    CHECK(memcmp(&got, &want, sizeof(got)) == 0 && next_decide == want_next,
          "decide_fresh: algo %d, B %lld, state %llu, now %lld, cost %lld", q->algorithm,
          (long long)q->burst, (unsigned long long)state, (long long)now, (long long)cost);
    if (!want.allowed)
        return;
    int64_t fresh = fw_algo_fresh_at(q, want_next);
    CHECK(fresh_admit == fresh && fresh_decide == fresh, "fresh at %lld: %lld, %lld",
          (long long)fresh, (long long)fresh_admit, (long long)fresh_decide);
    uint64_t k_stored = window_of(q, a, clean), k_written = window_of(q, a, want_next);
    uint64_t k_now = (uint64_t)(now / q->window_ns);
    CHECK(k_written == (k_stored > k_now ? k_stored : k_now), "window %llu, now's %llu",
          (unsigned long long)k_written, (unsigned long long)k_now);
}

/* Every count (or (prev, cur)) of interest, at times around the edges of
 * window ks. */
static void check_edges(const fw_quota_t *q, const windowed_t *a, uint64_t ks)
{
    int64_t w = q->window_ns, b = q->burst;
    uint64_t b1 = (uint64_t)b + 1;
    int64_t counts[4] = {0, 1, b / 2, b};
    fwi_i128 start = (fwi_i128)ks * w;
    fwi_i128 reach = start - fwi_clamp_slack(w); /* before it: a clock excursion */
    fwi_i128 at[] = {reach - 1, reach, start - 1, start, start + 1, start + w / 2,
                     start + w - 1, start + w, start + w + 1, start + 2 * (fwi_i128)w - 1,
                     start + 2 * (fwi_i128)w, start + 5 * (fwi_i128)w + 3,
                     (fwi_i128)INT64_MAX};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        if (at[i] < 0 || at[i] > INT64_MAX)
            continue;
        for (int p = 0; p < 4; p++)
            for (int c = 0; c < 4; c++) {
                if (a->packed_counts == 1 && p > 0)
                    break; /* one count: counts[c] */
                uint64_t state = a->packed_counts == 1
                                     ? ks * b1 + (uint64_t)counts[c]
                                     : (ks * b1 + (uint64_t)counts[p]) * b1 + (uint64_t)counts[c];
                check_state(q, a, state, (int64_t)at[i], 1);
                check_state(q, a, state, (int64_t)at[i], b);
                if (b > 2)
                    check_state(q, a, state, (int64_t)at[i], b / 2 + 1);
            }
    }
}

int main(void)
{
    /* (rate, period, burst): one-second windows, a day, microsecond windows, a
     * large capacity, a window longer than the 1 s clamp slack */
    int64_t quotas[][3] = {{5, S_NS, 0},   {1000, 86400 * S_NS, 0}, {3, 1000, 0},
                           {1, 1000, 0},   {60000, 60 * S_NS, 0},  {10, S_NS, 4},
                           {2, 3600 * S_NS, 0}};
    const windowed_t *algos[2] = {&fixed_window, &sliding_window};
    fw_algorithm_t ids[2] = {FW_FIXED_WINDOW, FW_SLIDING_WINDOW};
    for (size_t i = 0; i < 2 * sizeof(quotas) / sizeof(quotas[0]); i++) {
        fw_quota_t q;
        const int64_t *r = quotas[i / 2];
        const windowed_t *a = algos[i % 2];
        CHECK(fw_quota_init(&q, ids[i % 2], r[0], r[1], r[2]) == 0);
        int64_t w = q.window_ns;
        uint64_t k_max = (uint64_t)(INT64_MAX / w); /* the last window a clock reaches */
        uint64_t windows[] = {0, 1, 2, (uint64_t)(1700000000LL * S_NS / w), k_max - 2,
                              k_max - 1, k_max, k_max + 1};
        for (size_t k = 0; k < sizeof(windows) / sizeof(windows[0]); k++)
            check_edges(&q, a, windows[k]);
    }
    return check_summary();
}
