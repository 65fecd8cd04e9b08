# Tests of floodwall.integrations.drf: DRF views throttled by floodwall
# throttle classes (DEFAULT_THROTTLE_CLASSES and throttle_classes), driven by
# DRF's APIClient, on every store in STORE_URLS, with a fake clock.
from __future__ import annotations

from typing import Any

import django_setup
import http_sf
import pytest

django_setup.configure()

from django.test import override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.authentication import BaseAuthentication  # noqa: E402
from rest_framework.decorators import api_view, throttle_classes  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from floodwall.integrations.drf import (  # noqa: E402
    FloodwallAnonThrottle,
    FloodwallScopedThrottle,
    FloodwallThrottle,
    FloodwallUserThrottle,
    parse_drf_rate,
)

MW = "floodwall.integrations.django.FloodwallMiddleware"
URLCONF = __name__


class FakeUser:
    is_authenticated = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


class HeaderAuth(BaseAuthentication):
    def authenticate(self, request: Any) -> Any:
        name = request.META.get("HTTP_X_USER")
        return (FakeUser(name), None) if name else None


class DefaultView(APIView):
    def get(self, request: Any) -> Response:
        return Response({"ok": "default"})


class UploadThrottle(FloodwallThrottle):
    scope = "uploads"


class CostlyThrottle(FloodwallThrottle):
    rate = "4/minute"
    cost = 2
    scope = "costly"


class UploadView(APIView):
    throttle_classes = [UploadThrottle]

    def post(self, request: Any) -> Response:
        return Response({"ok": "upload"})


class ScopedView(APIView):
    throttle_classes = [FloodwallScopedThrottle]
    throttle_scope = "uploads"

    def get(self, request: Any) -> Response:
        return Response({"ok": "scoped"})


class UserView(APIView):
    authentication_classes = [HeaderAuth]
    throttle_classes = [FloodwallAnonThrottle, FloodwallUserThrottle]

    def get(self, request: Any) -> Response:
        return Response({"user": getattr(request.user, "pk", None)})


@api_view(["GET"])
@throttle_classes([CostlyThrottle])
def costly(request: Any) -> Response:
    return Response({"ok": "costly"})


class StrictThrottle(FloodwallThrottle):
    rate = "1/minute"
    scope = "strict"


class LooseThrottle(FloodwallThrottle):
    rate = "1000/minute"
    scope = "loose"


class TwoThrottlesView(APIView):
    throttle_classes = [StrictThrottle, LooseThrottle]

    def get(self, request: Any) -> Response:
        return Response({"ok": "two"})


urlpatterns = [
    path("default", DefaultView.as_view()),
    path("two", TwoThrottlesView.as_view()),
    path("upload", UploadView.as_view()),
    path("scoped", ScopedView.as_view()),
    path("user", UserView.as_view()),
    path("costly", costly),
]


def sf_list(value: str) -> Any:
    return http_sf.parse(value.encode(), tltype="list")


def api(peer: str = "203.0.113.7") -> APIClient:
    return APIClient(REMOTE_ADDR=peer)


def conf(store_url: str, clock: Any, **extra: Any) -> dict[str, Any]:
    return {"STORE": store_url, "CLOCK": clock, **extra}


@pytest.fixture(autouse=True)
def _urls() -> Any:
    with override_settings(ROOT_URLCONF=URLCONF):
        yield


def test_parse_drf_rate() -> None:
    for text, amount, period in (
        ("100/min", 100, 60),
        ("5/hour", 5, 3600),
        ("10/s", 10, 1),
        ("1000/day", 1000, 86400),
        ("3/minute", 3, 60),
        ("7/h", 7, 3600),
    ):
        rate = parse_drf_rate(text)
        assert (rate.amount, rate.period) == (amount, period)
    rates = parse_drf_rate("5/5minutes")
    assert (rates[0].amount, rates[0].period) == (5, 300)


def test_default_throttle_class_with_middleware_headers(store_url: str, clock: Any) -> None:
    with override_settings(FLOODWALL=conf(store_url, clock), MIDDLEWARE=[MW]):
        c = api()
        r = c.get("/default")
        assert r.status_code == 200
        assert sf_list(r["RateLimit"]) == [("floodwall", {"r": 1, "t": 30})]
        assert sf_list(r["RateLimit-Policy"]) == [("floodwall", {"q": 2, "w": 60})]
        assert c.get("/default").status_code == 200
        r = c.get("/default")
        assert r.status_code == 429
        assert r["Retry-After"] == "30"
        assert sf_list(r["RateLimit"]) == [("floodwall", {"r": 0, "t": 30})]
        clock.advance(30)
        assert c.get("/default").status_code == 200


def test_view_throttle_classes_rate_strings(store_url: str, clock: Any) -> None:
    with override_settings(FLOODWALL=conf(store_url, clock)):
        c = api()
        for _ in range(5):
            assert c.post("/upload").status_code == 200
        r = c.post("/upload")
        assert r.status_code == 429
        assert r["Retry-After"] == "720"  # 5/hour: one every 12 minutes


def test_scoped_throttle_and_cost(store_url: str, clock: Any) -> None:
    with override_settings(FLOODWALL=conf(store_url, clock)):
        c = api()
        assert [c.get("/scoped").status_code for _ in range(6)] == [200] * 5 + [429]
        assert [c.get("/costly").status_code for _ in range(3)] == [200, 200, 429]


def test_anon_and_user_throttles(store_url: str, clock: Any) -> None:
    with override_settings(FLOODWALL=conf(store_url, clock)):
        c = api()
        assert c.get("/user").status_code == 200
        assert c.get("/user").status_code == 429  # anon: 1/min by IP
        alice = {"HTTP_X_USER": "alice"}
        assert [c.get("/user", **alice).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert c.get("/user", HTTP_X_USER="bob").status_code == 200


def test_spoofed_forwarded_for_ignored(store_url: str, clock: Any) -> None:
    with override_settings(FLOODWALL=conf(store_url, clock)):
        c = api()
        codes = [
            c.get("/default", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(3)
        ]
        assert codes == [200, 200, 429]


def test_jitter_never_shortens_wait(store_url: str, clock: Any) -> None:
    with override_settings(FLOODWALL=conf(store_url, clock, JITTER_MS=3000)):
        c = api()
        c.get("/default")
        c.get("/default")
        r = c.get("/default")
        assert r.status_code == 429
        assert 30 <= int(r["Retry-After"]) <= 33


def test_middleware_default_does_not_also_charge_a_throttled_view(
    store_url: str, clock: Any
) -> None:
    """Issue 11: with the middleware's DEFAULT and a DRF throttle, the view
    was charged both (denied after 1 by the default, headers of the throttle)."""
    with override_settings(FLOODWALL=conf(store_url, clock, DEFAULT="1/minute"), MIDDLEWARE=[MW]):
        c = api()
        codes = [c.get("/default").status_code for _ in range(3)]
        assert codes == [200, 200, 429]  # the throttle's 2/min, charged once
        r = c.get("/default")
        assert sf_list(r["RateLimit-Policy"]) == [("floodwall", {"q": 2, "w": 60})]
        assert r["X-RateLimit-Limit"] == "2"


def test_several_throttles_429_shows_the_denying_limit(store_url: str, clock: Any) -> None:
    """Issue 11: the 429 carried the allowing throttle's headers
    (X-RateLimit-Remaining: 999 on a denial)."""
    with override_settings(FLOODWALL=conf(store_url, clock), MIDDLEWARE=[MW]):
        c = api()
        assert c.get("/two").status_code == 200
        r = c.get("/two")
        assert r.status_code == 429
        assert r["X-RateLimit-Limit"] == "1"
        assert r["X-RateLimit-Remaining"] == "0"
        assert sf_list(r["RateLimit"])[0][0] == "strict"


def test_drf_rate_with_an_unknown_period_is_refused() -> None:
    """Issue 11: DRF reads only the first letter, so "100/month" was per minute."""
    from floodwall.errors import RateParseError

    for text in ("100/month", "5/week", "3/mo", "10/y"):
        with pytest.raises(RateParseError, match="unknown unit"):
            parse_drf_rate(text)
    assert parse_drf_rate("100/minutes").period == 60
    assert parse_drf_rate("100/30days")[0].period == 30 * 86400
