"""The one failure policy on Redis: bounded async waits (a pooled connection
included), queued calls released when the breaker opens, a breaker per node
on Redis Cluster with no retry of a timed-out command, check_all under
fail=, and the keyed hash of key ids (issue 10)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis_servers import RedisClusterProcs, RedisServer

import floodwall
from floodwall import ConfigError, Limiter, check_all

KEY_SECRET_ENV = "FLOODWALL_KEY_SECRET"  # the documented variable


@pytest.fixture
def paused_server() -> Iterator[RedisServer]:
    """A server of the test's own; the test pauses it (resumed at the end)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.resume()
        server.cleanup()


# ---- async waits are bounded in total -------------------------------------------


def test_async_wait_for_a_pooled_connection_is_within_the_timeout(
    paused_server: RedisServer,
) -> None:
    """Tasks queued for the only pooled connection waited without a
    deadline (the pool's own timeout was None): the 6th of 6 waited six
    timeouts. Every check now answers within its timeout in total."""
    timeout = 0.3
    lim = Limiter(
        "5/second",
        store=paused_server.url,
        timeout=timeout,
        max_connections=1,
        breaker_threshold=0,  # no breaker: only the deadline bounds the wait
        fail="open",
    )
    assert lim.check("warm").allowed and not lim.check("warm").fallback

    async def one(i: int) -> float:
        start = time.perf_counter()
        decision = await lim.acheck(f"k{i}")
        assert decision.allowed and decision.fallback
        return time.perf_counter() - start

    async def main() -> list[float]:
        lim.backend.conn.async_client()  # type: ignore[attr-defined]
        await lim.acheck("warm-async")  # one pooled connection, open and healthy
        paused_server.pause()
        return await asyncio.gather(*(one(i) for i in range(6)))

    waits = asyncio.run(main())
    # before: the 6th waited about 6 timeouts
    assert max(waits) < 2 * timeout + 0.2, waits
    lim.close()


def test_queued_async_calls_stop_waiting_when_the_breaker_opens(
    paused_server: RedisServer,
) -> None:
    timeout = 1.5
    lim = Limiter(
        "5/second",
        store=paused_server.url,
        timeout=timeout,
        max_connections=1,
        breaker_threshold=1,
        breaker_cooldown=30.0,
        fail="closed",
    )

    async def late(i: int) -> tuple[float, floodwall.Decision]:
        await asyncio.sleep(0.8)  # queued behind the first, 0.8 s later
        start = time.perf_counter()
        decision = await lim.acheck(f"late{i}")
        return time.perf_counter() - start, decision

    async def main() -> tuple[floodwall.Decision, list[tuple[float, floodwall.Decision]]]:
        await lim.acheck("warm")
        paused_server.pause()
        first = asyncio.ensure_future(lim.acheck("first"))
        lates = await asyncio.gather(*(late(i) for i in range(4)))
        return await first, lates

    first, lates = asyncio.run(main())
    assert not first.allowed and first.fallback
    for waited, decision in lates:
        assert not decision.allowed and decision.fallback
        # released when the first timed out and tripped the breaker (about
        # 0.7 s after they queued), not at their own deadline (1.5 s)
        assert waited < timeout - 0.4, lates
    stats = lim.stats()
    assert stats["breaker_trips"] == 1 and stats["errors"] == 1, stats
    lim.close()


def test_a_timed_out_async_check_leaves_its_task_uncancelled(
    paused_server: RedisServer,
) -> None:
    """The deadline's cancellation is the check's own: it comes out as a
    fallback, and neither the task nor an enclosing timeout sees it."""
    timeout = 0.2
    lim = Limiter("5/second", store=paused_server.url, timeout=timeout, fail="open")

    async def main() -> tuple[floodwall.Decision, int, float]:
        await lim.acheck("warm")
        paused_server.pause()
        start = time.perf_counter()
        async with asyncio.timeout(30):  # an enclosing deadline, far away
            decision = await lim.acheck("k")
            await asyncio.sleep(0.05)  # no stray cancel request delivered here
        task = asyncio.current_task()
        assert task is not None
        return decision, task.cancelling(), time.perf_counter() - start

    decision, cancelling, waited = asyncio.run(main())
    assert decision.allowed and decision.fallback
    assert cancelling == 0
    assert waited < 2 * timeout + 0.3, waited
    assert lim.stats()["errors"] == 1
    lim.close()


def test_an_async_check_cancelled_by_its_owner_is_cancelled(
    paused_server: RedisServer,
) -> None:
    """A cancellation from outside (a client gone, a shorter enclosing
    timeout) is not a store failure: it goes through, counting no error."""
    lim = Limiter("5/second", store=paused_server.url, timeout=5.0, fail="open")

    async def main() -> None:
        await lim.acheck("warm")
        paused_server.pause()
        task = asyncio.ensure_future(lim.acheck("k"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):  # shorter than the store's timeout
                await lim.acheck("k2")

    asyncio.run(main())
    assert lim.stats()["errors"] == 0
    lim.close()


# ---- check_all and bad arguments go through one policy --------------------------


def test_check_all_follows_fail_on_redis(fresh_server: RedisServer) -> None:
    seen: list[BaseException] = []
    a = Limiter("5/minute", store=fresh_server.url, timeout=0.2, fail="open", on_error=seen.append)
    b = Limiter("9/minute", store=a.store, namespace="b")
    assert check_all([(a, "x"), (b, "x")]).allowed
    fresh_server.kill()
    decision = check_all([(a, "x"), (b, "y")])
    assert decision.allowed and decision.fallback and seen
    strict = Limiter("5/minute", store=a.store, namespace="strict")
    with pytest.raises(floodwall.StoreError):
        check_all([(strict, "x"), (a, "y")])
    a.close()
    b.close()
    strict.close()


def test_bad_arguments_never_trip_a_shared_breaker(redis_url: str) -> None:
    mine = Limiter("5/minute", store=redis_url, breaker_threshold=1, fail="closed")
    other = Limiter("5/minute", store=mine.store, namespace="other", fail="closed")
    for bad in (True, -1, 1.0, "1"):
        with pytest.raises(floodwall.CostError):
            mine.check("k", bad)  # type: ignore[arg-type]
        with pytest.raises(floodwall.CostError):
            check_all([(mine, "k"), (other, "k")], bad)  # type: ignore[arg-type]
    with pytest.raises(floodwall.KeyTypeError):
        check_all([(mine, "k"), (other, 3)])  # type: ignore[list-item]
    assert mine.stats()["breaker_open"] == 0 and mine.stats()["errors"] == 0
    decision = other.check("k")
    assert decision.allowed and not decision.fallback


# ---- Redis Cluster: one breaker per node ----------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterProcs]:
    procs = RedisClusterProcs(3)
    procs.start()
    try:
        yield procs
    finally:
        for node in procs.nodes:
            node.resume()
        procs.cleanup()


def _keys_by_node(cluster: RedisClusterProcs, lim: Limiter) -> dict[int, list[str]]:
    """300 user keys, grouped by the port of the master that holds them."""
    namer = lim.backend.namer  # type: ignore[attr-defined]
    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        by_port: dict[int, list[str]] = {}
        for i in range(300):
            key = f"user{i}"
            # the backend's key names carry the key's id as the hash tag
            lim_key = namer.keys(key)[0]
            node = client.nodes_manager.get_node_from_slot(key_slot(lim_key))
            by_port.setdefault(node.port, []).append(key)
        return by_port
    finally:
        client.close()


def test_one_hung_master_neither_slows_nor_trips_the_others(cluster: RedisClusterProcs) -> None:
    errors: list[BaseException] = []
    timeout = 0.5
    lim = Limiter(
        "100/minute",
        store=cluster.url,
        timeout=timeout,
        breaker_threshold=2,
        breaker_cooldown=30.0,
        fail="open",
        namespace="hung",
        on_error=errors.append,
    )
    by_port = _keys_by_node(cluster, lim)
    assert len(by_port) == 3
    for keys in by_port.values():
        assert not lim.check(keys[0]).fallback  # topology known, every node healthy
    hung = cluster.nodes[0]
    healthy_keys = [k for port, keys in by_port.items() if port != hung.port for k in keys]
    hung_keys = by_port[hung.port]
    hung.pause()
    try:
        start = time.perf_counter()
        first = lim.check(hung_keys[0])
        took = time.perf_counter() - start
        assert first.allowed and first.fallback
        assert took < 1.8 * timeout, f"a timed-out command was retried: {took:.3f}s"
        lim.check(hung_keys[1])  # the second failure opens that node's breaker
        start = time.perf_counter()
        for key in healthy_keys[:50]:
            d = lim.check(key)
            assert not d.fallback, (key, errors[-1:])
            for key2 in hung_keys[2:5]:
                assert lim.check(key2).fallback
        elapsed = time.perf_counter() - start
        assert elapsed < 2 * timeout, f"healthy nodes were slowed: {elapsed:.3f}s"
        stats = lim.stats()
        assert stats["breaker_open"] == 1 and stats["breaker_trips"] == 1, stats
    finally:
        hung.resume()
        lim.close()


# ---- keyed hash of key ids (issue 10) -------------------------------------------


def _ids(limiter: Limiter, client: redis.Redis) -> set[bytes]:
    limiter.check("192.0.2.1")
    return set(client.scan_iter(match=b"ids:*"))


def test_key_secret_changes_ids_and_the_env_var_is_honoured(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        monkeypatch.delenv(KEY_SECRET_ENV, raising=False)
        unkeyed = _ids(Limiter("5/minute", store=redis_url, namespace="ids"), client)
        client.flushall()
        keyed = _ids(
            Limiter("5/minute", store=redis_url, namespace="ids", key_secret="s3cret"), client
        )
        client.flushall()
        monkeypatch.setenv(KEY_SECRET_ENV, "s3cret")
        from_env = _ids(Limiter("5/minute", store=redis_url, namespace="ids"), client)
        client.flushall()
        monkeypatch.setenv(KEY_SECRET_ENV, "another")
        other = _ids(Limiter("5/minute", store=redis_url, namespace="ids"), client)
        assert len(unkeyed) == len(keyed) == len(from_env) == len(other) == 1
        assert unkeyed != keyed and keyed == from_env and other not in (keyed, unkeyed)
        assert b"192.0.2.1" not in next(iter(keyed))
        # the option wins over the environment
        client.flushall()
        explicit = _ids(
            Limiter("5/minute", store=redis_url, namespace="ids", key_secret="s3cret"), client
        )
        assert explicit == keyed
    finally:
        client.close()


def test_a_limiter_sharing_a_store_shares_its_secret(redis_url: str) -> None:
    first = Limiter("5/minute", store=redis_url, namespace="ids", key_secret=b"k" * 32)
    second = Limiter("5/minute", store=first.store, namespace="ids")
    first.check("alice")
    assert second.peek("alice").remaining == 4


@pytest.mark.parametrize("secret", ["", b"x" * 65, 42])
def test_bad_key_secret_is_a_clear_error(redis_url: str, secret: object) -> None:
    with pytest.raises(ConfigError, match="key_secret must be"):
        Limiter("5/minute", store=redis_url, key_secret=secret)


def test_bad_env_key_secret_names_the_variable(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_SECRET_ENV, "x" * 65)
    with pytest.raises(ConfigError, match=KEY_SECRET_ENV):
        Limiter("5/minute", store=redis_url)
