/*
 * decision.c - floodwall.Decision: the immutable result of a check.
 * Invariant: created straight from an engine decision with no Python-level
 * work; the seconds fields are computed on access and never round down.
 * reset_at is the UNIX time the Decision was made plus reset_after,
 * whatever clock the store decided with (a monotonic stamp is moved onto the
 * wall clock when read); never early.
 */
#include <math.h>

#include "ext.h"

/* A check() makes one Decision and its caller usually drops it at once:
 * freed Decisions are kept (up to FW_DECISION_FREE_MAX per module) and
 * reused, which saves the allocator both ways (about 70 instructions per
 * check, bench/bench_memory.py --instructions). The list is touched with
 * the GIL held only (allocation and dealloc run under it). */
#define FW_DECISION_FREE_MAX 32

static inline fw_py_decision *decision_alloc(fw_module_state *st)
{
    PyObject *op = st->free_decisions;
    if (op) {
        fw_py_decision *self = (fw_py_decision *)op;
        st->free_decisions = self->rate;
        st->n_free_decisions--;
        _Py_NewReference(op); /* its type reference was kept */
        return self;
    }
    fw_py_decision *self = PyObject_New(fw_py_decision, st->decision_type);
    if (self)
        self->st = st;
    return self;
}

void fw_decisions_drain(fw_module_state *st)
{
    while (st->free_decisions) {
        PyObject *op = st->free_decisions;
        st->free_decisions = ((fw_py_decision *)op)->rate;
        PyTypeObject *tp = Py_TYPE(op);
        PyObject_Free(op);
        Py_DECREF(tp);
    }
    st->n_free_decisions = 0;
}

PyObject *fw_decision_new(fw_module_state *st, const fw_decision_t *d,
                          PyObject *rate, int fallback)
{
    fw_py_decision *self = decision_alloc(st);
    if (!self)
        return NULL;
    self->d = *d;
    self->rate = Py_NewRef(rate ? rate : Py_None);
    self->fallback = (char)(fallback != 0);
    self->at_ns = fw_clock_realtime_ns();
    self->at_monotonic = 0;
    self->part = -1;
    return (PyObject *)self;
}

PyObject *fw_decision_new_at(fw_module_state *st, const fw_decision_t *d,
                             PyObject *rate, int64_t now, int clock)
{
    fw_py_decision *self = decision_alloc(st);
    if (!self)
        return NULL;
    self->d = *d;
    self->rate = Py_NewRef(rate ? rate : Py_None);
    self->fallback = 0;
    self->at_ns = now;
    self->at_monotonic = (char)(clock == FW_DECIDED_MONOTONIC);
    self->part = -1;
    return (PyObject *)self;
}

/* The UNIX time (ns) the decision was made. A monotonic stamp is moved onto
 * the wall clock the first time it is asked for, and the result is kept, so
 * every later read gives the same instant (the Decision stays immutable as
 * Python sees it). The monotonic clock is read first, so the offset can only
 * come out late, never early. */
static int64_t decided_unix_ns(fw_py_decision *s)
{
    if (!s->at_monotonic)
        return s->at_ns;
    int64_t mono = fw_clock_monotonic_ns();
    int64_t real = fw_clock_realtime_ns();
    int64_t at = s->at_ns + (real - mono);
    s->at_ns = at < 0 ? 0 : at;
    s->at_monotonic = 0;
    return s->at_ns;
}

static void decision_dealloc(PyObject *op)
{
    fw_py_decision *self = (fw_py_decision *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject *rate = self->rate;
    /* the type is not subclassable: tp is the module's Decision type, and
     * it is still the module's until the module is cleared */
    fw_module_state *st = self->st;
    if (st->decision_type == tp && st->n_free_decisions < FW_DECISION_FREE_MAX) {
        self->rate = st->free_decisions; /* keeps its type reference */
        st->free_decisions = op;
        st->n_free_decisions++;
    } else {
        PyObject_Free(op);
        Py_DECREF(tp);
    }
    Py_XDECREF(rate); /* last: it may run code that makes Decisions */
}

static int64_t arg_ns(PyObject *v, const char *name, int *failed)
{
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) {
        *failed = 1;
        return 0;
    }
    if (x < 0) {
        PyErr_Format(PyExc_ValueError, "%s must be >= 0, got %lld", name, x);
        *failed = 1;
        return 0;
    }
    return (int64_t)x;
}

static PyObject *decision_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *names[] = {"allowed", "limit", "remaining", "retry_after_ns",
                            "reset_after_ns", "delay_ns", "rate", "fallback",
                            "denied_part", NULL};
    int allowed, fallback = 0;
    PyObject *limit, *remaining, *retry, *reset, *delay = NULL, *rate = Py_None;
    PyObject *part = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "pOOOO|OO$pO:Decision", names,
                                     &allowed, &limit, &remaining, &retry,
                                     &reset, &delay, &rate, &fallback, &part))
        return NULL;
    Py_ssize_t part_index = -1;
    if (part != Py_None) {
        part_index = PyLong_Check(part) && !PyBool_Check(part)
                         ? PyLong_AsSsize_t(part) : -2;
        if (part_index == -1 && PyErr_Occurred())
            return NULL;
        if (part_index < 0) {
            PyErr_Format(PyExc_ValueError,
                         "denied_part must be None or an int >= 0, got %R", part);
            return NULL;
        }
        if (allowed) {
            PyErr_SetString(PyExc_ValueError,
                            "denied_part is for a denial: an allowed decision has none");
            return NULL;
        }
    }
    fw_decision_t d = {0};
    int failed = 0;
    d.allowed = allowed;
    d.limit = arg_ns(limit, "limit", &failed);
    if (!failed)
        d.remaining = arg_ns(remaining, "remaining", &failed);
    if (!failed)
        d.retry_after_ns = arg_ns(retry, "retry_after_ns", &failed);
    if (!failed)
        d.reset_after_ns = arg_ns(reset, "reset_after_ns", &failed);
    if (!failed && delay)
        d.delay_ns = arg_ns(delay, "delay_ns", &failed);
    if (failed)
        return NULL;
    PyObject *out = fw_decision_new(fw_state_of_type(type), &d, rate, fallback);
    if (out)
        ((fw_py_decision *)out)->part = part_index;
    return out;
}

/* Is s * 1e9 >= ns, computed exactly? s = m * 2^e with m an integer of at
 * most 53 bits; since ns is an integer, m*1e9*2^e >= ns iff
 * floor(m*1e9 / 2^-e) >= ns. */
static int seconds_cover(double s, int64_t ns)
{
    int e;
    double f = frexp(s, &e);
    uint64_t m = (uint64_t)ldexp(f, 53);
    e -= 53;
    unsigned __int128 p = (unsigned __int128)m * 1000000000u;
    if (e >= 0)
        return m > 0 || ns <= 0; /* s >= 2^52: beyond any int64 of ns */
    if (-e >= 128)
        return ns <= 0;
    return (p >> -e) >= (unsigned __int128)ns;
}

double fw_seconds_up(int64_t ns)
{
    double s = (double)ns / 1e9;
    while (!seconds_cover(s, ns))
        s = nextafter(s, INFINITY);
    return s;
}

static PyObject *seconds_up(int64_t ns) { return PyFloat_FromDouble(fw_seconds_up(ns)); }

#define SELF ((fw_py_decision *)op)

static PyObject *get_allowed(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong(SELF->d.allowed);
}
static PyObject *get_limit(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLongLong(SELF->d.limit);
}
static PyObject *get_remaining(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLongLong(SELF->d.remaining);
}
static PyObject *get_retry_after(PyObject *op, void *c)
{
    (void)c;
    return seconds_up(SELF->d.retry_after_ns);
}
static PyObject *get_reset_after(PyObject *op, void *c)
{
    (void)c;
    return seconds_up(SELF->d.reset_after_ns);
}
static PyObject *get_delay(PyObject *op, void *c)
{
    (void)c;
    return seconds_up(SELF->d.delay_ns);
}
static PyObject *get_retry_after_ns(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLongLong(SELF->d.retry_after_ns);
}
static PyObject *get_reset_after_ns(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLongLong(SELF->d.reset_after_ns);
}
static PyObject *get_delay_ns(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLongLong(SELF->d.delay_ns);
}
static PyObject *get_rate(PyObject *op, void *c)
{
    (void)c;
    return Py_NewRef(SELF->rate);
}
static PyObject *get_fallback(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong(SELF->fallback);
}
int64_t fw_decision_reset_at_ns(fw_py_decision *s)
{
    int64_t at = decided_unix_ns(s), after = s->d.reset_after_ns;
    return after > INT64_MAX - at ? INT64_MAX : at + after;
}
static PyObject *get_reset_at(PyObject *op, void *c)
{
    (void)c;
    return seconds_up(fw_decision_reset_at_ns(SELF));
}
static PyObject *get_reset_at_ns(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLongLong(fw_decision_reset_at_ns(SELF));
}
static PyObject *get_denied_part(PyObject *op, void *c)
{
    (void)c;
    if (SELF->part < 0)
        Py_RETURN_NONE;
    return PyLong_FromSsize_t(SELF->part);
}

static PyGetSetDef decision_getset[] = {
    {"allowed", get_allowed, NULL, "True if the request was admitted.", NULL},
    {"limit", get_limit, NULL, "Capacity: units a fresh key admits at once.", NULL},
    {"remaining", get_remaining, NULL,
     "Whole units still admissible now, after this decision.", NULL},
    {"retry_after", get_retry_after, NULL,
     "Seconds until this request would be admitted (0.0 if allowed); never "
     "rounded down.", NULL},
    {"reset_after", get_reset_after, NULL,
     "Seconds until the key is back to full capacity.", NULL},
    {"delay", get_delay, NULL,
     "Shaping only: seconds to wait before proceeding.", NULL},
    {"retry_after_ns", get_retry_after_ns, NULL, "retry_after in nanoseconds.", NULL},
    {"reset_after_ns", get_reset_after_ns, NULL, "reset_after in nanoseconds.", NULL},
    {"delay_ns", get_delay_ns, NULL, "delay in nanoseconds.", NULL},
    {"rate", get_rate, NULL, "The Rate that decided, or None.", NULL},
    {"fallback", get_fallback, NULL,
     "True when a failure policy made this decision (store unreachable).", NULL},
    {"reset_at", get_reset_at, NULL,
     "UNIX time (seconds) when the key is back to full capacity: the wall "
     "clock when this decision was made plus reset_after; never rounded "
     "down.", NULL},
    {"reset_at_ns", get_reset_at_ns, NULL, "reset_at in UNIX nanoseconds.", NULL},
    {"denied_part", get_denied_part, NULL,
     "check_all / Limits.check: the index of the part that denied, in the "
     "order given; None when allowed, for a single check, or when a "
     "failure policy answered.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static int decision_bool(PyObject *op) { return SELF->d.allowed; }

static PyObject *decision_repr(PyObject *op)
{
    fw_py_decision *s = SELF;
    char retry[32], reset[32], delay[32], part[48] = "";
    if (s->part >= 0)
        PyOS_snprintf(part, sizeof part, ", denied_part=%zd", s->part);
    PyOS_snprintf(retry, sizeof retry, "%.9f", (double)s->d.retry_after_ns / 1e9);
    PyOS_snprintf(reset, sizeof reset, "%.9f", (double)s->d.reset_after_ns / 1e9);
    PyOS_snprintf(delay, sizeof delay, "%.9f", (double)s->d.delay_ns / 1e9);
    return PyUnicode_FromFormat(
        "Decision(allowed=%s, limit=%lld, remaining=%lld, retry_after=%s, "
        "reset_after=%s, delay=%s, rate=%R%s%s)",
        s->d.allowed ? "True" : "False", (long long)s->d.limit,
        (long long)s->d.remaining, retry, reset, delay, s->rate,
        s->fallback ? ", fallback=True" : "", part);
}

static PyObject *decision_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(a) != Py_TYPE(b))
        Py_RETURN_NOTIMPLEMENTED;
    fw_py_decision *x = (fw_py_decision *)a, *y = (fw_py_decision *)b;
    int same = x->d.allowed == y->d.allowed && x->d.limit == y->d.limit &&
               x->d.remaining == y->d.remaining &&
               x->d.retry_after_ns == y->d.retry_after_ns &&
               x->d.reset_after_ns == y->d.reset_after_ns &&
               x->d.delay_ns == y->d.delay_ns && x->fallback == y->fallback &&
               x->part == y->part;
    if (same) {
        int r = PyObject_RichCompareBool(x->rate, y->rate, Py_EQ);
        if (r < 0)
            return NULL;
        same = r;
    }
    return PyBool_FromLong(op == Py_EQ ? same : !same);
}

static PyObject *decision_as_dict(PyObject *op, PyObject *unused)
{
    (void)unused;
    fw_py_decision *s = SELF;
    PyObject *retry = seconds_up(s->d.retry_after_ns);
    PyObject *reset = seconds_up(s->d.reset_after_ns);
    PyObject *delay = seconds_up(s->d.delay_ns);
    PyObject *reset_at = get_reset_at(op, NULL);
    PyObject *part = get_denied_part(op, NULL);
    PyObject *out = NULL;
    if (retry && reset && delay && reset_at && part)
        out = Py_BuildValue("{s:O,s:L,s:L,s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "allowed",
                            s->d.allowed ? Py_True : Py_False, "limit",
                            (long long)s->d.limit, "remaining",
                            (long long)s->d.remaining, "retry_after", retry,
                            "reset_after", reset, "reset_at", reset_at, "delay",
                            delay, "rate", s->rate, "fallback",
                            s->fallback ? Py_True : Py_False, "denied_part", part);
    Py_XDECREF(retry);
    Py_XDECREF(reset);
    Py_XDECREF(delay);
    Py_XDECREF(reset_at);
    Py_XDECREF(part);
    return out;
}

static PyMethodDef decision_methods[] = {
    {"as_dict", decision_as_dict, METH_NOARGS,
     "The decision as a plain dict (seconds as floats)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot decision_slots[] = {
    {Py_tp_doc, "Decision(allowed, limit, remaining, retry_after_ns, "
                "reset_after_ns, delay_ns=0, rate=None, *, fallback=False, "
                "denied_part=None)\n--\n\n"
                "The result of a rate-limit check. Immutable; bool(d) is "
                "d.allowed."},
    {Py_tp_new, decision_tp_new},
    {Py_tp_dealloc, decision_dealloc},
    {Py_tp_getset, decision_getset},
    {Py_tp_methods, decision_methods},
    {Py_tp_repr, decision_repr},
    {Py_tp_richcompare, decision_richcompare},
    {Py_nb_bool, decision_bool},
    {0, NULL},
};

PyType_Spec fw_decision_spec = {
    .name = "floodwall.Decision",
    .basicsize = sizeof(fw_py_decision),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = decision_slots,
};
