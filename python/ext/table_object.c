/*
 * table_object.c - floodwall._native.Table: a Python handle on one engine
 * slot table (memory here; shm and file tables come from shared_tables.c).
 * Invariant: the engine table lives exactly as long as this object.
 */
#include "ext.h"

PyObject *fw_table_wrap(PyObject *module, fw_table_t *t, PyObject *description,
                        int clock_realtime)
{
    fw_module_state *st = fw_state_of_module(module);
    fw_py_table *self = description ? PyObject_New(fw_py_table, st->table_type) : NULL;
    if (!self) {
        fw_table_close(t);
        Py_XDECREF(description);
        return NULL;
    }
    fw_table_info_t info;
    self->table = t;
    self->description = description;
    self->clock_realtime = clock_realtime;
    self->blocking = fw_table_info(t, &info) == 0 && info.blocking;
    self->grows = info.grows;
    return (PyObject *)self;
}

/* Table(*, max_keys=0, log_capacity=0): a growing memory table; max_keys
 * caps it (0: no cap). */
static PyObject *table_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *names[] = {"max_keys", "log_capacity", NULL};
    unsigned long long max_keys = 0;
    unsigned int log_capacity = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$KI:Table", names, &max_keys,
                                     &log_capacity))
        return NULL;
    fw_module_state *st = fw_state_of_type(type);
    if (max_keys > FW_MAX_KEYS_MAX) {
        PyErr_Format(PyExc_ValueError, "max_keys must be between 1 and %llu (0: no "
                     "cap), got %llu", (unsigned long long)FW_MAX_KEYS_MAX, max_keys);
        return NULL;
    }
    if (log_capacity > FW_LOG_CAPACITY_MAX) {
        PyErr_Format(PyExc_ValueError, "log_capacity must be at most %d, got %u",
                     FW_LOG_CAPACITY_MAX, log_capacity);
        return NULL;
    }
    fw_table_options_t opt = {max_keys, log_capacity};
    fw_table_t *t;
    int rc = fw_table_open_growing(&t, &opt);
    if (rc)
        return fw_raise(st, rc, "cannot create the memory table");
    fw_py_table *self = PyObject_New(fw_py_table, type);
    if (!self) {
        fw_table_close(t);
        return NULL;
    }
    self->table = t;
    self->description = PyUnicode_FromString("memory://");
    self->clock_realtime = 0;
    self->blocking = 0;
    self->grows = 1;
    if (!self->description) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void table_dealloc(PyObject *op)
{
    fw_py_table *self = (fw_py_table *)op;
    PyTypeObject *tp = Py_TYPE(op);
    fw_table_close(self->table);
    Py_XDECREF(self->description);
    PyObject_Free(op);
    Py_DECREF(tp);
}

static PyObject *table_stats(PyObject *op, PyObject *const *args, Py_ssize_t n)
{
    fw_py_table *self = (fw_py_table *)op;
    long long now;
    if (n != 1) {
        PyErr_SetString(PyExc_TypeError, "stats(now_ns) takes one argument");
        return NULL;
    }
    now = PyLong_AsLongLong(args[0]);
    if (now == -1 && PyErr_Occurred())
        return NULL;
    fw_table_stats_t s;
    int rc = fw_table_stats(self->table, now, &s);
    if (rc)
        return fw_raise(fw_state_of_type(Py_TYPE(op)), rc, "stats");
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "slots",
                         (unsigned long long)s.slots, "max_keys",
                         (unsigned long long)s.max_keys, "used_slots",
                         (unsigned long long)s.used, "active_keys",
                         (unsigned long long)s.active, "full_errors",
                         (unsigned long long)s.full_errors, "damaged_states",
                         (unsigned long long)s.damaged_states, "clamped_states",
                         (unsigned long long)s.clamped_states, "last_damaged_slot",
                         (unsigned long long)s.last_damaged_slot, "keys",
                         (unsigned long long)s.keys, "retired_slots",
                         (unsigned long long)s.retired);
}

#define DAMAGED_MAX 100000

static PyObject *table_damaged(PyObject *op, PyObject *const *args, Py_ssize_t n)
{
    fw_py_table *self = (fw_py_table *)op;
    Py_ssize_t cap = 100;
    if (n > 1) {
        PyErr_SetString(PyExc_TypeError, "damaged(n=100) takes at most one argument");
        return NULL;
    }
    if (n == 1 && (cap = PyLong_AsSsize_t(args[0])) == -1 && PyErr_Occurred())
        return NULL;
    if (cap < 0 || cap > DAMAGED_MAX) {
        PyErr_Format(PyExc_ValueError, "n must be between 0 and %d, got %zd",
                     DAMAGED_MAX, cap);
        return NULL;
    }
    fw_slot_info_t *out = PyMem_Calloc((size_t)cap + 1, sizeof(*out));
    if (!out)
        return PyErr_NoMemory();
    size_t found = 0;
    int rc;
    FW_TABLE_CALL(self, rc = fw_table_damaged(self->table, out, (size_t)cap, &found));
    if (rc) {
        PyMem_Free(out);
        return fw_raise(fw_state_of_type(Py_TYPE(op)), rc, "damaged");
    }
    size_t shown = found < (size_t)cap ? found : (size_t)cap;
    PyObject *list = PyList_New((Py_ssize_t)shown);
    for (size_t i = 0; list && i < shown; i++) {
        PyObject *item = Py_BuildValue(
            "{s:K,s:L,s:K,s:L}", "slot", (unsigned long long)out[i].index,
            "damaged_ns", (long long)out[i].damaged_ns, "state",
            (unsigned long long)out[i].state, "expiry_ns", (long long)out[i].expiry_ns);
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    PyMem_Free(out);
    return list;
}

static PyObject *table_clear(PyObject *op, PyObject *unused)
{
    (void)unused;
    fw_py_table *self = (fw_py_table *)op;
    int rc;
    FW_TABLE_CALL(self, rc = fw_table_clear(self->table));
    if (rc)
        return fw_raise(fw_state_of_type(Py_TYPE(op)), rc, "clear");
    Py_RETURN_NONE;
}

static PyObject *table_repr(PyObject *op)
{
    return PyUnicode_FromFormat("<floodwall._native.Table %U>",
                                ((fw_py_table *)op)->description);
}

static PyObject *table_get_realtime(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong(((fw_py_table *)op)->clock_realtime);
}

static PyObject *table_get_blocking(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong(((fw_py_table *)op)->blocking);
}

static PyMethodDef table_methods[] = {
    {"stats", (PyCFunction)(void (*)(void))table_stats, METH_FASTCALL,
     "stats(now_ns) -> dict of slot counts."},
    {"damaged", (PyCFunction)(void (*)(void))table_damaged, METH_FASTCALL,
     "damaged(n=100) -> the first n slots where a check found an impossible "
     "state (repaired as full): dicts of slot, damaged_ns, state, expiry_ns."},
    {"clear", table_clear, METH_NOARGS, "Forget every key."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef table_getset[] = {
    {"clock_realtime", table_get_realtime, NULL,
     "True when the store's clock is CLOCK_REALTIME (shared stores).", NULL},
    {"blocking", table_get_blocking, NULL,
     "True when writes wait for the disk (file:// with sync): checks then "
     "release the GIL, and async calls go to a thread.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot table_slots[] = {
    {Py_tp_doc, "Table(*, max_keys=0, log_capacity=0)\n--\n\n"
                "A table of rate-limit states in process memory that grows with "
                "its keys; max_keys caps it (0: no cap)."},
    {Py_tp_new, table_tp_new},
    {Py_tp_dealloc, table_dealloc},
    {Py_tp_methods, table_methods},
    {Py_tp_getset, table_getset},
    {Py_tp_repr, table_repr},
    {0, NULL},
};

PyType_Spec fw_table_spec = {
    .name = "floodwall._native.Table",
    .basicsize = sizeof(fw_py_table),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = table_slots,
};
