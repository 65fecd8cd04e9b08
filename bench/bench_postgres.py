"""bench/bench_postgres.py: what a PostgreSQL-backed check costs, as ratios
measured in one run.

    python bench/bench_postgres.py [--url postgresql://...] [--quick]

The baseline is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on a
single-row table, sent over a connection of the limiter's own pool (same
server, same connection settings), in a loop of the same shape over the same
number of operations, interleaved round by round with the contender, best of
N (bench/_timing.py). Rows: GCRA ``allow()`` (target <= 1.5), every other
algorithm, a three-part check (three rates on one key), and ``aallow()``
with 64 concurrent tasks against the same upsert awaited by 64 tasks.
Without --url a private server is started (tests/python/postgres_servers.py).
Prints ratios; never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
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

RATE = "1000000/day"  # never denies in a run: every call is admitted and writes
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


def rows_sync(url: str, keys: list[str], rounds: int) -> list[tuple[str, float, float, float]]:
    ops = len(keys)
    out = []
    lim = floodwall.Limiter(RATE, store=url, namespace="bench", **OPTIONS)
    lim.allow("warm")  # schema made, pool open
    pool = lim.backend.conn._sync_pool()  # type: ignore[attr-defined]
    conn = pool.getconn()  # the baseline's connection: one of the limiter's pool
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS fw_bench_baseline (id int PRIMARY KEY, n bigint)")
        execute = conn.execute

        def upsert(_key: str) -> None:
            execute(UPSERT).fetchone()

        base = loop_calling(upsert, keys)
        contenders: dict[str, Callable[[], None]] = {"upsert": base}
        limiters = {"gcra": lim}
        for algorithm in (
            "token_bucket",
            "leaky_bucket_shaping",
            "fixed_window",
            "sliding_window",
            "sliding_log",
        ):
            burst = 1000 if algorithm == "sliding_log" else None
            limiters[algorithm] = floodwall.Limiter(
                RATE, algorithm=algorithm, burst=burst, store=url, namespace="bench", **OPTIONS
            )
        three = floodwall.Limiter(
            "100000/second; 1000000/minute; 10000000/day",
            store=url,
            namespace="bench3",
            **OPTIONS,
        )
        for name, limiter in limiters.items():
            contenders[name] = loop_calling(limiter.allow, keys)
        contenders["three rates"] = loop_calling(three.allow, keys)
        for run in contenders.values():
            run()  # every key has its row
        best = best_ns_per_op(contenders, ops, rounds)
        for name in contenders:
            if name == "upsert":
                continue
            target = 1.5 if name in ("gcra", "three rates") else float("nan")
            out.append((f"{name} allow()", best[name], best["upsert"], target))
        for limiter in (*limiters.values(), three):
            limiter.clear()
    finally:
        pool.putconn(conn)
    return out


def rows_async(url: str, keys: list[str], rounds: int) -> list[tuple[str, float, float, float]]:
    share = len(keys) // TASKS

    async def measure() -> dict[str, float]:
        import psycopg

        # as many connections as tasks: the baseline has one per task too
        lim = floodwall.Limiter(
            RATE, store=url, namespace="bencha", max_connections=TASKS, **OPTIONS
        )
        await lim.aallow("warm")
        conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(TASKS)]
        await conns[0].execute(
            "CREATE TABLE IF NOT EXISTS fw_bench_baseline (id int PRIMARY KEY, n bigint)"
        )

        def gathered_allow() -> Callable[[], Any]:
            async def worker(w: int) -> None:
                aallow = lim.aallow
                for k in keys[w * share : (w + 1) * share]:
                    await aallow(k)

            async def run() -> None:
                await asyncio.gather(*(worker(w) for w in range(TASKS)))

            return run

        def gathered_upsert() -> Callable[[], Any]:
            async def worker(w: int) -> None:
                execute = conns[w].execute
                for _ in range(share):
                    await (await execute(UPSERT)).fetchone()

            async def run() -> None:
                await asyncio.gather(*(worker(w) for w in range(TASKS)))

            return run

        loops = {"allow": gathered_allow(), "upsert": gathered_upsert()}
        for run in loops.values():
            await run()
        best = await async_best_ns_per_op(loops, share * TASKS, rounds)
        for c in conns:
            await c.close()
        await lim.aclear()
        return best

    best = asyncio.run(measure())
    return [(f"gcra aallow(), {TASKS} tasks", best["allow"], best["upsert"], float("nan"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="an existing server (default: a private one)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    keys = [f"user{i}" for i in range(1000)] * (1 if args.quick else 3)
    print(f"floodwall {floodwall.__version__}: PostgreSQL, best of {rounds} interleaved rounds")
    with server(args.url) as url:
        rows = rows_sync(url, keys, rounds) + rows_async(url, keys, rounds)
    print_rows(rows)
    return 0


def print_rows(rows: list[tuple[str, float, float, float]]) -> None:
    print(f"\n{'measure':34} {'ratio':>6} {'target':>7} {'us':>8} {'base us':>8}")
    for name, ns, base_ns, target in rows:
        shown = f"<={target:.1f}" if target == target else ""
        print(f"{name:34} {ns / base_ns:6.2f} {shown:>7} {ns / 1000:8.1f} {base_ns / 1000:8.1f}")
    print("\nbaseline: one INSERT ... ON CONFLICT DO UPDATE ... RETURNING on a one-row table")
    print("(sync: on a connection of the limiter's pool; async: 64 tasks, a connection each)")


if __name__ == "__main__":
    sys.exit(main())
