# Behaviour of floodwall.Limiter on every native store: decisions, peek,
# reset, clear, stats, async twins, the decorator, several rates, Limits and
# check_all, and failure policies when the table is full.
from __future__ import annotations

import asyncio
import datetime
import random
from fractions import Fraction

import pytest

import floodwall
from floodwall import Decision, Limiter, Rate, RateLimited

MINUTE = 60_000_000_000


def test_burst_admitted_then_limited(store_url: str, clock) -> None:
    limiter = Limiter("5/minute", store=store_url, clock=clock)
    decisions = [limiter.check("alice") for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    last = decisions[-1]
    assert last.limit == 5
    assert last.retry_after_ns == MINUTE // 5
    assert last.retry_after == pytest.approx(12.0)
    assert last.reset_after_ns == MINUTE
    assert not last and decisions[0]
    assert last.rate == Rate(5, 60)


def test_waiting_retry_after_is_enough(store_url: str, clock) -> None:
    limiter = Limiter("3/second", store=store_url, clock=clock)
    for _ in range(3):
        assert limiter.allow("k")
    denied = limiter.check("k")
    assert not denied
    clock.now += denied.retry_after_ns - 1
    assert not limiter.allow("k")
    clock.now += 1
    assert limiter.allow("k")


def test_peek_never_consumes(store_url: str, clock) -> None:
    limiter = Limiter("2/minute", store=store_url, clock=clock)
    fresh = limiter.peek("p")
    assert fresh.allowed and fresh.remaining == 2 and fresh.reset_after == 0.0
    assert limiter.check("p", 0) == fresh
    limiter.check("p", 2)
    for _ in range(3):
        d = limiter.peek("p")
        assert not d.allowed and d.remaining == 0 and d.retry_after_ns == MINUTE // 2
    assert limiter.stats()["allowed"] == 1


def test_reset_and_clear(store_url: str, clock) -> None:
    limiter = Limiter("1/minute", store=store_url, clock=clock)
    assert limiter.allow("a") and limiter.allow("b")
    assert not limiter.allow("a")
    limiter.reset("a")
    assert limiter.allow("a")
    assert not limiter.allow("b")
    limiter.clear()
    assert limiter.allow("b")


def test_stats_count_decisions_and_keys(store_url: str, clock) -> None:
    limiter = Limiter("2/minute", store=store_url, clock=clock)
    for key in ("a", "a", "a", "b"):
        limiter.allow(key)
    stats = limiter.stats()
    assert (stats["allowed"], stats["denied"]) == (3, 1)
    assert stats["active_keys"] == 2
    clock.now += 10 * MINUTE
    # Redis expires keys by its own TTL (real time), not by a test clock
    expected_after = 2 if store_url.startswith("redis") else 0
    assert limiter.stats()["active_keys"] == expected_after


def test_cost_consumes_units(store_url: str, clock) -> None:
    limiter = Limiter("10/minute", store=store_url, clock=clock)
    assert limiter.check("c", 7).remaining == 3
    d = limiter.check("c", 4)
    assert not d.allowed and d.remaining == 3
    assert limiter.check("c", cost=3).remaining == 0


def test_several_rates_all_or_nothing(store_url: str, clock) -> None:
    limiter = Limiter("3/second; 5/minute", store=store_url, clock=clock)
    assert [limiter.allow("k") for _ in range(4)] == [True, True, True, False]
    assert limiter.check("k").rate == Rate(3, 1)
    clock.now += 1_000_000_000
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]
    denied = limiter.check("k")
    assert denied.rate == Rate(5, 60)
    # the per-second limit was not consumed by the denials
    assert limiter.peek("k").remaining == 0


def test_keyword_forms_are_the_same_limit(clock) -> None:
    forms = [
        Limiter("100/minute", clock=clock),
        Limiter(rate=100, per=60, clock=clock),
        Limiter(requests=100, period=60, clock=clock),
        Limiter(requests=100, period=datetime.timedelta(minutes=1), clock=clock),
        Limiter(Rate(100, 60), clock=clock),
    ]
    assert {f.rates for f in forms} == {(Rate(100, 60),)}
    assert Limiter("10/second", burst=20, clock=clock).check("x").limit == 20


def test_keys_str_and_bytes_and_hostile(store_url: str, clock) -> None:
    limiter = Limiter("1/minute", store=store_url, clock=clock)
    hostile = ["", "x" * 1_000_000, "a\x00b", "{tag}", "\udcff", "ключ"]
    for key in hostile:
        assert limiter.allow(key), key
        assert not limiter.allow(key), key
    assert limiter.allow(b"\x00\xff\x00")
    # str and its UTF-8 bytes are the same key
    assert not limiter.allow("ключ".encode())
    assert limiter.allow(b"a\x00c")


def test_async_twins(store_url: str, clock) -> None:
    limiter = Limiter("2/minute", store=store_url, clock=clock)

    async def scenario() -> list[object]:
        return [
            await limiter.aallow("k"),
            (await limiter.acheck("k")).remaining,
            await limiter.aallow("k"),
            (await limiter.apeek("k")).allowed,
            await limiter.areset("k"),
            await limiter.aallow("k"),
            await limiter.aclear(),
        ]

    assert asyncio.run(scenario()) == [True, 0, False, False, True, True, None]


def test_decorator_sync_and_async(clock) -> None:
    limiter = Limiter("2/minute", clock=clock)

    @limiter.limit(key=lambda user: f"user:{user}")
    def greet(user: str) -> str:
        return f"hi {user}"

    @limiter.limit(key="fixed", cost=2)
    async def heavy() -> int:
        return 42

    assert greet("a") == "hi a" and greet("a") == "hi a"
    with pytest.raises(RateLimited) as info:
        greet("a")
    assert info.value.decision.retry_after_ns == MINUTE // 2
    assert info.value.retry_after == pytest.approx(30.0)
    assert greet("b") == "hi b"
    assert greet.__name__ == "greet"
    assert asyncio.run(heavy()) == 42
    with pytest.raises(RateLimited):
        asyncio.run(heavy())


def test_limits_on_several_keys(store_url: str, clock) -> None:
    limits = floodwall.Limits({"user": "2/minute", "org": "3/minute"}, store=store_url, clock=clock)
    results = [limits.check(user=f"u{i % 2}", org="acme").allowed for i in range(4)]
    assert results == [True, True, True, False]
    denied = limits.check(user="u9", org="acme")
    assert limits.violated(denied) == "org"
    # the denial consumed nothing for u9
    assert limits.limiters["user"].peek("u9").remaining == 2
    with pytest.raises(floodwall.ConfigError, match="no key given"):
        limits.check(user="x")


def test_limits_with_equal_rates_name_the_right_one(store_url: str, clock) -> None:
    limits = floodwall.Limits({"ip": "2/minute", "user": "2/minute"}, store=store_url, clock=clock)
    assert limits.check(ip="1.2.3.4", user="a") and limits.check(ip="1.2.3.4", user="b")
    assert limits.violated(limits.check(ip="1.2.3.4", user="c")) == "ip"
    assert limits.check(ip="5.6.7.8", user="a")
    assert limits.violated(limits.check(ip="9.9.9.9", user="a")) == "user"


def test_limits_cost_keyword(clock) -> None:
    limits = floodwall.Limits({"user": "10/minute", "org": "20/minute"}, clock=clock)
    assert limits.check(user="alice", org="acme", cost=6).remaining == 4
    assert not limits.check(7, user="alice", org="acme")
    assert asyncio.run(limits.acheck(user="alice", org="acme", cost=4)).remaining == 0
    with pytest.raises(floodwall.ConfigError, match="other than 'cost'"):
        floodwall.Limits({"cost": "1/second"})


def test_check_all_needs_one_store(clock) -> None:
    a = Limiter("1/minute", store="memory://", clock=clock)
    b = Limiter("1/minute", store="memory://", clock=clock)
    with pytest.raises(floodwall.ConfigError, match="same store"):
        floodwall.check_all([(a, "k"), (b, "k")])
    c = Limiter("5/minute", store=a.store, namespace="other", clock=clock)
    assert floodwall.check_all([(a, "k"), (c, "k")])
    d = floodwall.check_all([(a, "k"), (c, "k")])
    assert not d and d.rate == Rate(1, 60)
    assert c.peek("k").remaining == 4


def test_decision_is_immutable_and_constructible() -> None:
    d = Decision(False, 10, 0, 1_500_000_001, 3_000_000_000, rate="r", fallback=True)
    assert (d.allowed, d.limit, d.remaining, d.fallback, d.rate) == (False, 10, 0, True, "r")
    assert d.retry_after >= 1.500000001 and d.retry_after_ns == 1_500_000_001
    with pytest.raises(AttributeError):
        d.allowed = True  # type: ignore[misc]
    assert "allowed=False" in repr(d) and d.as_dict()["limit"] == 10
    with pytest.raises(ValueError, match="retry_after_ns must be >= 0"):
        Decision(True, 1, 0, -1, 0)


def test_retry_after_seconds_never_round_down() -> None:
    rng = random.Random(7)
    samples = [0, 1, 3, 999_999_999, 1_000_000_001, 123_456_789_123, 2**62 + 1, 2**63 - 1]
    samples += [rng.randrange(1, 2**63) for _ in range(20_000)]
    for ns in samples:
        d = Decision(False, 1, 0, ns, ns, ns)
        for seconds in (d.retry_after, d.reset_after, d.delay):
            exact = Fraction(seconds) * 10**9
            assert exact >= ns, ns  # never below the exact wait
            assert exact - ns < Fraction(ns, 2**51) + 1, ns  # and only just above


def test_table_full_raises_or_falls_back(clock) -> None:
    limiter = Limiter("5/hour", max_keys=100, clock=clock)
    with pytest.raises(floodwall.StoreFullError, match="table full"):
        for i in range(10_000):
            limiter.check(f"k{i}")
    stats = limiter.stats()
    assert stats["full_errors"] >= 1 and stats["slots"] <= 1024
    seen: list[BaseException] = []
    for mode, expect in (("open", True), ("closed", False)):
        lim = Limiter("5/hour", max_keys=100, clock=clock, fail=mode, on_error=seen.append)
        decisions = [lim.check(f"k{i}") for i in range(2_000)]
        fallbacks = [d for d in decisions if d.fallback]
        assert fallbacks and all(d.allowed is expect for d in fallbacks)
        assert lim.stats()["fallbacks"] == len(fallbacks)
    assert seen and isinstance(seen[0], floodwall.StoreFullError)


def test_ten_times_max_keys_never_grows_the_table(clock) -> None:
    limiter = Limiter("5/second", max_keys=1000, clock=clock)
    slots = limiter.stats()["slots"]
    for i in range(10_000):
        clock.now += 1_000_000_000  # every older key is fresh again: reclaimable
        assert limiter.allow(f"key-{i}")
    stats = limiter.stats()
    assert stats["slots"] == slots and stats["used_slots"] <= slots
    assert stats["full_errors"] == 0 and stats["active_keys"] <= 1
