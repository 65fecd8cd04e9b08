/*
 * test_clock.c - the clocks a check reads (src/clock.c): the _fast clocks
 * stay within a few microseconds of clock_gettime, read before and after
 * them, on 4 threads at once for a quarter of a second each, across many
 * anchors; within one thread they never step back by more than a
 * microsecond; and they are plain clock_gettime where the TSC does not
 * serve (FLOODWALL_CLOCK=syscall: ctest runs it so too). Prints whether
 * they interpolate on this machine.
 *
 * Invariant checked: every reading lies in [before - SLACK, after + SLACK].
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "floodwall.h"

/* How far a reading may stray from the clock read around it (ns). */
#define SLACK_NS 5000
#define BACK_NS 1000
#define RUN_NS 250000000LL

typedef struct reader {
    int realtime;
    uint64_t reads, outside, back;
    int64_t worst_out, worst_back;
} reader_t;

static int64_t slow(int realtime)
{
    return realtime ? fw_clock_realtime_ns() : fw_clock_monotonic_ns();
}

static int64_t fast(int realtime)
{
    return realtime ? fw_clock_realtime_fast_ns() : fw_clock_monotonic_fast_ns();
}

static void *read_run(void *arg)
{
    reader_t *r = arg;
    int64_t start = fw_clock_monotonic_ns(), last = 0;
    for (uint64_t i = 0;; i++) {
        if ((i & 1023) == 0 && fw_clock_monotonic_ns() - start > RUN_NS)
            break;
        int64_t before = slow(r->realtime);
        int64_t t = fast(r->realtime);
        int64_t after = slow(r->realtime);
        r->reads++;
        int64_t out = t < before ? before - t : t > after ? t - after : 0;
        if (out > SLACK_NS)
            r->outside++;
        if (out > r->worst_out)
            r->worst_out = out;
        if (last && t < last) {
            if (last - t > BACK_NS)
                r->back++;
            if (last - t > r->worst_back)
                r->worst_back = last - t;
        }
        last = t;
        /* some reads far apart, so that anchors are taken mid-run */
        if ((i & 8191) == 0) {
            struct timespec nap = {0, 300000};
            nanosleep(&nap, NULL);
        }
    }
    return NULL;
}

static void test_clock_tracks(int realtime)
{
    reader_t r[4] = {{0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i].realtime = realtime;
        pthread_create(&th[i], NULL, read_run, &r[i]);
    }
    int64_t worst_out = 0, worst_back = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        worst_out = r[i].worst_out > worst_out ? r[i].worst_out : worst_out;
        worst_back = r[i].worst_back > worst_back ? r[i].worst_back : worst_back;
        CHECK(r[i].reads > 1000, "thread %d read only %" PRIu64 " times", i, r[i].reads);
        CHECK(r[i].outside == 0,
              "%s: %" PRIu64 " of %" PRIu64 " readings more than %d ns outside "
              "clock_gettime around them (worst %" PRId64 " ns)",
              realtime ? "realtime" : "monotonic", r[i].outside, r[i].reads, SLACK_NS,
              r[i].worst_out);
        CHECK(r[i].back == 0,
              "%s: %" PRIu64 " steps back of more than %d ns (worst %" PRId64 " ns)",
              realtime ? "realtime" : "monotonic", r[i].back, BACK_NS, r[i].worst_back);
    }
    printf("%s: at most %" PRId64 " ns outside clock_gettime, %" PRId64 " ns back\n",
           realtime ? "realtime" : "monotonic", worst_out, worst_back);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("the _fast clocks %s\n", fw_clock_fast_interpolates()
                                        ? "interpolate from the TSC here"
                                        : "are clock_gettime here");
    const char *env = getenv("FLOODWALL_CLOCK");
    if (env && strcmp(env, "syscall") == 0)
        CHECK(!fw_clock_fast_interpolates(), "FLOODWALL_CLOCK=syscall is not obeyed");
    test_clock_tracks(0);
    test_clock_tracks(1);
    return check_summary();
}
