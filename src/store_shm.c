/*
 * store_shm.c - the shm:// store: the slot table in a POSIX shared-memory
 * object, mapped by every process of the host that opens the same name.
 *
 * Invariant: a process creates or formats the object only while it holds an
 * exclusive flock on it, and writes the header's magic last; so an object
 * without the magic is one whose creator died before finishing (it is
 * formatted again), and any other object is validated before use and never
 * changed when rejected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "table.h"

#define SHM_NAME_MAX 200
#define RESERVE_MAX ((uint64_t)4 << 30) /* larger tables stay sparse */

/* "NAME" or "/NAME" -> "/NAME", checked. */
static int shm_name(const char *name, char *out, size_t cap, fw_store_error_t *err)
{
    if (!name)
        return fwi_store_fail(err, FW_EINVAL, 0, "a shm table needs a name");
    const char *n = name[0] == '/' ? name + 1 : name;
    size_t len = strlen(n);
    if (len < 1 || len > SHM_NAME_MAX)
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "shm name \"%.64s\" must have 1 to %d characters",
                             name, SHM_NAME_MAX);
    if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
        return fwi_store_fail(err, FW_EINVAL, 0, "shm name \"%s\" is not allowed", name);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        if (c == '/' || c <= 0x20 || c >= 0x7f)
            return fwi_store_fail(err, FW_EINVAL, 0,
                                 "shm name \"%.64s\" may hold printable ASCII "
                                 "characters other than space and '/' only",
                                 name);
    }
    if (len + 2 > cap)
        return FW_EINVAL;
    out[0] = '/';
    memcpy(out + 1, n, len + 1);
    return 0;
}

static int lock_fd(int fd, int op)
{
    while (flock(fd, op) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

/* 1 when the object has no magic yet (empty, or its creator died). */
static int unformatted(int fd, const struct stat *st)
{
    if (st->st_size == 0)
        return 1;
    unsigned char magic[8];
    ssize_t r;
    do
        r = pread(fd, magic, sizeof(magic), 0);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof(magic))
        return 0; /* too short to tell: validation will name the problem */
    for (size_t i = 0; i < sizeof(magic); i++)
        if (magic[i] != 0)
            return 0;
    return 1;
}

/* Give back the memory of an object we failed to format. */
static void discard(int fd)
{
    if (ftruncate(fd, 0) != 0) {
        /* nothing more to do: the next opener formats it again */
    }
}

/* Lay out a new table in the object (flock held), magic written last. */
static int format_object(int fd, const char *what, const fw_table_options_t *topt,
                         fw_store_error_t *err)
{
    size_t bytes;
    int rc = fw_table_size(topt, &bytes);
    if (rc)
        return fwi_store_fail(err, rc, 0,
                             "cannot create %s: max_keys=%llu, log_capacity=%u: %s",
                             what, (unsigned long long)topt->max_keys,
                             topt->log_capacity, fw_strerror(rc));
    /* drop whatever a dead creator left, then reserve the memory now, so a
     * full /dev/shm fails here instead of with SIGBUS on a later write */
    int e = 0;
    if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)bytes) != 0)
        e = errno;
    if (e == 0 && bytes <= RESERVE_MAX) {
        e = posix_fallocate(fd, 0, (off_t)bytes);
        if (e == EINVAL || e == EOPNOTSUPP)
            e = 0; /* cannot reserve here: the mapping still works */
    }
    if (e) {
        discard(fd);
        return fwi_store_fail(err, FW_EIO, e,
                             "cannot create %s: %llu bytes of shared memory are "
                             "needed (max_keys=%llu): %s%s",
                             what, (unsigned long long)bytes,
                             (unsigned long long)topt->max_keys, strerror(e),
                             e == ENOSPC ? "; lower max_keys or enlarge /dev/shm" : "");
    }
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        e = errno;
        discard(fd);
        return fwi_store_fail(err, FW_EIO, e, "cannot map %s: %s", what, strerror(e));
    }
    /* format a private copy of the header page, then publish it magic last */
    void *scratch = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (scratch == MAP_FAILED) {
        munmap(mem, bytes);
        discard(fd);
        return fwi_store_fail(err, FW_ENOMEM, ENOMEM, "cannot create %s: out of memory",
                             what);
    }
    rc = fw_table_format(scratch, bytes, topt);
    if (rc == 0) {
        unsigned char *dst = mem;
        const unsigned char *src = scratch;
        memcpy(dst + 8, src + 8, FWI_TABLE_HEADER_SIZE - 8);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        memcpy(dst, src, 8);
    }
    munmap(scratch, bytes);
    munmap(mem, bytes);
    if (rc) {
        discard(fd);
        return fwi_store_fail(err, rc, 0, "cannot format %s: %s", what, fw_strerror(rc));
    }
    return 0;
}

int fw_table_open_shm(fw_table_t **out, const char *name,
                      const fw_shared_options_t *opt, fw_store_error_t *err)
{
    static const fw_shared_options_t defaults = {{0, 0}, FW_SYNC_NONE, 0, 0};
    if (err) {
        err->sys_errno = 0;
        err->message[0] = '\0';
    }
    if (!out)
        return fwi_store_fail(err, FW_EINVAL, 0, "fw_table_open_shm needs an output");
    *out = NULL;
    char nm[SHM_NAME_MAX + 2];
    int rc = shm_name(name, nm, sizeof(nm), err);
    if (rc)
        return rc;
    char what[SHM_NAME_MAX + 32];
    snprintf(what, sizeof(what), "shm object %s", nm);
    fw_shared_options_t o = opt ? *opt : defaults;
    o.sync = FW_SYNC_NONE; /* memory needs no syncing */
    o.sync_interval_ms = 0;
    if (o.table.log_capacity > FW_LOG_CAPACITY_MAX || (o.flags & ~FW_OPEN_NOCREATE))
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "%s: log_capacity must be at most %d, flags "
                             "FW_OPEN_NOCREATE or 0",
                             what, FW_LOG_CAPACITY_MAX);
    fw_table_options_t topt = o.table;
    if (topt.max_keys == 0)
        topt.max_keys = FW_DEFAULT_MAX_KEYS;

    int create = !(o.flags & FW_OPEN_NOCREATE);
    int fd = shm_open(nm, O_RDWR | (create ? O_CREAT : 0), 0600);
    if (fd < 0) {
        int e = errno;
        return fwi_store_fail(err, FW_EIO, e, "cannot open %s: %s", what, strerror(e));
    }
    if (lock_fd(fd, LOCK_EX) != 0) {
        int e = errno;
        close(fd);
        return fwi_store_fail(err, FW_EIO, e, "cannot lock %s: %s", what, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fwi_store_fail(err, FW_EIO, e, "cannot stat %s: %s", what, strerror(e));
    }
    rc = 0;
    if (S_ISREG(st.st_mode) && unformatted(fd, &st)) {
        if (create)
            rc = format_object(fd, what, &topt, err);
        else
            rc = fwi_store_fail(err, FW_EIO, ENOENT,
                               "cannot open %s: it holds no table yet", what);
    }
    if (rc == 0)
        rc = fwi_store_attach_fd(out, fd, what, &o, err);
    lock_fd(fd, LOCK_UN);
    close(fd); /* the mapping keeps the object */
    return rc;
}

int fw_table_unlink_shm(const char *name, fw_store_error_t *err)
{
    if (err) {
        err->sys_errno = 0;
        err->message[0] = '\0';
    }
    char nm[SHM_NAME_MAX + 2];
    int rc = shm_name(name, nm, sizeof(nm), err);
    if (rc)
        return rc;
    if (shm_unlink(nm) != 0) {
        int e = errno;
        return fwi_store_fail(err, FW_EIO, e, "cannot remove shm object %s: %s", nm,
                             strerror(e));
    }
    return 0;
}
