/*
 * decision_json.c - the JSON text of a Decision, as `floodwall serve`
 * answers a check: decision_answer(decision, rate_json, rate_index) ->
 * b'{"decision":{...}}', the fields of floodwall.server.service.decision_json
 * in its order.
 * Invariant: every number means exactly what decision_json's does: the
 * integers are the same, and each seconds field's text reads back (as any
 * correctly rounding JSON parser reads it) as the very double the Decision's
 * property gives (fw_seconds_up: never below the exact nanoseconds). The text
 * is made with integer arithmetic, not the shortest-digits search of
 * float.__repr__, so it may be spelled differently (0.0000864 for 8.64e-05).
 */
#include <math.h>
#include <string.h>

#include "ext.h"

/* How many decimal digits v has (1 for 0). */
static int count_digits(uint64_t v)
{
    int n = 1;
    while (v >= 10000) {
        v /= 10000;
        n += 4;
    }
    return n + (v >= 10) + (v >= 100) + (v >= 1000);
}

static const char two_digits[] = "00010203040506070809101112131415161718192021222324"
                                 "25262728293031323334353637383940414243444546474849"
                                 "50515253545556575859606162636465666768697071727374"
                                 "75767778798081828384858687888990919293949596979899";

/* Digits of v, most significant first, into out; returns their count. */
static int put_digits(char *out, uint64_t v)
{
    int n = count_digits(v), i = n;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        out[--i] = two_digits[2 * r + 1];
        out[--i] = two_digits[2 * r];
    }
    if (v >= 10) {
        out[--i] = two_digits[2 * v + 1];
        out[--i] = two_digits[2 * v];
    } else {
        out[--i] = (char)('0' + v);
    }
    return n;
}

static int put_int(char *out, int64_t v)
{
    if (v < 0) {
        *out = '-';
        return 1 + put_digits(out + 1, (uint64_t)0 - (uint64_t)v);
    }
    return put_digits(out, (uint64_t)v);
}

/* The decimal v / 10^point in plain notation, with no trailing zeros past
 * the first digit after the point ("1.5", "0.0000864", "3.0"). */
static int put_scaled(char *out, uint64_t v, int point)
{
    char digits[20];
    int n = put_digits(digits, v);
    int len = 0;
    if (n <= point) {
        out[len++] = '0';
        out[len++] = '.';
        for (int i = n; i < point; i++)
            out[len++] = '0';
        memcpy(out + len, digits, (size_t)n);
        len += n;
    } else {
        memcpy(out, digits, (size_t)(n - point));
        len = n - point;
        out[len++] = '.';
        memcpy(out + len, digits + n - point, (size_t)point);
        len += point;
        if (point == 0)
            out[len++] = '0';
    }
    while (out[len - 1] == '0' && out[len - 2] != '.')
        len--;
    return len;
}

/* 5^p for 0 <= p <= 27 (below 2^63). */
static const uint64_t pow5[28] = {
    1ull, 5ull, 25ull, 125ull, 625ull, 3125ull, 15625ull, 78125ull, 390625ull, 1953125ull,
    9765625ull, 48828125ull, 244140625ull, 1220703125ull, 6103515625ull, 30517578125ull,
    152587890625ull, 762939453125ull, 3814697265625ull, 19073486328125ull,
    95367431640625ull, 476837158203125ull, 2384185791015625ull, 11920928955078125ull,
    59604644775390625ull, 298023223876953125ull, 1490116119384765625ull,
    7450580596923828125ull,
};

/* The text of fw_seconds_up(ns), ns >= 0 (at most 40 bytes). Either the
 * exact nanoseconds, when the double nearest them is that value (so a
 * parser, which rounds to nearest, reads it back), or the double itself to
 * at least 17 significant digits, rounded to nearest (always enough for a
 * double to read back as itself). */
static int put_seconds(char *out, int64_t ns)
{
    if (ns <= 0) {
        memcpy(out, "0.0", 3);
        return 3;
    }
    double s = fw_seconds_up(ns);
    if (ns < ((int64_t)1 << 53) && (double)ns / 1e9 == s)
        return put_scaled(out, (uint64_t)ns, 9); /* ns is exact as a double */
    /* s = m * 2^e exactly, m an integer below 2^53 */
    int e;
    uint64_t m = (uint64_t)ldexp(frexp(s, &e), 53);
    e -= 53;
    /* 1e-9 <= s < 1e10 here; with k digits in ns, 10^(k-10) <= s <=
     * 10^(k-9), so p = 27 - k keeps 18 or 19 digits of s * 10^p (below
     * 2^64), and 8 <= p <= 26 */
    int p = 27 - count_digits((uint64_t)ns);
    /* s * 10^p = m * 5^p * 2^(e+p), and e + p < 0 over that range */
    unsigned __int128 w = (unsigned __int128)m * pow5[p];
    int shift = -(e + p);
    if (shift <= 0 || shift >= 127) { /* unreachable for an int64 of ns */
        int n = PyOS_snprintf(out, 40, "%.17g", s);
        return n;
    }
    uint64_t digits = (uint64_t)((w + ((unsigned __int128)1 << (shift - 1))) >> shift);
    return put_scaled(out, digits, p);
}

static int put_literal(char *out, const char *text)
{
    size_t n = strlen(text);
    memcpy(out, text, n);
    return (int)n;
}

/* Room for the answer but the rate's JSON text: about 220 bytes of names,
 * at most 8 integers of 20 and 4 seconds of 28. */
#define FW_ANSWER_ROOM 640

static PyObject *decision_answer(PyObject *module, PyObject *const *args,
                                 Py_ssize_t nargs)
{
    fw_module_state *st = fw_state_of_module(module);
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "decision_answer(decision, rate_json, rate_index) takes 3 arguments");
        return NULL;
    }
    if (!Py_IS_TYPE(args[0], st->decision_type)) {
        PyErr_SetString(PyExc_TypeError, "decision_answer: not a Decision");
        return NULL;
    }
    fw_py_decision *dec = (fw_py_decision *)args[0];
    Py_ssize_t rate_len;
    const char *rate = PyUnicode_AsUTF8AndSize(args[1], &rate_len);
    if (!rate)
        return NULL;
    int64_t index = -1;
    if (args[2] != Py_None) {
        index = PyLong_AsLongLong(args[2]);
        if (index == -1 && PyErr_Occurred())
            return NULL;
        if (index < 0) {
            PyErr_SetString(PyExc_ValueError, "decision_answer: a negative rate_index");
            return NULL;
        }
    }
    const fw_decision_t *d = &dec->d;
    char stack[FW_ANSWER_ROOM + 256];
    char *buf = stack;
    if (rate_len > 256) {
        buf = PyMem_Malloc((size_t)rate_len + FW_ANSWER_ROOM);
        if (!buf)
            return PyErr_NoMemory();
    }
    char *o = buf;
    o += put_literal(o, d->allowed ? "{\"decision\":{\"allowed\":true,\"limit\":"
                                   : "{\"decision\":{\"allowed\":false,\"limit\":");
    o += put_int(o, d->limit);
    o += put_literal(o, ",\"remaining\":");
    o += put_int(o, d->remaining);
    o += put_literal(o, ",\"retry_after\":");
    o += put_seconds(o, d->retry_after_ns);
    o += put_literal(o, ",\"reset_after\":");
    o += put_seconds(o, d->reset_after_ns);
    o += put_literal(o, ",\"delay\":");
    o += put_seconds(o, d->delay_ns);
    o += put_literal(o, ",\"retry_after_ns\":");
    o += put_int(o, d->retry_after_ns);
    o += put_literal(o, ",\"reset_after_ns\":");
    o += put_int(o, d->reset_after_ns);
    o += put_literal(o, ",\"delay_ns\":");
    o += put_int(o, d->delay_ns);
    o += put_literal(o, ",\"reset_at\":");
    o += put_seconds(o, fw_decision_reset_at_ns(dec));
    o += put_literal(o, ",\"rate\":");
    memcpy(o, rate, (size_t)rate_len);
    o += rate_len;
    o += put_literal(o, ",\"rate_index\":");
    o += index < 0 ? put_literal(o, "null") : put_int(o, index);
    o += put_literal(o, dec->fallback ? ",\"fallback\":true,\"denied_part\":"
                                      : ",\"fallback\":false,\"denied_part\":");
    o += dec->part < 0 ? put_literal(o, "null") : put_int(o, (int64_t)dec->part);
    o += put_literal(o, ",\"retry_after_s\":");
    /* the HTTP mapping: ceil(retry_after) of the double, 0 when allowed */
    o += put_int(o, d->allowed ? 0 : (int64_t)ceil(fw_seconds_up(d->retry_after_ns)));
    o += put_literal(o, "}}");
    PyObject *out = PyBytes_FromStringAndSize(buf, o - buf);
    if (buf != stack)
        PyMem_Free(buf);
    return out;
}

PyMethodDef fw_decision_json_functions[] = {
    {"decision_answer", (PyCFunction)(void (*)(void))decision_answer, METH_FASTCALL,
     "decision_answer(decision, rate_json, rate_index) -> bytes: "
     "b'{\"decision\":{...}}', the fields of the server's decision_json; "
     "rate_json is the JSON text of the rate, rate_index an int or None."},
    {NULL, NULL, 0, NULL},
};
