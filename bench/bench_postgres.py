"""bench/bench_postgres.py: what a PostgreSQL-backed check costs, as ratios
measured in one run.

    python bench/bench_postgres.py [--url postgresql://...] [--quick]
                                   [--keys N] [--rounds N] [--cpu N]

On a shared, loaded machine prefer many short rounds (``--keys 200
--rounds 40``): the best round of each side is then less likely to have
been disturbed. ``--cpu N`` runs the client and the private server on one
CPU: on a virtual machine, waking a process on another, idle CPU can cost
more than the statement itself, and whether it happens depends on where
the scheduler put each process at that moment (the same baseline measured
30 and 70 us in one run); on one CPU every round trip is two context
switches, and the ratio compares the work done on both sides (a stricter
measure: the baseline no longer carries wake-up time).

The baseline is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on a
single-row table (an update of a row that exists), on the limiter's own
server and pool, in a loop of the same shape over the same number of
operations, interleaved round by round with the contenders, best of N
(bench/_timing.py). It is measured two ways, both printed:

- ``pooled``: each operation takes a connection from the limiter's pool and
  gives it back (``getconn``/``putconn``, as ``allow()`` does on every
  call). This is the like-for-like baseline the target (<= 1.5) is read
  against: a contender cannot be measured on a held connection without
  bypassing its API, so the baseline takes its connection the way the
  contender does; the pool costs both sides alike.
- ``held``: the statement on one connection taken once, before timing (the
  cheapest possible baseline; its ratio is printed too, never hidden).

Contenders, in two phases (each with its own interleaved baselines, so
that the rows of the second, swept and written anew, do not burden the
first): ``allow()`` of every algorithm on keys whose rows are live (their
state is not back to fresh between two checks, so every check updates a
row, as the baseline does; ``1/second burst 1000000`` never denies in a
run), then GCRA and three rates on keys whose rows expire between two
checks (``fresh``: a check finds its row expired or swept, and writes it
anew). Async: ``aallow()`` with 64 concurrent tasks, against
the same upsert awaited by 64 tasks (``pooled``: a connection of the
limiter's async pool per operation; ``held``: a connection per task).
Without --url a private server is started (tests/python/postgres_servers.py).
Prints ratios; never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "python"))  # postgres_servers

from _timing import async_best_ns_per_op, best_ns_per_op, loop_calling  # noqa: E402

import floodwall  # noqa: E402

#: never denies in a run, and a key's row stays live between its checks
LIVE = "1/second burst 1000000"
LIVE3 = "1/second burst 1000000; 1/2s burst 1000000; 1/4s burst 1000000"
#: never denies in a run, and a key's row expires between its checks
FRESH = "1000000/day"
FRESH3 = "100000/second; 1000000/minute; 10000000/day"
UPSERT = (
    "INSERT INTO fw_bench_baseline (id, n) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET n = fw_bench_baseline.n + 1 RETURNING n"
)
TASKS = 64


@contextmanager
def server(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from postgres_servers import PostgresServer

    with PostgresServer(name="bench") as srv:
        yield srv.url


# Benchmarks measure speed, not failures: a generous deadline, so that a
# loaded machine slows a row down instead of failing it.
OPTIONS = {"timeout": 10.0}


Row = tuple[str, float, float, float, float]  # name, ns, pooled ns, held ns, target


def rows_sync(url: str, keys: list[str], rounds: int) -> list[Row]:
    ops = len(keys)
    lim = floodwall.Limiter(LIVE, store=url, namespace="bench", **OPTIONS)
    lim.allow("warm")  # schema made, pool open
    pool = lim.backend.conn._sync_pool()  # type: ignore[attr-defined]
    conn = pool.getconn()  # the held baseline's connection: one of the limiter's pool
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS fw_bench_baseline (id int PRIMARY KEY, n bigint)")
        execute = conn.execute

        def held(_key: str) -> None:
            execute(UPSERT).fetchone()

        getconn, putconn = pool.getconn, pool.putconn

        def pooled(_key: str) -> None:
            c = getconn()
            try:
                c.execute(UPSERT).fetchone()
            finally:
                putconn(c)

        live: dict[str, Any] = {"gcra": lim}
        for algorithm in (
            "token_bucket",
            "leaky_bucket_shaping",
            "fixed_window",
            "sliding_window",
            "sliding_log",
        ):
            rate = LIVE.replace("1000000", "1000") if algorithm == "sliding_log" else LIVE
            live[algorithm] = floodwall.Limiter(
                rate, algorithm=algorithm, store=url, namespace="bench", **OPTIONS
            )
        live["three rates"] = floodwall.Limiter(LIVE3, store=url, namespace="bench3", **OPTIONS)
        fresh = {
            "gcra, fresh keys": floodwall.Limiter(FRESH, store=url, namespace="benchf", **OPTIONS),
            "three rates, fresh keys": floodwall.Limiter(
                FRESH3, store=url, namespace="benchf3", **OPTIONS
            ),
        }
        out = []
        # two phases, each with its own interleaved baselines: the rows that
        # expire (and are swept and written anew) do not burden live keys
        for limiters in (live, fresh):
            contenders: dict[str, Callable[[], None]] = {
                "pooled": loop_calling(pooled, keys),
                "held": loop_calling(held, keys),
            }
            for name, limiter in limiters.items():
                contenders[name] = loop_calling(limiter.allow, keys)
            for run in contenders.values():
                run()  # every key has its row
            best = best_ns_per_op(contenders, ops, rounds)
            for name in limiters:
                target = 1.5 if name in ("gcra", "three rates") else float("nan")
                out.append((f"{name} allow()", best[name], best["pooled"], best["held"], target))
            for limiter in limiters.values():
                limiter.clear()
    finally:
        pool.putconn(conn)
    return out


def rows_async(url: str, keys: list[str], rounds: int) -> list[Row]:
    share = len(keys) // TASKS

    async def measure() -> dict[str, float]:
        import psycopg

        # as many connections as tasks: the held baseline has one per task too
        lim = floodwall.Limiter(
            LIVE, store=url, namespace="bencha", max_connections=TASKS, **OPTIONS
        )
        await lim.aallow("warm")
        apool = await lim.backend.conn._async_pool()  # type: ignore[attr-defined]
        wait = lim.backend.conn._pool_wait()  # type: ignore[attr-defined]
        conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(TASKS)]
        await conns[0].execute(
            "CREATE TABLE IF NOT EXISTS fw_bench_baseline (id int PRIMARY KEY, n bigint)"
        )

        def gathered(worker: Callable[[int], Any]) -> Callable[[], Any]:
            async def run() -> None:
                await asyncio.gather(*(worker(w) for w in range(TASKS)))

            return run

        async def allow(w: int) -> None:
            aallow = lim.aallow
            for k in keys[w * share : (w + 1) * share]:
                await aallow(k)

        async def held(w: int) -> None:
            execute = conns[w].execute
            for _ in range(share):
                await (await execute(UPSERT)).fetchone()

        async def pooled(w: int) -> None:
            for _ in range(share):
                c = await apool.getconn(wait)
                try:
                    await (await c.execute(UPSERT)).fetchone()
                finally:
                    await apool.putconn(c)

        loops = {"allow": gathered(allow), "pooled": gathered(pooled), "held": gathered(held)}
        for run in loops.values():
            await run()
        best = await async_best_ns_per_op(loops, share * TASKS, rounds)
        for c in conns:
            await c.close()
        await lim.aclear()
        await lim.aclose()
        return best

    best = asyncio.run(measure())
    name = f"gcra aallow(), {TASKS} tasks"
    return [(name, best["allow"], best["pooled"], best["held"], float("nan"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="an existing server (default: a private one)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--keys", type=int, help="keys per round (default 3000; quick: 1000)")
    parser.add_argument("--rounds", type=int, help="rounds (default 7; quick: 3)")
    parser.add_argument(
        "--cpu",
        type=int,
        help="run this process and the private server on this one CPU (see above)",
    )
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # the server, started later, inherits it
    rounds = args.rounds or (3 if args.quick else 7)
    nkeys = args.keys or (1000 if args.quick else 3000)
    if nkeys < TASKS or rounds < 1:
        parser.error(f"--keys must be at least {TASKS}, --rounds at least 1")
    keys = [f"user{i % 1000}" for i in range(nkeys)]
    print(f"floodwall {floodwall.__version__}: PostgreSQL, best of {rounds} interleaved rounds")
    with server(args.url) as url:
        rows = rows_sync(url, keys, rounds) + rows_async(url, keys, rounds)
    print_rows(rows)
    return 0


def print_rows(rows: list[Row]) -> None:
    head = f"{'measure':34} {'pooled':>7} {'held':>6} {'target':>7} {'us':>8}"
    print(f"\n{head} {'pooled us':>9} {'held us':>8}")
    for name, ns, pooled, held, target in rows:
        shown = f"<={target:.1f}" if target == target else ""
        print(
            f"{name:34} {ns / pooled:7.2f} {ns / held:6.2f} {shown:>7} {ns / 1000:8.1f} "
            f"{pooled / 1000:9.1f} {held / 1000:8.1f}"
        )
    print("\nbaseline: one INSERT ... ON CONFLICT DO UPDATE ... RETURNING on a one-row table;")
    print("pooled: a connection of the limiter's pool per operation, as allow() takes one;")
    print("held: one connection taken before timing (async: one per task)")


if __name__ == "__main__":
    sys.exit(main())
