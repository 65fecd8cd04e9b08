# Tests of floodwall.integrations.flask: real Flask apps driven by Flask's
# test client, on every store in STORE_URLS, with a fake clock.
from __future__ import annotations

from typing import Any

import flask
import http_sf

from floodwall.headers import PROBLEM_TYPE
from floodwall.integrations.flask import Floodwall

PEER = {"REMOTE_ADDR": "203.0.113.7"}


def sf_list(value: str) -> Any:
    return http_sf.parse(value.encode(), tltype="list")


def make_app(fw: Floodwall) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/items")
    def items() -> Any:
        return {"ok": "items"}

    @app.route("/async")
    async def async_items() -> Any:
        return {"ok": "async"}

    @app.route("/health")
    def health() -> str:
        return "ok"

    @app.route("/static-files/<path:name>")
    def files(name: str) -> str:
        return name

    @app.route("/report", methods=["GET", "POST"])
    @fw.limit("4/minute", cost=2, name="reports")
    def report() -> str:
        return "report"

    @app.route("/free")
    @fw.exempt
    def free() -> str:
        return "free"

    api = flask.Blueprint("api", __name__, url_prefix="/api")

    @api.route("/a")
    def api_a() -> str:
        return "a"

    @api.route("/b")
    def api_b() -> str:
        return "b"

    fw.limit("2/minute", name="api")(api)
    app.register_blueprint(api)

    admin = flask.Blueprint("admin", __name__, url_prefix="/admin")

    @admin.route("/")
    def admin_index() -> str:
        return "admin"

    fw.exempt(admin)
    app.register_blueprint(admin)
    fw.init_app(app)
    return app


def client(app: flask.Flask, peer: dict[str, str] = PEER) -> Any:
    c = app.test_client()
    c.environ_base.update(peer)
    return c


def test_default_allowed_then_limited_exact_headers(store_url: str, clock: Any) -> None:
    fw = Floodwall(default="3/minute", store=store_url, clock=clock)
    c = client(make_app(fw))
    for remaining, t in [(2, 20), (1, 40), (0, 60)]:
        r = c.get("/items")
        assert r.status_code == 200
        assert sf_list(r.headers["RateLimit-Policy"]) == [("3-per-60s", {"q": 3, "w": 60})]
        assert sf_list(r.headers["RateLimit"]) == [("3-per-60s", {"r": remaining, "t": t})]
        assert r.headers["X-RateLimit-Remaining"] == str(remaining)
        assert r.headers["X-RateLimit-Reset"] == str(t)
    r = c.get("/async")  # async view, same default bucket
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "20"
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["type"] == PROBLEM_TYPE
    assert r.get_json()["violated-policies"] == ["3-per-60s"]
    assert len(r.headers.getlist("RateLimit")) == 1
    clock.advance(20)
    r = c.get("/async")
    assert r.status_code == 200 and r.get_json() == {"ok": "async"}


def test_view_limit_with_cost_replaces_default(store_url: str, clock: Any) -> None:
    fw = Floodwall(default="100/minute", store=store_url, clock=clock)
    c = client(make_app(fw))
    r = c.get("/report")
    assert r.status_code == 200
    assert sf_list(r.headers["RateLimit"]) == [("reports", {"r": 2, "t": 30})]
    assert c.post("/report").status_code == 200
    r = c.get("/report")
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    assert c.get("/items").headers["X-RateLimit-Remaining"] == "99"


def test_blueprint_limits_and_exemptions(store_url: str, clock: Any) -> None:
    fw = Floodwall(
        default="1/minute", store=store_url, clock=clock, exempt=["/health", "/static-files/*"]
    )
    c = client(make_app(fw))
    assert c.get("/api/a").status_code == 200
    assert c.get("/api/b").status_code == 200
    r = c.get("/api/a")
    assert r.status_code == 429 and r.get_json()["violated-policies"] == ["api"]
    for _ in range(3):
        assert c.get("/health").status_code == 200
        assert c.get("/static-files/x/y.css").status_code == 200
        assert c.get("/free").status_code == 200
        assert c.get("/admin/").status_code == 200
    assert "RateLimit" not in c.get("/health").headers
    assert c.get("/items").status_code == 200
    assert c.get("/items").status_code == 429


def test_key_functions_and_spoofing(store_url: str, clock: Any) -> None:
    fw = Floodwall(default="1/minute", store=store_url, clock=clock)
    c = client(make_app(fw))
    assert c.get("/items", headers={"X-Forwarded-For": "1.2.3.4"}).status_code == 200
    assert c.get("/items", headers={"X-Forwarded-For": "5.6.7.8"}).status_code == 429

    fw2 = Floodwall(
        default="1/minute", store=store_url, clock=clock, trusted_proxies=1, namespace="proxy"
    )
    c2 = client(make_app(fw2), {"REMOTE_ADDR": "10.0.0.1"})
    assert c2.get("/items", headers={"X-Forwarded-For": "6.6.6.6, 192.0.2.1"}).status_code == 200
    assert c2.get("/items", headers={"X-Forwarded-For": "7.7.7.7, 192.0.2.1"}).status_code == 429
    assert c2.get("/items", headers={"X-Forwarded-For": "192.0.2.2"}).status_code == 200

    fw3 = Floodwall(
        default="1/minute",
        store=store_url,
        clock=clock,
        key=lambda request: request.args.get("user"),
        namespace="cb",
    )
    c3 = client(make_app(fw3))
    assert c3.get("/items?user=a").status_code == 200
    assert c3.get("/items?user=a").status_code == 429
    assert c3.get("/items?user=b").status_code == 200


def test_user_key_from_g(store_url: str, clock: Any) -> None:
    fw = Floodwall(default="1/minute", store=store_url, clock=clock, key="user")
    app = make_app(fw)

    @app.before_request
    def load_user() -> None:
        name = flask.request.headers.get("X-User")
        if name:
            flask.g.user = name

    # The auth hook must run before floodwall's: move it first.
    funcs = app.before_request_funcs[None]
    funcs.insert(0, funcs.pop())
    c = client(app)
    assert c.get("/items", headers={"X-User": "alice"}).status_code == 200
    assert c.get("/items", headers={"X-User": "alice"}).status_code == 429
    assert c.get("/items", headers={"X-User": "bob"}).status_code == 200
    assert c.get("/items").status_code == 200  # anonymous: by IP
    assert c.get("/items").status_code == 429


def test_custom_handler_headers_off_and_current_decision(store_url: str, clock: Any) -> None:
    seen: list[Any] = []

    def handler(request: Any, decision: Any) -> Any:
        return {"slow": request.path}, 429

    fw = Floodwall(
        default="1/minute", store=store_url, clock=clock, on_limited=handler, headers="x-ratelimit"
    )
    app = make_app(fw)

    @app.route("/peek")
    def peek() -> str:
        seen.append(fw.current_decision())
        return "p"

    c = client(app)
    assert c.get("/peek").status_code == 200
    assert seen[0] is not None and seen[0].remaining == 0
    r = c.get("/items")
    assert r.status_code == 429 and r.get_json() == {"slow": "/items"}
    assert r.headers["Retry-After"] == "60"
    assert r.headers["X-RateLimit-Limit"] == "1"
    assert "RateLimit" not in r.headers


def test_shaping_sleeps(store_url: str, clock: Any) -> None:
    slept: list[float] = []
    fw = Floodwall(
        default="2/second",
        store=store_url,
        clock=clock,
        algorithm="leaky_bucket_shaping",
        sleep=slept.append,
    )
    c = client(make_app(fw))
    assert [c.get("/items").status_code for _ in range(3)] == [200, 200, 429]
    assert slept == [0.5]


def test_init_app_later_and_routes(store_url: str, clock: Any) -> None:
    fw = Floodwall(store=store_url, clock=clock, routes={"POST /items": "1/minute"})
    app = flask.Flask(__name__)

    @app.route("/items", methods=["GET", "POST"])
    def items() -> str:
        return "x"

    fw.init_app(app)
    c = client(app)
    assert c.post("/items").status_code == 200
    assert c.post("/items").status_code == 429
    assert c.get("/items").status_code == 200  # no default: GET unlimited
    assert "RateLimit" not in c.get("/items").headers


def test_stacked_limits_all_or_nothing(store_url: str, clock: Any) -> None:
    fw = Floodwall(store=store_url, clock=clock)
    app = flask.Flask(__name__)

    @app.route("/s")
    @fw.limit("2/second", name="sec")
    @fw.limit("3/minute", name="min")
    def s() -> str:
        return "s"

    fw.init_app(app)
    c = client(app)
    r = c.get("/s")
    assert sf_list(r.headers["RateLimit-Policy"]) == [
        ("sec", {"q": 2, "w": 1}),
        ("min", {"q": 3, "w": 60}),
    ]
    assert c.get("/s").status_code == 200
    r = c.get("/s")
    assert r.status_code == 429 and r.get_json()["violated-policies"] == ["sec"]
    assert r.headers["Retry-After"] == "1"
    clock.advance(1)
    assert c.get("/s").status_code == 200
    clock.advance(1)
    r = c.get("/s")
    assert r.status_code == 429 and r.get_json()["violated-policies"] == ["min"]
    assert sf_list(r.headers["RateLimit"])[0][0] == "min"
