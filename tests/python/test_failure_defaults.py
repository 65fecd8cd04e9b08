# The failure defaults of the web entry points (issue 11): a full table or a
# store outage is not an HTTP 500 by default in a web app. Every integration
# (ASGI middleware, Flask, Django, DRF, @rate_limit) admits (fail="open"),
# logs one rate-limited warning on the "floodwall" logger and counts the
# fallback; fail="raise" gives the StoreError of before, one word away.
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import django_setup
import flask
import pytest
from conftest import FakeClock
from fastapi import FastAPI
from redis_servers import free_port
from starlette.testclient import TestClient

django_setup.configure()

from django.http import HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from floodwall import Limiter, StoreError, rate_limit  # noqa: E402
from floodwall.integrations import asgi  # noqa: E402
from floodwall.integrations import flask as fw_flask  # noqa: E402
from floodwall.integrations.django import get_guard  # noqa: E402
from floodwall.integrations.drf import FloodwallThrottle  # noqa: E402
from floodwall.stores import failure  # noqa: E402

#: distinct clients sent at a broken store: more than a one-key table holds
REQUESTS = 150
KEY = "header:X-Client"
MW = "floodwall.integrations.django.FloodwallMiddleware"


def django_view(request: Any) -> HttpResponse:
    return HttpResponse("ok")


class Throttled(FloodwallThrottle):
    rate = "100/minute"
    scope = "failure-defaults"
    key = KEY


class DRFView(APIView):
    throttle_classes = [Throttled]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


urlpatterns = [path("plain", django_view), path("drf", DRFView.as_view())]


@pytest.fixture(params=["full-table", "redis-outage"])
def broken(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Guard options of a store that cannot decide: a memory table of one key
    (with a frozen clock, so no key ever expires), or Redis on a closed port."""
    if request.param == "full-table":
        return {"store": "memory://", "store_options": {"max_keys": 1}, "clock": FakeClock()}
    return {"store": f"redis://127.0.0.1:{free_port()}?timeout=0.05"}


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """The fallback warnings logged on the 'floodwall' logger."""
    with caplog.at_level(logging.WARNING, logger="floodwall"):
        yield lambda: [
            r.getMessage()
            for r in caplog.records
            if r.name == "floodwall.store" and "could not decide" in r.getMessage()
        ]


def flat(options: dict[str, Any]) -> dict[str, Any]:
    """Guard options as @rate_limit takes them (store options inline)."""
    out = {k: v for k, v in options.items() if k != "store_options"}
    out.update(options.get("store_options", {}))
    return out


def assert_open(
    statuses: list[int], limiter: Limiter | None, warnings: Callable[[], list[str]]
) -> None:
    assert statuses == [200] * REQUESTS
    logged = warnings()
    # logged, once: the outage does not flood the log
    assert len(logged) == 1, logged
    assert "fail='open' admitted" in logged[0]
    if limiter is not None:
        stats = limiter.stats()
        assert stats["fallbacks"] >= 1 and stats["errors"] >= 1, stats


# ------------------------------------------------------------------ ASGI


def asgi_app(options: dict[str, Any]) -> tuple[TestClient, asgi.Floodwall]:
    app = FastAPI()
    fw = asgi.Floodwall("100/minute", key=KEY, **options)
    fw.init_app(app)

    @app.get("/items")
    async def items() -> dict[str, bool]:
        return {"ok": True}

    return TestClient(app), fw


def test_asgi_middleware_fails_open_by_default(broken: dict[str, Any], warnings: Any) -> None:
    client, fw = asgi_app(broken)
    statuses = [
        client.get("/items", headers={"X-Client": f"c{i}"}).status_code for i in range(REQUESTS)
    ]
    assert fw.default is not None
    assert_open(statuses, fw.default.limits[0].limiter, warnings)


def test_asgi_middleware_fail_raise(broken: dict[str, Any]) -> None:
    client, _ = asgi_app({**broken, "fail": "raise"})
    with pytest.raises(StoreError):
        for i in range(REQUESTS):
            client.get("/items", headers={"X-Client": f"c{i}"})


# ------------------------------------------------------------------ Flask


def flask_app(options: dict[str, Any]) -> tuple[Any, fw_flask.Floodwall]:
    app = flask.Flask(__name__)
    app.testing = True  # exceptions reach the test client
    fw = fw_flask.Floodwall(app, "100/minute", key=KEY, **options)

    @app.route("/items")
    def items() -> str:
        return "ok"

    return app.test_client(), fw


def test_flask_fails_open_by_default(broken: dict[str, Any], warnings: Any) -> None:
    client, fw = flask_app(broken)
    statuses = [
        client.get("/items", headers={"X-Client": f"c{i}"}).status_code for i in range(REQUESTS)
    ]
    assert fw.default is not None
    assert_open(statuses, fw.default.limits[0].limiter, warnings)


def test_flask_fail_raise(broken: dict[str, Any]) -> None:
    client, _ = flask_app({**broken, "fail": "raise"})
    with pytest.raises(StoreError):
        for i in range(REQUESTS):
            client.get("/items", headers={"X-Client": f"c{i}"})


# ------------------------------------------------------------------ Django, DRF


def django_settings(options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    conf = {k.upper(): v for k, v in options.items()}
    return {"KEY": KEY, **conf, **extra}


def test_django_middleware_fails_open_by_default(broken: dict[str, Any], warnings: Any) -> None:
    conf = django_settings(broken, DEFAULT="100/minute")
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW], ROOT_URLCONF=__name__):
        client = Client()
        statuses = [
            client.get("/plain", HTTP_X_CLIENT=f"c{i}").status_code for i in range(REQUESTS)
        ]
        default = get_guard().default
        assert default is not None
        assert_open(statuses, default.limits[0].limiter, warnings)


def test_django_middleware_fail_raise(broken: dict[str, Any]) -> None:
    conf = django_settings(broken, DEFAULT="100/minute", FAIL="raise")
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW], ROOT_URLCONF=__name__):
        client = Client()
        with pytest.raises(StoreError):
            for i in range(REQUESTS):
                client.get("/plain", HTTP_X_CLIENT=f"c{i}")


def test_drf_throttle_fails_open_by_default(broken: dict[str, Any], warnings: Any) -> None:
    with override_settings(FLOODWALL=django_settings(broken), ROOT_URLCONF=__name__):
        client = APIClient()
        statuses = [
            client.get("/drf", HTTP_X_CLIENT=f"c{i}").status_code for i in range(REQUESTS)
        ]
        latest = max((k for k in Throttled._sets if k[0] is Throttled), key=lambda k: k[3])
        limits = Throttled._sets[latest]
        assert_open(statuses, limits.limits[0].limiter, warnings)


def test_drf_throttle_fail_raise(broken: dict[str, Any]) -> None:
    conf = django_settings(broken, FAIL="raise")
    with override_settings(FLOODWALL=conf, ROOT_URLCONF=__name__):
        client = APIClient()
        with pytest.raises(StoreError):
            for i in range(REQUESTS):
                client.get("/drf", HTTP_X_CLIENT=f"c{i}")


# ------------------------------------------------------------------ @rate_limit


def decorated_fastapi(options: dict[str, Any]) -> TestClient:
    app = FastAPI()

    @app.get("/items")
    @rate_limit("100/minute", key=KEY, **flat(options))
    async def items() -> dict[str, bool]:
        return {"ok": True}

    return TestClient(app)


def decorated_flask(options: dict[str, Any]) -> Any:
    app = flask.Flask(__name__)
    app.testing = True

    @app.route("/items")
    @rate_limit("100/minute", key=KEY, **flat(options))
    def items() -> str:
        return "ok"

    return app.test_client()


@pytest.mark.parametrize("make", [decorated_fastapi, decorated_flask])
def test_rate_limit_fails_open_by_default(
    make: Callable[[dict[str, Any]], Any], broken: dict[str, Any], warnings: Any
) -> None:
    client = make(broken)
    statuses = [
        client.get("/items", headers={"X-Client": f"c{i}"}).status_code for i in range(REQUESTS)
    ]
    assert_open(statuses, None, warnings)


@pytest.mark.parametrize("make", [decorated_fastapi, decorated_flask])
def test_rate_limit_fail_raise(
    make: Callable[[dict[str, Any]], Any], broken: dict[str, Any]
) -> None:
    client = make({**broken, "fail": "raise"})
    with pytest.raises(StoreError):
        for i in range(REQUESTS):
            client.get("/items", headers={"X-Client": f"c{i}"})


# ------------------------------------------------------------------ the library


def test_limiter_used_directly_still_raises_by_default(broken: dict[str, Any]) -> None:
    """A library call does not hide a store error: Limiter keeps fail='raise'."""
    lim = Limiter("100/minute", store=broken["store"], clock=broken.get("clock"),
                  **broken.get("store_options", {}))
    with pytest.raises(StoreError):
        for i in range(REQUESTS):
            lim.check(f"c{i}")


def test_fallback_warnings_are_rate_limited_per_policy(
    monkeypatch: pytest.MonkeyPatch, warnings: Any
) -> None:
    """One warning per LOG_INTERVAL per limiter, with the count of fallbacks
    since the last one; another limiter warns on its own."""
    now = [1000.0]
    monkeypatch.setattr(failure.time, "monotonic", lambda: now[0])
    clock = FakeClock()
    a = Limiter("5/hour", max_keys=1, clock=clock, fail="open")
    b = Limiter("5/hour", max_keys=1, clock=clock, fail="closed")
    fallbacks = sum(a.check(f"k{i}").fallback for i in range(REQUESTS))
    assert fallbacks >= 1 and len(warnings()) == 1
    assert "more since the last warning" not in warnings()[0]
    now[0] += failure.LOG_INTERVAL - 1
    a.check("one-more")
    assert len(warnings()) == 1
    now[0] += 1
    a.check("and-another")
    assert len(warnings()) == 2
    assert f"({fallbacks} more since the last warning;" in warnings()[1]
    denied = [d for d in (b.check(f"k{i}") for i in range(REQUESTS)) if d.fallback]
    assert denied and not any(denied)
    assert len(warnings()) == 3 and "fail='closed' denied" in warnings()[2]
    assert b.stats()["fallbacks"] == len(denied)
