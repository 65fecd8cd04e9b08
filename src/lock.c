/*
 * lock.c - locks that a dead, reborn or stopped process cannot hold for
 * ever (the insert stripes and the per-slot locks of the slot table).
 *
 * Invariant: an owner is a process incarnation (pid and start time), so a
 * reused pid is never mistaken for the owner; a word no owner can write is
 * taken over at once; no wait outlasts FWI_LOCK_STALL_NS while a stopped
 * owner holds the lock, nor FWI_LOCK_WAIT_MAX_NS in all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "floodwall.h"
#include "lock.h"

#define START_MASK (((uint64_t)1 << FWI_LOCK_START_BITS) - 1)
#define COUNTER_MASK (((uint64_t)1 << FWI_LOCK_START_SHIFT) - 1)
#define SPINS 64
#define YIELDS 64

uint64_t fwi_lock_word(uint64_t pid, uint64_t start_ticks, uint64_t counter)
{
    return (pid << FWI_LOCK_PID_SHIFT) |
           ((start_ticks & START_MASK) << FWI_LOCK_START_SHIFT) |
           (counter & COUNTER_MASK);
}

static uint64_t word_pid(uint64_t w) { return w >> FWI_LOCK_PID_SHIFT; }
static uint64_t word_start(uint64_t w) { return (w >> FWI_LOCK_START_SHIFT) & START_MASK; }

/* ---- what /proc says about a process ----------------------------------------- */

typedef struct proc_view {
    int readable;     /* /proc/<pid>/stat was read                    */
    char state;       /* R S D T t Z X ...                            */
    uint64_t start;   /* start time in clock ticks since boot         */
} proc_view_t;

static proc_view_t proc_read(uint64_t pid)
{
    proc_view_t v = {0, '?', 0};
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%llu/stat", (unsigned long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return v;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return v;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold anything */
    if (!p || p[1] != ' ' || !p[2])
        return v;
    v.state = p[2];
    p += 2;
    for (int field = 3; field < 22 && p; field++) { /* starttime is field 22 */
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (!p)
        return v;
    v.start = strtoull(p, NULL, 10);
    v.readable = 1;
    return v;
}

static uint64_t pid_max_cached;

static uint64_t pid_max_read(void)
{
    uint64_t m = FWI_LOCK_PID_LIMIT;
    FILE *f = fopen("/proc/sys/kernel/pid_max", "re");
    if (f) {
        unsigned long long v;
        if (fscanf(f, "%llu", &v) == 1 && v >= 2 && v <= FWI_LOCK_PID_LIMIT)
            m = v;
        fclose(f);
    }
    __atomic_store_n(&pid_max_cached, m, __ATOMIC_RELAXED);
    return m;
}

/* Can `pid` name a process? A pid at or above the cached pid_max is
 * checked against a fresh read (an administrator may have raised it). */
static int pid_possible(uint64_t pid)
{
    if (pid == 0)
        return 0;
    uint64_t m = __atomic_load_n(&pid_max_cached, __ATOMIC_RELAXED);
    if (m && pid < m)
        return 1;
    return pid < pid_max_read();
}

/* ---- this process's identity ------------------------------------------------- */

/* getpid() and /proc/self are system calls: cache the identity, and forget it
 * in a forked child (the only way a process's pid changes). */
static uint64_t self_ident; /* fwi_lock_word(pid, start, 0) */
static uint64_t counter;
static pthread_once_t fork_hook_once = PTHREAD_ONCE_INIT;

static void forget_self(void) { __atomic_store_n(&self_ident, 0, __ATOMIC_RELAXED); }
static void install_fork_hook(void) { pthread_atfork(NULL, NULL, forget_self); }

static uint64_t self_word(void)
{
    uint64_t id = __atomic_load_n(&self_ident, __ATOMIC_RELAXED);
    if (id == 0) {
        pthread_once(&fork_hook_once, install_fork_hook);
        uint64_t pid = (uint64_t)getpid();
        proc_view_t v = proc_read(pid);
        id = fwi_lock_word(pid, v.readable ? v.start : 0, 0);
        __atomic_store_n(&self_ident, id, __ATOMIC_RELAXED);
    }
    /* a load and a store, not a locked read-modify-write: two threads may
     * draw the same count, which only makes a waiter miss one hand-over
     * within this process (its bounds stand: FWI_LOCK_WAIT_MAX_NS) */
    uint64_t c = __atomic_load_n(&counter, __ATOMIC_RELAXED);
    __atomic_store_n(&counter, c + 1, __ATOMIC_RELAXED);
    return id | (c & COUNTER_MASK);
}

uint64_t fwi_lock_self(void)
{
    return self_word() & ~COUNTER_MASK;
}

/* fwi_lock_owner; *stopped (when not NULL) says whether a live owner is
 * stopped (SIGSTOP, a debugger, a frozen cgroup: state T or t). */
static fwi_lock_owner_t classify(uint64_t word, int *stopped)
{
    if (stopped)
        *stopped = 0;
    if (word == 0)
        return FWI_LOCK_FREE;
    uint64_t pid = word_pid(word);
    if (!pid_possible(pid))
        return FWI_LOCK_INVALID;
    if (kill((pid_t)pid, 0) == -1 && errno == ESRCH)
        return FWI_LOCK_DEAD;
    proc_view_t v = proc_read(pid);
    if (!v.readable)
        return FWI_LOCK_LIVE; /* no /proc (or hidden): trust kill() */
    if (v.state == 'Z' || v.state == 'X')
        return FWI_LOCK_DEAD; /* exited, not yet reaped */
    if (word_start(word) != 0 && word_start(word) != (v.start & START_MASK))
        return FWI_LOCK_DEAD; /* the pid now names another process */
    if (stopped)
        *stopped = v.state == 'T' || v.state == 't';
    return FWI_LOCK_LIVE;
}

fwi_lock_owner_t fwi_lock_owner(uint64_t word) { return classify(word, NULL); }

/* ---- acquiring --------------------------------------------------------------- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int take(uint64_t *word, uint64_t expected, uint64_t me)
{
    return __atomic_compare_exchange_n(word, &expected, me, 0, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

int fwi_lock_try(uint64_t *word)
{
    uint64_t me = self_word();
    if (take(word, 0, me))
        return 1;
    uint64_t cur = __atomic_load_n(word, __ATOMIC_RELAXED);
    fwi_lock_owner_t o = fwi_lock_owner(cur);
    return (o == FWI_LOCK_DEAD || o == FWI_LOCK_INVALID || o == FWI_LOCK_FREE) &&
           take(word, cur, me);
}

int fwi_lock_acquire(uint64_t *word)
{
    uint64_t me = self_word();
    int64_t start = 0, held_since = 0;
    uint64_t last = 0;
    long sleep_ns = 20 * 1000;
    int stopped = 0;
    for (unsigned i = 0;; i++) {
        uint64_t cur = __atomic_load_n(word, __ATOMIC_RELAXED);
        if (cur == 0) {
            if (take(word, 0, me))
                return 0;
            continue;
        }
        if (!pid_possible(word_pid(cur))) {
            if (take(word, cur, me)) /* no owner could have written it */
                return 0;
            continue;
        }
        if (i < SPINS) {
            cpu_relax();
            continue;
        }
        int64_t now = fw_clock_monotonic_ns();
        if (start == 0)
            start = now;
        if (cur != last) { /* the lock changed hands: progress */
            last = cur;
            held_since = now;
        }
        /* the owner is looked at once when the spinning ends (a dead one's
         * word is taken over at once, however busy the machine), then on
         * every step from half way through the yields */
        if (i == SPINS || i >= SPINS + YIELDS / 2) {
            fwi_lock_owner_t o = classify(cur, &stopped);
            if ((o == FWI_LOCK_DEAD || o == FWI_LOCK_INVALID) && take(word, cur, me))
                return 0;
        }
        /* a stopped owner will not release soon; a running one (preempted,
         * waiting for the disk) may: it gets the whole bound */
        int64_t stall = stopped ? FWI_LOCK_STALL_NS : FWI_LOCK_WAIT_MAX_NS;
        if (now - held_since >= stall || now - start >= FWI_LOCK_WAIT_MAX_NS)
            return FW_EBUSY;
        if (i < SPINS + YIELDS) {
            sched_yield();
        } else {
            struct timespec ts = {0, sleep_ns};
            nanosleep(&ts, NULL);
            if (sleep_ns < 1000 * 1000)
                sleep_ns *= 2;
        }
    }
}

void fwi_lock_release(uint64_t *word)
{
    __atomic_store_n(word, 0, __ATOMIC_RELEASE);
}
