# Tests of the web-layer ways around a limit (issue 10) on every framework:
# a repeated key header is one key (the first field, what the application
# reads), a limit on GET covers HEAD, and leaky-bucket shaping never holds a
# request longer than max_delay nor a worker's waiting above max_waiting.
from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

import django_setup
import flask
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from floodwall.errors import ConfigError
from floodwall.integrations.asgi import ASGIView
from floodwall.integrations.asgi import Floodwall as AsgiFloodwall
from floodwall.integrations.flask import FlaskView
from floodwall.integrations.flask import Floodwall as FlaskFloodwall
from floodwall.keys import by_path, resolve_key

django_setup.configure()

from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.response import Response as DRFResponse  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

import floodwall.integrations.django as fw_django  # noqa: E402
import floodwall.integrations.drf as fw_drf  # noqa: E402

MW = "floodwall.integrations.django.FloodwallMiddleware"
PEER = "203.0.113.7"
API_KEY = resolve_key("header:X-Api-Key")


# ------------------------------------------------------------------ apps


def starlette_app(fw: AsgiFloodwall) -> Starlette:
    async def items(request: Request) -> PlainTextResponse:
        # The key floodwall charged is the one the application reads.
        value = request.headers.get("x-api-key")
        if value is not None:
            assert API_KEY(ASGIView(request.scope, request)) == "hdr:x-api-key:" + value
        return PlainTextResponse(value or "items")

    app = Starlette(routes=[Route("/items", items, methods=["GET", "POST"])])
    fw.init_app(app)
    return app


def flask_app(fw: FlaskFloodwall) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/items", methods=["GET", "POST"])
    def items() -> str:
        value = flask.request.headers.get("X-Api-Key")
        if value is not None:
            assert API_KEY(FlaskView(flask.request)) == "hdr:x-api-key:" + value
        return value or "items"

    fw.init_app(app)
    return app


def django_items(request: HttpRequest) -> HttpResponse:
    value = request.headers.get("X-Api-Key")
    if value is not None:
        assert API_KEY(fw_django.DjangoView(request)) == "hdr:x-api-key:" + value
    return HttpResponse(value or "items")


class ShapedThrottle(fw_drf.FloodwallThrottle):
    rate = "1/second burst 10"
    algorithm = "leaky_bucket_shaping"
    key = "ip"


class ShapedView(APIView):
    throttle_classes = [ShapedThrottle]

    def get(self, request: Any) -> DRFResponse:
        return DRFResponse({"ok": True})


class KeyedThrottle(fw_drf.FloodwallThrottle):
    rate = "3/minute"
    scope = "keyed"
    key = "header:X-Api-Key"


class KeyedView(APIView):
    throttle_classes = [KeyedThrottle]

    def get(self, request: Any) -> DRFResponse:
        value = request.headers.get("X-Api-Key")
        assert API_KEY(fw_django.DjangoView(request._request)) == "hdr:x-api-key:" + value
        return DRFResponse({"key": value})


urlpatterns = [
    path("items", django_items),
    path("shaped", ShapedView.as_view()),
    path("keyed", KeyedView.as_view()),
]


def django_conf(clock: Any, **extra: Any) -> dict[str, Any]:
    return {"CLOCK": clock, **extra}


# ------------------------------------------------------------------ repeated key header


def test_asgi_repeated_key_header_is_one_key(clock: Any) -> None:
    """The issue's case: 2..5 copies of one API key each got a fresh quota
    (15 of 15 served on a 3/minute limit)."""
    fw = AsgiFloodwall("3/minute", clock=clock, key="header:X-Api-Key")
    c = TestClient(starlette_app(fw), client=(PEER, 1))
    codes = []
    for copies in range(1, 6):
        for _ in range(3):
            r = c.get("/items", headers=[("x-api-key", "A")] * copies)
            codes.append(r.status_code)
            if r.status_code == 200:
                assert r.text == "A"
    assert codes.count(200) == 3
    assert codes.count(429) == 12
    # A different first copy is a different key (that is what the app reads).
    assert c.get("/items", headers=[("x-api-key", "B"), ("x-api-key", "A")]).text == "B"


def test_flask_repeated_key_header_is_what_the_app_reads(clock: Any) -> None:
    fw = FlaskFloodwall(None, "3/minute", clock=clock, key="header:X-Api-Key")
    c = flask_app(fw).test_client()
    seen: dict[str, int] = {}
    for copies in range(1, 6):
        for _ in range(4):
            r = c.get(
                "/items",
                headers=[("X-Api-Key", "A")] * copies,
                environ_base={"REMOTE_ADDR": PEER},
            )
            if r.status_code == 200:
                seen[r.text] = seen.get(r.text, 0) + 1
    # Each value the application saw was charged as one key: 3 each at most.
    assert seen and all(n == 3 for n in seen.values()), seen


def test_django_and_drf_key_header_is_what_the_app_reads(clock: Any) -> None:
    conf = django_conf(clock, DEFAULT="3/minute", KEY="header:X-Api-Key")
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW], ROOT_URLCONF=__name__):
        c = Client(REMOTE_ADDR=PEER)
        codes = [c.get("/items", HTTP_X_API_KEY="A").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    with override_settings(FLOODWALL={"CLOCK": clock}, ROOT_URLCONF=__name__):
        api = APIClient(REMOTE_ADDR=PEER)
        codes = [api.get("/keyed", HTTP_X_API_KEY="A").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


# ------------------------------------------------------------------ HEAD


def test_asgi_head_is_charged_as_get(clock: Any) -> None:
    fw = AsgiFloodwall(clock=clock, routes={"GET /items": "2/minute"})
    c = TestClient(starlette_app(fw), client=(PEER, 1))
    assert [c.get("/items").status_code for _ in range(2)] == [200, 200]
    assert [c.head("/items").status_code for _ in range(3)] == [429, 429, 429]
    # POST is not GET: not limited by the GET route.
    assert c.post("/items").status_code == 200


def test_asgi_head_uses_up_the_get_quota(clock: Any) -> None:
    fw = AsgiFloodwall(clock=clock, routes={"GET /items": "2/minute"})
    c = TestClient(starlette_app(fw), client=(PEER, 1))
    assert [c.head("/items").status_code for _ in range(2)] == [200, 200]
    assert c.get("/items").status_code == 429


def test_flask_head_is_charged_as_get(clock: Any) -> None:
    fw = FlaskFloodwall(None, clock=clock, routes={"GET /items": "2/minute"})
    c = flask_app(fw).test_client()
    env = {"REMOTE_ADDR": PEER}
    assert [c.get("/items", environ_base=env).status_code for _ in range(2)] == [200, 200]
    assert [c.head("/items", environ_base=env).status_code for _ in range(3)] == [429] * 3
    assert c.post("/items", environ_base=env).status_code == 200


def test_django_head_is_charged_as_get(clock: Any) -> None:
    conf = django_conf(clock, ROUTES={"GET /items": "2/minute"})
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW], ROOT_URLCONF=__name__):
        c = Client(REMOTE_ADDR=PEER)
        assert [c.get("/items").status_code for _ in range(2)] == [200, 200]
        assert [c.head("/items").status_code for _ in range(3)] == [429] * 3
        assert c.post("/items").status_code == 200


def test_head_exempt_with_get_and_path_key_shared() -> None:
    fw = AsgiFloodwall("1/minute", exempt=["GET /items"])
    assert fw.is_exempt("HEAD", "/items")
    assert not fw.is_exempt("POST", "/items")

    class V:
        path = "/items"
        method = "HEAD"

    assert by_path(method=True)(V()) == "path:GET /items"  # type: ignore[arg-type]


# ------------------------------------------------------------------ shaping bounds


def test_shaping_default_bound_polices_slow_rates(clock: Any) -> None:
    """The issue's case: at 60/hour a shaped request could sleep a whole
    period. With the default max_delay (1 s) nothing waits longer than 1 s;
    a request that would is denied with an honest Retry-After."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    fw = AsgiFloodwall("60/hour", clock=clock, algorithm="leaky_bucket_shaping", sleep=fake_sleep)
    c = TestClient(starlette_app(fw), client=(PEER, 1))
    codes = [c.get("/items").status_code for _ in range(61)]
    assert codes.count(200) == 1 and codes.count(429) == 60
    assert all(s <= 1.0 for s in slept)
    r = c.get("/items")
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    clock.advance(60.0)
    assert c.get("/items").status_code == 200  # the Retry-After was honest


def test_shaping_max_delay_caps_every_wait(clock: Any) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    fw = AsgiFloodwall(
        "1/second burst 10",
        clock=clock,
        algorithm="leaky_bucket_shaping",
        sleep=fake_sleep,
        max_delay=2.5,
    )
    c = TestClient(starlette_app(fw), client=(PEER, 1))
    codes = [c.get("/items").status_code for _ in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429]
    assert slept == [1.0, 2.0]
    # The advertised capacity is the bounded queue, not the configured 10.
    r = c.get("/items")
    assert r.headers["x-ratelimit-limit"] == "3"
    wait = int(r.headers["retry-after"])
    clock.advance(float(wait))
    assert c.get("/items").status_code == 200
    assert max(slept) <= 2.5


def test_shaping_max_delay_on_flask_django_drf(clock: Any, monkeypatch: Any) -> None:
    slept: list[float] = []
    fw = FlaskFloodwall(
        None,
        "1/second burst 10",
        clock=clock,
        algorithm="leaky_bucket_shaping",
        sleep=slept.append,
    )
    c = flask_app(fw).test_client()
    env = {"REMOTE_ADDR": PEER}
    codes = [c.get("/items", environ_base=env).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429] and slept == [1.0]

    # Django and DRF sleep with time.sleep: record instead.
    dj_slept: list[float] = []
    fake_time = types.SimpleNamespace(sleep=dj_slept.append)
    monkeypatch.setattr(fw_django, "time", fake_time)
    monkeypatch.setattr(fw_drf, "time", fake_time)
    conf = django_conf(clock, DEFAULT="1/second burst 10", ALGORITHM="leaky_bucket_shaping")
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW], ROOT_URLCONF=__name__):
        dc = Client(REMOTE_ADDR=PEER)
        assert [dc.get("/items").status_code for _ in range(4)] == [200, 200, 429, 429]
    assert dj_slept == [1.0]
    dj_slept.clear()
    with override_settings(FLOODWALL={"CLOCK": clock}, ROOT_URLCONF=__name__):
        api = APIClient(REMOTE_ADDR="198.51.100.1")
        codes = [api.get("/shaped").status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    assert dj_slept == [1.0]


def test_shaping_options_are_validated() -> None:
    for bad in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ConfigError, match="max_delay"):
            AsgiFloodwall("1/second", max_delay=bad)
        with pytest.raises(ConfigError, match="max_waiting"):
            AsgiFloodwall("1/second", max_waiting=bad)


N_KEYS = 12


def test_asgi_worker_waiting_is_bounded(clock: Any) -> None:
    """Many keys each queue a 1 s wait at once: the worker holds at most
    max_waiting seconds of them; the rest are denied with an honest wait."""
    release = asyncio.Event()
    observed: list[float] = []
    fw: AsgiFloodwall

    async def held_sleep(seconds: float) -> None:
        observed.append(fw.waiting)
        await release.wait()

    fw = AsgiFloodwall(
        "1/second burst 5",
        clock=clock,
        key="header:X-Api-Key",
        algorithm="leaky_bucket_shaping",
        sleep=held_sleep,
        max_waiting=3.0,
    )
    app = starlette_app(fw)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=(PEER, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            first = [ac.get("/items", headers={"x-api-key": f"k{i}"}) for i in range(N_KEYS)]
            await asyncio.gather(*first)  # no waiting: each key's first request
            second = [
                asyncio.ensure_future(ac.get("/items", headers={"x-api-key": f"k{i}"}))
                for i in range(N_KEYS)
            ]
            for _ in range(200):
                await asyncio.sleep(0.005)
                if sum(f.done() for f in second) == N_KEYS - 3:
                    break
            assert fw.waiting <= 3.0
            release.set()
            return list(await asyncio.gather(*second))

    responses = asyncio.run(run())
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 3 and codes.count(429) == N_KEYS - 3
    assert observed and max(observed) <= 3.0
    assert fw.waiting == 0.0  # every reservation was given back
    for r in responses:
        if r.status_code == 429:
            # The request took its place in the queue (1 s ahead + its own 1 s).
            assert r.headers["retry-after"] == "2"


def test_flask_worker_waiting_is_bounded(clock: Any) -> None:
    release = threading.Event()
    observed: list[float] = []
    lock = threading.Lock()
    fw: FlaskFloodwall

    def held_sleep(seconds: float) -> None:
        with lock:
            observed.append(fw.waiting)
        release.wait(10)

    fw = FlaskFloodwall(
        None,
        "1/second burst 5",
        clock=clock,
        key="header:X-Api-Key",
        algorithm="leaky_bucket_shaping",
        sleep=held_sleep,
        max_waiting=2.0,
    )
    app = flask_app(fw)
    env = {"REMOTE_ADDR": PEER}
    for i in range(N_KEYS):
        assert app.test_client().get(
            "/items", headers={"X-Api-Key": f"k{i}"}, environ_base=env
        ).status_code == 200
    codes: list[int] = []

    def one(i: int) -> None:
        r = app.test_client().get("/items", headers={"X-Api-Key": f"k{i}"}, environ_base=env)
        with lock:
            codes.append(r.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(N_KEYS)]
    for t in threads:
        t.start()
    for _ in range(400):
        with lock:
            if len(codes) == N_KEYS - 2:
                break
        threading.Event().wait(0.005)
    assert fw.waiting <= 2.0
    release.set()
    for t in threads:
        t.join(10)
    assert codes.count(200) == 2 and codes.count(429) == N_KEYS - 2
    assert observed and max(observed) <= 2.0
    assert fw.waiting == 0.0
