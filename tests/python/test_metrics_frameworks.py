"""Metrics and hooks through the frameworks: Django's settings (METRICS,
ON_BLOCK as a dotted path) and its /metrics view, Flask's [metrics]
enabled configuration and its route, hooks of a route with several limits."""

from __future__ import annotations

from typing import Any

import django_setup

django_setup.configure()

import flask  # noqa: E402
import pytest  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from floodwall.integrations.flask import Floodwall as FlaskFloodwall  # noqa: E402
from floodwall.observe.exporters import add_flask_route, django_view  # noqa: E402

BLOCKED: list[dict[str, Any]] = []


def record_block(decision: Any, info: Any) -> None:
    BLOCKED.append(dict(info))


def items(request: Any) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("items", items), path("metrics", django_view)]


def decisions(text: str, limit: str, store: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if (s.name == "floodwall_decisions_total" and s.labels["limit"] == limit
                    and s.labels["store"] == store):
                out[s.labels["outcome"]] = s.value
    return out


@pytest.fixture(autouse=True)
def _urls() -> Any:
    with override_settings(ROOT_URLCONF=__name__):
        yield


def test_django_settings_metrics_hooks_and_view() -> None:
    conf = {"STORE": "memory://", "DEFAULT": "2/minute", "METRICS": True,
            "ON_BLOCK": f"{__name__}.record_block", "EXEMPT": ["/metrics"],
            "NAMESPACE": "djm"}
    BLOCKED.clear()
    mw = ["floodwall.integrations.django.FloodwallMiddleware"]
    with override_settings(FLOODWALL=conf, MIDDLEWARE=mw):
        c = Client(REMOTE_ADDR="198.51.100.7")
        before = decisions(c.get("/metrics").content.decode(), "default", "memory")
        codes = [c.get("/items").status_code for _ in range(3)]
        r = c.get("/metrics")
        assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
        after = decisions(r.content.decode(), "default", "memory")
    assert codes == [200, 200, 429]
    assert after["allowed"] - before.get("allowed", 0) == 2
    assert after["denied"] - before.get("denied", 0) == 1
    assert [b["limit"] for b in BLOCKED] == ["default"]
    assert "198.51.100.7" not in str(BLOCKED)


@pytest.fixture
def fresh_config() -> Any:
    """The Flask setting below becomes the active configuration: put the
    previous one back afterwards (other tests read it)."""
    from floodwall.config import registry

    saved_active = dict(registry._ACTIVE)
    saved_named = dict(registry._FROM_CONFIG)
    registry._ACTIVE.clear()
    registry._FROM_CONFIG.clear()
    yield
    registry._ACTIVE.clear()
    registry._ACTIVE.update(saved_active)
    registry._FROM_CONFIG.clear()
    registry._FROM_CONFIG.update(saved_named)


def test_flask_metrics_enabled_by_configuration(fresh_config: Any) -> None:
    app = flask.Flask(__name__)
    app.config["FLOODWALL"] = {"metrics": {"enabled": True},
                               "defaults": {"rate": "1/minute"},
                               "store": {"namespace": "cfgm"},
                               "http": {"exempt": ["/metrics"]}}
    FlaskFloodwall(app)
    add_flask_route(app)

    @app.get("/")
    def home() -> str:
        return "ok"

    c = app.test_client()
    before = decisions(c.get("/metrics").get_data(as_text=True), "default", "memory")
    assert [c.get("/").status_code for _ in range(3)] == [200, 429, 429]
    after = decisions(c.get("/metrics").get_data(as_text=True), "default", "memory")
    assert after["allowed"] - before.get("allowed", 0) == 1
    assert after["denied"] - before.get("denied", 0) == 2


def test_hooks_of_a_route_with_several_limits() -> None:
    seen: list[tuple[str, bool]] = []
    fw = FlaskFloodwall(on_allow=lambda d, i: seen.append((i["limit"], True)),
                        on_block=lambda d, i: seen.append((i["limit"], False)))
    app = flask.Flask(__name__)

    @app.route("/s")
    @fw.limit("1/second", name="sec")
    @fw.limit("5/minute", name="min")
    def s() -> str:
        return "s"

    fw.init_app(app)
    c = app.test_client()
    assert [c.get("/s").status_code for _ in range(2)] == [200, 429]
    assert sorted(seen) == sorted([("sec", True), ("min", True), ("sec", False),
                                   ("min", False)])
