/*
 * vector_reader.h - a tiny line-oriented reader for tests/vectors/<name>.json.
 *
 * The files are written by tests/vectors/generate.py with one JSON object
 * per line, so this reader needs no JSON library: it reads a line, splits
 * the flat object on it into (name, value) fields, and hands out cases,
 * steps and quota rows. Invariant: it only accepts the layout generate.py
 * writes; anything else is an error that names the file and line.
 *
 *   {"algorithm": "gcra", "cases": [          file header
 *   {"name": "...", ..., "steps": [           case header
 *   {"t": 0, "key": "a", "cost": 1, ...},     step (one per line)
 *   ]},                                       end of case
 *   ]}                                        end of file
 *
 * quotas.json has the header {"quotas": [ and one quota row per line.
 * Functions return 1 (got one), 0 (end of the list) or -1 (error; the
 * message is in fw_vectors_error()). Not thread-safe: one handle per thread.
 */
#ifndef FW_VECTOR_READER_H
#define FW_VECTOR_READER_H

#include <stdint.h>

#define FW_VEC_NAME_MAX 128
#define FW_VEC_KEY_MAX 32

typedef struct fw_vectors fw_vectors_t;

/* One test case: a quota and the steps that follow it. */
typedef struct fw_vec_case {
    char name[FW_VEC_NAME_MAX];
    int64_t rate;
    int64_t period_ns;
    int64_t burst;
} fw_vec_case_t;

/* One request and what it must get: a decision, or an error. */
typedef struct fw_vec_step {
    int64_t t;
    char key[FW_VEC_KEY_MAX];
    int64_t cost;
    int is_error;             /* 1: expect the error named in `error` */
    char error[16];           /* "cost"                              */
    int allowed;
    int64_t limit;
    int64_t remaining;
    int64_t retry_after_ns;
    int64_t reset_after_ns;
    int64_t delay_ns;
} fw_vec_step_t;

/* One row of quotas.json: the inputs, then the derived values or an error. */
typedef struct fw_vec_quota {
    char name[FW_VEC_NAME_MAX];
    char algorithm[32];
    int64_t rate;
    int64_t period_ns;
    int64_t burst;
    int is_error;             /* 1: expect `error` ("einval" / "erange")  */
    char error[16];
    int64_t capacity;
    int64_t interval_ns;
    int64_t tau_ns;
    int64_t window_ns;
} fw_vec_quota_t;

/* Open a vector file and read its header: 0 or -1. *out is set whenever
 * memory allows, also on failure, so that fw_vectors_error(*out) can say
 * what went wrong: close it in both cases. */
int fw_vectors_open(fw_vectors_t **out, const char *path);

/* The file's header: the algorithm name, or "quotas" for quotas.json. */
const char *fw_vectors_kind(const fw_vectors_t *v);

/* The next case; 0 at the end of the file. Skips what is left of the
 * previous case's steps. */
int fw_vectors_next_case(fw_vectors_t *v, fw_vec_case_t *c);

/* The next step of the current case; 0 at the end of the case. */
int fw_vectors_next_step(fw_vectors_t *v, fw_vec_step_t *s);

/* The next row of quotas.json; 0 at the end. */
int fw_vectors_next_quota(fw_vectors_t *v, fw_vec_quota_t *q);

/* The last error, "path:line: what" (empty when none). */
const char *fw_vectors_error(const fw_vectors_t *v);

/* Close the file and free the handle. NULL is a no-op. */
void fw_vectors_close(fw_vectors_t *v);

#endif /* FW_VECTOR_READER_H */
