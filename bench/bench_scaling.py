"""Benchmark: shm:// throughput with 2 threads, and with 2 processes, against 1.

Issue 16 asks how a shared table scales: a check on ``shm://`` releases the
GIL around the engine call, so two threads of one process can check at
once, and two processes sharing the table always can. Each case runs the
same total number of GCRA ``allow()`` calls split across the workers (a
barrier starts them together; the time is from the barrier to the last
worker's end, each worker reading the clock itself: the main thread may
wait for the GIL after the barrier), on two key shapes:

- ``distinct``: each worker has its own 10,000 keys (no slot is shared);
- ``hot``: every worker checks the same key (one slot, one CAS word
  contended: the worst case for a lock-free table).

Prints checks per second for 1 and 2 workers and their ratio (2.0 would be
perfect scaling; the machine's core count bounds it). Best of N rounds;
timing never fails. On a shared machine the wall clock also measures the
other programs, so each case also prints the workers' CPU time per check
(their own thread or process CPU clock, the best round's: more CPU per
check with 2 workers is contention, a bounced cache line or a lock) and
their parallelism (``par``: CPU seconds over wall seconds, about 2 when
both ran at once, at most 1 while the GIL serialises two threads, and
less than the worker count when other programs took the CPUs: then the
wall-clock scaling says nothing of floodwall).

    python bench/bench_scaling.py [--ops 1000000] [--rounds 5] [--pin]

``--pin`` pins worker ``i`` to CPU ``i`` (mod the CPUs this program may
use): no migration between cores during a run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import floodwall

RATE = "1000000000/day"  # never denies in a run: every call is admitted and writes


def _keys(shape: str, worker: int, n: int) -> list[str]:
    if shape == "hot":
        return ["hot"] * n
    distinct = [f"w{worker}:k{i}" for i in range(10_000)]
    return (distinct * (n // len(distinct) + 1))[:n]


@dataclass(frozen=True)
class Run:
    """One measurement: ``ops`` checks split over some workers."""

    wall: float  # seconds, from the first worker's start to the last one's end
    cpu: float  # seconds of CPU the workers spent in their loops, summed


@dataclass(frozen=True)
class Case:
    """A key shape and worker kind, 1 worker against 2 (best rounds)."""

    name: str
    ops: int
    one: Run
    two: Run


def _pin(worker: int, pin: bool) -> None:
    """Pin the calling thread (or process) to one CPU, chosen by worker."""
    if pin:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[worker % len(cpus)]})  # 0: this thread


def _run_keys(url: str, keys: list[str], start: Callable[[], object],
              cpu_clock: Callable[[], float]) -> tuple[float, float, float]:
    """Check every key once the workers are released: when the loop started
    and ended (perf_counter: CLOCK_MONOTONIC, one clock for every process),
    and the CPU seconds (of ``cpu_clock``) it took."""
    lim = floodwall.Limiter(RATE, store=url, max_keys=65_536)
    allow = lim.allow
    start()
    t0, c0 = time.perf_counter(), cpu_clock()
    for k in keys:
        allow(k)
    return t0, time.perf_counter(), cpu_clock() - c0


def _run_of(spans: list[tuple[float, float, float]]) -> Run:
    return Run(max(e for _, e, _ in spans) - min(s for s, _, _ in spans),
               sum(c for _, _, c in spans))


def with_threads(url: str, shape: str, workers: int, ops: int, pin: bool = False) -> Run:
    """``ops`` checks split over ``workers`` threads (thread start and exit
    not counted)."""
    barrier = threading.Barrier(workers)
    share = ops // workers
    spans: list[tuple[float, float, float]] = []

    def work(w: int, keys: list[str]) -> None:
        _pin(w, pin)
        spans.append(_run_keys(url, keys, barrier.wait, time.thread_time))

    threads = [threading.Thread(target=work, args=(w, _keys(shape, w, share)))
               for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _run_of(spans)


def _process_main(url: str, shape: str, worker: int, share: int, barrier: Any,
                  span: Any, pin: bool) -> None:
    _pin(worker, pin)
    span[:] = _run_keys(url, _keys(shape, worker, share), barrier.wait, time.process_time)


def with_processes(url: str, shape: str, workers: int, ops: int, pin: bool = False) -> Run:
    """``ops`` checks split over ``workers`` forked processes (fork and exit
    not counted)."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers)
    share = ops // workers
    spans = [ctx.Array("d", 3) for _ in range(workers)]
    procs = [
        ctx.Process(target=_process_main, args=(url, shape, w, share, barrier, spans[w], pin))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError("a worker process failed")
    return _run_of([(s[0], s[1], s[2]) for s in spans])


def cases(ops: int, rounds: int, pin: bool = False) -> list[Case]:
    """Every case, each worker count's best round (least wall time; its CPU
    time is the least of the rounds too, measured separately)."""
    from floodwall.stores import shared

    out = []
    for kind, run in (("threads", with_threads), ("processes", with_processes)):
        for shape in ("distinct", "hot"):
            url = f"shm://fwbench-scale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                floodwall.Limiter(RATE, store=url, max_keys=65_536).allow("warm")
                best: dict[int, Run] = {}
                for _ in range(rounds):
                    for workers in (1, 2):
                        r = run(url, shape, workers, ops, pin)
                        b = best.get(workers, r)
                        best[workers] = Run(min(b.wall, r.wall), min(b.cpu, r.cpu))
                out.append(Case(f"shm:// {kind}, {shape} keys", ops, best[1], best[2]))
            finally:
                shared.unlink_shm(url)
    return out


def rows(ops: int, rounds: int) -> list[tuple[str, float, float]]:
    """(case, checks/s with 1 worker, checks/s with 2 workers)."""
    return [(c.name, ops / c.one.wall, ops / c.two.wall) for c in cases(ops, rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000, help="checks per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="best of this many")
    parser.add_argument("--pin", action="store_true", help="worker i on CPU i")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable, workers "
          f"{'pinned' if args.pin else 'not pinned'}); {args.ops} GCRA allow() per "
          f"measurement, best of {args.rounds}")
    print(f"{'case':36} {'1 worker/s':>11} {'2 workers/s':>11} {'scaling':>7} "
          f"{'CPU ns 1':>8} {'CPU ns 2':>8} {'CPU 2/1':>7} {'par 1':>5} {'par 2':>5}")
    for c in cases(args.ops, args.rounds, args.pin):
        one, two = c.ops / c.one.wall, c.ops / c.two.wall
        cpu1, cpu2 = c.one.cpu / c.ops * 1e9, c.two.cpu / c.ops * 1e9
        print(f"{c.name:36} {one:11.0f} {two:11.0f} {two / one:7.2f} {cpu1:8.0f} "
              f"{cpu2:8.0f} {cpu2 / cpu1:7.2f} {c.one.cpu / c.one.wall:5.2f} "
              f"{c.two.cpu / c.two.wall:5.2f}", flush=True)


if __name__ == "__main__":
    main()
