/*
 * test_engine.c - unit tests of the engine: argument checks, the slot table
 * (bounded memory, eviction, full table), all-or-nothing checks, and exact
 * counts under threads. Prints "N passed, M failed"; exits non-zero on any
 * failure.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "internal.h"
#include "table_helpers.h"
#include "floodwall.h"

#define HOUR_NS 3600000000000LL
#define SECOND_NS 1000000000LL

static void test_strerror(void)
{
    CHECK(strcmp(fw_strerror(0), "ok") == 0);
    CHECK(strstr(fw_strerror(FW_EFULL), "full") != NULL);
    CHECK(strstr(fw_strerror(FW_ECOST), "capacity") != NULL);
    CHECK(strcmp(fw_strerror(-999), "unknown error") == 0);
}

static void test_quota_rejects(void)
{
    fw_quota_t q;
    CHECK(fw_quota_init(NULL, FW_GCRA, 1, 1, 0) == FW_EINVAL);
    CHECK(fw_quota_init(&q, (fw_algorithm_t)99, 1, 1, 0) == FW_EINVAL);
    CHECK(fw_quota_init(&q, FW_GCRA, 0, SECOND_NS, 0) == FW_EINVAL);
    CHECK(fw_quota_init(&q, FW_GCRA, 1, 0, 0) == FW_EINVAL);
    CHECK(fw_quota_init(&q, FW_GCRA, 1, SECOND_NS, -1) == FW_EINVAL);
    CHECK(fw_quota_init(&q, FW_GCRA, 10, 5, 0) == FW_EINVAL);
    CHECK(fw_quota_init(&q, FW_GCRA, 1, INT64_MAX, 2) == FW_ERANGE);
    CHECK(fw_quota_init(&q, FW_SLIDING_LOG, 100000, SECOND_NS, 0) == FW_ERANGE);
    CHECK(fw_quota_init(&q, FW_GCRA, 3, SECOND_NS, 0) == 0);
    CHECK(q.interval_ns == 333333334 && q.burst == 3 && q.window_ns == SECOND_NS);
}

static void test_step_rejects(void)
{
    fw_quota_t q;
    fw_decision_t d;
    uint64_t next;
    fw_quota_init(&q, FW_GCRA, 5, SECOND_NS, 0);
    CHECK(fw_algo_step(&q, 0, 0, 6, &next, &d) == FW_ECOST);
    CHECK(fw_algo_step(&q, 0, -1, 1, &next, &d) == FW_EINVAL);
    CHECK(fw_algo_step(&q, 0, 0, -1, &next, &d) == FW_EINVAL);
    CHECK(fw_algo_step(NULL, 0, 0, 1, &next, &d) == FW_EINVAL);
    CHECK(fw_algo_step(&q, 0, 0, 1, &next, NULL) == FW_EINVAL);
    CHECK(fw_algo_step(&q, 0, 0, 5, &next, &d) == 0 && d.allowed && d.remaining == 0);
}

/* Decision fields saturate instead of wrapping (windows near 2^62 ns); a
 * state stored at the end of time and read at 0 (a clock stepped far back)
 * is clamped: it demands no more than the policy can (docs/algorithms.md). */
static void test_saturation(void)
{
    fw_quota_t q;
    fw_decision_t d;
    uint64_t s = 0, next;
    CHECK(fw_quota_init(&q, FW_SLIDING_WINDOW, 1, (int64_t)1 << 62, 1) == 0);
    CHECK(fw_algo_step(&q, 0, 0, 1, &next, &d) == 0 && d.reset_after_ns == INT64_MAX);
    CHECK(fw_quota_init(&q, FW_GCRA, 1, (int64_t)1 << 62, 1) == 0);
    fw_algo_step(&q, 0, INT64_MAX, 1, &s, &d);
    CHECK(fw_algo_step(&q, s, 0, 1, &next, &d) == 0 && !d.allowed && d.remaining == 0);
    CHECK(d.retry_after_ns == q.interval_ns && d.reset_after_ns == q.tau_ns);
    CHECK(next == (uint64_t)q.tau_ns, "the clamp is kept: %llu", (unsigned long long)next);
    CHECK(fw_quota_init(&q, FW_FIXED_WINDOW, 1, 10, 1) == 0);
    fw_algo_step(&q, 0, INT64_MAX - 5, 1, &s, &d);
    CHECK(fw_algo_step(&q, s, 0, 1, &next, &d) == 0 && !d.allowed);
    CHECK(d.retry_after_ns == 10 && d.reset_after_ns == 10);
}

static void test_table_args(void)
{
    fw_table_options_t opt = {0, 0};
    fw_table_t *t = NULL;
    CHECK(fw_table_open_memory(&t, &opt) == FW_EINVAL && t == NULL);
    opt.max_keys = 16;
    opt.log_capacity = FW_LOG_CAPACITY_MAX + 1;
    CHECK(fw_table_open_memory(&t, &opt) == FW_EINVAL);
    opt.log_capacity = 0;
    CHECK(fw_table_open_memory(&t, &opt) == 0 && t != NULL);
    fw_limit_t l = limit_of(FW_GCRA, 5, SECOND_NS, 0, 1);
    fw_decision_t d;
    size_t v;
    fw_request_t r = {&l, "k", 1};
    CHECK(fw_table_check(t, &r, 0, 1, 0, &d, &v) == FW_EINVAL);
    CHECK(fw_table_check(t, &r, 1, -1, 0, &d, &v) == FW_EINVAL);
    CHECK(fw_table_check(t, &r, 1, 1, -5, &d, &v) == FW_EINVAL);
    CHECK(fw_table_check(t, &r, 1, 6, 0, &d, &v) == FW_ECOST);
    fw_limit_t log = limit_of(FW_SLIDING_LOG, 5, SECOND_NS, 0, 2);
    fw_request_t lr = {&log, "k", 1};
    CHECK(fw_table_check(t, &lr, 1, 1, 0, &d, &v) == FW_EINVAL); /* no log room */
    fw_table_close(t);
    fw_table_close(NULL);
}

/* 10x max_keys distinct keys: the table never grows; a full table of live
 * keys says FW_EFULL; expired keys are reclaimed. */
static void test_bounded_memory(void)
{
    fw_table_options_t opt = {1000, 0};
    fw_table_t *t;
    CHECK(fw_table_open_memory(&t, &opt) == 0);
    fw_table_stats_t st0, st;
    fw_table_stats(t, 0, &st0);
    fw_limit_t l = limit_of(FW_GCRA, 10, HOUR_NS, 0, 7);
    int full = 0, ok = 0;
    char key[32];
    for (int i = 0; i < 10000; i++) {
        fw_decision_t d;
        snprintf(key, sizeof key, "key-%d", i);
        int rc = check1(t, &l, key, 1, 1000, &d);
        if (rc == FW_EFULL)
            full++;
        else if (rc == 0 && d.allowed)
            ok++;
    }
    fw_table_stats(t, 1000, &st);
    CHECK(st.slots == st0.slots);        /* never grows */
    CHECK(st.used <= st.slots);
    CHECK(ok >= 1000);                   /* max_keys keys always fit */
    CHECK(full > 0 && full == 10000 - ok);
    CHECK(st.full_errors == (uint64_t)full);
    /* an existing key is still served while the table is full */
    fw_decision_t d;
    CHECK(check1(t, &l, "key-0", 1, 1000, &d) == 0 && d.allowed && d.remaining == 8);
    /* once states are fresh again (an hour later), new keys reclaim slots */
    int reclaimed = 0;
    for (int i = 10000; i < 20000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        if (check1(t, &l, key, 1, 2 * HOUR_NS, &d) == 0 && d.allowed)
            reclaimed++;
    }
    fw_table_stats(t, 2 * HOUR_NS, &st);
    CHECK(reclaimed >= 1000);
    CHECK(st.slots == st0.slots);
    fw_table_close(t);
}

/* If one part denies, nothing is consumed anywhere. */
static void test_all_or_nothing(void)
{
    fw_table_options_t opt = {64, 16};
    fw_table_t *t;
    CHECK(fw_table_open_memory(&t, &opt) == 0);
    fw_limit_t user = limit_of(FW_GCRA, 10, HOUR_NS, 0, 1);
    fw_limit_t org = limit_of(FW_FIXED_WINDOW, 3, HOUR_NS, 0, 2);
    fw_limit_t log = limit_of(FW_SLIDING_LOG, 16, HOUR_NS, 0, 3);
    fw_request_t reqs[3] = {{&user, "alice", 5}, {&org, "acme", 4}, {&log, "alice", 5}};
    fw_decision_t out[3];
    size_t v;
    for (int i = 0; i < 3; i++) {
        CHECK(fw_table_check(t, reqs, 3, 1, 0, out, &v) == 0);
        CHECK(v == 3 && out[0].allowed && out[1].allowed && out[2].allowed);
    }
    CHECK(fw_table_check(t, reqs, 3, 1, 0, out, &v) == 0);
    CHECK(v == 1 && !out[1].allowed);
    fw_decision_t d;
    CHECK(check1(t, &user, "alice", 0, 0, &d) == 0 && d.remaining == 7);
    CHECK(fw_table_peek(t, &log, "alice", 5, 0, &d) == 0 && d.remaining == 13);
    fw_table_close(t);
}

typedef struct hammer {
    fw_table_t *t;
    const fw_limit_t *limits;
    size_t nlimits;
    int iterations;
    int admitted;
} hammer_t;

static void *hammer_run(void *arg)
{
    hammer_t *h = arg;
    fw_request_t reqs[4];
    fw_decision_t out[4];
    for (size_t i = 0; i < h->nlimits; i++) {
        reqs[i].limit = &h->limits[i];
        reqs[i].key = i == 0 ? "hot" : "org";
        reqs[i].key_len = 3;
    }
    for (int i = 0; i < h->iterations; i++) {
        size_t v;
        if (fw_table_check(h->t, reqs, h->nlimits, 1, 1000 + i, out, &v) == 0 &&
            v == h->nlimits)
            h->admitted++;
    }
    return NULL;
}

static int hammer(fw_table_t *t, const fw_limit_t *limits, size_t n, int threads,
                  int iterations)
{
    pthread_t tid[16];
    hammer_t h[16];
    int total = 0;
    for (int i = 0; i < threads; i++) {
        h[i] = (hammer_t){t, limits, n, iterations, 0};
        pthread_create(&tid[i], NULL, hammer_run, &h[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += h[i].admitted;
    }
    return total;
}

/* 8 threads, one key, 1000 per hour: exactly 1000, on every algorithm. */
static void test_threads_exact(void)
{
    for (int a = 0; a < FW_ALGORITHM_COUNT; a++) {
        fw_table_options_t opt = {64, 1000};
        fw_table_t *t;
        CHECK(fw_table_open_memory(&t, &opt) == 0);
        fw_limit_t l = limit_of((fw_algorithm_t)a, 1000, HOUR_NS, 0, 9);
        int admitted = hammer(t, &l, 1, 8, 400);
        if (admitted != 1000)
            fprintf(stderr, "algorithm %d admitted %d\n", a, admitted);
        CHECK(admitted == 1000);
        fw_table_close(t);
    }
    /* all-or-nothing under threads: the tighter limit decides exactly */
    fw_table_options_t opt = {64, 0};
    fw_table_t *t;
    CHECK(fw_table_open_memory(&t, &opt) == 0);
    fw_limit_t pair[2] = {limit_of(FW_GCRA, 1000, HOUR_NS, 0, 1),
                          limit_of(FW_FIXED_WINDOW, 700, HOUR_NS, 0, 2)};
    CHECK(hammer(t, pair, 2, 8, 400) == 700);
    fw_decision_t d;
    CHECK(check1(t, &pair[0], "hot", 0, 2000, &d) == 0 && d.remaining == 300);
    fw_table_close(t);
}

static void test_reset_and_clear(void)
{
    fw_table_options_t opt = {64, 8};
    fw_table_t *t;
    CHECK(fw_table_open_memory(&t, &opt) == 0);
    fw_limit_t l = limit_of(FW_GCRA, 2, HOUR_NS, 0, 1);
    fw_limit_t g = limit_of(FW_SLIDING_LOG, 2, HOUR_NS, 0, 2);
    fw_decision_t d;
    check1(t, &l, "a", 2, 0, &d);
    check1(t, &g, "a", 2, 0, &d);
    CHECK(check1(t, &l, "a", 1, 0, &d) == 0 && !d.allowed);
    CHECK(fw_table_reset(t, &l, "a", 1) == 0);
    CHECK(fw_table_reset(t, &g, "a", 1) == 0);
    CHECK(check1(t, &l, "a", 2, 0, &d) == 0 && d.allowed);
    CHECK(check1(t, &g, "a", 2, 0, &d) == 0 && d.allowed);
    CHECK(fw_table_clear(t) == 0);
    fw_table_stats_t st;
    CHECK(fw_table_stats(t, 0, &st) == 0 && st.used == 0);
    CHECK(check1(t, &l, "a", 2, 0, &d) == 0 && d.allowed);
    CHECK(fw_table_reset(t, &l, "never-seen", 10) == 0);
    fw_table_close(t);
}

/* fwi_gcra_admit (allow()'s verdict-only step) is fwi_gcra_decide's verdict
 * and next state, on every GCRA-family quota, at the edges of time and
 * cost and on pseudo-random states. */
static void test_gcra_admit_is_decide(void)
{
    static const fw_algorithm_t algos[] = {FW_GCRA, FW_TOKEN_BUCKET, FW_LEAKY_BUCKET,
                                           FW_LEAKY_BUCKET_SHAPING};
    static const int64_t nows[] = {0, 1, 999, 1000000000LL, INT64_MAX / 2, INT64_MAX - 1,
                                   INT64_MAX};
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int mismatches = 0;
    for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
        fw_limit_t l = limit_of(algos[a], 7, 3000000000LL, 10, 1);
        const fw_quota_t *q = &l.quota;
        for (size_t n = 0; n < sizeof(nows) / sizeof(nows[0]); n++) {
            for (int i = 0; i < 2000; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                int64_t now = nows[n];
                uint64_t tat = i % 4 == 0 ? 0
                               : i % 4 == 1 ? (uint64_t)now + x % (uint64_t)(2 * q->tau_ns)
                               : i % 4 == 2 ? (uint64_t)now - x % (uint64_t)(2 * q->tau_ns)
                                            : x;
                int64_t cost = 1 + (int64_t)(x % (uint64_t)q->burst);
                uint64_t s1 = tat, s2 = tat, n1 = 1, n2 = 2;
                fwi_gcra_sanitize(q, &s1, now);
                fwi_gcra_sanitize(q, &s2, now);
                fw_decision_t d;
                fwi_gcra_decide(q, s1, now, cost, &n1, &d);
                int ok = fwi_gcra_admit(q, s2, now, cost, &n2);
                mismatches += ok != d.allowed || n1 != n2;
            }
        }
    }
    CHECK(mismatches == 0, "%d mismatches", mismatches);
}

/* The sliding window with no previous count (its fast path) decides as the
 * weighted formula does: admit iff (cur + cost) * W <= B * W, remaining
 * (B*W - cur*W) / W, and the state packs (k, 0, cur). */
static void test_sliding_window_without_prev(void)
{
    uint64_t x = 0x2545f4914f6cdd1dULL;
    int mismatches = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t b = 1 + (int64_t)(x % 300);
        int64_t period = 1000 + (int64_t)((x >> 9) % 100000000000LL);
        fw_limit_t l = limit_of(FW_SLIDING_WINDOW, b, period, 0, 1);
        const fw_quota_t *q = &l.quota;
        int64_t w = q->window_ns;
        int64_t now = (int64_t)((x >> 3) % (uint64_t)(INT64_MAX / 4));
        int64_t k = now / w;
        int64_t cur = (int64_t)((x >> 17) % (uint64_t)(b + 1));
        uint64_t b1 = (uint64_t)b + 1;
        uint64_t state = ((uint64_t)k * b1 + 0) * b1 + (uint64_t)cur;
        int64_t cost = 1 + (int64_t)((x >> 29) % (uint64_t)b);
        fw_decision_t d;
        uint64_t next;
        fwi_sliding_window_decide(q, state, now, cost, &next, &d);
        int allowed = (__int128)(cur + cost) * w <= (__int128)b * w;
        int64_t after = allowed ? cur + cost : cur;
        __int128 left = ((__int128)b * w - (__int128)after * w) / w;
        mismatches += d.allowed != allowed || d.remaining != (left > 0 ? (int64_t)left : 0) ||
                      next != (allowed ? ((uint64_t)k * b1) * b1 + (uint64_t)after : state);
    }
    CHECK(mismatches == 0, "%d mismatches", mismatches);
}

int main(void)
{
    test_gcra_admit_is_decide();
    test_sliding_window_without_prev();
    test_strerror();
    test_quota_rejects();
    test_step_rejects();
    test_saturation();
    test_table_args();
    test_bounded_memory();
    test_all_or_nothing();
    test_threads_exact();
    test_reset_and_clear();
    return check_summary();
}
