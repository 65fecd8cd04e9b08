/*
 * inspect.c - looking into an open table without consuming: one key's slot
 * and fingerprint (fw_table_inspect, fw_table_fingerprint), and the slots
 * furthest from fresh (fw_table_hottest).
 *
 * Invariant: nothing here writes to the table; a key's fingerprint is
 * computed exactly as table.c computes it (the C tests check they agree).
 */
#include <string.h>

#include "hash.h"
#include "internal.h"
#include "table.h"


static inline fwi_slot_t *slot_of(const fw_table_t *t, uint64_t i)
{
    return (fwi_slot_t *)(void *)(t->slots + (i & t->mask) * t->slot_size);
}

/* The fingerprint of table.c (the same function, table.h). */
static fwi_hash128_t key_fingerprint(const fw_table_t *t, const fw_limit_t *lim,
                                    const void *key, size_t len)
{
    return fwi_fingerprint(t->hdr->seed, lim, key, len);
}

static void slot_read(const fw_table_t *t, uint64_t i, fw_slot_info_t *info)
{
    fwi_slot_t *s = slot_of(t, i);
    info->index = i;
    info->fingerprint[0] = __atomic_load_n(&s->tag, __ATOMIC_RELAXED);
    info->state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
    info->fingerprint[1] = __atomic_load_n(&s->check, __ATOMIC_RELAXED);
    info->expiry_ns = fwi_slot_fresh_at(info->fingerprint[0], info->state,
                                        __atomic_load_n(&s->expiry, __ATOMIC_RELAXED));
    info->log_len = 0;
    if (t->log_capacity > 0) {
        uint32_t head, len;
        int64_t units;
        fwi_log_pos_unpack(__atomic_load_n(&s->log_pos, __ATOMIC_RELAXED), &head, &len,
                           &units);
        info->log_len = len <= t->log_capacity ? len : 0;
    }
    info->present = 0;
}

int fw_table_fingerprint(fw_table_t *t, const fw_limit_t *limit, const void *key,
                         size_t key_len, uint64_t fingerprint[2])
{
    if (!t || !limit || (!key && key_len > 0) || !fingerprint)
        return FW_EINVAL;
    fwi_hash128_t h = key_fingerprint(t, limit, key, key_len);
    fingerprint[0] = h.lo;
    fingerprint[1] = h.hi;
    return 0;
}

int fw_table_inspect(fw_table_t *t, const fw_limit_t *limit, const void *key,
                     size_t key_len, int64_t now, fw_slot_info_t *info,
                     fw_decision_t *d)
{
    if (!t || !limit || (!key && key_len > 0) || !info || now < 0)
        return FW_EINVAL;
    fwi_hash128_t h = key_fingerprint(t, limit, key, key_len);
    memset(info, 0, sizeof(*info));
    info->fingerprint[0] = h.lo;
    info->fingerprint[1] = h.hi;
    uint64_t home = h.hi & t->mask;
    for (uint64_t i = 0; i <= t->mask; i++) {
        fwi_slot_t *s = slot_of(t, home + i);
        uint64_t tag = __atomic_load_n(&s->tag, __ATOMIC_SEQ_CST);
        if (tag == h.lo && __atomic_load_n(&s->check, __ATOMIC_SEQ_CST) == h.hi) {
            slot_read(t, (home + i) & t->mask, info);
            info->present = 1;
            break;
        }
        if (tag == 0)
            break;
    }
    if (!d)
        return 0;
    return fw_table_peek(t, limit, key, key_len, now, d);
}

/* A min-heap on expiry of the `cap` furthest expiries seen so far. */
static void heap_sift_down(fw_slot_info_t *a, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && a[l].expiry_ns < a[m].expiry_ns)
            m = l;
        if (r < n && a[r].expiry_ns < a[m].expiry_ns)
            m = r;
        if (m == i)
            return;
        fw_slot_info_t tmp = a[i];
        a[i] = a[m];
        a[m] = tmp;
        i = m;
    }
}

static void heap_sift_up(fw_slot_info_t *a, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (a[p].expiry_ns <= a[i].expiry_ns)
            return;
        fw_slot_info_t tmp = a[i];
        a[i] = a[p];
        a[p] = tmp;
        i = p;
    }
}

int fw_table_hottest(fw_table_t *t, int64_t now, fw_slot_info_t *out, size_t cap,
                     size_t *n)
{
    if (!t || (!out && cap > 0) || !n || now < 0)
        return FW_EINVAL;
    size_t len = 0;
    for (uint64_t i = 0; i <= t->mask && cap > 0; i++) {
        fwi_slot_t *s = slot_of(t, i);
        uint64_t tag = __atomic_load_n(&s->tag, __ATOMIC_RELAXED);
        if (tag == 0)
            continue;
        int64_t expiry = fwi_slot_fresh_at(tag, __atomic_load_n(&s->state, __ATOMIC_RELAXED),
                                           __atomic_load_n(&s->expiry, __ATOMIC_RELAXED));
        if (expiry <= now || (len == cap && expiry <= out[0].expiry_ns))
            continue;
        fw_slot_info_t info;
        slot_read(t, i, &info);
        info.present = 1;
        if (len < cap) {
            out[len] = info;
            heap_sift_up(out, len++);
        } else {
            out[0] = info;
            heap_sift_down(out, len, 0);
        }
    }
    /* heap sort: repeatedly move the nearest expiry to the end */
    for (size_t end = len; end > 1; end--) {
        fw_slot_info_t tmp = out[0];
        out[0] = out[end - 1];
        out[end - 1] = tmp;
        heap_sift_down(out, end - 1, 0);
    }
    *n = len;
    return 0;
}

