/*
 * store_shm.c - the shm:// store: the slot table in a POSIX shared-memory
 * object, mapped by every process of the host that opens the same name;
 * and the one check of shm names (fw_shm_path).
 *
 * Invariant: a name reaches the file system only through fw_shm_path, as a
 * single component of FW_SHM_DIR; the object is then opened, created and
 * checked exactly as a table file is (mapping.c): never through a symbolic
 * link, never when another user owns it or others can write it, and never
 * formatted in place: a new table is made whole and linked into place.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mapping.h"

#define SHM_NAME_MAX 200

int fw_shm_path(const char *name, char *out, size_t cap, fw_store_error_t *err)
{
    if (!name)
        return fwi_store_fail(err, FW_EINVAL, 0, "a shm table needs a name");
    const char *n = name[0] == '/' ? name + 1 : name;
    size_t len = strlen(n);
    if (len < 1 || len > SHM_NAME_MAX)
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "shm name \"%.64s\" must have 1 to %d characters", name,
                             SHM_NAME_MAX);
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
    if (fw_is_temp_name(n))
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "shm name \"%.64s\" has the form of a creator's "
                             "temporary (.NAME.new-PID-XXXXXX); choose another",
                             name);
    if (!out || sizeof(FW_SHM_DIR) + 1 + len > cap)
        return fwi_store_fail(err, FW_EINVAL, 0, "fw_shm_path: the output is too small");
    snprintf(out, cap, "%s/%s", FW_SHM_DIR, n);
    return 0;
}

int fw_table_open_shm(fw_table_t **out, const char *name,
                      const fw_shared_options_t *opt, fw_store_error_t *err)
{
    static const fw_shared_options_t defaults = {{0, 0}, FW_SYNC_NONE, 0, 0};
    static const fw_backing_t backing = {0, "; lower max_keys or enlarge /dev/shm"};
    fw_store_clear_error(err);
    if (!out)
        return fwi_store_fail(err, FW_EINVAL, 0, "fw_table_open_shm needs an output");
    *out = NULL;
    char path[sizeof(FW_SHM_DIR) + SHM_NAME_MAX + 2];
    int rc = fw_shm_path(name, path, sizeof(path), err);
    if (rc)
        return rc;
    char what[sizeof(path) + 32];
    snprintf(what, sizeof(what), "shm object /%s", path + sizeof(FW_SHM_DIR));
    fw_shared_options_t o = opt ? *opt : defaults;
    o.sync = FW_SYNC_NONE; /* memory needs no syncing */
    o.sync_interval_ms = 0;
    if (o.table.log_capacity > FW_LOG_CAPACITY_MAX || (o.flags & ~FW_OPEN_NOCREATE))
        return fwi_store_fail(err, FW_EINVAL, 0,
                             "%s: log_capacity must be at most %d, flags "
                             "FW_OPEN_NOCREATE or 0",
                             what, FW_LOG_CAPACITY_MAX);
    return fw_mapping_open(out, path, what, &o, &backing, err);
}

int fw_table_unlink_shm(const char *name, fw_store_error_t *err)
{
    fw_store_clear_error(err);
    char path[sizeof(FW_SHM_DIR) + SHM_NAME_MAX + 2];
    int rc = fw_shm_path(name, path, sizeof(path), err);
    if (rc)
        return rc;
    if (unlink(path) != 0) {
        int e = errno;
        return fwi_store_fail(err, FW_EIO, e, "cannot remove shm object /%s: %s",
                             path + sizeof(FW_SHM_DIR), strerror(e));
    }
    return 0;
}
