/*
 * locked_cas.c - what one locked 16-byte CAS costs on this machine: the
 * floor of a shm:// or file:// commit (docs/design.md, "The sliding log,
 * and locked instructions"), against the plain load and store a growing
 * memory:// table commits with, and against an 8-byte locked CAS (any
 * atomic read-modify-write costs about the same: a single-word commit
 * would not be cheaper). Eight slots on two cache lines, visited in turn,
 * each read and written back plus one; prints ns per update, three rounds.
 *
 *     cc -O2 -mcx16 -o /tmp/locked_cas bench/locked_cas.c && taskset -c 1 /tmp/locked_cas
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

typedef unsigned __int128 u128;

static _Alignas(64) u128 slots[8];
static _Alignas(64) uint64_t words[8];

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(void)
{
    const int n = 20 * 1000 * 1000;
    for (int round = 0; round < 3; round++) {
        double t0 = now_ns();
        for (int i = 0; i < n; i++) {
            u128 cur = slots[i & 7];
            slots[i & 7] = cur + 1;
            __asm__ volatile("" ::: "memory"); /* keep every store */
        }
        double t1 = now_ns();
        for (int i = 0; i < n; i++) {
            u128 cur = slots[i & 7];
            __sync_val_compare_and_swap(&slots[i & 7], cur, cur + 1);
        }
        double t2 = now_ns();
        for (int i = 0; i < n; i++) {
            uint64_t cur = words[i & 7];
            __sync_val_compare_and_swap(&words[i & 7], cur, cur + 1);
        }
        double t3 = now_ns();
        printf("plain load and store %.2f ns, lock cmpxchg16b %.2f ns, lock cmpxchg %.2f ns\n",
               (t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / n);
    }
    return 0;
}
