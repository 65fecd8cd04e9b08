/*
 * namespace.c - fw_namespace_id: the rule that defines key identity.
 * Invariant: the id depends only on (user namespace, algorithm, rate,
 * period, burst, index), so every process, and every restart, that
 * configures the same limit finds the same keys; changing any of them
 * starts its keys afresh.
 */
#include "floodwall.h"
#include "hash.h"

uint64_t fw_namespace_id(const char *ns, size_t ns_len, const fw_quota_t *q,
                         uint64_t index)
{
    if (!q || (!ns && ns_len > 0))
        return 0;
    /* the limit's identity: user namespace, algorithm, quota, position */
    int64_t parts[5] = {(int64_t)q->algorithm, q->rate, q->period_ns, q->burst,
                        (int64_t)index};
    fwi_hash128_t a = fwi_hash128(0x6e616d6573706163ULL, 0x65666c6f6f647761ULL,
                                  ns, ns_len);
    fwi_hash128_t b = fwi_hash128(a.lo, a.hi, parts, sizeof(parts));
    return b.lo;
}
