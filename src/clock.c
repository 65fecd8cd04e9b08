/*
 * clock.c - the engine's clocks, in int64 nanoseconds.
 *
 * fw_clock_monotonic_ns / fw_clock_realtime_ns are clock_gettime. The
 * _fast twins are what a check reads: clock_gettime costs about 20 ns on a
 * virtual machine (the vDSO orders its TSC read with a fence), as much as
 * half a dict update, so where the kernel's own clock source is the TSC
 * (constant and non-stop), they interpolate between anchors: a bare rdtsc
 * (about 9 ns) scaled from the last anchor, an anchor being one
 * clock_gettime with its TSC, taken again every ANCHOR_NS. The scale is
 * measured between two anchors (at least CALIBRATE_NS apart), so the
 * interpolated time is within about (fence-free read skew) / ANCHOR_NS of
 * the clock, tens of nanoseconds, and is the clock itself at each anchor.
 * Elsewhere (no TSC, another clock source, FLOODWALL_CLOCK=syscall) the
 * _fast twins are clock_gettime.
 *
 * Invariant: results are >= 0 and saturate instead of overflowing. Readers
 * take no lock and make no atomic read-modify-write: the anchor is a
 * seqlock whose one writer (the thread whose compare-and-swap takes it)
 * publishes a consistent (TSC, time, scale); a reader that sees it change,
 * or a TSC outside its span, reads clock_gettime instead. The interpolated
 * clock may step back by that small error at an anchor; decisions treat a
 * clock that steps back as every algorithm already must.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "floodwall.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <x86intrin.h>
#define FW_TSC 1
#else
#define FW_TSC 0
#endif

static int64_t timespec_ns(const struct timespec *ts)
{
    if (ts->tv_sec < 0)
        return 0;
    if (ts->tv_sec > (INT64_MAX - ts->tv_nsec) / 1000000000)
        return INT64_MAX;
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t syscall_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return timespec_ns(&ts);
}

int64_t fw_clock_monotonic_ns(void)
{
    return syscall_ns(CLOCK_MONOTONIC);
}

int64_t fw_clock_realtime_ns(void)
{
    return syscall_ns(CLOCK_REALTIME);
}

#if FW_TSC

/* Anchor again after this long (ns), and calibrate over at least this. */
#define ANCHOR_NS 1000000
#define CALIBRATE_NS 100000
/* Ticks per ns the scale may say (a TSC of 100 MHz to 10 GHz). */
#define SCALE_MIN ((uint64_t)1 << 28)        /* 0.0625 ns per tick */
#define SCALE_MAX ((uint64_t)12 << 32)        /* 12 ns per tick */

typedef struct tsc_clock {
    uint64_t seq;       /* even: the fields below are consistent */
    uint64_t base_tsc;  /* the anchor's TSC, 0 before the first */
    int64_t base_ns;    /* the clock at the anchor */
    uint64_t scale;     /* ns per tick, 32.32 fixed point; 0: not yet measured */
    uint64_t until_tsc; /* interpolate below this TSC only */
} tsc_clock_t;

static tsc_clock_t clocks[2]; /* [0] CLOCK_MONOTONIC, [1] CLOCK_REALTIME */
static int usable;            /* 0: not known yet, 1: the TSC serves, -1: it does not */

/* Does `path`'s text contain `word` (a whole word)? */
static int file_has_word(const char *path, const char *word)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    size_t n = strlen(word);
    int found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        for (char *p = strstr(line, word); p; p = strstr(p + 1, word)) {
            int before = p == line || p[-1] == ' ' || p[-1] == '\t';
            char after = p[n];
            if (before && (after == ' ' || after == '\n' || after == '\0')) {
                found = 1;
                break;
            }
        }
    }
    fclose(f);
    return found;
}

/* The TSC serves when the kernel keeps time with it (so it is synchronised
 * across CPUs and does not stop) and the CPU says it runs at a constant
 * rate; FLOODWALL_CLOCK=syscall turns it off. */
static int tsc_usable(void)
{
    int u = __atomic_load_n(&usable, __ATOMIC_RELAXED);
    if (u)
        return u > 0;
    const char *env = getenv("FLOODWALL_CLOCK");
    u = (!env || strcmp(env, "syscall") != 0) &&
        file_has_word("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                      "tsc") &&
        file_has_word("/proc/cpuinfo", "constant_tsc") &&
        file_has_word("/proc/cpuinfo", "nonstop_tsc");
    __atomic_store_n(&usable, u ? 1 : -1, __ATOMIC_RELAXED);
    return u;
}

/* Read the clock, and make it the anchor if this thread can take the
 * writer's turn (`seq`: the even sequence number it last saw). */
static int64_t anchor(tsc_clock_t *c, clockid_t id, uint64_t seq)
{
    int64_t now = syscall_ns(id);
    uint64_t tsc = __rdtsc();
    if ((seq & 1) || !__atomic_compare_exchange_n(&c->seq, &seq, seq + 1, 0,
                                                  __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return now; /* another thread anchors */
    uint64_t base_tsc = c->base_tsc, scale = c->scale;
    int64_t base_ns = c->base_ns;
    if (base_tsc && tsc > base_tsc && now > base_ns) {
        if (now - base_ns < CALIBRATE_NS && scale == 0) {
            /* too soon to measure the scale: keep the first anchor */
            __atomic_store_n(&c->seq, seq + 2, __ATOMIC_RELEASE);
            return now;
        }
        if (now - base_ns >= CALIBRATE_NS) {
            unsigned __int128 s = ((unsigned __int128)(uint64_t)(now - base_ns) << 32) /
                                  (tsc - base_tsc);
            scale = s >= SCALE_MIN && s <= SCALE_MAX ? (uint64_t)s : 0;
        }
    } else {
        scale = 0; /* the first anchor, or the TSC or the clock went back */
    }
    uint64_t span = scale ? (uint64_t)(((unsigned __int128)ANCHOR_NS << 32) / scale) : 0;
    __atomic_store_n(&c->base_tsc, tsc, __ATOMIC_RELAXED);
    __atomic_store_n(&c->base_ns, now, __ATOMIC_RELAXED);
    __atomic_store_n(&c->scale, scale, __ATOMIC_RELAXED);
    __atomic_store_n(&c->until_tsc, tsc + span, __ATOMIC_RELAXED);
    __atomic_store_n(&c->seq, seq + 2, __ATOMIC_RELEASE);
    return now;
}

static int64_t interpolated_ns(tsc_clock_t *c, clockid_t id)
{
    uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
    uint64_t base_tsc = __atomic_load_n(&c->base_tsc, __ATOMIC_RELAXED);
    int64_t base_ns = __atomic_load_n(&c->base_ns, __ATOMIC_RELAXED);
    uint64_t scale = __atomic_load_n(&c->scale, __ATOMIC_RELAXED);
    uint64_t until = __atomic_load_n(&c->until_tsc, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint64_t tsc = __rdtsc();
    if ((seq & 1) || tsc < base_tsc || tsc >= until ||
        __atomic_load_n(&c->seq, __ATOMIC_RELAXED) != seq)
        return anchor(c, id, seq);
    uint64_t d = (uint64_t)(((unsigned __int128)(tsc - base_tsc) * scale) >> 32);
    return d > (uint64_t)(INT64_MAX - base_ns) ? INT64_MAX : base_ns + (int64_t)d;
}

int64_t fw_clock_monotonic_fast_ns(void)
{
    return tsc_usable() ? interpolated_ns(&clocks[0], CLOCK_MONOTONIC)
                        : syscall_ns(CLOCK_MONOTONIC);
}

int64_t fw_clock_realtime_fast_ns(void)
{
    return tsc_usable() ? interpolated_ns(&clocks[1], CLOCK_REALTIME)
                        : syscall_ns(CLOCK_REALTIME);
}

int fw_clock_fast_interpolates(void)
{
    return tsc_usable();
}

#else /* no TSC to read: the _fast clocks are clock_gettime */

int64_t fw_clock_monotonic_fast_ns(void)
{
    return syscall_ns(CLOCK_MONOTONIC);
}

int64_t fw_clock_realtime_fast_ns(void)
{
    return syscall_ns(CLOCK_REALTIME);
}

int fw_clock_fast_interpolates(void)
{
    return 0;
}

#endif
