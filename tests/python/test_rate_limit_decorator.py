# Tests of floodwall.rate_limit: the same decorator on FastAPI (sync/async,
# with and without a request parameter), Flask (sync/async) and Django
# (function, async, class-based) views, each driven by its own test client;
# named limits; and that `import floodwall` imports no framework.
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import types
from typing import Any

import django_setup
import http_sf
import pytest

django_setup.configure()

import flask  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.views import View  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import floodwall  # noqa: E402
from floodwall.decorator import (  # noqa: E402
    lookup_named_limit,
    rate_limit,
    register_named_limit,
    unregister_named_limit,
)
from floodwall.errors import ConfigError  # noqa: E402
from floodwall.headers import PROBLEM_TYPE  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sf_list(value: str) -> Any:
    return http_sf.parse(value.encode(), tltype="list")


# ------------------------------------------------------------------ FastAPI


def test_fastapi_endpoints_all_shapes(store_url: str, clock: Any) -> None:
    app = FastAPI()

    @app.get("/async")
    @rate_limit("5/5minutes", store=store_url, clock=clock)
    async def async_no_request() -> dict[str, str]:
        return {"v": "async"}

    @app.get("/sync")
    @rate_limit(requests=1, period=60, store=store_url, clock=clock)
    def sync_no_request(q: int = 1) -> dict[str, int]:
        return {"q": q}

    @app.get("/with-request")
    @rate_limit("1/minute", store=store_url, clock=clock, key="header:X-Api-Key")
    async def with_request(request: Request) -> dict[str, str]:
        return {"path": request.url.path}

    @app.get("/sync-request")
    @rate_limit("1/minute", store=store_url, clock=clock)
    def sync_with_request(request: Request) -> dict[str, str]:
        return {"m": request.method}

    c = TestClient(app, client=("203.0.113.7", 1))
    for remaining in (4, 3, 2, 1, 0):
        r = c.get("/async")
        assert r.status_code == 200 and r.json() == {"v": "async"}
        assert r.headers["x-ratelimit-remaining"] == str(remaining)
    r = c.get("/async")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "60"
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM_TYPE
    assert sf_list(r.headers["ratelimit-policy"]) == [("5-per-300s", {"q": 5, "w": 300})]
    clock.advance(60)
    assert c.get("/async").status_code == 200

    assert c.get("/sync?q=3").json() == {"q": 3}
    assert c.get("/sync").status_code == 429

    h = {"X-Api-Key": "k1"}
    assert c.get("/with-request", headers=h).json() == {"path": "/with-request"}
    assert c.get("/with-request", headers=h).status_code == 429
    assert c.get("/with-request", headers={"X-Api-Key": "k2"}).status_code == 200

    assert c.get("/sync-request").json() == {"m": "GET"}
    assert c.get("/sync-request").status_code == 429
    params = c.get("/openapi.json").json()["paths"]["/sync"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["q"]


# ------------------------------------------------------------------ Flask


def test_flask_views_sync_and_async(store_url: str, clock: Any) -> None:
    app = flask.Flask(__name__)

    @app.route("/sync/<int:n>")
    @rate_limit("2/minute", store=store_url, clock=clock)
    def sync_view(n: int) -> Any:
        return {"n": n}

    @app.route("/async")
    @rate_limit(requests=1, period=60, store=store_url, clock=clock)
    async def async_view() -> str:
        return "async"

    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    r = c.get("/sync/1")
    assert r.status_code == 200 and r.get_json() == {"n": 1}
    assert sf_list(r.headers["RateLimit"]) == [("2-per-60s", {"r": 1, "t": 30})]
    assert c.get("/sync/2").status_code == 200
    r = c.get("/sync/3")
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    assert r.mimetype == "application/problem+json"
    r = c.get("/async")
    assert r.status_code == 200 and r.data == b"async"
    assert c.get("/async").status_code == 429


# ------------------------------------------------------------------ Django


def test_django_views(store_url: str, clock: Any) -> None:
    @rate_limit("1/minute", store=store_url, clock=clock)
    def dj_function(request: HttpRequest) -> HttpResponse:
        return HttpResponse("function")

    @rate_limit("1/minute", store=store_url, clock=clock)
    async def dj_async(request: HttpRequest) -> HttpResponse:
        return HttpResponse("async")

    @rate_limit(requests=1, period=60, store=store_url, clock=clock)
    class DjClassView(View):
        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("class")

    urlconf = types.ModuleType(f"fw_urls_{abs(hash(store_url))}")
    urlconf.urlpatterns = [  # type: ignore[attr-defined]
        path("function", dj_function),
        path("async", dj_async),
        path("class", DjClassView.as_view()),
    ]
    with override_settings(ROOT_URLCONF=urlconf):
        c = Client(REMOTE_ADDR="203.0.113.8")
        for url, body in (("/function", b"function"), ("/class", b"class")):
            r = c.get(url)
            assert r.status_code == 200 and r.content == body
            assert sf_list(r["RateLimit"]) == [("1-per-60s", {"r": 0, "t": 60})]
            r = c.get(url)
            assert r.status_code == 429 and r["Retry-After"] == "60"
            assert r["Content-Type"] == "application/problem+json"

        async def run() -> list[int]:
            ac = AsyncClient(REMOTE_ADDR="203.0.113.8")
            return [(await ac.get("/async")).status_code for _ in range(2)]

        assert asyncio.run(run()) == [200, 429]


# ------------------------------------------------------------------ named limits


def test_named_limits(store_url: str, clock: Any) -> None:
    with pytest.raises(ConfigError, match="'nope'"):
        lookup_named_limit("nope")
    # an unknown name fails when the decorator is built, not at a request
    with pytest.raises(ConfigError, match="no named limit 'late'"):
        rate_limit(name="late")
    register_named_limit("late", floodwall.Limiter("1/minute", store=store_url, clock=clock))
    try:
        app = FastAPI()

        @app.get("/named")
        @rate_limit(name="late")
        async def named() -> dict[str, str]:
            return {}

        c = TestClient(app, client=("203.0.113.9", 1), raise_server_exceptions=True)
        r = c.get("/named")
        assert r.status_code == 200
        assert sf_list(r.headers["ratelimit"]) == [("late", {"r": 0, "t": 60})]
        assert c.get("/named").status_code == 429
    finally:
        unregister_named_limit("late")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        rate_limit()
    with pytest.raises(ValueError):
        rate_limit("1/minute", requests=1, period=1)
    with pytest.raises(ValueError):
        rate_limit(requests=1)


def test_called_outside_a_request() -> None:
    @rate_limit("1/minute")
    def plain() -> None:
        return None

    with pytest.raises(TypeError, match="outside a Flask"):
        plain()


# ------------------------------------------------------------------ lazy imports


def test_import_floodwall_imports_no_framework() -> None:
    code = (
        "import sys, floodwall, floodwall.headers, floodwall.keys, floodwall.decorator, "
        "floodwall.integrations\n"
        "bad = [m for m in ('starlette', 'fastapi', 'flask', 'django', 'rest_framework') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.join(ROOT, "python"), env.get("PYTHONPATH", "")) if p
    )
    # Use the floodwall this test process imported (it may come from elsewhere).
    pkg_parent = os.path.dirname(os.path.dirname(floodwall.__file__))
    env["PYTHONPATH"] = pkg_parent + os.pathsep + env["PYTHONPATH"]
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
