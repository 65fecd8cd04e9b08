"""Benchmark: shm:// throughput with 2 threads, and with 2 processes, against 1.

Issue 16 asks how a shared table scales: a check on ``shm://`` releases the
GIL around the engine call, so two threads of one process can check at
once, and two processes sharing the table always can. Each case runs the
same total number of GCRA ``allow()`` calls split across the workers (a
barrier starts them together; the time is from the barrier to the last
worker's end), on two key shapes:

- ``distinct``: each worker has its own 10,000 keys (no slot is shared);
- ``hot``: every worker checks the same key (one slot, one CAS word
  contended: the worst case for a lock-free table).

Prints checks per second for 1 and 2 workers and their ratio (2.0 would be
perfect scaling; the machine's core count bounds it). Best of N rounds;
timing never fails.

    python bench/bench_scaling.py [--ops 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import floodwall

RATE = "1000000000/day"  # never denies in a run: every call is admitted and writes


def _keys(shape: str, worker: int, n: int) -> list[str]:
    if shape == "hot":
        return ["hot"] * n
    distinct = [f"w{worker}:k{i}" for i in range(10_000)]
    return (distinct * (n // len(distinct) + 1))[:n]


def _run_keys(url: str, keys: list[str], start: Callable[[], object]) -> float:
    """Check every key once the workers are released; the time it ended."""
    lim = floodwall.Limiter(RATE, store=url, max_keys=65_536)
    allow = lim.allow
    start()
    for k in keys:
        allow(k)
    return time.perf_counter()


def with_threads(url: str, shape: str, workers: int, ops: int) -> float:
    """Seconds for ``ops`` checks split over ``workers`` threads: from their
    release to the last one's end (thread start and exit not counted)."""
    barrier = threading.Barrier(workers + 1)
    share = ops // workers
    ends: list[float] = []

    def work(w: int, keys: list[str]) -> None:
        ends.append(_run_keys(url, keys, barrier.wait))

    threads = [threading.Thread(target=work, args=(w, _keys(shape, w, share)))
               for w in range(workers)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return max(ends) - t0


def _process_main(url: str, shape: str, worker: int, share: int, barrier: Any, end: Any) -> None:
    end.value = _run_keys(url, _keys(shape, worker, share), barrier.wait)


def with_processes(url: str, shape: str, workers: int, ops: int) -> float:
    """Seconds for ``ops`` checks split over ``workers`` forked processes:
    from their release to the last one's end (perf_counter is
    CLOCK_MONOTONIC, one clock for every process; fork and exit not counted)."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    share = ops // workers
    ends = [ctx.Value("d", 0.0) for _ in range(workers)]
    procs = [
        ctx.Process(target=_process_main, args=(url, shape, w, share, barrier, ends[w]))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError("a worker process failed")
    return max(e.value for e in ends) - t0


def rows(ops: int, rounds: int) -> list[tuple[str, float, float]]:
    """(case, checks/s with 1 worker, checks/s with 2 workers)."""
    from floodwall.stores import shared

    out = []
    for kind, run in (("threads", with_threads), ("processes", with_processes)):
        for shape in ("distinct", "hot"):
            url = f"shm://fwbench-scale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                floodwall.Limiter(RATE, store=url, max_keys=65_536).allow("warm")
                best = {1: 0.0, 2: 0.0}
                for _ in range(rounds):
                    for workers in (1, 2):
                        best[workers] = max(best[workers], ops / run(url, shape, workers, ops))
                out.append((f"shm:// {kind}, {shape} keys", best[1], best[2]))
            finally:
                shared.unlink_shm(url)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000, help="checks per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="best of this many")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.ops} GCRA allow() per measurement, best of "
          f"{args.rounds}")
    print(f"{'case':36} {'1 worker/s':>12} {'2 workers/s':>12} {'scaling':>8}")
    for case, one, two in rows(args.ops, args.rounds):
        print(f"{case:36} {one:12.0f} {two:12.0f} {two / one:8.2f}", flush=True)


if __name__ == "__main__":
    main()
