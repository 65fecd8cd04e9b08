/*
 * ext.h - declarations shared by the files of the CPython extension
 * floodwall._native.
 * Invariant: every Python type is a heap type reached through the module
 * state (multi-phase init), never a static global.
 */
#ifndef FW_EXT_H
#define FW_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "floodwall.h"

typedef struct fw_module_state {
    PyTypeObject *decision_type;
    PyTypeObject *table_type;
    PyTypeObject *policy_type;
    /* exception classes from floodwall.errors */
    PyObject *cost_error;
    PyObject *key_type_error;
    PyObject *store_error;
    PyObject *store_full_error;
    PyObject *store_busy_error;
    /* Decisions freed and kept for reuse (decision.c): a singly linked list
     * through their `rate` field, at most FW_DECISION_FREE_MAX long; each
     * keeps its reference to decision_type. Emptied by fw_decisions_drain. */
    PyObject *free_decisions;
    int n_free_decisions;
} fw_module_state;

fw_module_state *fw_state_of_module(PyObject *module);
fw_module_state *fw_state_of_type(PyTypeObject *type);

/* ---- Decision (decision.c) ---- */
typedef struct {
    PyObject_HEAD
    fw_decision_t d;
    PyObject *rate; /* the limit that decided, or Py_None */
    char fallback;
    int64_t at_ns;        /* when it was made: see at_monotonic */
    char at_monotonic;    /* at_ns is CLOCK_MONOTONIC (memory://), else UNIX */
    Py_ssize_t part;      /* check_all: the denying part's index, else -1 */
    fw_module_state *st;  /* its module's (the type keeps the module alive):
                             where dealloc returns it for reuse */
} fw_py_decision;

PyObject *fw_decision_new(fw_module_state *st, const fw_decision_t *d,
                          PyObject *rate, int fallback);
/* The same, made at `now` of the engine clock `clock` (FW_DECIDED_*), so
 * that reset_at needs no clock read on the hot path. */
enum { FW_DECIDED_REALTIME = 0, FW_DECIDED_MONOTONIC = 1 };
PyObject *fw_decision_new_at(fw_module_state *st, const fw_decision_t *d,
                             PyObject *rate, int64_t now, int clock);
extern PyType_Spec fw_decision_spec;
/* ns -> seconds: the smallest double not below ns / 1e9 (what every seconds
 * property of a Decision gives). */
double fw_seconds_up(int64_t ns);
/* reset_at in UNIX nanoseconds, never below the exact instant (a monotonic
 * stamp is moved onto the wall clock the first time it is asked for). */
int64_t fw_decision_reset_at_ns(fw_py_decision *s);

/* ---- the server's JSON answer of a Decision (decision_json.c) ---- */
extern PyMethodDef fw_decision_json_functions[];
/* Free the Decisions kept for reuse (module clear and free). */
void fw_decisions_drain(fw_module_state *st);

/* ---- Table (table_object.c) ---- */
typedef struct {
    PyObject_HEAD
    fw_table_t *table;
    PyObject *description; /* str: what this table is, for repr and errors */
    int clock_realtime;    /* 1 for shared stores: the store's clock */
    int blocking;          /* 1: a check may wait for the disk: release the
                              GIL around it                              */
    int grows;             /* 1: a growing memory table, whose calls the GIL
                              serialises: never release it around them   */
} fw_py_table;

/* Run `stmt` (engine work on table `pt`) without the GIL, unless the table
 * grows (fw_table_open_growing: the GIL is what serialises its calls). */
#define FW_TABLE_CALL(pt, stmt)                                                \
    do {                                                                       \
        if ((pt)->grows) {                                                     \
            stmt;                                                              \
        } else {                                                               \
            Py_BEGIN_ALLOW_THREADS stmt;                                       \
            Py_END_ALLOW_THREADS                                               \
        }                                                                      \
    } while (0)

/* Wrap an open engine table. Steals both `t` and `description` (a new
 * reference, or NULL after a failed creation); on failure closes the table. */
PyObject *fw_table_wrap(PyObject *module, fw_table_t *t, PyObject *description,
                        int clock_realtime);
extern PyType_Spec fw_table_spec;

/* ---- Policy (policy.c) ---- */
extern PyType_Spec fw_policy_spec;

extern PyMethodDef fw_policy_functions[];

/* ---- shared stores (shared_tables.c): shm:// and file:// openers ---- */
extern PyMethodDef fw_shared_table_functions[];

/* Raise the Python exception matching an engine error code. */
PyObject *fw_raise(fw_module_state *st, int code, const char *context);

#endif
