# test_redis_sentinel.py - redis+sentinel:// against a real Sentinel.
#
# A master and one Sentinel watching it, both started by the test: the
# limiter finds the master through the Sentinel, sync and async.
from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis_servers import RedisServer, SentinelProc

from floodwall import Limiter


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelProc]:
    master = RedisServer(name="sentinel-master")
    master.start()
    proc = SentinelProc(master, service="fwmaster")
    try:
        proc.start()
        yield proc
    finally:
        proc.cleanup()
        master.cleanup()


def test_sentinel_url_finds_the_master(sentinel: SentinelProc) -> None:
    lim = Limiter("2/second", store=sentinel.url + "?timeout=1", namespace="sent")
    assert [lim.allow("k") for _ in range(3)] == [True, True, False]
    assert lim.stats()["active_keys"] == 1
    lim.clear()

    async def go() -> None:
        assert await lim.aallow("k2")
        await lim.backend.aclose()

    asyncio.run(go())


def test_sentinel_db_in_path(sentinel: SentinelProc) -> None:
    lim = Limiter("1/second", store=f"{sentinel.url}/3?timeout=1", namespace="sdb")
    assert lim.allow("k") and not lim.allow("k")
    import redis

    r = redis.Redis(port=sentinel.master.port, db=3)
    assert len(r.keys("sdb:*")) == 1
    r.close()


def test_unknown_service_fails_per_policy(sentinel: SentinelProc) -> None:
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/nosuchservice?timeout=0.5"
    lim = Limiter("1/second", store=url, fail="closed")
    d = lim.check("k")
    assert d.fallback and not d.allowed
