# The API that users coming from other rate limiters reach for (issue 11):
# check_all with a cost per part and the denying part's index, allow_all,
# Decision.reset_at, RateLimited.key/cost, remaining(), reset() -> bool,
# per="1m", context managers, and decoration-time errors of Limiter.limit.
# Store-parametrized where a store is involved (memory, shm, file, Redis).
from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import pytest
from conftest import FakeClock

import floodwall
from floodwall import (
    ConfigError,
    CostError,
    Decision,
    Limiter,
    Limits,
    RateLimited,
    RateParseError,
    aallow_all,
    acheck_all,
    allow_all,
    check_all,
)
from floodwall.rates import Rate


def pair(store_url: str, clock: FakeClock) -> tuple[Limiter, Limiter]:
    """Two limiters on one opened store (what check_all needs)."""
    per_user = Limiter("2/minute", store=store_url, clock=clock, namespace="user")
    per_org = Limiter("100/minute", store=per_user.store, clock=clock, namespace="org")
    return per_user, per_org


# ------------------------------------------------------------------ check_all


def test_check_all_charges_each_part_its_own_cost(store_url: str, clock: FakeClock) -> None:
    user, org = pair(store_url, clock)
    for _ in range(2):
        d = check_all([(user, "u", 1), (org, "o", 10)])
        assert d.allowed and d.denied_part is None
    assert user.remaining("u") == 0 and org.remaining("o") == 80
    d = check_all([(user, "u", 1), (org, "o", 10)])
    # the user part denied: it is named, and the org part paid nothing
    assert not d.allowed and d.denied_part == 0 and d.rate == Rate(2, 60)
    assert org.remaining("o") == 80
    assert user.reset("u")
    d = check_all([(user, "u", 1), (org, "o", 81)])
    assert not d.allowed and d.denied_part == 1 and d.rate == Rate(100, 60)
    assert user.remaining("u") == 2 and org.remaining("o") == 80
    # pairs take the call's cost; triples their own; cost 0 peeks
    assert check_all([(user, "u"), (org, "o", 0)], cost=2).allowed
    assert user.remaining("u") == 0 and org.remaining("o") == 80
    assert not allow_all([(user, "u", 1), (org, "o", 1)])
    assert org.remaining("o") == 80


def test_check_all_cost_per_part_async(store_url: str, clock: FakeClock) -> None:
    user, org = pair(store_url, clock)

    async def main() -> tuple[Decision, bool, bool]:
        first = await acheck_all([(user, "u", 2), (org, "o", 50)])
        ok = await aallow_all([(user, "u", 0), (org, "o", 50)])
        over = await aallow_all([(user, "u", 1), (org, "o", 1)])
        return first, ok, over

    first, ok, over = asyncio.run(main())
    assert first.allowed and first.remaining == 0
    # (user, cost 0) peeks an exhausted key: a part of cost 0 denies when one
    # unit would not be admitted, so nothing is charged
    assert not ok and not over
    assert org.remaining("o") == 50


def test_check_all_bad_parts_and_costs(store_url: str, clock: FakeClock) -> None:
    user, org = pair(store_url, clock)
    with pytest.raises(CostError, match="exceeds the capacity 2"):
        check_all([(user, "u", 3), (org, "o", 1)])
    with pytest.raises(CostError, match="cost"):
        check_all([(user, "u", -1), (org, "o", 1)])
    with pytest.raises(CostError, match="cost"):
        check_all([(user, "u", True), (org, "o", 1)])
    shapes = r"\(limiter, key\) pairs or \(limiter, key, cost\) triples"
    with pytest.raises(TypeError, match=shapes + "; part 1 is"):
        check_all([(user, "u"), (org, "o", 1, 2)])
    with pytest.raises(TypeError, match=r"triples; part 0 is \('u', "):
        check_all([("u", user)])
    with pytest.raises(ConfigError, match="at least one part"):
        check_all([])
    assert user.remaining("u") == 2 and org.remaining("o") == 100


def test_single_check_has_no_denied_part(store_url: str, clock: FakeClock) -> None:
    lim = Limiter("1/minute", store=store_url, clock=clock)
    assert lim.check("k").denied_part is None
    d = lim.check("k")
    assert not d.allowed and d.denied_part is None
    assert Decision(False, 1, 0, 1, 1, denied_part=3).denied_part == 3
    with pytest.raises(ValueError, match="denied_part must be None or an int >= 0"):
        Decision(False, 1, 0, 1, 1, denied_part=-1)
    with pytest.raises(ValueError, match="an allowed decision has none"):
        Decision(True, 1, 0, 1, 1, denied_part=0)


def test_limits_cost_per_name_and_violated(store_url: str, clock: FakeClock) -> None:
    # equal rates: only the part index can tell which limit denied
    limits = Limits({"user": "10/minute", "org": "10/minute"}, store=store_url, clock=clock)
    assert limits.check(org="acme", user="alice", cost={"org": 9}).allowed
    d = limits.check(user="alice", org="acme", cost={"org": 2})
    assert not d.allowed and limits.violated(d) == "org" and d.denied_part == 1
    assert limits.allow(user="alice", org="acme")
    d = limits.check(user="alice", org="acme", cost={"user": 9, "org": 0})
    assert not d.allowed and limits.violated(d) == "user"
    assert limits.violated(limits.check(user="bob", org="other")) is None
    with pytest.raises(ConfigError, match=r"cost names unknown limit\(s\) \['team'\]"):
        limits.check(user="alice", org="acme", cost={"team": 1})


# ------------------------------------------------------------------ Decision.reset_at


def test_reset_at_is_unix_time(store_url: str) -> None:
    # a test clock far from the wall clock: reset_at is still UNIX time
    for clock in (None, FakeClock(start_ns=5 * 10**9)):
        lim = Limiter("10/minute", store=store_url, clock=clock, namespace=f"c{clock is None}")
        before = time.time()
        d = lim.check("k", 4)
        after = time.time()
        assert d.reset_after == pytest.approx(24.0, abs=0.01)
        assert before + d.reset_after <= d.reset_at <= after + d.reset_after + 0.05
        assert d.reset_at_ns == pytest.approx(d.reset_at * 1e9, abs=1e3)
        assert d.as_dict()["reset_at"] == d.reset_at
        fresh = lim.peek("other")
        assert fresh.reset_after == 0.0 and before <= fresh.reset_at <= time.time() + 0.05


def test_reset_at_is_fixed_once_read(store_url: str) -> None:
    # memory:// stamps decisions on the monotonic clock and moves the stamp
    # onto the wall clock when asked: every read must give the same instant
    lim = Limiter("10/minute", store=store_url)
    d = lim.check("k", 4)
    assert len({d.reset_at_ns for _ in range(1000)}) == 1
    assert len({d.reset_at for _ in range(1000)}) == 1
    assert d.as_dict()["reset_at"] == d.reset_at


# ------------------------------------------------------------------ remaining, reset


def test_remaining_does_not_consume(store_url: str, clock: FakeClock) -> None:
    lim = Limiter("10/second; 12/minute", store=store_url, clock=clock)
    assert lim.remaining("k") == 10
    assert lim.check("k", 3).allowed
    assert lim.remaining("k") == 7 and lim.remaining("k") == 7
    clock.advance(1)
    assert lim.remaining("k") == 9  # the minute limit is now the smaller
    assert asyncio.run(lim.aremaining("k")) == 9
    with pytest.raises(floodwall.KeyTypeError):
        lim.remaining(42)  # type: ignore[arg-type]


def test_reset_says_whether_the_key_existed(store_url: str, clock: FakeClock) -> None:
    lim = Limiter("5/minute; 100/day", store=store_url, clock=clock)
    assert lim.reset("never-seen") is False
    lim.check("k")
    assert lim.reset("k") is True
    assert lim.reset("k") is False
    assert lim.remaining("k") == 5
    lim.check("k", 2)
    assert asyncio.run(lim.areset("k")) is True
    assert asyncio.run(lim.areset("k")) is False


def test_native_reset_of_a_key_back_to_full_capacity(clock: FakeClock) -> None:
    lim = Limiter("5/minute", clock=clock)
    lim.check("k")
    clock.advance(13)  # one unit takes 12 s: full again
    assert lim.reset("k") is False


# ------------------------------------------------------------------ RateLimited


def test_rate_limited_carries_key_and_cost(clock: FakeClock) -> None:
    lim = Limiter("3/minute", clock=clock)

    @lim.limit(key=lambda user, n: f"user:{user}", cost=lambda user, n: n)
    def work(user: str, n: int) -> int:
        return n

    assert work("ann", 2) == 2
    with pytest.raises(RateLimited) as info:
        work("ann", 2)
    err = info.value
    assert err.key == "user:ann" and err.cost == 2 and not err.decision.allowed
    assert "for key 'user:ann' (cost 2)" in str(err)
    assert err.retry_after == err.decision.retry_after
    plain = RateLimited(err.decision)
    assert plain.key is None and plain.cost is None


# ------------------------------------------------------------------ per=


@pytest.mark.parametrize(
    ("per", "period_ns"),
    [
        ("1m", 60 * 10**9),
        ("250ms", 250 * 10**6),
        ("1h", 3600 * 10**9),
        ("2s", 2 * 10**9),
        ("5 minutes", 300 * 10**9),
        ("1.5s", 1_500_000_000),
        (60, 60 * 10**9),
        (0.25, 250 * 10**6),
        (datetime.timedelta(minutes=1), 60 * 10**9),
    ],
)
def test_per_accepts_durations(per: Any, period_ns: int) -> None:
    assert Limiter(rate=10, per=per).rates == (Rate.from_ns(10, period_ns),)
    assert Limiter(requests=10, period=per).rates == (Rate.from_ns(10, period_ns),)


@pytest.mark.parametrize(
    ("per", "error", "match"),
    [
        ("1mo", RateParseError, "unknown unit 'mo'.*write days"),
        ("soon", RateParseError, "unknown unit 'soon'"),
        ("-1s", RateParseError, "cannot read the duration '-1s'"),
        ("", RateParseError, "cannot read the duration ''"),
        ("0s", RateParseError, "above 0"),
        ("1.0000000001ns", RateParseError, "not a whole number of ns"),
        ([60], TypeError, "duration such as '1m'"),
    ],
)
def test_per_refuses_bad_durations(per: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Limiter(rate=10, per=per)


# ------------------------------------------------------------------ context managers


def test_limiter_is_a_context_manager(store_url: str) -> None:
    with Limiter("5/minute", store=store_url) as lim:
        assert isinstance(lim, Limiter) and lim.check("k").allowed
    if store_url.startswith("redis"):
        assert lim.backend._closed  # type: ignore[attr-defined]

    async def main() -> Limiter:
        async with Limiter("5/minute", store=store_url) as alim:
            assert (await alim.acheck("k")).allowed
        return alim

    alim = asyncio.run(main())
    if store_url.startswith("redis"):
        assert alim.backend._closed  # type: ignore[attr-defined]


def test_redis_store_is_a_context_manager(redis_url: str) -> None:
    lim = Limiter("5/minute", store=redis_url)
    with lim.store as store:
        assert store is lim.backend and lim.check("k").allowed
    assert lim.backend._closed  # type: ignore[attr-defined]


# ------------------------------------------------------------------ decoration time


def test_limit_without_parentheses_fails_at_decoration() -> None:
    lim = Limiter("5/minute")
    with pytest.raises(ConfigError, match=r"without parentheses on '.*plain'.*@limiter.limit\(\)"):

        @lim.limit
        def plain() -> None:
            pass

    with pytest.raises(ConfigError, match="without parentheses"):

        @lim.limit
        async def coro() -> None:
            pass

    with pytest.raises(ConfigError, match="without parentheses"):

        class Service:
            @staticmethod
            @lim.limit
            def method() -> None:
                pass


def test_limit_with_a_rate_string_fails_at_decoration() -> None:
    lim = Limiter("5/minute")
    with pytest.raises(ConfigError, match=r"the argument is a key, not a rate.*rate_limit"):
        lim.limit("5/minute")


def test_limit_with_a_key_function_still_works() -> None:
    lim = Limiter("1/minute")

    def by_user(user: str) -> str:
        return user

    @lim.limit(by_user)
    def work(user: str) -> str:
        return user

    assert work("a") == "a" and work("b") == "b"
    with pytest.raises(RateLimited):
        work("a")

    def make() -> Any:
        def key_of(user: str) -> str:
            return "k:" + user

        return key_of

    @lim.limit(make())  # a key function made elsewhere, not bound by name here
    def other(user: str) -> str:
        return user

    assert other("x") == "x"


# ------------------------------------------------------------------ every algorithm

ALGORITHMS = [
    "gcra",
    "token_bucket",
    "leaky_bucket",
    "fixed_window",
    "sliding_window",
    "sliding_log",
]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_new_calls_on_every_algorithm(store_url: str, clock: FakeClock, algorithm: str) -> None:
    # the larger first: a sliding-log table is sized by its first limiter
    org = Limiter("20/minute", store=store_url, clock=clock, algorithm=algorithm, namespace="o")
    user = Limiter("3/minute", store=org.store, clock=clock, algorithm=algorithm, namespace="u")
    assert user.reset("k") is False and user.remaining("k") == 3
    assert check_all([(user, "k", 2), (org, "o", 15)]).allowed
    assert user.remaining("k") == 1 and org.remaining("o") == 5
    d = check_all([(user, "k", 1), (org, "o", 6)])
    assert not d.allowed and d.denied_part == 1
    assert user.remaining("k") == 1 and org.remaining("o") == 5
    assert user.reset("k") is True and user.remaining("k") == 3
    assert user.reset("k") is False
