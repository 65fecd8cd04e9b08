"""The part every network store shares (floodwall.stores.network), on Redis,
PostgreSQL and the floodwall server: one cost rule, one failure path around
the circuit breaker (a failure counted once, then skipped while open, with
one message), the stats it counts, and a group refused off its store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis_servers import free_port

import floodwall
from floodwall import ConfigError, CostError, StoreError
from floodwall.stores.network import NetworkBackend, PooledBackend, validate_cost

#: the network stores and the label their failures carry
NETWORK = ("redis://", "postgresql://", "http://")


def _dead_url(scheme: str) -> str:
    """A URL of the store ``scheme`` whose port nobody listens on: every
    call fails at once (connection refused)."""
    port = free_port()
    if scheme == "redis://":
        return f"redis://127.0.0.1:{port}/0?timeout=2&breaker_threshold=2&breaker_cooldown=60"
    if scheme == "postgresql://":
        return (
            f"postgresql://floodwall@127.0.0.1:{port}/floodwall"
            "?timeout=0.5&breaker_threshold=2&breaker_cooldown=60"
        )
    return f"http://127.0.0.1:{port}?timeout=2&breaker_threshold=2&breaker_cooldown=60"


_LABEL = {
    "redis://": "Redis store",
    "postgresql://": "PostgreSQL store",
    "http://": "floodwall server http://127.0.0.1:",
}


@pytest.fixture(params=NETWORK)
def network_url(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_validate_cost() -> None:
    assert validate_cost(0) == 0 and validate_cost(7) == 7
    with pytest.raises(CostError, match="not bool"):
        validate_cost(True)
    with pytest.raises(CostError, match="got -1"):
        validate_cost(-1)
    with pytest.raises(CostError, match="not float"):
        validate_cost(1.0)


def test_every_network_store_is_a_network_backend(store_url: str) -> None:
    lim = floodwall.Limiter("5/minute", store=store_url)
    try:
        network = store_url.split(":", 1)[0] in ("redis", "postgresql", "http")
        assert isinstance(lim.backend, NetworkBackend) is network
        assert isinstance(lim.backend, PooledBackend) is (
            network and not store_url.startswith("http")
        )
    finally:
        lim.close()


@pytest.mark.parametrize("scheme", NETWORK)
def test_cost_rules_are_one(scheme: str) -> None:
    """A bad cost is the caller's CostError, before the server is asked:
    the same on a store nobody listens on (nothing counted, no error)."""
    lim = floodwall.Limiter("10/second; 5/minute", store=_dead_url(scheme))
    try:
        with pytest.raises(CostError, match="not bool"):
            lim.check("k", True)
        with pytest.raises(CostError, match="got -2"):
            lim.check("k", -2)
        with pytest.raises(CostError, match="cost 6 exceeds the capacity 5 of 5/minute"):
            lim.check("k", 6)
        with pytest.raises(CostError, match="cost 6 exceeds the capacity 5"):
            asyncio.run(lim.acheck("k", 6))
        stats = lim.stats()
        assert (stats["errors"], stats["fallbacks"], stats["breaker_trips"]) == (0, 0, 0)
    finally:
        lim.close()


def test_failure_path_is_one(network_url: str) -> None:
    """Two failures open the breaker (threshold 2); then the server is
    skipped: no new error, no on_error call, the same message on every
    store; the counts say so."""
    errors: list[BaseException] = []
    lim = floodwall.Limiter(
        "5/minute", store=_dead_url(network_url), fail="closed", on_error=errors.append
    )
    try:
        first = lim.check("k")
        second = asyncio.run(lim.acheck("k"))
        assert not first.allowed and first.fallback and first.remaining == 0
        assert not second.allowed and second.fallback
        assert len(errors) == 2
        skipped = lim.check("k")
        assert not skipped.allowed and skipped.fallback
        assert skipped.retry_after > 1  # the breaker's cooldown, not the default 1 s
        assert len(errors) == 2
        stats = lim.stats()
        assert {k: stats[k] for k in (
            "allowed", "denied", "fallbacks", "errors", "breaker_open", "breaker_trips",
            "active_keys",
        )} == {
            "allowed": 0, "denied": 0, "fallbacks": 3, "errors": 2, "breaker_open": 1,
            "breaker_trips": 1, "active_keys": -1,
        }
    finally:
        lim.close()
    raising = floodwall.Limiter("5/minute", store=_dead_url(network_url), fail="raise")
    try:
        for _ in range(2):
            with pytest.raises(StoreError):
                raising.check("k")
        with pytest.raises(StoreError) as info:
            raising.check("k")
        message = str(info.value)
        assert message.startswith(_LABEL[network_url])
        assert " skipped: the circuit breaker is open after 2 consecutive failures" in message
    finally:
        raising.close()


def test_counts_and_peeks(store_url: str, clock: Any) -> None:
    """allowed/denied count decisions that charge units, never a peek."""
    lim = floodwall.Limiter("2/minute", store=store_url, clock=clock)
    try:
        lim.check("k")
        lim.peek("k")
        lim.check("k", 0)
        lim.check("k")
        assert not lim.allow("k")
        stats = lim.stats()
        assert (stats["allowed"], stats["denied"], stats["errors"]) == (2, 1, 0)
    finally:
        lim.close()


@pytest.mark.parametrize("scheme", NETWORK)
def test_group_off_its_store_is_refused(scheme: str) -> None:
    """A group whose parts are not all on the first part's store is a
    ConfigError naming that store, before any server is asked."""
    net = floodwall.Limiter("5/minute", store=_dead_url(scheme))
    other = floodwall.Limiter("5/minute", store="memory://")
    store_name = {
        "redis://": "Redis store", "postgresql://": "PostgreSQL store",
        "http://": "floodwall server",
    }[scheme]
    try:
        with pytest.raises(ConfigError, match=f"on the same {store_name}: open them"):
            floodwall.check_all([(net, "a"), (other, "b")])
        assert net.stats()["errors"] == 0
    finally:
        net.close()
        other.close()


@pytest.mark.parametrize("scheme", NETWORK)
def test_group_on_another_connection_is_refused(scheme: str) -> None:
    a = floodwall.Limiter("5/minute", store=_dead_url(scheme))
    b = floodwall.Limiter("5/minute", store=_dead_url(scheme))
    try:
        with pytest.raises(ConfigError, match="check_all needs every limiter on the same"):
            floodwall.check_all([(a, "x"), (b, "y")])
        with pytest.raises(CostError, match="got -1"):
            floodwall.check_all([(a, "x"), (a, "y", -1)])
    finally:
        a.close()
        b.close()
