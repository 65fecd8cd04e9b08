# test_shared_limiter.py - floodwall.SharedLimiter, flint-limiter's name for
# a Limiter on a `floodwall serve` server (the session's real server, 2
# workers): flint's argument names where they map, a clear ConfigError where
# they do not, and the same state as a Limiter on the same server.
from __future__ import annotations

import uuid

import pytest
from floodwall_servers import FloodwallServer

import floodwall
from floodwall.errors import ConfigError


@pytest.fixture
def srv(floodwall_server: FloodwallServer) -> FloodwallServer:
    return floodwall_server


def ns() -> str:
    return f"shared-{uuid.uuid4().hex[:10]}"


def test_flint_spelling_admits_the_policy(srv: FloodwallServer) -> None:
    assert srv.token is not None
    limiter = floodwall.SharedLimiter(srv.url, rate=3, per="1m", token=srv.token,
                                      timeout=10.0, namespace=ns())
    assert isinstance(limiter, floodwall.Limiter)
    assert limiter.store.capabilities.kind == "remote"
    assert [limiter.allow("api:user-42") for _ in range(4)] == [True, True, True, False]
    d = limiter.check("api:user-42", cost=1)
    assert not d.allowed and not d.fallback and d.limit == 3 and d.retry_after > 0
    assert limiter.reset("api:user-42") is True
    assert limiter.allow("api:user-42")


def test_it_is_the_limiter_on_the_same_server(srv: FloodwallServer) -> None:
    """A SharedLimiter and a Limiter opened on the same server, rate and
    namespace share their keys' state."""
    name = ns()
    shared = floodwall.SharedLimiter(srv.url, "2/minute", token=srv.token, timeout=10,
                                     namespace=name)
    plain = floodwall.Limiter("2/minute", store=srv.store_url(timeout="10"), namespace=name)
    assert shared.allow("k") and plain.allow("k")
    assert not shared.allow("k") and not plain.allow("k")


def test_flint_algorithm_names_map(srv: FloodwallServer) -> None:
    for flint_name, ours in (("sliding_window_log", "sliding_log"),
                             ("fixed_window_counter", "fixed_window"),
                             ("token_bucket", "token_bucket")):
        limiter = floodwall.SharedLimiter(srv.url, rate=2, per="1h", algorithm=flint_name,
                                          token=srv.token, timeout=10, namespace=ns())
        assert limiter.algorithm == ours
        assert [limiter.allow("k") for _ in range(3)] == [True, True, False], flint_name


def test_async_and_the_decorator(srv: FloodwallServer) -> None:
    import asyncio

    limiter = floodwall.SharedLimiter(srv.url, "1/minute", token=srv.token, timeout=10,
                                      namespace=ns())

    @limiter.limit("email:send")
    def send() -> str:
        return "sent"

    assert send() == "sent"
    with pytest.raises(floodwall.RateLimited):
        send()

    async def main() -> list[bool]:
        return [await limiter.aallow("a"), await limiter.aallow("a")]

    assert asyncio.run(main()) == [True, False]


def test_the_token_file_and_the_environment(srv: FloodwallServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    by_file = floodwall.SharedLimiter(srv.url, "1/minute", token_file=str(srv.token_file),
                                      timeout=10, namespace=ns())
    assert by_file.allow("k")
    assert srv.token is not None
    monkeypatch.setenv("FLOODWALL_SERVER_TOKEN", srv.token)
    by_env = floodwall.SharedLimiter(srv.url, "1/minute", timeout=10, namespace=ns())
    assert by_env.allow("k")


def test_a_wrong_token_follows_the_failure_policy(srv: FloodwallServer) -> None:
    limiter = floodwall.SharedLimiter(srv.url, "5/minute", token="not-the-token-0123456789",
                                      timeout=10, fail="closed", namespace=ns())
    d = limiter.check("k")
    assert not d.allowed and d.fallback


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data_dir": ".flint"}, "data_dir=.*floodwall serve --store"),
        ({"sync": "batch"}, "sync=.*sync=always"),
        ({"flush_every_ms": 100}, "flush_every_ms=.*sync_interval_ms"),
        ({"flush_every_events": 100}, "flush_every_events=.*sync_interval_ms"),
        ({"max_blocking": 128}, "max_blocking=.*concurrency"),
    ],
)
def test_flint_options_without_meaning_here_are_refused(kwargs: dict[str, object],
                                                        match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        floodwall.SharedLimiter("http://127.0.0.1:7878", "1/second", **kwargs)


def test_refusals_say_what_to_write() -> None:
    with pytest.raises(ConfigError, match="needs its rate"):
        floodwall.SharedLimiter("http://127.0.0.1:7878", token="x" * 20)
    with pytest.raises(ConfigError, match="server's URL"):
        floodwall.SharedLimiter("shm://limits", "1/second")
    with pytest.raises(ConfigError, match="clear text"):
        floodwall.SharedLimiter("http://10.1.2.3:7878", "1/second", token="x" * 20)


def test_flint_limit_configuration_is_refused(srv: FloodwallServer) -> None:
    limiter = floodwall.SharedLimiter(srv.url, "1/second", token=srv.token, timeout=10,
                                      namespace=ns())
    with pytest.raises(ConfigError, match="the rate belongs to the limiter"):
        limiter.limit("api:user-42", rate=100, per="1m")
