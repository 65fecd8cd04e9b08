/*
 * shared_tables.c - module functions for the shm:// and file:// tables:
 * open_shm, open_file, unlink_shm, shm_path, doctor, and the inspection helpers
 * table_info, hottest and inspect_key (which never consume).
 * Invariant: every table opened here is wrapped with the store's clock
 * (CLOCK_REALTIME), and every failure raises with the engine's message,
 * which names the shm object or the file.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ext.h"

#define HOTTEST_MAX 100000

/* ---- errors ------------------------------------------------------------------ */

/* floodwall.errors.ConfigError (a ValueError), looked up when needed: bad
 * names and options are rare, and the module state is not ours to grow. */
static PyObject *config_error(void)
{
    PyObject *errors = PyImport_ImportModule("floodwall.errors");
    PyObject *cls = errors ? PyObject_GetAttrString(errors, "ConfigError") : NULL;
    Py_XDECREF(errors);
    if (!cls) {
        PyErr_Clear();
        return Py_NewRef(PyExc_ValueError);
    }
    return cls;
}

/* OSError (the errno picks the subclass: FileNotFoundError, PermissionError,
 * ...) when a system call failed; else ConfigError for bad names and options
 * and floodwall.errors.StoreError for a table that cannot be used (including
 * FW_EUNSAFE: another user could control it). */
static PyObject *raise_open_error(fw_module_state *st, int rc,
                                  const fw_store_error_t *err)
{
    const char *msg = err->message[0] ? err->message : fw_strerror(rc);
    if (err->sys_errno) {
        PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", err->sys_errno, msg);
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (rc == FW_ENOMEM)
        return PyErr_NoMemory();
    if (rc == FW_EINVAL || rc == FW_ERANGE) {
        PyObject *cls = config_error();
        PyErr_SetString(cls, msg);
        Py_DECREF(cls);
        return NULL;
    }
    PyErr_SetString(st->store_error, msg);
    return NULL;
}

static int parse_sync(PyObject *obj, fw_sync_t *out)
{
    static const char *names[] = {"none", "interval", "always"};
    if (PyUnicode_Check(obj)) {
        for (int i = 0; i < 3; i++)
            if (PyUnicode_CompareWithASCIIString(obj, names[i]) == 0) {
                *out = (fw_sync_t)i;
                return 0;
            }
    }
    PyErr_Format(PyExc_ValueError,
                 "sync must be 'none', 'interval' or 'always', got %R", obj);
    return -1;
}

static int check_sizes(unsigned long long max_keys, unsigned int log_capacity)
{
    if (max_keys > FW_MAX_KEYS_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "max_keys must be between 1 and %llu (0: the existing "
                     "table's, or %u for a new one), got %llu",
                     (unsigned long long)FW_MAX_KEYS_MAX, FW_DEFAULT_MAX_KEYS, max_keys);
        return -1;
    }
    if (log_capacity > FW_LOG_CAPACITY_MAX) {
        PyErr_Format(PyExc_ValueError, "log_capacity must be at most %d, got %u",
                     FW_LOG_CAPACITY_MAX, log_capacity);
        return -1;
    }
    return 0;
}

/* ---- opening ------------------------------------------------------------------ */

static PyObject *py_open_shm(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *names[] = {"name", "max_keys", "log_capacity", "create", NULL};
    const char *name;
    unsigned long long max_keys = 0;
    unsigned int log_capacity = 0;
    int create = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|KI$p:open_shm", names, &name,
                                     &max_keys, &log_capacity, &create))
        return NULL;
    if (check_sizes(max_keys, log_capacity) < 0)
        return NULL;
    fw_module_state *st = fw_state_of_module(module);
    fw_shared_options_t opt = {{max_keys, log_capacity}, FW_SYNC_NONE, 0,
                               create ? 0u : FW_OPEN_NOCREATE};
    fw_store_error_t err;
    fw_table_t *t = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fw_table_open_shm(&t, name, &opt, &err);
    Py_END_ALLOW_THREADS
    if (rc)
        return raise_open_error(st, rc, &err);
    return fw_table_wrap(module, t,
                         PyUnicode_FromFormat("shm://%s", name[0] == '/' ? name + 1 : name),
                         1);
}

static PyObject *py_open_file(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *names[] = {"path", "max_keys", "log_capacity", "sync",
                            "sync_interval_ms", "create", NULL};
    PyObject *path = NULL, *sync_obj = NULL;
    unsigned long long max_keys = 0;
    unsigned int log_capacity = 0, interval_ms = 1000;
    int create = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|KIOI$p:open_file", names,
                                     PyUnicode_FSConverter, &path, &max_keys,
                                     &log_capacity, &sync_obj, &interval_ms, &create))
        return NULL;
    fw_sync_t sync = FW_SYNC_NONE;
    if (check_sizes(max_keys, log_capacity) < 0 ||
        (sync_obj && sync_obj != Py_None && parse_sync(sync_obj, &sync) < 0)) {
        Py_DECREF(path);
        return NULL;
    }
    if (sync == FW_SYNC_INTERVAL && interval_ms < 1) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_ValueError,
                        "sync_interval_ms must be >= 1 with sync='interval'");
        return NULL;
    }
    fw_module_state *st = fw_state_of_module(module);
    const char *p = PyBytes_AS_STRING(path);
    if (strlen(p) != (size_t)PyBytes_GET_SIZE(path) || p[0] == '\0') {
        Py_DECREF(path);
        PyErr_SetString(PyExc_ValueError, "a table file path must be non-empty "
                                          "and without NUL characters");
        return NULL;
    }
    fw_shared_options_t opt = {{max_keys, log_capacity}, sync, interval_ms,
                               create ? 0u : FW_OPEN_NOCREATE};
    fw_store_error_t err;
    fw_table_t *t = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fw_table_open_file(&t, p, &opt, &err);
    Py_END_ALLOW_THREADS
    if (rc) {
        Py_DECREF(path);
        return raise_open_error(st, rc, &err);
    }
    PyObject *desc = PyUnicode_FromFormat("file://%s", p);
    Py_DECREF(path);
    return fw_table_wrap(module, t, desc, 1);
}

static PyObject *py_unlink_shm(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *names[] = {"name", "missing_ok", NULL};
    const char *name;
    int missing_ok = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$p:unlink_shm", names, &name,
                                     &missing_ok))
        return NULL;
    fw_store_error_t err;
    int rc = fw_table_unlink_shm(name, &err);
    if (rc == 0)
        Py_RETURN_TRUE;
    if (missing_ok && err.sys_errno == ENOENT)
        Py_RETURN_FALSE;
    return raise_open_error(fw_state_of_module(module), rc, &err);
}

static PyObject *py_shm_path(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "a shm name must be str, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *name = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!name)
        return NULL;
    fw_store_error_t err;
    char path[512];
    int rc = (size_t)len != strlen(name)
                 ? FW_EINVAL
                 : fw_shm_path(name, path, sizeof(path), &err);
    if (rc) {
        PyErr_SetString(PyExc_ValueError, (size_t)len != strlen(name)
                                              ? "a shm name may not hold NUL characters"
                                              : err.message);
        return NULL;
    }
    return PyUnicode_FromString(path);
}

/* ---- doctor --------------------------------------------------------------------- */

static PyObject *py_doctor(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *names[] = {"path", "now_ns", NULL};
    PyObject *path = NULL;
    long long now = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|L:doctor", names,
                                     PyUnicode_FSConverter, &path, &now))
        return NULL;
    if (now < 0)
        now = fw_clock_realtime_ns();
    fw_doctor_report_t rep;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fw_table_doctor(PyBytes_AS_STRING(path), now, &rep);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (rc == FW_EIO || rc == FW_EINVAL) {
        fw_store_error_t err;
        err.sys_errno = rep.sys_errno;
        memcpy(err.message, rep.problem, sizeof(err.message));
        return raise_open_error(fw_state_of_module(module), rc, &err);
    }
    PyObject *first_bad = rep.bad_slots ? PyLong_FromUnsignedLongLong(rep.first_bad_slot)
                                        : Py_NewRef(Py_None);
    if (!first_bad)
        return NULL;
    PyObject *r = Py_BuildValue(
        "{s:O,s:s,s:s,s:I,s:I,s:I,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:N,s:K}",
        "ok", rc == 0 ? Py_True : Py_False, "status", fw_strerror(rc), "problem",
        rep.problem, "version", rep.version, "slot_size", rep.slot_size,
        "log_capacity", rep.log_capacity, "max_keys", (unsigned long long)rep.max_keys,
        "slots", (unsigned long long)rep.slots, "file_bytes",
        (unsigned long long)rep.file_bytes, "expected_bytes",
        (unsigned long long)rep.expected_bytes, "used_slots",
        (unsigned long long)rep.used, "active_keys", (unsigned long long)rep.active,
        "bad_slots", (unsigned long long)rep.bad_slots, "stale_locks",
        (unsigned long long)rep.stale_locks, "held_locks",
        (unsigned long long)rep.held_locks, "full_errors",
        (unsigned long long)rep.full_errors, "first_bad_slot", first_bad, "keys",
        (unsigned long long)rep.keys);
    return r;
}

/* ---- inspection ----------------------------------------------------------------- */

static fw_py_table *table_arg(fw_module_state *st, PyObject *obj)
{
    if (!PyObject_TypeCheck(obj, st->table_type)) {
        PyErr_Format(PyExc_TypeError, "expected a floodwall._native.Table, got %.100s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return (fw_py_table *)obj;
}

static int64_t table_now(fw_py_table *t, long long given)
{
    if (given >= 0)
        return given;
    return t->clock_realtime ? fw_clock_realtime_fast_ns() : fw_clock_monotonic_fast_ns();
}

static PyObject *fingerprint_hex(const uint64_t fp[2])
{
    char buf[33];
    snprintf(buf, sizeof(buf), "%016llx%016llx", (unsigned long long)fp[1],
             (unsigned long long)fp[0]);
    return PyUnicode_FromString(buf);
}

static PyObject *slot_dict(const fw_slot_info_t *s, int64_t now)
{
    PyObject *fp = fingerprint_hex(s->fingerprint);
    if (!fp)
        return NULL;
    long long ttl = s->expiry_ns > now ? (long long)(s->expiry_ns - now) : 0;
    return Py_BuildValue("{s:K,s:N,s:K,s:L,s:L,s:I}", "slot",
                         (unsigned long long)s->index, "fingerprint", fp, "state",
                         (unsigned long long)s->state, "expiry_ns",
                         (long long)s->expiry_ns, "fresh_in_ns", ttl, "log_len",
                         s->log_len);
}

static PyObject *py_table_info(PyObject *module, PyObject *arg)
{
    fw_py_table *t = table_arg(fw_state_of_module(module), arg);
    if (!t)
        return NULL;
    fw_table_info_t h;
    int rc = fw_table_info(t->table, &h);
    if (rc)
        return fw_raise(fw_state_of_module(module), rc, "table_info");
    return Py_BuildValue("{s:O,s:I,s:K,s:K,s:I,s:I,s:K,s:K,s:O,s:O}", "store",
                         t->description, "version", h.version, "max_keys",
                         (unsigned long long)h.max_keys, "slots",
                         (unsigned long long)h.slots, "slot_size", h.slot_size,
                         "log_capacity", h.log_capacity, "bytes",
                         (unsigned long long)h.bytes, "created_ns",
                         (unsigned long long)h.created_ns, "clock_realtime",
                         t->clock_realtime ? Py_True : Py_False, "grows",
                         h.grows ? Py_True : Py_False);
}

static PyObject *py_hottest(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *names[] = {"table", "n", "now_ns", NULL};
    PyObject *obj;
    Py_ssize_t n = 10;
    long long now_given = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|nL:hottest", names, &obj, &n,
                                     &now_given))
        return NULL;
    fw_py_table *t = table_arg(fw_state_of_module(module), obj);
    if (!t)
        return NULL;
    if (n < 0 || n > HOTTEST_MAX) {
        PyErr_Format(PyExc_ValueError, "n must be between 0 and %d, got %zd",
                     HOTTEST_MAX, n);
        return NULL;
    }
    int64_t now = table_now(t, now_given);
    fw_slot_info_t *out = PyMem_Calloc((size_t)n + 1, sizeof(*out));
    if (!out)
        return PyErr_NoMemory();
    size_t got = 0;
    int rc;
    FW_TABLE_CALL(t, rc = fw_table_hottest(t->table, now, out, (size_t)n, &got));
    if (rc) {
        PyMem_Free(out);
        return fw_raise(fw_state_of_module(module), rc, "hottest");
    }
    PyObject *list = PyList_New((Py_ssize_t)got);
    for (size_t i = 0; list && i < got; i++) {
        PyObject *d = slot_dict(&out[i], now);
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    PyMem_Free(out);
    return list;
}

static PyObject *py_inspect_key(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *names[] = {"table",  "key",   "algorithm", "quota",
                            "namespace", "index", "now_ns",    NULL};
    PyObject *obj, *key;
    int algorithm;
    long long rate, period, burst, now_given = -1;
    const char *ns;
    Py_ssize_t ns_len, index = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOi(LLL)y#|nL:inspect_key", names,
                                     &obj, &key, &algorithm, &rate, &period, &burst,
                                     &ns, &ns_len, &index, &now_given))
        return NULL;
    fw_module_state *st = fw_state_of_module(module);
    fw_py_table *t = table_arg(st, obj);
    if (!t)
        return NULL;
    const char *kbuf;
    Py_ssize_t klen;
    PyObject *owner = NULL;
    if (PyUnicode_Check(key)) {
        owner = PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass");
        if (!owner)
            return NULL;
        kbuf = PyBytes_AS_STRING(owner);
        klen = PyBytes_GET_SIZE(owner);
    } else if (PyBytes_Check(key)) {
        kbuf = PyBytes_AS_STRING(key);
        klen = PyBytes_GET_SIZE(key);
    } else {
        PyErr_Format(st->key_type_error, "key must be str or bytes, not %.100s",
                     Py_TYPE(key)->tp_name);
        return NULL;
    }
    fw_limit_t lim;
    int rc = fw_quota_init(&lim.quota, (fw_algorithm_t)algorithm, rate, period, burst);
    if (rc) {
        Py_XDECREF(owner);
        return fw_raise(st, rc, "inspect_key: quota");
    }
    lim.namespace_id = fw_namespace_id(ns, (size_t)ns_len, &lim.quota, index);
    int64_t now = table_now(t, now_given);
    fw_slot_info_t info;
    fw_decision_t d;
    FW_TABLE_CALL(t, rc = fw_table_inspect(t->table, &lim, kbuf, (size_t)klen, now,
                                           &info, &d));
    Py_XDECREF(owner);
    if (rc)
        return fw_raise(st, rc, "inspect_key");
    PyObject *slot = info.present ? slot_dict(&info, now) : Py_NewRef(Py_None);
    if (!slot)
        return NULL;
    PyObject *fp = fingerprint_hex(info.fingerprint);
    PyObject *dec = fw_decision_new(st, &d, Py_None, 0);
    if (!fp || !dec) {
        Py_DECREF(slot);
        Py_XDECREF(fp);
        Py_XDECREF(dec);
        return NULL;
    }
    return Py_BuildValue("{s:O,s:N,s:N,s:N,s:L}", "present",
                         info.present ? Py_True : Py_False, "fingerprint", fp, "slot",
                         slot, "decision", dec, "now_ns", (long long)now);
}

#define KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

PyMethodDef fw_shared_table_functions[] = {
    {"open_shm", KW(py_open_shm),
     "open_shm(name, max_keys=0, log_capacity=0, *, create=True) -> Table\n"
     "Open (or create) the table in the POSIX shared-memory object NAME."},
    {"open_file", KW(py_open_file),
     "open_file(path, max_keys=0, log_capacity=0, sync='none', "
     "sync_interval_ms=1000, *, create=True) -> Table\n"
     "Open (or create) the table in a memory-mapped file."},
    {"unlink_shm", KW(py_unlink_shm),
     "unlink_shm(name, *, missing_ok=False) -> bool\n"
     "Remove a shm object; processes that have it open keep it."},
    {"shm_path", py_shm_path, METH_O,
     "shm_path(name) -> str\nThe file of shm object NAME (the one check of shm "
     "names); ValueError naming the problem."},
    {"doctor", KW(py_doctor),
     "doctor(path, now_ns=-1) -> dict\nCheck a table file read-only."},
    {"table_info", py_table_info, METH_O,
     "table_info(table) -> dict\nThe table's header: sizes, version, store."},
    {"hottest", KW(py_hottest),
     "hottest(table, n=10, now_ns=-1) -> list[dict]\n"
     "The slots furthest from fresh (fingerprints: keys are not stored)."},
    {"inspect_key", KW(py_inspect_key),
     "inspect_key(table, key, algorithm, quota, namespace, index=0, now_ns=-1)"
     " -> dict\nOne key's slot and the decision a peek would give."},
    {NULL, NULL, 0, NULL},
};
