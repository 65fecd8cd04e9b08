/*
 * store_file.c - the file:// store: the slot table in a memory-mapped file,
 * shared by the processes that open it and still there after a restart.
 *
 * Invariant: this file adds only what a file needs over a shm object (its
 * options, its missing parent directories, durability); opening, checking
 * and creating are mapping.c's, so a file is used only when its directory
 * lets no other user replace it, and an existing one only when this user
 * owns it, others cannot write it, no symbolic link leads to it and its
 * header is valid; it is never modified when rejected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mapping.h"

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

static int check_options(const fw_shared_options_t *opt, const char *what,
                         fw_store_error_t *err)
{
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
    static const fw_backing_t backing = {1, "; free disk space or lower max_keys"};
    fw_store_clear_error(err);
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
    if (!(opt->flags & FW_OPEN_NOCREATE)) {
        rc = make_parents(path, err);
        if (rc)
            return rc;
    }
    return fw_mapping_open(out, path, what, opt, &backing, err);
}
