/*
 * errors.c - fw_strerror: the message of every FW_E* code.
 * Invariant: the list in floodwall.h (FW_ERRNO_MAP) is the only source.
 */
#include "floodwall.h"

const char *fw_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
#define FW_ERRNO_CASE(name, value, msg)                                        \
    case FW_##name:                                                            \
        return msg;
        FW_ERRNO_MAP(FW_ERRNO_CASE)
#undef FW_ERRNO_CASE
    default:
        return "unknown error";
    }
}
