"""Benchmark: what observing decisions costs on the hot path.

Issue 14 targets (ratios, same run, same keys, interleaved, best of N; see
``bench/_timing.py``): ``check()`` of a limiter with metrics enabled (no
latency histogram) within 10 % of the same limiter without metrics, on
memory:// and on shm:// (where a writer thread publishes the counters);
with hooks unset, 0 % (within noise) of the store's own C method. Rows
with a hook set or units counted are shown for information (a Python call
per check). Prints; timing never fails.

    python bench/bench_observe.py [--keys 10000] [--rounds 20] [--repeat 9]
"""

from __future__ import annotations

import argparse
import os
import shutil
import uuid
from typing import Any

from _timing import best_ns_per_op, loop_calling

import floodwall
from floodwall.observe.metrics import Metrics

RATE = "1000000/day"

#: baseline name -> what it is (bench/run prints these)
BASELINES = {
    "no metrics": "check() of the same store, rate and keys on a limiter without metrics",
    "C check": "the store's own C method (backend.check), same limiter and keys",
}


def observe_rows(keys: list[str], rounds: int) -> list[tuple[str, float, str, float,
                                                              float | None]]:
    """(measure, ns, baseline, baseline ns, target) rows."""
    n = len(set(keys))
    ops = len(keys)
    name = f"fwbench-obs-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    shm = f"shm://{name}"
    metrics = Metrics(interval=0.05)
    units = Metrics(units=True)
    built: dict[str, Any] = {
        "plain": floodwall.Limiter(RATE, max_keys=n),
        "unset": floodwall.Limiter(RATE, max_keys=n, on_allow=None, on_block=None,
                                   metrics=False),
        "metrics": floodwall.Limiter(RATE, max_keys=n, metrics=metrics),
        "units": floodwall.Limiter(RATE, max_keys=n, metrics=units),
        "hook": floodwall.Limiter(RATE, max_keys=n, on_allow=lambda d, i: None),
        "shm plain": floodwall.Limiter(RATE, store=shm, namespace="a", max_keys=2 * n),
        "shm metrics": floodwall.Limiter(RATE, store=shm, namespace="b", metrics=metrics),
    }
    loops = {label: loop_calling(lim.check, keys) for label, lim in built.items()}
    loops["C check"] = loop_calling(built["unset"].backend.check, keys)
    try:
        for run in loops.values():  # warm: every key inserted
            run()
        best = best_ns_per_op(loops, ops, rounds)
    finally:
        metrics.close()
        from floodwall import _native

        _native.unlink_shm(name, missing_ok=True)
        shutil.rmtree(_native.shm_path(name) + ".metrics", ignore_errors=True)
    return [
        (f"memory check(), metrics on, {n} keys", best["metrics"], "no metrics",
         best["plain"], 1.10),
        (f"shm check(), metrics on (writer thread), {n} keys", best["shm metrics"],
         "no metrics", best["shm plain"], 1.10),
        ("memory check(), hooks unset", best["unset"], "C check", best["C check"], 1.02),
        ("memory check(), on_allow set (a no-op hook)", best["hook"], "no metrics",
         best["plain"], None),
        ("memory check(), metrics units=True", best["units"], "no metrics", best["plain"], None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20, help="passes over the keys per timing")
    parser.add_argument("--repeat", type=int, default=9, help="interleaved timings (best kept)")
    args = parser.parse_args()
    keys = [f"user:{i}" for i in range(args.keys)] * args.rounds
    print(f"{args.keys} distinct keys, {len(keys)} calls per timing, best of {args.repeat}, "
          "interleaved")
    print(f"{'measure':50} {'ratio':>6} {'target':>7} {'ns':>7} {'base ns':>8}  baseline")
    for measure, ns, base, base_ns, target in observe_rows(keys, args.repeat):
        t = f"<={target:.2f}" if target is not None else ""
        flag = " *" if target is not None and ns / base_ns > target else ""
        print(f"{measure:50} {ns / base_ns:6.2f} {t:>7} {ns:7.1f} {base_ns:8.1f}  {base}{flag}")
    print("\n(* above its target.) Baselines:")
    for name, text in BASELINES.items():
        print(f"  {name:11} {text}")


if __name__ == "__main__":
    main()
