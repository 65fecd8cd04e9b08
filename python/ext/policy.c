/*
 * policy.c - floodwall._native.Policy: one limiter's rates and algorithm
 * bound to a table; the hot calls check/allow/peek (METH_FASTCALL) and the
 * all-or-nothing check_all over several policies.
 * Invariant: every rate of a policy is decided all-or-nothing on one key,
 * with the store's clock unless a test clock was given.
 */
#include <string.h>

#include "ext.h"

#define MAX_RATES 16
#define MAX_PARTS FW_CHECK_PARTS_MAX

typedef struct {
    PyObject_HEAD
    PyObject *table_obj;
    fw_table_t *table;
    PyObject *labels; /* tuple of Rate objects, one per limit */
    PyObject *clock;  /* NULL: the store's clock; else a callable -> int ns */
    int clock_realtime;
    int blocking; /* the table's: checks release the GIL */
    Py_ssize_t nlimits;
    fw_limit_t limits[MAX_RATES];
    unsigned long long allowed, denied;
    /* NULL (raise), or the failure policy's decide(exc, rate, readable):
     * called only on the error path (floodwall.stores.failure) */
    PyObject *fail_decide;
    fw_module_state *st;
} fw_py_policy;

/* ---- argument helpers -------------------------------------------------------- */

typedef struct key_view {
    const char *buf;
    Py_ssize_t len;
    PyObject *owner; /* a temporary bytes object to release, or NULL */
} key_view_t;

static int key_get_other(fw_module_state *st, PyObject *key, key_view_t *kv);

/* The key's bytes: inlined for the usual key, a compact ASCII str. */
static inline __attribute__((always_inline)) int key_get(fw_module_state *st,
                                                         PyObject *key, key_view_t *kv)
{
    kv->owner = NULL;
    if (PyUnicode_CheckExact(key) && PyUnicode_IS_COMPACT_ASCII(key)) {
        /* ASCII is its own UTF-8: the characters are the bytes */
        kv->buf = (const char *)PyUnicode_DATA(key);
        kv->len = PyUnicode_GET_LENGTH(key);
        return 0;
    }
    return key_get_other(st, key, kv);
}

static __attribute__((noinline)) int key_get_other(fw_module_state *st, PyObject *key,
                                                   key_view_t *kv)
{
    if (PyUnicode_Check(key)) {
        kv->buf = PyUnicode_AsUTF8AndSize(key, &kv->len);
        if (kv->buf)
            return 0;
        /* lone surrogates: still a usable key, encoded losslessly */
        PyErr_Clear();
        kv->owner = PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass");
        if (!kv->owner)
            return -1;
        kv->buf = PyBytes_AS_STRING(kv->owner);
        kv->len = PyBytes_GET_SIZE(kv->owner);
        return 0;
    }
    if (PyBytes_Check(key)) {
        kv->buf = PyBytes_AS_STRING(key);
        kv->len = PyBytes_GET_SIZE(key);
        return 0;
    }
    PyErr_Format(st->key_type_error, "key must be str or bytes, not %.100s",
                 Py_TYPE(key)->tp_name);
    return -1;
}

static int cost_get(fw_module_state *st, PyObject *obj, int64_t *cost)
{
    /* exactly int: a bool or an IntEnum is the caller's mistake */
    if (!PyLong_CheckExact(obj)) {
        PyErr_Format(st->cost_error, "cost must be an int >= 0, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow > 0) {
        PyErr_Format(st->cost_error,
                     "cost %R is larger than any capacity: it can never be admitted",
                     obj);
        return -1;
    }
    if (overflow < 0 || v < 0) {
        PyErr_Format(st->cost_error, "cost must be an int >= 0, got %R", obj);
        return -1;
    }
    *cost = v;
    return 0;
}

static inline int policy_now(fw_py_policy *p, int64_t *now)
{
    if (!p->clock) {
        *now = p->clock_realtime ? fw_clock_realtime_fast_ns()
                                 : fw_clock_monotonic_fast_ns();
        return 0;
    }
    PyObject *r = PyObject_CallNoArgs(p->clock);
    if (!r)
        return -1;
    long long v = PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "the clock returned %lld; it must return "
                                       "nanoseconds >= 0", v);
        return -1;
    }
    *now = v;
    return 0;
}

/* Parse (key, cost=1) from a FASTCALL|KEYWORDS call. */
static int parse_key_cost(fw_module_state *st, const char *fname,
                          PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames, int with_cost, PyObject **key,
                          int64_t *cost)
{
    PyObject *cost_obj = NULL;
    *key = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    Py_ssize_t maxpos = with_cost ? 2 : 1;
    if (nargs > maxpos) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd positional "
                                      "arguments (%zd given)", fname, maxpos, nargs);
        return -1;
    }
    if (nargs >= 1)
        *key = args[0];
    if (nargs == 2)
        cost_obj = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject *val = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(name, "key") == 0 && !*key) {
            *key = val;
        } else if (with_cost && PyUnicode_CompareWithASCIIString(name, "cost") == 0 &&
                   !cost_obj) {
            cost_obj = val;
        } else {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected or repeated "
                                          "keyword argument '%U'", fname, name);
            return -1;
        }
    }
    if (!*key) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'key'", fname);
        return -1;
    }
    *cost = with_cost ? 1 : 0;
    if (cost_obj && cost_get(st, cost_obj, cost) < 0)
        return -1;
    return 0;
}

/* Raise the error of a failed check with the limit it concerns. */
static void raise_check_error(fw_py_policy *p, int rc, int64_t cost, PyObject *rate)
{
    if (rc == FW_ECOST) {
        int64_t cap = 0;
        for (Py_ssize_t i = 0; i < p->nlimits; i++)
            if (cost > p->limits[i].quota.burst) {
                cap = p->limits[i].quota.burst;
                rate = PyTuple_GET_ITEM(p->labels, i);
                break;
            }
        PyErr_Format(p->st->cost_error,
                     "cost %lld exceeds the capacity %lld of %R: it can never be "
                     "admitted", (long long)cost, (long long)cap, rate);
        return;
    }
    fw_raise(p->st, rc, "check");
}

/* What the parts the store can read decide, when a check failed (a part
 * could not be inserted, a lock not taken in time): each part is peeked
 * without writing. Returns a new Decision (not a fallback) for the denying
 * part with the longest wait and sets *index, Py_None when none denies, or
 * NULL with an exception. A fallback must never admit what one of these
 * denies (issue 10). For a cost above 1 the wait is the part's reset_after,
 * after which any admissible cost passes. */
static PyObject *readable_denial(fw_module_state *st, fw_table_t *t,
                                 const fw_request_t *reqs, PyObject *const *labels,
                                 Py_ssize_t n, const int64_t *costs, int64_t now,
                                 Py_ssize_t *index)
{
    fw_decision_t worst;
    Py_ssize_t worst_i = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t cost = costs[i];
        if (cost == 0)
            continue;
        fw_decision_t d;
        size_t violated;
        if (fw_table_check(t, &reqs[i], 1, 0, now, &d, &violated) != 0)
            continue; /* this part cannot be read either */
        if (d.allowed && d.remaining >= cost)
            continue;
        if (d.allowed || cost > 1) {
            d.allowed = 0;
            if (d.reset_after_ns > d.retry_after_ns)
                d.retry_after_ns = d.reset_after_ns;
        }
        if (d.retry_after_ns < 1)
            d.retry_after_ns = 1;
        d.delay_ns = 0;
        if (worst_i < 0 || d.retry_after_ns > worst.retry_after_ns) {
            worst = d;
            worst_i = i;
        }
    }
    if (worst_i < 0)
        Py_RETURN_NONE;
    *index = worst_i;
    return fw_decision_new(st, &worst, labels[worst_i], 0);
}

/* The store could not decide; a StoreError is set. Without a failure
 * policy it propagates; else the policy's decide(exc, rate, readable)
 * answers (it calls on_error, counts, and may raise). Returns a new
 * Decision and sets *index, or NULL with an exception. */
static PyObject *store_failed(fw_module_state *st, PyObject *fail_decide,
                              fw_table_t *t, const fw_request_t *reqs,
                              PyObject *const *labels, Py_ssize_t n,
                              const int64_t *costs, int64_t now, Py_ssize_t *index)
{
    if (!fail_decide || !PyErr_ExceptionMatches(st->store_error))
        return NULL;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (!value)
        return NULL;
    Py_ssize_t ri = 0;
    PyObject *readable = readable_denial(st, t, reqs, labels, n, costs, now, &ri);
    PyObject *result = NULL;
    if (readable) {
        PyObject *args[3] = {value, labels[0], readable};
        result = PyObject_Vectorcall(fail_decide, args, 3, NULL);
        *index = result == readable ? ri : 0;
        Py_DECREF(readable);
    }
    Py_DECREF(value);
    return result;
}

/* Decide `cost` on `key` for every limit; *index is the deciding limit.
 * Returns 0, 1 for a failure-policy decision (a new Decision in *answer),
 * or -1 with an exception. *when is the engine's clock reading (the stamp
 * Decision.reset_at is computed from). Inlined into each hot method (with
 * decide_call): about 45 instructions fewer per call, measured with
 * callgrind (bench/bench_memory.py --instructions). */
#define HOT static inline __attribute__((always_inline))
HOT int policy_decide(fw_py_policy *p, PyObject *key, int64_t cost, fw_decision_t *d,
                      Py_ssize_t *index, PyObject **answer, int64_t *when,
                      unsigned flags)
{
    key_view_t kv;
    int64_t now;
    if (key_get(p->st, key, &kv) < 0)
        return -1;
    if (policy_now(p, &now) < 0) {
        Py_XDECREF(kv.owner);
        return -1;
    }
    fw_request_t reqs[MAX_RATES];
    fw_decision_t out_many[MAX_RATES];
    /* one rate (the usual case) decides straight into *d */
    fw_decision_t *out = p->nlimits == 1 ? d : out_many;
    for (Py_ssize_t i = 0; i < p->nlimits; i++) {
        reqs[i].limit = &p->limits[i];
        reqs[i].key = kv.buf;
        reqs[i].key_len = (size_t)kv.len;
    }
    size_t violated;
    int rc;
    if (p->blocking) {
        /* a durable store waits for the disk: let other threads run */
        Py_BEGIN_ALLOW_THREADS
        rc = fw_table_check(p->table, reqs, (size_t)p->nlimits, cost, now, out,
                            &violated);
        Py_END_ALLOW_THREADS
    } else if (p->nlimits == 1) {
        rc = fw_table_check_one(p->table, reqs, cost, now, flags, out);
        violated = out->allowed ? 1 : 0;
    } else {
        rc = fw_table_check(p->table, reqs, (size_t)p->nlimits, cost, now, out,
                            &violated);
    }
    if (rc) {
        raise_check_error(p, rc, cost, Py_None);
        int64_t costs[MAX_RATES];
        for (Py_ssize_t i = 0; i < p->nlimits; i++)
            costs[i] = cost;
        *answer = store_failed(p->st, p->fail_decide, p->table, reqs,
                               PySequence_Fast_ITEMS(p->labels), p->nlimits, costs,
                               now, index);
        Py_XDECREF(kv.owner);
        if (!*answer)
            return -1;
        if (cost > 0 && !PyObject_IsTrue(*answer))
            p->denied++;
        return 1;
    }
    Py_XDECREF(kv.owner);
    *when = now;
    Py_ssize_t idx = 0;
    if (p->nlimits > 1) {
        if (violated < (size_t)p->nlimits) {
            idx = (Py_ssize_t)violated;
        } else {
            for (Py_ssize_t i = 1; i < p->nlimits; i++)
                if (out[i].remaining < out[idx].remaining)
                    idx = i;
        }
        *d = out[idx];
    }
    *index = idx;
    if (cost > 0) {
        if (d->allowed)
            p->allowed++;
        else
            p->denied++;
    }
    return 0;
}

/* ---- methods ------------------------------------------------------------------- */

/* The shared body of check/allow/peek: parse, decide, and answer with a
 * Decision, or with a bool when `as_bool`. A peek takes no cost. */
HOT PyObject *decide_call(PyObject *op, const char *fname, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames, int with_cost,
                             int as_bool)
{
    fw_py_policy *p = (fw_py_policy *)op;
    PyObject *key;
    int64_t cost;
    if (nargs == 1 && !kwnames) { /* f(key): the hot call, nothing to parse */
        key = args[0];
        cost = with_cost;
    } else if (parse_key_cost(p->st, fname, args, nargs, kwnames, with_cost, &key,
                              &cost) < 0) {
        return NULL;
    }
    fw_decision_t d;
    Py_ssize_t idx;
    PyObject *answer = NULL;
    int64_t when;
    /* a bool answer needs the verdict only */
    int how = policy_decide(p, key, cost, &d, &idx, &answer, &when,
                            as_bool ? FW_CHECK_ALLOWED_ONLY : 0);
    if (how < 0)
        return NULL;
    if (how == 1) {
        if (!as_bool)
            return answer;
        int allowed = PyObject_IsTrue(answer);
        Py_DECREF(answer);
        return allowed < 0 ? NULL : Py_NewRef(allowed ? Py_True : Py_False);
    }
    if (as_bool)
        return Py_NewRef(d.allowed ? Py_True : Py_False);
    if (p->clock) /* a test clock says nothing of the wall clock */
        return fw_decision_new(p->st, &d, PyTuple_GET_ITEM(p->labels, idx), 0);
    return fw_decision_new_at(p->st, &d, PyTuple_GET_ITEM(p->labels, idx), when,
                              p->clock_realtime ? FW_DECIDED_REALTIME
                                                : FW_DECIDED_MONOTONIC);
}

static PyObject *policy_check(PyObject *op, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    return decide_call(op, "check", args, nargs, kwnames, 1, 0);
}

static PyObject *policy_allow(PyObject *op, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    return decide_call(op, "allow", args, nargs, kwnames, 1, 1);
}

static PyObject *policy_peek(PyObject *op, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    return decide_call(op, "peek", args, nargs, kwnames, 0, 0);
}

static PyObject *policy_reset(PyObject *op, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    fw_py_policy *p = (fw_py_policy *)op;
    PyObject *key;
    int64_t cost;
    if (parse_key_cost(p->st, "reset", args, nargs, kwnames, 0, &key, &cost) < 0)
        return NULL;
    key_view_t kv;
    int64_t now;
    if (key_get(p->st, key, &kv) < 0)
        return NULL;
    if (policy_now(p, &now) < 0) {
        Py_XDECREF(kv.owner);
        return NULL;
    }
    /* the answer: did any limit hold state for the key (not yet back to
     * full capacity)? A peek per limit, then the reset */
    int rc = 0, existed = 0;
    for (Py_ssize_t i = 0; i < p->nlimits && rc == 0 && !existed; i++) {
        fw_decision_t d;
        rc = fw_table_peek(p->table, &p->limits[i], kv.buf, (size_t)kv.len, now, &d);
        existed = rc == 0 && d.reset_after_ns > 0;
    }
    for (Py_ssize_t i = 0; i < p->nlimits && rc == 0; i++)
        rc = fw_table_reset(p->table, &p->limits[i], kv.buf, (size_t)kv.len);
    Py_XDECREF(kv.owner);
    if (rc)
        return fw_raise(p->st, rc, "reset");
    return Py_NewRef(existed ? Py_True : Py_False);
}

static PyObject *policy_counts(PyObject *op, PyObject *unused)
{
    (void)unused;
    fw_py_policy *p = (fw_py_policy *)op;
    return Py_BuildValue("(KK)", p->allowed, p->denied);
}

static PyObject *policy_now_ns(PyObject *op, PyObject *unused)
{
    (void)unused;
    int64_t now;
    if (policy_now((fw_py_policy *)op, &now) < 0)
        return NULL;
    return PyLong_FromLongLong(now);
}

/* ---- construction --------------------------------------------------------------- */

static PyObject *policy_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *names[] = {"table", "algorithm", "quotas", "namespace", "labels",
                            "clock", "fail_decide", NULL};
    PyObject *table, *quotas, *ns, *labels, *clock = Py_None, *fail_decide = Py_None;
    int algorithm;
    fw_module_state *st = fw_state_of_type(type);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!iOSO!|OO:Policy", names,
                                     st->table_type, &table, &algorithm, &quotas,
                                     &ns, &PyTuple_Type, &labels, &clock,
                                     &fail_decide))
        return NULL;
    if (fail_decide != Py_None && !PyCallable_Check(fail_decide)) {
        PyErr_SetString(PyExc_TypeError, "fail_decide must be None (raise) or a "
                                         "callable (exc, rate, readable) -> Decision");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(quotas, "quotas must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > MAX_RATES || PyTuple_GET_SIZE(labels) != n) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError,
                     "a policy takes 1 to %d rates, with one label each", MAX_RATES);
        return NULL;
    }
    if (clock != Py_None && !PyCallable_Check(clock)) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_TypeError, "clock must be None or a callable "
                                         "returning int nanoseconds");
        return NULL;
    }
    fw_py_policy *p = PyObject_New(fw_py_policy, type);
    if (!p) {
        Py_DECREF(seq);
        return NULL;
    }
    p->st = st;
    p->table_obj = Py_NewRef(table);
    p->table = ((fw_py_table *)table)->table;
    p->clock_realtime = ((fw_py_table *)table)->clock_realtime;
    p->blocking = ((fw_py_table *)table)->blocking;
    p->labels = Py_NewRef(labels);
    p->clock = clock == Py_None ? NULL : Py_NewRef(clock);
    p->nlimits = n;
    p->allowed = p->denied = 0;
    p->fail_decide = fail_decide == Py_None ? NULL : Py_NewRef(fail_decide);
    for (Py_ssize_t i = 0; i < n; i++) {
        long long rate, period, burst;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "LLL;a quota is "
                              "(rate, period_ns, burst)", &rate, &period, &burst)) {
            Py_DECREF(seq);
            Py_DECREF(p);
            return NULL;
        }
        int rc = fw_quota_init(&p->limits[i].quota, (fw_algorithm_t)algorithm,
                               rate, period, burst);
        if (rc) {
            Py_DECREF(seq);
            Py_DECREF(p);
            static const char *const bounds[FW_ALGORITHM_COUNT] = {
                [FW_FIXED_WINDOW] = "; fixed_window needs (capacity + 1) * "
                                    "(2**63 / window_ns) < 2**64",
                [FW_SLIDING_WINDOW] = "; sliding_window needs (capacity + 1)**2 * "
                                      "(2**63 / window_ns) < 2**64: use gcra or "
                                      "a smaller capacity",
                [FW_SLIDING_LOG] = "; sliding_log keeps one entry per request, "
                                   "capacity at most " FW_STRINGIFY(FW_LOG_CAPACITY_MAX),
            };
            const char *hint = "";
            if (rc == FW_ERANGE && algorithm >= 0 && algorithm < FW_ALGORITHM_COUNT &&
                bounds[algorithm])
                hint = bounds[algorithm];
            else if (rc == FW_ERANGE)
                hint = "; capacity * (period / rate) must stay below 2**62 ns";
            PyErr_Format(PyExc_ValueError,
                         "rate %lld per %lld ns (burst %lld) cannot be used with "
                         "this algorithm: %s%s",
                         rate, period, burst, fw_strerror(rc), hint);
            return NULL;
        }
        p->limits[i].namespace_id =
            fw_namespace_id(PyBytes_AS_STRING(ns), (size_t)PyBytes_GET_SIZE(ns),
                            &p->limits[i].quota, (uint64_t)i);
    }
    Py_DECREF(seq);
    return (PyObject *)p;
}

static void policy_dealloc(PyObject *op)
{
    fw_py_policy *p = (fw_py_policy *)op;
    PyTypeObject *tp = Py_TYPE(op);
    Py_XDECREF(p->table_obj);
    Py_XDECREF(p->labels);
    Py_XDECREF(p->clock);
    Py_XDECREF(p->fail_decide);
    PyObject_Free(op);
    Py_DECREF(tp);
}

/* ---- check_all: several policies and keys, all-or-nothing -------------------- */

static PyObject *check_all(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    fw_module_state *st = fw_state_of_module(module);
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "check_all(parts, cost)");
        return NULL;
    }
    int64_t cost;
    if (cost_get(st, args[1], &cost) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(args[0], "parts must be a sequence of "
                                             "(policy, key) pairs");
    if (!seq)
        return NULL;
    Py_ssize_t nparts = PySequence_Fast_GET_SIZE(seq);
    fw_request_t reqs[MAX_PARTS];
    int64_t costs[MAX_PARTS];
    Py_ssize_t part_of[MAX_PARTS]; /* request -> index of its part */
    fw_decision_t out[MAX_PARTS];
    PyObject *labels[MAX_PARTS];
    key_view_t keys[MAX_PARTS];
    Py_ssize_t nkeys = 0, nreqs = 0;
    fw_py_policy *first = NULL;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < nparts; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 2 ||
            PyTuple_GET_SIZE(item) > 3 ||
            !PyObject_TypeCheck(PyTuple_GET_ITEM(item, 0), st->policy_type)) {
            PyErr_SetString(PyExc_TypeError,
                            "each part must be a (policy, key) or (policy, key, cost) tuple");
            goto done;
        }
        int64_t part_cost = cost;
        if (PyTuple_GET_SIZE(item) == 3 &&
            cost_get(st, PyTuple_GET_ITEM(item, 2), &part_cost) < 0)
            goto done;
        fw_py_policy *p = (fw_py_policy *)PyTuple_GET_ITEM(item, 0);
        if (!first)
            first = p;
        else if (p->table != first->table) {
            PyErr_SetString(PyExc_ValueError,
                            "check_all needs every limiter on the same store");
            goto done;
        }
        if (nreqs + p->nlimits > MAX_PARTS) {
            PyErr_Format(PyExc_ValueError, "check_all takes at most %d limits in "
                                           "all", MAX_PARTS);
            goto done;
        }
        if (key_get(st, PyTuple_GET_ITEM(item, 1), &keys[nkeys]) < 0)
            goto done;
        for (Py_ssize_t j = 0; j < p->nlimits; j++) {
            reqs[nreqs].limit = &p->limits[j];
            reqs[nreqs].key = keys[nkeys].buf;
            reqs[nreqs].key_len = (size_t)keys[nkeys].len;
            costs[nreqs] = part_cost;
            part_of[nreqs] = i;
            labels[nreqs] = PyTuple_GET_ITEM(p->labels, j);
            nreqs++;
        }
        nkeys++;
    }
    if (!first) {
        PyErr_SetString(PyExc_ValueError, "check_all needs at least one part");
        goto done;
    }
    int64_t now;
    if (policy_now(first, &now) < 0)
        goto done;
    size_t violated;
    int rc = fw_table_check_costs(first->table, reqs, (size_t)nreqs, costs, now,
                                  out, &violated);
    Py_ssize_t idx = 0;
    if (rc) {
        /* the first limiter's failure policy decides for the group */
        if (rc == FW_ECOST) {
            for (Py_ssize_t i = 0; i < nreqs; i++)
                if (costs[i] > reqs[i].limit->quota.burst) {
                    PyErr_Format(st->cost_error,
                                 "cost %lld of part %zd exceeds the capacity %lld "
                                 "of %R: it can never be admitted",
                                 (long long)costs[i], part_of[i],
                                 (long long)reqs[i].limit->quota.burst, labels[i]);
                    goto done;
                }
        }
        raise_check_error(first, rc, cost, Py_None);
        idx = -1;
        PyObject *dec = store_failed(st, first->fail_decide, first->table, reqs,
                                     labels, nreqs, costs, now, &idx);
        if (dec && idx >= 0 && !PyObject_IsTrue(dec) &&
            Py_IS_TYPE(dec, st->decision_type) && !((fw_py_decision *)dec)->fallback)
            ((fw_py_decision *)dec)->part = part_of[idx];
        if (dec)
            result = Py_BuildValue("(Nn)", dec, idx < 0 ? 0 : idx);
        goto done;
    }
    if (violated < (size_t)nreqs)
        idx = (Py_ssize_t)violated;
    else
        for (Py_ssize_t i = 1; i < nreqs; i++)
            if (out[i].remaining < out[idx].remaining)
                idx = i;
    PyObject *dec = first->clock
                        ? fw_decision_new(st, &out[idx], labels[idx], 0)
                        : fw_decision_new_at(st, &out[idx], labels[idx], now,
                                             first->clock_realtime
                                                 ? FW_DECIDED_REALTIME
                                                 : FW_DECIDED_MONOTONIC);
    if (dec && !out[idx].allowed)
        ((fw_py_decision *)dec)->part = part_of[idx];
    if (dec)
        result = Py_BuildValue("(Nn)", dec, idx);
done:
    for (Py_ssize_t i = 0; i < nkeys; i++)
        Py_XDECREF(keys[i].owner);
    Py_DECREF(seq);
    return result;
}

PyMethodDef fw_policy_functions[] = {
    {"check_all", (PyCFunction)(void (*)(void))check_all, METH_FASTCALL,
     "check_all(parts, cost) -> (Decision, index): all-or-nothing over "
     "(policy, key) pairs, or (policy, key, cost) triples with a cost of their "
     "own, on one table; a denial's Decision has denied_part set."},
    {NULL, NULL, 0, NULL},
};

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)
#define CAST(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef policy_methods[] = {
    {"check", CAST(policy_check), FASTKW, "check(key, cost=1) -> Decision"},
    {"allow", CAST(policy_allow), FASTKW, "allow(key, cost=1) -> bool"},
    {"peek", CAST(policy_peek), FASTKW, "peek(key) -> Decision (never writes)"},
    {"reset", CAST(policy_reset), FASTKW,
     "reset(key) -> bool: forget the key; True if it held state (was not back "
     "to full capacity)"},
    {"counts", policy_counts, METH_NOARGS, "counts() -> (allowed, denied)"},
    {"now_ns", policy_now_ns, METH_NOARGS, "now_ns() -> the clock this policy uses"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot policy_slots[] = {
    {Py_tp_doc, "Policy(table, algorithm, quotas, namespace, labels, clock=None, "
                "fail_decide=None)"},
    {Py_tp_new, policy_tp_new},
    {Py_tp_dealloc, policy_dealloc},
    {Py_tp_methods, policy_methods},
    {0, NULL},
};

PyType_Spec fw_policy_spec = {
    .name = "floodwall._native.Policy",
    .basicsize = sizeof(fw_py_policy),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = policy_slots,
};
