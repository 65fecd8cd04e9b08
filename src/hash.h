/*
 * hash.h - the keyed 128-bit hash that turns user keys into fingerprints.
 */
#ifndef FW_HASH_H
#define FW_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct fwi_hash128 {
    uint64_t lo, hi;
} fwi_hash128_t;

/* SipHash-1-3 with a 128-bit output, keyed by (k0, k1). */
fwi_hash128_t fwi_hash128(uint64_t k0, uint64_t k1, const void *data, size_t len);

#endif
