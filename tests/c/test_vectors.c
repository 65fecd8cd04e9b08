/*
 * test_vectors.c - replays tests/vectors/<name>.json through the C engine.
 *
 * Usage: test_vectors VECTORS_DIR
 *
 * Every step of every case is checked three ways: the pure step
 * (fw_algo_step, or fw_log_step for sliding_log, with per-key state kept
 * here), fw_table_check on a memory table (one key per request), and, for
 * cost 0, fw_table_peek. quotas.json is replayed through fw_quota_init.
 * Invariant: every field of every decision must equal the vector; the last
 * line is "N passed, M failed" and the exit code is non-zero on a failure.
 */
#include "floodwall.h"
#include "vector_reader.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 16
#define MAX_PRINTED 200

static const struct {
    const char *name;
    fw_algorithm_t algorithm;
} ALGORITHMS[] = {
    {"gcra", FW_GCRA},
    {"token_bucket", FW_TOKEN_BUCKET},
    {"leaky_bucket", FW_LEAKY_BUCKET},
    {"leaky_bucket_shaping", FW_LEAKY_BUCKET_SHAPING},
    {"fixed_window", FW_FIXED_WINDOW},
    {"sliding_window", FW_SLIDING_WINDOW},
    {"sliding_log", FW_SLIDING_LOG},
};
#define N_ALGORITHMS (sizeof ALGORITHMS / sizeof ALGORITHMS[0])

static long passed, failed, printed;

/* Print one line about a failure (the first MAX_PRINTED lines only). */
static void vnote(const char *fmt, va_list ap)
{
    if (printed++ >= MAX_PRINTED) {
        if (printed == MAX_PRINTED + 1)
            printf("... further failures not shown\n");
        return;
    }
    vprintf(fmt, ap);
    putchar('\n');
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnote(fmt, ap);
    va_end(ap);
}

/* Print and count one failed check. */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    va_list ap;
    failed++;
    va_start(ap, fmt);
    vnote(fmt, ap);
    va_end(ap);
}

static fw_algorithm_t algorithm_by_name(const char *name)
{
    for (size_t i = 0; i < N_ALGORITHMS; i++)
        if (strcmp(ALGORITHMS[i].name, name) == 0)
            return ALGORITHMS[i].algorithm;
    return FW_ALGORITHM_COUNT; /* unknown: fw_quota_init must say FW_EINVAL */
}

/* Compare one outcome (rc, d) with the expected step; count it. */
static void expect(const char *algo, const char *case_name, long index,
                   const char *how, const fw_vec_step_t *s, int rc,
                   const fw_decision_t *d)
{
    char where[320];
    snprintf(where, sizeof where,
             "FAIL %s/%s step %ld [%s] t=%" PRId64 " key=%s cost=%" PRId64, algo,
             case_name, index, how, s->t, s->key, s->cost);
    if (s->is_error) {
        if (rc == FW_ECOST)
            passed++;
        else
            report("%s: want FW_ECOST, got %d (%s)", where, rc, fw_strerror(rc));
        return;
    }
    if (rc != 0) {
        report("%s: want a decision, got error %d (%s)", where, rc, fw_strerror(rc));
        return;
    }
    int bad = 0;
#define CHECK(field, want)                                                     \
    do {                                                                       \
        if ((int64_t)(d->field) != (int64_t)(want)) {                          \
            note("%s: " #field " got %" PRId64 " want %" PRId64, where,        \
                   (int64_t)(d->field), (int64_t)(want));                      \
            bad = 1;                                                           \
        }                                                                      \
    } while (0)
    CHECK(allowed, s->allowed);
    CHECK(limit, s->limit);
    CHECK(remaining, s->remaining);
    CHECK(retry_after_ns, s->retry_after_ns);
    CHECK(reset_after_ns, s->reset_after_ns);
    CHECK(delay_ns, s->delay_ns);
#undef CHECK
    if (bad)
        failed++;
    else
        passed++;
}

typedef struct key_state {
    char key[FW_VEC_KEY_MAX];
    uint64_t state;
    fw_log_t log;
} key_state_t;

typedef struct replay {
    const char *algo;
    fw_algorithm_t algorithm;
    fw_quota_t quota;
    fw_limit_t limit;
    fw_table_t *table;
    key_state_t keys[MAX_KEYS];
    int n_keys;
} replay_t;

static key_state_t *key_slot(replay_t *r, const char *key)
{
    for (int i = 0; i < r->n_keys; i++)
        if (strcmp(r->keys[i].key, key) == 0)
            return &r->keys[i];
    if (r->n_keys == MAX_KEYS)
        return NULL;
    key_state_t *k = &r->keys[r->n_keys];
    memset(k, 0, sizeof *k);
    snprintf(k->key, sizeof k->key, "%s", key);
    if (r->algorithm == FW_SLIDING_LOG) {
        k->log.capacity = (uint32_t)r->quota.burst;
        k->log.entries = calloc(k->log.capacity, sizeof *k->log.entries);
        if (!k->log.entries)
            return NULL;
    }
    r->n_keys++;
    return k;
}

static void replay_free(replay_t *r)
{
    for (int i = 0; i < r->n_keys; i++)
        free(r->keys[i].log.entries);
    fw_table_close(r->table);
    r->n_keys = 0;
    r->table = NULL;
}

static void replay_step(replay_t *r, const char *case_name, long index,
                        const fw_vec_step_t *s)
{
    key_state_t *k = key_slot(r, s->key);
    if (!k) {
        report("FAIL %s/%s step %ld: too many keys (or no memory)", r->algo,
               case_name, index);
        return;
    }
    fw_decision_t d;
    int rc;

    /* 1. the pure step, state kept here */
    memset(&d, 0, sizeof d);
    if (r->algorithm == FW_SLIDING_LOG) {
        rc = fw_log_step(&r->quota, &k->log, s->t, s->cost, &d);
    } else {
        uint64_t next = k->state ^ 0x5a5a5a5a5a5a5a5aull;
        rc = fw_algo_step(&r->quota, k->state, s->t, s->cost, &next, &d);
        if (rc == 0 && (!d.allowed || s->cost == 0) && next != k->state)
            report("FAIL %s/%s step %ld [step]: a denial or peek changed the "
                   "state %" PRIu64 " -> %" PRIu64,
                   r->algo, case_name, index, k->state, next);
        if (rc == 0)
            k->state = next;
    }
    expect(r->algo, case_name, index, "step", s, rc, &d);

    /* 2. the memory table, one key per request */
    fw_request_t req = {&r->limit, s->key, strlen(s->key)};
    size_t violated = 99;
    memset(&d, 0, sizeof d);
    rc = fw_table_check(r->table, &req, 1, s->cost, s->t, &d, &violated);
    expect(r->algo, case_name, index, "table", s, rc, &d);
    if (rc == 0 && violated != (d.allowed ? 1u : 0u))
        report("FAIL %s/%s step %ld [table]: violated = %zu", r->algo, case_name,
               index, violated);

    /* 3. fw_table_peek must agree with a cost-0 check */
    if (s->cost == 0) {
        memset(&d, 0, sizeof d);
        rc = fw_table_peek(r->table, &r->limit, s->key, strlen(s->key), s->t, &d);
        expect(r->algo, case_name, index, "table_peek", s, rc, &d);
    }
}

static void replay_file(const char *dir, const char *algo, fw_algorithm_t algorithm)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.json", dir, algo);
    fw_vectors_t *v = NULL;
    if (fw_vectors_open(&v, path) < 0) {
        report("FAIL %s: %s", algo, fw_vectors_error(v));
        fw_vectors_close(v);
        return;
    }
    if (strcmp(fw_vectors_kind(v), algo) != 0)
        report("FAIL %s: file says algorithm \"%s\"", path, fw_vectors_kind(v));

    fw_vec_case_t c;
    fw_vec_step_t s;
    int rc;
    uint64_t case_no = 0;
    while ((rc = fw_vectors_next_case(v, &c)) == 1) {
        replay_t r;
        memset(&r, 0, sizeof r);
        r.algo = algo;
        r.algorithm = algorithm;
        int qrc = fw_quota_init(&r.quota, algorithm, c.rate, c.period_ns, c.burst);
        if (qrc != 0) {
            report("FAIL %s/%s: fw_quota_init(%" PRId64 ", %" PRId64 ", %" PRId64
                   ") = %d (%s)",
                   algo, c.name, c.rate, c.period_ns, c.burst, qrc, fw_strerror(qrc));
            continue; /* next_case skips this case's steps */
        }
        r.limit.quota = r.quota;
        r.limit.namespace_id = ++case_no;
        fw_table_options_t opt = {
            .max_keys = 64,
            .log_capacity = algorithm == FW_SLIDING_LOG ? (uint32_t)c.burst : 0,
        };
        int trc = fw_table_open_memory(&r.table, &opt);
        if (trc != 0) {
            report("FAIL %s/%s: fw_table_open_memory = %d (%s)", algo, c.name, trc,
                   fw_strerror(trc));
            r.table = NULL;
            continue;
        }
        long index = 0;
        while ((rc = fw_vectors_next_step(v, &s)) == 1)
            replay_step(&r, c.name, index++, &s);
        replay_free(&r);
        if (rc < 0)
            break;
    }
    if (rc < 0)
        report("FAIL %s", fw_vectors_error(v));
    fw_vectors_close(v);
}

static void replay_quotas(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/quotas.json", dir);
    fw_vectors_t *v = NULL;
    if (fw_vectors_open(&v, path) < 0) {
        report("FAIL quotas: %s", fw_vectors_error(v));
        fw_vectors_close(v);
        return;
    }
    fw_vec_quota_t e;
    int rc;
    while ((rc = fw_vectors_next_quota(v, &e)) == 1) {
        fw_quota_t q;
        memset(&q, 0, sizeof q);
        fw_algorithm_t a = algorithm_by_name(e.algorithm);
        int got = fw_quota_init(&q, a, e.rate, e.period_ns, e.burst);
        if (e.is_error) {
            int want = strcmp(e.error, "einval") == 0   ? FW_EINVAL
                       : strcmp(e.error, "erange") == 0 ? FW_ERANGE
                                                        : 1;
            if (got == want)
                passed++;
            else
                report("FAIL quotas/%s: want %s, got %d (%s)", e.name, e.error, got,
                       fw_strerror(got));
            continue;
        }
        if (got != 0) {
            report("FAIL quotas/%s: want success, got %d (%s)", e.name, got,
                   fw_strerror(got));
            continue;
        }
        if (q.algorithm != a || q.rate != e.rate || q.period_ns != e.period_ns ||
            q.burst != e.capacity || q.interval_ns != e.interval_ns ||
            q.tau_ns != e.tau_ns || q.window_ns != e.window_ns)
            report("FAIL quotas/%s: got burst=%" PRId64 " T=%" PRId64 " tau=%" PRId64
                   " W=%" PRId64 ", want burst=%" PRId64 " T=%" PRId64
                   " tau=%" PRId64 " W=%" PRId64,
                   e.name, q.burst, q.interval_ns, q.tau_ns, q.window_ns, e.capacity,
                   e.interval_ns, e.tau_ns, e.window_ns);
        else
            passed++;
    }
    if (rc < 0)
        report("FAIL %s", fw_vectors_error(v));
    fw_vectors_close(v);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
        return 2;
    }
    replay_quotas(argv[1]);
    for (size_t i = 0; i < N_ALGORITHMS; i++)
        replay_file(argv[1], ALGORITHMS[i].name, ALGORITHMS[i].algorithm);
    printf("%ld passed, %ld failed\n", passed, failed);
    return failed ? 1 : 0;
}
