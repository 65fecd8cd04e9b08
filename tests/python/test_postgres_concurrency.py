# test_postgres_concurrency.py - exactness under contention on a real
# PostgreSQL server.
#
# Four processes hammer one key with mixed costs, on every algorithm: the
# units admitted must equal the capacity exactly. Multi-key checks that name
# the same keys in opposite orders run concurrently: no partial consumption,
# no deadlock error, also when one-key checks race groups on a key. Four
# processes opening a fresh database at once create
# the schema once, without an error.
from __future__ import annotations

import multiprocessing as mp
import threading
from typing import Any

import psycopg
import pytest

from floodwall import Limiter, check_all
from floodwall.errors import StoreError

FIXED_NOW = 1_750_000_000 * 10**9
PROCESSES = 4
CAPACITY = 120
COSTS = (1, 3, 2, 5, 1, 4)
ALGORITHMS = (
    "gcra",
    "token_bucket",
    "leaky_bucket",
    "leaky_bucket_shaping",
    "fixed_window",
    "sliding_window",
    "sliding_log",
)


def _worker(url: str, algorithm: str, fixed_clock: bool, barrier: Any, out: Any) -> None:
    clock = (lambda: FIXED_NOW) if fixed_clock else None
    lim = Limiter(f"{CAPACITY}/day", algorithm=algorithm, store=url, namespace="race", clock=clock)
    barrier.wait()
    admitted_units = 0
    denied_ones = 0
    i = 0
    # until a request of one unit is denied: then nothing is left (the
    # clock does not move, or moves too little to give a unit back)
    while True:
        cost = COSTS[i % len(COSTS)]
        i += 1
        d = lim.check("shared", cost)
        if d.allowed:
            admitted_units += cost
        elif cost == 1:
            denied_ones += 1
            if denied_ones >= 2:
                break
    out.put(admitted_units)
    lim.close()


def _run_processes(target: Any, args: tuple[Any, ...], n: int = PROCESSES) -> list[Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=180) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
    assert [p.exitcode for p in procs] == [0] * n
    return results


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_four_processes_one_key_mixed_costs(postgres_url: str, algorithm: str) -> None:
    # a fixed clock: no window boundary and no refill mid-test, so the
    # capacity is exactly what can be admitted
    url = postgres_url + "?timeout=30"
    counts = _run_processes(_worker, (url, algorithm, True))
    assert sum(counts) == CAPACITY, counts
    lim = Limiter(
        f"{CAPACITY}/day", algorithm=algorithm, store=url, namespace="race", clock=lambda: FIXED_NOW
    )
    assert lim.peek("shared").remaining == 0


def test_four_processes_one_key_database_clock(postgres_url: str) -> None:
    # clock_timestamp(): one unit comes back every 720 s, far longer than
    # the test, so the admitted units are still exactly the capacity
    url = postgres_url + "?timeout=30"
    counts = _run_processes(_worker, (url, "gcra", False))
    assert sum(counts) == CAPACITY, counts


def _group_worker(url: str, reverse: bool, barrier: Any, out: Any) -> None:
    a = Limiter("100/day", store=url, namespace="ga", clock=lambda: FIXED_NOW)
    b = Limiter("70/day", store=a, namespace="gb", clock=lambda: FIXED_NOW)
    parts = [(a, "x"), (b, "y")]
    if reverse:
        parts.reverse()
    barrier.wait()
    admitted = 0
    errors = 0
    for i in range(60):
        try:
            if check_all(parts, 1 + i % 2).allowed:
                admitted += 1 + i % 2
        except StoreError:
            errors += 1
    out.put((admitted, errors))


def test_opposite_key_orders_all_or_nothing_no_deadlock(postgres_url: str) -> None:
    url = postgres_url + "?timeout=30&breaker_threshold=0"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_group_worker, args=(url, i % 2 == 1, barrier, out))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert sum(e for _, e in results) == 0, results  # no deadlock error, no timeout
    admitted = sum(u for u, _ in results)
    assert admitted == 70  # the smaller limit, exactly
    a = Limiter("100/day", store=url, namespace="ga", clock=lambda: FIXED_NOW)
    b = Limiter("70/day", store=a, namespace="gb", clock=lambda: FIXED_NOW)
    # every unit admitted was taken from both keys: nothing partial
    assert 100 - a.peek("x").remaining == 70
    assert b.peek("y").remaining == 0


def _mixed_worker(url: str, role: int, barrier: Any, out: Any) -> None:
    a = Limiter(f"{CAPACITY}/day", store=url, namespace="mx", clock=lambda: FIXED_NOW)
    b = Limiter("100000/day", store=a, namespace="my", clock=lambda: FIXED_NOW)
    barrier.wait()
    units_x = units_y = denied_ones = errors = 0
    i = 0
    while denied_ones < 2:
        cost = COSTS[i % len(COSTS)]
        i += 1
        try:
            if role == 0:  # one key: the fast path, once the row exists
                d = a.check("x", cost)
            else:  # a group over the same key, in either order
                parts: list[Any] = [(a, "x", cost), (b, f"y{role}", cost)]
                d = check_all(parts if role == 1 else parts[::-1])
        except StoreError:
            errors += 1
            continue
        if d.allowed:
            units_x += cost
            units_y += 0 if role == 0 else cost
        elif cost == 1:
            denied_ones += 1
    out.put((role, units_x, units_y, errors))
    a.close()
    b.close()


def test_one_key_checks_and_groups_on_the_same_key(postgres_url: str) -> None:
    # one-key checks (row lock without waiting, no advisory lock) race
    # groups (advisory locks, then row locks) on one key: every unit is
    # counted once, no group is partial, nothing deadlocks
    url = postgres_url + "?timeout=30&breaker_threshold=0"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    roles = [0, 0, 1, 2]
    procs = [ctx.Process(target=_mixed_worker, args=(url, r, barrier, out)) for r in roles]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert sum(r[3] for r in results) == 0, results
    assert sum(r[1] for r in results) == CAPACITY, results
    a = Limiter(f"{CAPACITY}/day", store=url, namespace="mx", clock=lambda: FIXED_NOW)
    b = Limiter("100000/day", store=a, namespace="my", clock=lambda: FIXED_NOW)
    assert a.peek("x").remaining == 0
    for role, _, units_y, _ in results:
        if role:
            assert 100000 - b.peek(f"y{role}").remaining == units_y, results


def test_opposite_orders_in_threads_on_one_pool(postgres_url: str) -> None:
    url = postgres_url + "?timeout=30&breaker_threshold=0"
    a = Limiter("200/day", store=url, namespace="ta", clock=lambda: FIXED_NOW)
    b = Limiter("150/day", store=a, namespace="tb", clock=lambda: FIXED_NOW)
    admitted = 0
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(reverse: bool) -> None:
        nonlocal admitted
        parts = [(a, "k1"), (b, "k2"), (a, "k3")]
        if reverse:
            parts.reverse()
        n = 0
        try:
            for _ in range(60):
                if check_all(parts).allowed:
                    n += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        with lock:
            admitted += n

    threads = [threading.Thread(target=run, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert admitted == 150
    for key in ("k1", "k3"):
        assert 200 - a.peek(key).remaining == 150


def _schema_worker(url: str, barrier: Any, out: Any) -> None:
    lim = Limiter("10/minute", store=url, namespace="schema", clock=lambda: FIXED_NOW)
    barrier.wait()
    try:
        out.put(("ok", lim.check("k").allowed))
    except Exception as exc:  # noqa: BLE001 - the parent asserts on it
        out.put(("error", repr(exc)))


def test_schema_creation_raced_by_four_processes(postgres_server: Any) -> None:
    # a database of its own: nothing created yet
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS race_schema")
        c.execute("CREATE DATABASE race_schema")
    url = (
        f"postgresql://floodwall@{postgres_server.host}:{postgres_server.port}/race_schema"
        "?timeout=30&schema=fw_race&table=limits"
    )
    results = _run_processes(_schema_worker, (url,))
    assert results == [("ok", True)] * PROCESSES
    with psycopg.connect(url.split("?")[0]) as c:
        version = c.execute("SELECT value FROM fw_race.limits_meta").fetchall()
        assert version == [("1",)]
        rows = c.execute("SELECT a FROM fw_race.limits").fetchall()
    # one key, four admissions of 6 s each on its TAT
    assert rows == [(FIXED_NOW + 4 * 6 * 10**9,)]
