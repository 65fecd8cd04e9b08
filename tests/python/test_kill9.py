# kill -9 at random moments: children hammering a shm:// or file:// table
# (opening it, inserting keys, reclaiming expired slots, sliding logs under
# their locks, resets) are SIGKILLed 200 times. Afterwards the table must be
# healthy (doctor), no key may be stuck, and the exactness test must still
# pass (locks left by the dead are taken over).
from __future__ import annotations

import os
import random
import signal
import time

from test_shared_stores import count_admitted

import floodwall
from floodwall import ops
from floodwall.stores import shared

KILLS = 200
KEYS = 80  # x 3 limiters: within max_keys=256
HOUR_NS = 3600 * 10**9


def _child(url: str, seed: int) -> None:
    """Hammer the table until killed; never returns."""
    shared.forget()  # map it afresh, as a new worker process would
    rng = random.Random(seed)
    # the store's own clock, shared by every process: short rates make keys
    # expire within the test, so their slots get reclaimed by other keys
    common = dict(store=url, max_keys=256, log_capacity=8)
    gcra = floodwall.Limiter("20/second", namespace="gcra", **common)
    window = floodwall.Limiter("10/second", namespace="win", algorithm="sliding_window", **common)
    log = floodwall.Limiter("8/second", namespace="log", algorithm="sliding_log", **common)
    limiters = (gcra, window, log)
    i = 0
    while True:
        key = f"k{rng.randrange(KEYS)}"
        lim = limiters[i % 3]
        try:
            if i % 53 == 0:
                lim.reset(key)
            elif i % 17 == 0:
                floodwall.check_all([(gcra, key), (log, key)])
            else:
                lim.check(key, rng.randrange(0, 3))
        except floodwall.StoreFullError:
            pass  # the table is small on purpose: slots are reclaimed as keys expire
        i += 1


def _spawn(url: str, seed: int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            _child(url, seed)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(1)
    return pid


def test_kill9_loop(shared_url: str) -> None:
    rng = random.Random(20240601)
    started = time.monotonic()
    kills = 0
    seed = 0
    while kills < KILLS:
        # two children at once, killed at different random moments (some
        # while still opening, or creating, the table)
        pids = []
        try:
            for _ in range(2):
                seed += 1
                pids.append(_spawn(shared_url, seed))
            statuses = []
            for pid in pids:
                time.sleep(rng.uniform(0, 0.008))
                os.kill(pid, signal.SIGKILL)
                statuses.append(os.waitpid(pid, 0)[1])  # reaped: its locks can be taken over
        finally:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        for status in statuses:
            # a child that exited by itself raised: its traceback is on stderr
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            kills += 1
    assert time.monotonic() - started < 90

    # the table is healthy
    report = ops.doctor(shared_url)
    assert report["ok"], report["problem"]
    assert report["bad_slots"] == 0 and report["used_slots"] > 0

    # no key is stuck: an hour later every key is fresh, and usable
    later = time.time_ns() + HOUR_NS
    common = dict(store=shared_url, clock=lambda: later)
    gcra = floodwall.Limiter("20/second", namespace="gcra", **common)
    window = floodwall.Limiter("10/second", namespace="win", algorithm="sliding_window", **common)
    log = floodwall.Limiter("8/second", namespace="log", algorithm="sliding_log", **common)
    for i in range(KEYS):
        key = f"k{i}"
        for lim, capacity in ((gcra, 20), (window, 10), (log, 8)):
            assert lim.peek(key).remaining == capacity
            d = lim.check(key)
            assert d.allowed and d.remaining == capacity - 1
    # every slot's state is plausible after all that
    assert ops.doctor(shared_url)["ok"]

    # and exactness still holds (stale stripe locks are taken over)
    now = time.time_ns()
    assert count_admitted(shared_url, "1000/hour", ["after-kills"], 200, fixed_now=now) == 1000
