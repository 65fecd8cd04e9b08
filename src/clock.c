/*
 * clock.c - the engine's clocks, in int64 nanoseconds.
 * Invariant: results are >= 0 and saturate instead of overflowing.
 */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "floodwall.h"

static int64_t timespec_ns(const struct timespec *ts)
{
    if (ts->tv_sec < 0)
        return 0;
    if (ts->tv_sec > (INT64_MAX - ts->tv_nsec) / 1000000000)
        return INT64_MAX;
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

int64_t fw_clock_monotonic_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return timespec_ns(&ts);
}

int64_t fw_clock_realtime_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return timespec_ns(&ts);
}
