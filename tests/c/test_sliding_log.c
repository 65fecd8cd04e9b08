/*
 * test_sliding_log.c - the sliding log's running total (src/algo/sliding_log.c,
 * the slot's log position in src/table.h): a total read from a table is not
 * trusted. A damaged total (check bits off) is recounted from the entries
 * before it decides anything; a total that looks valid but is wrong is
 * found by the recount every B commits, so no key stays wrong; inserts out
 * of time order and rollbacks keep the total equal to the entries' sum.
 * Invariant: every case counts admissions exactly against the policy.
 */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "floodwall.h"
#include "internal.h"
#include "table.h"
#include "table_helpers.h"

#define S_NS 1000000000LL

static fwi_slot_t *slot_n(fw_table_t *t, uint64_t i)
{
    return (fwi_slot_t *)(void *)(t->slots + i * t->slot_size);
}

/* The one used slot of a table holding one key. */
static fwi_slot_t *only_slot(fw_table_t *t)
{
    for (uint64_t i = 0; i <= t->mask; i++)
        if (slot_n(t, i)->tag != 0)
            return slot_n(t, i);
    return NULL;
}

/* The slot's published total minus its entries' sum (0 when they agree);
 * *ok = 0 when the check bits disagree. */
static int64_t total_error(fw_table_t *t, fwi_slot_t *s, int *ok)
{
    uint32_t head, len;
    int64_t units, sum = 0;
    *ok = fwi_log_pos_unpack(s->log_pos, &head, &len, &units);
    fw_log_entry_t *e = (fw_log_entry_t *)(void *)((unsigned char *)s + FWI_SLOT_HEAD_SIZE);
    for (uint32_t j = 0; j < len; j++)
        sum += e[(head + j) % t->log_capacity].cost;
    return units - sum;
}

static int admitted_over(fw_table_t *t, const fw_limit_t *lim, int64_t from, int tries,
                         int64_t cost)
{
    fw_decision_t d;
    int n = 0;
    for (int i = 0; i < tries; i++)
        n += check1(t, lim, "k", cost, from + i, &d) == 0 && d.allowed;
    return n;
}

/* A total whose check bits no longer match (a flipped bit, a torn write by
 * hand) is recounted from the entries: the key admits nothing more than
 * its policy, and the damage is counted. */
static void test_damaged_total_is_recounted(void)
{
    enum { B = 20 };
    fw_table_t *t = NULL;
    fw_table_options_t o = {8, B};
    CHECK(fw_table_open_memory(&t, &o) == 0);
    fw_limit_t lim = limit_of(FW_SLIDING_LOG, B, 3600 * S_NS, 0, 1);
    int64_t now = 1000 * S_NS;
    CHECK(admitted_over(t, &lim, now, B, 2) == B / 2);
    fwi_slot_t *s = only_slot(t);
    int ok;
    CHECK(s && total_error(t, s, &ok) == 0 && ok, "the total is the entries' sum");
    /* the total's bits say 10 units (one per entry: a total the header
     * alone cannot tell from a true one), the check bits left as they were */
    s->log_pos &= ~((uint64_t)FWI_LOG_POS_UNITS_MAX << 34);
    s->log_pos |= (uint64_t)(B / 2) << 34;
    CHECK(total_error(t, s, &ok) == -B / 2 && !ok);
    fw_decision_t d;
    CHECK(fw_table_peek(t, &lim, "k", 1, now + 20, &d) == 0 && !d.allowed,
          "a peek on a damaged total is a denial");
    CHECK(admitted_over(t, &lim, now + 20, 30, 1) == 0,
          "a damaged total admitted more than the policy");
    CHECK(total_error(t, s, &ok) == 0 && ok, "the recount is published");
    fw_table_stats_t st;
    fw_table_stats(t, now, &st);
    CHECK(st.damaged_states == 1, "damaged_states %" PRIu64, st.damaged_states);
    /* a window later, the policy again, exactly */
    CHECK(admitted_over(t, &lim, now + 3601 * S_NS, 30, 1) == B);
    fw_table_close(t);
}

/* A total that looks valid (its check bits recomputed) but is below the
 * entries' sum is found by the recount every B commits: it can admit at
 * most what it hid, once, and the key is exact afterwards. */
static void test_forged_total_is_found_within_b_commits(void)
{
    enum { B = 20 };
    fw_table_t *t = NULL;
    fw_table_options_t o = {8, B};
    CHECK(fw_table_open_memory(&t, &o) == 0);
    fw_limit_t lim = limit_of(FW_SLIDING_LOG, B, 3600 * S_NS, 0, 1);
    int64_t now = 1000 * S_NS;
    CHECK(admitted_over(t, &lim, now, B, 2) == B / 2);
    fwi_slot_t *s = only_slot(t);
    uint32_t head, len;
    int64_t units;
    CHECK(fwi_log_pos_unpack(s->log_pos, &head, &len, &units) && units == B && len == B / 2);
    s->log_pos = fwi_log_pos_pack(head, len, len); /* hides len units */
    int hidden = B - (int)len, admitted = 0;
    fw_decision_t d;
    for (int i = 0; i < 3 * B; i++)
        admitted += check1(t, &lim, "k", 1, now + 10 + i, &d) == 0 && d.allowed;
    CHECK(admitted <= hidden, "%d admitted beyond a full log (at most %d hidden)", admitted,
          hidden);
    int ok;
    CHECK(total_error(t, s, &ok) == 0 && ok, "the recount restored the total");
    fw_table_stats_t st;
    fw_table_stats(t, now, &st);
    CHECK(st.damaged_states == 1, "damaged_states %" PRIu64, st.damaged_states);
    CHECK(admitted_over(t, &lim, now + 3601 * S_NS, 3 * B, 1) == B);
    fw_table_close(t);
}

/* An over-count (what a crash mid-move leaves) under-admits only until the
 * recount: a key under steady traffic gets back to its exact policy. */
static void test_overcount_heals_under_traffic(void)
{
    enum { B = 8 };
    fw_table_t *t = NULL;
    fw_table_options_t o = {8, B};
    CHECK(fw_table_open_memory(&t, &o) == 0);
    int64_t w = 100 * S_NS;
    fw_limit_t lim = limit_of(FW_SLIDING_LOG, B, w, 0, 1);
    int64_t now = 1000 * S_NS;
    CHECK(admitted_over(t, &lim, now, 1, 1) == 1);
    fwi_slot_t *s = only_slot(t);
    uint32_t head, len;
    int64_t units;
    fwi_log_pos_unpack(s->log_pos, &head, &len, &units);
    s->log_pos = fwi_log_pos_pack(head, len, units + 3); /* 3 units too many */
    /* one check per W/B: steady traffic at exactly the policy's rate */
    int per_window[8] = {0};
    fw_decision_t d;
    for (int i = 0; i < 8 * B; i++) {
        int64_t at = now + 1 + i * (w / B);
        per_window[i / B] += check1(t, &lim, "k", 1, at, &d) == 0 && d.allowed;
    }
    CHECK(per_window[0] < B, "the over-count under-admits at first (%d)", per_window[0]);
    CHECK(per_window[6] == B && per_window[7] == B,
          "still %d and %d of %d per window after 6 windows", per_window[6], per_window[7], B);
    int ok;
    CHECK(total_error(t, s, &ok) == 0 && ok);
    fw_table_close(t);
}

/* Entries made with an earlier clock are inserted in time order; the total
 * stays the entries' sum, and the log admits exactly B. */
static void test_late_inserts_keep_the_total(void)
{
    enum { B = 6 };
    fw_table_t *t = NULL;
    fw_table_options_t o = {8, B};
    CHECK(fw_table_open_memory(&t, &o) == 0);
    fw_limit_t lim = limit_of(FW_SLIDING_LOG, B, 3600 * S_NS, 0, 1);
    int64_t base = 1000 * S_NS, times[] = {50, 10, 40, 20, 30, 5, 60, 1};
    int64_t costs[] = {1, 2, 1, 1, 1, 1, 1, 1};
    int admitted = 0;
    fw_decision_t d;
    for (int i = 0; i < 8; i++) {
        admitted += check1(t, &lim, "k", costs[i], base + times[i], &d) == 0 && d.allowed;
        int ok;
        CHECK(total_error(t, only_slot(t), &ok) == 0 && ok, "after check %d", i);
    }
    CHECK(admitted == 5, "%d admitted (want 5: 6 units)", admitted);
    fwi_slot_t *s = only_slot(t);
    uint32_t head, len;
    int64_t units;
    fwi_log_pos_unpack(s->log_pos, &head, &len, &units);
    fw_log_entry_t *e = (fw_log_entry_t *)(void *)((unsigned char *)s + FWI_SLOT_HEAD_SIZE);
    for (uint32_t j = 1; j < len; j++)
        CHECK(e[(head + j) % B].t >= e[(head + j - 1) % B].t, "entry %u out of time order", j);
    fw_table_close(t);
}

/* The public step on a caller-owned log: a running total that disagrees
 * with the entries is recounted, never believed; refunds keep it. */
static void test_public_step_recounts(void)
{
    fw_limit_t lim = limit_of(FW_SLIDING_LOG, 3, 3600 * S_NS, 0, 1);
    fw_log_entry_t ring[3] = {{100, 1}, {110, 1}, {120, 1}};
    fw_log_t log = {ring, 3, 0, 3, 0, 0}; /* three entries, "0 units" */
    fw_decision_t d;
    CHECK(fw_log_step(&lim.quota, &log, 130, 1, &d) == 0 && !d.allowed && log.units == 3,
          "allowed %d, units %" PRId64, d.allowed, log.units);
    fw_log_refund(&log, 120, 1);
    CHECK(log.len == 2 && log.units == 2);
    CHECK(fw_log_step(&lim.quota, &log, 115, 1, &d) == 0 && d.allowed && log.units == 3 &&
          log.len == 3 && ring[(log.head + 1) % 3].t == 110 &&
          ring[(log.head + 2) % 3].t == 115);
}

int main(void)
{
    test_damaged_total_is_recounted();
    test_forged_total_is_found_within_b_commits();
    test_overcount_heals_under_traffic();
    test_late_inserts_keep_the_total();
    test_public_step_recounts();
    return check_summary();
}
