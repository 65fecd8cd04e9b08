"""The store layer's contract: capabilities are asked of the store, one URL
grammar, and one failure policy on every kind of check (single key, several
rates, check_all, Limits), including the rule that a fallback never admits
a request that a part the store could read denies (issue 10)."""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import floodwall
from floodwall import ConfigError, Limiter, Limits, check_all
from floodwall.errors import CostError, KeyTypeError
from floodwall.integrations._common import Guard

SECOND = 1_000_000_000


class View:
    """The smallest RequestView: one client, one path."""

    peer = "192.0.2.7"
    path = "/"
    method = "GET"
    user = None
    native = None

    def header(self, name: str) -> str | None:
        return None


def _recording(fn: Callable[..., Any], seen: list[int]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return fn(*args, **kwargs)

    return wrapper


# ---- capabilities -----------------------------------------------------------------


def test_capabilities_are_asked_of_each_native_store(tmp_path: Path) -> None:
    from floodwall.stores.capabilities import StoreCapabilities

    memory = Limiter("5/minute").store.capabilities
    assert isinstance(memory, StoreCapabilities)
    assert (memory.kind, memory.inline, memory.blocking, memory.shared) == (
        "memory",
        True,
        False,
        False,
    )
    plain = Limiter("5/minute", store=f"file://{tmp_path}/a.fw").store.capabilities
    assert (plain.kind, plain.inline, plain.durable, plain.shared) == ("file", True, True, True)
    synced = Limiter("5/minute", store=f"file://{tmp_path}/b.fw?sync=always").store.capabilities
    assert synced.blocking and not synced.inline


def test_async_check_on_synced_file_runs_off_the_event_loop(tmp_path: Path) -> None:
    """Regression (issue 9): the web layer sniffed the "file:" prefix, called
    the store "local" and ran the disk sync on the event-loop thread."""
    guard = Guard("100/minute", store=f"file://{tmp_path}/limits.fw?sync=always")
    assert guard.default is not None
    limiter = guard.default.limits[0].limiter
    seen: list[int] = []
    limiter.__dict__["check"] = _recording(limiter.check, seen)
    limiter.backend.check = _recording(limiter.backend.check, seen)  # type: ignore[method-assign]

    async def main() -> tuple[int, Any]:
        return threading.get_ident(), await guard.acheck(guard.default, View())  # type: ignore[arg-type]

    loop_thread, outcome = asyncio.run(main())
    assert outcome is not None and outcome.allowed
    assert seen, "the check never reached the store"
    assert loop_thread not in seen


def test_async_check_on_memory_stays_inline() -> None:
    guard = Guard("100/minute", store="memory://")
    assert guard.default is not None
    limiter = guard.default.limits[0].limiter
    seen: list[int] = []
    limiter.__dict__["check"] = _recording(limiter.check, seen)

    async def main() -> int:
        await guard.acheck(guard.default, View())  # type: ignore[arg-type]
        return threading.get_ident()

    assert seen == [] and asyncio.run(main()) in seen


def test_guard_accepts_a_limiter_store() -> None:
    """Regression (issue 9): Guard(store=limiter.store) raised
    AttributeError 'NativeBackend' object has no attribute 'startswith'."""
    other = Limiter("1/minute", store="memory://")
    guard = Guard("2/minute", store=other.store)
    assert guard.default is not None
    bound = guard.default.limits[0]
    assert bound.limiter.store.table is other.store.table  # type: ignore[attr-defined]
    assert bound.local
    outcomes = [guard.check(guard.default, View()) for _ in range(3)]  # type: ignore[arg-type]
    assert [o.allowed for o in outcomes if o is not None] == [True, True, False]


def test_limiter_accepts_a_limiter_store_and_a_limiter() -> None:
    first = Limiter("1/minute", store="memory://")
    for store in (first.store, first):
        second = Limiter("2/minute", store=store, namespace="second")
        assert second.store.table is first.store.table  # type: ignore[attr-defined]


def test_unknown_store_object_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="store must be a URL string"):
        Limiter("1/minute", store=object())


# ---- one URL grammar ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("memory://?max_keys=5&max_keys=6", "option 'max_keys' is given twice"),
        ("memory", "store must be a URL"),
        ("memory://?max_keys=1.5", "max_keys must be an integer between 1 and"),
        ("memory://?max_keys=-1", "max_keys must be between 1 and"),
        ("nosuch://x", "unknown store scheme 'nosuch'"),
    ],
)
def test_store_url_errors_name_the_option(url: str, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        Limiter("1/minute", store=url)


def test_bool_max_keys_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_keys must be an integer"):
        Limiter("1/minute", max_keys=True)


# ---- bad arguments are the caller's, on every store --------------------------------


class Units(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize("cost", [True, False, Units.ONE], ids=["True", "False", "IntEnum"])
def test_bool_and_intenum_costs_are_refused_at_once(store_url: str, cost: object) -> None:
    seen: list[BaseException] = []
    limiter = Limiter("5/minute", store=store_url, fail="open", on_error=seen.append)
    try:
        for _ in range(10):  # more than any breaker threshold
            with pytest.raises(CostError, match="cost must be an int"):
                limiter.check("k", cost)  # type: ignore[arg-type]
            with pytest.raises(CostError):
                asyncio.run(limiter.acheck("k", cost))  # type: ignore[arg-type]
        with pytest.raises(KeyTypeError):
            limiter.check(42)  # type: ignore[arg-type]
        stats = limiter.stats()
        assert seen == [] and stats["fallbacks"] == 0 and stats.get("errors", 0) == 0
        assert stats.get("breaker_open", 0) == 0
        assert limiter.check("k").allowed and not limiter.check("k").fallback
    finally:
        limiter.close()


# ---- one failure policy -----------------------------------------------------------


def _fill(limiter: Limiter | Limits, make: Callable[[int], Any], slots: int) -> int:
    """Insert fresh keys until the table holds max_keys live keys (its cap)."""
    store = limiter.store if isinstance(limiter, Limiter) else next(
        iter(limiter.limiters.values())
    ).store
    for i in range(50 * slots):
        try:
            make(i)
        except floodwall.StoreFullError:  # fail="raise": the table is full
            pass
        stats = store.stats()
        if stats["keys"] == stats["max_keys"] or stats["used_slots"] == slots:
            return i
    raise AssertionError("the table never filled up: the test cannot test anything")


@pytest.mark.parametrize("fail", ["open", "closed", "raise"])
def test_full_table_never_readmits_a_day_quota(fail: str, clock: Any) -> None:
    """Regression (issue 10): with fail="open" and "2/second; 5/day", a client
    who spent its day quota was admitted again once the table was full (its
    per-second part could not be inserted)."""
    errors: list[BaseException] = []
    limiter = Limiter(
        "2/second; 5/day", max_keys=64, clock=clock, fail=fail, on_error=errors.append
    )
    slots = limiter.stats()["slots"]
    for _ in range(5):
        assert limiter.check("victim").allowed
        clock.advance(1)
    assert not limiter.check("victim").allowed  # the day part denies
    clock.advance(10)  # the per-second part is fresh again: its slot can go
    _fill(limiter, lambda i: limiter.allow(f"filler-{i}"), slots)
    for cost in (1, 2):
        decision = limiter.check("victim", cost)
        assert not decision.allowed, decision
        assert decision.rate == floodwall.Rate.parse("5/day")
        assert decision.retry_after > 3600 and not decision.fallback
        assert not limiter.allow("victim", cost)
    assert errors and all(isinstance(e, floodwall.StoreFullError) for e in errors)


def test_full_table_check_all_and_limits_keep_a_readable_denial(clock: Any) -> None:
    limits = Limits(
        {"user": "5/day", "org": "2/second"}, max_keys=64, clock=clock, fail="open"
    )
    user, org = limits.limiters["user"], limits.limiters["org"]
    slots = user.stats()["slots"]
    for i in range(5):
        assert limits.check(user="victim", org=f"org-{i}").allowed
        clock.advance(1)
    assert not limits.check(user="victim", org="org-x").allowed
    clock.advance(10)
    _fill(limits, lambda i: limits.check(user=f"u-{i}", org=f"o-{i}"), slots)
    decision = limits.check(user="victim", org="a-new-org")
    assert not decision.allowed and limits.violated(decision) == "user"
    denied = check_all([(user, "victim"), (org, "another-new-org")])
    assert not denied.allowed and not denied.fallback
    # nothing readable denies: the policy decides (open admits, as a fallback)
    admitted = check_all([(user, "new-user"), (org, "new-org")])
    assert admitted.allowed and admitted.fallback
    assert asyncio.run(limits.acheck(user="victim", org="org-async")).allowed is False


@pytest.mark.parametrize(("fail", "allowed"), [("open", True), ("closed", False)])
def test_full_table_check_all_follows_fail(fail: str, allowed: bool, clock: Any) -> None:
    """A full table answered 500 on stacked routes (check_all raised
    StoreFullError) whatever fail= said."""
    a = Limiter(
        "5/minute", store="memory://fw-test-full-group", max_keys=16, clock=clock, fail=fail
    )
    b = Limiter("9/minute", store=a.store, namespace="b", clock=clock, fail=fail)
    slots = a.stats()["slots"]
    _fill(a, lambda i: check_all([(a, f"a{i}"), (b, f"b{i}")]), slots)
    decision = check_all([(a, "fresh-a"), (b, "fresh-b")])
    assert decision.fallback and decision.allowed is allowed
    if not allowed:
        assert decision.retry_after == pytest.approx(1.0) and decision.remaining == 0
    assert a.stats()["fallbacks"] >= 1


def test_full_table_with_fail_raise_raises_on_check_all(clock: Any) -> None:
    a = Limiter("5/minute", store="memory://fw-test-full-raise", max_keys=16, clock=clock)
    b = Limiter("9/minute", store=a.store, namespace="b", clock=clock)
    slots = a.stats()["slots"]
    with pytest.raises(floodwall.StoreFullError):
        for i in range(50 * slots):
            check_all([(a, f"a{i}"), (b, f"b{i}")])


def test_closed_means_the_same_on_every_store() -> None:
    from floodwall.stores.failure import DEFAULT_RETRY_AFTER, FailurePolicy

    rate = floodwall.Rate.parse("3/minute")
    policy = FailurePolicy("closed")
    d = policy.decide(floodwall.StoreError("down"), rate)
    assert (d.allowed, d.fallback, d.remaining, d.limit) == (False, True, 0, 3)
    assert d.retry_after == pytest.approx(DEFAULT_RETRY_AFTER)
    d = policy.decide(floodwall.StoreError("down"), rate, retry_in=0.25)
    assert d.retry_after == pytest.approx(0.25)
    assert (policy.errors, policy.fallbacks) == (2, 2)
    with pytest.raises(ConfigError, match="fail must be one of"):
        FailurePolicy("sometimes")


# ---- one list of algorithms ------------------------------------------------------


def test_every_store_knows_every_algorithm_of_the_one_list() -> None:
    from floodwall import _native
    from floodwall.algorithms import ALGORITHMS
    from floodwall.stores.redis.scripts import ALGORITHM_CODES

    assert set(ALGORITHM_CODES) == set(ALGORITHMS)
    assert sorted(ALGORITHMS.values()) == list(range(len(ALGORITHMS)))
    for name, number in ALGORITHMS.items():
        assert getattr(_native, name.upper()) == number
        assert Limiter("5/minute", algorithm=name).algorithm == name
