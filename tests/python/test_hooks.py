"""Hooks: on_allow / on_block with the right arguments, on_error when Redis
is stopped, a raising hook never changes a decision or a response, and an
unset hook leaves the C methods bound."""

from __future__ import annotations

import logging
from typing import Any

import flask
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import floodwall
from floodwall.hooks import key_id
from floodwall.integrations.asgi import Floodwall as AsgiFloodwall
from floodwall.integrations.flask import Floodwall as FlaskFloodwall


def test_hooks_get_decision_and_info(store_url: str) -> None:
    calls: list[tuple[str, bool, dict[str, Any]]] = []
    lim = floodwall.Limiter(
        "2/minute", store=store_url, name="api",
        on_allow=lambda d, i: calls.append(("allow", d.allowed, dict(i))),
        on_block=lambda d, i: calls.append(("block", d.allowed, dict(i))),
    )
    lim.check("alice")
    lim.check("alice", 1)
    assert not lim.allow("alice")
    lim.peek("alice")  # not a decision
    scheme = store_url.split(":", 1)[0]
    kind = {"http": "remote"}.get(scheme, scheme)  # the floodwall server is a "remote" store
    info = {"limit": "api", "key": key_id("alice"), "cost": 1, "store": kind, "fallback": False}
    assert calls == [("allow", True, info), ("allow", True, info), ("block", False, info)]
    assert "alice" not in str(calls)
    lim.close()


def test_async_hooks(store_url: str) -> None:
    import asyncio

    seen: list[bool] = []
    lim = floodwall.Limiter("1/minute", store=store_url, on_allow=lambda d, i: seen.append(True),
                            on_block=lambda d, i: seen.append(False))

    async def run() -> None:
        assert (await lim.acheck("k")).allowed
        assert not await lim.aallow("k")
        await lim.aclose()

    asyncio.run(run())
    assert seen == [True, False]


def test_on_error_and_fallback_hooks_when_redis_is_stopped(fresh_server: Any) -> None:
    errors: list[BaseException] = []
    allowed: list[dict[str, Any]] = []
    lim = floodwall.Limiter(
        "5/minute", store=fresh_server.url + "?timeout=0.2", fail="open", name="r",
        on_error=errors.append, on_allow=lambda d, i: allowed.append(dict(i)),
    )
    assert lim.check("k").allowed
    assert allowed[-1]["fallback"] is False and not errors
    fresh_server.kill()
    d = lim.check("k")
    assert d.allowed and d.fallback
    assert len(errors) == 1
    assert allowed[-1] == {"limit": "r", "key": key_id("k"), "cost": 1, "store": "redis",
                           "fallback": True}
    lim.close()


def test_raising_hook_keeps_the_decision(caplog: pytest.LogCaptureFixture) -> None:
    def boom(d: Any, i: Any) -> None:
        raise RuntimeError("hook bug")

    lim = floodwall.Limiter("2/minute", on_allow=boom, on_block=boom)
    with caplog.at_level(logging.WARNING, logger="floodwall.hooks"):
        results = [lim.allow("k") for _ in range(4)]
    assert results == [True, True, False, False]
    assert lim.observer is not None and lim.observer.hook_errors == 4
    records = [r for r in caplog.records if r.name == "floodwall.hooks"]
    assert len(records) == 1 and "hook bug" in records[0].getMessage()


def test_unset_hooks_cost_nothing() -> None:
    lim = floodwall.Limiter("2/minute")
    assert type(lim.check).__name__ == "builtin_function_or_method"
    assert lim.observer is None
    hooked = floodwall.Limiter("2/minute", on_block=lambda d, i: None)
    assert type(hooked.check).__name__ == "function"


def test_bad_hook_refused() -> None:
    with pytest.raises(floodwall.ConfigError, match="on_allow must be a callable"):
        floodwall.Limiter("2/minute", on_allow="print")


def test_asgi_hooks_and_raising_hook_keep_responses() -> None:
    seen: list[tuple[str, str]] = []

    def on_allow(d: Any, i: Any) -> None:
        seen.append(("allow", i["limit"]))
        raise ValueError("broken hook")

    def on_block(d: Any, i: Any) -> None:
        seen.append(("block", i["limit"]))
        raise ValueError("broken hook")

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", home)])
    AsgiFloodwall("2/minute", on_allow=on_allow, on_block=on_block).init_app(app)
    client = TestClient(app)
    codes = [client.get("/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert seen == [("allow", "default"), ("allow", "default"), ("block", "default")]


def test_flask_hooks_and_rate_limit_decorator() -> None:
    seen: list[str] = []
    app = flask.Flask(__name__)
    FlaskFloodwall(app, default="1/minute", on_block=lambda d, i: seen.append(i["limit"]))

    @app.get("/")
    def home() -> str:
        return "ok"

    @app.get("/deco")
    @floodwall.rate_limit("1/minute", on_allow=lambda d, i: 1 / 0,
                          on_block=lambda d, i: seen.append("deco"))
    def deco() -> str:
        return "ok"

    c = app.test_client()
    assert [c.get("/").status_code for _ in range(2)] == [200, 429]
    assert [c.get("/deco").status_code for _ in range(2)] == [200, 429]
    assert seen == ["default", "deco"]
