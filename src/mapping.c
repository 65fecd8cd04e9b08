/*
 * mapping.c - what the shm:// and file:// stores share: opening a table's
 * directory and checking who can replace entries in it, opening the table
 * object relative to that directory without following a symbolic link,
 * checking its type, owner and mode on the opened descriptor, validating
 * its header before mapping it,
 * creating a new table whole under a temporary name (and sweeping the stale
 * temporaries of dead creators), the mapping's lifetime and sync hooks.
 *
 * Invariant: an existing object is written only through a table that the
 * type/owner/mode check, the header check and fw_table_attach accepted; a
 * new table appears at its path fully formatted (made under a temporary
 * name, then linked, never replacing anything), so no process ever maps a
 * half-made table, and an object floodwall did not make is never modified.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "mapping.h"
#include "table.h"

#define CREATE_ATTEMPTS 8
#define RESERVE_MAX ((uint64_t)4 << 30) /* bytes reserved up front, at most */
#define TEMP_TAG ".new-"
#define SWEEP_SCAN_MAX 10000   /* directory entries looked at per sweep */
#define SWEEP_REMOVE_MAX 16    /* temporaries removed per sweep         */
#define SWEEP_DEAD_AGE_S 5     /* a dead creator's temporary: this old   */
#define SWEEP_ANY_AGE_S (15 * 60) /* any creator's (pid reused): this old */

typedef unsigned long long ull;

/* ---- errors ------------------------------------------------------------------ */

int fwi_store_fail(fw_store_error_t *err, int code, int sys_errno, const char *fmt, ...)
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

void fw_store_clear_error(fw_store_error_t *err)
{
    if (err) {
        err->sys_errno = 0;
        err->message[0] = '\0';
    }
}

/* ---- the header, checked before anything is mapped ------------------------------ */

int fw_header_layout(uint64_t max_keys, uint32_t log_capacity, uint64_t *nslots,
                     uint32_t *slot_size, uint64_t *bytes)
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

int fw_header_problem(const fwi_table_header_t *h, uint64_t size, char *msg, size_t cap)
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
                 "%u only%s. %s",
                 h->version, FWI_TABLE_VERSION,
                 sum == h->checksum ? ""
                                    : " (its header checksum does not match "
                                      "either: it may be damaged)",
                 h->version < FWI_TABLE_VERSION
                     ? "An older floodwall made it: remove it (the next open "
                       "makes a new, empty table; the limits start afresh), or "
                       "keep to the floodwall that made it"
                     : "A newer floodwall made it: upgrade this one, or remove it");
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
    if (fw_header_layout(h->max_keys, h->log_capacity, &nslots, &slot_size, &bytes) !=
        0) {
        snprintf(msg, cap, "declares impossible sizes: max_keys=%llu, log_capacity=%u",
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
                 (ull)size, (ull)bytes, FWI_TABLE_HEADER_SIZE, (ull)nslots, slot_size);
        return FW_EBADFILE;
    }
    return 0;
}

int fw_header_read(int fd, fwi_table_header_t *h)
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

/* ---- who may own a table ---------------------------------------------------------- */

const char *fw_file_type_name(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISLNK(mode))
        return "a symbolic link";
    return "of an unknown type";
}

static void user_name(uid_t uid, char *out, size_t cap)
{
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found)
        snprintf(out, cap, "%s", found->pw_name);
    else
        snprintf(out, cap, "no name");
}

int fw_object_problem(const struct stat *st, const char *path, const char *what,
                      fw_store_error_t *err)
{
    uid_t me = geteuid();
    int foreign = st->st_uid != me;
    int shared = (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
    if (!foreign && !shared)
        return 0;
    char owner[64], self[64];
    user_name(st->st_uid, owner, sizeof(owner));
    user_name(me, self, sizeof(self));
    unsigned mode = (unsigned)(st->st_mode & 07777);
    if (foreign)
        return fwi_store_fail(
            err, FW_EUNSAFE, 0,
            "%s is owned by uid %u (%s), mode %04o, not by this process's uid %u "
            "(%s): refused and left untouched, as its owner could change every "
            "limit. Fix: rm '%s' to let floodwall create its own, or use a "
            "private directory",
            what, (unsigned)st->st_uid, owner, mode, (unsigned)me, self, path);
    return fwi_store_fail(
        err, FW_EUNSAFE, 0,
        "%s has mode %04o (owner uid %u, %s): group or others can write it, and "
        "so change every limit; refused and left untouched. Fix: chmod 600 '%s' "
        "if you trust its content, or remove it",
        what, mode, (unsigned)st->st_uid, owner, path);
}

int fw_symlink_problem(const char *path, const char *what, fw_store_error_t *err)
{
    struct stat lst, tst;
    if (lstat(path, &lst) != 0 || !S_ISLNK(lst.st_mode))
        return fwi_store_fail(err, FW_EIO, ELOOP, "cannot open %s: %s", what,
                             strerror(ELOOP));
    char target[256];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        n = 0;
    target[n] = '\0';
    int dangling = stat(path, &tst) != 0;
    return fwi_store_fail(err, FW_EUNSAFE, 0,
                         "%s is a symbolic link (to '%s'%s): floodwall does not "
                         "follow a symbolic link at a table's path, since whoever "
                         "controls the link controls the limits. Fix: use the "
                         "real path, or remove the link (rm '%s')",
                         what, target, dangling ? ", which does not exist" : "",
                         path);
}

int fw_dir_problem(const struct stat *st, const char *dir, uid_t user,
                   const char *whose, const char *what, fw_store_error_t *err)
{
    int foreign = st->st_uid != user && st->st_uid != 0;
    int shared = (st->st_mode & (S_IWGRP | S_IWOTH)) != 0 && !(st->st_mode & S_ISVTX);
    if (!foreign && !shared)
        return 0;
    char owner[64], self[64];
    user_name(st->st_uid, owner, sizeof(owner));
    user_name(user, self, sizeof(self));
    unsigned mode = (unsigned)(st->st_mode & 07777);
    if (foreign)
        return fwi_store_fail(
            err, FW_EUNSAFE, 0,
            "%s: its directory %s is owned by uid %u (%s), mode %04o, neither by "
            "%s uid %u (%s) nor by root: its owner could replace the table between "
            "runs; refused. Fix: chown %u '%s', or keep the table in a directory "
            "the service user owns",
            what, dir, (unsigned)st->st_uid, owner, mode, whose, (unsigned)user, self,
            (unsigned)user, dir);
    return fwi_store_fail(
        err, FW_EUNSAFE, 0,
        "%s: its directory %s has mode %04o (owner uid %u, %s): group or others "
        "can write it and it has no sticky bit, so they could replace the table "
        "between runs; refused. Fix: chmod go-w '%s' (or chmod +t if it must be "
        "shared, as /tmp is)",
        what, dir, mode, (unsigned)st->st_uid, owner, dir);
}

/* ---- temporaries: ".BASE.new-PID-XXXXXX" next to BASE ---------------------------- */

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* 1 when `p` is six letters or digits (mkstemp's XXXXXX) and the end. */
static int random_suffix(const char *p)
{
    for (int i = 0; i < 6; i++, p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return 0;
    return *p == '\0';
}

/* The pid in `tag` (TEMP_TAG "PID-XXXXXX" and the end); 0 for the form
 * older versions made (TEMP_TAG "XXXXXX": no pid); -1 for neither. */
static long tag_pid(const char *tag)
{
    const char *p = tag + strlen(TEMP_TAG);
    if (random_suffix(p))
        return 0;
    long pid = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 10) {
        pid = pid * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || pid <= 0 || *p++ != '-')
        return -1;
    return random_suffix(p) ? pid : -1;
}

/* The pid of a temporary's name `name` made for `base` (or for any base
 * when base is NULL; 0: no pid in the name), or -1 when `name` is not of
 * that form. */
static long temp_pid(const char *name, const char *base)
{
    if (name[0] != '.')
        return -1;
    if (base) {
        size_t bl = strlen(base);
        if (bl == 0 || strncmp(name + 1, base, bl) != 0 ||
            strncmp(name + 1 + bl, TEMP_TAG, strlen(TEMP_TAG)) != 0)
            return -1;
        return tag_pid(name + 1 + bl);
    }
    /* any base: every occurrence of the tag after a non-empty base */
    for (const char *tag = strstr(name + 2, TEMP_TAG); tag;
         tag = strstr(tag + 1, TEMP_TAG)) {
        long pid = tag_pid(tag);
        if (pid >= 0)
            return pid;
    }
    return -1;
}

int fw_is_temp_name(const char *path)
{
    return temp_pid(base_of(path), NULL) >= 0;
}

static int pid_is_dead(long pid)
{
    if (pid <= 0 || pid > INT_MAX)
        return 1;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Remove the stale temporaries of `base`'s dead creators in the directory
 * `dirfd` (bounded work); returns how many were removed. */
static int sweep(int dirfd, const char *base, int64_t now_s)
{
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    uid_t me = geteuid();
    int removed = 0;
    struct dirent *e;
    for (int scanned = 0; scanned < SWEEP_SCAN_MAX && removed < SWEEP_REMOVE_MAX &&
                          (e = readdir(d)) != NULL;
         scanned++) {
        long pid = temp_pid(e->d_name, base);
        if (pid < 0)
            continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        /* only ours: a regular file this user owns, never a link */
        if (!S_ISREG(st.st_mode) || st.st_uid != me)
            continue;
        int64_t age = now_s - (int64_t)st.st_mtime;
        int stale = age >= SWEEP_ANY_AGE_S ||
                    (pid > 0 && age >= SWEEP_DEAD_AGE_S && pid != (long)getpid() &&
                     pid_is_dead(pid));
        if (stale && unlinkat(dfd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

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
    if (!__atomic_compare_exchange_n(&m->last_sync_ns, &last, now, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
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

/* ---- attaching an open descriptor -------------------------------------------------- */

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

/* Attach to the opened object `fd` at `path`: type, owner and mode first
 * (nothing is read before), then the header, then the mapping. */
static int attach_fd(fw_table_t **out, int fd, const char *path, const char *what,
                     const fw_shared_options_t *opt, fw_store_error_t *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        return fwi_store_fail(err, FW_EIO, e, "cannot stat %s: %s", what, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return fwi_store_fail(err, FW_EBADFILE, 0,
                             "%s is %s, not a regular file: not a floodwall table",
                             what, fw_file_type_name(st.st_mode));
    int rc = fw_object_problem(&st, path, what, err);
    if (rc)
        return rc;
    fw_header_page_t page;
    if (fw_header_read(fd, &page.h) != 0) {
        int e = errno;
        return fwi_store_fail(err, FW_EIO, e, "cannot read %s: %s", what, strerror(e));
    }
    char why[320];
    rc = fw_header_problem(&page.h, (uint64_t)st.st_size, why, sizeof(why));
    if (rc)
        return fwi_store_fail(err, rc, 0,
                             "%s %s; floodwall never changes an object it did not "
                             "make: remove it to create a new table",
                             what, why);
    rc = options_problem(&page.h, opt, what, err);
    if (rc)
        return rc;

    uint64_t nslots = 0, bytes = 0;
    uint32_t slot_size = 0;
    fw_header_layout(page.h.max_keys, page.h.log_capacity, &nslots, &slot_size, &bytes);
    void *mem = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        int e = errno;
        return fwi_store_fail(err, e == ENOMEM ? FW_ENOMEM : FW_EIO, e,
                             "cannot map the %llu bytes of %s: %s", (ull)bytes, what,
                             strerror(e));
    }
    fw_table_t *t;
    rc = fw_table_attach(&t, mem, (size_t)bytes);
    if (rc) {
        munmap(mem, (size_t)bytes);
        return fwi_store_fail(err, rc, 0,
                             "%s was rejected once mapped (%s): was it "
                             "changed while being opened?",
                             what, fw_strerror(rc));
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

/* ---- creating a table whole ----------------------------------------------------------- */

/* fsync the directory `dirfd` (opened O_PATH: reopened read-only). */
static void fsync_dir(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Create a new temporary ".BASE.new-PID-XXXXXX" in `dirfd` (O_EXCL, never
 * through a link, mode 0600), its name into tmp[cap]; the fd, or -1 with
 * errno. mkostemp's names, made relative to the checked directory. */
static int make_temp(int dirfd, const char *base, char *tmp, size_t cap)
{
    static const char letters[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    int n = snprintf(tmp, cap, ".%s" TEMP_TAG "%ld-XXXXXX", base, (long)getpid());
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *x = tmp + n - 6;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned char r[6];
        if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
            uint64_t v = (uint64_t)fw_clock_monotonic_ns() * 0x9e3779b97f4a7c15ULL +
                         (uint64_t)attempt;
            memcpy(r, &v, sizeof(r));
        }
        for (int i = 0; i < 6; i++)
            x[i] = letters[r[i] % (sizeof(letters) - 1)];
        int fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

/* Reserve `bytes` for fd, so that a full disk or /dev/shm fails now rather
 * than with SIGBUS on a later write through the mapping. Tables above
 * RESERVE_MAX (sliding logs with large capacities) stay sparse: their room
 * is the operator's to provide. */
static int reserve(int fd, uint64_t bytes)
{
    if (bytes > RESERVE_MAX)
        return ftruncate(fd, (off_t)bytes) == 0 ? 0 : errno;
    int rc = posix_fallocate(fd, 0, (off_t)bytes);
    if (rc == EINVAL || rc == EOPNOTSUPP)
        rc = ftruncate(fd, (off_t)bytes) == 0 ? 0 : errno;
    return rc;
}

/* Put a formatted table at `path` unless something is already there (not
 * an error: the caller then opens and checks it), all relative to the
 * checked directory `dirfd`. *lost is set when the
 * temporary vanished before it could be linked (a sweep by a process that
 * cannot see our pid, as in another pid namespace): the caller retries. */
static int create_table(int dirfd, const char *base, const char *what,
                        const fw_table_options_t *topt, const fw_backing_t *backing,
                        int *lost, fw_store_error_t *err)
{
    *lost = 0;
    size_t bytes;
    int rc = fw_table_size(topt, &bytes);
    if (rc)
        return fwi_store_fail(err, rc, 0,
                             "cannot create %s: max_keys=%llu, log_capacity=%u: %s",
                             what, (ull)topt->max_keys, topt->log_capacity,
                             fw_strerror(rc));
    char tmp[NAME_MAX + 1];
    int fd = make_temp(dirfd, base, tmp, sizeof(tmp));
    if (fd < 0) {
        int e = errno;
        if (e == ENAMETOOLONG)
            return fwi_store_fail(err, FW_EINVAL, e, "%s: the name is too long", what);
        return fwi_store_fail(err, FW_EIO, e, "cannot create %s: %s", what, strerror(e));
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
        if (rc == 0 && backing->durable && msync(mem, FWI_TABLE_HEADER_SIZE, MS_SYNC) != 0)
            e = errno;
        munmap(mem, bytes);
    }
    if (e == 0 && rc == 0 && fchmod(fd, 0600) != 0)
        e = errno;
    if (e == 0 && rc == 0 && backing->durable && fsync(fd) != 0) {
        step = "sync";
        e = errno;
    }
    close(fd);
    if (e == 0 && rc == 0) {
        /* link never replaces: whoever links first made the table */
        step = "link into place";
        if (linkat(dirfd, tmp, dirfd, base, 0) != 0) {
            e = errno;
            if (e == EPERM || e == EOPNOTSUPP || e == EMLINK || e == ENOSYS)
                e = renameat2(dirfd, tmp, dirfd, base, RENAME_NOREPLACE) == 0 ? 0 : errno;
            if (e == EEXIST)
                e = 0; /* another process (or another user) was first: check it */
            struct stat gone;
            if (e == ENOENT && fstatat(dirfd, tmp, &gone, AT_SYMLINK_NOFOLLOW) != 0 &&
                errno == ENOENT) {
                *lost = 1;
                e = 0;
            }
        }
    }
    unlinkat(dirfd, tmp, 0);
    if (rc)
        return fwi_store_fail(err, rc, 0, "cannot format %s: %s", what, fw_strerror(rc));
    if (e)
        return fwi_store_fail(err, FW_EIO, e, "cannot %s %s (%llu bytes): %s%s", step,
                             what, (ull)bytes, strerror(e),
                             e == ENOSPC ? backing->full_hint : "");
    if (backing->durable)
        fsync_dir(dirfd);
    return 0;
}

/*
 * Creators of one directory take turns (an flock on the directory), so that
 * a stampede of workers formats one table, not one each: N full-size
 * temporaries at once could exhaust a small /dev/shm. The lock only saves
 * resources, correctness never depends on it: anyone may hold it (it is on
 * a shared directory), so the wait is bounded and creation goes ahead
 * without it after CREATE_LOCK_WAIT_MS. Returns the directory fd to pass to
 * creators_done, or -1.
 */
#define CREATE_LOCK_WAIT_MS 3000

static int creators_turn(int dirfd)
{
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int64_t deadline = fw_clock_monotonic_ns() + (int64_t)CREATE_LOCK_WAIT_MS * 1000000;
    long pause_ns = 100000;
    while (flock(dfd, LOCK_EX | LOCK_NB) != 0) {
        if ((errno != EWOULDBLOCK && errno != EINTR) ||
            fw_clock_monotonic_ns() >= deadline) {
            close(dfd);
            return -1;
        }
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        if (pause_ns < 10000000)
            pause_ns *= 2;
    }
    return dfd;
}

static void creators_done(int dfd)
{
    if (dfd >= 0)
        close(dfd); /* releases the flock */
}

/* ---- opening ----------------------------------------------------------------------- */

int fw_dir_of(const char *path, char *out, size_t cap)
{
    size_t dl = (size_t)(base_of(path) - path);
    if (dl == 0) {
        snprintf(out, cap, ".");
        return 0;
    }
    if (dl > 1)
        dl--; /* the slash, unless it is the root */
    if (dl >= cap)
        return -1;
    memcpy(out, path, dl);
    out[dl] = '\0';
    return 0;
}

/* Open and check the directory of `path` (O_PATH: search permission is
 * enough): an fd that everything after resolves names against, so that
 * the directory checked is the one used; -1 with `err` filled. */
static int open_dir(const char *path, const char *what, fw_store_error_t *err, int *rc)
{
    char dir[PATH_MAX];
    if (fw_dir_of(path, dir, sizeof(dir)) != 0) {
        *rc = fwi_store_fail(err, FW_EINVAL, ENAMETOOLONG, "%s: the path is too long",
                             what);
        return -1;
    }
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (dfd < 0 || fstat(dfd, &st) != 0) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        *rc = fwi_store_fail(err, FW_EIO, e, "cannot open %s: %s", what, strerror(e));
        return -1;
    }
    *rc = fw_dir_problem(&st, dir, geteuid(), "this process's", what, err);
    if (*rc) {
        close(dfd);
        return -1;
    }
    return dfd;
}

int fw_mapping_open(fw_table_t **out, const char *path, const char *what,
                    const fw_shared_options_t *opt, const fw_backing_t *backing,
                    fw_store_error_t *err)
{
    if (fw_is_temp_name(path))
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "%s: the name has the form of a creator's temporary "
                             "(.NAME.new-PID-XXXXXX), which floodwall removes when "
                             "stale; choose another name",
                             what);
    const char *base = base_of(path);
    if (!*base)
        return fwi_store_fail(err, FW_EIO, EISDIR, "cannot open %s: %s", what,
                             strerror(EISDIR));
    int rc = 0;
    int dirfd = open_dir(path, what, err, &rc);
    if (dirfd < 0)
        return rc;
    int create = !(opt->flags & FW_OPEN_NOCREATE);
    fw_table_options_t topt = opt->table;
    if (topt.max_keys == 0)
        topt.max_keys = FW_DEFAULT_MAX_KEYS;
    if (create)
        sweep(dirfd, base, (int64_t)time(NULL));
    rc = 1; /* no answer yet */
    for (int attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
        /* O_NONBLOCK: a FIFO put at the path cannot hang the open */
        int fd = openat(dirfd, base, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd >= 0) {
            rc = attach_fd(out, fd, path, what, opt, err);
            close(fd); /* the mapping keeps the object */
            break;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == ELOOP) {
            rc = fw_symlink_problem(path, what, err);
            break;
        }
        if (e != ENOENT || !create) {
            rc = fwi_store_fail(err, FW_EIO, e, "cannot open %s: %s", what, strerror(e));
            break;
        }
        int lost = 0, made = 0;
        int turn = creators_turn(dirfd);
        struct stat st;
        /* while we waited, another creator may have made it */
        if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
            made = create_table(dirfd, base, what, &topt, backing, &lost, err);
        creators_done(turn);
        if (made) {
            rc = made;
            break;
        }
    }
    close(dirfd);
    if (rc == 1)
        rc = fwi_store_fail(err, FW_EIO, ENOENT,
                            "cannot open %s: it keeps disappearing while being "
                            "opened (is another process removing it?)",
                            what);
    return rc;
}
