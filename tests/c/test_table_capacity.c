/*
 * test_table_capacity.c - max_keys means what it says (issue 11): a table
 * sized for max_keys holds exactly max_keys live keys, on every fresh table
 * (every random seed), refuses the next one, and takes new keys again as
 * soon as keys expire; a growing memory table has no ceiling but its cap,
 * and stays small when its keys churn.
 *
 * Invariant checked everywhere: counts are exact. Prints "N passed, M
 * failed"; exits non-zero on any failure. argv[1] (vectors) is ignored.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "table.h"
#include "table_helpers.h"
#include "floodwall.h"

#define S_NS 1000000000LL
#define HOUR_NS (3600 * S_NS)

static fw_table_t *open_fixed(uint64_t max_keys)
{
    fw_table_t *t = NULL;
    fw_table_options_t o = {max_keys, 0};
    if (fw_table_open_memory(&t, &o) != 0) {
        fprintf(stderr, "cannot open a table of %" PRIu64 " keys\n", max_keys);
        exit(2);
    }
    return t;
}

static fw_table_t *open_growing(uint64_t max_keys)
{
    fw_table_t *t = NULL;
    fw_table_options_t o = {max_keys, 0};
    if (fw_table_open_growing(&t, &o) != 0) {
        fprintf(stderr, "cannot open a growing table\n");
        exit(2);
    }
    return t;
}

/* Insert keys [from, to) of `prefix` at `now`; returns how many were admitted
 * and stores the first failure's code in *first_rc. */
static uint64_t insert_range(fw_table_t *t, const fw_limit_t *l, const char *prefix,
                             uint64_t from, uint64_t to, int64_t now, int *first_rc)
{
    uint64_t ok = 0;
    char key[48];
    *first_rc = 0;
    for (uint64_t i = from; i < to; i++) {
        fw_decision_t d;
        snprintf(key, sizeof(key), "%s-%" PRIu64, prefix, i);
        int rc = check1(t, l, key, 1, now, &d);
        if (rc == 0 && d.allowed)
            ok++;
        else if (*first_rc == 0)
            *first_rc = rc ? rc : 1;
    }
    return ok;
}

/* Fresh tables (each with its own random seed) at several sizes: exactly
 * max_keys live keys fit, then the next key is FW_EFULL, and a key already
 * in still works. The old 32-slot probe window refused keys early on a
 * fraction of the tables, and let more than max_keys in. */
static void test_exact_fill(void)
{
    static const struct {
        uint64_t max_keys;
        int tables;
    } sizes[] = {{1, 50}, {7, 50}, {64, 50}, {1000, 50}, {4096, 50}, {65536, 30}};
    fw_limit_t l = limit_of(FW_GCRA, 10, HOUR_NS, 0, 7);
    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        uint64_t n = sizes[z].max_keys;
        int short_tables = 0, over_tables = 0;
        uint64_t worst = n;
        for (int k = 0; k < sizes[z].tables; k++) {
            fw_table_t *t = open_fixed(n);
            int rc;
            uint64_t ok = insert_range(t, &l, "k", 0, n, 1000, &rc);
            if (ok != n) {
                short_tables++;
                if (ok < worst)
                    worst = ok;
            }
            fw_decision_t d;
            if (check1(t, &l, "one-more", 1, 1000, &d) != FW_EFULL)
                over_tables++;
            if (k == 0) {
                CHECK(check1(t, &l, "k-0", 1, 1000, &d) == 0 && d.allowed &&
                      d.remaining == 8, "a key already in is served at the cap");
                fw_table_stats_t st;
                fw_table_stats(t, 1000, &st);
                CHECK(st.keys == n && st.active == n && st.full_errors == 1,
                      "stats: keys %" PRIu64 " active %" PRIu64 " full %" PRIu64,
                      st.keys, st.active, st.full_errors);
            }
            fw_table_close(t);
        }
        CHECK(short_tables == 0, "max_keys=%" PRIu64 ": %d of %d tables refused a key "
              "before max_keys (the worst at key %" PRIu64 ")", n, short_tables,
              sizes[z].tables, worst);
        CHECK(over_tables == 0, "max_keys=%" PRIu64 ": %d of %d tables took a key past "
              "max_keys", n, over_tables, sizes[z].tables);
    }
}

/* At the cap, keys whose state is fresh again are reclaimed: exactly as
 * many new keys fit as keys expired, wherever they lie in the table. */
static void test_reclaim_at_cap(void)
{
    fw_limit_t brief = limit_of(FW_GCRA, 1, S_NS, 0, 1);   /* fresh after 1 s */
    fw_limit_t lasting = limit_of(FW_GCRA, 10, HOUR_NS, 0, 2);
    for (int k = 0; k < 20; k++) {
        uint64_t n = 1000;
        fw_table_t *t = open_fixed(n);
        int rc;
        uint64_t a = insert_range(t, &brief, "brief", 0, 300, 1000, &rc);
        uint64_t b = insert_range(t, &lasting, "lasting", 0, n - 300, 1000, &rc);
        CHECK(a == 300 && b == n - 300);
        fw_decision_t d;
        CHECK(check1(t, &lasting, "early", 1, 1000, &d) == FW_EFULL);
        /* two seconds later the 300 brief keys are fresh: 300 new keys fit */
        int64_t later = 1000 + 2 * S_NS;
        uint64_t c = insert_range(t, &lasting, "new", 0, 400, later, &rc);
        CHECK(c == 300, "table %d: %" PRIu64 " new keys fit where 300 expired", k, c);
        CHECK(rc == FW_EFULL);
        /* the lasting keys kept their state */
        CHECK(check1(t, &lasting, "lasting-5", 1, later, &d) == 0 && d.allowed &&
              d.remaining == 8);
        fw_table_close(t);
    }
}

/* A flood of new keys at a full table of live keys is refused without a
 * sweep per key (a hint remembers that nothing expires before a time), and
 * still finds room the moment a key expires. */
static void test_flood_at_cap(void)
{
    fw_limit_t l = limit_of(FW_GCRA, 1, 10 * S_NS, 0, 3); /* fresh after 10 s */
    fw_table_t *t = open_fixed(4096);
    int rc;
    CHECK(insert_range(t, &l, "live", 0, 4096, 1000, &rc) == 4096);
    CHECK(insert_range(t, &l, "flood", 0, 20000, 2000, &rc) == 0 && rc == FW_EFULL);
    fw_decision_t d;
    CHECK(check1(t, &l, "after", 1, 1000 + 10 * S_NS + 1, &d) == 0 && d.allowed,
          "a key fits once the others are fresh");
    fw_table_close(t);
}

/* A process killed between counting a key and claiming its slot leaves the
 * count high: the next sweep at the cap recounts it. */
static void test_count_repaired(void)
{
    fw_table_options_t o = {100, 0};
    size_t len;
    CHECK(fw_table_size(&o, &len) == 0);
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    fw_table_t *t = NULL;
    CHECK(mem != MAP_FAILED && fw_table_format(mem, len, &o) == 0 &&
          fw_table_attach(&t, mem, len) == 0);
    if (!t)
        return;
    t->hdr->keys += 5; /* five reservations whose claims never happened */
    fw_limit_t l = limit_of(FW_GCRA, 10, HOUR_NS, 0, 4);
    int rc;
    CHECK(insert_range(t, &l, "k", 0, 100, 1000, &rc) == 100, "the count drifted");
    fw_decision_t d;
    CHECK(check1(t, &l, "k-100", 1, 1000, &d) == FW_EFULL);
    fw_table_stats_t st;
    fw_table_stats(t, 1000, &st);
    CHECK(st.keys == 100);
    fw_table_close(t);
    munmap(mem, len);
}

/* A file table that churns at its cap: sweeps retire expired keys and empty
 * the retired slots that end a run; the doctor then finds every key on its
 * probe sequence (no key past an empty slot), every key is found again,
 * and retired slots do not pile up. */
static void test_churn_at_cap_stays_sound(void)
{
    char path[] = "/tmp/fw-capacity-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        CHECK(0, "mkstemp");
        return;
    }
    close(fd);
    unlink(path);
    fw_shared_options_t opt = {{512, 0}, FW_SYNC_NONE, 0, 0};
    fw_store_error_t err;
    fw_table_t *t = NULL;
    CHECK(fw_table_open_file(&t, path, &opt, &err) == 0, "%s", err.message);
    if (!t)
        return;
    fw_limit_t brief = limit_of(FW_GCRA, 1, S_NS, 0, 9); /* fresh after 1 s */
    char key[32];
    int64_t now = 1000;
    uint64_t refused = 0;
    for (int round = 0; round < 40; round++, now += 2 * S_NS) {
        int rc;
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "r%d", round);
        uint64_t ok = insert_range(t, &brief, prefix, 0, 600, now, &rc);
        refused += 600 - ok;
        CHECK(ok == 512, "round %d: %" PRIu64 " keys fit at the cap of 512", round, ok);
        /* this round's keys are all found */
        uint64_t found = 0;
        for (int i = 0; i < 512; i++) {
            fw_decision_t d;
            snprintf(key, sizeof(key), "%s-%d", prefix, i);
            found += fw_table_peek(t, &brief, key, strlen(key), now, &d) == 0 &&
                     !d.allowed;
        }
        CHECK(found == 512, "round %d: %" PRIu64 " of 512 keys found", round, found);
    }
    CHECK(refused == 40 * 88);
    fw_table_stats_t st;
    fw_table_stats(t, now, &st);
    CHECK(st.keys == 512 && st.used == 512 && st.retired > 0);
    uint64_t nonempty = 0;
    for (uint64_t i = 0; i <= t->mask; i++) {
        const fwi_slot_t *x = (const fwi_slot_t *)(const void *)(t->slots + i * t->slot_size);
        nonempty += x->tag != FWI_TAG_EMPTY;
    }
    printf("  churn at the cap: %" PRIu64 " of %" PRIu64 " slots non-empty after 40 "
           "rounds, %" PRIu64 " retired in all\n", nonempty, st.slots, st.retired);
    CHECK(nonempty <= st.slots * 3 / 4, "retired slots pile up: %" PRIu64 " of %" PRIu64
          " slots hold a key or a retired mark", nonempty, st.slots);
    fw_doctor_report_t rep;
    CHECK(fw_table_doctor(path, now, &rep) == 0 && rep.keys == 512, "doctor: %s",
          rep.problem);
    fw_table_close(t);
    unlink(path);
}

/* Threads inserting distinct keys at once into one table: exactly max_keys
 * of them get in. */
typedef struct racer {
    fw_table_t *t;
    const fw_limit_t *l;
    int id;
    uint64_t ok;
} racer_t;

static void *racer_run(void *arg)
{
    racer_t *r = arg;
    int rc;
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "t%d", r->id);
    r->ok = insert_range(r->t, r->l, prefix, 0, 2000, 1000, &rc);
    return NULL;
}

static void test_threads_at_cap(void)
{
    fw_limit_t l = limit_of(FW_GCRA, 10, HOUR_NS, 0, 5);
    for (int round = 0; round < 10; round++) {
        fw_table_t *t = open_fixed(5000);
        racer_t r[8];
        pthread_t th[8];
        for (int i = 0; i < 8; i++) {
            r[i] = (racer_t){t, &l, i, 0};
            pthread_create(&th[i], NULL, racer_run, &r[i]);
        }
        uint64_t ok = 0;
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
            ok += r[i].ok;
        }
        CHECK(ok == 5000, "8 threads got %" PRIu64 " keys into a table of 5000", ok);
        fw_table_close(t);
    }
}

/* Threads churning new keys through a table at its cap, in phases: in
 * phase p every thread checks 8 keys at the same time p * 10 ms, so every
 * key of an earlier phase has expired (a key is fresh 1 us after its check)
 * and at most 32 keys are live, against a cap of 64: a key always fits,
 * and no check may answer FW_EFULL. Inserters reach the cap together at
 * each phase's start, and sweep together. (One clock for all in a phase:
 * a thread whose clock lagged would rightly see the others' keys as live.)
 * Two inserters at the cap at once used to race: the one whose sweep found
 * its work already done by the other's freed nothing itself and answered
 * "full" while the table had room. */
#define CHURN_THREADS 4
#define CHURN_PHASES 3000

typedef struct churner {
    fw_table_t *t;
    const fw_limit_t *l;
    pthread_barrier_t *phase;
    int id;
    uint64_t full, other;
} churner_t;

static void *churner_run(void *arg)
{
    churner_t *c = arg;
    char key[48];
    uint64_t x = 0x9E3779B97F4A7C15ULL * (uint64_t)(c->id + 1);
    for (int p = 1; p <= CHURN_PHASES; p++) {
        pthread_barrier_wait(c->phase);
        int64_t now = HOUR_NS + (int64_t)p * 10000000;
        for (int i = 0; i < 8; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            snprintf(key, sizeof(key), "churn-%" PRIu64, x % 1000);
            fw_decision_t d;
            int rc = check1(c->t, c->l, key, 1, now, &d);
            if (rc == FW_EFULL)
                c->full++;
            else if (rc != 0)
                c->other++;
        }
    }
    return NULL;
}

static void test_threads_churn_at_cap(void)
{
    fw_limit_t l = limit_of(FW_GCRA, 1000, 1000000, 0, 9); /* T = 1 us */
    for (int round = 0; round < 3; round++) {
        fw_table_t *t = open_fixed(64);
        pthread_barrier_t phase;
        pthread_barrier_init(&phase, NULL, CHURN_THREADS);
        churner_t c[CHURN_THREADS];
        pthread_t th[CHURN_THREADS];
        for (int i = 0; i < CHURN_THREADS; i++) {
            c[i] = (churner_t){t, &l, &phase, i + CHURN_THREADS * round, 0, 0};
            pthread_create(&th[i], NULL, churner_run, &c[i]);
        }
        uint64_t full = 0, other = 0;
        for (int i = 0; i < CHURN_THREADS; i++) {
            pthread_join(th[i], NULL);
            full += c[i].full;
            other += c[i].other;
        }
        pthread_barrier_destroy(&phase);
        CHECK(full == 0 && other == 0,
              "round %d: %" PRIu64 " checks answered full, %" PRIu64 " other errors, "
              "with at most 32 of 64 keys live", round, full, other);
        fw_table_close(t);
    }
}

/* A growing table: 200,000 keys with no cap, no refusal, few bytes to start
 * with; with a cap, exact like a fixed table. */
static void test_growing(void)
{
    fw_limit_t l = limit_of(FW_GCRA, 10, HOUR_NS, 0, 6);
    fw_table_t *t = open_growing(0);
    fw_table_info_t info;
    fw_table_info(t, &info);
    CHECK(info.grows == 1 && info.slots == 64 && info.bytes < 16384,
          "starts small: %" PRIu64 " slots, %" PRIu64 " bytes", info.slots, info.bytes);
    int rc;
    CHECK(insert_range(t, &l, "g", 0, 200000, 1000, &rc) == 200000 && rc == 0);
    fw_table_stats_t st;
    fw_table_stats(t, 1000, &st);
    CHECK(st.keys == 200000 && st.active == 200000 && st.slots <= 1048576,
          "keys %" PRIu64 " slots %" PRIu64, st.keys, st.slots);
    /* every key kept its state through the rebuilds */
    uint64_t kept = 0;
    char key[32];
    for (int i = 0; i < 200000; i += 97) {
        fw_decision_t d;
        snprintf(key, sizeof(key), "g-%d", i);
        kept += fw_table_peek(t, &l, key, strlen(key), 1000, &d) == 0 && d.remaining == 9;
    }
    CHECK(kept == (200000 + 96) / 97, "%" PRIu64 " keys kept their state", kept);
    fw_table_close(t);

    for (uint64_t cap = 1; cap <= 5000; cap *= 7) {
        t = open_growing(cap);
        CHECK(insert_range(t, &l, "c", 0, cap, 1000, &rc) == cap && rc == 0);
        fw_decision_t d;
        CHECK(check1(t, &l, "over", 1, 1000, &d) == FW_EFULL, "cap %" PRIu64, cap);
        /* a multi-part check across a rebuild keeps every part right */
        fw_table_close(t);
    }
}

/* Keys that expire as fast as they come: a growing table stays small. */
static void test_growing_churn(void)
{
    fw_limit_t l = limit_of(FW_GCRA, 1, 1000, 0, 8); /* fresh after 1 us */
    fw_table_t *t = open_growing(0);
    char key[32];
    uint64_t ok = 0, most = 0;
    for (int i = 0; i < 1000000; i++) {
        fw_decision_t d;
        snprintf(key, sizeof(key), "c-%d", i);
        ok += check1(t, &l, key, 1, 1000 + (int64_t)i * 1000, &d) == 0 && d.allowed;
        if (i % 1000 == 0) {
            fw_table_info_t info;
            fw_table_info(t, &info);
            if (info.slots > most)
                most = info.slots;
        }
    }
    CHECK(ok == 1000000);
    CHECK(most <= 1024, "a churn of expired keys grew the table to %" PRIu64 " slots",
          most);
    fw_table_close(t);
}

/* All-or-nothing over parts whose inserts rebuild the table mid-check. */
static void test_growing_multi_part(void)
{
    fw_table_t *t = open_growing(0);
    fw_limit_t a = limit_of(FW_GCRA, 5, HOUR_NS, 0, 10);
    fw_limit_t b = limit_of(FW_FIXED_WINDOW, 3, HOUR_NS, 0, 11);
    char ka[32], kb[32];
    int admitted = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(ka, sizeof(ka), "a-%d", i);
        snprintf(kb, sizeof(kb), "b-%d", i % 50);
        fw_request_t r[2] = {{&a, ka, strlen(ka)}, {&b, kb, strlen(kb)}};
        fw_decision_t out[2];
        size_t v;
        if (fw_table_check(t, r, 2, 1, 1000, out, &v) == 0 && v == 2)
            admitted++;
    }
    CHECK(admitted == 150, "admitted %d, the tightest limit allows 50 x 3", admitted);
    fw_table_close(t);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_exact_fill();
    test_reclaim_at_cap();
    test_flood_at_cap();
    test_count_repaired();
    test_churn_at_cap_stays_sound();
    test_threads_at_cap();
    test_threads_churn_at_cap();
    test_growing();
    test_growing_churn();
    test_growing_multi_part();
    return check_summary();
}
