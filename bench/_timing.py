"""Timing that cannot flatter: the one way every floodwall benchmark measures.

Rules, the same for a contender and its baseline:
- the data (keys, dicts, clients, limiters) is built before timing starts;
- each side is a loop of the same shape over the same pre-built list of keys,
  with what it calls (a bound method, a dict) held in a local: nothing else
  happens inside the timed region;
- the sides are measured interleaved, round by round, with the order rotated
  each round so that neither always runs first or after the other;
- each side keeps its best round (the least disturbed by a shared, noisy
  machine); a ratio compares the two bests of the same run.

Benchmarks print; they never fail on timing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

__all__ = [
    "Loop",
    "async_best_ns_per_op",
    "best_ns_per_op",
    "loop_calling",
    "loop_dict_increment",
]

Loop = Callable[[], None]


def loop_calling(call: Callable[[str], object], keys: Sequence[str]) -> Loop:
    """A timed body: ``call(key)`` for each key, ``call`` already bound."""

    def run() -> None:
        c = call
        for key in keys:
            c(key)

    return run


def loop_dict_increment(d: dict[str, int], keys: Sequence[str]) -> Loop:
    """The in-process baseline: ``d[key] += 1`` on a dict built beforehand."""

    def run() -> None:
        dd = d
        for key in keys:
            dd[key] += 1

    return run


def best_ns_per_op(loops: dict[str, Loop], ops: int, rounds: int) -> dict[str, float]:
    """Best ns per operation of each loop over ``rounds`` interleaved rounds
    (each loop runs ``ops`` operations per round)."""
    names = list(loops)
    best = dict.fromkeys(names, float("inf"))
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            run = loops[name]
            start = time.perf_counter_ns()
            run()
            best[name] = min(best[name], (time.perf_counter_ns() - start) / ops)
    return best


async def async_best_ns_per_op(
    loops: dict[str, Callable[[], Awaitable[None]]], ops: int, rounds: int
) -> dict[str, float]:
    """:func:`best_ns_per_op` for coroutine loops, all run on the running event loop."""
    names = list(loops)
    best = dict.fromkeys(names, float("inf"))
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            run = loops[name]
            start = time.perf_counter_ns()
            await run()
            best[name] = min(best[name], (time.perf_counter_ns() - start) / ops)
    return best
