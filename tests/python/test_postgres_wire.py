# test_postgres_wire.py - the one-rate lean check sent by floodwall's own
# prepared-statement wire (stores/postgres/wire.py): the statement is
# prepared again when the server forgot it (a pooler's DISCARD ALL, a
# DEALLOCATE), a user's own connection (in or out of autocommit) is left
# as it was, errors keep their psycopg class, and an answer of the wrong
# shape is a StoreError. (That the decision computed from its two values
# is the check function's: test_postgres_lean.py.)
from __future__ import annotations

from typing import Any

import psycopg
import pytest
from postgres_servers import PostgresServer

from floodwall import Limiter
from floodwall.errors import StoreError
from floodwall.stores.postgres.wire import Prepared


def _pool_connections(lim: Limiter) -> tuple[Any, list[Any]]:
    backend: Any = lim.backend
    pool = backend.conn._sync_pool()
    return pool, [pool.getconn() for _ in range(pool.get_stats()["pool_size"])]


@pytest.mark.parametrize("forget", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_a_forgotten_statement_is_prepared_again(
    postgres_server: PostgresServer, forget: str
) -> None:
    url = f"{postgres_server.url}?table=fw_wire_forget"
    lim = Limiter("3/minute", store=url, namespace=forget.replace(" ", "_"))
    assert lim.check("k").allowed
    pool, conns = _pool_connections(lim)
    try:
        for c in conns:
            c.execute(forget)
            assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    finally:
        for c in conns:
            pool.putconn(c)
    # the next checks find the statement gone, prepare it again, and count
    # each unit once: 2 more admitted, then denied
    assert [lim.allow("k") for _ in range(3)] == [True, True, False]
    stats = lim.stats()
    assert stats["errors"] == 0 and stats["fallbacks"] == 0, stats


@pytest.mark.parametrize("autocommit", [True, False])
def test_a_users_connection_is_left_as_it_was(
    postgres_server: PostgresServer, autocommit: bool
) -> None:
    with psycopg.connect(postgres_server.conninfo, autocommit=autocommit) as conn:
        lim = Limiter("2/minute", store=conn, namespace=f"user{autocommit}")
        assert lim.backend._one is not None  # type: ignore[attr-defined]
        assert [lim.allow("k") for _ in range(3)] == [True, True, False]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # the user's own statements still work, psycopg's prepared ones too
        for _ in range(6):
            assert conn.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)
        assert [lim.allow("j") for _ in range(3)] == [True, True, False]


def test_an_error_keeps_its_psycopg_class(postgres_server: PostgresServer) -> None:
    bad = Prepared("SELECT 1 / $1::int", (0,))
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as conn:
        assert int.from_bytes(bad.run(conn, [b"1"]).get_value(0, 0), "big") == 1
        with pytest.raises(psycopg.errors.DivisionByZero):
            bad.run(conn, [b"0"])
        # the connection is usable afterwards
        assert int.from_bytes(bad.run(conn, [b"1"]).get_value(0, 0), "big") == 1


def test_an_answer_of_the_wrong_shape_is_a_store_error(postgres_server: PostgresServer) -> None:
    lim = Limiter("3/minute", store=f"{postgres_server.url}?table=fw_wire_shape")
    one: Any = lim.backend._one  # type: ignore[attr-defined]
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as conn:
        for sql in ("SELECT true", "SELECT 2::int8, 1::int8", "SELECT true, -1::int8"):
            res = Prepared(sql, ()).run(conn, [])
            with pytest.raises(StoreError, match="PostgreSQL check"):
                one.row(res, ([b"k"], 1, None))


def test_a_forgotten_statement_is_prepared_again_async(postgres_server: PostgresServer) -> None:
    import asyncio

    async def main() -> list[bool]:
        lim = Limiter(
            "3/minute", store=f"{postgres_server.url}?table=fw_wire_aforget", namespace="a"
        )
        assert await lim.aallow("k")
        apool = await lim.backend.conn._async_pool()  # type: ignore[attr-defined]
        assert apool.idle
        for c in apool.idle:
            await c.execute("DEALLOCATE ALL")
        out = [await lim.aallow("k") for _ in range(3)]
        await lim.aclose()
        return out

    assert asyncio.run(main()) == [True, True, False]


def test_the_async_pool_with_its_free_path(postgres_server: PostgresServer) -> None:
    # LoopPool hands an idle connection out with no deadline when a slot is
    # free and nobody waits (and only then: a task queued for the one slot
    # gets the connection given back, and a newcomer waits its turn); a
    # connection handed out is no longer idle
    import asyncio

    import psycopg as pg

    from floodwall.stores.postgres.connection import LoopPool

    async def main() -> None:
        pool = LoopPool(postgres_server.conninfo, {"autocommit": True}, pg.AsyncConnection, 1)
        first = await pool.getconn(5.0)
        queued = asyncio.create_task(pool.getconn(5.0))
        await asyncio.sleep(0.05)  # queued for the slot
        await pool.putconn(first)
        newcomer = asyncio.create_task(pool.getconn(0.3))
        assert await queued is first
        with pytest.raises(TimeoutError):
            await newcomer  # the slot is the queued task's: the newcomer waited and gave up
        await pool.putconn(first)
        again = await pool.getconn(5.0)  # the free path: the idle connection, at once
        assert again is first and pool.idle == []
        await pool.putconn(again)
        await pool.close()

    asyncio.run(main())
