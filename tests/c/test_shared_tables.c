/*
 * test_shared_tables.c - the shm:// and file:// tables: creation (race-free,
 * modes, parents), persistence, options checks, sync modes, corruption
 * (clear errors, files left unchanged), inspection, doctor, exactness across
 * processes, and a kill -9 loop.
 * Invariant: every test works in its own temporary directory / shm name and
 * removes it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floodwall.h"
#include "table.h"
#include "vector_reader.h"

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                        \
        }                                                                      \
    } while (0)

#define CHECK_RC(expr, want)                                                   \
    do {                                                                       \
        int rc_ = (expr);                                                      \
        if (rc_ != (want)) {                                                   \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d\n",       \
                    __FILE__, __LINE__, #expr, rc_, fw_strerror(rc_), (want));  \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static const int64_t NOW = 1700000000LL * 1000000000LL;
static char tmpdir[256];

/* ---- helpers ---------------------------------------------------------------- */

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void limit_make(fw_limit_t *lim, fw_algorithm_t algo, int64_t rate,
                       int64_t period_ns, uint64_t ns)
{
    memset(lim, 0, sizeof(*lim));
    int rc = fw_quota_init(&lim->quota, algo, rate, period_ns, 0);
    if (rc) {
        fprintf(stderr, "fw_quota_init: %s\n", fw_strerror(rc));
        exit(2);
    }
    lim->namespace_id = ns;
}

static int check_key(fw_table_t *t, const fw_limit_t *lim, const char *key,
                     int64_t now, fw_decision_t *d)
{
    fw_request_t r = {lim, key, strlen(key)};
    size_t violated;
    return fw_table_check(t, &r, 1, 1, now, d, &violated);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

static void remove_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- file: creation, persistence, options ------------------------------------- */

static void test_file_create_and_persist(void)
{
    char path[600], dir[400];
    snprintf(dir, sizeof(dir), "%s/a/b", tmpdir);
    snprintf(path, sizeof(path), "%s/table.fw", dir);
    fw_shared_options_t opt = {{1000, 0}, FW_SYNC_NONE, 0, 0};
    fw_store_error_t err;
    fw_table_t *t = NULL;
    CHECK_RC(fw_table_open_file(&t, path, &opt, &err), 0);
    CHECK(t != NULL);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    size_t bytes;
    fw_table_options_t topt = {1000, 0};
    fw_table_size(&topt, &bytes);
    CHECK(stat(path, &st) == 0 && (size_t)st.st_size == bytes);

    fw_limit_t lim;
    limit_make(&lim, FW_GCRA, 5, 3600LL * 1000000000LL, 7);
    fw_decision_t d;
    for (int i = 0; i < 5; i++) {
        CHECK_RC(check_key(t, &lim, "user-1", NOW, &d), 0);
        CHECK(d.allowed);
    }
    CHECK_RC(check_key(t, &lim, "user-1", NOW, &d), 0);
    CHECK(!d.allowed);
    fw_table_close(t);

    /* reopened: user-1 is still at 0 remaining */
    t = NULL;
    CHECK_RC(fw_table_open_file(&t, path, NULL, &err), 0);
    CHECK_RC(fw_table_peek(t, &lim, "user-1", 6, NOW + 1000, &d), 0);
    CHECK(!d.allowed && d.remaining == 0);
    CHECK_RC(fw_table_peek(t, &lim, "user-2", 6, NOW, &d), 0);
    CHECK(d.allowed && d.remaining == 5);

    /* a second handle on the same file shares the state */
    fw_table_t *t2 = NULL;
    CHECK_RC(fw_table_open_file(&t2, path, &opt, &err), 0);
    CHECK_RC(check_key(t2, &lim, "user-3", NOW, &d), 0);
    CHECK_RC(fw_table_peek(t, &lim, "user-3", 6, NOW, &d), 0);
    CHECK(d.remaining == 4);
    fw_table_close(t2);
    fw_table_close(t);

    /* larger max_keys: refused, with the numbers; smaller and 0: fine */
    fw_shared_options_t bigger = {{5000, 0}, FW_SYNC_NONE, 0, 0};
    t = NULL;
    CHECK_RC(fw_table_open_file(&t, path, &bigger, &err), FW_EMISMATCH);
    CHECK(t == NULL);
    CHECK(strstr(err.message, "max_keys=1000") && strstr(err.message, "5000") &&
          strstr(err.message, path));
    fw_shared_options_t logs = {{10, 8}, FW_SYNC_NONE, 0, 0};
    CHECK_RC(fw_table_open_file(&t, path, &logs, &err), FW_EMISMATCH);
    CHECK(strstr(err.message, "log_capacity=8") != NULL);
    fw_shared_options_t smaller = {{10, 0}, FW_SYNC_NONE, 0, 0};
    CHECK_RC(fw_table_open_file(&t, path, &smaller, &err), 0);
    fw_table_stats_t stats;
    fw_table_stats(t, NOW, &stats);
    CHECK(stats.max_keys == 1000);
    fw_table_close(t);

    /* no file, NOCREATE: ENOENT, and nothing created */
    char missing[512];
    path_in(missing, sizeof(missing), "missing.fw");
    fw_shared_options_t nocreate = {{0, 0}, FW_SYNC_NONE, 0, FW_OPEN_NOCREATE};
    CHECK_RC(fw_table_open_file(&t, missing, &nocreate, &err), FW_EIO);
    CHECK(err.sys_errno == ENOENT && strstr(err.message, missing));
    CHECK(access(missing, F_OK) != 0);

    /* bad options */
    fw_shared_options_t bad = {{10, 0}, FW_SYNC_INTERVAL, 0, 0};
    CHECK_RC(fw_table_open_file(&t, path, &bad, &err), FW_EINVAL);
    CHECK(strstr(err.message, "sync_interval_ms") != NULL);
    bad.sync = (fw_sync_t)7;
    CHECK_RC(fw_table_open_file(&t, path, &bad, &err), FW_EINVAL);
    CHECK_RC(fw_table_open_file(NULL, path, NULL, &err), FW_EINVAL);
    CHECK_RC(fw_table_open_file(&t, "", NULL, NULL), FW_EINVAL);

    /* a directory, a device, an unwritable directory */
    CHECK_RC(fw_table_open_file(&t, dir, NULL, &err), FW_EIO);
    CHECK(err.sys_errno == EISDIR);
    CHECK_RC(fw_table_open_file(&t, "/dev/null", NULL, &err), FW_EBADFILE);
    CHECK(strstr(err.message, "not a regular file") != NULL);
    if (geteuid() != 0) {
        char ro[400], inside[600];
        path_in(ro, sizeof(ro), "readonly");
        mkdir(ro, 0500);
        snprintf(inside, sizeof(inside), "%s/x/t.fw", ro);
        CHECK_RC(fw_table_open_file(&t, inside, NULL, &err), FW_EIO);
        CHECK(err.sys_errno == EACCES && strstr(err.message, inside));
        chmod(ro, 0700);
    }
}

static void test_file_sync_modes(void)
{
    fw_limit_t lim;
    limit_make(&lim, FW_TOKEN_BUCKET, 100, 1000000000LL, 1);
    for (int mode = FW_SYNC_NONE; mode <= FW_SYNC_ALWAYS; mode++) {
        char path[512];
        char name[32];
        snprintf(name, sizeof(name), "sync-%d.fw", mode);
        path_in(path, sizeof(path), name);
        fw_shared_options_t opt = {{64, 0}, (fw_sync_t)mode, 1, 0};
        fw_store_error_t err;
        fw_table_t *t = NULL;
        CHECK_RC(fw_table_open_file(&t, path, &opt, &err), 0);
        fw_decision_t d;
        for (int i = 0; i < 50; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", i % 7);
            CHECK_RC(check_key(t, &lim, key, NOW + i, &d), 0);
        }
        CHECK_RC(fw_table_reset(t, &lim, "k1", 2), 0);
        CHECK_RC(fw_table_clear(t), 0);
        CHECK_RC(check_key(t, &lim, "after", NOW, &d), 0);
        fw_table_close(t);
        t = NULL;
        CHECK_RC(fw_table_open_file(&t, path, NULL, &err), 0);
        CHECK_RC(fw_table_peek(t, &lim, "after", 5, NOW, &d), 0);
        CHECK(d.remaining == 99);
        fw_table_close(t);
    }
}

static void test_sliding_log_file(void)
{
    char path[512];
    path_in(path, sizeof(path), "log.fw");
    fw_shared_options_t opt = {{32, 10}, FW_SYNC_ALWAYS, 0, 0};
    fw_store_error_t err;
    fw_table_t *t = NULL;
    CHECK_RC(fw_table_open_file(&t, path, &opt, &err), 0);
    fw_limit_t lim;
    limit_make(&lim, FW_SLIDING_LOG, 10, 60LL * 1000000000LL, 3);
    fw_decision_t d;
    for (int i = 0; i < 12; i++)
        CHECK_RC(check_key(t, &lim, "log", NOW + i, &d), 0);
    CHECK(!d.allowed);
    fw_table_close(t);
    t = NULL;
    CHECK_RC(fw_table_open_file(&t, path, NULL, &err), 0);
    CHECK_RC(fw_table_peek(t, &lim, "log", 3, NOW + 100, &d), 0);
    CHECK(!d.allowed && d.remaining == 0);
    fw_slot_info_t info;
    CHECK_RC(fw_table_inspect(t, &lim, "log", 3, NOW + 100, &info, NULL), 0);
    CHECK(info.present && info.log_len == 10);
    fw_table_close(t);
    fw_doctor_report_t rep;
    CHECK_RC(fw_table_doctor(path, NOW, &rep), 0);
    CHECK(rep.used == 1 && rep.log_capacity == 10);
}

/* ---- corruption ------------------------------------------------------------------ */

typedef struct damage_case {
    const char *name;
    int want;             /* expected error code */
    const char *phrase;   /* expected in the message */
} damage_case_t;

/* Apply damage number `i` to a copy of a good table file. */
static void damage(int i, unsigned char *buf, size_t *len)
{
    fwi_table_header_t *h = (fwi_table_header_t *)(void *)buf;
    switch (i) {
    case 0: buf[0] ^= 0x01; break;                    /* magic */
    case 1: h->seed[0] ^= 1; break;                    /* checksum */
    case 2: h->max_keys += 1; break;                   /* checksum */
    case 3: h->version = 1; break;                     /* version */
    case 4: h->version = 1; h->checksum = fwi_table_header_checksum(h); break;
    case 5: *len = 100; break;                         /* truncated header */
    case 6: *len = FWI_TABLE_HEADER_SIZE + 64; break;   /* truncated slots */
    case 7: *len = 0; break;                           /* empty */
    case 8: memset(buf, 'x', *len); break;             /* garbage */
    case 9: *len = 5; break;                           /* tiny */
    case 10: /* consistent checksum, impossible sizes */
        h->nslots = 8; h->checksum = fwi_table_header_checksum(h); break;
    default: break;
    }
}

_Static_assert(FW_TABLE_LAYOUT_VERSION == 3u, "the version the messages below name");
static const damage_case_t damage_cases[] = {
    {"flipped magic", FW_EBADFILE, "not a floodwall table"},
    {"flipped seed", FW_EBADFILE, "damaged header"},
    {"changed max_keys", FW_EBADFILE, "damaged header"},
    {"version 1", FW_EVERSION, "version 1"},
    {"version 1, checksum ok", FW_EVERSION, "reads version 3"},
    {"truncated header", FW_EBADFILE, "truncated"},
    {"truncated slots", FW_EBADFILE, "truncated"},
    {"empty", FW_EBADFILE, "empty"},
    {"garbage", FW_EBADFILE, "not a floodwall table"},
    {"five bytes", FW_EBADFILE, "not a floodwall table"},
    {"slot count", FW_EBADFILE, "slots of"},
};

static void test_file_corruption(void)
{
    char good[512];
    path_in(good, sizeof(good), "good.fw");
    fw_shared_options_t opt = {{100, 0}, FW_SYNC_NONE, 0, 0};
    fw_store_error_t err;
    fw_table_t *t = NULL;
    CHECK_RC(fw_table_open_file(&t, good, &opt, &err), 0);
    fw_limit_t lim;
    limit_make(&lim, FW_GCRA, 10, 1000000000LL, 1);
    fw_decision_t d;
    CHECK_RC(check_key(t, &lim, "x", NOW, &d), 0);
    fw_table_close(t);
    size_t good_len;
    unsigned char *orig = slurp(good, &good_len);
    CHECK(orig != NULL);
    if (!orig)
        return;

    for (size_t i = 0; i < sizeof(damage_cases) / sizeof(damage_cases[0]); i++) {
        char path[512];
        char name[32];
        snprintf(name, sizeof(name), "bad-%zu.fw", i);
        path_in(path, sizeof(path), name);
        unsigned char *buf = malloc(good_len);
        memcpy(buf, orig, good_len);
        size_t len = good_len;
        damage((int)i, buf, &len);
        write_bytes(path, buf, len);
        struct stat before, after;
        stat(path, &before);

        t = NULL;
        int rc = fw_table_open_file(&t, path, &opt, &err);
        if (rc != damage_cases[i].want || !strstr(err.message, damage_cases[i].phrase) ||
            !strstr(err.message, path)) {
            fprintf(stderr, "damage '%s': rc %d, message: %s\n", damage_cases[i].name,
                    rc, err.message);
            failures++;
        }
        CHECK(t == NULL);
        fw_doctor_report_t rep;
        CHECK_RC(fw_table_doctor(path, NOW, &rep), damage_cases[i].want);
        CHECK(rep.status == damage_cases[i].want && strstr(rep.problem, path));

        size_t now_len;
        unsigned char *now_buf = slurp(path, &now_len);
        stat(path, &after);
        CHECK(now_buf && now_len == len && memcmp(now_buf, buf, len) == 0);
        CHECK(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
              before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
        free(now_buf);
        free(buf);
    }
    free(orig);
}

/* ---- doctor, inspection ------------------------------------------------------------ */

static void test_doctor_and_inspect(void)
{
    char path[512];
    path_in(path, sizeof(path), "inspect.fw");
    fw_shared_options_t opt = {{256, 0}, FW_SYNC_NONE, 0, 0};
    fw_store_error_t err;
    fw_table_t *t = NULL;
    CHECK_RC(fw_table_open_file(&t, path, &opt, &err), 0);
    fw_limit_t lim;
    limit_make(&lim, FW_GCRA, 100, 100LL * 1000000000LL, 0xabc);
    fw_decision_t d;
    /* key i takes i+1 units: the hottest are the highest i */
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%d", i);
        for (int j = 0; j <= i; j++)
            CHECK_RC(check_key(t, &lim, key, NOW, &d), 0);
    }
    fw_slot_info_t info;
    fw_decision_t peek;
    CHECK_RC(fw_table_inspect(t, &lim, "key39", 5, NOW, &info, &peek), 0);
    CHECK(info.present && info.state != 0 && info.expiry_ns > NOW);
    CHECK(peek.remaining == 100 - 40);
    uint64_t fp[2];
    CHECK_RC(fw_table_fingerprint(t, &lim, "key39", 5, fp), 0);
    CHECK(fp[0] == info.fingerprint[0] && fp[1] == info.fingerprint[1]);
    CHECK_RC(fw_table_inspect(t, &lim, "nobody", 6, NOW, &info, NULL), 0);
    CHECK(!info.present);
    /* inspecting consumed nothing */
    CHECK_RC(fw_table_inspect(t, &lim, "key39", 5, NOW, &info, &peek), 0);
    CHECK(peek.remaining == 100 - 40);

    fw_slot_info_t hot[5];
    size_t n = 0;
    CHECK_RC(fw_table_hottest(t, NOW, hot, 5, &n), 0);
    CHECK(n == 5);
    for (size_t i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%zu", 39 - i);
        CHECK_RC(fw_table_fingerprint(t, &lim, key, strlen(key), fp), 0);
        CHECK(hot[i].fingerprint[0] == fp[0] && hot[i].fingerprint[1] == fp[1]);
        if (i > 0)
            CHECK(hot[i - 1].expiry_ns >= hot[i].expiry_ns);
    }
    fw_slot_info_t all[64];
    CHECK_RC(fw_table_hottest(t, NOW, all, 64, &n), 0);
    CHECK(n == 40);
    CHECK_RC(fw_table_hottest(t, NOW + 1000LL * 1000000000LL, all, 64, &n), 0);
    CHECK(n == 0);
    CHECK_RC(fw_table_hottest(t, NOW, NULL, 0, &n), 0);
    CHECK(n == 0);

    fw_doctor_report_t rep;
    CHECK_RC(fw_table_doctor(path, NOW, &rep), 0);
    CHECK(rep.used == 40 && rep.active == 40 && rep.bad_slots == 0 &&
          rep.max_keys == 256 && rep.file_bytes == rep.expected_bytes);

    /* an impossible slot: unused, yet holding a state */
    fw_table_stats_t st;
    fw_table_stats(t, NOW, &st);
    for (uint64_t i = 0; i < st.slots; i++) {
        fwi_slot_t *s = (fwi_slot_t *)(void *)(t->slots + i * t->slot_size);
        if (s->tag == 0) {
            s->state = 42;
            break;
        }
    }
    fw_table_close(t);
    size_t len_before, len_after;
    unsigned char *before = slurp(path, &len_before);
    CHECK_RC(fw_table_doctor(path, NOW, &rep), FW_EBADFILE);
    CHECK(rep.bad_slots == 1 && strstr(rep.problem, "unused slot"));
    unsigned char *after = slurp(path, &len_after);
    CHECK(before && after && len_before == len_after &&
          memcmp(before, after, len_before) == 0);
    free(before);
    free(after);
    CHECK_RC(fw_table_doctor(NULL, NOW, &rep), FW_EINVAL);
    CHECK_RC(fw_table_doctor("/nonexistent/x.fw", NOW, &rep), FW_EIO);
    CHECK(rep.sys_errno == ENOENT);
}

/* ---- shm ------------------------------------------------------------------------------ */

static char shm_base[64];

static void test_shm_basics(void)
{
    char name[96];
    snprintf(name, sizeof(name), "%s-basic", shm_base);
    fw_shared_options_t opt = {{500, 0}, FW_SYNC_ALWAYS, 0, 0};
    fw_store_error_t err;
    fw_table_t *a = NULL, *b = NULL;
    CHECK_RC(fw_table_open_shm(&a, name, &opt, &err), 0);
    CHECK_RC(fw_table_open_shm(&b, name, NULL, &err), 0);
    fw_limit_t lim;
    limit_make(&lim, FW_FIXED_WINDOW, 3, 60LL * 1000000000LL, 1);
    fw_decision_t d;
    CHECK_RC(check_key(a, &lim, "k", NOW, &d), 0);
    CHECK_RC(check_key(b, &lim, "k", NOW, &d), 0);
    CHECK(d.remaining == 1);
    fw_table_close(a);
    fw_table_close(b);

    char dev[128];
    snprintf(dev, sizeof(dev), "/dev/shm/%s", name);
    struct stat st;
    if (stat(dev, &st) == 0) {
        CHECK((st.st_mode & 0777) == 0600);
        fw_doctor_report_t rep;
        CHECK_RC(fw_table_doctor(dev, NOW, &rep), 0);
        CHECK(rep.used == 1);
    }
    fw_shared_options_t bigger = {{5000, 0}, FW_SYNC_NONE, 0, 0};
    CHECK_RC(fw_table_open_shm(&a, name, &bigger, &err), FW_EMISMATCH);
    CHECK(strstr(err.message, name) != NULL);
    CHECK_RC(fw_table_unlink_shm(name, &err), 0);
    CHECK_RC(fw_table_unlink_shm(name, &err), FW_EIO);
    CHECK(err.sys_errno == ENOENT);
    fw_shared_options_t nocreate = {{0, 0}, FW_SYNC_NONE, 0, FW_OPEN_NOCREATE};
    CHECK_RC(fw_table_open_shm(&a, name, &nocreate, &err), FW_EIO);
    CHECK(err.sys_errno == ENOENT);

    /* names */
    CHECK_RC(fw_table_open_shm(&a, "", NULL, &err), FW_EINVAL);
    CHECK_RC(fw_table_open_shm(&a, "a/b", NULL, &err), FW_EINVAL);
    CHECK_RC(fw_table_open_shm(&a, "..", NULL, &err), FW_EINVAL);
    CHECK_RC(fw_table_open_shm(&a, "with space", NULL, &err), FW_EINVAL);
    CHECK_RC(fw_table_open_shm(&a, NULL, NULL, &err), FW_EINVAL);
    CHECK_RC(fw_table_unlink_shm("x/y", &err), FW_EINVAL);
}

static void test_shm_damage(void)
{
    char name[96], slash[100];
    snprintf(name, sizeof(name), "%s-damage", shm_base);
    snprintf(slash, sizeof(slash), "/%s", name);
    fw_store_error_t err;
    fw_table_t *t = NULL;

    /* garbage: refused and left as it was */
    int fd = shm_open(slash, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    unsigned char junk[8192];
    memset(junk, 0x5a, sizeof(junk));
    CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
    CHECK_RC(fw_table_open_shm(&t, name, NULL, &err), FW_EBADFILE);
    CHECK(strstr(err.message, "not a floodwall table") && strstr(err.message, name));
    unsigned char back[8192];
    CHECK(pread(fd, back, sizeof(back), 0) == (ssize_t)sizeof(back));
    CHECK(memcmp(back, junk, sizeof(back)) == 0);

    /* no magic: floodwall never leaves an unfinished table at a name (it
     * links whole tables into place), so this is another program's: kept */
    memset(junk, 0, 8);
    CHECK(pwrite(fd, junk, 8, 0) == 8);
    CHECK_RC(fw_table_open_shm(&t, name, NULL, &err), FW_EBADFILE);
    CHECK(pread(fd, back, sizeof(back), 0) == (ssize_t)sizeof(back));
    CHECK(memcmp(back, junk, sizeof(back)) == 0);
    close(fd);
    fw_table_unlink_shm(name, NULL);
}

/* ---- processes ------------------------------------------------------------------------- */

typedef enum { ON_FILE, ON_SHM } backing_t;

static int open_backing(fw_table_t **t, backing_t b, const char *where,
                        uint64_t max_keys)
{
    fw_shared_options_t opt = {{max_keys, 0}, FW_SYNC_NONE, 0, 0};
    fw_store_error_t err;
    int rc = b == ON_FILE ? fw_table_open_file(t, where, &opt, &err)
                          : fw_table_open_shm(t, where, &opt, &err);
    if (rc)
        fprintf(stderr, "open %s: %s\n", where, err.message);
    return rc;
}

/* Children open the table at the same moment (racing on its creation) and
 * each tries `tries` checks on `nkeys` keys; returns the total admitted. */
static long race_and_count(backing_t b, const char *where, int children, int tries,
                           int nkeys, uint64_t max_keys)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    pid_t pids[16];
    for (int c = 0; c < children; c++) {
        pids[c] = fork();
        if (pids[c] == 0) {
            close(pipefd[0]);
            fw_table_t *t;
            long admitted = 0;
            if (open_backing(&t, b, where, max_keys) == 0) {
                fw_limit_t lim;
                limit_make(&lim, FW_GCRA, 100, 3600LL * 1000000000LL, 9);
                for (int i = 0; i < tries; i++) {
                    char key[16];
                    snprintf(key, sizeof(key), "k%d", (i + c) % nkeys);
                    fw_decision_t d;
                    if (check_key(t, &lim, key, NOW, &d) == 0 && d.allowed)
                        admitted++;
                }
                fw_table_close(t);
            } else {
                admitted = -1000000;
            }
            if (write(pipefd[1], &admitted, sizeof(admitted)) != sizeof(admitted))
                _exit(3);
            _exit(0);
        }
    }
    close(pipefd[1]);
    long total = 0;
    for (int c = 0; c < children; c++) {
        long v = 0;
        if (read(pipefd[0], &v, sizeof(v)) == sizeof(v))
            total += v;
        else
            total -= 1000000;
        waitpid(pids[c], NULL, 0);
    }
    close(pipefd[0]);
    return total;
}

static void test_processes_exact(void)
{
    char path[512], name[96];
    path_in(path, sizeof(path), "race.fw");
    snprintf(name, sizeof(name), "%s-race", shm_base);
    /* one key: 6 processes x 300 tries, limit 100 -> exactly 100 */
    CHECK(race_and_count(ON_FILE, path, 6, 300, 1, 4096) == 100);
    CHECK(race_and_count(ON_SHM, name, 6, 300, 1, 4096) == 100);
    unlink(path);
    fw_table_unlink_shm(name, NULL);
    /* 50 keys: 4 x 2000 tries -> exactly 50 x 100 */
    CHECK(race_and_count(ON_FILE, path, 4, 2000, 50, 4096) == 5000);
    CHECK(race_and_count(ON_SHM, name, 4, 2000, 50, 4096) == 5000);
    fw_table_unlink_shm(name, NULL);
}

/* Children hammer the table (insertions, checks, resets) and are killed at
 * random moments; the table must stay healthy and exact afterwards. */
static void test_kill9(void)
{
    char path[512];
    path_in(path, sizeof(path), "kill.fw");
    fw_table_t *t;
    if (open_backing(&t, ON_FILE, path, 512) != 0) {
        failures++;
        return;
    }
    fw_table_close(t);
    srand(1234);
    for (int round = 0; round < 30; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            fw_table_t *c;
            if (open_backing(&c, ON_FILE, path, 0) != 0)
                _exit(1);
            fw_limit_t lim;
            limit_make(&lim, FW_GCRA, 1000000, 1000000000LL, 3);
            for (unsigned i = 0;; i++) {
                char key[16];
                snprintf(key, sizeof(key), "h%u", i % 300);
                fw_decision_t d;
                /* advance time so keys expire and their slots get reclaimed */
                check_key(c, &lim, key, NOW + (int64_t)i * 1000, &d);
                if (i % 97 == 0)
                    fw_table_reset(c, &lim, key, strlen(key));
            }
        }
        struct timespec ts = {0, (long)(rand() % 3000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    fw_doctor_report_t rep;
    CHECK_RC(fw_table_doctor(path, NOW, &rep), 0);
    if (rep.status)
        fprintf(stderr, "doctor after kill -9: %s\n", rep.problem);
    /* stale stripe locks are taken over: exactness still holds */
    CHECK(race_and_count(ON_FILE, path, 4, 400, 1, 0) == 100);
}

/* ---- the shared vectors, replayed on shm and file tables ------------------------- */

static const struct {
    const char *name;
    fw_algorithm_t algorithm;
} VECTOR_FILES[] = {
    {"gcra", FW_GCRA},
    {"token_bucket", FW_TOKEN_BUCKET},
    {"leaky_bucket", FW_LEAKY_BUCKET},
    {"leaky_bucket_shaping", FW_LEAKY_BUCKET_SHAPING},
    {"fixed_window", FW_FIXED_WINDOW},
    {"sliding_window", FW_SLIDING_WINDOW},
    {"sliding_log", FW_SLIDING_LOG},
};

static long vector_steps, vector_engine_faults, vector_store_faults;

static void replay_case(fw_vectors_t *v, const fw_vec_case_t *c, fw_algorithm_t algo,
                        const char *file, backing_t b, int case_no)
{
    fw_limit_t lim;
    memset(&lim, 0, sizeof(lim));
    if (fw_quota_init(&lim.quota, algo, c->rate, c->period_ns, c->burst) != 0) {
        fprintf(stderr, "vectors %s/%s: quota rejected\n", file, c->name);
        failures++;
        return;
    }
    lim.namespace_id = (uint64_t)case_no;
    char where[600];
    if (b == ON_FILE)
        snprintf(where, sizeof(where), "%s/vec-%s-%d.fw", tmpdir, file, case_no);
    else
        snprintf(where, sizeof(where), "%s-vec", shm_base);
    fw_shared_options_t opt = {
        {8, algo == FW_SLIDING_LOG ? (uint32_t)lim.quota.burst : 0},
        FW_SYNC_NONE, 0, 0};
    fw_store_error_t err;
    fw_table_t *t = NULL;
    int rc = b == ON_FILE ? fw_table_open_file(&t, where, &opt, &err)
                          : fw_table_open_shm(&t, where, &opt, &err);
    if (rc) {
        fprintf(stderr, "vectors %s/%s: %s\n", file, c->name, err.message);
        failures++;
        return;
    }
    /* the same steps on a memory table tell a store fault from an engine one */
    fw_table_t *mem = NULL;
    if (fw_table_open_memory(&mem, &opt.table) != 0) {
        fw_table_close(t);
        failures++;
        return;
    }
    fw_vec_step_t s;
    int step = 0;
    while ((rc = fw_vectors_next_step(v, &s)) == 1) {
        fw_request_t r = {&lim, s.key, strlen(s.key)};
        fw_decision_t d, m;
        size_t violated;
        memset(&d, 0, sizeof(d));
        memset(&m, 0, sizeof(m));
        rc = fw_table_check(t, &r, 1, s.cost, s.t, &d, &violated);
        int mrc = fw_table_check(mem, &r, 1, s.cost, s.t, &m, &violated);
        vector_steps++;
        int ok = s.is_error
                     ? rc == FW_ECOST
                     : rc == 0 && d.allowed == s.allowed && d.limit == s.limit &&
                           d.remaining == s.remaining &&
                           d.retry_after_ns == s.retry_after_ns &&
                           d.reset_after_ns == s.reset_after_ns &&
                           d.delay_ns == s.delay_ns;
        int same = rc == mrc && memcmp(&d, &m, sizeof(d)) == 0;
        if (!ok || !same) {
            if (same)
                vector_engine_faults++;
            else
                vector_store_faults++;
            if (vector_engine_faults + vector_store_faults <= 20)
                fprintf(stderr,
                        "vectors %s/%s step %d on %s%s: rc %d, got allowed=%d "
                        "remaining=%" PRId64 " retry=%" PRId64 " reset=%" PRId64
                        ", want allowed=%d remaining=%" PRId64 " retry=%" PRId64
                        " reset=%" PRId64 "\n",
                        file, c->name, step, b == ON_FILE ? "file" : "shm",
                        same ? " (a memory table agrees: an engine fault)"
                             : " (differs from a memory table: a store fault)",
                        rc, d.allowed, d.remaining, d.retry_after_ns,
                        d.reset_after_ns, s.allowed, s.remaining, s.retry_after_ns,
                        s.reset_after_ns);
            failures++;
        }
        step++;
    }
    fw_table_close(mem);
    if (rc < 0) {
        fprintf(stderr, "%s\n", fw_vectors_error(v));
        failures++;
    }
    fw_table_close(t);
    if (b == ON_SHM)
        fw_table_unlink_shm(where, NULL);
    else
        unlink(where);
}

static void test_vectors(const char *dir)
{
    for (int b = ON_FILE; b <= ON_SHM; b++) {
        for (size_t f = 0; f < sizeof(VECTOR_FILES) / sizeof(VECTOR_FILES[0]); f++) {
            char path[600];
            snprintf(path, sizeof(path), "%s/%s.json", dir, VECTOR_FILES[f].name);
            fw_vectors_t *v = NULL;
            if (fw_vectors_open(&v, path) != 0) {
                fprintf(stderr, "cannot read %s: %s\n", path,
                        v ? fw_vectors_error(v) : "out of memory");
                failures++;
                fw_vectors_close(v);
                continue;
            }
            fw_vec_case_t c;
            int n = 0, rc;
            while ((rc = fw_vectors_next_case(v, &c)) == 1)
                replay_case(v, &c, VECTOR_FILES[f].algorithm, VECTOR_FILES[f].name,
                            (backing_t)b, n++);
            if (rc < 0) {
                fprintf(stderr, "%s\n", fw_vectors_error(v));
                failures++;
            }
            fw_vectors_close(v);
        }
    }
}

int main(int argc, char **argv)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fw-shared-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(shm_base, sizeof(shm_base), "fw-test-%d", (int)getpid());
    test_file_create_and_persist();
    test_file_sync_modes();
    test_sliding_log_file();
    test_file_corruption();
    test_doctor_and_inspect();
    test_shm_basics();
    test_shm_damage();
    test_processes_exact();
    test_kill9();
    if (argc > 1) {
        test_vectors(argv[1]);
        if (vector_engine_faults + vector_store_faults > 0)
            fprintf(stderr,
                    "vectors on shm/file: %ld steps, %ld wrong as on a memory table "
                    "(engine), %ld wrong only on shm/file (store)\n",
                    vector_steps, vector_engine_faults, vector_store_faults);
        if (vector_steps < 1000) {
            fprintf(stderr, "only %ld vector steps replayed\n", vector_steps);
            failures++;
        }
    }
    remove_tree(tmpdir);
    if (failures) {
        fprintf(stderr, "test_shared_tables: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_shared_tables: ok\n");
    return 0;
}
