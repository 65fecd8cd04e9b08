/*
 * test_div_b1.c - fwi_div_b1, the windowed algorithms' division of a packed
 * state by B + 1 with two multiplications by the quota's stored inverse.
 * Invariant checked: it equals n / (B + 1) for every burst from 1 to 3000,
 * for bursts around every power of two up to the largest a sliding window
 * accepts ((B + 1)^2 must fit 64 bits), and for random bursts; at each, on
 * n = 0, 1, the multiples of B + 1 and their neighbours (where a wrong
 * inverse first shows), the top of the 64-bit range, and random n.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "internal.h"

static uint64_t state = 0x9e3779b97f4a7c15u;

static uint64_t random64(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static int mismatches;

static void expect_quotient(const fw_quota_t *q, uint64_t n)
{
    uint64_t d = (uint64_t)q->burst + 1;
    uint64_t got = fwi_div_b1(q, n);
    if (got != n / d && mismatches++ < 10)
        CHECK(got == n / d, "burst %lld, n %llu: %llu, not %llu", (long long)q->burst,
              (unsigned long long)n, (unsigned long long)got, (unsigned long long)(n / d));
}

static void check_burst(int64_t burst)
{
    fw_quota_t q;
    /* one unit per ns: any burst below 2^32 passes fw_quota_init */
    int rc = fw_quota_init(&q, FW_GCRA, 1000000000, 1000000000, burst);
    CHECK(rc == 0, "burst %lld refused: %d", (long long)burst, rc);
    if (rc)
        return;
    uint64_t d = (uint64_t)burst + 1;
    const uint64_t top[] = {0, 1, 2, UINT64_MAX, UINT64_MAX - 1, UINT64_MAX / 2,
                            UINT64_MAX / 2 + 1, UINT64_MAX - UINT64_MAX % d,
                            UINT64_MAX - UINT64_MAX % d - 1};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
        expect_quotient(&q, top[i]);
    for (int i = 0; i < 64; i++) {
        uint64_t k = random64() / d; /* k * d + d - 1 <= UINT64_MAX */
        if (i < 16)
            k = (uint64_t)i;
        uint64_t m = k * d;
        expect_quotient(&q, m);
        expect_quotient(&q, m + d - 1);
        if (m > 0)
            expect_quotient(&q, m - 1);
        expect_quotient(&q, random64());
    }
}

int main(void)
{
    int before = passed;
    for (int64_t b = 1; b <= 3000; b++)
        check_burst(b);
    for (int s = 2; s < 32; s++)
        for (int64_t delta = -2; delta <= 2; delta++)
            check_burst(((int64_t)1 << s) + delta);
    check_burst(((int64_t)1 << 32) - 2); /* the largest: (B + 1)^2 < 2^64 */
    for (int i = 0; i < 2000; i++)
        check_burst((int64_t)(random64() % (((uint64_t)1 << 32) - 2)) + 1);
    CHECK(mismatches == 0, "%d quotients wrong", mismatches);
    CHECK(passed - before > 5000, "only %d bursts initialised", passed - before);
    return check_summary();
}
