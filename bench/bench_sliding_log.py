"""Benchmark: sliding_log per check, at capacities 10, 1000 and 65,536, against ``d[k] += 1``.

Issue 16 target: a sliding_log check costs at most 3x a dict update at any
capacity up to the maximum (``FW_LOG_CAPACITY_MAX``): the engine keeps a
running total of the log's units and touches only the entries that expire,
so a check does not read the whole log. Three shapes per capacity, each
timed interleaved with the dict baseline (``bench/_timing.py``), best of N:

- ``full``: one hot key whose log holds ``capacity`` entries, all live: every
  check is a denial (what a key under attack costs);
- ``rolling``: one hot key at ``capacity`` per 5 ms: the log stays near full
  and entries expire while the loop runs (prune, then append or deny);
- ``keys``: 100 distinct keys, admitted, each log growing.

Each shape runs on ``memory://`` and on ``shm://`` (where the slot lock is
taken). Prints; timing never fails.

    python bench/bench_sliding_log.py [--ops 20000] [--repeat 9] [--no-shm]
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable

from _timing import best_ns_per_op, loop_calling, loop_dict_increment

import floodwall

CAPACITIES = (10, 1000, 65_536)
SHAPES = ("full", "rolling", "keys")


def limiter(capacity: int, shape: str, store: str) -> floodwall.Limiter:
    period = "5ms" if shape == "rolling" else "day"
    return floodwall.Limiter(f"{capacity}/{period}", algorithm="sliding_log", store=store,
                             max_keys=128)


def rows(
    store: str, ops: int, repeat: int, capacities: tuple[int, ...] = CAPACITIES
) -> list[tuple[str, float, float]]:
    """(label, ns per check, ns per dict update) for every capacity and shape."""
    out = []
    for capacity in capacities:
        for shape in SHAPES:
            url = f"{store}-{capacity}-{shape}" if store.startswith("shm:") else store
            lim = limiter(capacity, shape, url)
            keys = [f"k{i}" for i in range(100)] * (ops // 100) if shape == "keys" else (
                ["hot"] * ops)
            if shape == "full":
                for _ in range(capacity):
                    lim.allow("hot")
            d = dict.fromkeys(keys, 0)
            loops: dict[str, Callable[[], None]] = {
                "dict": loop_dict_increment(d, keys),
                "check": loop_calling(lim.allow, keys),
            }
            for run in loops.values():
                run()
            best = best_ns_per_op(loops, len(keys), repeat)
            out.append((f"{store.split(':')[0]}: cap {capacity} {shape}", best["check"],
                        best["dict"]))
            close = getattr(lim, "close", None)
            if close is not None:
                close()
            if url.startswith("shm:"):
                from floodwall.stores import shared

                shared.unlink_shm(url)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000, help="checks per timing")
    parser.add_argument("--repeat", type=int, default=9, help="interleaved timings (best kept)")
    parser.add_argument("--no-shm", action="store_true", help="memory:// only")
    args = parser.parse_args()
    stores = ["memory://"]
    shm = f"shm://fwbench-log-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if not args.no_shm:
        stores.append(shm)
    print(f"{args.ops} checks per timing, best of {args.repeat}, interleaved with "
          "d[key] += 1 on the same keys (target: ratio <= 3.0 at every capacity)")
    print(f"{'case':32} {'ns':>9} {'dict ns':>8} {'ratio':>6}")
    for store in stores:
        for label, ns, base in rows(store, args.ops, args.repeat):
            flag = " *" if ns / base > 3.0 else ""
            print(f"{label:32} {ns:9.1f} {base:8.1f} {ns / base:6.2f}{flag}", flush=True)


if __name__ == "__main__":
    main()
