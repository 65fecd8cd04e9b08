# test_redis_concurrency.py - exactness under contention on a real Redis.
#
# Four processes (and, separately, threads and asyncio tasks) hammer one
# key; the number admitted must equal the policy exactly, never "about".
from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading
from typing import Any

import pytest

from floodwall import Limiter, check_all

FIXED_NOW = 1_750_000_000 * 10**9
PROCESSES = 4
ATTEMPTS = 400  # per process: 1600 attempts for 1000 units


def _worker(url: str, algorithm: str, fixed_clock: bool, barrier: Any, out: Any) -> None:
    clock = (lambda: FIXED_NOW) if fixed_clock else None
    lim = Limiter("1000/day", algorithm=algorithm, store=url, namespace="race", clock=clock)
    barrier.wait()
    admitted = sum(1 for _ in range(ATTEMPTS) if lim.allow("shared"))
    out.put(admitted)
    lim.close()


@pytest.mark.parametrize(
    ("algorithm", "fixed_clock"),
    [
        ("gcra", False),  # Redis TIME: one unit comes back every 86.4 s
        ("sliding_log", False),
        ("fixed_window", True),  # a fixed clock: no window boundary mid-test
        ("sliding_window", True),
    ],
)
def test_four_processes_one_key(redis_url: str, algorithm: str, fixed_clock: bool) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(redis_url, algorithm, fixed_clock, barrier, out))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    counts = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sum(counts) == 1000, counts
    assert all(c > 0 for c in counts) or sum(counts) == 1000


def test_threads_one_key_with_groups(redis_url: str) -> None:
    user = Limiter("500/day", store=redis_url, namespace="tu")
    org = Limiter("300/day", store=redis_url, namespace="to")
    admitted = 0
    lock = threading.Lock()

    def run() -> None:
        nonlocal admitted
        n = 0
        for i in range(100):
            if check_all([(user, f"u{i % 3}"), (org, "acme")]).allowed:
                n += 1
        with lock:
            admitted += n

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted == 300
    # every admitted unit was taken from exactly one user key too
    used = sum(500 - user.peek(f"u{i}").remaining for i in range(3))
    assert used == 300


def test_async_tasks_one_key(redis_url: str) -> None:
    async def go() -> int:
        lim = Limiter(
            "250/day", algorithm="sliding_log", store=redis_url, namespace="ta", timeout=10
        )
        results = await asyncio.gather(*(lim.aallow("k") for _ in range(600)))
        return sum(results)

    assert asyncio.run(go()) == 250
