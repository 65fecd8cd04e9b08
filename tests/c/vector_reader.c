/*
 * vector_reader.c - reads the line-oriented JSON of tests/vectors/<name>.json.
 *
 * Each line holds at most one flat object whose values are integers,
 * booleans, plain ASCII strings (no escapes) or, last on a header line, the
 * opening "[" of a list. Invariant: every value handed out was range-checked
 * (int64, buffer sizes); a malformed line is an error, never a guess.
 */
#include "vector_reader.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 4096
#define FIELDS_MAX 24
#define FIELD_NAME_MAX 32

struct fw_vectors {
    FILE *f;
    char path[256];
    long line_no;
    char line[LINE_MAX_LEN];
    char kind[32];
    int in_case; /* 1 while the steps of a case are being read */
    int at_end;  /* 1 once the closing line of the file was read */
    char err[700];
};

typedef enum { V_INT, V_BOOL, V_STR, V_LIST } value_type_t;

typedef struct field {
    char name[FIELD_NAME_MAX];
    value_type_t type;
    int64_t i; /* V_INT, V_BOOL */
    char s[FW_VEC_NAME_MAX];
} field_t;

typedef struct record {
    int n;
    field_t f[FIELDS_MAX];
} record_t;

static int fail(fw_vectors_t *v, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(v->err, sizeof v->err, "%s:%ld: %s", v->path, v->line_no, msg);
    return -1;
}

/* Read the next non-blank line into v->line: 1, 0 at end of file, -1. */
static int read_line(fw_vectors_t *v)
{
    for (;;) {
        if (!fgets(v->line, sizeof v->line, v->f)) {
            if (ferror(v->f))
                return fail(v, "read error");
            return 0;
        }
        v->line_no++;
        size_t len = strlen(v->line);
        if (len == sizeof v->line - 1 && v->line[len - 1] != '\n' && !feof(v->f))
            return fail(v, "line longer than %d bytes", LINE_MAX_LEN - 2);
        while (len > 0 && (v->line[len - 1] == '\n' || v->line[len - 1] == '\r'))
            v->line[--len] = '\0';
        const char *p = v->line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p)
            return 1;
    }
}

static const char *skip_ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* Copy a "..." string starting at *pp (on the quote) into out[cap]. */
static int parse_string(fw_vectors_t *v, const char **pp, char *out, size_t cap)
{
    const char *p = *pp + 1;
    size_t n = 0;
    while (*p && *p != '"') {
        if (*p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            return fail(v, "unsupported character in a string");
        if (n + 1 >= cap)
            return fail(v, "string longer than %zu bytes", cap - 1);
        out[n++] = *p++;
    }
    if (*p != '"')
        return fail(v, "unterminated string");
    out[n] = '\0';
    *pp = p + 1;
    return 0;
}

/* A decimal int64 at *pp, with overflow detection. */
static int parse_int(fw_vectors_t *v, const char **pp, int64_t *out)
{
    const char *p = *pp;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!isdigit((unsigned char)*p))
        return fail(v, "expected a number");
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    uint64_t mag = 0;
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (mag > (limit - d) / 10u)
            return fail(v, "number out of int64 range");
        mag = mag * 10u + d;
        p++;
    }
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    *pp = p;
    return 0;
}

/* Split the object on v->line into rec. A "[" value must come last. */
static int parse_record(fw_vectors_t *v, record_t *rec)
{
    const char *p = skip_ws(v->line);
    rec->n = 0;
    if (*p++ != '{')
        return fail(v, "expected '{'");
    p = skip_ws(p);
    if (*p == '}') {
        p++;
        goto close;
    }
    for (;;) {
        if (rec->n == FIELDS_MAX)
            return fail(v, "more than %d fields", FIELDS_MAX);
        field_t *f = &rec->f[rec->n];
        memset(f, 0, sizeof *f);
        p = skip_ws(p);
        if (*p != '"')
            return fail(v, "expected a field name");
        if (parse_string(v, &p, f->name, sizeof f->name) < 0)
            return -1;
        p = skip_ws(p);
        if (*p++ != ':')
            return fail(v, "expected ':' after \"%s\"", f->name);
        p = skip_ws(p);
        if (*p == '"') {
            f->type = V_STR;
            if (parse_string(v, &p, f->s, sizeof f->s) < 0)
                return -1;
        } else if (strncmp(p, "true", 4) == 0) {
            f->type = V_BOOL;
            f->i = 1;
            p += 4;
        } else if (strncmp(p, "false", 5) == 0) {
            f->type = V_BOOL;
            f->i = 0;
            p += 5;
        } else if (*p == '[') {
            f->type = V_LIST;
            rec->n++;
            p = skip_ws(p + 1);
            if (*p)
                return fail(v, "text after '['");
            return 0;
        } else {
            f->type = V_INT;
            if (parse_int(v, &p, &f->i) < 0)
                return -1;
        }
        rec->n++;
        p = skip_ws(p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}') {
            p++;
            break;
        }
        return fail(v, "expected ',' or '}' after \"%s\"", f->name);
    }
close:
    p = skip_ws(p);
    if (*p == ',')
        p = skip_ws(p + 1);
    if (*p)
        return fail(v, "text after the object");
    return 0;
}

static const field_t *find(const record_t *rec, const char *name)
{
    for (int i = 0; i < rec->n; i++)
        if (strcmp(rec->f[i].name, name) == 0)
            return &rec->f[i];
    return NULL;
}

static int get_int(fw_vectors_t *v, const record_t *rec, const char *name, int64_t *out)
{
    const field_t *f = find(rec, name);
    if (!f || f->type != V_INT)
        return fail(v, "missing integer field \"%s\"", name);
    *out = f->i;
    return 0;
}

static int get_bool(fw_vectors_t *v, const record_t *rec, const char *name, int *out)
{
    const field_t *f = find(rec, name);
    if (!f || f->type != V_BOOL)
        return fail(v, "missing boolean field \"%s\"", name);
    *out = (int)f->i;
    return 0;
}

static int get_str(fw_vectors_t *v, const record_t *rec, const char *name, char *out,
                   size_t cap)
{
    const field_t *f = find(rec, name);
    if (!f || f->type != V_STR)
        return fail(v, "missing string field \"%s\"", name);
    if (strlen(f->s) >= cap)
        return fail(v, "field \"%s\" longer than %zu bytes", name, cap - 1);
    memcpy(out, f->s, strlen(f->s) + 1);
    return 0;
}

/* Is v->line a closing "]}" (with an optional trailing comma)? */
static int is_close(const fw_vectors_t *v)
{
    const char *p = skip_ws(v->line);
    if (*p != ']')
        return 0;
    p = skip_ws(p + 1);
    if (*p != '}')
        return 0;
    p = skip_ws(p + 1);
    if (*p == ',')
        p = skip_ws(p + 1);
    return *p == '\0';
}

int fw_vectors_open(fw_vectors_t **out, const char *path)
{
    if (!out || !path)
        return -1;
    fw_vectors_t *v = calloc(1, sizeof *v);
    *out = v;
    if (!v)
        return -1;
    snprintf(v->path, sizeof v->path, "%s", path);
    v->f = fopen(path, "r");
    if (!v->f)
        return fail(v, "cannot open");
    record_t rec;
    int rc = read_line(v);
    if (rc <= 0)
        return rc < 0 ? -1 : fail(v, "empty file");
    if (parse_record(v, &rec) < 0)
        return -1;
    const field_t *last = rec.n ? &rec.f[rec.n - 1] : NULL;
    if (!last || last->type != V_LIST)
        return fail(v, "header must end with a list");
    if (strcmp(last->name, "quotas") == 0) {
        snprintf(v->kind, sizeof v->kind, "quotas");
    } else if (strcmp(last->name, "cases") == 0) {
        if (get_str(v, &rec, "algorithm", v->kind, sizeof v->kind) < 0)
            return -1;
    } else {
        return fail(v, "unknown header list \"%s\"", last->name);
    }
    return 0;
}

const char *fw_vectors_kind(const fw_vectors_t *v)
{
    return v ? v->kind : "";
}

const char *fw_vectors_error(const fw_vectors_t *v)
{
    return v ? v->err : "out of memory";
}

void fw_vectors_close(fw_vectors_t *v)
{
    if (!v)
        return;
    if (v->f)
        fclose(v->f);
    free(v);
}

int fw_vectors_next_case(fw_vectors_t *v, fw_vec_case_t *c)
{
    fw_vec_step_t skipped;
    int rc;
    while (v->in_case && (rc = fw_vectors_next_step(v, &skipped)) != 0)
        if (rc < 0)
            return -1;
    if (v->at_end || strcmp(v->kind, "quotas") == 0)
        return 0;
    rc = read_line(v);
    if (rc <= 0)
        return rc < 0 ? -1 : fail(v, "unexpected end of file");
    if (is_close(v)) {
        v->at_end = 1;
        return 0;
    }
    record_t rec;
    if (parse_record(v, &rec) < 0)
        return -1;
    const field_t *last = rec.n ? &rec.f[rec.n - 1] : NULL;
    if (!last || last->type != V_LIST || strcmp(last->name, "steps") != 0)
        return fail(v, "a case header must end with \"steps\": [");
    memset(c, 0, sizeof *c);
    if (get_str(v, &rec, "name", c->name, sizeof c->name) < 0 ||
        get_int(v, &rec, "rate", &c->rate) < 0 ||
        get_int(v, &rec, "period_ns", &c->period_ns) < 0 ||
        get_int(v, &rec, "burst", &c->burst) < 0)
        return -1;
    v->in_case = 1;
    return 1;
}

int fw_vectors_next_step(fw_vectors_t *v, fw_vec_step_t *s)
{
    if (!v->in_case)
        return 0;
    int rc = read_line(v);
    if (rc <= 0)
        return rc < 0 ? -1 : fail(v, "unexpected end of file inside a case");
    if (is_close(v)) {
        v->in_case = 0;
        return 0;
    }
    record_t rec;
    if (parse_record(v, &rec) < 0)
        return -1;
    memset(s, 0, sizeof *s);
    if (get_int(v, &rec, "t", &s->t) < 0 ||
        get_str(v, &rec, "key", s->key, sizeof s->key) < 0 ||
        get_int(v, &rec, "cost", &s->cost) < 0)
        return -1;
    if (find(&rec, "error")) {
        s->is_error = 1;
        return get_str(v, &rec, "error", s->error, sizeof s->error) < 0 ? -1 : 1;
    }
    if (get_bool(v, &rec, "allowed", &s->allowed) < 0 ||
        get_int(v, &rec, "limit", &s->limit) < 0 ||
        get_int(v, &rec, "remaining", &s->remaining) < 0 ||
        get_int(v, &rec, "retry_after_ns", &s->retry_after_ns) < 0 ||
        get_int(v, &rec, "reset_after_ns", &s->reset_after_ns) < 0 ||
        get_int(v, &rec, "delay_ns", &s->delay_ns) < 0)
        return -1;
    return 1;
}

int fw_vectors_next_quota(fw_vectors_t *v, fw_vec_quota_t *q)
{
    if (strcmp(v->kind, "quotas") != 0)
        return fail(v, "not a quotas file");
    if (v->at_end)
        return 0;
    int rc = read_line(v);
    if (rc <= 0)
        return rc < 0 ? -1 : fail(v, "unexpected end of file");
    if (is_close(v)) {
        v->at_end = 1;
        return 0;
    }
    record_t rec;
    if (parse_record(v, &rec) < 0)
        return -1;
    memset(q, 0, sizeof *q);
    if (get_str(v, &rec, "name", q->name, sizeof q->name) < 0 ||
        get_str(v, &rec, "algorithm", q->algorithm, sizeof q->algorithm) < 0 ||
        get_int(v, &rec, "rate", &q->rate) < 0 ||
        get_int(v, &rec, "period_ns", &q->period_ns) < 0 ||
        get_int(v, &rec, "burst", &q->burst) < 0)
        return -1;
    if (find(&rec, "error")) {
        q->is_error = 1;
        return get_str(v, &rec, "error", q->error, sizeof q->error) < 0 ? -1 : 1;
    }
    if (get_int(v, &rec, "capacity", &q->capacity) < 0 ||
        get_int(v, &rec, "interval_ns", &q->interval_ns) < 0 ||
        get_int(v, &rec, "tau_ns", &q->tau_ns) < 0 ||
        get_int(v, &rec, "window_ns", &q->window_ns) < 0)
        return -1;
    return 1;
}
