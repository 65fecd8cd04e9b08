/*
 * test_fresh_at.c - when a slot is fresh again (layout 3): a GCRA-family
 * key's TAT is its expiry (its tag carries FWI_TAG_TAT and commits do not
 * raise the expiry field); every other algorithm raises the expiry.
 * Invariant checked: on fixed (shared-style) and growing tables, a key is
 * live, counted active, reported by inspect/hottest with the right expiry,
 * and never reclaimed until its state is fresh again; it is reclaimable
 * right after; a refund never makes a slot fresh earlier than the TAT it
 * committed; the tag bit follows the algorithm.
 */
#include <stdint.h>

#include "check.h"
#include "table.h"
#include "table_helpers.h"

#define S_NS 1000000000LL
#define T0 (1700000000LL * S_NS)

static fwi_slot_t *slot_of(fw_table_t *t, uint64_t index)
{
    return (fwi_slot_t *)(void *)(t->slots + index * t->slot_size);
}

static uint64_t active_at(fw_table_t *t, int64_t now)
{
    fw_table_stats_t st;
    CHECK(fw_table_stats(t, now, &st) == 0);
    return st.active;
}

/* One key with debt: 3 requests of a 1/second limit, burst 5, at T0: the
 * TAT is T0 + 3 s. The expiry field stays at the claim (GCRA family), yet
 * everything that asks when the slot is fresh says T0 + 3 s. */
static void test_tat_is_the_expiry(fw_algorithm_t algo, int grows)
{
    fw_table_options_t opt = {64, 0};
    fw_table_t *t = NULL;
    CHECK((grows ? fw_table_open_growing(&t, &opt) : fw_table_open_memory(&t, &opt)) == 0);
    fw_limit_t l = limit_of(algo, 1, S_NS, 5, 1);
    fw_decision_t d;
    for (int i = 0; i < 3; i++)
        CHECK(check1(t, &l, "k", 1, T0, &d) == 0 && d.allowed, "algo %d", algo);
    int64_t fresh = T0 + 3 * S_NS;
    fw_slot_info_t info;
    CHECK(fw_table_inspect(t, &l, "k", 1, T0, &info, &d) == 0 && info.present);
    int gcra = algo != FW_FIXED_WINDOW && algo != FW_SLIDING_WINDOW;
    CHECK(((info.fingerprint[0] & FWI_TAG_TAT) != 0) == gcra, "algo %d: tag bit", algo);
    fwi_slot_t *s = slot_of(t, info.index);
    if (gcra) {
        CHECK(info.expiry_ns == fresh, "algo %d: expiry %lld", algo, (long long)info.expiry_ns);
        CHECK(s->expiry == T0, "algo %d: commits leave the expiry field at the claim", algo);
    }
    size_t n = 0;
    CHECK(fw_table_hottest(t, T0, &info, 1, &n) == 0 && n == 1 &&
              info.expiry_ns == (gcra ? fresh : s->expiry),
          "algo %d", algo);
    if (!gcra)
        fresh = s->expiry; /* the window's end: raised by the commits */
    CHECK(fresh > T0 && active_at(t, fresh - 1) == 1 && active_at(t, fresh) == 0,
          "algo %d", algo);
    fw_table_close(t);
}

/* A fixed table of capacity 1 at its cap: a second key waits until the
 * first is fresh again (by its TAT), then takes its slot. */
static void test_reclaim_waits_for_the_tat(fw_algorithm_t algo)
{
    fw_table_options_t opt = {1, 0};
    fw_table_t *t = NULL;
    CHECK(fw_table_open_memory(&t, &opt) == 0);
    fw_limit_t l = limit_of(algo, 1, S_NS, 5, 1);
    fw_decision_t d;
    for (int i = 0; i < 4; i++)
        CHECK(check1(t, &l, "a", 1, T0, &d) == 0 && d.allowed);
    int64_t fresh = T0 + 4 * S_NS;
    CHECK(check1(t, &l, "b", 1, T0 + S_NS, &d) == FW_EFULL, "algo %d", algo);
    CHECK(check1(t, &l, "b", 1, fresh, &d) == FW_EFULL, "algo %d: fresh at, not before",
          algo);
    CHECK(check1(t, &l, "b", 1, fresh + 1, &d) == 0 && d.allowed, "algo %d", algo);
    /* "a" was forgotten with its slot: it is a fresh key again */
    CHECK(check1(t, &l, "a", 1, fresh + 2, &d) == FW_EFULL, "algo %d", algo);
    fw_table_close(t);
}

/* A part committed, then rolled back because a later part denies: the
 * refund lowers the TAT, but the slot stays live until the TAT the commit
 * made (as when commits raised the expiry). The denial of the later part
 * is made by a concurrent-looking write between dry run and commit: here,
 * a second part on the same key, whose commit sees the first's. */
static void test_refund_keeps_the_slot_live(void)
{
    fw_table_options_t opt = {64, 0};
    fw_table_t *t = NULL;
    CHECK(fw_table_open_memory(&t, &opt) == 0);
    fw_limit_t a = limit_of(FW_GCRA, 1, S_NS, 2, 1);
    fw_decision_t out[2];
    size_t v;
    /* the same (limit, key) twice, cost 2 each: the dry run admits both (it
     * writes nothing), the commit of the second denies, the first is
     * refunded */
    fw_request_t reqs[2] = {{&a, "k", 1}, {&a, "k", 1}};
    CHECK(fw_table_check(t, reqs, 2, 2, T0, out, &v) == 0 && v == 1 && !out[1].allowed);
    fw_slot_info_t info;
    fw_decision_t d;
    CHECK(fw_table_inspect(t, &a, "k", 1, T0, &info, &d) == 0 && info.present);
    CHECK(d.remaining == 2, "the refund gave the units back: %lld", (long long)d.remaining);
    CHECK(info.expiry_ns == T0 + 2 * S_NS, "live until the committed TAT: %lld",
          (long long)(info.expiry_ns - T0));
    fw_table_close(t);
}

int main(void)
{
    for (int a = 0; a < FW_ALGORITHM_COUNT; a++) {
        if (a == FW_SLIDING_LOG)
            continue;
        test_tat_is_the_expiry((fw_algorithm_t)a, 0);
        test_tat_is_the_expiry((fw_algorithm_t)a, 1);
        if (a != FW_FIXED_WINDOW && a != FW_SLIDING_WINDOW)
            test_reclaim_waits_for_the_tat((fw_algorithm_t)a);
    }
    test_refund_keeps_the_slot_live();
    return check_summary();
}
