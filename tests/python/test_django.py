# Tests of floodwall.integrations.django: a real Django project (settings,
# URLconf, middleware) driven by Django's Client and AsyncClient, on every
# store in STORE_URLS, with a fake clock.
from __future__ import annotations

import asyncio
from typing import Any

import django_setup
import http_sf
import pytest

django_setup.configure()

from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils.decorators import method_decorator  # noqa: E402
from django.views import View  # noqa: E402

from floodwall.errors import ConfigError  # noqa: E402
from floodwall.headers import PROBLEM_TYPE  # noqa: E402
from floodwall.integrations.django import exempt, get_guard, limit  # noqa: E402

MW = "floodwall.integrations.django.FloodwallMiddleware"
USER_MW = f"{__name__}.fake_user_middleware"
PEER = "203.0.113.7"


def sf_list(value: str) -> Any:
    return http_sf.parse(value.encode(), tltype="list")


class FakeUser:
    is_authenticated = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


def fake_user_middleware(get_response: Any) -> Any:
    """Sets request.user / request.auser from X-User (no database needed)."""
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction

    def attach(request: HttpRequest) -> None:
        name = request.META.get("HTTP_X_USER")
        user = FakeUser(name) if name else None
        request.user = user  # type: ignore[attr-defined]

        async def auser() -> Any:
            return user

        request.auser = auser  # type: ignore[attr-defined]

    if iscoroutinefunction(get_response):

        async def amw(request: HttpRequest) -> Any:
            attach(request)
            return await get_response(request)

        markcoroutinefunction(amw)
        return amw

    def mw(request: HttpRequest) -> Any:
        attach(request)
        return get_response(request)

    return mw


fake_user_middleware.sync_capable = True  # type: ignore[attr-defined]
fake_user_middleware.async_capable = True  # type: ignore[attr-defined]


def on_limited(request: Any, decision: Any) -> HttpResponse:
    return JsonResponse({"custom": True, "remaining": decision.remaining}, status=429)


# ------------------------------------------------------------------ views


def items(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": "items"})


async def async_items(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": "async"})


def health(request: HttpRequest, name: str = "") -> HttpResponse:
    return HttpResponse("ok")


@exempt
def free(request: HttpRequest) -> HttpResponse:
    return HttpResponse("free")


@limit("4/minute", cost=2, name="reports")
def report(request: HttpRequest) -> HttpResponse:
    return HttpResponse("report")


@limit("1/minute")
async def async_limited(request: HttpRequest) -> HttpResponse:
    return HttpResponse("async-limited")


@limit("1/minute", key="user")
async def async_user(request: HttpRequest) -> HttpResponse:
    return HttpResponse("async-user")


@limit("1/minute")
class ClassView(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("class")


@limit("1/minute")
class AsyncClassView(View):
    async def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("async-class")


class MethodView(View):
    @method_decorator(limit("1/minute", name="method"))
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("method")


urlpatterns = [
    path("items", items),
    path("async", async_items),
    path("health", health),
    path("static/<path:name>", health),
    path("free", free),
    path("report", report),
    path("async-limited", async_limited),
    path("async-user", async_user),
    path("class", ClassView.as_view()),
    path("async-class", AsyncClassView.as_view()),
    path("method", MethodView.as_view()),
    path("login", items),
]


@pytest.fixture(autouse=True)
def _urls() -> Any:
    # Settings are configured once per process (maybe by test_drf): route
    # this module's URLs explicitly.
    with override_settings(ROOT_URLCONF=__name__):
        yield


def floodwall_settings(store_url: str, clock: Any, **extra: Any) -> dict[str, Any]:
    return {"STORE": store_url, "CLOCK": clock, **extra}


def client(**kw: Any) -> Client:
    return Client(REMOTE_ADDR=kw.pop("peer", PEER), **kw)


def aclient(**kw: Any) -> AsyncClient:
    return AsyncClient(REMOTE_ADDR=kw.pop("peer", PEER), **kw)


# ------------------------------------------------------------------ tests


def test_middleware_allowed_then_limited_exact_headers(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(store_url, clock, DEFAULT="3/minute")
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW]):
        c = client()
        for remaining, t in [(2, 20), (1, 40), (0, 60)]:
            r = c.get("/items")
            assert r.status_code == 200
            assert sf_list(r["RateLimit-Policy"]) == [("3-per-60s", {"q": 3, "w": 60})]
            assert sf_list(r["RateLimit"]) == [("3-per-60s", {"r": remaining, "t": t})]
            assert r["X-RateLimit-Remaining"] == str(remaining)
        r = c.get("/items")
        assert r.status_code == 429
        assert r["Retry-After"] == "20"
        assert r["Content-Type"] == "application/problem+json"
        body = r.json()
        assert body["type"] == PROBLEM_TYPE and body["violated-policies"] == ["3-per-60s"]
        clock.advance(20)
        assert c.get("/items").status_code == 200


def test_middleware_async(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(store_url, clock, DEFAULT="2/minute")

    async def run() -> list[Any]:
        c = aclient()
        return [await c.get("/async") for _ in range(3)]

    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW]):
        r1, r2, r3 = asyncio.run(run())
    assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 429)
    assert sf_list(r2["RateLimit"]) == [("2-per-60s", {"r": 0, "t": 60})]
    assert r3["Retry-After"] == "30"


def test_exempt_paths_and_views(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(store_url, clock, DEFAULT="1/minute", EXEMPT=["/health", "/static/*"])
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW]):
        c = client()
        for _ in range(3):
            assert c.get("/health").status_code == 200
            assert c.get("/static/a/b.css").status_code == 200
            assert c.get("/free").status_code == 200
        assert "RateLimit" not in c.get("/health")
        assert c.get("/items").status_code == 200
        assert c.get("/items").status_code == 429


def test_routes_from_settings(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(
        store_url, clock, DEFAULT="100/minute", ROUTES={"POST /login": "1/minute"}
    )
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW]):
        c = client()
        assert c.post("/login").status_code == 200
        assert c.post("/login").status_code == 429
        assert c.get("/login").status_code == 200
        assert c.get("/items")["X-RateLimit-Remaining"] == "98"


def test_decorator_function_view_cost_skips_default(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(store_url, clock, DEFAULT="100/minute")
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW]):
        c = client()
        r = c.get("/report")
        assert r.status_code == 200
        assert sf_list(r["RateLimit"]) == [("reports", {"r": 2, "t": 30})]
        assert c.get("/report").status_code == 200
        r = c.get("/report")
        assert r.status_code == 429 and r["Retry-After"] == "30"
        assert r.json()["violated-policies"] == ["reports"]
        assert c.get("/items")["X-RateLimit-Remaining"] == "99"


def test_decorator_without_middleware_sync_async_class(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(store_url, clock)
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[]):
        c = client()
        for url, text in (("/class", b"class"), ("/method", b"method")):
            r = c.get(url)
            assert r.status_code == 200 and r.content == text
            assert r["X-RateLimit-Remaining"] == "0"
            r = c.get(url)
            assert r.status_code == 429 and r["Retry-After"] == "60"

        async def run() -> list[Any]:
            ac = aclient()
            out = []
            for url in ("/async-limited", "/async-class"):
                out.append(await ac.get(url))
                out.append(await ac.get(url))
            return out

        r1, r2, r3, r4 = asyncio.run(run())
        assert (r1.status_code, r2.status_code) == (200, 429)
        assert r1.content == b"async-limited"
        assert (r3.status_code, r4.status_code) == (200, 429)
        assert r3.content == b"async-class"
        assert r4["Content-Type"] == "application/problem+json"


def test_spoofed_and_trusted_proxy_headers(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(store_url, clock, DEFAULT="1/minute", TRUSTED_PROXIES=["10.0.0.0/8"])
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW]):
        c = client()
        assert c.get("/items", HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 200
        assert c.get("/items", HTTP_X_FORWARDED_FOR="2.2.2.2").status_code == 429
        p = client(peer="10.9.9.9")
        assert p.get("/items", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.1").status_code == 200
        assert p.get("/items", HTTP_X_FORWARDED_FOR="7.7.7.7, 192.0.2.1").status_code == 429
        assert p.get("/items", HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 200


def test_user_key_sync_and_async(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(store_url, clock, DEFAULT="1/minute", KEY="user")
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[USER_MW, MW]):
        c = client()
        assert c.get("/items", HTTP_X_USER="alice").status_code == 200
        assert c.get("/items", HTTP_X_USER="alice").status_code == 429
        assert c.get("/items", HTTP_X_USER="bob").status_code == 200

        async def run() -> list[int]:
            ac = aclient()
            codes = []
            for user in ("carol", "carol", "dave"):
                codes.append((await ac.get("/async-user", headers={"X-User": user})).status_code)
            return codes

        assert asyncio.run(run()) == [200, 429, 200]


def test_callable_key_dotted_path_and_on_limited(store_url: str, clock: Any) -> None:
    conf = floodwall_settings(
        store_url,
        clock,
        DEFAULT="1/minute",
        KEY=f"{__name__}.tenant_key",
        ON_LIMITED=f"{__name__}.on_limited",
        HEADERS="ietf",
    )
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW]):
        c = client()
        assert c.get("/items?tenant=a").status_code == 200
        r = c.get("/items?tenant=a")
        assert r.status_code == 429 and r.json() == {"custom": True, "remaining": 0}
        assert r["Retry-After"] == "60" and "X-RateLimit-Limit" not in r
        assert sf_list(r["RateLimit"]) == [("1-per-60s", {"r": 0, "t": 60})]
        assert c.get("/items?tenant=b").status_code == 200


def tenant_key(request: HttpRequest) -> str | None:
    return request.GET.get("tenant")


def test_bad_settings_raise_config_error() -> None:
    with override_settings(FLOODWALL={"DEFALT": "1/minute"}):
        with pytest.raises(ConfigError, match="DEFALT"):
            get_guard()
