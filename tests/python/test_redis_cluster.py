# test_redis_cluster.py - a real Redis Cluster: 3 masters on loopback ports,
# created with `redis-cli --cluster create`, started by the test.
#
# Several rates on one key and check_all over several keys (with a shared
# hash tag) run as one script call in one slot: no CROSSSLOT, ever; a
# group whose keys would span slots is refused up front with a ConfigError
# that says how to fix it.
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis_servers import RedisClusterProcs

import floodwall
from floodwall import ConfigError, CostError, Limiter, Rate

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterProcs]:
    procs = RedisClusterProcs(3)
    procs.start()
    try:
        yield procs
    finally:
        procs.cleanup()


@pytest.fixture
def client(cluster: RedisClusterProcs) -> Iterator[RedisCluster]:
    c = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    c.flushall(target_nodes=RedisCluster.PRIMARIES)
    try:
        yield c
    finally:
        c.close()


class FakeClock:
    def __init__(self, now: int = 1_700_000_000 * 10**9) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_keys_spread_over_the_masters(cluster: RedisClusterProcs, client: RedisCluster) -> None:
    lim = Limiter("2/second", store=cluster.url)
    for i in range(60):
        assert lim.allow(f"user{i}") and lim.allow(f"user{i}") and not lim.allow(f"user{i}")
    per_node = [client.dbsize(target_nodes=node) for node in client.get_primaries()]
    assert sum(per_node) == 60 and all(n > 0 for n in per_node), per_node
    assert lim.stats()["active_keys"] == 60
    lim.clear()
    assert lim.stats()["active_keys"] == 0


def test_several_rates_one_slot(cluster: RedisClusterProcs, client: RedisCluster) -> None:
    lim = Limiter("3/second; 5/minute; 100/day", algorithm="sliding_log", store=cluster.url)
    for i in range(30):
        key = f"k{i}"
        assert [lim.allow(key) for _ in range(4)] == [True, True, True, False]
    keys = [k for node in client.get_primaries() for k in client.keys(target_nodes=node)]
    assert len(keys) == 90
    by_tag: dict[bytes, set[int]] = {}
    for k in keys:
        tag = k[k.index(b"{") + 1 : k.index(b"}")]
        by_tag.setdefault(tag, set()).add(key_slot(k))
    assert all(len(slots) == 1 for slots in by_tag.values())


def test_check_all_with_a_hash_tag(cluster: RedisClusterProcs) -> None:
    """Keys "tenant/user" and "tenant": the tenant is the tag of both."""
    tag = lambda key: key.split("/")[0]  # noqa: E731
    user = Limiter("2/second", store=cluster.url, namespace="user", hash_tag=tag)
    org = Limiter("3/second", store=cluster.url, namespace="org", hash_tag=tag)
    for tenant in ("acme", "globex", "initech", "umbrella"):
        results = [
            floodwall.check_all([(user, f"{tenant}/u{i % 2}"), (org, tenant)]).allowed
            for i in range(5)
        ]
        assert results == [True, True, True, False, False]
        d = floodwall.check_all([(user, f"{tenant}/u9"), (org, tenant)])
        assert not d.allowed and d.rate == Rate(3, 1)
        assert user.peek(f"{tenant}/u9").remaining == 2  # nothing consumed


def test_check_all_with_a_constant_tag(cluster: RedisClusterProcs) -> None:
    a = Limiter("1/second", store=cluster.url, namespace="ca", hash_tag="shared")
    b = Limiter("5/second", store=cluster.url, namespace="cb", hash_tag="shared")
    assert floodwall.check_all([(a, "x"), (b, "y")]).allowed
    d = floodwall.check_all([(a, "x"), (b, "z")])
    assert not d.allowed and d.rate == Rate(1, 1)


def test_check_all_across_slots_is_refused_clearly(cluster: RedisClusterProcs) -> None:
    a = Limiter("1/second", store=cluster.url, namespace="sa")
    b = Limiter("5/second", store=cluster.url, namespace="sb")
    keys = [f"key{i}" for i in range(20)]
    with pytest.raises(ConfigError, match="hash_tag"):
        for k in keys:  # some pair surely lands in two slots
            floodwall.check_all([(a, k), (b, k + "x")])
    with pytest.raises(CostError):
        floodwall.check_all([(a, "k"), (b, "k")], cost=2)


def test_vectors_on_the_cluster(cluster: RedisClusterProcs) -> None:
    for name in ("gcra", "sliding_window", "sliding_log"):
        data = json.loads((VECTORS / f"{name}.json").read_text())
        for n, case in enumerate(data["cases"][:12]):
            clock = FakeClock()
            lim = Limiter(
                Rate.from_ns(case["rate"], case["period_ns"], case["burst"] or None),
                algorithm=data["algorithm"],
                store=cluster.url,
                namespace=f"cv{n}",
                clock=clock,
            )
            for step in case["steps"]:
                clock.now = step["t"]
                if "error" in step:
                    with pytest.raises(CostError):
                        lim.check(step["key"], step["cost"])
                    continue
                d = lim.check(step["key"], step["cost"])
                assert (d.allowed, d.remaining, d.retry_after_ns, d.reset_after_ns) == (
                    step["allowed"],
                    step["remaining"],
                    step["retry_after_ns"],
                    step["reset_after_ns"],
                ), (name, case["name"])


def test_existing_cluster_client_and_noscript(
    cluster: RedisClusterProcs, client: RedisCluster
) -> None:
    lim = Limiter("2/second; 10/minute", store=client)
    assert lim.allow("a") and lim.allow("a") and not lim.allow("a")
    for node in client.get_primaries():
        client.execute_command("SCRIPT FLUSH", target_nodes=node)
    for i in range(20):
        assert lim.allow(f"b{i}")  # NOSCRIPT on each node: loaded again
    lim.close()
    assert client.ping()


def test_async_cluster(cluster: RedisClusterProcs) -> None:
    async def go() -> None:
        user = Limiter("2/second", store=cluster.url, namespace="au", hash_tag="t")
        org = Limiter("3/second", store=cluster.url, namespace="ao", hash_tag="t")
        got = [await user.aallow(f"k{i % 2}") for i in range(5)]
        assert got == [True, True, True, True, False]
        d = await floodwall.acheck_all([(user, "z"), (org, "o")])
        assert d.allowed
        await user.aclear()
        assert (await user.apeek("k0")).remaining == 2
        await user.backend.aclose()

    asyncio.run(go())
