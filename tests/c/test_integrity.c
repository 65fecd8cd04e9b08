/*
 * test_integrity.c - what a table does with state it cannot trust (issue
 * 10): locks held by a stopped owner, by a pid now used by another process,
 * or holding bits no owner writes; slots whose bytes were damaged at random;
 * a clock that jumped a day ahead and came back.
 * Invariant checked: no wait is unbounded, no decision reports remaining
 * outside [0, limit], no damaged state admits more than the policy, and no
 * stored state demands much more than the policy can (docs/algorithms.md).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "floodwall.h"
#include "lock.h"
#include "table.h"
#include "table_helpers.h"

#define S_NS ((int64_t)1000000000)
#define DAY_NS (86400 * S_NS)

static int64_t mono_ms(void) { return fw_clock_monotonic_ns() / 1000000; }

/* A table in MAP_SHARED anonymous memory, so a forked child shares it. */
static fw_table_t *shared_table(uint64_t max_keys, uint32_t log_capacity, void **mem,
                                size_t *len)
{
    fw_table_options_t o = {max_keys, log_capacity};
    fw_table_t *t = NULL;
    if (fw_table_size(&o, len) != 0)
        return NULL;
    *mem = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (*mem == MAP_FAILED || fw_table_format(*mem, *len, &o) != 0 ||
        fw_table_attach(&t, *mem, *len) != 0)
        return NULL;
    return t;
}

static fwi_slot_t *slot_n(fw_table_t *t, uint64_t i)
{
    return (fwi_slot_t *)(void *)(t->slots + i * t->slot_size);
}

/* ---- 1. locks ------------------------------------------------------------------ */

/* A child takes every stripe lock and every slot lock, then stops itself:
 * a waiter must give up with FW_EBUSY within the bound, not spin on. Once
 * the child is killed, the locks are taken over. */
static void test_stopped_owner(void)
{
    void *mem;
    size_t len;
    fw_table_t *t = shared_table(32, 4, &mem, &len);
    CHECK(t != NULL);
    if (!t)
        return;
    fw_limit_t log = limit_of(FW_SLIDING_LOG, 4, S_NS, 0, 1);
    fw_limit_t gcra = limit_of(FW_GCRA, 4, S_NS, 0, 2);
    fw_decision_t d;
    CHECK(check1(t, &log, "old", 1, S_NS, &d) == 0 && d.allowed);
    pid_t child = fork();
    if (child == 0) {
        for (uint32_t i = 0; i < FWI_TABLE_STRIPES; i++)
            if (fwi_lock_acquire(&t->hdr->stripe_locks[i]) != 0)
                _exit(3);
        for (uint64_t i = 0; i <= t->mask; i++)
            if (fwi_lock_acquire(&slot_n(t, i)->lock) != 0)
                _exit(4);
        raise(SIGSTOP);
        _exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, WUNTRACED) == child && WIFSTOPPED(status),
          "the child did not stop holding the locks");
    int64_t t0 = mono_ms();
    int rc = check1(t, &gcra, "new key", 1, S_NS, &d); /* needs a stripe lock */
    int64_t waited = mono_ms() - t0;
    CHECK(rc == FW_EBUSY, "insert under a stopped owner's stripe lock: rc %d", rc);
    CHECK(waited >= FWI_LOCK_STALL_NS / 1000000 && waited < 1000,
          "waited %" PRId64 " ms (the bound is %" PRId64 " ms)", waited,
          FWI_LOCK_WAIT_MAX_NS / 1000000);
    t0 = mono_ms();
    rc = check1(t, &log, "old", 1, S_NS, &d); /* needs the slot lock */
    waited = mono_ms() - t0;
    CHECK(rc == FW_EBUSY && waited < 1000, "log check under a stopped owner: rc %d "
          "after %" PRId64 " ms", rc, waited);
    CHECK(fw_table_reset(t, &log, "old", 3) == FW_EBUSY);
    CHECK(fwi_lock_owner(t->hdr->stripe_locks[0]) == FWI_LOCK_LIVE,
          "a stopped owner is alive");
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    CHECK(fwi_lock_owner(t->hdr->stripe_locks[0]) == FWI_LOCK_DEAD);
    CHECK(check1(t, &gcra, "new key", 1, S_NS, &d) == 0 && d.allowed,
          "the dead owner's stripe lock was not taken over");
    CHECK(check1(t, &log, "old", 1, S_NS, &d) == 0 && d.allowed,
          "the dead owner's slot lock was not taken over");
    fw_table_close(t);
    munmap(mem, len);
}

/* A running owner (preempted, or waiting for the disk) that releases within
 * FWI_LOCK_WAIT_MAX_NS is waited for: no FW_EBUSY after only the stall
 * bound meant for stopped owners. */
typedef struct held {
    uint64_t *words;
    size_t n;
} held_t;

static void *release_later(void *p)
{
    held_t *h = p;
    usleep(60000);
    for (size_t i = 0; i < h->n; i++)
        fwi_lock_release(&h->words[i]);
    return NULL;
}

static void test_slow_owner_waited_for(void)
{
    fw_table_t *t;
    fw_table_options_t o = {32, 4};
    CHECK(fw_table_open_memory(&t, &o) == 0);
    fw_limit_t gcra = limit_of(FW_GCRA, 4, S_NS, 0, 2);
    for (uint32_t i = 0; i < FWI_TABLE_STRIPES; i++)
        CHECK(fwi_lock_acquire(&t->hdr->stripe_locks[i]) == 0);
    held_t h = {t->hdr->stripe_locks, FWI_TABLE_STRIPES};
    int64_t t0 = mono_ms();
    pthread_t th;
    pthread_create(&th, NULL, release_later, &h);
    fw_decision_t d;
    int rc = check1(t, &gcra, "k", 1, S_NS, &d);
    int64_t waited = mono_ms() - t0;
    pthread_join(th, NULL);
    CHECK(rc == 0 && d.allowed && waited >= 50,
          "a running owner's lock: rc %d after %" PRId64 " ms", rc, waited);
    fw_table_close(t);
}

/* A lock word naming a live process that is not its owner (the pid was
 * reused): pid 1, and a `sleep` child, with a start time that is not
 * theirs. Taken over at once, not waited for. */
static void test_reused_pid(void)
{
    fw_table_t *t;
    fw_table_options_t o = {32, 4};
    CHECK(fw_table_open_memory(&t, &o) == 0);
    fw_limit_t log = limit_of(FW_SLIDING_LOG, 4, S_NS, 0, 1);
    fw_decision_t d;
    CHECK(check1(t, &log, "k", 1, S_NS, &d) == 0);
    pid_t sleeper = fork();
    if (sleeper == 0) {
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    usleep(20000);
    uint64_t pids[2] = {1, (uint64_t)sleeper};
    for (int i = 0; i < 2; i++) {
        uint64_t stranger = fwi_lock_word(pids[i], 12345, 7); /* not its start time */
        CHECK(fwi_lock_owner(stranger) == FWI_LOCK_DEAD,
              "pid %" PRIu64 " with another start time taken for the owner", pids[i]);
        for (uint64_t s = 0; s <= t->mask; s++)
            slot_n(t, s)->lock = stranger;
        for (uint32_t s = 0; s < FWI_TABLE_STRIPES; s++)
            t->hdr->stripe_locks[s] = stranger;
        int64_t t0 = mono_ms();
        int ok = check1(t, &log, "k", 1, S_NS + i + 1, &d) == 0 &&
                 check1(t, &log, "another", 1, S_NS, &d) == 0;
        int64_t waited = mono_ms() - t0;
        CHECK(ok && waited < FWI_LOCK_STALL_NS / 1000000,
              "a reused pid %" PRIu64 " held the locks %" PRId64 " ms", pids[i], waited);
    }
    kill(sleeper, SIGKILL);
    waitpid(sleeper, NULL, 0);
    fw_table_close(t);
}

/* Words no owner writes: pid 0 with other bits set, a pid above pid_max,
 * values above INT_MAX (an old bug truncated them to 0 or -1), and random
 * flipped bits of a valid word. Each is taken over, never waited for. */
static void test_invalid_words(void)
{
    fw_table_t *t;
    fw_table_options_t o = {32, 4};
    CHECK(fw_table_open_memory(&t, &o) == 0);
    fw_limit_t log = limit_of(FW_SLIDING_LOG, 4, S_NS, 0, 1);
    fw_decision_t d;
    CHECK(check1(t, &log, "k", 1, S_NS, &d) == 0);
    uint64_t words[] = {
        1,                               /* pid 0, counter 1 */
        (uint64_t)0xffffffff,            /* -1 as a 32-bit pid */
        (uint64_t)INT32_MAX + 1,         /* above INT_MAX */
        UINT64_MAX,                      /* pid 2^22 - 1 >= pid_max here, or dead */
        (FWI_LOCK_PID_LIMIT - 1) << FWI_LOCK_PID_SHIFT,
        (uint64_t)1 << 41,               /* only start-time bits */
    };
    size_t nwords = sizeof(words) / sizeof(words[0]);
    for (size_t i = 0; i < nwords; i++) {
        fwi_lock_owner_t o2 = fwi_lock_owner(words[i]);
        CHECK(o2 == FWI_LOCK_INVALID || o2 == FWI_LOCK_DEAD,
              "word %#" PRIx64 " taken for a live owner (%d)", words[i], (int)o2);
    }
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 64; round++) {
        uint64_t w = round < (int)nwords ? words[round] : 0;
        if (w == 0) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            w = fwi_lock_self() ^ ((uint64_t)1 << (42 + rng % 22)); /* a flipped pid bit */
            if (fwi_lock_owner(w) == FWI_LOCK_LIVE)
                continue; /* the flip landed on a live process with our start time */
        }
        for (uint64_t s = 0; s <= t->mask; s++)
            slot_n(t, s)->lock = w;
        for (uint32_t s = 0; s < FWI_TABLE_STRIPES; s++)
            t->hdr->stripe_locks[s] = w;
        int64_t t0 = mono_ms();
        int rc = check1(t, &log, "k", 1, 2 * S_NS * (round + 1), &d);
        int rc2 = check1(t, &log, "k2", 1, 2 * S_NS * (round + 1), &d);
        int64_t waited = mono_ms() - t0;
        CHECK(rc == 0 && rc2 == 0 && waited < FWI_LOCK_STALL_NS / 1000000,
              "word %#" PRIx64 ": rc %d/%d after %" PRId64 " ms", w, rc, rc2, waited);
    }
    fw_table_close(t);
}

/* ---- 2. damaged slots --------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Damage the state bytes of the slots at random, then run a window of
 * requests: every decision keeps remaining in [0, limit], and the key never
 * admits more than its capacity plus what the rate refills meanwhile. */
static void test_damaged_slots(void)
{
    static const fw_algorithm_t algos[] = {FW_GCRA, FW_TOKEN_BUCKET, FW_LEAKY_BUCKET,
                                           FW_LEAKY_BUCKET_SHAPING, FW_FIXED_WINDOW,
                                           FW_SLIDING_WINDOW, FW_SLIDING_LOG};
    enum { B = 5, SEEDS = 300, CALLS = 40 };
    int64_t bad_remaining = 0, over = 0, damaged_seen = 0;
    for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
        for (uint64_t seed = 1; seed <= SEEDS; seed++) {
            fw_table_t *t;
            fw_table_options_t o = {8, B};
            fw_table_open_memory(&t, &o);
            fw_limit_t lim = limit_of(algos[a], B, 3600 * S_NS, 0, 9); /* 5/hour */
            int64_t now = 1000 * S_NS + (int64_t)seed;
            fw_decision_t d;
            for (int i = 0; i < B; i++)
                check1(t, &lim, "k", 1, now, &d); /* spent */
            uint64_t rng = seed * 0x2545f4914f6cdd1dULL;
            /* damage: the state word, the log position, log entries */
            for (uint64_t s = 0; s <= t->mask; s++) {
                fwi_slot_t *sl = slot_n(t, s);
                if (sl->tag == 0)
                    continue;
                int what = (int)(rng_next(&rng) % 4);
                if (what == 0)
                    sl->state = rng_next(&rng);
                else if (what == 1)
                    sl->state ^= (uint64_t)1 << (rng_next(&rng) % 64);
                else if (what == 2)
                    sl->log_pos = rng_next(&rng) % 3 ? sl->log_pos ^ ((uint64_t)1 << (rng_next(&rng) % 64))
                                                     : rng_next(&rng);
                fw_log_entry_t *e = (fw_log_entry_t *)(void *)((unsigned char *)sl + FWI_SLOT_HEAD_SIZE);
                for (int k = 0; k < B; k++)
                    if (rng_next(&rng) % 3 == 0) {
                        if (rng_next(&rng) % 2)
                            e[k].t = (int64_t)rng_next(&rng);
                        else
                            e[k].cost = (int64_t)rng_next(&rng);
                    }
            }
            /* one hour of requests, the window of the policy */
            int64_t admitted = 0;
            for (int i = 0; i < CALLS; i++) {
                int64_t at = now + (int64_t)i * (3600 * S_NS / CALLS);
                int rc = check1(t, &lim, "k", 1, at, &d);
                fw_decision_t p;
                int rp = fw_table_peek(t, &lim, "k", 1, at, &p);
                if (rc != 0 || rp != 0 || d.remaining < 0 || d.remaining > d.limit ||
                    p.remaining < 0 || p.remaining > p.limit || d.limit != B)
                    bad_remaining++;
                admitted += rc == 0 && d.allowed;
            }
            /* A damaged word that still reads as a valid older state cannot
             * be told from one (a flipped low bit of a TAT): the bound is
             * what a fresh key gets in the hour, B plus B refilled. An
             * impossible or far-ahead state is decided as full instead. */
            if (admitted > 2 * B) {
                over++;
                fprintf(stderr, "%s seed %" PRIu64 ": %" PRId64 " admitted\n",
                        fw_algorithm_name(algos[a]), seed, admitted);
            }
            fw_table_stats_t st;
            fw_table_stats(t, now, &st);
            damaged_seen += st.damaged_states + st.clamped_states > 0;
            fw_table_close(t);
        }
    }
    CHECK(bad_remaining == 0, "%" PRId64 " decisions with remaining outside [0, limit]",
          bad_remaining);
    CHECK(over == 0, "%" PRId64 " damaged keys admitted more than the policy", over);
    CHECK(damaged_seen > 0, "no damage was ever noticed");
}

/* An impossible sliding-log state (entry cost 2^62) is counted, listed, and
 * decided as full: never "remaining 2^62" and 11 admissions on 5/hour. */
static void test_damaged_log_counted(void)
{
    fw_table_t *t;
    fw_table_options_t o = {8, 5};
    fw_table_open_memory(&t, &o);
    fw_limit_t lim = limit_of(FW_SLIDING_LOG, 5, 3600 * S_NS, 0, 1);
    fw_decision_t d;
    int64_t now = 5000 * S_NS;
    CHECK(check1(t, &lim, "k", 1, now, &d) == 0 && d.remaining == 4);
    uint64_t idx = 0;
    for (uint64_t s = 0; s <= t->mask; s++)
        if (slot_n(t, s)->tag != 0)
            idx = s;
    fw_log_entry_t *e = (fw_log_entry_t *)(void *)((unsigned char *)slot_n(t, idx) + FWI_SLOT_HEAD_SIZE);
    uint32_t head, len;
    int64_t units;
    fwi_log_pos_unpack(slot_n(t, idx)->log_pos, &head, &len, &units);
    e[head % 5].cost = -((int64_t)1 << 62);
    CHECK(fw_table_peek(t, &lim, "k", 1, now, &d) == 0 && !d.allowed && d.remaining == 0,
          "a damaged log peeks as full (remaining %" PRId64 ")", d.remaining);
    int admitted = 0;
    for (int i = 0; i < 11; i++)
        admitted += check1(t, &lim, "k", 1, now + i, &d) == 0 && d.allowed;
    CHECK(admitted == 0, "%d admitted by a damaged log", admitted);
    fw_table_stats_t st;
    fw_table_stats(t, now, &st);
    CHECK(st.damaged_states == 1 && st.last_damaged_slot == idx + 1,
          "damaged_states %" PRIu64 ", last slot %" PRIu64, st.damaged_states,
          st.last_damaged_slot);
    fw_slot_info_t info[4];
    size_t n = 0;
    CHECK(fw_table_damaged(t, info, 4, &n) == 0 && n == 1 && info[0].index == idx &&
          info[0].damaged_ns == now);
    /* full for one window, then the key is usable again */
    CHECK(check1(t, &lim, "k", 1, now + 3600 * S_NS, &d) == 0 && d.allowed);
    fw_table_close(t);
}

/* ---- 3. a clock excursion ----------------------------------------------------------- */

/* Requests made while the clock was a day ahead must not lock the key out
 * for a day once it is back: the wait is at most tau + max(tau, 1 s). */
static void test_clock_excursion(void)
{
    static const fw_algorithm_t algos[] = {FW_GCRA, FW_TOKEN_BUCKET, FW_LEAKY_BUCKET,
                                           FW_LEAKY_BUCKET_SHAPING, FW_FIXED_WINDOW,
                                           FW_SLIDING_WINDOW, FW_SLIDING_LOG};
    for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
        fw_table_t *t;
        fw_table_options_t o = {8, 10};
        fw_table_open_memory(&t, &o);
        fw_limit_t lim = limit_of(algos[a], 10, 60 * S_NS, 0, 1); /* 10/minute */
        fw_decision_t d;
        int64_t now = 1000 * DAY_NS;
        for (int i = 0; i < 10; i++)
            check1(t, &lim, "k", 1, now + DAY_NS, &d); /* spent, a day ahead */
        check1(t, &lim, "k", 1, now, &d);            /* the clock is back */
        int64_t horizon = algos[a] == FW_SLIDING_WINDOW ? 2 * 60 * S_NS : 60 * S_NS;
        CHECK(d.retry_after_ns <= horizon && d.reset_after_ns <= horizon,
              "%s: after the excursion the key waits retry %" PRId64 " reset %" PRId64
              " ns (policy: %" PRId64 ")", fw_algorithm_name(algos[a]), d.retry_after_ns,
              d.reset_after_ns, horizon);
        /* and the key is usable again within the policy's horizon */
        int back = check1(t, &lim, "k", 1, now + horizon, &d) == 0 && d.allowed;
        CHECK(back, "%s: still denied %" PRId64 " ns after the clock came back",
              fw_algorithm_name(algos[a]), horizon);
        fw_table_stats_t st;
        fw_table_stats(t, now, &st);
        CHECK(st.clamped_states >= 1, "%s: the clamp was not counted",
              fw_algorithm_name(algos[a]));
        fw_table_close(t);
    }
    /* the pure step: a GCRA TAT a day ahead is clamped to now + tau, and
     * the clamp is the state to keep */
    fw_quota_t q;
    fw_quota_init(&q, FW_GCRA, 10, 60 * S_NS, 0);
    uint64_t next = 0;
    fw_decision_t d;
    int64_t now = 1000 * DAY_NS;
    CHECK(fw_algo_step(&q, (uint64_t)(now + DAY_NS), now, 1, &next, &d) == 0 && !d.allowed);
    CHECK(next == (uint64_t)(now + q.tau_ns) && d.retry_after_ns == q.interval_ns,
          "clamped to %" PRIu64 ", retry %" PRId64, next, d.retry_after_ns);
    /* a peek clamps its answer but never writes */
    CHECK(fw_algo_step(&q, (uint64_t)(now + DAY_NS), now, 0, &next, &d) == 0 &&
          next == (uint64_t)(now + DAY_NS) && d.reset_after_ns == q.tau_ns);
    /* a lag within tau + max(tau, 1 s) is a lag: nothing refills */
    uint64_t lagged = (uint64_t)(now + q.tau_ns + q.tau_ns / 2);
    CHECK(fw_algo_step(&q, lagged, now, 1, &next, &d) == 0 && !d.allowed && next == lagged);
}

int main(void)
{
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"stopped lock owner", test_stopped_owner},
        {"slow running owner", test_slow_owner_waited_for},
        {"reused pid", test_reused_pid},
        {"invalid lock words", test_invalid_words},
        {"damaged slots (fuzz)", test_damaged_slots},
        {"damaged log counted", test_damaged_log_counted},
        {"clock excursion", test_clock_excursion},
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int before = failed;
        int64_t t0 = mono_ms();
        tests[i].fn();
        printf("%-30s %s (%.2f s)\n", tests[i].name, failed == before ? "ok" : "FAILED",
               (double)(mono_ms() - t0) / 1000.0);
    }
    return check_summary();
}
