/*
 * floodwall.h - the public C API of the floodwall rate-limiting engine.
 *
 * This header is the manual. Conventions:
 *   - every function returns 0 or a negative FW_E* code; a denial is a
 *     decision (fw_decision_t.allowed == 0), never an error;
 *   - time is int64 nanoseconds; every `now` argument must lie in
 *     [0, INT64_MAX]; algorithms never read a clock themselves;
 *   - the caller owns every struct it passes in; handles returned by *_open
 *     are released by the matching *_close;
 *   - a fw_table_t may be used from any number of threads at once, and, when
 *     it lives in shared memory or a file, from any number of processes.
 */
#ifndef FLOODWALL_H
#define FLOODWALL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version ------------------------------------------------------------ */

/* The engine's version (the Python package's, python/floodwall/_version.py). */
#define FW_VERSION_MAJOR 0
#define FW_VERSION_MINOR 1
#define FW_VERSION_PATCH 0
#define FW_VERSION_NUMBER                                                      \
    (FW_VERSION_MAJOR * 10000 + FW_VERSION_MINOR * 100 + FW_VERSION_PATCH)
/* The layout version of tables (header, slots, lock words) this engine
 * reads and writes; fw_table_attach refuses any other (FW_EVERSION).
 * 2: exact max_keys (linear probing, a key count), the (expiry, seen)
 *    pair, and a slot's log position carrying the log's running total.
 * 3: a GCRA-family key's tag has its top bit set and its TAT is its
 *    expiry (commits no longer raise the expiry field); seen is raised
 *    only by commits that forgive debt. */
#define FW_TABLE_LAYOUT_VERSION 3u

#if defined(FW_BUILDING) && defined(__GNUC__)
#define FW_API __attribute__((visibility("default")))
#else
#define FW_API
#endif

/* ---- errors ------------------------------------------------------------ */

/* X(name, value, message): the one list of error codes. */
#define FW_ERRNO_MAP(X)                                                        \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ERANGE, -2, "value out of range")                                        \
    X(ENOMEM, -3, "out of memory")                                             \
    X(EFULL, -4, "table full: no free or expired slot for a new key")          \
    X(ECOST, -5, "cost exceeds the capacity: it can never be admitted")        \
    X(EIO, -6, "input/output error")                                           \
    X(EBADFILE, -7, "not a floodwall table, or a damaged one")                 \
    X(EVERSION, -8, "table layout version not supported")                      \
    X(EMISMATCH, -9, "table parameters differ from the ones requested")        \
    X(EBUSY, -10, "a lock was not acquired in time (its owner is stopped, "    \
                  "or slower than the engine waits)")                          \
    /* the shared-table stores (store_shm.c, store_file.c, mapping.c) */     \
    X(EUNSAFE, -20, "refused: another user could control this table "        \
                    "(its owner, its mode, or a symbolic link)")

enum {
#define FW_ERRNO_ENUM(name, value, msg) FW_##name = (value),
    FW_ERRNO_MAP(FW_ERRNO_ENUM)
#undef FW_ERRNO_ENUM
};

/* A static string describing `code` (0 gives "ok"). Never NULL. */
FW_API const char *fw_strerror(int code);

/* ---- algorithms and quotas ------------------------------------------------ */

/* X(NAME, value, "name"): the one list of algorithms, in engine order.
 * "name" is what users write (Python's algorithm="..."). */
#define FW_ALGORITHM_MAP(X)                                                    \
    X(GCRA, 0, "gcra")                                                         \
    X(TOKEN_BUCKET, 1, "token_bucket")                                         \
    X(LEAKY_BUCKET, 2, "leaky_bucket")                 /* policing        */  \
    X(LEAKY_BUCKET_SHAPING, 3, "leaky_bucket_shaping") /* admit w/ delay  */  \
    X(FIXED_WINDOW, 4, "fixed_window")                                         \
    X(SLIDING_WINDOW, 5, "sliding_window")     /* two-window counter */        \
    X(SLIDING_LOG, 6, "sliding_log")           /* exact rolling window */

typedef enum fw_algorithm {
#define FW_ALGORITHM_ENUM(name, value, text) FW_##name = (value),
    FW_ALGORITHM_MAP(FW_ALGORITHM_ENUM)
#undef FW_ALGORITHM_ENUM
    FW_ALGORITHM_COUNT
} fw_algorithm_t;

/* The user-facing name of `a` ("gcra", ...), or NULL when unknown. */
FW_API const char *fw_algorithm_name(fw_algorithm_t a);

/* ---- bounds and defaults: the one place they are defined --------------------- */

/* The largest max_keys of a table (its slots: 2 * next_pow2(max_keys)). */
#define FW_MAX_KEYS_MAX ((uint64_t)1 << 36)
/* max_keys of a new shm:// / file:// table when none is given (memory://
 * grows, with no cap unless one is given). */
#define FW_DEFAULT_MAX_KEYS 65536u
/* The largest sliding_log capacity (burst) and table log_capacity: the log
 * keeps one 16-byte entry per admitted request inside the window. */
#define FW_LOG_CAPACITY_MAX 65536
/* Largest tau (capacity * interval) of any quota, in ns: about 146 years. */
#define FW_TAU_MAX ((int64_t)1 << 62)
/* The most (limit, key) parts one fw_table_check decides together. */
#define FW_CHECK_PARTS_MAX 64

#define FW_STRINGIFY_(x) #x
#define FW_STRINGIFY(x) FW_STRINGIFY_(x)


/*
 * A normalised quota: `rate` units per `period_ns`, capacity `burst`.
 * Built only by fw_quota_init; the derived fields are read-only.
 */
typedef struct fw_quota {
    fw_algorithm_t algorithm;
    int64_t rate;        /* units per period, >= 1                           */
    int64_t period_ns;   /* >= 1                                             */
    int64_t burst;       /* capacity, >= 1                                   */
    int64_t interval_ns; /* T = ceil(period / rate): time one unit takes     */
    int64_t tau_ns;      /* T * burst                                        */
    int64_t window_ns;   /* ceil(period * burst / rate): windowed algorithms */
} fw_quota_t;

/*
 * Normalise (algorithm, rate, period_ns, burst) into *q. burst == 0 means
 * "same as rate". Rejects with FW_EINVAL: unknown algorithm, rate < 1,
 * period_ns < 1, burst < 0, a rate above one unit per nanosecond; with
 * FW_ERANGE: quotas whose derived values would not fit the engine's integer
 * state (the messages in docs/algorithms.md list the bounds).
 */
FW_API int fw_quota_init(fw_quota_t *q, fw_algorithm_t algorithm, int64_t rate,
                         int64_t period_ns, int64_t burst);

/* One decision, identical in meaning on every algorithm and store. */
typedef struct fw_decision {
    int allowed;            /* 1 admitted, 0 denied                           */
    int64_t limit;          /* capacity                                       */
    int64_t remaining;      /* whole units still admissible now, after this   */
    int64_t retry_after_ns; /* 0 if allowed; else exact wait for this request */
    int64_t reset_after_ns; /* until the key is back to full capacity          */
    int64_t delay_ns;       /* shaping only: wait before proceeding            */
} fw_decision_t;

/*
 * The pure step of a 64-bit-state algorithm (every algorithm except
 * FW_SLIDING_LOG): given `state` (0 is a fresh key) at time `now`, decide a
 * request of `cost` units and write the state to keep into *next. A denial
 * consumes nothing: *next is `state`, or, when `state` was not one the
 * algorithm can produce at `now` (too far ahead: a clock excursion; or
 * impossible: damage), its repaired form (docs/algorithms.md, "States the
 * engine does not trust"). cost == 0 is a peek: it reports whether one unit
 * would be admitted, answers from the repaired form, and *next is `state`.
 * Errors: FW_EINVAL (bad argument), FW_ECOST (cost > burst).
 */
FW_API int fw_algo_step(const fw_quota_t *q, uint64_t state, int64_t now,
                        int64_t cost, uint64_t *next, fw_decision_t *d);

/* When `state` becomes indistinguishable from a fresh key (ns, absolute). */
FW_API int64_t fw_algo_fresh_at(const fw_quota_t *q, uint64_t state);

/*
 * Undo a consumption of `cost` units made by fw_algo_step at time `at`
 * (used to roll back an all-or-nothing check). Returns the refunded state.
 */
FW_API uint64_t fw_algo_refund(const fw_quota_t *q, uint64_t state, int64_t at,
                               int64_t cost);

/* ---- sliding log ---------------------------------------------------------- */

/* One log entry: `cost` units admitted at time `t`. */
typedef struct fw_log_entry {
    int64_t t;
    int64_t cost;
} fw_log_entry_t;

/* A bounded ring of entries, oldest first; storage owned by the caller.
 * A zeroed log (entries and capacity set) is empty. The step keeps `units`
 * and `unchecked`; a log whose `units` disagree with its entries is
 * recounted (O(len)), as it is every `burst` commits. */
typedef struct fw_log {
    fw_log_entry_t *entries; /* capacity slots                                */
    uint32_t capacity;       /* >= quota burst                                */
    uint32_t head;           /* index of the oldest entry                     */
    uint32_t len;            /* number of entries                             */
    uint32_t unchecked;      /* commits since the entries were last counted   */
    int64_t units;           /* running total: the units the entries hold     */
} fw_log_t;

/* The sliding-log step: same contract as fw_algo_step, on a log in place
 * (a check with cost >= 1 may repair entries in place; a peek never
 * writes). FW_EINVAL when the ring position is outside the ring. */
FW_API int fw_log_step(const fw_quota_t *q, fw_log_t *log, int64_t now,
                       int64_t cost, fw_decision_t *d);

/* Remove up to `cost` units appended at time `at` (rollback). */
FW_API void fw_log_refund(fw_log_t *log, int64_t at, int64_t cost);

/* ---- clocks ---------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns (in-process stores). */
FW_API int64_t fw_clock_monotonic_ns(void);
/* CLOCK_REALTIME in ns, clamped to >= 0 (shared and file stores). */
FW_API int64_t fw_clock_realtime_ns(void);
/* The same clocks as a check reads them: interpolated from the TSC between
 * clock_gettime anchors taken every millisecond where the kernel's clock
 * source is the TSC (within tens of ns of the clock; see src/clock.c),
 * else clock_gettime. FLOODWALL_CLOCK=syscall: always clock_gettime. */
FW_API int64_t fw_clock_monotonic_fast_ns(void);
FW_API int64_t fw_clock_realtime_fast_ns(void);
/* 1 when the _fast clocks interpolate from the TSC in this process. */
FW_API int fw_clock_fast_interpolates(void);

/* ---- the slot table -------------------------------------------------------- */

/*
 * A fixed-capacity table of per-key algorithm states. Thread-safe; when its
 * memory is shared (shm, file), process-safe: single-key updates are one
 * 16-byte compare-and-swap, so a process killed at any instruction leaves
 * every key valid.
 */
typedef struct fw_table fw_table_t;

/* A limit as the table sees it: a quota plus a 64-bit namespace that keeps
 * the keys of different limits apart in one table. */
typedef struct fw_limit {
    fw_quota_t quota;
    uint64_t namespace_id;
} fw_limit_t;

/*
 * The namespace id of limit number `index` of a limiter: the rule that
 * defines key identity. A key is the same key, in every process and after
 * a restart, exactly when (user namespace bytes, algorithm, rate, period,
 * burst, index) are equal; any difference gives another id (a 64-bit keyed
 * hash of them), so changing a limit starts its keys afresh.
 */
FW_API uint64_t fw_namespace_id(const char *ns, size_t ns_len, const fw_quota_t *q,
                                uint64_t index);

/* One part of an all-or-nothing check. The key bytes are borrowed. */
typedef struct fw_request {
    const fw_limit_t *limit;
    const void *key;
    size_t key_len;
} fw_request_t;

/*
 * max_keys is exact: a table holds max_keys keys, always, and refuses a new
 * key (FW_EFULL) only while max_keys keys are live; keys whose state is back
 * to fresh are reclaimed for new ones. A fixed table has
 * 2 * next_pow2(max_keys) slots (at least 64), probed linearly.
 */
typedef struct fw_table_options {
    uint64_t max_keys;     /* the most live keys it holds                    */
    uint32_t log_capacity; /* 0, or the largest sliding_log burst served     */
} fw_table_options_t;

/* Bytes needed for a fixed table with these options (header + slots). */
FW_API int fw_table_size(const fw_table_options_t *opt, size_t *bytes);

/* A fixed table in anonymous process memory. */
FW_API int fw_table_open_memory(fw_table_t **out, const fw_table_options_t *opt);

/*
 * A growing table in anonymous process memory (the memory:// store): it
 * starts with 64 slots and is rebuilt twice as large when half full (keys
 * expired by then are dropped, so it also shrinks). max_keys is a cap, 0
 * for none (FW_MAX_KEYS_MAX). NOT thread-safe, unlike every other table:
 * its caller serialises all calls on it (the CPython extension holds the
 * GIL), since a rebuild moves every slot.
 */
FW_API int fw_table_open_growing(fw_table_t **out, const fw_table_options_t *opt);

/*
 * Lay out a new table in caller-provided zeroed memory of fw_table_size()
 * bytes (used by the shm and file stores), or attach to one already laid
 * out there, validating its header. `mem` must stay mapped until close.
 * Errors on attach: FW_EBADFILE (magic, checksum, sizes), FW_EVERSION.
 */
FW_API int fw_table_format(void *mem, size_t len, const fw_table_options_t *opt);
FW_API int fw_table_attach(fw_table_t **out, void *mem, size_t len);

/* Release the handle (and, for memory tables, the memory). NULL is a no-op. */
FW_API void fw_table_close(fw_table_t *t);

/*
 * Decide `n` (at most 64) requests all-or-nothing at time `now`, each
 * consuming `cost`. out[i] receives each part's decision. If any part
 * denies, nothing is consumed and *violated is the index of the denying
 * part with the longest retry_after (out[*violated] is its denial; the other
 * entries say what those parts decided, and any of them committed before a
 * concurrent request made a later part deny was rolled back); otherwise
 * *violated is n. cost 0 peeks and never consumes. Errors: FW_EINVAL,
 * FW_ECOST, FW_EFULL (no slot for a new key; nothing consumed), FW_EBUSY (a
 * lock it needed stayed held: nothing consumed; see "Locks" in
 * docs/design.md: the wait is bounded, 20 ms on a stopped owner, 200 ms in
 * all).
 *
 * Every stored state is first brought within what its algorithm can
 * produce at `now` (docs/algorithms.md): a state too far ahead of `now` (a
 * clock excursion) is clamped, and an impossible one is decided as full
 * and, on a check with cost >= 1, rewritten so; both are counted in
 * fw_table_stats.
 */
FW_API int fw_table_check(fw_table_t *t, const fw_request_t *reqs, size_t n,
                          int64_t cost, int64_t now, fw_decision_t *out,
                          size_t *violated);

/*
 * fw_table_check with a cost per part: part i consumes costs[i] (>= 0; a
 * part of cost 0 peeks and never writes, and denies when one unit would
 * not be admitted). All-or-nothing as fw_table_check: if any part denies,
 * nothing is consumed. FW_ECOST when a part's cost exceeds its capacity.
 */
FW_API int fw_table_check_costs(fw_table_t *t, const fw_request_t *reqs,
                                size_t n, const int64_t *costs, int64_t now,
                                fw_decision_t *out, size_t *violated);

/*
 * fw_table_check of one part (n == 1), the hot path of a limiter with one
 * rate: the same decision, errors and writes, with no arrays to fill.
 * flags: 0, or FW_CHECK_ALLOWED_ONLY: only out->allowed is set (the other
 * fields are unspecified), which spares the GCRA family the division of
 * `remaining` (an allow() asks nothing else). The state written is the
 * same either way.
 */
#define FW_CHECK_ALLOWED_ONLY 1u
FW_API int fw_table_check_one(fw_table_t *t, const fw_request_t *req, int64_t cost,
                              int64_t now, unsigned flags, fw_decision_t *out);

/* Forget one key of one limit. FW_EBUSY as fw_table_check (sliding logs). */
FW_API int fw_table_reset(fw_table_t *t, const fw_limit_t *limit,
                          const void *key, size_t key_len);

/* Forget every key. Not atomic with respect to concurrent checks. */
FW_API int fw_table_clear(fw_table_t *t);

typedef struct fw_table_stats {
    uint64_t slots;       /* slots in the table                              */
    uint64_t max_keys;    /* the requested capacity                          */
    uint64_t used;        /* slots holding a key                             */
    uint64_t active;      /* of those, keys not yet back to fresh at `now`   */
    uint64_t full_errors; /* FW_EFULL returned since the table was created   */
    uint64_t damaged_states;    /* impossible states found and repaired    */
    uint64_t clamped_states;    /* states too far ahead of now, clamped    */
    uint64_t last_damaged_slot; /* index + 1 of the latest damaged slot; 0 */
    uint64_t keys;        /* keys counted against max_keys (live, and
                             expired ones not yet reclaimed)                 */
    uint64_t retired;     /* slots freed by sweeps at the cap, since created */
} fw_table_stats_t;

FW_API int fw_table_stats(fw_table_t *t, int64_t now, fw_table_stats_t *st);

/* What a table is (constant while it is open). */
typedef struct fw_table_info {
    uint32_t version;      /* FW_TABLE_LAYOUT_VERSION                       */
    uint32_t slot_size;    /* bytes per slot                                */
    uint32_t log_capacity;
    uint64_t max_keys;
    uint64_t slots;
    uint64_t bytes;        /* header + slots                                */
    uint64_t created_ns;   /* CLOCK_REALTIME when it was formatted          */
    int shared;            /* 1: shm or file memory other processes may map */
    int blocking;          /* 1: a check may wait for the disk (sync)       */
    int grows;             /* 1: fw_table_open_growing (slots, bytes change) */
} fw_table_info_t;

FW_API int fw_table_info(fw_table_t *t, fw_table_info_t *info);

/* Read one key's state without consuming (a peek on the stored state). */
FW_API int fw_table_peek(fw_table_t *t, const fw_limit_t *limit,
                         const void *key, size_t key_len, int64_t now,
                         fw_decision_t *d);

/* ---- shared tables: shm:// and file:// --------------------------------------
 *
 * The slot table mapped from a POSIX shared-memory object (every process of
 * the host that opens the same name shares it) or from a file (shared too,
 * and still there after a restart). Opening creates the table when it does
 * not exist, race-free between processes; otherwise it validates the header
 * and never modifies an object it rejects. A shared table is released with
 * fw_table_close (which unmaps; it never removes the object). Such tables
 * are thread- and process-safe; fork()ed children may keep using a handle
 * opened before the fork.
 */

/* Durability of a file table's writes. */
typedef enum fw_sync {
    FW_SYNC_NONE = 0,     /* the kernel writes dirty pages back on its own    */
    FW_SYNC_INTERVAL = 1, /* at most one msync per sync_interval_ms, by the
                             check that finds the interval elapsed; and on close */
    FW_SYNC_ALWAYS = 2    /* msync of the touched page after every write: a
                             decision returns once its state is on disk       */
} fw_sync_t;

/* Options of fw_table_open_shm / fw_table_open_file. */
typedef struct fw_shared_options {
    /* max_keys: for a new table, its capacity (0 means FW_DEFAULT_MAX_KEYS);
     * for an existing one, 0 accepts its capacity, a value up to its
     * capacity is satisfied, a larger one fails with FW_EMISMATCH (a
     * table cannot grow in place). log_capacity: the same rule. */
    fw_table_options_t table;
    fw_sync_t sync;            /* files only; shm ignores it              */
    uint32_t sync_interval_ms; /* FW_SYNC_INTERVAL: >= 1                  */
    unsigned flags;            /* FW_OPEN_* below                         */
} fw_shared_options_t;

#define FW_OPEN_NOCREATE 1u /* fail (FW_EIO, ENOENT) rather than create    */

/* Why an open failed: filled on every error when the caller passes one. */
typedef struct fw_store_error {
    int sys_errno;     /* errno of the failed system call; 0 when the content
                          of the table is the problem                     */
    char message[384]; /* one line naming the object and what is wrong    */
} fw_store_error_t;

/*
 * Open (create, or attach to) the table in the POSIX shared-memory object
 * `name` ("NAME" or "/NAME": 1-200 characters, no '/'). Created with mode
 * 0600 and its memory reserved at once when the table is at most 4 GiB
 * (an undersized /dev/shm fails here with FW_EIO/ENOSPC instead of a SIGBUS
 * later; larger tables stay sparse). `err` may be NULL.
 * Errors: FW_EINVAL (bad name or options), FW_EIO (system call; see
 * err->sys_errno), FW_EBADFILE, FW_EVERSION, FW_EMISMATCH, FW_ENOMEM,
 * FW_EUNSAFE (see "who may own them" below).
 */
FW_API int fw_table_open_shm(fw_table_t **out, const char *name,
                             const fw_shared_options_t *opt,
                             fw_store_error_t *err);

/* Remove the shm object `name`; processes that have it open keep using it.
 * FW_EIO with err->sys_errno == ENOENT when there is none. */
FW_API int fw_table_unlink_shm(const char *name, fw_store_error_t *err);

/*
 * Open (create, or attach to) the table in the file `path`. A new file is
 * formatted under a temporary name in the same directory, made durable, and
 * linked into place, so no process ever sees a half-made table; missing
 * parent directories are created (mode 0700), the file has mode 0600 and
 * its blocks are allocated up front (tables of at most 4 GiB; larger ones
 * stay sparse). An existing file is validated (magic,
 * version, header checksum, sizes, length) and left untouched when
 * rejected. Errors as fw_table_open_shm.
 */
FW_API int fw_table_open_file(fw_table_t **out, const char *path,
                              const fw_shared_options_t *opt,
                              fw_store_error_t *err);

/* ---- shared tables: names and who may own them ------------------------------
 *
 * A table object belongs to the user the service runs as: an existing shm
 * object or file (or a symbolic link at the table's path) that another user
 * owns, or that group or others can write, is refused with FW_EUNSAFE
 * (sys_errno 0; the message names the path, owner, mode and the fix) and
 * never modified. So is a table, existing or not, whose directory another
 * user could replace it in: a directory owned by neither this user nor
 * root, or that group or others can write without the sticky bit (/tmp and
 * /dev/shm are fine); it is checked on the opened directory, which every
 * later step names the table relative to. Symbolic links at a table's path are never followed. An
 * existing object is only ever used when complete: floodwall makes a table
 * whole under a temporary name (".BASE.new-PID-XXXXXX", mode 0600) and
 * links it into place, so it never "finishes" an object it finds; it
 * removes such temporaries left by dead creators (stale ones only; see
 * docs/stores.md). Linux: shm objects are the files of FW_SHM_DIR.
 */
#define FW_SHM_DIR "/dev/shm"

/* The path of the shm object `name` ("NAME" or "/NAME": 1-200 printable
 * ASCII characters, no space or '/', not "." or "..", not of a temporary's
 * form) into out[cap]: the one check of shm names, used by the store, the
 * doctor and inspection. FW_EINVAL with err->message saying why. */
FW_API int fw_shm_path(const char *name, char *out, size_t cap, fw_store_error_t *err);

/* ---- inspection (never consumes; for the CLI and operators) ------------------
 *
 * The table stores 128-bit keyed fingerprints, never keys: a slot tells its
 * fingerprint, which a caller matches with fw_table_fingerprint of a
 * candidate key.
 */

typedef struct fw_slot_info {
    uint64_t index;          /* slot number                                 */
    uint64_t fingerprint[2]; /* {low, high} halves                          */
    uint64_t state;          /* raw 64-bit algorithm state (0 = fresh)      */
    int64_t expiry_ns;       /* the state is back to fresh at this time     */
    uint32_t log_len;        /* sliding-log tables: entries held            */
    int present;             /* 1 when the slot holds the key asked for     */
    int64_t damaged_ns;      /* `now` of the latest impossible state found
                                here (repaired as full), 0 if none          */
} fw_slot_info_t;

/* The fingerprint this table gives `key` under `limit`. */
FW_API int fw_table_fingerprint(fw_table_t *t, const fw_limit_t *limit,
                                const void *key, size_t key_len,
                                uint64_t fingerprint[2]);

/* One key's slot (info->present == 0 when the key has none) and, if `d` is
 * not NULL, the decision a peek would give at `now`. Writes nothing. */
FW_API int fw_table_inspect(fw_table_t *t, const fw_limit_t *limit,
                            const void *key, size_t key_len, int64_t now,
                            fw_slot_info_t *info, fw_decision_t *d);

/* The up to `cap` slots whose state stays away from fresh the longest
 * (furthest expiry after `now`), furthest first; *n receives the count. One
 * pass over the table: O(slots * log cap). */
FW_API int fw_table_hottest(fw_table_t *t, int64_t now, fw_slot_info_t *out,
                            size_t cap, size_t *n);

/* The slots where a check found an impossible state (since the slot last
 * changed hands), in slot order: the first min(cap, *n) are written to
 * `out`, and *n receives how many there are. One pass; never writes. */
FW_API int fw_table_damaged(fw_table_t *t, fw_slot_info_t *out, size_t cap,
                            size_t *n);

/* What fw_table_doctor found. */
typedef struct fw_doctor_report {
    int status;          /* 0 healthy, else the FW_E* code of the problem   */
    int sys_errno;       /* when status is FW_EIO                           */
    char problem[384];   /* the first problem, naming the path; "" if none  */
    uint32_t version, slot_size, log_capacity;
    uint64_t max_keys, slots;
    uint64_t file_bytes, expected_bytes;
    uint64_t used;        /* slots holding a key                           */
    uint64_t active;      /* of those, not yet fresh at `now`              */
    uint64_t bad_slots;   /* slots whose content is impossible             */
    uint64_t stale_locks; /* locks held by dead processes (taken over on use) */
    uint64_t held_locks;  /* locks held by live processes                  */
    uint64_t full_errors;
    uint64_t first_bad_slot; /* index, when bad_slots > 0                  */
    uint64_t keys;        /* keys counted against max_keys (the fill)      */
} fw_doctor_report_t;

/*
 * Check the table file at `path` (a shm object is the file
 * /dev/shm/NAME on Linux: see fw_shm_path) read-only: header, sizes, and
 * every slot's content. Returns rep->status: 0 when healthy; FW_EIO (cannot
 * read it), FW_EBADFILE (also: not a regular file), FW_EVERSION, FW_EUNSAFE
 * (a symbolic link, writable by group/others, or in a directory that lets
 * a user other than the table's owner or root replace it: the stores
 * refuse it)
 * otherwise, with rep->problem saying what. Never writes, never blocks:
 * the type is checked before opening (a FIFO or device is never opened)
 * and the final component is not followed.
 */
FW_API int fw_table_doctor(const char *path, int64_t now, fw_doctor_report_t *rep);

#ifdef __cplusplus
}
#endif
#endif /* FLOODWALL_H */
