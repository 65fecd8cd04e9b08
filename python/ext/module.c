/*
 * module.c - floodwall._native: module definition (multi-phase init),
 * module state, and the mapping of engine errors to Python exceptions.
 * Invariant: the exception classes are those of floodwall.errors, so a
 * user catches the same class whichever store raised it.
 */
#include "ext.h"

fw_module_state *fw_state_of_module(PyObject *module)
{
    return (fw_module_state *)PyModule_GetState(module);
}

static PyModuleDef fw_module_def;

fw_module_state *fw_state_of_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModuleByDef(type, &fw_module_def);
    return module ? fw_state_of_module(module) : NULL;
}

PyObject *fw_raise(fw_module_state *st, int code, const char *context)
{
    PyObject *cls;
    switch (code) {
    case FW_ECOST:
        cls = st->cost_error;
        break;
    case FW_EINVAL:
    case FW_ERANGE:
        cls = PyExc_ValueError;
        break;
    case FW_ENOMEM:
        return PyErr_NoMemory();
    case FW_EFULL:
        cls = st->store_full_error;
        break;
    case FW_EBUSY:
        cls = st->store_busy_error;
        break;
    default:
        cls = st->store_error;
        break;
    }
    PyErr_Format(cls, "%s: %s", context, fw_strerror(code));
    return NULL;
}

static int add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **slot,
                    const char *name)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);
    if (!type)
        return -1;
    *slot = (PyTypeObject *)type;
    Py_INCREF(type);
    if (PyModule_AddObject(module, name, type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static int fetch_error(PyObject *errors, const char *name, PyObject **slot)
{
    *slot = PyObject_GetAttrString(errors, name);
    return *slot ? 0 : -1;
}

/* The engine's facts, from include/floodwall.h: the algorithms (one int
 * constant each, and ALGORITHMS: their names in engine order), the bounds
 * and defaults, and the versions. */
static int add_constants(PyObject *module)
{
    static const struct {
        const char *name;
        long long value;
    } constants[] = {
#define FW_ALGORITHM_CONSTANT(name, value, text) {#name, FW_##name},
        FW_ALGORITHM_MAP(FW_ALGORITHM_CONSTANT)
#undef FW_ALGORITHM_CONSTANT
        {"MAX_KEYS_MAX", (long long)FW_MAX_KEYS_MAX},
        {"DEFAULT_MAX_KEYS", FW_DEFAULT_MAX_KEYS},
        {"LOG_CAPACITY_MAX", FW_LOG_CAPACITY_MAX},
        {"SLIDING_LOG_MAX", FW_LOG_CAPACITY_MAX},
        {"CHECK_PARTS_MAX", FW_CHECK_PARTS_MAX},
        {"TABLE_LAYOUT_VERSION", FW_TABLE_LAYOUT_VERSION},
        {"ENGINE_VERSION", FW_VERSION_NUMBER},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
        PyObject *v = PyLong_FromLongLong(constants[i].value);
        if (!v || PyModule_AddObject(module, constants[i].name, v) < 0) {
            Py_XDECREF(v);
            return -1;
        }
    }
    PyObject *names = PyTuple_New(FW_ALGORITHM_COUNT);
    if (!names)
        return -1;
    for (int a = 0; a < FW_ALGORITHM_COUNT; a++) {
        PyObject *s = PyUnicode_FromString(fw_algorithm_name((fw_algorithm_t)a));
        if (!s) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, a, s);
    }
    if (PyModule_AddObject(module, "ALGORITHMS", names) < 0) {
        Py_DECREF(names);
        return -1;
    }
    return 0;
}

static int fw_exec(PyObject *module)
{
    fw_module_state *st = fw_state_of_module(module);
    PyObject *errors = PyImport_ImportModule("floodwall.errors");
    if (!errors)
        return -1;
    int rc = fetch_error(errors, "CostError", &st->cost_error) ||
             fetch_error(errors, "KeyTypeError", &st->key_type_error) ||
             fetch_error(errors, "StoreError", &st->store_error) ||
             fetch_error(errors, "StoreFullError", &st->store_full_error) ||
             fetch_error(errors, "StoreBusyError", &st->store_busy_error);
    Py_DECREF(errors);
    if (rc)
        return -1;
    if (add_type(module, &fw_decision_spec, &st->decision_type, "Decision") ||
        add_type(module, &fw_table_spec, &st->table_type, "Table") ||
        add_type(module, &fw_policy_spec, &st->policy_type, "Policy"))
        return -1;
    if (PyModule_AddFunctions(module, fw_policy_functions) < 0 ||
        PyModule_AddFunctions(module, fw_shared_table_functions) < 0 ||
        PyModule_AddFunctions(module, fw_decision_json_functions) < 0)
        return -1;
    return add_constants(module);
}

static int fw_traverse(PyObject *module, visitproc visit, void *arg)
{
    fw_module_state *st = fw_state_of_module(module);
    Py_VISIT(st->decision_type);
    Py_VISIT(st->table_type);
    Py_VISIT(st->policy_type);
    Py_VISIT(st->cost_error);
    Py_VISIT(st->key_type_error);
    Py_VISIT(st->store_error);
    Py_VISIT(st->store_full_error);
    Py_VISIT(st->store_busy_error);
    return 0;
}

static int fw_clear(PyObject *module)
{
    fw_module_state *st = fw_state_of_module(module);
    fw_decisions_drain(st);
    Py_CLEAR(st->decision_type);
    Py_CLEAR(st->table_type);
    Py_CLEAR(st->policy_type);
    Py_CLEAR(st->cost_error);
    Py_CLEAR(st->key_type_error);
    Py_CLEAR(st->store_error);
    Py_CLEAR(st->store_full_error);
    Py_CLEAR(st->store_busy_error);
    return 0;
}

static void fw_free(void *module) { fw_clear((PyObject *)module); }

static PyModuleDef_Slot fw_slots[] = {
    {Py_mod_exec, fw_exec},
    {0, NULL},
};

static PyModuleDef fw_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "floodwall._native",
    .m_doc = "The floodwall C engine: tables, policies and decisions.",
    .m_size = sizeof(fw_module_state),
    .m_slots = fw_slots,
    .m_traverse = fw_traverse,
    .m_clear = fw_clear,
    .m_free = fw_free,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&fw_module_def); }
