/*
 * lock.h - the engine's locks that no dead, reborn or stopped process can
 * hold for ever: a 64-bit word naming its owner's incarnation.
 * Invariant: every wait is bounded (FWI_LOCK_STALL_NS on a stopped owner,
 * FWI_LOCK_WAIT_MAX_NS in all); a word whose owner is gone, is another
 * process that reuses the pid, or cannot have been written by any owner is
 * taken over.
 */
#ifndef FWI_LOCK_H
#define FWI_LOCK_H

#include <stdint.h>

/* Lock word layout (0 = free):
 *   bits 42..63  pid of the owner (1 .. pid_max, and pid_max <= 2^22)
 *   bits 16..41  the owner's start time (clock ticks since boot, low 26 bits)
 *   bits  0..15  an acquisition counter of the owner, so a waiter sees that
 *                the lock changed hands even within one process (counted
 *                without a locked instruction: two threads may draw the same) */
#define FWI_LOCK_PID_SHIFT 42
#define FWI_LOCK_START_SHIFT 16
#define FWI_LOCK_START_BITS 26
#define FWI_LOCK_PID_LIMIT ((uint64_t)1 << 22)

/* A waiter gives up with FW_EBUSY when a stopped owner (state T or t) has
 * held the lock this long, or after this long in all (a running owner:
 * preempted, or waiting for the disk; or owners changing, never this one). */
#define FWI_LOCK_STALL_NS ((int64_t)20 * 1000 * 1000)
#define FWI_LOCK_WAIT_MAX_NS ((int64_t)200 * 1000 * 1000)

/* What a lock word says about its owner. */
typedef enum fwi_lock_owner {
    FWI_LOCK_FREE = 0,
    FWI_LOCK_LIVE = 1,    /* held by a live process (running or stopped)   */
    FWI_LOCK_DEAD = 2,    /* its owner is gone, or its pid was reused      */
    FWI_LOCK_INVALID = 3  /* no owner could have written this word         */
} fwi_lock_owner_t;

/* Take the lock, waiting a bounded time: 0, or FW_EBUSY. */
int fwi_lock_acquire(uint64_t *word);
/* Take the lock if it is free or its owner is dead; never waits. 1 taken. */
int fwi_lock_try(uint64_t *word);
void fwi_lock_release(uint64_t *word);

/* Classify a word (reads /proc for a live pid; never writes). */
fwi_lock_owner_t fwi_lock_owner(uint64_t word);

/* This process's identity word (acquisition counter 0). */
uint64_t fwi_lock_self(void);

/* The word a process with this pid and start time writes (tests, doctor). */
uint64_t fwi_lock_word(uint64_t pid, uint64_t start_ticks, uint64_t counter);

#endif
