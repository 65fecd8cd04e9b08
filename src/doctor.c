/*
 * doctor.c - fw_table_doctor: an operator's read-only check of a table file
 * or shm object: its type, mode, header, sizes, every slot's content, and
 * whether its directory lets another user replace it.
 *
 * Invariant: the doctor never writes and never blocks: it looks at the path
 * with lstat before opening it (a FIFO, device, socket or directory is
 * reported, never opened), opens read-only with O_NOFOLLOW | O_NONBLOCK,
 * checks the opened descriptor again, and maps it PROT_READ.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "lock.h"
#include "mapping.h"
#include "table.h"

typedef unsigned long long ull;

static int pid_state(uint64_t owner)
{
    /* 0 free, 1 held by a live process, 2 held by a dead one (or a word no
     * owner could have written: taken over on use) */
    fwi_lock_owner_t o = fwi_lock_owner(owner);
    return o == FWI_LOCK_FREE ? 0 : o == FWI_LOCK_LIVE ? 1 : 2;
}

static void count_lock(fw_doctor_report_t *rep, uint64_t owner)
{
    int s = pid_state(owner);
    if (s == 1)
        rep->held_locks++;
    else if (s == 2)
        rep->stale_locks++;
}

/* What is impossible about slot i, or NULL. */
static const char *slot_problem(const fwi_table_header_t *h, const unsigned char *slots,
                                uint64_t i)
{
    uint64_t mask = h->nslots - 1;
    const fwi_slot_t *s = (const fwi_slot_t *)(const void *)(slots + i * h->slot_size);
#define SLOT_AT(k) ((const fwi_slot_t *)(const void *)(slots + ((k) & mask) * h->slot_size))
    if (s->tag == FWI_TAG_EMPTY)
        return s->state != 0 ? "an unused slot holds a state" : NULL;
    if (s->tag == FWI_TAG_RETIRED)
        return s->state != 0 ? "a retired slot holds a state" : NULL;
    if (s->expiry < 0)
        return "a negative expiry";
    if (s->damaged_at != 0)
        return "a state a check found impossible (decided and rewritten as full)";
    if (s->check != 0) {
        /* a torn claim (killed between tag and check) leaves check 0. A key
         * lies on its probe sequence: no empty slot from home to it, and no
         * other slot there or up to the next empty one holds it again. */
        for (uint64_t k = s->check & mask; (k & mask) != i; k++)
            if (SLOT_AT(k)->tag == FWI_TAG_EMPTY)
                return "a fingerprint past an empty slot of its probe sequence "
                       "(no lookup can find it)";
        for (uint64_t d = 1; d < h->nslots && SLOT_AT(i + d)->tag != FWI_TAG_EMPTY; d++) {
            const fwi_slot_t *o = SLOT_AT(i + d);
            if (o->tag == s->tag && o->check == s->check)
                return "the same fingerprint as a nearby slot";
        }
    }
#undef SLOT_AT
    if (h->log_capacity == 0)
        return s->log_pos != 0 ? "a sliding-log position in a table without logs"
                               : NULL;
    uint32_t head, len;
    int64_t units, sum = 0;
    if (!fwi_log_pos_unpack(s->log_pos, &head, &len, &units))
        return "a sliding-log position whose check bits disagree with it";
    if (head >= h->log_capacity || len > h->log_capacity)
        return "a sliding-log position outside its ring";
    const fw_log_entry_t *e =
        (const fw_log_entry_t *)(const void *)((const unsigned char *)s + FWI_SLOT_HEAD_SIZE);
    for (uint32_t k = 0; k < len; k++) {
        const fw_log_entry_t *x = &e[(head + k) % h->log_capacity];
        if (x->t < 0 || x->cost < 1 || x->cost > (int64_t)h->log_capacity)
            return "a sliding-log entry with a negative time or an impossible cost";
        sum += x->cost;
    }
    if (units < sum)
        return "a sliding-log running total below its entries' units";
    return NULL;
}

static int doctor_fail(fw_doctor_report_t *rep, int status, int sys_errno,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int doctor_fail(fw_doctor_report_t *rep, int status, int sys_errno,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->problem, sizeof(rep->problem), fmt, ap);
    va_end(ap);
    rep->status = status;
    rep->sys_errno = sys_errno;
    return status;
}

int fw_table_doctor(const char *path, int64_t now, fw_doctor_report_t *rep)
{
    if (!rep)
        return FW_EINVAL;
    memset(rep, 0, sizeof(*rep));
    if (!path || !*path || now < 0)
        return doctor_fail(rep, FW_EINVAL, 0, "doctor needs a path and a time >= 0");
    struct stat st;
    if (lstat(path, &st) != 0) {
        int e = errno;
        return doctor_fail(rep, FW_EIO, e, "cannot open table file %s: %s", path,
                           strerror(e));
    }
    if (S_ISLNK(st.st_mode)) {
        char what[PATH_MAX + 16];
        fw_store_error_t err;
        snprintf(what, sizeof(what), "table file %s", path);
        int rc = fw_symlink_problem(path, what, &err);
        return doctor_fail(rep, rc, err.sys_errno, "%s", err.message);
    }
    if (!S_ISREG(st.st_mode))
        return doctor_fail(rep, FW_EBADFILE, 0,
                           "table file %s is %s, not a regular file: not a "
                           "floodwall table",
                           path, fw_file_type_name(st.st_mode));
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return doctor_fail(rep, FW_EIO, e, "cannot open table file %s: %s", path,
                           strerror(e));
    }
    fw_header_page_t page;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return doctor_fail(rep, FW_EIO, e ? e : EAGAIN,
                           "table file %s changed while being opened", path);
    }
    if (fw_header_read(fd, &page.h) != 0) {
        int e = errno;
        close(fd);
        return doctor_fail(rep, FW_EIO, e, "cannot read table file %s: %s", path,
                           strerror(e));
    }
    const fwi_table_header_t *h = &page.h;
    rep->file_bytes = (uint64_t)st.st_size;
    rep->version = h->version;
    rep->slot_size = h->slot_size;
    rep->log_capacity = h->log_capacity;
    rep->max_keys = h->max_keys;
    rep->slots = h->nslots;
    char why[320];
    int rc = fw_header_problem(h, (uint64_t)st.st_size, why, sizeof(why));
    if (rc) {
        close(fd);
        return doctor_fail(rep, rc, 0, "table file %s %s", path, why);
    }
    uint64_t nslots = 0, bytes = 0;
    uint32_t slot_size = 0;
    fw_header_layout(h->max_keys, h->log_capacity, &nslots, &slot_size, &bytes);
    rep->expected_bytes = bytes;
    rep->full_errors = h->full_errors;
    rep->keys = h->keys;
    for (uint32_t i = 0; i < FWI_TABLE_STRIPES; i++)
        count_lock(rep, h->stripe_locks[i]);
    void *mem = mmap(NULL, (size_t)bytes, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (mem == MAP_FAILED)
        return doctor_fail(rep, FW_EIO, e, "cannot map table file %s: %s", path,
                           strerror(e));
    const unsigned char *slots = (const unsigned char *)mem + FWI_TABLE_HEADER_SIZE;
    const char *first = NULL;
    for (uint64_t i = 0; i < nslots; i++) {
        const fwi_slot_t *s = (const fwi_slot_t *)(const void *)(slots + i * slot_size);
        if (s->tag != FWI_TAG_EMPTY && s->tag != FWI_TAG_RETIRED) {
            rep->used++;
            if (fwi_slot_fresh_at(s->tag, s->state, s->expiry) > now)
                rep->active++;
        }
        count_lock(rep, s->lock); /* claims lock any slot, logs too */
        const char *p = slot_problem(h, slots, i);
        if (p) {
            if (rep->bad_slots++ == 0) {
                first = p;
                rep->first_bad_slot = i;
            }
        }
    }
    munmap(mem, (size_t)bytes);
    if (rep->bad_slots > 0)
        return doctor_fail(rep, FW_EBADFILE, 0,
                           "table file %s has %llu impossible slot(s); the first, "
                           "slot %llu, holds %s",
                           path, (ull)rep->bad_slots, (ull)rep->first_bad_slot, first);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return doctor_fail(rep, FW_EUNSAFE, 0,
                           "table file %s is sound, but has mode %04o: group or "
                           "others can write it, so the stores refuse it. Fix: "
                           "chmod 600 '%s'",
                           path, (unsigned)(st.st_mode & 07777), path);
    /* the stores, run as the table's owner, would refuse its directory */
    char dir[PATH_MAX], what[PATH_MAX + 32];
    struct stat dst;
    fw_store_error_t err;
    snprintf(what, sizeof(what), "table file %s (sound)", path);
    if (fw_dir_of(path, dir, sizeof(dir)) == 0 && stat(dir, &dst) == 0 &&
        fw_dir_problem(&dst, dir, st.st_uid, "the table owner's", what, &err) != 0)
        return doctor_fail(rep, FW_EUNSAFE, 0, "%s", err.message);
    return 0;
}
