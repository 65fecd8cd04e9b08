# test_redis_backend.py - the Redis store through floodwall's public API.
#
# Limiter(store="redis://...") on a real server: the shared vectors through
# the backend (with a fake clock), decisions and counters, several rates,
# check_all, key names (hashed, plain, hash_tag, hostile keys), expiry,
# NOSCRIPT recovery, URL parsing for every scheme, existing clients, the
# async API, and bad input.
from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from redis_servers import RedisServer

import floodwall
from floodwall import ConfigError, CostError, KeyTypeError, Limiter, Rate
from floodwall.stores import LimitSpec, open_backend
from floodwall.stores.redis import RedisBackend, from_client, parse_url

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ALGORITHM_FILES = sorted(p for p in VECTORS.glob("*.json") if "cases" in json.loads(p.read_text()))
ALGORITHMS = (
    "gcra",
    "token_bucket",
    "leaky_bucket",
    "leaky_bucket_shaping",
    "fixed_window",
    "sliding_window",
    "sliding_log",
)


class FakeClock:
    def __init__(self, now: int = 1_700_000_000 * 10**9) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    try:
        yield c
    finally:
        c.close()


def fields(d: floodwall.Decision) -> tuple[bool, int, int, int, int, int]:
    return (d.allowed, d.limit, d.remaining, d.retry_after_ns, d.reset_after_ns, d.delay_ns)


# ---------------------------------------------------------------- vectors


@pytest.mark.parametrize("scripting", ["function", "eval"])
@pytest.mark.parametrize("path", ALGORITHM_FILES, ids=lambda p: p.stem)
def test_vectors_through_the_limiter(redis_url: str, path: Path, scripting: str) -> None:
    data = json.loads(path.read_text())
    algorithm = data["algorithm"]
    for n, case in enumerate(data["cases"]):
        clock = FakeClock()
        burst = case["burst"] or None
        lim = Limiter(
            Rate.from_ns(case["rate"], case["period_ns"], burst),
            algorithm=algorithm,
            store=redis_url,
            namespace=f"vec{n}",
            clock=clock,
            scripting=scripting,
        )
        try:
            for i, step in enumerate(case["steps"]):
                clock.now = step["t"]
                where = f"{case['name']} step {i}"
                if "error" in step:
                    with pytest.raises(CostError):
                        lim.check(step["key"], step["cost"])
                    continue
                d = lim.check(step["key"], step["cost"])
                assert fields(d) == (
                    step["allowed"],
                    step["limit"],
                    step["remaining"],
                    step["retry_after_ns"],
                    step["reset_after_ns"],
                    step["delay_ns"],
                ), where
                assert d.fallback is False
                assert d.rate == lim.rates[0]
        finally:
            lim.close()


# ---------------------------------------------------------------- basics


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_burst_then_denied_then_reset(redis_url: str, algorithm: str) -> None:
    # per hour: a fixed window on Redis's clock must not roll over mid-burst
    lim = Limiter("5/hour", algorithm=algorithm, store=redis_url)
    assert [lim.allow("alice") for _ in range(6)] == [True] * 5 + [False]
    denied = lim.check("alice")
    assert not denied.allowed and denied.retry_after > 0 and denied.limit == 5
    assert lim.allow("bob")  # other keys are independent
    assert lim.peek("alice").allowed is False
    lim.reset("alice")
    assert lim.peek("alice").remaining == 5
    assert lim.allow("alice")
    stats = lim.stats()
    assert stats["allowed"] == 7 and stats["denied"] == 2 and stats["active_keys"] == 2
    lim.clear()
    assert lim.stats()["active_keys"] == 0
    lim.close()


def test_real_clock_waits_and_recovers(redis_url: str) -> None:
    lim = Limiter("10/second", store=redis_url)
    for _ in range(10):
        assert lim.allow("k")
    d = lim.check("k")
    assert not d.allowed and 0 < d.retry_after <= 0.1 + 1e-9
    time.sleep(d.retry_after + 0.01)
    assert lim.allow("k")


def test_keys_expire_once_fresh(redis_url: str, client: redis.Redis) -> None:
    for algorithm in ALGORITHMS:
        lim = Limiter("5/second", algorithm=algorithm, store=redis_url, namespace="ttl")
        lim.check("k", 2)
        (key,) = client.keys(f"ttl:{algorithm}:*")
        pttl = client.pttl(key)
        assert 0 < pttl <= 2001, (algorithm, pttl)
    time.sleep(2.1)
    assert client.keys("ttl:*") == []


def test_peek_never_writes(redis_url: str, client: redis.Redis) -> None:
    for algorithm in ALGORITHMS:
        lim = Limiter("5/second", algorithm=algorithm, store=redis_url)
        d = lim.peek("nobody")
        assert d.allowed and d.remaining == 5 and d.reset_after_ns == 0
    assert client.dbsize() == 0


def test_several_rates_all_or_nothing(redis_url: str) -> None:
    clock = FakeClock()
    lim = Limiter("4/second; 5/minute", store=redis_url, clock=clock)
    assert all(lim.allow("u") for _ in range(4))
    d = lim.check("u")
    assert not d.allowed and d.rate == Rate(4, 1)
    clock.now += 10**9
    ok = lim.check("u")  # 3 left per second, 0 per minute: the fewest decide
    assert ok.allowed and ok.rate == Rate(5, 60) and ok.remaining == 0
    d = lim.check("u")
    assert not d.allowed and d.rate == Rate(5, 60)
    # the per-second rate did not lose units to the denied requests
    clock.now += 10**9
    assert lim.peek("u").rate == Rate(5, 60)
    lim.reset("u")
    assert lim.peek("u").remaining == 4


def test_check_all_across_limiters(redis_url: str) -> None:
    clock = FakeClock()
    user = Limiter("2/second", store=redis_url, namespace="user", clock=clock)
    org = Limiter("3/second", store=redis_url, namespace="org", clock=clock)
    assert floodwall.check_all([(user, "alice"), (org, "acme")]).allowed
    assert floodwall.check_all([(user, "bob"), (org, "acme")]).allowed
    assert floodwall.check_all([(user, "carol"), (org, "acme")]).allowed
    d = floodwall.check_all([(user, "dave"), (org, "acme")])
    assert not d.allowed and d.rate == Rate(3, 1)
    assert user.peek("dave").remaining == 2  # nothing consumed for dave
    d = floodwall.check_all([(user, "alice"), (org, "acme2")], cost=2)
    assert not d.allowed and d.rate == Rate(2, 1)
    assert org.peek("acme2").remaining == 3
    with pytest.raises(CostError):
        floodwall.check_all([(user, "alice"), (org, "acme")], cost=3)


def test_check_all_needs_one_store(redis_url: str) -> None:
    a = Limiter("2/second", store=redis_url)
    b = Limiter("2/second", store="memory://")
    with pytest.raises(ConfigError):
        floodwall.check_all([(a, "x"), (b, "y")])


@pytest.mark.parametrize("scripting", ["auto", "function", "eval"])
def test_script_reloaded_after_flush(redis_url: str, client: redis.Redis, scripting: str) -> None:
    lim = Limiter("5/second", store=redis_url, scripting=scripting)
    assert lim.allow("k")
    client.script_flush()
    client.function_flush()
    assert lim.allow("k")
    assert lim.peek("k").remaining == 3

    async def go() -> None:
        client.script_flush()
        client.function_flush()
        assert await lim.aallow("k")
        await lim.backend.aclose()

    asyncio.run(go())
    names = [dict(zip(lib[::2], lib[1::2]))[b"library_name"] for lib in client.function_list()]
    if scripting == "eval":
        assert names == []
    else:
        assert len(names) == 1 and names[0].startswith(b"floodwall_")


def test_auto_falls_back_to_evalsha(redis_url: str, client: redis.Redis) -> None:
    """A user whose ACL forbids FCALL and FUNCTION still gets checks."""
    client.acl_setuser(
        "limited",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-fcall", "-function"],
    )
    try:
        url = redis_url.replace("redis://", "redis://limited:pw@")
        lim = Limiter("2/second", store=url)
        assert [lim.allow("k") for _ in range(3)] == [True, True, False]
        assert lim.backend.conn.scripts.use_fcall is False
        strict = Limiter("2/second", store=url, scripting="function", fail="raise")
        with pytest.raises(floodwall.StoreError):
            strict.check("k")
    finally:
        client.acl_deluser("limited")


def test_shaping_delay(redis_url: str) -> None:
    clock = FakeClock()
    lim = Limiter("10/second", algorithm="leaky_bucket_shaping", store=redis_url, clock=clock)
    delays = [lim.check("q").delay_ns for _ in range(4)]
    assert delays == [0, 100_000_000, 200_000_000, 300_000_000]


# ---------------------------------------------------------------- key names


def test_keys_are_hashed_by_default(redis_url: str, client: redis.Redis) -> None:
    lim = Limiter("5/second", store=redis_url, namespace="app")
    lim.allow("alice@example.com")
    (key,) = client.keys("*")
    assert b"alice" not in key
    assert key.startswith(b"app:gcra:{") and key.endswith(b"}:5/1000000000")


def test_plain_keys_opt_in(redis_url: str, client: redis.Redis) -> None:
    lim = Limiter("5/second", store=redis_url, namespace="dbg", plain_keys=True)
    lim.allow("alice{x}%")
    assert client.keys("*") == [b"dbg:gcra:{alice%7Bx%7D%25}:5/1000000000"]


def test_key_secret_changes_names(redis_url: str, client: redis.Redis) -> None:
    Limiter("5/second", store=redis_url, namespace="a").allow("k")
    Limiter("5/second", store=redis_url, namespace="a", key_secret=b"s3cret").allow("k")
    assert len(client.keys("a:*")) == 2


def test_hostile_keys(redis_url: str, client: redis.Redis) -> None:
    hostile = [
        "",
        "{",
        "}",
        "{}",
        "}{",
        "a{b}c",
        "*",
        "\x00\x01\xff",
        b"\x00{}\xff\xfe",
        "x" * 1_000_000,
        b"\xff" * 100_000,
        "é🙂\ud800",  # a lone surrogate too
        "\r\n*1\r\n$4\r\nPING\r\n",
    ]
    for plain in (False, True):
        lim = Limiter("2/second", store=redis_url, namespace=f"h{int(plain)}", plain_keys=plain)
        for key in hostile:
            assert lim.allow(key), key
            assert lim.allow(key), key
            assert not lim.allow(key), key
            lim.reset(key)
            assert lim.peek(key).remaining == 2
            lim.allow(key)
        lim.clear()
    assert client.dbsize() == 0


def test_hostile_namespace(redis_url: str, client: redis.Redis) -> None:
    lim = Limiter("1/second", store=redis_url, namespace="n{s}*?[x]")
    other = Limiter("1/second", store=redis_url, namespace="n")
    assert lim.allow("k") and not lim.allow("k")
    assert other.allow("k")
    lim.clear()
    assert len(client.keys("*")) == 1  # only the other namespace's key is left
    (key,) = client.keys("*")
    assert key.startswith(b"n:gcra:{")


def test_bad_input(redis_url: str) -> None:
    lim = Limiter("5/second", store=redis_url)
    with pytest.raises(CostError):
        lim.check("k", -1)
    with pytest.raises(CostError):
        lim.check("k", 6)
    with pytest.raises(CostError):
        lim.check("k", 2**70)
    with pytest.raises(CostError):
        lim.check("k", 1.5)  # type: ignore[arg-type]
    with pytest.raises(CostError):
        lim.check("k", "1")  # type: ignore[arg-type]
    for key in (None, 1, 1.5, ["k"], object()):
        with pytest.raises(KeyTypeError):
            lim.check(key)  # type: ignore[arg-type]
    assert lim.peek("k").remaining == 5
    with pytest.raises(ConfigError):
        Limiter("5/second", store=redis_url, no_such_option=1)
    with pytest.raises(ConfigError):
        Limiter("5/second", store=redis_url, timeout=-1)
    with pytest.raises(ConfigError):
        Limiter("5/second", store=redis_url, breaker_cooldown=0)
    with pytest.raises(ConfigError):
        Limiter("5/second", store=redis_url + "?unknown_thing=1")
    with pytest.raises(ConfigError):
        Limiter("70000/second", algorithm="sliding_log", store=redis_url)


def test_bad_clock(redis_url: str) -> None:
    lim = Limiter("5/second", store=redis_url, clock=lambda: -5)
    with pytest.raises(ConfigError):
        lim.check("k")
    lim = Limiter("5/second", store=redis_url, clock=lambda: 2**63)
    with pytest.raises(ConfigError):
        lim.check("k")


def test_damaged_state_goes_through_the_failure_policy(redis_url: str, client: redis.Redis) -> None:
    lim = Limiter("5/second", store=redis_url, namespace="dmg", plain_keys=True, fail="open")
    client.set("dmg:gcra:{k}:5/1000000000", "not a number")
    d = lim.check("k")
    assert d.allowed and d.fallback
    client.delete("dmg:gcra:{k}:5/1000000000")
    client.lpush("dmg:gcra:{k}:5/1000000000", "x")  # WRONGTYPE
    strict = Limiter("5/second", store=redis_url, namespace="dmg", plain_keys=True)
    with pytest.raises(floodwall.StoreError):
        strict.check("k")


# ---------------------------------------------------------------- URLs and clients


def test_url_parsing() -> None:
    p = parse_url("redis://user:p%40ss@example.com:6380/2?timeout=0.5&plain_keys=1")
    assert p.kind == "redis" and p.options == {"timeout": 0.5, "plain_keys": True}
    assert "timeout" not in p.redis_url() and p.redis_url().startswith("redis://user:p%40ss@")
    assert parse_url("rediss://h/0").ssl
    u = parse_url("redis+unix:///run/redis.sock?db=3")
    assert u.kind == "unix" and u.path == "/run/redis.sock" and u.redis_url().startswith("unix://")
    s = parse_url("redis+sentinel://:pw@s1:26379,s2,[::1]:26380/mymaster/4?sentinel_password=x")
    assert s.kind == "sentinel" and s.service == "mymaster" and s.db == 4
    assert s.hosts == [("s1", 26379), ("s2", 26379), ("::1", 26380)] and s.password == "pw"
    c = parse_url("redis+cluster://n1:7000,n2:7001,n3")
    assert c.kind == "cluster" and c.hosts == [("n1", 7000), ("n2", 7001), ("n3", 6379)]
    for bad in (
        "redis+sentinel://h:26379",
        "redis+sentinel://h:26379/svc/notadb",
        "redis+sentinel://h:26379/a/1/x",
        "redis+cluster://h:1/3",
        "redis+cluster://h:notaport",
        "redis+cluster://",
        "redis+unix://",
        "http://h",
        "redis://h/0?timeout=abc",
    ):
        with pytest.raises(ConfigError):
            parse_url(bad)


def test_unix_socket_url(redis_server: RedisServer) -> None:
    assert redis_server.unix_path
    lim = Limiter("2/second", store=f"redis+unix://{redis_server.unix_path}?db=1")
    assert lim.allow("k") and lim.allow("k") and not lim.allow("k")
    lim.clear()


def test_existing_sync_client(redis_url: str, client: redis.Redis) -> None:
    lim = Limiter("2/second", store=client)
    assert lim.allow("k") and lim.allow("k") and not lim.allow("k")

    async def go() -> bool:
        return await lim.aallow("k2")  # a sync client: run in a thread

    assert asyncio.run(go())
    lim.close()
    assert client.ping()  # a user's client is never closed by floodwall


def test_existing_async_client(redis_url: str) -> None:
    async def go() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        lim = Limiter("2/second", store=client)
        assert await lim.aallow("k") and await lim.aallow("k")
        assert not await lim.aallow("k")
        with pytest.raises(ConfigError):
            lim.check("k")
        await client.aclose()

    asyncio.run(go())


def test_shared_backend_groups(redis_url: str) -> None:
    first = Limiter("2/second", store=redis_url, namespace="g1")
    spec = LimitSpec("gcra", (Rate(5, 1),), "g2")
    second = from_client(first.backend, spec)
    assert isinstance(second, RedisBackend) and second.conn is first.backend.conn
    assert first.backend.check_group([(first.backend, "a"), (second, "b")], 1).allowed
    backend = open_backend(redis_url, spec)
    assert backend.conn is first.backend.conn  # same URL and options: one connection


def test_async_api(redis_url: str) -> None:
    # a timeout a loaded test machine never reaches: five checks at once on
    # a new event loop open five connections within the deadline (the
    # default 250 ms ran out once in CI, not reproduced in 1,500 runs here)
    url = redis_url + "?timeout=10"

    async def go() -> None:
        lim = Limiter("3/second", algorithm="sliding_window", store=url)
        results = await asyncio.gather(*(lim.aallow("k") for _ in range(5)))
        assert sorted(results) == [False, False, True, True, True]
        d = await lim.apeek("k")
        assert not d.allowed
        await lim.areset("k")
        assert (await lim.acheck("k", 3)).allowed
        await lim.aclear()
        assert (await lim.apeek("k")).remaining == 3
        other = Limiter("1/second", store=url, namespace="o")
        d = await floodwall.acheck_all([(lim, "x"), (other, "y")])
        assert d.allowed and d.rate == Rate(1, 1)
        await lim.backend.aclose()

    asyncio.run(go())


def test_async_never_blocks_the_loop(redis_url: str) -> None:
    """While checks wait on Redis, other tasks keep running."""

    async def go() -> int:
        lim = Limiter("1000/second", store=redis_url)
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        for _ in range(50):
            await lim.acheck("k")
        stop = True
        await task
        return ticks

    assert asyncio.run(go()) >= 50


def test_import_floodwall_does_not_import_redis() -> None:
    import subprocess

    code = "import sys, floodwall; floodwall.Limiter('1/s'); print('redis' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(floodwall.__file__).parents[1])},
    )
    assert out.stdout.strip() == "False"


def test_limiter_shares_another_limiters_store(redis_url: str) -> None:
    first = Limiter("2/second", store=redis_url, namespace="s1")
    second = Limiter("3/second", store=first, namespace="s2")
    assert second.backend.conn is first.backend.conn
    limits = floodwall.Limits({"user": "2/second", "org": "3/second"}, store=redis_url)
    assert limits.check(user="u", org="o").allowed
