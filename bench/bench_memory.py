"""Benchmark: ns per call on the memory store against ``d[key] += 1``.

Issue 16 targets (ratios, same run, same 10,000 distinct keys): GCRA
``allow()`` <= 1.5x the dict update, ``check()`` <= 2.0x; every other
single-word algorithm within 10 % of GCRA. The dict is built before timing
and both sides run the same loop over the same keys, interleaved, best of N
(see ``bench/_timing.py``). Prints; timing never fails.

    python bench/bench_memory.py [--keys 10000] [--rounds 30] [--repeat 9]
"""

from __future__ import annotations

import argparse

from _timing import best_ns_per_op, loop_calling, loop_dict_increment

import floodwall
from floodwall.algorithms import ALGORITHMS

# a high rate: every call is admitted and writes, the worst case
RATE = "1000000/day"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30, help="passes over the keys per timing")
    parser.add_argument("--repeat", type=int, default=9, help="interleaved timings (best kept)")
    args = parser.parse_args()
    keys = [f"user:{i}" for i in range(args.keys)] * args.rounds
    ops = len(keys)
    d: dict[str, int] = dict.fromkeys(keys, 0)
    baseline = loop_dict_increment(d, keys)

    print(f"{args.keys} distinct keys, {ops} calls per timing, best of {args.repeat}, "
          "interleaved with the baseline d[key] += 1 (dict built before timing)")
    print(f"{'algorithm':22} {'dict ns':>8} {'allow ns':>9} {'ratio':>6} "
          f"{'check ns':>9} {'ratio':>6}")
    for _ in range(3):  # warm up the interpreter, caches and CPU clock first
        baseline()
    for algorithm in ALGORITHMS:
        burst = 1000 if algorithm == "sliding_log" else None
        limiter = floodwall.Limiter(RATE, algorithm=algorithm, burst=burst,
                                    max_keys=args.keys * 2)
        run_allow = loop_calling(limiter.allow, keys)
        run_check = loop_calling(limiter.check, keys)
        run_allow()  # insert every key first: measure steady state
        best = best_ns_per_op(
            {"dict": baseline, "allow": run_allow, "check": run_check}, ops, args.repeat
        )
        base = best["dict"]
        targets = "  (targets: allow <= 1.5, check <= 2.0)" if algorithm == "gcra" else ""
        print(f"{algorithm:22} {base:8.1f} {best['allow']:9.1f} {best['allow'] / base:6.2f} "
              f"{best['check']:9.1f} {best['check'] / base:6.2f}{targets}")


if __name__ == "__main__":
    main()
