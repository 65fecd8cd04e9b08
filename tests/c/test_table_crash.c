/*
 * test_table_crash.c - crash safety of the slot table: processes sharing a
 * table in a MAP_SHARED mapping are SIGKILLed (and SIGSTOPped) at random
 * instructions, and the pid-owned locks are exercised white-box.
 *
 * Invariant checked: a process killed anywhere never leaves a key stuck or
 * unusable, a lock of a dead process is taken over (a live one, even this
 * process's other thread, is waited for), no slot becomes unclaimable, no
 * key ends up with two slots or with another key's fingerprint half, and a
 * fresh key is exact afterwards. Prints "N passed, M failed"; exits non-zero
 * on any failure. argv[1] (the vectors directory) is ignored.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "table_helpers.h"
#include "floodwall.h"
#include "lock.h"
#include "table.h"

static uint64_t own_lock_word(void) { return fwi_lock_self(); }

#define S_NS 1000000000LL

static const fw_algorithm_t ALGOS[] = {
    FW_GCRA,         FW_TOKEN_BUCKET,   FW_LEAKY_BUCKET, FW_LEAKY_BUCKET_SHAPING,
    FW_FIXED_WINDOW, FW_SLIDING_WINDOW, FW_SLIDING_LOG,
};
#define NALGOS (sizeof(ALGOS) / sizeof(ALGOS[0]))

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* A table laid out in a MAP_SHARED | MAP_ANONYMOUS mapping: fork()ed
 * children share it. */
typedef struct shared_table {
    void *mem;
    size_t len;
    fw_table_t *t;
} shared_table_t;

static void shared_open(shared_table_t *st, uint64_t max_keys, uint32_t log_capacity)
{
    fw_table_options_t o = {max_keys, log_capacity};
    if (fw_table_size(&o, &st->len) != 0)
        exit(2);
    st->mem = mmap(NULL, st->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (st->mem == MAP_FAILED || fw_table_format(st->mem, st->len, &o) != 0 ||
        fw_table_attach(&st->t, st->mem, st->len) != 0) {
        fprintf(stderr, "cannot lay out a shared table\n");
        exit(2);
    }
}

static void shared_close(shared_table_t *st)
{
    fw_table_close(st->t);
    munmap(st->mem, st->len);
}

static fwi_slot_t *slot_n(fw_table_t *t, uint64_t i)
{
    return (fwi_slot_t *)(void *)(t->slots + (i & t->mask) * t->slot_size);
}

static uint64_t home_of(fw_table_t *t, const fw_limit_t *l, const char *key)
{
    uint64_t fp[2];
    fw_table_fingerprint(t, l, key, strlen(key), fp);
    return fp[1] & t->mask;
}

/* The slot that holds `key`, or NULL; counts in *copies the slots carrying
 * its whole fingerprint (more than one: the key has two slots). */
static fwi_slot_t *slot_of_key(fw_table_t *t, const fw_limit_t *l, const char *key,
                              int *copies)
{
    uint64_t fp[2];
    fw_table_fingerprint(t, l, key, strlen(key), fp);
    fwi_slot_t *found = NULL;
    int n = 0;
    for (uint64_t i = 0; i <= t->mask; i++) {
        fwi_slot_t *s = slot_n(t, i);
        if (s->tag == fp[0] && s->check == fp[1]) {
            n++;
            if (!found)
                found = s;
        }
    }
    if (copies)
        *copies = n;
    return found;
}

/* fork(), and the child dies with this process (never left running). */
static pid_t fork_child(void)
{
    pid_t parent = getpid();
    pid_t p = fork();
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
    }
    return p;
}

/* A pid that no process has (a child that has exited and been reaped). */
static pid_t dead_pid(void)
{
    pid_t p = fork_child();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

/* Run fn(arg) in a child with a time limit: 1 if it returned in time. A
 * lock that is never taken over hangs the child, not the test program. */
static int finishes_within(void (*fn)(void *), void *arg, int seconds)
{
    pid_t p = fork_child();
    if (p == 0) {
        alarm((unsigned)seconds);
        fn(arg);
        _exit(0);
    }
    int status = 0;
    waitpid(p, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- 1. pid-owned locks ----------------------------------------------------------- */

typedef struct lock_case {
    fw_table_t *t;
    const fw_limit_t *lim;
    const char *key;
    int64_t now;
    volatile int done;
    int rc, allowed;
} lock_case_t;

static void *lock_case_run(void *p)
{
    lock_case_t *c = p;
    fw_decision_t d;
    c->rc = check1(c->t, c->lim, c->key, 1, c->now, &d);
    c->allowed = d.allowed;
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void lock_case_fn(void *p) { lock_case_run(p); }

static void test_lock_owners(void)
{
    fw_table_t *t;
    fw_table_options_t o = {64, 8};
    fw_table_open_memory(&t, &o);
    fw_limit_t log = limit_of(FW_SLIDING_LOG, 8, S_NS, 0, 1);
    fw_limit_t gcra = limit_of(FW_GCRA, 8, S_NS, 0, 2);
    fw_decision_t d;
    check1(t, &log, "k", 1, 1000, &d);
    int copies;
    fwi_slot_t *s = slot_of_key(t, &log, "k", &copies);
    CHECK(s && copies == 1, "key k has %d slots", copies);
    if (!s)
        return;

    /* a slot lock held by this process (as if another of its threads were
     * inside): waited for, never taken over; released within the bound, the
     * check completes */
    uint64_t mine = own_lock_word();
    __atomic_store_n(&s->lock, mine, __ATOMIC_SEQ_CST);
    lock_case_t c = {t, &log, "k", 1001, 0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, lock_case_run, &c);
    sleep_us(5000);
    CHECK(!__atomic_load_n(&c.done, __ATOMIC_SEQ_CST),
          "a check went through a slot lock this process holds");
    __atomic_store_n(&s->lock, 0, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    CHECK(c.done && c.rc == 0 && c.allowed, "the check did not complete after unlock");

    /* held by a dead process: taken over */
    __atomic_store_n(&s->lock, fwi_lock_word((uint64_t)dead_pid(), 0, 0), __ATOMIC_SEQ_CST);
    lock_case_t c2 = {t, &log, "k", 1002, 0, 0, 0};
    CHECK(finishes_within(lock_case_fn, &c2, 5), "a dead owner's slot lock was not taken over");
    __atomic_store_n(&s->lock, 0, __ATOMIC_SEQ_CST);

    /* a stripe lock: the same two rules, on an insert */
    uint64_t stripe = home_of(t, &gcra, "new") % FWI_TABLE_STRIPES;
    __atomic_store_n(&t->hdr->stripe_locks[stripe], mine, __ATOMIC_SEQ_CST);
    lock_case_t c3 = {t, &gcra, "new", 1000, 0, 0, 0};
    pthread_create(&th, NULL, lock_case_run, &c3);
    sleep_us(5000);
    CHECK(!__atomic_load_n(&c3.done, __ATOMIC_SEQ_CST),
          "an insert went through a stripe lock this process holds");
    __atomic_store_n(&t->hdr->stripe_locks[stripe], 0, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    CHECK(c3.done && c3.rc == 0 && c3.allowed, "the insert did not complete after unlock");
    lock_case_t c4 = {t, &gcra, "new2", 1000, 0, 0, 0};
    stripe = home_of(t, &gcra, "new2") % FWI_TABLE_STRIPES;
    __atomic_store_n(&t->hdr->stripe_locks[stripe], fwi_lock_word((uint64_t)dead_pid(), 0, 0),
                     __ATOMIC_SEQ_CST);
    CHECK(finishes_within(lock_case_fn, &c4, 5), "a dead owner's stripe lock was not taken over");
    fw_table_close(t);
}

/* A slot whose key expired while a dead process held its lock must still
 * be reclaimable (a lock nobody will ever take again must not pin it). */
static void test_dead_lock_on_expired_slot(void)
{
    for (int with_logs = 0; with_logs < 2; with_logs++) {
        shared_table_t st;
        shared_open(&st, 1, with_logs ? 4 : 0); /* 64 slots */
        fw_table_t *t = st.t;
        t->cap = UINT64_MAX; /* fill every slot, past max_keys (test only) */
        fw_limit_t lim = limit_of(with_logs ? FW_SLIDING_LOG : FW_GCRA, 4, 1000, 0, 1);
        fw_decision_t d;
        char key[32];
        fw_table_stats_t s0;
        for (int i = 0; i < 20000; i++) {
            fw_table_stats(t, 1000, &s0);
            if (s0.used == s0.slots)
                break;
            snprintf(key, sizeof(key), "fill-%d", i);
            check1(t, &lim, key, 1, 1000, &d);
        }
        CHECK(s0.used == s0.slots, "could not fill the table (%" PRIu64 " used)", s0.used);
        pid_t gone = dead_pid();
        for (uint64_t i = 0; i <= t->mask; i++)
            slot_n(t, i)->lock = fwi_lock_word((uint64_t)gone, 0, 0);
        /* much later: every key is fresh, every slot reclaimable */
        int ok = 0;
        for (int i = 0; i < 16; i++) {
            snprintf(key, sizeof(key), "later-%d", i);
            ok += check1(t, &lim, key, 1, 10 * S_NS, &d) == 0 && d.allowed;
        }
        CHECK(ok == 16, "%s table: %d of 16 new keys found a slot among expired slots "
              "whose lock a dead process held", with_logs ? "log" : "gcra", ok);
        shared_close(&st);
    }
}

/* ---- 2. a claim interrupted between its tag and its check ------------------------ */

/* A child inserts keys X0, X1, X0, ... into slot S, the only claimable slot
 * of their probe windows (a second, exhausted part D denies each request, so
 * the new key stays fresh and the next one takes S again). The parent stops
 * the child at random moments; when it is caught between the CAS that sets
 * S's tag and the store of S's check, the parent inserts key A whose window
 * also holds S. Whatever the interleaving, no slot may end up with one key's
 * tag and another key's check, and A, if admitted, keeps its state. */

typedef struct race_keys {
    fw_limit_t filler, xlim, alim;
    char x[2][32], a[32], d[32];
    uint64_t sidx;
} race_keys_t;

static int setup_race(shared_table_t *st, race_keys_t *k)
{
    fw_table_t *t = st->t;
    memset(t->hdr->stripe_locks, 0, sizeof(t->hdr->stripe_locks));
    memset(t->slots, 0, (size_t)(t->mask + 1) * t->slot_size);
    fw_decision_t d;
    char key[32];
    fw_table_stats_t s0;
    fw_table_stats(t, 1000, &s0);
    /* every slot: a key that stays exhausted for 10^6 s */
    for (int i = 0; i < 50000 && s0.used < s0.slots; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        check1(t, &k->filler, key, 1, 1000, &d);
        fw_table_stats(t, 1000, &s0);
    }
    if (s0.used != s0.slots)
        return 0;
    /* S: one slot made reclaimable; D: an exhausted key elsewhere */
    k->sidx = 20;
    fwi_slot_t *s = slot_n(t, k->sidx);
    s->expiry = 0;
    s->state = 0; /* a GCRA key is fresh at its TAT too (FWI_TAG_TAT) */
    for (int i = 0;; i++) {
        snprintf(k->d, sizeof(k->d), "f%d", i);
        if (slot_of_key(t, &k->filler, k->d, NULL) != s)
            break;
    }
    /* X0, X1: homes whose window holds S; A: another home (another stripe) */
    int nx = 0;
    uint64_t xh[2] = {0, 0};
    for (int i = 0; i < 100000 && nx < 2; i++) {
        snprintf(key, sizeof(key), "x%d", i);
        uint64_t h = home_of(t, &k->xlim, key);
        if (((k->sidx - h) & t->mask) < 24 && (nx == 0 || h != xh[0])) {
            xh[nx] = h;
            snprintf(k->x[nx++], sizeof(k->x[0]), "%s", key);
        }
    }
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "a%d", i);
        uint64_t h = home_of(t, &k->alim, key);
        if (((k->sidx - h) & t->mask) < 24 && h != xh[0] && h != xh[1]) {
            snprintf(k->a, sizeof(k->a), "%s", key);
            return nx == 2;
        }
    }
    return 0;
}

static void race_child(shared_table_t *st, race_keys_t *k)
{
    int64_t now = 2000;
    for (unsigned i = 0;; i++) {
        fw_request_t r[2] = {{&k->xlim, k->x[i & 1], strlen(k->x[i & 1])},
                             {&k->filler, k->d, strlen(k->d)}};
        fw_decision_t out[2];
        size_t v;
        fw_table_check(st->t, r, 2, 1, now++, out, &v);
    }
}

static void test_interrupted_claim(void)
{
    shared_table_t st;
    shared_open(&st, 1, 0); /* 64 slots */
    st.t->cap = UINT64_MAX;  /* every slot holds a key, past max_keys (test only) */
    race_keys_t k;
    k.filler = limit_of(FW_GCRA, 1, 1000000 * S_NS, 1, 1);
    k.xlim = limit_of(FW_GCRA, 1, 1000000 * S_NS, 1, 2);
    k.alim = limit_of(FW_GCRA, 1, 1000000 * S_NS, 1, 3);
    int64_t now_a = 500000 * S_NS; /* after X's clock, before the fillers expire */
    uint64_t seed = 0x1234abcdULL;
    int caught = 0, trials = 0, a_admitted = 0, mixed = 0, lost = 0, setups = 0;
    double t0 = now_s();
    while (caught < 12 && now_s() - t0 < 3.0) {
        if (!setup_race(&st, &k)) {
            setups++;
            if (setups > 3)
                break;
            continue;
        }
        pid_t child = fork_child();
        if (child == 0)
            race_child(&st, &k);
        sleep_us(200); /* let it get going */
        int hit = 0;
        uint64_t fx[2][2];
        for (int j = 0; j < 2; j++)
            fw_table_fingerprint(st.t, &k.xlim, k.x[j], strlen(k.x[j]), fx[j]);
        fwi_slot_t *s = slot_n(st.t, k.sidx);
        for (int stops = 0; stops < 400 && !hit; stops++) {
            trials++;
            sleep_us((long)(rng_next(&seed) % 40));
            kill(child, SIGSTOP);
            int status;
            waitpid(child, &status, WUNTRACED);
            for (int j = 0; j < 2; j++)
                if (s->tag == fx[j][0] && s->check != fx[j][1])
                    hit = 1;
            if (!hit)
                kill(child, SIGCONT);
        }
        if (hit) {
            caught++;
            fw_decision_t d;
            int rc = check1(st.t, &k.alim, k.a, 1, now_a, &d);
            int admitted = rc == 0 && d.allowed;
            a_admitted += admitted;
            kill(child, SIGCONT);
            sleep_us(2000); /* the child finishes its claim */
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
            /* no slot may mix two keys' fingerprint halves */
            uint64_t fa[2];
            fw_table_fingerprint(st.t, &k.alim, k.a, strlen(k.a), fa);
            for (uint64_t i = 0; i <= st.t->mask; i++) {
                fwi_slot_t *x = slot_n(st.t, i);
                int tag_a = x->tag == fa[0], chk_a = x->check == fa[1];
                int tag_x = x->tag == fx[0][0] || x->tag == fx[1][0];
                int chk_x = x->check == fx[0][1] || x->check == fx[1][1];
                if ((tag_a && chk_x) || (tag_x && chk_a))
                    mixed++;
            }
            /* A keeps what it consumed */
            if (admitted) {
                rc = fw_table_peek(st.t, &k.alim, k.a, strlen(k.a), now_a, &d);
                if (rc != 0 || d.remaining != 0)
                    lost++;
            }
        } else {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
    }
    printf("  interrupted claim: caught %d times in %d stops (A admitted %d)\n", caught,
           trials, a_admitted);
    CHECK(setups <= 3, "could not set the race up");
    CHECK(mixed == 0, "%d slots hold one key's tag and another key's check", mixed);
    CHECK(lost == 0, "%d times key A lost its state to an interrupted claim", lost);
    shared_close(&st);
}

/* ---- 3. SIGKILL at random moments -------------------------------------------------- */

#define POOL 40
#define CHURN 400

typedef struct crash_shared {
    int64_t clock;
    uint64_t ops;
} crash_shared_t;

static fw_limit_t crash_limits[NALGOS], churn_limits[NALGOS];

static void crash_limits_init(void)
{
    for (size_t i = 0; i < NALGOS; i++) {
        crash_limits[i] = limit_of(ALGOS[i], 10, 2000000, 0, 10 + i); /* W = 2 ms */
        churn_limits[i] = limit_of(ALGOS[i], 2, 20000, 0, 20 + i);    /* short */
    }
}

static void crash_child(fw_table_t *t, crash_shared_t *sh, uint64_t seed)
{
    uint64_t rng = seed;
    for (;;) {
        int64_t now = 1000000 + __atomic_fetch_add(&sh->clock, 1 + (int64_t)(rng_next(&rng) % 50),
                                                   __ATOMIC_RELAXED);
        if (rng_next(&rng) % 16 == 0)
            now -= (int64_t)(rng_next(&rng) % 100000); /* a caller with an older clock */
        char k1[32], k2[32];
        unsigned op = (unsigned)(rng_next(&rng) % 100);
        size_t a = (size_t)(rng_next(&rng) % NALGOS), b = (size_t)(rng_next(&rng) % NALGOS);
        snprintf(k1, sizeof(k1), "p%u", (unsigned)(rng_next(&rng) % POOL));
        snprintf(k2, sizeof(k2), "p%u", (unsigned)(rng_next(&rng) % POOL));
        fw_decision_t out[3];
        size_t v;
        int64_t cost = 1 + (int64_t)(rng_next(&rng) % 2);
        if (op < 45) {
            fw_request_t r = {&crash_limits[a], k1, strlen(k1)};
            fw_table_check(t, &r, 1, cost, now, out, &v);
        } else if (op < 75) {
            fw_request_t r[3] = {{&crash_limits[a], k1, strlen(k1)},
                                 {&crash_limits[6], k2, strlen(k2)},
                                 {&crash_limits[b], k1, strlen(k1)}};
            fw_table_check(t, r, 3, cost, now, out, &v);
        } else if (op < 78) {
            fw_table_reset(t, &crash_limits[a], k1, strlen(k1));
        } else {
            snprintf(k1, sizeof(k1), "c%u", (unsigned)(rng_next(&rng) % CHURN));
            fw_request_t r = {&churn_limits[a], k1, strlen(k1)};
            fw_table_check(t, &r, 1, 1, now, out, &v);
        }
        __atomic_fetch_add(&sh->ops, 1, __ATOMIC_RELAXED);
    }
}

/* The content rules a crash must never break (see fw_table_doctor). */
static int table_consistent(fw_table_t *t, char *why, size_t cap)
{
    for (uint64_t i = 0; i <= t->mask; i++) {
        fwi_slot_t *s = slot_n(t, i);
        if (s->tag == 0)
            continue;
        if (s->expiry < 0) {
            snprintf(why, cap, "slot %" PRIu64 ": negative expiry", i);
            return 0;
        }
        uint32_t head, len;
        int64_t units, sum = 0;
        if (!fwi_log_pos_unpack(s->log_pos, &head, &len, &units)) {
            snprintf(why, cap, "slot %" PRIu64 ": log position check bits", i);
            return 0;
        }
        if (head >= t->log_capacity || len > t->log_capacity) {
            snprintf(why, cap, "slot %" PRIu64 ": log position %u+%u", i, head, len);
            return 0;
        }
        fw_log_entry_t *e = (fw_log_entry_t *)(void *)((unsigned char *)s + FWI_SLOT_HEAD_SIZE);
        for (uint32_t j = 0; j < len; j++) {
            fw_log_entry_t *x = &e[(head + j) % t->log_capacity];
            fw_log_entry_t *y = &e[(head + j + 1) % t->log_capacity];
            if (x->t < 0 || x->cost < 1 || (j + 1 < len && y->t < x->t)) {
                snprintf(why, cap, "slot %" PRIu64 ": log entry %u (t %" PRId64 ", cost %"
                         PRId64 ") bad or out of time order", i, j, x->t, x->cost);
                return 0;
            }
            sum += x->cost;
        }
        if (units < sum) { /* a running total below its entries admits too much */
            snprintf(why, cap, "slot %" PRIu64 ": log total %" PRId64 " < entries' %" PRId64,
                     i, units, sum);
            return 0;
        }
    }
    return 1;
}

typedef struct exact_shared {
    int64_t admitted;
} exact_shared_t;

static void test_sigkill_loop(void)
{
    enum { KILLS = 100, CHILDREN = 2 };
    crash_limits_init();
    shared_table_t st;
    shared_open(&st, 512, 16); /* 1024 slots: 280 pool keys and the churn */
    fw_table_t *t = st.t;
    crash_shared_t *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(sh, 0, sizeof(*sh));
    uint64_t seed = 0xfeedULL;
    pid_t kids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        kids[i] = fork_child();
        if (kids[i] == 0)
            crash_child(t, sh, rng_next(&seed));
    }
    int kills = 0;
    double t0 = now_s();
    uint64_t stalls = 0, held_at_death = 0;
    while (kills < KILLS) {
        uint64_t before = __atomic_load_n(&sh->ops, __ATOMIC_RELAXED);
        sleep_us(200 + (long)(rng_next(&seed) % 3000));
        if (__atomic_load_n(&sh->ops, __ATOMIC_RELAXED) == before)
            stalls++; /* informative only: other processes share the CPUs */
        int i = (int)(rng_next(&seed) % CHILDREN);
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
        kills++;
        for (uint64_t j = 0; j <= t->mask; j++)
            held_at_death += slot_n(t, j)->lock == (uint64_t)kids[i];
        for (unsigned j = 0; j < FWI_TABLE_STRIPES; j++)
            held_at_death += t->hdr->stripe_locks[j] == (uint64_t)kids[i];
        kids[i] = fork_child();
        if (kids[i] == 0)
            crash_child(t, sh, rng_next(&seed));
    }
    for (int i = 0; i < CHILDREN; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    printf("  sigkill loop: %d kills, %" PRIu64 " operations, %.2f s, %" PRIu64
           " intervals without progress\n", kills, sh->ops, now_s() - t0, stalls);
    CHECK(sh->ops > 1000, "only %" PRIu64 " operations", sh->ops);

    char why[256] = "";
    CHECK(table_consistent(t, why, sizeof(why)), "after the kills: %s", why);
    uint64_t held = 0;
    for (uint64_t i = 0; i <= t->mask; i++)
        held += slot_n(t, i)->lock != 0;
    for (unsigned i = 0; i < FWI_TABLE_STRIPES; i++)
        held += t->hdr->stripe_locks[i] != 0;
    printf("  locks held by a process as it was killed: %" PRIu64 " (left at the end: %"
           PRIu64 ")\n", held_at_death, held);

    /* every key still works (a stuck lock would hang: the parent's alarm) */
    int64_t later = 1000000 + sh->clock + 10 * S_NS;
    int bad = 0, copies_bad = 0;
    for (size_t a = 0; a < NALGOS; a++)
        for (int k = 0; k < POOL; k++) {
            char key[32];
            snprintf(key, sizeof(key), "p%d", k);
            fw_decision_t d;
            int rc = check1(t, &crash_limits[a], key, 1, later, &d);
            if (rc != 0 || !d.allowed)
                bad++;
            int copies;
            slot_of_key(t, &crash_limits[a], key, &copies);
            copies_bad += copies > 1;
        }
    CHECK(bad == 0, "%d pool keys failed after the kills", bad);
    CHECK(copies_bad == 0, "%d keys have two slots", copies_bad);

    /* no slot is stuck: much later, for every slot in order, a new key whose
     * home it is takes it over (the slots before it are the earlier new
     * keys', so that slot is the first one its insert may take) */
    int64_t much_later = later + 100 * S_NS;
    t->cap = UINT64_MAX; /* one new key per slot, past max_keys (test only) */
    fw_limit_t fresh = limit_of(FW_GCRA, 1, 1000 * S_NS, 1, 99);
    uint64_t nslots = t->mask + 1, found = 0;
    int *key_of_home = malloc(nslots * sizeof(int));
    for (uint64_t i = 0; i < nslots; i++)
        key_of_home[i] = -1;
    for (int i = 0; found < nslots && i < 1000000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "n%d", i);
        uint64_t h = home_of(t, &fresh, key);
        if (key_of_home[h] < 0) {
            key_of_home[h] = i;
            found++;
        }
    }
    uint64_t stuck = 0;
    for (uint64_t i = 0; i < nslots; i++) {
        char key[32];
        snprintf(key, sizeof(key), "n%d", key_of_home[i]);
        fw_decision_t d;
        int rc = check1(t, &fresh, key, 1, much_later, &d);
        if (rc != 0 || slot_of_key(t, &fresh, key, NULL) != slot_n(t, i)) {
            if (!stuck)
                fprintf(stderr, "  slot %" PRIu64 " not taken over (rc %d, lock %" PRIu64
                        ", expiry %" PRId64 ")\n", i, rc, slot_n(t, i)->lock,
                        slot_n(t, i)->expiry);
            stuck++;
        }
    }
    free(key_of_home);
    CHECK(found == nslots && stuck == 0, "%" PRIu64 " of %" PRIu64 " slots could not be "
          "reclaimed", stuck, nslots);

    /* a fresh key is exact: processes hammer it at one instant */
    fw_table_clear(t);
    exact_shared_t *ex = mmap(NULL, sizeof(*ex), PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (size_t a = 0; a < NALGOS; a++) {
        ex->admitted = 0;
        pid_t p[4];
        for (int i = 0; i < 4; i++) {
            p[i] = fork_child();
            if (p[i] == 0) {
                for (int j = 0; j < 200; j++) {
                    fw_decision_t d;
                    if (check1(t, &crash_limits[a], "exact", 1, much_later, &d) == 0 &&
                        d.allowed)
                        __atomic_fetch_add(&ex->admitted, 1, __ATOMIC_RELAXED);
                }
                _exit(0);
            }
        }
        for (int i = 0; i < 4; i++)
            waitpid(p[i], NULL, 0);
        CHECK(ex->admitted == 10, "algorithm %zu: a fresh key admitted %" PRId64
              " across processes, want 10", a, ex->admitted);
    }
    munmap(ex, sizeof(*ex));
    munmap(sh, sizeof(*sh));
    shared_close(&st);
}

/* ---- main ---------------------------------------------------------------------------- */

static const char *volatile current_test = "";

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: watchdog: no progress for 30 s in test: ";
    static const char tail[] = "\n0 passed, 1 failed\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    w += write(2, current_test, strlen(current_test));
    w += write(2, tail, sizeof(tail) - 1);
    (void)w;
    _exit(1);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_alarm);
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"lock owners", test_lock_owners},
        {"dead lock on expired slot", test_dead_lock_on_expired_slot},
        {"interrupted claim", test_interrupted_claim},
        {"sigkill loop", test_sigkill_loop},
    };
    const char *only = getenv("FW_STRESS_ONLY");
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        current_test = tests[i].name;
        alarm(30);
        int f0 = failed;
        double t0 = now_s();
        tests[i].fn();
        printf("%-30s %s (%.2f s)\n", tests[i].name, failed == f0 ? "ok" : "FAILED",
               now_s() - t0);
    }
    alarm(0);
    return check_summary();
}
