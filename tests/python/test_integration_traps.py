# Tests of the integration traps of issue 11 (each failed, or passed
# silently wrong, before the fix): Starlette Host() routing charging the
# default on top of an endpoint's own limit, a FastAPI decorator placed above
# @app.get, decorators used without parentheses or given a rate where a key
# belongs.
from __future__ import annotations

from typing import Any

import django_setup
import flask
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router
from starlette.testclient import TestClient

import floodwall
from floodwall.errors import ConfigError
from floodwall.integrations.asgi import Floodwall as AsgiFloodwall
from floodwall.integrations.flask import Floodwall as FlaskFloodwall

django_setup.configure()

from floodwall.integrations import django as fw_django  # noqa: E402

PEER = ("203.0.113.7", 1)


# ------------------------------------------------------------------ Host routing


@pytest.mark.parametrize("wrapper", ["host", "host-in-mount"])
def test_host_routed_endpoint_with_own_limit_is_not_charged_the_default(
    wrapper: str, clock: Any
) -> None:
    fw = AsgiFloodwall("2/minute", clock=clock)

    @fw.limit("5/minute")
    async def own(request: Request) -> PlainTextResponse:
        return PlainTextResponse("own")

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("plain")

    inner = Router(routes=[Route("/own", own), Route("/plain", plain)])
    host = Host("api.example.com", app=inner)
    routes: list[Any] = [host] if wrapper == "host" else [Mount("/v1", routes=[host])]
    prefix = "" if wrapper == "host" else "/v1"
    app = Starlette(routes=routes)
    fw.init_app(app)
    c = TestClient(app, client=PEER, base_url="http://api.example.com")
    codes = [c.get(prefix + "/own").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    # The default still applies to the endpoint without its own limit, and
    # the own-limit endpoint did not use it up.
    assert [c.get(prefix + "/plain").status_code for _ in range(3)] == [200, 200, 429]


def test_same_path_on_two_hosts_is_looked_up_per_host(clock: Any) -> None:
    fw = AsgiFloodwall("2/minute", clock=clock)

    @fw.limit("5/minute")
    async def own(request: Request) -> PlainTextResponse:
        return PlainTextResponse("own")

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("plain")

    app = Starlette(
        routes=[
            Host("a.example.com", app=Router(routes=[Route("/x", own)])),
            Host("b.example.com", app=Router(routes=[Route("/x", plain)])),
        ]
    )
    fw.init_app(app)
    a = TestClient(app, client=PEER, base_url="http://a.example.com")
    b = TestClient(app, client=PEER, base_url="http://b.example.com")
    assert a.get("/x").text == "own"
    # b's /x has no limit of its own: the default (2/minute) applies there.
    assert [b.get("/x").status_code for _ in range(3)] == [200, 200, 429]
    assert [a.get("/x").status_code for _ in range(5)] == [200, 200, 200, 200, 429]


# ------------------------------------------------------------------ decorator order


def test_fastapi_limit_above_app_get_limits(clock: Any) -> None:
    fw = AsgiFloodwall(clock=clock)
    app = FastAPI()
    fw.init_app(app)

    @fw.limit("2/minute")
    @app.get("/above")
    async def above() -> dict[str, str]:
        return {"ok": "above"}

    @app.get("/below")
    @fw.limit("2/minute")
    async def below() -> dict[str, str]:
        return {"ok": "below"}

    c = TestClient(app, client=PEER)
    assert [c.get("/above").status_code for _ in range(3)] == [200, 200, 429]
    assert [c.get("/below").status_code for _ in range(3)] == [200, 200, 429]
    r = c.get("/above")
    assert r.headers["x-ratelimit-limit"] == "2"


def test_rate_limit_above_app_get_is_refused_at_import() -> None:
    app = FastAPI()
    with pytest.raises(ConfigError, match="under @app.get"):

        @floodwall.rate_limit("2/minute")
        @app.get("/wrong")
        async def wrong() -> dict[str, str]:
            return {}

    # The right order is accepted and limits.
    @app.get("/right")
    @floodwall.rate_limit("2/minute")
    async def right() -> dict[str, str]:
        return {"ok": "right"}

    c = TestClient(app, client=PEER)
    assert [c.get("/right").status_code for _ in range(3)] == [200, 200, 429]


# ------------------------------------------------------------------ no parentheses


def test_asgi_limit_without_parentheses_fails_at_decoration() -> None:
    fw = AsgiFloodwall()
    with pytest.raises(ConfigError, match=r"without parentheses.*@fw.limit\('5/minute'\)"):

        @fw.limit  # type: ignore[arg-type]
        async def endpoint() -> None: ...

    with pytest.raises(ConfigError, match="a rate is needed"):
        fw.limit()
    with pytest.raises(ConfigError, match="not a limit"):
        fw.limit(5)  # type: ignore[arg-type]


def test_flask_limit_without_parentheses_fails_at_decoration() -> None:
    app = flask.Flask(__name__)
    fw = FlaskFloodwall(app)
    with pytest.raises(ConfigError, match="without parentheses"):

        @app.route("/x")
        @fw.limit  # type: ignore[arg-type]
        def view() -> str:
            return "x"


def test_django_limit_without_parentheses_fails_at_decoration() -> None:
    with pytest.raises(ConfigError, match="without parentheses"):

        @fw_django.limit  # type: ignore[arg-type]
        def view(request: Any) -> Any: ...


def test_rate_limit_without_parentheses_fails_at_decoration() -> None:
    with pytest.raises(ConfigError, match="without parentheses"):

        @floodwall.rate_limit  # type: ignore[arg-type]
        def view() -> None: ...


def test_limiter_limit_given_a_rate_fails_at_decoration() -> None:
    limiter = floodwall.Limiter("100/hour")
    with pytest.raises(ConfigError, match="rate"):
        limiter.limit("5/minute")
    # A key that is not a rate is still a key.
    calls = limiter.limit("jobs")(lambda: "ran")
    assert calls() == "ran"


# ------------------------------------------------------------------ Django: middleware alone


def test_django_middleware_without_setting_is_reported(caplog: Any) -> None:
    from django.core import checks
    from django.test import Client, override_settings

    mw = "floodwall.integrations.django.FloodwallMiddleware"
    with override_settings(MIDDLEWARE=[mw], ROOT_URLCONF="django.contrib.auth.urls"):
        messages = [m for m in checks.run_checks() if m.id == "floodwall.W001"]
        assert len(messages) == 1
        assert "FLOODWALL is not set" in messages[0].msg
        assert "DEFAULT" in (messages[0].hint or "")
        with caplog.at_level("WARNING", logger="floodwall.django"):
            Client().get("/nowhere")
        assert any("limits no request" in r.getMessage() for r in caplog.records)
    with override_settings(MIDDLEWARE=[mw], FLOODWALL={"STORE": "memory://"}):
        messages = [m for m in checks.run_checks() if m.id == "floodwall.W001"]
        assert len(messages) == 1 and "neither DEFAULT nor ROUTES" in messages[0].msg
    with override_settings(MIDDLEWARE=[mw], FLOODWALL={"DEFAULT": "1/minute"}):
        assert not [m for m in checks.run_checks() if m.id == "floodwall.W001"]
    with override_settings(MIDDLEWARE=[], FLOODWALL={}):
        assert not [m for m in checks.run_checks() if m.id == "floodwall.W001"]


# ------------------------------------------------------------------ setup-time validation


def test_zero_argument_key_function_fails_at_setup() -> None:
    with pytest.raises(ConfigError, match="must take one argument"):
        AsgiFloodwall("5/minute", key=lambda: "x")
    fw = AsgiFloodwall("5/minute")
    with pytest.raises(ConfigError, match="must take one argument"):
        fw.limit("1/minute", key=lambda a, b: "x")
    app = flask.Flask(__name__)
    with pytest.raises(ConfigError, match="must take one argument"):
        FlaskFloodwall(app, "5/minute", key=lambda: "x")
    with pytest.raises(ConfigError, match="must take one argument"):
        floodwall.rate_limit("5/minute", key=lambda: "x")
    # One argument, or one plus defaults / *args, is fine.
    AsgiFloodwall("5/minute", key=lambda request, extra=1: "x")
    AsgiFloodwall("5/minute", key=lambda *args: "x")


@pytest.mark.parametrize(
    ("name", "spelling"),
    [
        ("default_limits", "default="),
        ("key_func", "key="),
        ("storage_uri", "store="),
        ("strategy", "algorithm="),
        ("swallow_errors", "fail='open'"),
    ],
)
def test_other_libraries_option_names_answered_in_floodwall_terms(name: str, spelling: str) -> None:
    value: Any = ["100/minute"] if name == "default_limits" else "x"
    with pytest.raises(ConfigError, match=f"another library's spelling.*{spelling}"):
        AsgiFloodwall(**{name: value})
    with pytest.raises(ConfigError, match=f"another library's spelling.*{spelling}"):
        FlaskFloodwall(flask.Flask(__name__), **{name: value})
    with pytest.raises(ConfigError, match=f"another library's spelling.*{spelling}"):
        floodwall.rate_limit("5/minute", **{name: value})
    with pytest.raises(ConfigError, match="has no option 'bogus'"):
        AsgiFloodwall(bogus=1)


def test_flask_floodwall_given_a_rate_first() -> None:
    with pytest.raises(ConfigError, match="first argument is the Flask app"):
        FlaskFloodwall("100/minute")  # type: ignore[arg-type]


def test_limiter_limit_without_parentheses_says_so_at_decoration() -> None:
    limiter = floodwall.Limiter("100/hour")

    # refused where it is written, not at the first call (issue 11)
    with pytest.raises(ConfigError, match=r"without parentheses.*@limiter.limit\(\)"):

        @limiter.limit  # type: ignore[arg-type]
        def job(n: int) -> int:
            return n


def test_django_setting_with_another_librarys_name() -> None:
    from django.test import override_settings

    from floodwall.integrations.django import get_guard

    for name, spelling in (("DEFAULT_LIMITS", "DEFAULT"), ("STORAGE_URI", "STORE")):
        with override_settings(FLOODWALL={name: "x"}):
            with pytest.raises(ConfigError, match=f"another library's spelling.*{spelling}"):
                get_guard()
