/*
 * table_helpers.h - small builders shared by the C tests of the slot table:
 * a limit from (algorithm, rate, period, burst, namespace), and a one-key
 * check. A quota the test itself gets wrong stops the program (exit 2).
 */
#ifndef FW_TEST_TABLE_HELPERS_H
#define FW_TEST_TABLE_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floodwall.h"

static fw_limit_t limit_of(fw_algorithm_t a, int64_t rate, int64_t period,
                           int64_t burst, uint64_t ns)
{
    fw_limit_t l;
    memset(&l, 0, sizeof(l));
    if (fw_quota_init(&l.quota, a, rate, period, burst) != 0) {
        fprintf(stderr, "bad quota in the test itself\n");
        exit(2);
    }
    l.namespace_id = ns;
    return l;
}

static int check1(fw_table_t *t, const fw_limit_t *l, const char *key,
                  int64_t cost, int64_t now, fw_decision_t *d)
{
    fw_request_t r = {l, key, strlen(key)};
    size_t v;
    return fw_table_check(t, &r, 1, cost, now, d, &v);
}

#endif
