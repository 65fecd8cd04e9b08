"""Benchmark: ns per call on the memory store against ``d[key] += 1``.

Issue 16 targets (ratios, same run, same 10,000 distinct keys): GCRA
``allow()`` <= 1.5x the dict update, ``check()`` <= 2.0x; every other
single-word algorithm within 10 % of GCRA (the ``/gcra`` column: its
``allow()`` over GCRA's); ``shm://`` within 5 % of ``memory://``
(``--store shm`` runs every row on a shared table; ``--shm`` adds a
``shm://`` column to each row, interleaved with the rest). The dict is built before timing
and both sides run the same loop over the same keys, interleaved, best of N
(see ``bench/_timing.py``). Each row starts a fresh dict, so every row has
the same baseline: its best rounds are those whose counts are still small
ints (CPython caches them; past 256 each ``+= 1`` allocates), the strictest
baseline. Prints; timing never fails.

``--instructions`` counts instructions per call instead, with valgrind's
callgrind (repeatable on a noisy machine): each side runs in a process of
its own, with 0 and then 10 passes over the keys after the same set-up, and
the difference is divided by the calls.

    python bench/bench_memory.py [--keys 10000] [--rounds 30] [--repeat 9] [--shm]
    python bench/bench_memory.py --instructions [--algorithm gcra] [--store shm]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from _timing import best_ns_per_op, loop_calling, loop_dict_increment

import floodwall
from floodwall.algorithms import ALGORITHMS

# a high rate: every call is admitted and writes, the worst case
RATE = "1000000/day"
# under callgrind a program runs some 50 times slower, and a key of RATE
# would be fresh again (and dropped by a rebuild of the memory table) before
# its next call: this rate keeps every key live for the whole count, and
# still admits (and writes) all of its 11 calls per key
INSTRUCTIONS_RATE = "1000/day"
PASSES = 10


def limiter_for(algorithm: str, keys: int, rate: str = RATE,
                store: str = "memory://") -> floodwall.Limiter:
    burst = 1000 if algorithm == "sliding_log" else None
    return floodwall.Limiter(rate, algorithm=algorithm, burst=burst, max_keys=keys * 2,
                             store=store, namespace=algorithm)


@contextmanager
def store_url(kind: str) -> Iterator[str]:
    """``memory://``, or a private ``shm://`` table removed at the end."""
    if kind == "memory":
        yield "memory://"
        return
    from floodwall.stores import shared

    url = f"shm://fwbench-mem-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield url
    finally:
        shared.unlink_shm(url)
        getattr(shared, "forget", lambda: None)()


def timings(args: argparse.Namespace) -> None:
    keys = [f"user:{i}" for i in range(args.keys)] * args.rounds
    ops = len(keys)
    print(f"{args.keys} distinct keys, {ops} calls per timing, best of {args.repeat}, "
          "interleaved with the baseline d[key] += 1 (a fresh dict per row, built "
          f"before timing); store {args.store}")
    shm_head = f" {'shm ns':>8} {'shm/mem':>7}" if args.shm else ""
    print(f"{'algorithm':22} {'dict ns':>8} {'allow ns':>9} {'ratio':>6} "
          f"{'check ns':>9} {'ratio':>6} {'/gcra':>6}{shm_head}")
    gcra_allow = None
    for algorithm in ALGORITHMS:  # a table of its own per row
        with store_url(args.store) as url, store_url("shm" if args.shm else "memory") as shm:
            d: dict[str, int] = dict.fromkeys(keys, 0)
            baseline = loop_dict_increment(d, keys)
            baseline()  # warm up the interpreter, caches and CPU clock first
            limiter = limiter_for(algorithm, args.keys, store=url)
            run_allow = loop_calling(limiter.allow, keys)
            run_check = loop_calling(limiter.check, keys)
            run_allow()  # insert every key first: measure steady state
            loops = {"dict": baseline, "allow": run_allow, "check": run_check}
            if args.shm:
                on_shm = limiter_for(algorithm, args.keys, store=shm)
                loops["shm"] = loop_calling(on_shm.allow, keys)
                loops["shm"]()
            best = best_ns_per_op(loops, ops, args.repeat)
            base = best["dict"]
            if algorithm == "gcra":
                gcra_allow = best["allow"] / base
            vs_gcra = best["allow"] / base / gcra_allow if gcra_allow else float("nan")
            targets = "  (targets: allow <= 1.5, check <= 2.0)" if algorithm == "gcra" else ""
            shm_cols = (f" {best['shm']:8.1f} {best['shm'] / best['allow']:7.2f}"
                        if args.shm else "")
            print(f"{algorithm:22} {base:8.1f} {best['allow']:9.1f} "
                  f"{best['allow'] / base:6.2f} {best['check']:9.1f} "
                  f"{best['check'] / base:6.2f} {vs_gcra:6.2f}{shm_cols}{targets}")


def one_side(mode: str, passes: int, algorithm: str, nkeys: int, store: str) -> None:
    """The process callgrind measures: set-up, then `passes` passes of one side."""
    keys = [f"user:{i}" for i in range(nkeys)]
    d = dict.fromkeys(keys, 0)
    with store_url(store) as url:
        limiter = limiter_for(algorithm, nkeys, INSTRUCTIONS_RATE, url)
        for key in keys:
            limiter.allow(key)
        run = {
            "dict": loop_dict_increment(d, keys),
            "allow": loop_calling(limiter.allow, keys),
            "check": loop_calling(limiter.check, keys),
        }[mode]
        for _ in range(passes):
            run()


def collected(mode: str, passes: int, algorithm: str, nkeys: int, store: str) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           sys.executable, os.path.abspath(__file__), "--one-side", mode, str(passes),
           "--algorithm", algorithm, "--keys", str(nkeys), "--store", store]
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stderr
    found = re.search(r"Collected : (\d+)", out)
    if not found:
        raise RuntimeError(f"no instruction count from callgrind:\n{out}")
    return int(found.group(1))


def instructions(args: argparse.Namespace) -> None:
    calls = PASSES * args.keys
    counts = {}
    for mode in ("dict", "allow", "check"):
        counts[mode] = (collected(mode, PASSES, args.algorithm, args.keys, args.store)
                        - collected(mode, 0, args.algorithm, args.keys, args.store)) / calls
    base = counts["dict"]
    print(f"instructions per call (callgrind), {args.algorithm}, {args.keys} keys, "
          f"store {args.store}, {calls} calls per side:")
    for mode in ("dict", "allow", "check"):
        print(f"   {mode:6} {counts[mode]:7.0f}   ratio {counts[mode] / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30, help="passes over the keys per timing")
    parser.add_argument("--repeat", type=int, default=9, help="interleaved timings (best kept)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per call with callgrind")
    parser.add_argument("--algorithm", default="gcra", choices=sorted(ALGORITHMS))
    parser.add_argument("--store", default="memory", choices=("memory", "shm"),
                        help="the limiters' store (shm: a private shm:// table)")
    parser.add_argument("--shm", action="store_true",
                        help="timings: add a shm:// allow() column to every row")
    parser.add_argument("--one-side", nargs=2, metavar=("MODE", "PASSES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_side:
        one_side(args.one_side[0], int(args.one_side[1]), args.algorithm, args.keys,
                 args.store)
    elif args.instructions:
        instructions(args)
    else:
        timings(args)


if __name__ == "__main__":
    main()
