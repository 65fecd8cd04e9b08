/*
 * test_check_costs.c - fw_table_check_costs: an all-or-nothing check where
 * each part consumes its own cost (check_all([(a, "user", 1), (b, "org",
 * 10)]), issue 11).
 * Invariant checked: each part is charged exactly its own cost, a denial of
 * any part consumes nothing anywhere, a part of cost 0 never writes, and a
 * cost above one part's capacity is FW_ECOST; fw_table_check_one (the
 * one-part hot path) decides, writes and fails exactly as fw_table_check,
 * and with FW_CHECK_ALLOWED_ONLY gives the same verdicts and writes.
 */
#include <stdint.h>

#include "check.h"
#include "table_helpers.h"

#define SECOND_NS 1000000000LL
#define HOUR_NS (3600LL * SECOND_NS)
#define T0 (1700000000LL * SECOND_NS)

static int64_t remaining(fw_table_t *t, const fw_limit_t *l, const char *key)
{
    fw_decision_t d;
    fw_request_t r = {l, key, strlen(key)};
    size_t v;
    int64_t zero = 0;
    if (fw_table_check_costs(t, &r, 1, &zero, T0, &d, &v) != 0)
        return -1;
    return d.remaining;
}

static void test_each_part_pays_its_cost(fw_algorithm_t algo)
{
    fw_table_options_t opt = {1024, algo == FW_SLIDING_LOG ? 100 : 0};
    fw_table_t *t = NULL;
    CHECK(fw_table_open_memory(&t, &opt) == 0);
    fw_limit_t user = limit_of(algo, 10, HOUR_NS, 0, 1);
    fw_limit_t org = limit_of(algo, 100, HOUR_NS, 0, 2);
    fw_request_t reqs[2] = {{&user, "u", 1}, {&org, "o", 1}};
    int64_t costs[2] = {1, 10};
    fw_decision_t out[2];
    size_t violated = 0;

    for (int i = 0; i < 10; i++) {
        CHECK(fw_table_check_costs(t, reqs, 2, costs, T0, out, &violated) == 0);
        CHECK(violated == 2 && out[0].allowed && out[1].allowed, "algo %d, i %d", algo, i);
    }
    CHECK(remaining(t, &user, "u") == 0, "algo %d", algo);
    CHECK(remaining(t, &org, "o") == 0, "algo %d: org paid 10 x 10", algo);

    /* user exhausted: the org part is not charged */
    fw_table_reset(t, &org, "o", 1);
    CHECK(fw_table_check_costs(t, reqs, 2, costs, T0, out, &violated) == 0);
    CHECK(violated == 0 && !out[0].allowed, "algo %d: the user part denied", algo);
    CHECK(remaining(t, &org, "o") == 100, "algo %d: nothing consumed", algo);

    /* org denies a cost of 100 once 10 are used: the user part is not charged */
    fw_table_reset(t, &user, "u", 1);
    int64_t big[2] = {1, 100};
    costs[0] = 0;
    CHECK(fw_table_check_costs(t, reqs, 2, costs, T0, out, &violated) == 0);
    CHECK(violated == 2 && remaining(t, &user, "u") == 10, "algo %d: cost 0 never writes", algo);
    CHECK(fw_table_check_costs(t, reqs, 2, big, T0, out, &violated) == 0);
    CHECK(violated == 1 && !out[1].allowed, "algo %d", algo);
    CHECK(remaining(t, &user, "u") == 10 && remaining(t, &org, "o") == 90, "algo %d", algo);
    /* fw_table_check (one cost for every part) agrees with it */
    fw_decision_t d;
    CHECK(check1(t, &org, "o", 90, T0, &d) == 0 && d.allowed && d.remaining == 0);

    /* a cost above a part's capacity can never pass */
    int64_t over[2] = {11, 1};
    CHECK(fw_table_check_costs(t, reqs, 2, over, T0, out, &violated) == FW_ECOST);
    int64_t negative[2] = {1, -1};
    CHECK(fw_table_check_costs(t, reqs, 2, negative, T0, out, &violated) == FW_EINVAL);
    CHECK(fw_table_check_costs(t, reqs, 2, NULL, T0, out, &violated) == FW_EINVAL);
    fw_table_close(t);
}

/* Twin tables, the same requests: one through fw_table_check, one through
 * fw_table_check_one; every decision and error is the same. */
static void test_check_one_is_check_of_one(fw_algorithm_t algo)
{
    fw_table_options_t opt = {64, algo == FW_SLIDING_LOG ? 8 : 0};
    fw_table_t *a = NULL, *b = NULL, *c = NULL;
    CHECK(fw_table_open_memory(&a, &opt) == 0 && fw_table_open_growing(&b, &opt) == 0 &&
          fw_table_open_memory(&c, &opt) == 0);
    fw_limit_t l = limit_of(algo, 5, SECOND_NS, 0, 3);
    const char *keys[3] = {"x", "y", "a longer key than eight bytes"};
    int64_t costs[6] = {1, 0, 2, 1, 5, 3};
    for (int step = 0; step < 300; step++) {
        int64_t now = T0 + step * (SECOND_NS / 7);
        const char *key = keys[step % 3];
        int64_t cost = costs[step % 6];
        fw_request_t r = {&l, key, strlen(key)};
        fw_decision_t da, db;
        memset(&da, 0x55, sizeof(da));
        memset(&db, 0x55, sizeof(db));
        size_t v;
        int ra = fw_table_check(a, &r, 1, cost, now, &da, &v);
        int rb = fw_table_check_one(b, &r, cost, now, 0, &db);
        CHECK(ra == 0 && rb == 0 && memcmp(&da, &db, sizeof(da)) == 0,
              "algo %d, step %d: %d %d", algo, step, ra, rb);
        fw_decision_t dc;
        int rc = fw_table_check_one(c, &r, cost, now, FW_CHECK_ALLOWED_ONLY, &dc);
        CHECK(rc == 0 && dc.allowed == da.allowed, "algo %d, step %d: allowed-only", algo,
              step);
    }
    for (int k = 0; k < 3; k++) { /* the same states were written */
        fw_decision_t pa, pc;
        CHECK(fw_table_peek(a, &l, keys[k], strlen(keys[k]), T0 + 50 * SECOND_NS, &pa) == 0 &&
                  fw_table_peek(c, &l, keys[k], strlen(keys[k]), T0 + 50 * SECOND_NS, &pc) ==
                      0 &&
                  memcmp(&pa, &pc, sizeof(pa)) == 0,
              "algo %d, key %d", algo, k);
    }
    fw_request_t r = {&l, "x", 1};
    fw_decision_t d;
    CHECK(fw_table_check_one(b, &r, 6, T0, 0, &d) == FW_ECOST, "algo %d", algo);
    CHECK(fw_table_check_one(b, &r, -1, T0, 0, &d) == FW_EINVAL, "algo %d", algo);
    CHECK(fw_table_check_one(b, &r, 1, -1, 0, &d) == FW_EINVAL, "algo %d", algo);
    CHECK(fw_table_check_one(NULL, &r, 1, T0, 0, &d) == FW_EINVAL);
    CHECK(fw_table_check_one(b, NULL, 1, T0, 0, &d) == FW_EINVAL);
    CHECK(fw_table_check_one(b, &r, 1, T0, 0, NULL) == FW_EINVAL);
    fw_request_t nokey = {&l, NULL, 3};
    CHECK(fw_table_check_one(b, &nokey, 1, T0, 0, &d) == FW_EINVAL);
    if (algo == FW_SLIDING_LOG) { /* a log larger than the table's ring */
        fw_limit_t big = limit_of(algo, 50, SECOND_NS, 0, 4);
        fw_request_t rb = {&big, "x", 1};
        CHECK(fw_table_check_one(b, &rb, 1, T0, 0, &d) == FW_EINVAL);
    }
    CHECK(fw_table_check_one(b, &r, 1, T0, 2, &d) == FW_EINVAL, "an unknown flag");
    fw_table_close(a);
    fw_table_close(b);
    fw_table_close(c);
}

int main(void)
{
    for (int a = 0; a < FW_ALGORITHM_COUNT; a++)
        test_check_one_is_check_of_one((fw_algorithm_t)a);
    test_each_part_pays_its_cost(FW_GCRA);
    test_each_part_pays_its_cost(FW_TOKEN_BUCKET);
    test_each_part_pays_its_cost(FW_FIXED_WINDOW);
    test_each_part_pays_its_cost(FW_SLIDING_WINDOW);
    test_each_part_pays_its_cost(FW_SLIDING_LOG);
    return check_summary();
}
