/*
 * shared_tables.c - module functions that open the shm:// and file://
 * tables (filled in by the shared-store work).
 */
#include "ext.h"

PyMethodDef fw_shared_table_functions[] = {
    {NULL, NULL, 0, NULL},
};
