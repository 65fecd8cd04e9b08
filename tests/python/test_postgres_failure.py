# test_postgres_failure.py - the shared failure policy on a real PostgreSQL
# server: the server killed and restarted under fail=open|closed|raise (sync
# and async), a check held by a lock cut at its timeout, a hung server cut
# at the timeout on the client side, the breaker and on_error.
from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
from postgres_servers import PostgresServer

from floodwall import Limiter, StoreError

TIMEOUT = 0.5


def _limiter(server: PostgresServer, fail: str, **options: Any) -> Limiter:
    options.setdefault("breaker_threshold", 0)  # every call tried: no breaker here
    return Limiter(
        "5/minute", store=server.url, fail=fail, timeout=TIMEOUT, connect_timeout=1, **options
    )


def _until_served(check: Any, deadline_s: float = 30.0) -> Any:
    """Check until the store answers for real (the pool reconnects after a
    restart on its own schedule); every answer meanwhile is a fallback."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            d = check()
        except StoreError:
            d = None
        if d is not None and not d.fallback:
            return d
        assert time.monotonic() < deadline, "the store never answered after the restart"
        time.sleep(0.1)


@pytest.mark.parametrize("fail", ["open", "closed", "raise"])
def test_killed_and_restarted_sync(fresh_postgres: PostgresServer, fail: str) -> None:
    errors: list[BaseException] = []
    lim = _limiter(fresh_postgres, fail, on_error=errors.append)
    assert [lim.check("k").remaining for _ in range(2)] == [4, 3]
    fresh_postgres.kill()
    start = time.monotonic()
    if fail == "raise":
        with pytest.raises(StoreError):
            lim.check("k")
    else:
        d = lim.check("k")
        assert d.fallback
        assert d.allowed is (fail == "open")
        assert d.remaining == 0
        if fail == "closed":
            assert d.retry_after > 0
    assert time.monotonic() - start < 4 * TIMEOUT + 2.5  # bounded (connect counted)
    assert errors, "on_error saw the outage"
    fresh_postgres.start()
    d = _until_served(lambda: lim.check("k"))
    # the state survived the restart: two units were taken before
    assert d.allowed and d.remaining == 2
    assert lim.stats()["errors"] >= 1


@pytest.mark.parametrize("fail", ["open", "closed", "raise"])
def test_killed_and_restarted_async(fresh_postgres: PostgresServer, fail: str) -> None:
    lim = _limiter(fresh_postgres, fail)

    async def scenario() -> None:
        assert (await lim.acheck("k")).remaining == 4
        fresh_postgres.kill()
        start = time.monotonic()
        if fail == "raise":
            with pytest.raises(StoreError):
                await lim.acheck("k")
        else:
            d = await lim.acheck("k")
            assert d.fallback and d.allowed is (fail == "open")
        assert time.monotonic() - start < 4 * TIMEOUT + 2.5
        fresh_postgres.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                d = await lim.acheck("k")
            except StoreError:
                d = None
            if d is not None and not d.fallback:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert d.allowed and d.remaining == 3

    asyncio.run(scenario())


def _hold_key_lock(server: PostgresServer, lim: Limiter, key: str) -> psycopg.Connection:
    """A transaction that holds ``key``'s existing row locked, and its
    advisory lock (what a stuck check, or a long transaction of the
    application, would hold)."""
    backend: Any = lim.backend
    name = backend.namer.keys(key)[0]
    holder = psycopg.connect(server.conninfo)
    row = holder.execute(
        f"SELECT 1 FROM {backend.conn.layout.table} WHERE k = %s FOR UPDATE", (name,)
    ).fetchone()
    assert row is not None, "the key's row must exist"
    holder.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(encode(%s::bytea, 'hex')))",
        (backend.conn.layout.lock_class, name),
    )
    return holder


@pytest.mark.parametrize("fail", ["open", "raise"])
def test_held_lock_is_cut_at_the_timeout(fresh_postgres: PostgresServer, fail: str) -> None:
    lim = _limiter(fresh_postgres, fail)
    assert lim.check("busy").allowed  # schema made, pool warm
    holder = _hold_key_lock(fresh_postgres, lim, "busy")
    try:
        start = time.monotonic()
        if fail == "raise":
            with pytest.raises(StoreError):
                lim.check("busy")
        else:
            assert lim.check("busy").fallback
        elapsed = time.monotonic() - start
        assert TIMEOUT * 0.8 <= elapsed < TIMEOUT + 1.0, elapsed
        # another key is not held up
        assert not lim.check("free").fallback
    finally:
        holder.rollback()
        holder.close()
    d = lim.check("busy")
    assert not d.fallback and d.remaining == 3  # the cut check consumed nothing


def test_held_lock_is_cut_at_the_timeout_async(fresh_postgres: PostgresServer) -> None:
    lim = _limiter(fresh_postgres, "closed")
    assert lim.check("busy").allowed
    holder = _hold_key_lock(fresh_postgres, lim, "busy")

    async def scenario() -> float:
        start = time.monotonic()
        d = await lim.acheck("busy")
        assert d.fallback and not d.allowed
        return time.monotonic() - start

    try:
        elapsed = asyncio.run(scenario())
        assert elapsed < TIMEOUT + 1.0, elapsed
    finally:
        holder.rollback()
        holder.close()


def test_hung_server_is_cut_on_the_client_side(fresh_postgres: PostgresServer) -> None:
    lim = _limiter(fresh_postgres, "open")
    assert not lim.check("k").fallback  # a pooled connection, open
    fresh_postgres.pause()
    try:
        start = time.monotonic()
        d = lim.check("k")
        elapsed = time.monotonic() - start
        assert d.fallback and d.allowed
        assert elapsed < TIMEOUT * 2 + 1.5, elapsed

        async def one() -> Any:
            return await lim.acheck("k")

        start = time.monotonic()
        d = asyncio.run(one())
        assert d.fallback
        assert time.monotonic() - start < TIMEOUT * 2 + 2.5
    finally:
        fresh_postgres.resume()
    assert not _until_served(lambda: lim.check("k")).fallback


def test_breaker_skips_a_dead_server(fresh_postgres: PostgresServer) -> None:
    lim = _limiter(fresh_postgres, "open", breaker_threshold=2, breaker_cooldown=30)
    assert not lim.check("k").fallback
    fresh_postgres.kill()
    for _ in range(2):
        assert lim.check("k").fallback
    start = time.monotonic()
    for _ in range(50):
        assert lim.check("k").fallback
    assert time.monotonic() - start < 0.1  # skipped, not tried
    stats = lim.stats()
    assert stats["breaker_open"] == 1 and stats["breaker_trips"] == 1
