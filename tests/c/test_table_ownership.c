/*
 * test_table_ownership.c - the shm:// and file:// stores against a hostile
 * local user: objects owned by another user or writable by others, symbolic
 * links (live and dangling), directories another user can write or owns, squatted and unfinished-looking shm objects,
 * temporaries of dead creators, hostile shm names, and a doctor pointed at
 * a FIFO, a device, a directory or a link.
 * Invariant: every case checks both the refusal (code and message) and that
 * the object was left exactly as it was; each case works in its own
 * temporary directory / shm name and removes it. Needs root for the cases
 * that give a file to another user (CI runs as root); without root they
 * fail loudly rather than pass unseen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "floodwall.h"
#include "mapping.h"

#define NOBODY 65534

static char dir[256];
static char shm_base[64];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Read a whole file (or NULL); *len receives its length. */
static unsigned char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    ssize_t got = buf ? pread(fd, buf, (size_t)st.st_size, 0) : -1;
    close(fd);
    if (got != st.st_size) {
        free(buf);
        return NULL;
    }
    *len = (size_t)st.st_size;
    return buf;
}

/* A valid table file at `path` (made, then closed). */
static void make_table(const char *path)
{
    fw_shared_options_t opt = {{100, 0}, FW_SYNC_NONE, 0, 0};
    fw_table_t *t = NULL;
    fw_store_error_t err;
    int rc = fw_table_open_file(&t, path, &opt, &err);
    if (rc) {
        fprintf(stderr, "cannot make %s: %s\n", path, err.message);
        exit(2);
    }
    fw_table_close(t);
}

/* Snapshot of an object: its bytes, mode and owner. */
typedef struct snap {
    unsigned char *bytes;
    size_t len;
    mode_t mode;
    uid_t uid;
} snap_t;

static snap_t take(const char *path)
{
    snap_t s = {0};
    struct stat st;
    if (lstat(path, &st) == 0) {
        s.mode = st.st_mode;
        s.uid = st.st_uid;
    }
    s.bytes = slurp(path, &s.len);
    return s;
}

static int same(const char *path, snap_t *before)
{
    snap_t now = take(path);
    int ok = now.mode == before->mode && now.uid == before->uid &&
             now.len == before->len &&
             (now.len == 0 || (now.bytes && before->bytes &&
                               memcmp(now.bytes, before->bytes, now.len) == 0));
    free(now.bytes);
    free(before->bytes);
    before->bytes = NULL;
    return ok;
}

static int count_entries(const char *prefix_path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls -a '%s' 2>/dev/null | grep -c '\\.new-' > /dev/null",
             prefix_path);
    return system(cmd) == 0; /* 1 when some temporary is there */
}

static int open_file(const char *path, fw_store_error_t *err)
{
    fw_table_t *t = NULL;
    int rc = fw_table_open_file(&t, path, NULL, err);
    if (t)
        fw_table_close(t);
    return rc;
}

static int open_shm(const char *name, fw_store_error_t *err)
{
    fw_table_t *t = NULL;
    int rc = fw_table_open_shm(&t, name, NULL, err);
    if (t)
        fw_table_close(t);
    return rc;
}

/* ---- file:// ------------------------------------------------------------------- */

static void test_file_mode(void)
{
    char path[512];
    path_in(path, sizeof(path), "mode.fw");
    make_table(path);
    CHECK(chmod(path, 0666) == 0);
    snap_t before = take(path);
    fw_store_error_t err;
    CHECK(open_file(path, &err) == FW_EUNSAFE, "%s", err.message);
    CHECK(strstr(err.message, path) && strstr(err.message, "0666") &&
              strstr(err.message, "chmod 600"),
          "%s", err.message);
    CHECK(err.sys_errno == 0);
    CHECK(same(path, &before), "a refused table file was changed");
    /* group-writable alone is refused too; 0640 is fine */
    CHECK(chmod(path, 0620) == 0);
    CHECK(open_file(path, &err) == FW_EUNSAFE);
    CHECK(chmod(path, 0640) == 0);
    CHECK(open_file(path, &err) == 0, "%s", err.message);
    unlink(path);
}

static void test_file_foreign_owner(void)
{
    if (geteuid() != 0) {
        CHECK(!"this case needs root (to give a file to another user)");
        return;
    }
    char path[512];
    path_in(path, sizeof(path), "theirs.fw");
    make_table(path);
    CHECK(chown(path, NOBODY, NOBODY) == 0);
    snap_t before = take(path);
    fw_store_error_t err;
    CHECK(open_file(path, &err) == FW_EUNSAFE, "%s", err.message);
    CHECK(strstr(err.message, "uid 65534") && strstr(err.message, "0600") &&
              strstr(err.message, path) && strstr(err.message, "rm '"),
          "%s", err.message);
    CHECK(same(path, &before), "another user's table file was changed");
    /* FW_OPEN_NOCREATE (inspection) refuses it the same way */
    fw_shared_options_t nocreate = {{0, 0}, FW_SYNC_NONE, 0, FW_OPEN_NOCREATE};
    fw_table_t *t = NULL;
    CHECK(fw_table_open_file(&t, path, &nocreate, &err) == FW_EUNSAFE);
    unlink(path);
}

static void test_file_symlinks(void)
{
    char path[512], target[512], link_path[512];
    path_in(target, sizeof(target), "real.fw");
    path_in(link_path, sizeof(link_path), "link.fw");
    make_table(target);
    CHECK(symlink(target, link_path) == 0);
    snap_t before = take(target);
    fw_store_error_t err;
    CHECK(open_file(link_path, &err) == FW_EUNSAFE, "%s", err.message);
    CHECK(strstr(err.message, "symbolic link") && strstr(err.message, target),
          "%s", err.message);
    CHECK(same(target, &before), "a table reached through a link was changed");

    /* dangling: said at once, nothing created, no temporaries left */
    path_in(path, sizeof(path), "dangling.fw");
    char nowhere[512];
    path_in(nowhere, sizeof(nowhere), "nowhere/none.fw");
    CHECK(symlink(nowhere, path) == 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(open_file(path, &err) == FW_EUNSAFE, "%s", err.message);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(strstr(err.message, "does not exist") && !strstr(err.message, "disappearing"),
          "%s", err.message);
    CHECK(t1.tv_sec - t0.tv_sec < 2);
    CHECK(access(nowhere, F_OK) != 0, "the link's target was created");
    CHECK(!count_entries(dir), "temporaries were left behind");
    unlink(path);
    unlink(link_path);
    unlink(target);
}

static void test_file_not_regular(void)
{
    char fifo[512];
    path_in(fifo, sizeof(fifo), "fifo.fw");
    CHECK(mkfifo(fifo, 0600) == 0);
    fw_store_error_t err;
    alarm(10); /* a blocking open would hang: die instead */
    CHECK(open_file(fifo, &err) == FW_EBADFILE, "%s", err.message);
    CHECK(strstr(err.message, "FIFO"), "%s", err.message);
    alarm(0);
    unlink(fifo);
}

/* The table's directory: another user who can replace entries in it could
 * swap the table between runs. Refused on open and on create, reported by
 * the doctor; a sticky directory (/tmp) and root's directories are fine. */
static void test_file_directory(void)
{
    char sub[400], path[512], fresh[512];
    path_in(sub, sizeof(sub), "dir");
    CHECK(mkdir(sub, 0700) == 0);
    snprintf(path, sizeof(path), "%s/limits.fw", sub);
    snprintf(fresh, sizeof(fresh), "%s/fresh.fw", sub);
    make_table(path);
    fw_store_error_t err;
    fw_doctor_report_t rep;

    /* writable by others, no sticky bit: refused, table and dir untouched */
    const mode_t unsafe[] = {0777, 0770, 0730, 0703};
    for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
        CHECK(chmod(sub, unsafe[i]) == 0);
        snap_t before = take(path);
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", (unsigned)unsafe[i]);
        CHECK(open_file(path, &err) == FW_EUNSAFE, "%s: %s", mode, err.message);
        CHECK(err.sys_errno == 0);
        CHECK(strstr(err.message, path) && strstr(err.message, "its directory") &&
                  strstr(err.message, sub) && strstr(err.message, mode) &&
                  strstr(err.message, "sticky") && strstr(err.message, "chmod go-w"),
              "%s", err.message);
        CHECK(same(path, &before), "a table in an unsafe directory was changed");
        /* nor is a table created there */
        CHECK(open_file(fresh, &err) == FW_EUNSAFE, "%s", err.message);
        CHECK(access(fresh, F_OK) != 0 && !count_entries(sub),
              "a table was created in an unsafe directory");
        fw_shared_options_t nocreate = {{0, 0}, FW_SYNC_NONE, 0, FW_OPEN_NOCREATE};
        fw_table_t *t = NULL;
        CHECK(fw_table_open_file(&t, path, &nocreate, &err) == FW_EUNSAFE);
        /* the doctor says so too */
        CHECK(fw_table_doctor(path, 1, &rep) == FW_EUNSAFE, "%s", rep.problem);
        CHECK(strstr(rep.problem, sub) && strstr(rep.problem, mode) &&
                  rep.bad_slots == 0,
              "%s", rep.problem);
    }
    /* sticky, as /tmp is: each entry is its owner's to replace */
    CHECK(chmod(sub, 01777) == 0);
    CHECK(open_file(path, &err) == 0, "%s", err.message);
    CHECK(open_file(fresh, &err) == 0, "%s", err.message);
    CHECK(fw_table_doctor(path, 1, &rep) == 0, "%s", rep.problem);
    unlink(fresh);
    /* group may read and search */
    CHECK(chmod(sub, 0750) == 0);
    CHECK(open_file(path, &err) == 0, "%s", err.message);

    if (geteuid() != 0) {
        CHECK(!"this case needs root (to give a directory to another user)");
    } else {
        /* another user's directory, even a private one */
        CHECK(chmod(sub, 0755) == 0 && chown(sub, NOBODY, NOBODY) == 0);
        snap_t before = take(path);
        CHECK(open_file(path, &err) == FW_EUNSAFE, "%s", err.message);
        CHECK(strstr(err.message, sub) && strstr(err.message, "uid 65534") &&
                  strstr(err.message, "0755") && strstr(err.message, "chown 0 '"),
              "%s", err.message);
        CHECK(same(path, &before), "a table in another user's directory was changed");
        CHECK(open_file(fresh, &err) == FW_EUNSAFE && access(fresh, F_OK) != 0);
        CHECK(fw_table_doctor(path, 1, &rep) == FW_EUNSAFE, "%s", rep.problem);
        CHECK(strstr(rep.problem, "uid 65534"), "%s", rep.problem);
        /* the doctor judges for the table's owner: nobody's table is fine there */
        CHECK(chown(path, NOBODY, NOBODY) == 0);
        CHECK(fw_table_doctor(path, 1, &rep) == 0, "%s", rep.problem);
        /* and nobody may use its table in its directory, or in root's */
        CHECK(chmod(dir, 0711) == 0); /* nobody may pass through */
        pid_t pid = fork();
        if (pid == 0) {
            int ok = setgid(NOBODY) == 0 && setuid(NOBODY) == 0 &&
                     open_file(path, NULL) == 0;
            _exit(ok ? 0 : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "nobody could not use its own table in its own directory");
        CHECK(chown(sub, 0, 0) == 0 && chmod(sub, 0755) == 0);
        pid = fork();
        if (pid == 0) {
            int ok = setgid(NOBODY) == 0 && setuid(NOBODY) == 0 &&
                     open_file(path, NULL) == 0;
            _exit(ok ? 0 : 1);
        }
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "nobody could not use its own table in a directory of root's");
        CHECK(chmod(dir, 0700) == 0);
    }
    unlink(path);
    rmdir(sub);
}

/* ---- temporaries of crashed creators ------------------------------------------------ */

static long dead_pid(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    int status;
    waitpid(p, &status, 0);
    return (long)p;
}

static void make_temp(const char *path, long pid, const char *suffix, int age_s,
                      uid_t uid)
{
    char tmp[600];
    const char *slash = strrchr(path, '/');
    snprintf(tmp, sizeof(tmp), "%.*s.%s.new-%ld-%s", (int)(slash - path + 1), path,
             slash + 1, pid, suffix);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 1 << 20) == 0);
    if (uid != geteuid())
        CHECK(fchown(fd, uid, uid) == 0);
    close(fd);
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= age_s;
    tv[1] = tv[0];
    CHECK(utimes(tmp, tv) == 0);
}

static int temp_exists(const char *path, long pid, const char *suffix)
{
    char tmp[600];
    const char *slash = strrchr(path, '/');
    snprintf(tmp, sizeof(tmp), "%.*s.%s.new-%ld-%s", (int)(slash - path + 1), path,
             slash + 1, pid, suffix);
    struct stat st;
    return lstat(tmp, &st) == 0;
}

static void sweep_cases(const char *path, int is_shm, const char *name)
{
    long dead = dead_pid();
    make_temp(path, dead, "AAAAAA", 60, geteuid());          /* stale: removed */
    make_temp(path, dead, "BBBBBB", 0, geteuid());           /* just made: kept */
    make_temp(path, 1, "CCCCCC", 60, geteuid());             /* live creator: kept */
    make_temp(path, 1, "DDDDDD", 20 * 60, geteuid());        /* 20 min: removed */
    if (geteuid() == 0)
        make_temp(path, dead, "EEEEEE", 60 * 60, NOBODY);    /* not ours: kept */
    /* older versions' form, without a pid: by age alone */
    char legacy_old[600], legacy_new[600];
    const char *sl = strrchr(path, '/');
    snprintf(legacy_old, sizeof(legacy_old), "%.*s.%s.new-Lg0ld1", (int)(sl - path + 1),
             path, sl + 1);
    snprintf(legacy_new, sizeof(legacy_new), "%.*s.%s.new-Lgnew1", (int)(sl - path + 1),
             path, sl + 1);
    const char *legacy[] = {legacy_old, legacy_new};
    for (int i = 0; i < 2; i++) {
        int lfd = open(legacy[i], O_RDWR | O_CREAT | O_EXCL, 0600);
        CHECK(lfd >= 0);
        close(lfd);
        struct timeval ltv[2];
        gettimeofday(&ltv[0], NULL);
        ltv[0].tv_sec -= i == 0 ? 20 * 60 : 60;
        ltv[1] = ltv[0];
        CHECK(utimes(legacy[i], ltv) == 0);
    }
    fw_store_error_t err;
    fw_table_t *t = NULL;
    int rc = is_shm ? fw_table_open_shm(&t, name, NULL, &err)
                    : fw_table_open_file(&t, path, NULL, &err);
    CHECK(rc == 0, "%s", err.message);
    if (t)
        fw_table_close(t);
    CHECK(!temp_exists(path, dead, "AAAAAA"), "a dead creator's temporary stayed");
    CHECK(temp_exists(path, dead, "BBBBBB"), "a fresh temporary was removed");
    CHECK(temp_exists(path, 1, "CCCCCC"), "a live creator's temporary was removed");
    CHECK(!temp_exists(path, 1, "DDDDDD"), "a 20-minute-old temporary stayed");
    CHECK(access(legacy_old, F_OK) != 0, "an old-form temporary of 20 min stayed");
    CHECK(access(legacy_new, F_OK) == 0, "an old-form temporary of 1 min was removed");
    unlink(legacy_new);
    if (geteuid() == 0)
        CHECK(temp_exists(path, dead, "EEEEEE"), "another user's file was removed");
    else
        CHECK(!"this case needs root (a temporary owned by another user)");
    char tmp[600];
    const char *slash = strrchr(path, '/');
    const char *suffixes[] = {"BBBBBB", "CCCCCC", "EEEEEE"};
    long pids[] = {dead, 1, dead};
    for (int i = 0; i < 3; i++) {
        snprintf(tmp, sizeof(tmp), "%.*s.%s.new-%ld-%s", (int)(slash - path + 1), path,
                 slash + 1, pids[i], suffixes[i]);
        unlink(tmp);
    }
}

static void test_temporaries(void)
{
    char path[512];
    path_in(path, sizeof(path), "swept.fw");
    sweep_cases(path, 0, NULL);
    unlink(path);

    char name[96], shm_path[160];
    snprintf(name, sizeof(name), "%s-swept", shm_base);
    snprintf(shm_path, sizeof(shm_path), "%s/%s", FW_SHM_DIR, name);
    sweep_cases(shm_path, 1, name);
    fw_table_unlink_shm(name, NULL);

    /* a link named like a temporary is never followed nor removed */
    char link_name[600], victim[512];
    path_in(victim, sizeof(victim), "victim");
    int fd = open(victim, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0);
    close(fd);
    snprintf(link_name, sizeof(link_name), "%s/.linked.fw.new-%ld-ZZZZZZ", dir,
             dead_pid());
    CHECK(symlink(victim, link_name) == 0);
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= 3600;
    tv[1] = tv[0];
    lutimes(link_name, tv);
    char linked[512];
    path_in(linked, sizeof(linked), "linked.fw");
    fw_store_error_t err;
    CHECK(open_file(linked, &err) == 0, "%s", err.message);
    struct stat st;
    CHECK(lstat(link_name, &st) == 0 && access(victim, F_OK) == 0);
    unlink(link_name);
    unlink(victim);
    unlink(linked);

    /* a table may not take a temporary's name */
    char bad[512];
    path_in(bad, sizeof(bad), ".x.fw.new-123-abcdef");
    CHECK(open_file(bad, &err) == FW_EINVAL, "%s", err.message);
    CHECK(access(bad, F_OK) != 0);
}

/* ---- shm:// ---------------------------------------------------------------------- */

static void test_shm_squatted(void)
{
    char name[96], path[160];
    snprintf(name, sizeof(name), "%s-squat", shm_base);
    snprintf(path, sizeof(path), "%s/%s", FW_SHM_DIR, name);
    fw_store_error_t err;

    /* the squat: empty, mode 0666 (made here by us) */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK(fchmod(fd, 0666) == 0);
    close(fd);
    snap_t before = take(path);
    CHECK(open_shm(name, &err) == FW_EUNSAFE, "%s", err.message);
    CHECK(strstr(err.message, "0666") && strstr(err.message, name), "%s", err.message);
    CHECK(same(path, &before), "a squatted shm object was changed");

    /* empty and private, but not made by floodwall: refused, untouched */
    CHECK(chmod(path, 0600) == 0);
    before = take(path);
    CHECK(open_shm(name, &err) == FW_EBADFILE, "%s", err.message);
    CHECK(strstr(err.message, "empty"), "%s", err.message);
    CHECK(same(path, &before), "an empty shm object was formatted");

    /* another program's object starting with 8 zero bytes: untouched */
    unsigned char junk[8192];
    memset(junk, 0x5a, sizeof(junk));
    memset(junk, 0, 8);
    fd = open(path, O_RDWR);
    CHECK(fd >= 0 && pwrite(fd, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk));
    close(fd);
    before = take(path);
    CHECK(open_shm(name, &err) == FW_EBADFILE, "%s", err.message);
    CHECK(same(path, &before), "another program's shm object was reformatted");
    unlink(path);

    /* another user's object */
    if (geteuid() == 0) {
        fw_table_t *t = NULL;
        CHECK(fw_table_open_shm(&t, name, NULL, &err) == 0, "%s", err.message);
        fw_table_close(t);
        CHECK(chown(path, NOBODY, NOBODY) == 0);
        before = take(path);
        CHECK(open_shm(name, &err) == FW_EUNSAFE, "%s", err.message);
        CHECK(strstr(err.message, "uid 65534"), "%s", err.message);
        CHECK(same(path, &before), "another user's shm object was changed");
    } else {
        CHECK(!"this case needs root (an object owned by another user)");
    }
    unlink(path);

    /* a symbolic link in /dev/shm */
    char target[512];
    path_in(target, sizeof(target), "shm-target.fw");
    make_table(target);
    CHECK(symlink(target, path) == 0);
    before = take(target);
    CHECK(open_shm(name, &err) == FW_EUNSAFE, "%s", err.message);
    CHECK(same(target, &before));
    unlink(path);
    unlink(target);
}

static void test_shm_names(void)
{
    char out[256];
    fw_store_error_t err;
    CHECK(fw_shm_path("api", out, sizeof(out), &err) == 0 &&
          strcmp(out, "/dev/shm/api") == 0);
    CHECK(fw_shm_path("/api", out, sizeof(out), &err) == 0 &&
          strcmp(out, "/dev/shm/api") == 0);
    /* names that only look a little like a temporary's are fine */
    const char *fine[] = {".api", "api.new-42-abcdef", ".api.new-42-abcde",
                          ".new-42-abcdef", ".api.new--abcdef", ".api.new-42-abcdefg",
                          ".api.new-0-abcdef"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
        CHECK(fw_shm_path(fine[i], out, sizeof(out), &err) == 0, "%s", fine[i]);
    const char *bad[] = {"../../etc/passwd", "..", ".", "", "a/b", "with space",
                         ".api.new-42-abcdef", ".a.new-b.new-42-abcdef", ".api.new-abcdef",
                         "\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(fw_shm_path(bad[i], out, sizeof(out), &err) == FW_EINVAL, "%s", bad[i]);
        CHECK(err.message[0] != '\0');
    }
    CHECK(fw_shm_path(NULL, out, sizeof(out), &err) == FW_EINVAL);
    CHECK(fw_shm_path("api", out, 8, &err) == FW_EINVAL);
    fw_table_t *t = NULL;
    CHECK(fw_table_open_shm(&t, "../../tmp/x", NULL, &err) == FW_EINVAL);
    CHECK(fw_table_unlink_shm("../x", &err) == FW_EINVAL);
}

/* Many processes create one table at once: all get the same table (one
 * creation date), and no temporary is left behind. */
static void test_creation_stampede(void)
{
    char name[96], dev[160];
    snprintf(name, sizeof(name), "%s-stampede", shm_base);
    snprintf(dev, sizeof(dev), "%s/%s", FW_SHM_DIR, name);
    enum { N = 6 };
    const int64_t NOW = (int64_t)1700000000 * 1000000000;
    fw_limit_t lim;
    memset(&lim, 0, sizeof(lim));
    CHECK(fw_quota_init(&lim.quota, FW_FIXED_WINDOW, 100, (int64_t)3600 * 1000000000,
                        0) == 0);
    int fds[N][2];
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        CHECK(pipe(fds[i]) == 0);
        pids[i] = fork();
        if (pids[i] == 0) {
            fw_table_t *t = NULL;
            fw_store_error_t err;
            fw_shared_options_t opt = {{20000, 0}, FW_SYNC_NONE, 0, 0};
            uint64_t created = 0;
            if (fw_table_open_shm(&t, name, &opt, &err) == 0) {
                fw_table_stats_t st;
                fw_table_stats(t, 1, &st);
                fw_decision_t d;
                size_t violated;
                fw_request_t r = {&lim, "k", 1};
                if (fw_table_check(t, &r, 1, 1, NOW, &d, &violated) == 0 && d.allowed)
                    created = (uint64_t)st.max_keys;
                fw_table_close(t);
            }
            ssize_t w = write(fds[i][1], &created, sizeof(created));
            _exit(w == (ssize_t)sizeof(created) ? 0 : 1);
        }
        close(fds[i][1]);
    }
    for (int i = 0; i < N; i++) {
        uint64_t got = 0;
        CHECK(read(fds[i][0], &got, sizeof(got)) == (ssize_t)sizeof(got));
        CHECK(got == 20000, "child %d got max_keys %llu", i, (unsigned long long)got);
        close(fds[i][0]);
        int status;
        waitpid(pids[i], &status, 0);
    }
    /* one table: it counted every child's check */
    fw_table_t *t = NULL;
    fw_store_error_t err;
    CHECK(fw_table_open_shm(&t, name, NULL, &err) == 0, "%s", err.message);
    if (t) {
        fw_decision_t d;
        size_t violated;
        fw_request_t r = {&lim, "k", 1};
        CHECK(fw_table_check(t, &r, 1, 0, NOW, &d, &violated) == 0);
        CHECK(d.remaining == 100 - N, "remaining %lld", (long long)d.remaining);
        fw_table_close(t);
    }
    char pattern[200];
    snprintf(pattern, sizeof(pattern), "ls -a %s | grep -q -- '^\\.%s\\.new-'",
             FW_SHM_DIR, name);
    CHECK(system(pattern) != 0, "a temporary was left in /dev/shm");
    fw_table_unlink_shm(name, NULL);
}

/* ---- doctor ---------------------------------------------------------------------- */

static void test_doctor_never_blocks(void)
{
    char fifo[512], sub[512], link_path[512], table[512];
    path_in(fifo, sizeof(fifo), "doctor.fifo");
    path_in(sub, sizeof(sub), "doctor.dir");
    path_in(link_path, sizeof(link_path), "doctor.link");
    path_in(table, sizeof(table), "doctor.fw");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(mkdir(sub, 0700) == 0);
    make_table(table);
    CHECK(symlink(table, link_path) == 0);
    fw_doctor_report_t rep;
    alarm(10); /* the old doctor blocked forever on a FIFO */
    CHECK(fw_table_doctor(fifo, 1, &rep) == FW_EBADFILE, "%s", rep.problem);
    CHECK(strstr(rep.problem, "FIFO"), "%s", rep.problem);
    CHECK(fw_table_doctor(sub, 1, &rep) == FW_EBADFILE, "%s", rep.problem);
    CHECK(strstr(rep.problem, "directory"), "%s", rep.problem);
    CHECK(fw_table_doctor("/dev/null", 1, &rep) == FW_EBADFILE, "%s", rep.problem);
    CHECK(strstr(rep.problem, "character device"), "%s", rep.problem);
    CHECK(fw_table_doctor(link_path, 1, &rep) == FW_EUNSAFE, "%s", rep.problem);
    CHECK(strstr(rep.problem, "symbolic link"), "%s", rep.problem);
    alarm(0);

    /* it never writes: a read-only table file is doctored, and unchanged */
    CHECK(chmod(table, 0400) == 0);
    snap_t before = take(table);
    CHECK(fw_table_doctor(table, 1, &rep) == 0, "%s", rep.problem);
    CHECK(same(table, &before));
    /* writable by others: sound, but reported as the stores would refuse it */
    CHECK(chmod(table, 0666) == 0);
    CHECK(fw_table_doctor(table, 1, &rep) == FW_EUNSAFE, "%s", rep.problem);
    CHECK(strstr(rep.problem, "0666") && rep.bad_slots == 0, "%s", rep.problem);
    unlink(fifo);
    rmdir(sub);
    unlink(link_path);
    unlink(table);
}

int main(void)
{
    signal(SIGALRM, SIG_DFL);
    snprintf(dir, sizeof(dir), "/tmp/fw-owner-test-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(shm_base, sizeof(shm_base), "fw-owner-%d", (int)getpid());
    test_file_mode();
    test_file_foreign_owner();
    test_file_symlinks();
    test_file_not_regular();
    test_file_directory();
    test_temporaries();
    test_shm_squatted();
    test_shm_names();
    test_creation_stampede();
    test_doctor_never_blocks();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
