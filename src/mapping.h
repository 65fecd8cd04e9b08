/*
 * mapping.h - what the shm:// and file:// stores share (mapping.c), for
 * store_shm.c, store_file.c, inspect.c and doctor.c; not installed.
 * Invariant: a table object is trusted only after its directory's opened
 * descriptor passed fw_dir_problem and its own opened descriptor passed
 * fw_object_problem (type, owner, mode) and fw_header_problem.
 */
#ifndef FW_MAPPING_H
#define FW_MAPPING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "floodwall.h"
#include "table.h"

/* Fill `err` (which may be NULL) and return `code`. */
int fwi_store_fail(fw_store_error_t *err, int code, int sys_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void fw_store_clear_error(fw_store_error_t *err);

/* The first page of a table object, read before anything is mapped. */
typedef union fw_header_page {
    fwi_table_header_t h;
    unsigned char bytes[FWI_TABLE_HEADER_SIZE];
} fw_header_page_t;

/* Read the header page of `fd` (zero-filled past the end); -1 with errno. */
int fw_header_read(int fd, fwi_table_header_t *h);

/* The layout fw_table_format gives (max_keys, log_capacity); -1 if none. */
int fw_header_layout(uint64_t max_keys, uint32_t log_capacity, uint64_t *nslots,
                     uint32_t *slot_size, uint64_t *bytes);

/* What is wrong with header `h` of an object of `size` bytes, as a phrase
 * that follows the object's name; 0, FW_EBADFILE or FW_EVERSION. */
int fw_header_problem(const fwi_table_header_t *h, uint64_t size, char *msg, size_t cap);

/* "a regular file", "a FIFO", "a directory", ... */
const char *fw_file_type_name(mode_t mode);

/* FW_EUNSAFE when the object described by `st` is owned by another user
 * than this process's effective one, or group/others can write it (the
 * message names the path, the owner, the mode and the fix); else 0. */
int fw_object_problem(const struct stat *st, const char *path, const char *what,
                      fw_store_error_t *err);

/* The directory part of `path` into out[cap]: "." when there is none, "/"
 * for a name at the root; -1 when it does not fit. */
int fw_dir_of(const char *path, char *out, size_t cap);

/* FW_EUNSAFE when the directory described by `st` (at `dir`, holding the
 * table `what`) lets someone other than `user` or root replace the table:
 * it is owned by another user, or group/others can write it and it has no
 * sticky bit. `whose` names `user` in the message ("this process's"). */
int fw_dir_problem(const struct stat *st, const char *dir, uid_t user,
                   const char *whose, const char *what, fw_store_error_t *err);

/* FW_EUNSAFE naming the symbolic link at `path` (and its target, or that
 * it dangles); for an open that failed with ELOOP under O_NOFOLLOW. */
int fw_symlink_problem(const char *path, const char *what, fw_store_error_t *err);

/* 1 when the last component of `path` has the form of a creator's
 * temporary name (".BASE.new-PID-XXXXXX"), which no table may use. */
int fw_is_temp_name(const char *path);

/* How a backing creates its tables. */
typedef struct fw_backing {
    int durable;          /* file: fsync the table and its directory     */
    const char *full_hint; /* appended to an ENOSPC error, or ""         */
} fw_backing_t;

/*
 * Open the table at `path` (an absolute path; shm objects are files of
 * FW_SHM_DIR), creating it unless opt->flags has FW_OPEN_NOCREATE. Its
 * directory is opened first and must pass fw_dir_problem; every later
 * step names the table relative to that descriptor. The final component
 * is never followed if it is a symbolic link; the opened object must be a
 * regular file that fw_object_problem accepts and whose header is valid.
 * A new table is made whole under a temporary name and linked into place.
 * Stale temporaries of dead creators are removed first.
 */
int fw_mapping_open(fw_table_t **out, const char *path, const char *what,
                    const fw_shared_options_t *opt, const fw_backing_t *backing,
                    fw_store_error_t *err);


#endif
