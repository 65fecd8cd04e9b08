# test_postgres_lean.py - the lean statement of the PostgreSQL store
# (sql/one_gcra.sql): a charging check of one key on one rate of the GCRA
# family is one plain prepared statement, not a call of the check function;
# its decision, computed from the statement's two values, is the check
# function's field by field (fixed steps and random walks); a denial
# reports the state it was denied on, even one committed after
# its statement began (while it waited for the key's lock); rows carry an
# expiry rounded up to the grain, on both paths; the state function is
# part of the schema (a missing one is made again).
from __future__ import annotations

import random
import threading
import time
from typing import Any

import psycopg
import pytest
from postgres_servers import PostgresServer

from floodwall import Limiter, check_all
from floodwall.algorithms import ALGORITHMS
from floodwall.stores.postgres.schema import EXPIRY_GRAIN_NS, Layout
from floodwall.stores.postgres.url import read_options

FIXED_NOW = 1_750_000_000 * 10**9
SECOND = 10**9
DAY = 86400 * SECOND
#: every algorithm whose state is one word: each has a lean statement
ONE_WORD = [a for a in ALGORITHMS if a != "sliding_log"]


FIELDS = ("allowed", "limit", "remaining", "retry_after", "reset_after", "delay", "rate")


def _twins(
    server: PostgresServer, rates: str, algorithm: str, clock: Any, name: str
) -> tuple[Limiter, Limiter]:
    """The same limit on a test clock, decided by the lean statement and by
    the check function (a store that prepares nothing), each on a table of
    its own."""
    lean = Limiter(
        rates,
        algorithm=algorithm,
        store=f"{server.url}?table=fw_{name}_lean",
        namespace=name,
        clock=clock,
    )
    function = Limiter(
        rates,
        algorithm=algorithm,
        store=f"{server.url}?table=fw_{name}_fn&prepare_threshold=none",
        namespace=name,
        clock=clock,
    )
    assert lean.backend._one is not None  # type: ignore[attr-defined]
    assert function.backend._one is None  # type: ignore[attr-defined]
    return lean, function


def _prepared(lim: Limiter) -> list[str]:
    """The statements prepared on every idle connection of the pool."""
    backend: Any = lim.backend
    pool = backend.conn._sync_pool()
    conns = [pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
    try:
        return [
            r[0] for c in conns for r in c.execute("SELECT statement FROM pg_prepared_statements")
        ]
    finally:
        for c in conns:
            pool.putconn(c)


@pytest.mark.parametrize("algorithm", ONE_WORD)
def test_one_key_one_rate_checks_are_one_plain_statement(
    postgres_server: PostgresServer, algorithm: str
) -> None:
    # a table of this test's own: a pool of its own, nothing prepared before
    url = f"{postgres_server.url}?table=fw_lean_{algorithm}"
    lim = Limiter("1000/minute", algorithm=algorithm, store=url, namespace="lean")
    for i in range(20):
        assert lim.check(f"k{i % 2}").allowed
    statements = _prepared(lim)
    backend: Any = lim.backend
    function = backend.conn.layout.function_name
    assert any(s.lstrip().startswith("WITH n AS MATERIALIZED") for s in statements), statements
    assert not any(function in s for s in statements), statements


def test_several_rates_of_one_key_are_one_plain_statement(postgres_server: PostgresServer) -> None:
    url = f"{postgres_server.url}?table=fw_lean_many"
    lim = Limiter("50/second; 1000/minute; 10000/hour", store=url, namespace="many")
    for i in range(20):
        assert lim.check(f"k{i % 2}").allowed
    statements = _prepared(lim)
    backend: Any = lim.backend
    function = backend.conn.layout.function_name
    assert any(
        s.lstrip().startswith("WITH n AS MATERIALIZED") and "unnest($1::bytea[]" in s
        for s in statements
    ), statements
    assert not any(function in s for s in statements), statements


def test_other_checks_still_call_the_check_function(postgres_url: str) -> None:
    # another algorithm, a peek, a group: the check function decides
    for lim, call in (
        (Limiter("100/minute", algorithm="sliding_log", store=postgres_url), "check"),
        (Limiter("100/minute", store=postgres_url, namespace="l3"), "peek"),
        (Limiter("100/minute", store=postgres_url, namespace="l4"), "group"),
    ):
        for _ in range(20):  # prepared after 5 on a connection (a pool may hold 2 or more)
            if call == "group":
                check_all([(lim, "k"), (lim, "j")])
            else:
                getattr(lim, call)("k")
        backend: Any = lim.backend
        function = backend.conn.layout.function_name
        assert any(function in s for s in _prepared(lim))


def _wait_for_a_waiter(server: PostgresServer) -> None:
    """Return once a check waits for an advisory lock (10 s at most)."""
    with psycopg.connect(server.conninfo, autocommit=True) as watcher:
        deadline = time.monotonic() + 10
        while not watcher.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the check never waited for the key's lock"
            time.sleep(0.01)


def test_a_denial_reports_the_state_committed_while_it_waited(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    # The check's statement begins, then waits for the key's lock, held by
    # a transaction that fills the key and commits. The upsert sees that
    # row (the latest version) and denies; the decision must come from
    # the same row, not from the statement's older snapshot (which holds
    # the row as it was before: one unit left, so retry_after 0).
    lim = Limiter("2/minute", store=postgres_url, namespace="wait", clock=lambda: FIXED_NOW)
    assert lim.check("k").allowed  # tat = now + 30 s: one unit left
    backend: Any = lim.backend
    layout = backend.conn.layout
    row_key = backend.namer.keys("k")[0]
    result: dict[str, Any] = {}
    with psycopg.connect(postgres_server.conninfo) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(encode(%s, 'hex')))",
            (layout.lock_class, row_key),
        )

        def check() -> None:
            result["d"] = lim.check("k")

        t = threading.Thread(target=check)
        t.start()
        _wait_for_a_waiter(postgres_server)
        # another check took the last unit meanwhile: tat = now + 60 s (full)
        holder.execute(
            f"UPDATE {layout.table} SET a = %s WHERE k = %s", (FIXED_NOW + 60 * SECOND, row_key)
        )
        holder.commit()
        t.join(10)
    d = result["d"]
    assert not d.allowed
    assert d.remaining == 0
    assert d.retry_after == pytest.approx(30.0)  # 60 + 30 - 60 s
    assert d.reset_after == pytest.approx(60.0)


def test_a_window_denial_reports_the_state_committed_while_it_waited(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    # one_window.sql's twin of the test above: the decision of a denial
    # comes from the row the upsert denied on (read by the window state
    # function), not from the statement's older snapshot
    minute = 60 * SECOND
    lim = Limiter(
        "3/minute",
        algorithm="fixed_window",
        store=postgres_url,
        namespace="wwait",
        clock=lambda: FIXED_NOW,
    )
    assert lim.check("k").allowed  # 1 of 3 used in this window
    backend: Any = lim.backend
    layout = backend.conn.layout
    row_key = backend.namer.keys("k")[0]
    end = FIXED_NOW - FIXED_NOW % minute + minute
    result: dict[str, Any] = {}
    with psycopg.connect(postgres_server.conninfo) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(encode(%s, 'hex')))",
            (layout.lock_class, row_key),
        )
        t = threading.Thread(target=lambda: result.update(d=lim.check("k", 2)))
        t.start()
        _wait_for_a_waiter(postgres_server)
        # another check took a second unit meanwhile: 2 of 3 used
        holder.execute(f"UPDATE {layout.table} SET c = 2 WHERE k = %s", (row_key,))
        holder.commit()
        t.join(10)
    d = result["d"]
    assert not d.allowed
    assert d.remaining == 1  # from the committed row: 3 - 2 (the old snapshot says 2)
    assert d.retry_after == pytest.approx((end - FIXED_NOW) / SECOND)


@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_log"])
def test_expires_is_rounded_up_to_the_grain(
    postgres_url: str, postgres_server: PostgresServer, algorithm: str
) -> None:
    lim = Limiter("3/minute", algorithm=algorithm, store=postgres_url, clock=lambda: FIXED_NOW)
    assert lim.check("k").allowed
    with psycopg.connect(postgres_server.conninfo) as c:
        (expires,) = c.execute("SELECT expires FROM public.floodwall_state").fetchone()
    fresh_at = FIXED_NOW + 20 * SECOND  # 1 of 3 units per minute: back to full after 20 s
    if algorithm == "fixed_window":
        fresh_at = FIXED_NOW - FIXED_NOW % (60 * SECOND) + 60 * SECOND  # the window's end
    elif algorithm == "sliding_log":
        fresh_at = FIXED_NOW + 60 * SECOND  # the entry leaves the log
    assert expires % EXPIRY_GRAIN_NS == 0
    assert fresh_at <= expires < fresh_at + EXPIRY_GRAIN_NS


def test_a_group_and_one_key_checks_share_a_row(postgres_url: str) -> None:
    # a row written by the lean statement is read by the check function
    # (a group), and the other way round: one state, two paths
    a = Limiter("4/minute", store=postgres_url, namespace="ga", clock=lambda: FIXED_NOW)
    b = Limiter("4/minute", store=a, namespace="gb", clock=lambda: FIXED_NOW)
    assert a.check("k", 2).allowed  # lean
    assert check_all([(a, "k"), (b, "k")]).allowed  # function: a has 1 left after
    assert a.check("k").allowed  # lean: the last unit
    d = check_all([(a, "k"), (b, "k")])
    assert not d.allowed and d.denied_part == 0
    assert not a.check("k").allowed
    assert b.peek("k").remaining == 3


def test_a_missing_state_function_is_made_again(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    lim = Limiter("2/minute", store=postgres_url, namespace="sf")
    assert lim.check("k").allowed
    layout = Layout.of(read_options({}))
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as c:
        c.execute(f"DROP FUNCTION {layout.state_function}(bytea, boolean)")
    fresh = Limiter("2/minute", store=postgres_url + "?timeout=5", namespace="sf")
    assert fresh.check("k").allowed  # the schema check found it missing and made it
    assert not fresh.check("k").allowed  # a denial reads the state through it


def test_without_prepared_statements_the_check_function_decides(
    postgres_server: PostgresServer,
) -> None:
    # unprepared, the lean statement's planning would cost more than the
    # function call it saves (PgBouncer < 1.21 in transaction mode)
    url = postgres_server.url + "?prepare_threshold=none&table=fw_lean_noprep"
    lim = Limiter("3/minute", store=url)
    backend: Any = lim.backend
    assert backend._one is None
    assert [lim.allow("k") for _ in range(4)] == [True, True, True, False]
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as conn:
        assert Limiter("3/minute", store=conn).backend._one is not None  # type: ignore[attr-defined]
        conn.prepare_threshold = None
        assert Limiter("3/minute", store=conn).backend._one is None  # type: ignore[attr-defined]


def test_limiters_of_a_store_share_one_prepared_statement(postgres_server: PostgresServer) -> None:
    # the rate is in the parameters (typed int8 whatever their size): many
    # limiters do not fill psycopg's cache of prepared statements
    url = f"{postgres_server.url}?table=fw_lean_shared"
    limiters = [
        Limiter(rate, algorithm=algorithm, store=url, namespace=f"s{i}")
        for i, (rate, algorithm) in enumerate(
            [
                ("5/second", "gcra"),
                ("1000/day", "gcra"),
                ("3/minute", "token_bucket"),
                ("7/hour", "leaky_bucket_shaping"),
                ("1/2s", "leaky_bucket"),
            ]
        )
    ]
    for _ in range(12):
        for lim in limiters:
            lim.check("k")
    lean = [s for s in _prepared(limiters[0]) if s.lstrip().startswith("WITH n AS MATERIALIZED")]
    backend: Any = limiters[0].backend
    connections = backend.conn._sync_pool().get_stats()["pool_size"]
    # per connection: the statement without and with the sweep, no more
    assert 1 <= len(lean) <= 2 * connections, lean


@pytest.mark.parametrize(
    ("algorithm", "rates"),
    [
        ("gcra", "3/second"),
        ("gcra", "3/second; 5/10s; 8/minute burst 10"),
        ("leaky_bucket_shaping", "3/second"),
        ("leaky_bucket_shaping", "3/second; 5/10s; 8/minute burst 10"),
        ("fixed_window", "3/second"),
        ("fixed_window", "8/minute"),
        ("sliding_window", "3/second"),
        ("sliding_window", "8/minute"),
    ],
)
def test_lean_and_function_decide_alike(
    postgres_server: PostgresServer, algorithm: str, rates: str
) -> None:
    # the same steps on a test clock, through the lean statement and
    # through the check function (a store that prepares nothing): every
    # field of every decision equal, denials and the deciding rate included
    clock = {"now": FIXED_NOW}
    lean, function = _twins(postgres_server, rates, algorithm, lambda: clock["now"], "alike")
    steps = [(0, 1), (0, 1), (0, 2), (0, 1), (100_000_000, 1), (250_000_000, 3), (0, 1)]
    steps += [(1_000_000_000, 1), (0, 2), (0, 2), (400_000_000, 1), (9_000_000_000, 3)]
    steps += [(0, 3), (0, 1), (60_000_000_000, 2), (0, 0), (10**18, 1)]
    denied = 0
    for step, (dt, cost) in enumerate(steps):
        clock["now"] += dt
        a, b = lean.check("k", cost), function.check("k", cost)
        assert {f: getattr(a, f) for f in FIELDS} == {f: getattr(b, f) for f in FIELDS}, step
        denied += not a.allowed
    assert denied >= 3


@pytest.mark.parametrize(
    "algorithm", ["gcra", "token_bucket", "leaky_bucket_shaping", "fixed_window", "sliding_window"]
)
@pytest.mark.parametrize("seed", range(6))
def test_random_walks_decide_as_the_check_function(
    postgres_server: PostgresServer, algorithm: str, seed: int
) -> None:
    rng = random.Random(seed)
    rates = ["3/second", "10/minute burst 4", "1/hour burst 7", "5/250ms"]
    if algorithm != "fixed_window" and algorithm != "sliding_window":
        # several rates of the GCRA family: one statement, all-or-nothing
        rates += ["3/second; 5/10s; 8/minute burst 10", "2/second; 20/minute"]
    rate = rates[seed % len(rates)]  # each rate in turn
    clock = {"now": FIXED_NOW}
    lean, function = _twins(postgres_server, rate, algorithm, lambda: clock["now"], f"walk{seed}")
    burst = lean.check("probe", 0).limit
    outcomes = set()
    for step in range(200):
        # forward mostly; now and then back, or a day away and back (a
        # clock excursion: the lean statement leaves it to the function)
        clock["now"] += rng.choice(
            [0, 0, 1, 10**6, 10**8, 10**9, 7 * 10**9, 3600 * 10**9, -(10**9), DAY, -DAY]
        )
        cost = rng.choice([1, 1, 1, 2, burst])
        a, b = lean.check("k", cost), function.check("k", cost)
        assert {f: getattr(a, f) for f in FIELDS} == {f: getattr(b, f) for f in FIELDS}, step
        outcomes.add(a.allowed)
    assert outcomes == {True, False}


def _many_worker(url: str, fixed_clock: bool, barrier: Any, out: Any) -> None:
    clock = (lambda: FIXED_NOW) if fixed_clock else None
    lim = Limiter("120/day; 1000/hour", store=url, namespace="manyrace", clock=clock)
    barrier.wait()
    admitted, denied_ones, i = 0, 0, 0
    costs = (1, 3, 2, 5, 1, 4)
    while denied_ones < 2:
        cost = costs[i % len(costs)]
        i += 1
        if lim.check("shared", cost).allowed:
            admitted += cost
        elif cost == 1:
            denied_ones += 1
    out.put(admitted)
    lim.close()


@pytest.mark.parametrize("fixed_clock", [True, False])
def test_four_processes_one_key_several_rates(postgres_url: str, fixed_clock: bool) -> None:
    # the lean statement of several rates under contention: exactly the
    # tighter rate's capacity is admitted, whatever the interleaving
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    out = ctx.Queue()
    url = postgres_url + "?timeout=30&breaker_threshold=0"
    procs = [
        ctx.Process(target=_many_worker, args=(url, fixed_clock, barrier, out)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=180) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    assert sum(results) == 120, results
