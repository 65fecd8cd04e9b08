/*
 * hash.c - SipHash-1-3, 128-bit output, written from the SipHash paper
 * (Aumasson and Bernstein). Keyed with the table's random seed, so that
 * nobody can choose keys that collide.
 * Invariant: the output depends only on (k0, k1, bytes).
 */
#include "hash.h"

#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = ROTL(v1, 13);                                                     \
        v1 ^= v0;                                                              \
        v0 = ROTL(v0, 32);                                                     \
        v2 += v3;                                                              \
        v3 = ROTL(v3, 16);                                                     \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = ROTL(v3, 21);                                                     \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = ROTL(v1, 17);                                                     \
        v1 ^= v2;                                                              \
        v2 = ROTL(v2, 32);                                                     \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

fwi_hash128_t fwi_hash128(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL ^ 0xee;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;

    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    /* the last 0..7 bytes, little-endian, byte by byte (no memcpy call) */
    const unsigned char *t = p + whole;
    uint64_t b = (uint64_t)len << 56;
    switch (len & 7) {
    case 7: b |= (uint64_t)t[6] << 48; /* fall through */
    case 6: b |= (uint64_t)t[5] << 40; /* fall through */
    case 5: b |= (uint64_t)t[4] << 32; /* fall through */
    case 4: b |= (uint64_t)t[3] << 24; /* fall through */
    case 3: b |= (uint64_t)t[2] << 16; /* fall through */
    case 2: b |= (uint64_t)t[1] << 8;  /* fall through */
    case 1: b |= (uint64_t)t[0]; break;
    default: break;
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;

    v2 ^= 0xee;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    fwi_hash128_t h;
    h.lo = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    h.hi = v0 ^ v1 ^ v2 ^ v3;
    return h;
}
