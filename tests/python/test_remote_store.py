# test_remote_store.py - the http(s):// store on a real `floodwall serve`
# (the session server of floodwall_servers.py): what it accepts and refuses
# in its URL, the token sources, groups across limiters, Limits and the
# decorator unchanged, async twins, and the answers a broken server gives.
from __future__ import annotations

import asyncio
import uuid

import pytest
from floodwall_servers import FloodwallServer

import floodwall
from floodwall.errors import ConfigError, CostError, StoreError


@pytest.fixture
def url(remote_store_url: str) -> str:
    return remote_store_url


def ns() -> str:
    return f"rs-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("store", "match"),
    [
        ("http://10.0.0.1:7878", "clear text"),
        ("http://example.com:7878", "clear text"),
        ("http://127.0.0.1:7878/v1", "must not have a path"),
        ("http://user:pw@127.0.0.1:7878", "not in the URL"),
        ("http://127.0.0.1:7878?bogus=1", "unknown URL option"),
        ("http://127.0.0.1:7878?timeout=-1", "timeout"),
        ("https://10.0.0.1:7878?verify=false", "loopback only"),
    ],
)
def test_url_refusals(store: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        floodwall.Limiter("1/second", store=store)


def test_insecure_http_is_an_explicit_choice() -> None:
    limiter = floodwall.Limiter("1/second", store="http://10.0.0.1:7878?insecure_http=true")
    assert limiter.store.capabilities.kind == "remote"


def test_token_from_the_environment(floodwall_server: FloodwallServer,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert floodwall_server.token is not None
    monkeypatch.setenv("FLOODWALL_SERVER_TOKEN", floodwall_server.token)
    limiter = floodwall.Limiter("2/minute", store=floodwall_server.url + "?timeout=10",
                                namespace=ns())
    assert limiter.check("k").fallback is False


def test_wrong_token_is_a_store_failure(floodwall_server: FloodwallServer) -> None:
    url = floodwall_server.url + "?timeout=10&token=" + "w" * 32
    with pytest.raises(StoreError, match="401"):
        floodwall.Limiter("2/minute", store=url, namespace=ns()).check("k")
    d = floodwall.Limiter("2/minute", store=url, fail="closed", namespace=ns()).check("k")
    assert not d.allowed and d.fallback


def test_cost_mistakes_are_raised_before_the_server_is_asked(url: str) -> None:
    limiter = floodwall.Limiter("5/minute", store=url)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(CostError):
            limiter.check("k", bad)  # type: ignore[arg-type]
    with pytest.raises(CostError, match="can never be admitted"):
        limiter.check("k", 6)
    assert limiter.stats()["errors"] == 0


def test_check_all_groups_limiters_of_one_server(url: str) -> None:
    user = floodwall.Limiter("5/minute", store=url, namespace="user")
    org = floodwall.Limiter("10/minute", store=user.store, namespace="org")
    assert floodwall.check_all([(user, "u", 1), (org, "o", 8)]).allowed
    d = floodwall.check_all([(user, "u", 1), (org, "o", 8)])
    assert not d.allowed and d.denied_part == 1 and d.rate == floodwall.Rate(10, 60)
    assert user.remaining("u") == 4  # the denial consumed nothing
    local = floodwall.Limiter("5/minute")
    with pytest.raises(ConfigError, match="same"):
        floodwall.check_all([(user, "u"), (local, "x")])


def test_limits_and_decorator_work_unchanged(url: str) -> None:
    limits = floodwall.Limits(
        {"user": "2/minute", "org": "3/minute"}, store=url
    )
    assert limits.allow(user="a", org="z") and limits.allow(user="b", org="z")
    assert limits.allow(user="c", org="z")
    d = limits.check(user="d", org="z")
    assert not d.allowed and limits.violated(d) == "org"

    limiter = floodwall.Limiter("1/minute", store=url, namespace=ns())

    @limiter.limit(key="fixed")
    def work() -> str:
        return "done"

    assert work() == "done"
    with pytest.raises(floodwall.RateLimited):
        work()


def test_async_twins_share_the_state(url: str) -> None:
    limiter = floodwall.Limiter("3/minute", store=url, namespace=ns())

    async def scenario() -> list[object]:
        a = await limiter.aallow("k")
        b = (await limiter.acheck("k", 2)).remaining
        c = await limiter.aallow("k")
        r = await limiter.areset("k")
        return [a, b, c, r, await limiter.aremaining("k")]

    assert asyncio.run(scenario()) == [True, 0, False, True, 3]
    assert asyncio.run(scenario()) == [True, 0, False, True, 3]  # a new event loop


def test_every_algorithm_through_the_server(url: str) -> None:
    for algorithm in floodwall.algorithms.ALGORITHMS:
        limiter = floodwall.Limiter("3/minute", algorithm=algorithm, store=url, namespace=ns())
        assert [limiter.allow("k") for _ in range(4)] == [True, True, True, False], algorithm


def test_a_dead_address_answers_within_the_timeout() -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    limiter = floodwall.Limiter(
        "5/second", store=f"http://127.0.0.1:{port}?timeout=0.3&breaker_threshold=1",
        fail="open",
    )
    start = time.monotonic()
    d = limiter.check("k")
    assert d.allowed and d.fallback and time.monotonic() - start < 1.0
    assert limiter.stats()["breaker_open"] == 1
