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

static int fw_exec(PyObject *module)
{
    fw_module_state *st = fw_state_of_module(module);
    PyObject *errors = PyImport_ImportModule("floodwall.errors");
    if (!errors)
        return -1;
    int rc = fetch_error(errors, "CostError", &st->cost_error) ||
             fetch_error(errors, "KeyTypeError", &st->key_type_error) ||
             fetch_error(errors, "StoreError", &st->store_error) ||
             fetch_error(errors, "StoreFullError", &st->store_full_error);
    Py_DECREF(errors);
    if (rc)
        return -1;
    if (add_type(module, &fw_decision_spec, &st->decision_type, "Decision") ||
        add_type(module, &fw_table_spec, &st->table_type, "Table") ||
        add_type(module, &fw_policy_spec, &st->policy_type, "Policy"))
        return -1;
    if (PyModule_AddFunctions(module, fw_policy_functions) < 0 ||
        PyModule_AddFunctions(module, fw_shared_table_functions) < 0)
        return -1;
    static const struct {
        const char *name;
        int value;
    } constants[] = {
        {"GCRA", FW_GCRA},
        {"TOKEN_BUCKET", FW_TOKEN_BUCKET},
        {"LEAKY_BUCKET", FW_LEAKY_BUCKET},
        {"LEAKY_BUCKET_SHAPING", FW_LEAKY_BUCKET_SHAPING},
        {"FIXED_WINDOW", FW_FIXED_WINDOW},
        {"SLIDING_WINDOW", FW_SLIDING_WINDOW},
        {"SLIDING_LOG", FW_SLIDING_LOG},
        {"SLIDING_LOG_MAX", FW_SLIDING_LOG_MAX},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0)
            return -1;
    return 0;
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
    return 0;
}

static int fw_clear(PyObject *module)
{
    fw_module_state *st = fw_state_of_module(module);
    Py_CLEAR(st->decision_type);
    Py_CLEAR(st->table_type);
    Py_CLEAR(st->policy_type);
    Py_CLEAR(st->cost_error);
    Py_CLEAR(st->key_type_error);
    Py_CLEAR(st->store_error);
    Py_CLEAR(st->store_full_error);
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
