"""Benchmark: ns per call on the memory store against ``d[key] += 1``.

Issue targets (ratios, same run, same 10,000 distinct keys):
``allow()`` with GCRA <= 2.0x the dict update, ``check()`` <= 3.0x.
Prints the same for every algorithm. Timing never fails: this only reports.

    python bench/bench_memory.py [--keys 10000] [--rounds 30] [--repeat 7]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import floodwall
from floodwall.stores import ALGORITHMS


def ns_per_op(run: Callable[[], None], ops: int) -> float:
    start = time.perf_counter_ns()
    run()
    return (time.perf_counter_ns() - start) / ops


def interleaved(runs: dict[str, Callable[[], None]], ops: int, repeat: int) -> dict[str, float]:
    """Best ns/op of each run, measured in alternation so that a burst of
    noise on the shared machine hits every contender alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            best[name] = min(best[name], ns_per_op(run, ops))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    keys = [f"user:{i}" for i in range(args.keys)] * args.rounds
    ops = len(keys)

    def baseline() -> None:
        d: dict[str, int] = dict.fromkeys(keys, 0)
        for key in keys:
            d[key] += 1

    # a high rate: every call is admitted and writes, the worst case
    rate = "1000000/day"
    print(f"{args.keys} distinct keys, {ops} calls per measurement, best of {args.repeat}, "
          "measured in alternation with the baseline d[key] += 1")
    print(f"{'algorithm':22} {'dict ns':>8} {'allow ns':>9} {'ratio':>6} "
          f"{'check ns':>9} {'ratio':>6}")
    for _ in range(3):  # warm up the interpreter, caches and CPU clock first
        baseline()
    for algorithm in ALGORITHMS:
        burst = 1000 if algorithm == "sliding_log" else None
        limiter = floodwall.Limiter(rate, algorithm=algorithm, burst=burst,
                                    max_keys=args.keys * 2)

        def run_allow(limiter: floodwall.Limiter = limiter) -> None:
            for key in keys:
                limiter.allow(key)

        def run_check(limiter: floodwall.Limiter = limiter) -> None:
            for key in keys:
                limiter.check(key)

        run_allow()  # insert every key first: measure steady state
        best = interleaved(
            {"dict": baseline, "allow": run_allow, "check": run_check}, ops, args.repeat
        )
        base = best["dict"]
        targets = "  (targets: allow <= 2.0, check <= 3.0)" if algorithm == "gcra" else ""
        print(f"{algorithm:22} {base:8.1f} {best['allow']:9.1f} {best['allow'] / base:6.2f} "
              f"{best['check']:9.1f} {best['check'] / base:6.2f}{targets}")


if __name__ == "__main__":
    main()
