# test_redis_failure.py - Redis going away, hanging, and coming back.
#
# A real redis-server is killed (SIGKILL) or frozen (SIGSTOP) mid-run and
# restarted on the same port: each failure policy answers as documented
# within the timeout, "open" and "closed" never raise to the caller, the
# circuit breaker makes a dead Redis cost microseconds per check, on_error
# sees every real failure, and service recovers without a new Limiter.
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from redis_servers import RedisServer

import floodwall
from floodwall import Limiter, StoreError

TIMEOUT = 0.2
COOLDOWN = 0.3


def limiter(
    server: RedisServer, fail: str, errors: list[BaseException] | None = None, **options: object
) -> Limiter:
    opts: dict[str, object] = {
        "timeout": TIMEOUT,
        "breaker_threshold": 3,
        "breaker_cooldown": COOLDOWN,
    }
    opts.update(options)
    return Limiter(
        "3/second",
        store=server.url,
        fail=fail,
        on_error=errors.append if errors is not None else None,
        namespace=f"fail-{fail}",
        **opts,  # type: ignore[arg-type]
    )


def timed(fn: object) -> tuple[object, float]:
    start = time.perf_counter()
    try:
        result = fn()  # type: ignore[operator]
    except Exception as exc:
        result = exc
    return result, time.perf_counter() - start


def wait_recovered(lim: Limiter, key: str, deadline_s: float = 5.0) -> floodwall.Decision:
    end = time.monotonic() + deadline_s
    while True:
        try:
            d = lim.check(key)
        except StoreError:
            d = None
        if d is not None and not d.fallback:
            return d
        assert time.monotonic() < end, "the limiter did not recover after Redis came back"
        time.sleep(0.05)


@pytest.mark.parametrize("fail", ["open", "closed", "raise"])
def test_killed_then_restarted(fresh_server: RedisServer, fail: str) -> None:
    errors: list[BaseException] = []
    lim = limiter(fresh_server, fail, errors)
    assert lim.allow("k")
    fresh_server.kill()
    outcomes = []
    for _ in range(5):
        result, took = timed(lambda: lim.check("k"))
        assert took < TIMEOUT + 0.3, took
        outcomes.append(result)
    for result in outcomes:
        if fail == "raise":
            assert isinstance(result, StoreError)
        else:
            assert isinstance(result, floodwall.Decision), result
            assert result.fallback is True
            assert result.allowed is (fail == "open")
            if fail == "closed":
                assert result.retry_after_ns > 0
    # three real failures, then the breaker skips Redis (no more on_error)
    assert len(errors) == 3
    assert all(isinstance(e, Exception) for e in errors)
    stats = lim.stats()
    assert stats["breaker_open"] == 1 and stats["breaker_trips"] == 1 and stats["errors"] == 3
    fresh_server.start()  # same port, empty data
    d = wait_recovered(lim, "k")
    assert d.allowed and d.remaining == 2
    assert lim.stats()["breaker_open"] == 0


def test_breaker_makes_a_dead_redis_cheap(fresh_server: RedisServer) -> None:
    lim = limiter(fresh_server, "open", breaker_cooldown=30.0)
    fresh_server.kill()
    for _ in range(3):
        lim.check("k")
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        assert lim.check("k").fallback
    per_call = (time.perf_counter() - start) / n
    assert per_call < 200e-6, per_call  # microseconds, not a timeout or a connect


def test_breaker_off_tries_every_call(fresh_server: RedisServer) -> None:
    errors: list[BaseException] = []
    lim = limiter(fresh_server, "open", errors, breaker_threshold=0)
    fresh_server.kill()
    for _ in range(10):
        assert lim.check("k").fallback
    assert len(errors) == 10


def test_frozen_server_answers_within_the_timeout(fresh_server: RedisServer) -> None:
    lim = limiter(fresh_server, "closed")
    assert lim.allow("k")
    fresh_server.pause()
    try:
        result, took = timed(lambda: lim.check("k"))
        assert isinstance(result, floodwall.Decision) and result.fallback and not result.allowed
        assert took < TIMEOUT + 0.3, took
    finally:
        fresh_server.resume()
    wait_recovered(lim, "k")


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_kill_while_threads_check(fresh_server: RedisServer, fail: str) -> None:
    """Redis dies and comes back under load: nothing raises to the callers."""
    lim = limiter(fresh_server, fail)
    problems: list[BaseException] = []
    fallbacks = 0
    stop = threading.Event()

    def worker() -> None:
        nonlocal fallbacks
        while not stop.is_set():
            try:
                if lim.check("k").fallback:
                    fallbacks += 1
            except BaseException as exc:
                problems.append(exc)
            time.sleep(0.002)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        fresh_server.kill()
        time.sleep(0.5)
        fresh_server.start()
        time.sleep(COOLDOWN + 0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert problems == []
    assert fallbacks > 0
    wait_recovered(lim, "k2")


def test_async_kill_and_recover(fresh_server: RedisServer) -> None:
    async def go() -> None:
        lim = limiter(fresh_server, "open")
        assert await lim.aallow("k")
        fresh_server.kill()
        start = time.perf_counter()
        for _ in range(5):
            d = await lim.acheck("k")
            assert d.allowed and d.fallback
        assert time.perf_counter() - start < 5 * (TIMEOUT + 0.3)
        fresh_server.start()
        end = time.monotonic() + 5
        while True:
            d = await lim.acheck("k")
            if not d.fallback:
                break
            assert time.monotonic() < end
            await asyncio.sleep(0.05)
        assert d.allowed

    asyncio.run(go())


def test_async_raise_policy(fresh_server: RedisServer) -> None:
    async def go() -> None:
        lim = limiter(fresh_server, "raise")
        fresh_server.kill()
        with pytest.raises(StoreError):
            await lim.acheck("k")

    asyncio.run(go())


def test_unreachable_at_startup(fresh_server: RedisServer) -> None:
    """A Limiter can be built while Redis is down; checks follow the policy."""
    fresh_server.kill()
    lim = limiter(fresh_server, "open")
    assert lim.check("k").fallback
    with pytest.raises(StoreError):
        lim.reset("k")
    assert lim.stats()["active_keys"] == -1
    fresh_server.start()
    wait_recovered(lim, "k")


@pytest.fixture
def server_pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    a, b = RedisServer(), RedisServer()
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.cleanup()
        b.cleanup()


def test_breakers_are_per_server(server_pair: tuple[RedisServer, RedisServer]) -> None:
    a, b = server_pair
    la, lb = limiter(a, "closed"), limiter(b, "closed")
    a.kill()
    for _ in range(5):
        assert la.check("k").fallback
    assert not lb.check("k").fallback
