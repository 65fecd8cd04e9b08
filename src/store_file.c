/*
 * store_file.c - the file:// store: the slot table in a memory-mapped file;
 * what the shm:// store shares with it (validating a header before mapping
 * it, the mapping's lifetime, sync hooks); the inspection API and doctor.
 *
 * Invariant: an existing file is written only through a table that its
 * header check and fw_table_attach accepted; a new file appears at its path
 * fully formatted (made under a temporary name, then linked), so no process
 * ever maps a half-made table and a rejected file is never modified.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "hash.h"
#include "internal.h"
#include "lock.h"
#include "table.h"

#define CREATE_ATTEMPTS 8
#define RESERVE_MAX ((uint64_t)4 << 30) /* bytes reserved up front, at most */

typedef unsigned long long ull;

/* ---- errors ------------------------------------------------------------------ */

int fwi_store_fail(fw_store_error_t *err, int code, int sys_errno,
                  const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        err->sys_errno = sys_errno;
    }
    return code;
}

static void clear_error(fw_store_error_t *err)
{
    if (err) {
        err->sys_errno = 0;
        err->message[0] = '\0';
    }
}

/* ---- the header, checked before anything is mapped ------------------------------ */

/* The layout fw_table_format gives (max_keys, log_capacity); -1 if none. */
static int expected_layout(uint64_t max_keys, uint32_t log_capacity,
                           uint64_t *nslots, uint32_t *slot_size, uint64_t *bytes)
{
    fw_table_options_t o = {max_keys, log_capacity};
    size_t b;
    if (fw_table_size(&o, &b) != 0)
        return -1;
    uint64_t n = 1;
    while (n < max_keys)
        n <<= 1;
    n *= 2;
    *nslots = n < 64 ? 64 : n;
    uint64_t log_bytes = (uint64_t)log_capacity * sizeof(fw_log_entry_t);
    *slot_size = (uint32_t)(FWI_SLOT_HEAD_SIZE + ((log_bytes + 63) & ~(uint64_t)63));
    *bytes = (uint64_t)b;
    return 0;
}

/*
 * What is wrong with the header `h` of an object of `size` bytes (bytes of
 * h past `size` are zero), as a phrase that follows the object's name.
 * Returns 0, FW_EBADFILE or FW_EVERSION.
 */
static int header_problem(const fwi_table_header_t *h, uint64_t size, char *msg,
                          size_t cap)
{
    const unsigned char *m = (const unsigned char *)h->magic;
    if (size == 0) {
        snprintf(msg, cap, "is empty (0 bytes): not a floodwall table");
        return FW_EBADFILE;
    }
    if (size < sizeof(h->magic) || memcmp(h->magic, FWI_TABLE_MAGIC, 8) != 0) {
        snprintf(msg, cap,
                 "is not a floodwall table: it starts with bytes "
                 "%02x %02x %02x %02x %02x %02x %02x %02x, not the magic "
                 "\"FLOODWL\\0\"",
                 m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]);
        return FW_EBADFILE;
    }
    if (size < FWI_TABLE_HEADER_SIZE) {
        snprintf(msg, cap, "is truncated: %llu bytes, shorter than its %u-byte header",
                 (ull)size, FWI_TABLE_HEADER_SIZE);
        return FW_EBADFILE;
    }
    uint64_t sum = fwi_table_header_checksum(h);
    if (h->version != FWI_TABLE_VERSION) {
        snprintf(msg, cap,
                 "has table layout version %u, and this floodwall reads version "
                 "%u only%s",
                 h->version, FWI_TABLE_VERSION,
                 sum == h->checksum ? ""
                                    : " (its header checksum does not match "
                                      "either: it may be damaged)");
        return FW_EVERSION;
    }
    if (sum != h->checksum) {
        snprintf(msg, cap,
                 "has a damaged header: checksum %016llx stored, %016llx computed",
                 (ull)h->checksum, (ull)sum);
        return FW_EBADFILE;
    }
    uint64_t nslots = 0, bytes = 0;
    uint32_t slot_size = 0;
    if (h->header_size != FWI_TABLE_HEADER_SIZE) {
        snprintf(msg, cap, "declares a %u-byte header; version %u has %u",
                 h->header_size, FWI_TABLE_VERSION, FWI_TABLE_HEADER_SIZE);
        return FW_EBADFILE;
    }
    if (expected_layout(h->max_keys, h->log_capacity, &nslots, &slot_size,
                        &bytes) != 0) {
        snprintf(msg, cap,
                 "declares impossible sizes: max_keys=%llu, log_capacity=%u",
                 (ull)h->max_keys, h->log_capacity);
        return FW_EBADFILE;
    }
    if (nslots != h->nslots || slot_size != h->slot_size) {
        snprintf(msg, cap,
                 "declares %llu slots of %u bytes, but max_keys=%llu and "
                 "log_capacity=%u make %llu slots of %u bytes",
                 (ull)h->nslots, h->slot_size, (ull)h->max_keys, h->log_capacity,
                 (ull)nslots, slot_size);
        return FW_EBADFILE;
    }
    if (size < bytes) {
        snprintf(msg, cap,
                 "is truncated: %llu bytes, but its table needs %llu (a %u-byte "
                 "header and %llu slots of %u bytes)",
                 (ull)size, (ull)bytes, FWI_TABLE_HEADER_SIZE, (ull)nslots,
                 slot_size);
        return FW_EBADFILE;
    }
    return 0;
}

/* Read the first header page of `fd` (zero-filled past the end of file). */
static int read_header(int fd, fwi_table_header_t *h)
{
    unsigned char *buf = (unsigned char *)h;
    size_t got = 0;
    memset(h, 0, FWI_TABLE_HEADER_SIZE);
    while (got < FWI_TABLE_HEADER_SIZE) {
        ssize_t r = pread(fd, buf + got, FWI_TABLE_HEADER_SIZE - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return 0;
}

typedef union header_page {
    fwi_table_header_t h;
    unsigned char bytes[FWI_TABLE_HEADER_SIZE];
} header_page_t;

/* ---- an attached mapping and its sync hooks ----------------------------------- */

typedef struct mapping {
    unsigned char *base;
    size_t len;
    fw_sync_t sync;
    int64_t interval_ns;
    int64_t last_sync_ns; /* monotonic; atomic */
    uintptr_t page_mask;
    uint64_t sync_errors; /* atomic; msync failures cannot be reported */
} mapping_t;

static void sync_range(mapping_t *m, void *addr, size_t len)
{
    uintptr_t start = (uintptr_t)addr & ~m->page_mask;
    uintptr_t end = (uintptr_t)addr + len;
    if (msync((void *)start, end - start, MS_SYNC) != 0)
        __atomic_fetch_add(&m->sync_errors, 1, __ATOMIC_RELAXED);
}

static void after_write_always(fw_table_t *t, void *addr, size_t len)
{
    sync_range(t->store, addr, len);
}

static void after_write_interval(fw_table_t *t, void *addr, size_t len)
{
    (void)addr;
    (void)len;
    mapping_t *m = t->store;
    int64_t now = fw_clock_monotonic_ns();
    int64_t last = __atomic_load_n(&m->last_sync_ns, __ATOMIC_RELAXED);
    if (now - last < m->interval_ns)
        return;
    /* one thread of this process syncs per interval */
    if (!__atomic_compare_exchange_n(&m->last_sync_ns, &last, now, 0,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    sync_range(m, m->base, m->len);
}

static void mapping_close(fw_table_t *t)
{
    mapping_t *m = t->store;
    if (!m)
        return;
    if (m->sync != FW_SYNC_NONE)
        sync_range(m, m->base, m->len);
    munmap(m->base, m->len);
    free(m);
    t->store = NULL;
}

/* ---- attaching an open descriptor (file and shm) ---------------------------------- */

static int options_problem(const fwi_table_header_t *h, const fw_shared_options_t *opt,
                           const char *what, fw_store_error_t *err)
{
    uint64_t want = opt->table.max_keys;
    if (want > h->max_keys)
        return fwi_store_fail(
            err, FW_EMISMATCH, 0,
            "%s holds a table for max_keys=%llu, and max_keys=%llu was asked for: "
            "a table cannot grow in place. Open it with max_keys <= %llu (or "
            "none), or remove it, losing its state, to create a larger one",
            what, (ull)h->max_keys, (ull)want, (ull)h->max_keys);
    if (opt->table.log_capacity > h->log_capacity)
        return fwi_store_fail(
            err, FW_EMISMATCH, 0,
            "%s holds a table whose sliding logs hold %u entries, and "
            "log_capacity=%u was asked for: a table cannot grow in place. "
            "Remove it, losing its state, to create one with a larger capacity",
            what, h->log_capacity, opt->table.log_capacity);
    return 0;
}

int fwi_store_attach_fd(fw_table_t **out, int fd, const char *what,
                       const fw_shared_options_t *opt, fw_store_error_t *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        return fwi_store_fail(err, FW_EIO, e, "cannot stat %s: %s", what, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return fwi_store_fail(err, FW_EBADFILE, 0, "%s is not a regular file", what);
    header_page_t page;
    if (read_header(fd, &page.h) != 0) {
        int e = errno;
        return fwi_store_fail(err, FW_EIO, e, "cannot read %s: %s", what, strerror(e));
    }
    char why[320];
    int rc = header_problem(&page.h, (uint64_t)st.st_size, why, sizeof(why));
    if (rc)
        return fwi_store_fail(err, rc, 0, "%s %s", what, why);
    rc = options_problem(&page.h, opt, what, err);
    if (rc)
        return rc;

    uint64_t nslots = 0, bytes = 0;
    uint32_t slot_size = 0;
    expected_layout(page.h.max_keys, page.h.log_capacity, &nslots, &slot_size, &bytes);
    void *mem = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        int e = errno;
        return fwi_store_fail(err, e == ENOMEM ? FW_ENOMEM : FW_EIO, e,
                             "cannot map the %llu bytes of %s: %s", (ull)bytes,
                             what, strerror(e));
    }
    fw_table_t *t;
    rc = fw_table_attach(&t, mem, (size_t)bytes);
    if (rc) {
        munmap(mem, (size_t)bytes);
        return fwi_store_fail(err, rc, 0, "%s was rejected once mapped (%s): was it "
                             "changed while being opened?", what, fw_strerror(rc));
    }
    mapping_t *m = calloc(1, sizeof(*m));
    if (!m) {
        fw_table_close(t);
        munmap(mem, (size_t)bytes);
        return fwi_store_fail(err, FW_ENOMEM, ENOMEM, "%s: out of memory", what);
    }
    long page_size = sysconf(_SC_PAGESIZE);
    m->base = mem;
    m->len = (size_t)bytes;
    m->sync = opt->sync;
    m->interval_ns = (int64_t)opt->sync_interval_ms * 1000000;
    m->last_sync_ns = fw_clock_monotonic_ns();
    m->page_mask = (uintptr_t)(page_size > 0 ? page_size : 4096) - 1;
    t->store = m;
    t->on_close = mapping_close;
    if (opt->sync == FW_SYNC_ALWAYS)
        t->after_write = after_write_always;
    else if (opt->sync == FW_SYNC_INTERVAL)
        t->after_write = after_write_interval;
    *out = t;
    return 0;
}

/* ---- creating a file ------------------------------------------------------------ */

/* mkdir -p of the directory part of `path` (new directories: mode 0700). */
static int make_parents(const char *path, fw_store_error_t *err)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(dir))
        return fwi_store_fail(err, FW_EINVAL, ENAMETOOLONG,
                             "table file path is too long (%zu bytes)", n);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            return fwi_store_fail(err, FW_EIO, e,
                                 "cannot create the directory %s for table file "
                                 "%s: %s",
                                 dir, path, strerror(e));
        }
        *p = saved;
        if (saved == '\0')
            return 0;
    }
}

static void fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(dir))
        return;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Reserve `bytes` for fd, so that a full disk fails now rather than with
 * SIGBUS on a later write through the mapping. Tables above RESERVE_MAX
 * (sliding logs with large capacities) stay sparse: their room is the
 * operator's to provide. */
static int reserve(int fd, uint64_t bytes)
{
    if (bytes > RESERVE_MAX)
        return ftruncate(fd, (off_t)bytes) == 0 ? 0 : errno;
    int rc = posix_fallocate(fd, 0, (off_t)bytes);
    if (rc == EINVAL || rc == EOPNOTSUPP)
        rc = ftruncate(fd, (off_t)bytes) == 0 ? 0 : errno;
    return rc;
}

/* Put a formatted table at `path` unless a file is already there (which
 * is not an error: the caller then attaches to it). */
static int create_file(const char *path, const fw_table_options_t *topt,
                       fw_store_error_t *err)
{
    size_t bytes;
    int rc = fw_table_size(topt, &bytes);
    if (rc)
        return fwi_store_fail(err, rc, 0,
                             "cannot create table file %s: max_keys=%llu, "
                             "log_capacity=%u: %s",
                             path, (ull)topt->max_keys, topt->log_capacity,
                             fw_strerror(rc));
    rc = make_parents(path, err);
    if (rc)
        return rc;
    char tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    if (snprintf(tmp, sizeof(tmp), "%.*s.%s.new-XXXXXX", dirlen, path,
                 slash ? slash + 1 : path) >= (int)sizeof(tmp))
        return fwi_store_fail(err, FW_EINVAL, ENAMETOOLONG,
                             "table file path is too long: %s", path);
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        int e = errno;
        return fwi_store_fail(err, FW_EIO, e, "cannot create table file %s: %s",
                             path, strerror(e));
    }
    const char *step = "reserve space for";
    int e = reserve(fd, bytes);
    void *mem = MAP_FAILED;
    if (e == 0) {
        step = "map";
        mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        e = mem == MAP_FAILED ? errno : 0;
    }
    if (e == 0) {
        rc = fw_table_format(mem, bytes, topt);
        step = "write";
        if (rc == 0 && msync(mem, FWI_TABLE_HEADER_SIZE, MS_SYNC) != 0)
            e = errno;
        munmap(mem, bytes);
    }
    if (e == 0 && rc == 0 && fchmod(fd, 0600) != 0)
        e = errno;
    if (e == 0 && rc == 0 && fsync(fd) != 0) {
        step = "sync";
        e = errno;
    }
    close(fd);
    if (e == 0 && rc == 0) {
        /* link never replaces: whoever links first made the table */
        if (link(tmp, path) != 0) {
            e = errno;
            if (e == EPERM || e == EOPNOTSUPP || e == EMLINK || e == ENOSYS)
                e = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0
                        ? 0
                        : errno;
            if (e == EEXIST)
                e = 0; /* another process won: attach to its table */
            step = "link into place";
        }
    }
    unlink(tmp);
    if (rc)
        return fwi_store_fail(err, rc, 0, "cannot format table file %s: %s", path,
                             fw_strerror(rc));
    if (e)
        return fwi_store_fail(err, FW_EIO, e, "cannot %s table file %s (%llu bytes): %s",
                             step, path, (ull)bytes, strerror(e));
    fsync_parent(path);
    return 0;
}

static int check_options(const fw_shared_options_t *opt, const char *what,
                         fw_store_error_t *err)
{
    if (!opt)
        return 0;
    if ((int)opt->sync < FW_SYNC_NONE || opt->sync > FW_SYNC_ALWAYS)
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "%s: sync must be none, interval or always", what);
    if (opt->sync == FW_SYNC_INTERVAL && opt->sync_interval_ms < 1)
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "%s: sync_interval_ms must be >= 1 with sync=interval",
                             what);
    if (opt->table.log_capacity > FW_LOG_CAPACITY_MAX)
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "%s: log_capacity must be at most %d, got %u", what,
                             FW_LOG_CAPACITY_MAX, opt->table.log_capacity);
    if (opt->flags & ~FW_OPEN_NOCREATE)
        return fwi_store_fail(err, FW_EINVAL, 0, "%s: unknown flags %#x", what,
                             opt->flags);
    return 0;
}

int fw_table_open_file(fw_table_t **out, const char *path,
                       const fw_shared_options_t *opt, fw_store_error_t *err)
{
    static const fw_shared_options_t defaults = {{0, 0}, FW_SYNC_NONE, 0, 0};
    clear_error(err);
    if (!out || !path || !*path)
        return fwi_store_fail(err, FW_EINVAL, 0, "a table file needs a path");
    *out = NULL;
    if (!opt)
        opt = &defaults;
    char what[PATH_MAX + 16];
    snprintf(what, sizeof(what), "table file %s", path);
    int rc = check_options(opt, what, err);
    if (rc)
        return rc;
    fw_table_options_t topt = opt->table;
    if (topt.max_keys == 0)
        topt.max_keys = FW_DEFAULT_MAX_KEYS;
    for (int attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            rc = fwi_store_attach_fd(out, fd, what, opt, err);
            close(fd);
            return rc;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != ENOENT || (opt->flags & FW_OPEN_NOCREATE))
            return fwi_store_fail(err, FW_EIO, e, "cannot open %s: %s", what,
                                 strerror(e));
        rc = create_file(path, &topt, err);
        if (rc)
            return rc;
    }
    return fwi_store_fail(err, FW_EIO, ENOENT,
                         "cannot open %s: it keeps disappearing while being "
                         "opened", what);
}

/* ---- inspection -------------------------------------------------------------------- */

static inline fwi_slot_t *slot_of(const fw_table_t *t, uint64_t i)
{
    return (fwi_slot_t *)(void *)(t->slots + (i & t->mask) * t->slot_size);
}

/* The fingerprint of table.c (kept identical; the C tests check it). */
static fwi_hash128_t key_fingerprint(const fw_table_t *t, const fw_limit_t *lim,
                                    const void *key, size_t len)
{
    fwi_hash128_t h = fwi_hash128(t->hdr->seed[0] ^ lim->namespace_id,
                                t->hdr->seed[1], key, len);
    if (h.lo == 0)
        h.lo = 1;
    return h;
}

static void slot_read(const fw_table_t *t, uint64_t i, fw_slot_info_t *info)
{
    fwi_slot_t *s = slot_of(t, i);
    info->index = i;
    info->fingerprint[0] = __atomic_load_n(&s->tag, __ATOMIC_RELAXED);
    info->state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
    info->fingerprint[1] = __atomic_load_n(&s->check, __ATOMIC_RELAXED);
    info->expiry_ns = __atomic_load_n(&s->expiry, __ATOMIC_RELAXED);
    info->log_len = 0;
    if (t->log_capacity > 0) {
        uint64_t pos = __atomic_load_n(&s->log_pos, __ATOMIC_RELAXED);
        uint32_t len = (uint32_t)pos;
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
    for (uint32_t i = 0; i < t->window; i++) {
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
        if (__atomic_load_n(&s->tag, __ATOMIC_RELAXED) == 0)
            continue;
        int64_t expiry = __atomic_load_n(&s->expiry, __ATOMIC_RELAXED);
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

/* ---- doctor ------------------------------------------------------------------------ */

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
    uint32_t window = h->nslots < FWI_PROBE_WINDOW ? (uint32_t)h->nslots : FWI_PROBE_WINDOW;
    const fwi_slot_t *s = (const fwi_slot_t *)(const void *)(slots + i * h->slot_size);
    if (s->tag == 0)
        return s->state != 0 ? "an unused slot holds a state" : NULL;
    if (s->expiry < 0)
        return "a negative expiry";
    if (s->damaged_at != 0)
        return "a state a check found impossible (decided and rewritten as full)";
    if (s->check != 0) {
        /* a torn claim (killed between tag and check) leaves check 0 */
        if (((i - (s->check & mask)) & mask) >= window)
            return "a fingerprint outside its probe window (no lookup can find it)";
        for (uint32_t d = 1; d < window; d++) {
            const fwi_slot_t *o =
                (const fwi_slot_t *)(const void *)(slots + ((i + d) & mask) * h->slot_size);
            if (o->tag == s->tag && o->check == s->check)
                return "the same fingerprint as a nearby slot";
        }
    }
    if (h->log_capacity == 0)
        return s->log_pos != 0 ? "a sliding-log position in a table without logs"
                               : NULL;
    uint32_t head = (uint32_t)(s->log_pos >> 32), len = (uint32_t)s->log_pos;
    if (head >= h->log_capacity || len > h->log_capacity)
        return "a sliding-log position outside its ring";
    const fw_log_entry_t *e =
        (const fw_log_entry_t *)(const void *)((const unsigned char *)s + FWI_SLOT_HEAD_SIZE);
    for (uint32_t k = 0; k < len; k++) {
        const fw_log_entry_t *x = &e[(head + k) % h->log_capacity];
        if (x->t < 0 || x->cost < 1 || x->cost > (int64_t)h->log_capacity)
            return "a sliding-log entry with a negative time or an impossible cost";
    }
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return doctor_fail(rep, FW_EIO, e, "cannot open table file %s: %s", path,
                           strerror(e));
    }
    struct stat st;
    header_page_t page;
    if (fstat(fd, &st) != 0 || read_header(fd, &page.h) != 0) {
        int e = errno;
        close(fd);
        return doctor_fail(rep, FW_EIO, e, "cannot read table file %s: %s", path,
                           strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return doctor_fail(rep, FW_EBADFILE, 0, "table file %s is not a regular file",
                           path);
    }
    const fwi_table_header_t *h = &page.h;
    rep->file_bytes = (uint64_t)st.st_size;
    rep->version = h->version;
    rep->slot_size = h->slot_size;
    rep->log_capacity = h->log_capacity;
    rep->max_keys = h->max_keys;
    rep->slots = h->nslots;
    char why[320];
    int rc = header_problem(h, (uint64_t)st.st_size, why, sizeof(why));
    if (rc) {
        close(fd);
        return doctor_fail(rep, rc, 0, "table file %s %s", path, why);
    }
    uint64_t nslots = 0, bytes = 0;
    uint32_t slot_size = 0;
    expected_layout(h->max_keys, h->log_capacity, &nslots, &slot_size, &bytes);
    rep->expected_bytes = bytes;
    rep->full_errors = h->full_errors;
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
        if (s->tag != 0) {
            rep->used++;
            if (s->expiry > now)
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
    return 0;
}
