# test_redis_wire.py - the check command packed once (stores/redis/wire.py).
#
# The bytes a PackedCheck sends are exactly redis-py's packing of the same
# command (FCALL and EVALSHA, one key and several); checks on the packed
# path survive a killed connection (the client's one retry), a server
# restart (FUNCTION LOAD again), and leave no connection checked out of the
# pool, sync and async; a user's client never takes the packed path. The
# async pool's O(1) path (stores/redis/pool.py) never jumps its queue. The
# async reply read from the stream is redis-py's, an error reply included.
from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import redis
from redis_servers import RedisServer

import floodwall
from floodwall.stores.redis.calls import ScriptMode
from floodwall.stores.redis.pool import CheckPool
from floodwall.stores.redis.wire import PackedCheck, usable


def slow_ok(url: str) -> str:
    """The URL with a timeout a loaded test machine never reaches (the
    default 250 ms would open the shared breaker on a slow box)."""
    return url + "?timeout=10"


def redis_py_packing(*args: object) -> bytes:
    conn = redis.Connection()
    return b"".join(conn.pack_command(*args))


ARGV: tuple[bytes, ...] = (b"", b"1", b"1", b"g", b"100", b"600000000", b"60000000000", b"6")


@pytest.mark.parametrize("keys", [[b"fw:k"], [b"a", b"\x00\xff key\r\n", b""]])
@pytest.mark.parametrize("use_fcall", [True, False])
def test_packed_bytes_are_redis_pys(keys: Sequence[bytes], use_fcall: bool) -> None:
    mode = ScriptMode()
    packed = PackedCheck(mode, len(keys), ARGV).command(use_fcall, keys)
    name = ("FCALL", mode.fname) if use_fcall else ("EVALSHA", mode.sha)
    assert packed == redis_py_packing(*name, len(keys), *keys, *ARGV)


def test_only_clients_floodwall_made_take_the_packed_path() -> None:
    assert usable(True, False, {})
    assert not usable(False, False, {})  # a user's client
    assert not usable(True, True, {})  # a cluster
    assert not usable(True, False, {"single_connection_client": True})
    assert not usable(True, False, {"credential_provider": object()})


def _in_use(lim: floodwall.Limiter) -> int:
    pool = lim.backend.conn.sync_client().connection_pool
    return len(pool._in_use_connections)


def test_packed_path_counts_exactly_and_returns_connections(redis_url: str) -> None:
    lim = floodwall.Limiter("5/minute", store=slow_ok(redis_url), namespace="wire")
    try:
        assert lim.backend._wire
        assert [lim.allow("k") for _ in range(7)] == [True] * 5 + [False] * 2
        assert _in_use(lim) == 0
    finally:
        lim.close()


def test_packed_path_survives_a_killed_connection(redis_url: str) -> None:
    lim = floodwall.Limiter("5/minute", store=slow_ok(redis_url), namespace="wire", fail="raise")
    admin = redis.Redis.from_url(redis_url)
    try:
        assert lim.allow("k")
        admin.client_kill_filter(_type="normal", skipme=True)
        assert lim.allow("k")  # the client's retry reconnects
        assert lim.check("k").remaining == 2
        assert _in_use(lim) == 0
    finally:
        admin.close()
        lim.close()


def test_packed_path_after_a_server_restart(fresh_server: RedisServer) -> None:
    lim = floodwall.Limiter(
        "5/minute", store=slow_ok(fresh_server.url), namespace="wire", fail="raise"
    )
    try:
        assert lim.allow("k")
        fresh_server.stop()
        fresh_server.start()  # no function, no script, no data
        assert lim.check("k").remaining == 4
        assert _in_use(lim) == 0
    finally:
        lim.close()


def test_packed_path_async_counts_exactly(redis_url: str) -> None:
    async def run() -> list[bool]:
        lim = floodwall.Limiter("20/minute", store=slow_ok(redis_url), namespace="wire-async")
        try:
            out = await asyncio.gather(*(lim.aallow("k") for _ in range(64)))
            client = lim.backend.conn.async_client()
            assert len(client.connection_pool._in_use_connections) == 0
            return list(out)
        finally:
            await lim.backend.aclose()

    out = asyncio.run(run())
    assert out.count(True) == 20 and len(out) == 64


def test_a_small_pool_serves_a_burst_exactly_and_stays_bounded(redis_url: str) -> None:
    """200 tasks on a pool of 2: free connections go by the fast path, the
    others queue in the pool and are woken as connections come back."""

    async def run() -> tuple[list[bool], int, int]:
        lim = floodwall.Limiter(
            "150/minute", store=slow_ok(redis_url), namespace="wire-burst", max_connections=2
        )
        try:
            out = await asyncio.gather(*(lim.aallow("k") for _ in range(200)))
            pool = lim.backend.conn.async_client().connection_pool
            assert isinstance(pool, CheckPool)
            made = len(pool._available_connections) + len(pool._in_use_connections)
            return list(out), made, len(pool._in_use_connections)
        finally:
            await lim.backend.aclose()

    out, made, in_use = asyncio.run(run())
    assert out.count(True) == 150 and len(out) == 200
    assert 1 <= made <= 2 and in_use == 0


def test_the_fast_path_leaves_queued_tasks_to_the_pool(redis_url: str) -> None:
    async def run() -> None:
        pool = CheckPool.from_url(redis_url, max_connections=1, timeout=None)
        try:
            conn = await pool.get_connection()
            assert pool.take_free() is None  # none free
            waiter = asyncio.ensure_future(pool.get_connection())
            await asyncio.sleep(0.01)  # queued behind the only connection
            assert pool.put_back(conn) is False  # release() must wake the task
            await pool.release(conn)
            assert await asyncio.wait_for(waiter, 5) is conn
            assert pool.put_back(conn) is True  # nobody queued: O(1)
            assert pool.take_free() is conn
            assert pool.take_free() is None
            assert pool.put_back(conn) is True
        finally:
            await pool.disconnect()

    asyncio.run(run())


def test_cancelled_async_check_leaves_a_usable_connection(redis_url: str) -> None:
    async def run() -> None:
        lim = floodwall.Limiter("100/minute", store=slow_ok(redis_url), namespace="wire-cancel")
        try:
            task = asyncio.ensure_future(lim.aallow("k"))
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # a connection left holding an unread reply would give the next
            # check that reply: every later check must count from where it is
            d1 = await lim.acheck("k")
            d2 = await lim.acheck("k")
            assert d2.remaining == d1.remaining - 1
        finally:
            await lim.backend.aclose()

    asyncio.run(run())


def test_packed_path_async_survives_a_killed_connection(redis_url: str) -> None:
    """The server drops the connection: the first attempt reads end-of-file,
    the client's retry policy reconnects and sends the check once more."""

    async def run() -> list[int]:
        lim = floodwall.Limiter(
            "5/minute", store=slow_ok(redis_url), namespace="wire-async-kill", fail="raise"
        )
        admin = redis.Redis.from_url(redis_url)
        try:
            lim.reset("k")
            first = (await lim.acheck("k")).remaining
            admin.client_kill_filter(_type="normal", skipme=True)
            second = (await lim.acheck("k")).remaining
            third = (await lim.acheck("k")).remaining
            client = lim.backend.conn.async_client()
            assert len(client.connection_pool._in_use_connections) == 0
            return [first, second, third]
        finally:
            admin.close()
            await lim.backend.aclose()

    assert asyncio.run(run()) == [4, 3, 2]


def test_packed_path_async_after_a_server_restart(fresh_server: RedisServer) -> None:
    """A restarted server: a dead connection (retried), then an error reply
    for the missing function, read by redis-py's parser from its first line
    (the routine then loads the function again)."""

    async def run() -> list[int]:
        lim = floodwall.Limiter(
            "5/minute", store=slow_ok(fresh_server.url), namespace="wire-async", fail="raise"
        )
        try:
            first = (await lim.acheck("k")).remaining
            fresh_server.stop()
            fresh_server.start()  # no function, no script, no data
            second = (await lim.acheck("k")).remaining
            third = (await lim.acheck("k")).remaining
            return [first, second, third]
        finally:
            await lim.backend.aclose()

    assert asyncio.run(run()) == [4, 4, 3]


def test_the_async_reply_is_the_one_redis_py_reads(redis_url: str) -> None:
    """The check's reply read from the stream is what ``execute_command``
    returns for the same call, error replies included."""
    from floodwall.stores.redis.wire import send_async

    async def run() -> None:
        lim = floodwall.Limiter("5/minute", store=slow_ok(redis_url), namespace="wire-reply")
        try:
            lim.reset("k")
            backend = lim.backend
            await lim.acheck("k")  # the function is loaded
            client = backend.conn.async_client()
            keys, segment = backend._keys_packed("k")
            mode = backend.conn.scripts
            packed = backend._packed1.join(mode.use_fcall, segment)
            # bounded by the test: the call itself has no deadline here
            ours = await asyncio.wait_for(send_async(client, packed, True), 5)
            theirs = await client.execute_command(
                "FCALL", mode.fname, len(keys), *keys, *backend._argv1
            )
            assert isinstance(ours, bytes) and ours.split()[2] == b"3"
            assert theirs.split()[2] == b"2" and ours.split()[:2] == theirs.split()[:2]
            bad = PackedCheck(mode, 1, (b"", b"x", b"1", *backend._parts)).join(
                mode.use_fcall, segment
            )
            with pytest.raises(redis.ResponseError, match="bad cost|floodwall"):
                await asyncio.wait_for(send_async(client, bad, True), 5)
            assert (await lim.acheck("k")).remaining == 1  # the connection reads on in step
            assert len(client.connection_pool._in_use_connections) == 0
        finally:
            await lim.backend.aclose()

    asyncio.run(run())


def test_each_loop_has_its_deadline_timer_and_a_gone_loop_drops_it(redis_url: str) -> None:
    """Checks on two event loops (one after the other, as ``asyncio.run`` in
    turn or threads each with a loop): each loop's deadlines share that
    loop's timer, made once, and a loop that is gone leaves nothing behind."""
    import gc

    lim = floodwall.Limiter("100/minute", store=slow_ok(redis_url), namespace="wire-loops")
    conn = lim.backend.conn

    async def checks() -> object:
        timers = set()
        for _ in range(3):
            assert await lim.aallow("k")
            timers.add(id(conn._timer))
        assert len(timers) == 1
        timer = conn._timer
        await conn.aclose()  # this loop's client
        return timer

    try:
        first = asyncio.run(checks())
        second = asyncio.run(checks())
        assert first is not second
        gc.collect()
        assert first.loop is None and second.loop is None  # type: ignore[attr-defined]
        # the connection is shared by URL: loops of other tests may still be
        # alive and keep theirs, but none of these two is left
        left = list(conn._timers.values())
        assert all(t is not first and t is not second for t in left)
    finally:
        lim.close()


def test_key_memory_is_bounded_and_exact(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from floodwall.stores.redis import backend

    monkeypatch.setattr(backend, "KEY_MEMORY_MAX", 8)
    lim = floodwall.Limiter("2/minute", store=slow_ok(redis_url), namespace="wire-mem")
    try:
        for round_ in range(3):
            for i in range(20):  # more keys than remembered: forgotten, recomputed
                assert lim.allow(f"k{i}") is (round_ < 2)
                assert len(lim.backend._known) <= 8
        assert lim.backend._known  # str keys are remembered
        assert lim.allow(b"k0") is False  # bytes: the same Redis key as "k0"
    finally:
        lim.close()


def test_a_hash_tag_function_is_asked_on_every_check(redis_url: str) -> None:
    calls: list[object] = []

    def tag(key: object) -> str:
        calls.append(key)
        return "tenant"

    lim = floodwall.Limiter(
        "5/minute", store=slow_ok(redis_url), namespace="wire-tag", hash_tag=tag
    )
    try:
        for _ in range(3):
            lim.allow("k")
        assert len(calls) == 3 and not lim.backend._known
    finally:
        lim.close()
