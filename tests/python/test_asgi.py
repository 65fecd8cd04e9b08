# Tests of floodwall.integrations.asgi: real FastAPI/Starlette apps driven by
# Starlette's TestClient, on every store in STORE_URLS, with a fake clock.
from __future__ import annotations

import json
from typing import Any

import http_sf
import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from floodwall.headers import PROBLEM_TYPE
from floodwall.integrations.asgi import Floodwall, FloodwallMiddleware

PEER = ("203.0.113.7", 40000)


def sf_list(value: str) -> list[tuple[Any, dict[str, Any]]]:
    parsed = http_sf.parse(value.encode(), tltype="list")
    assert isinstance(parsed, list)
    return parsed  # type: ignore[return-value]


def client_for(app: Any, peer: tuple[str, int] = PEER) -> TestClient:
    return TestClient(app, client=peer)


def make_app(fw: Floodwall) -> FastAPI:
    app = FastAPI()
    fw.init_app(app)

    @app.get("/items")
    async def items() -> dict[str, str]:
        return {"ok": "items"}

    @app.get("/sync")
    def sync_items() -> dict[str, str]:
        return {"ok": "sync"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "health"}

    @app.get("/static/{name:path}")
    async def static(name: str) -> dict[str, str]:
        return {"ok": name}

    @app.post("/login")
    async def login() -> dict[str, str]:
        return {"ok": "login"}

    return app


def test_default_limit_allowed_then_limited_exact_headers(store_url: str, clock: Any) -> None:
    fw = Floodwall("3/minute", store=store_url, clock=clock)
    c = client_for(make_app(fw))
    expected = [(2, 20), (1, 40), (0, 60)]
    for remaining, t in expected:
        r = c.get("/items")
        assert r.status_code == 200
        assert r.headers["ratelimit-policy"] == '"3-per-60s";q=3;w=60'
        assert sf_list(r.headers["ratelimit-policy"]) == [("3-per-60s", {"q": 3, "w": 60})]
        assert sf_list(r.headers["ratelimit"]) == [("3-per-60s", {"r": remaining, "t": t})]
        assert r.headers["x-ratelimit-limit"] == "3"
        assert r.headers["x-ratelimit-remaining"] == str(remaining)
        assert r.headers["x-ratelimit-reset"] == str(t)
        assert "retry-after" not in r.headers
    r = c.get("/items")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "20"
    assert r.headers["content-type"] == "application/problem+json"
    assert sf_list(r.headers["ratelimit"]) == [("3-per-60s", {"r": 0, "t": 20})]
    body = r.json()
    assert body["type"] == PROBLEM_TYPE
    assert body["status"] == 429
    assert body["violated-policies"] == ["3-per-60s"]
    # The default limit is one bucket per client across routes.
    assert c.get("/sync").status_code == 429
    # Waiting exactly Retry-After is enough.
    clock.advance(20)
    r = c.get("/sync")
    assert r.status_code == 200
    assert r.json() == {"ok": "sync"}


def test_exempt_paths_with_wildcards(store_url: str, clock: Any) -> None:
    fw = Floodwall("1/minute", store=store_url, clock=clock, exempt=["/health", "/static/*"])
    c = client_for(make_app(fw))
    assert c.get("/items").status_code == 200
    assert c.get("/items").status_code == 429
    for _ in range(5):
        r = c.get("/health")
        assert r.status_code == 200
        assert "ratelimit" not in r.headers
        assert c.get("/static/css/site.css").status_code == 200


def test_path_route_limits_replace_default(store_url: str, clock: Any) -> None:
    fw = Floodwall(
        "100/minute",
        store=store_url,
        clock=clock,
        routes={"POST /login": "2/minute"},
    )
    c = client_for(make_app(fw))
    assert c.post("/login").status_code == 200
    r = c.post("/login")
    assert r.status_code == 200
    assert sf_list(r.headers["ratelimit"]) == [("2-per-60s", {"r": 0, "t": 60})]
    r = c.post("/login")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "30"
    # The default bucket is untouched by /login.
    r = c.get("/items")
    assert r.status_code == 200
    assert r.headers["x-ratelimit-remaining"] == "99"


def test_route_decorator_cost_and_names(store_url: str, clock: Any) -> None:
    fw = Floodwall("100/minute", store=store_url, clock=clock)
    app = FastAPI()
    fw.init_app(app)

    @app.get("/report")
    @fw.limit("4/minute", cost=2, name="reports")
    async def report(request: Request) -> dict[str, str]:
        return {"path": request.url.path}

    c = client_for(app)
    r = c.get("/report")
    assert r.status_code == 200 and r.json() == {"path": "/report"}
    assert sf_list(r.headers["ratelimit-policy"]) == [("reports", {"q": 4, "w": 60})]
    assert sf_list(r.headers["ratelimit"]) == [("reports", {"r": 2, "t": 30})]
    assert c.get("/report").status_code == 200
    r = c.get("/report")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "30"
    assert r.json()["violated-policies"] == ["reports"]
    # The decorated route does not consume the default limit.
    r = c.get("/nonexistent")
    assert r.status_code == 404
    assert r.headers["x-ratelimit-remaining"] == "99"


def test_route_decorator_sync_async_with_and_without_request(store_url: str, clock: Any) -> None:
    fw = Floodwall(store=store_url, clock=clock)
    app = FastAPI()
    fw.init_app(app)

    @app.get("/a")
    @fw.limit("1/minute")
    async def a() -> dict[str, str]:
        return {"v": "a"}

    @app.get("/s")
    @fw.limit("1/minute")
    def s(q: int = 0) -> dict[str, int]:
        return {"q": q}

    @app.get("/r")
    @fw.limit("1/minute")
    def r_(request: Request, response: Response) -> PlainTextResponse:
        return PlainTextResponse(request.url.path)

    c = client_for(app)
    for path, body in (("/a", {"v": "a"}), ("/s?q=5", {"q": 5})):
        r = c.get(path)
        assert r.status_code == 200 and r.json() == body
        assert r.headers["x-ratelimit-remaining"] == "0"
        r = c.get(path)
        assert r.status_code == 429 and r.headers["retry-after"] == "60"
    r = c.get("/r")
    assert r.status_code == 200 and r.text == "/r"
    assert r.headers["ratelimit"] == '"1-per-60s";r=0;t=60'
    assert c.get("/r").status_code == 429
    # The hidden parameters do not leak into the OpenAPI schema.
    schema = c.get("/openapi.json").json()
    params = schema["paths"]["/s"]["get"].get("parameters", [])
    assert [p["name"] for p in params] == ["q"]


def test_dependency(store_url: str, clock: Any) -> None:
    fw = Floodwall(store=store_url, clock=clock)
    app = FastAPI()
    fw.init_app(app)
    per_user = fw.depends("2/minute", key="header:X-Api-Key", name="api")

    @app.get("/dep", dependencies=[Depends(per_user)])
    async def dep() -> dict[str, str]:
        return {"ok": "dep"}

    @app.get("/dep2")
    def dep2(decision: Any = Depends(per_user)) -> dict[str, int]:  # noqa: B008
        return {"remaining": decision.remaining}

    c = client_for(app)
    h = {"X-Api-Key": "alice"}
    r = c.get("/dep", headers=h)
    assert r.status_code == 200
    assert sf_list(r.headers["ratelimit"]) == [("api", {"r": 1, "t": 30})]
    assert c.get("/dep2", headers=h).json() == {"remaining": 0}
    r = c.get("/dep", headers=h)
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "30"
    assert r.json()["violated-policies"] == ["api"]
    # Another key has its own bucket.
    assert c.get("/dep", headers={"X-Api-Key": "bob"}).status_code == 200


def test_dependency_without_handler_is_plain_429(store_url: str, clock: Any) -> None:
    fw = Floodwall(store=store_url, clock=clock)
    app = FastAPI()
    dep = fw.depends("1/minute")

    @app.get("/x", dependencies=[Depends(dep)])
    async def x() -> dict[str, str]:
        return {}

    c = client_for(app)
    assert c.get("/x").status_code == 200
    r = c.get("/x")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "60"
    assert "retry in 60 seconds" in r.json()["detail"]


def test_key_callable_and_header(store_url: str, clock: Any) -> None:
    fw = Floodwall(
        "1/minute",
        store=store_url,
        clock=clock,
        key=lambda request: request.query_params.get("tenant"),
    )
    c = client_for(make_app(fw))
    assert c.get("/items?tenant=a").status_code == 200
    assert c.get("/items?tenant=a").status_code == 429
    assert c.get("/items?tenant=b").status_code == 200


def test_spoofed_forwarded_headers_ignored_from_untrusted_peer(store_url: str, clock: Any) -> None:
    fw = Floodwall("1/minute", store=store_url, clock=clock, trusted_proxies=["10.0.0.0/8"])
    c = client_for(make_app(fw))
    assert c.get("/items", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    # A different claimed client from the same untrusted peer: same bucket.
    assert c.get("/items", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 429
    assert c.get("/items", headers={"Forwarded": 'for="[2001:db8::1]"'}).status_code == 429


def test_trusted_proxy_chain(store_url: str, clock: Any) -> None:
    fw = Floodwall("1/minute", store=store_url, clock=clock, trusted_proxies=["10.0.0.0/8"])
    c = client_for(make_app(fw), peer=("10.1.2.3", 5000))
    # The proxy appended the real client (192.0.2.10); the client forged the left part.
    assert c.get("/items", headers={"X-Forwarded-For": "1.1.1.1, 192.0.2.10"}).status_code == 200
    assert c.get("/items", headers={"X-Forwarded-For": "8.8.8.8, 192.0.2.10"}).status_code == 429
    assert c.get("/items", headers={"X-Forwarded-For": "192.0.2.11"}).status_code == 200


def test_forwarded_header_with_proxy_count(store_url: str, clock: Any) -> None:
    fw = Floodwall(
        "1/minute", store=store_url, clock=clock, trusted_proxies=1, proxy_header="forwarded"
    )
    c = client_for(make_app(fw), peer=("10.1.2.3", 5000))
    h1 = {"Forwarded": 'for=1.1.1.1, for="[2001:db8:aa:bb::1]:4711";proto=https'}
    h2 = {"Forwarded": 'for=9.9.9.9, for="[2001:db8:aa:bb::2]"'}  # same /64
    assert c.get("/items", headers=h1).status_code == 200
    assert c.get("/items", headers=h2).status_code == 429


def test_ipv6_grouped_by_64(store_url: str, clock: Any) -> None:
    fw = Floodwall("1/minute", store=store_url, clock=clock)
    app = make_app(fw)
    assert client_for(app, ("2001:db8:1:2::1", 1)).get("/items").status_code == 200
    assert client_for(app, ("2001:db8:1:2:ffff::9", 1)).get("/items").status_code == 429
    assert client_for(app, ("2001:db8:1:3::1", 1)).get("/items").status_code == 200


def test_missing_key_policies(store_url: str, clock: Any) -> None:
    for policy, first, second in (("shared", 200, 429), ("allow", 200, 200), ("deny", 400, 400)):
        fw = Floodwall(
            "1/minute",
            store=store_url,
            clock=clock,
            key="header:X-Api-Key",
            on_missing_key=policy,
            namespace=f"mk-{policy}",
        )
        c = client_for(make_app(fw))
        r1, r2 = c.get("/items"), c.get("/items")
        assert (r1.status_code, r2.status_code) == (first, second), policy
        if policy == "allow":
            assert "ratelimit" not in r1.headers
        if policy == "deny":
            assert r1.headers["content-type"] == "application/problem+json"


def test_shaping_sleeps_instead_of_rejecting(store_url: str, clock: Any) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    fw = Floodwall(
        "2/second", store=store_url, clock=clock, algorithm="leaky_bucket_shaping", sleep=fake_sleep
    )
    c = client_for(make_app(fw))
    codes = [c.get("/items").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert slept == [0.5]


def test_custom_handler_and_jitter(store_url: str, clock: Any) -> None:
    def handler(request: Any, decision: Any) -> JSONResponse:
        return JSONResponse({"slow": "down", "path": request.url.path}, status_code=429)

    fw = Floodwall(
        "1/minute",
        store=store_url,
        clock=clock,
        on_limited=handler,
        jitter_ms=5000,
        headers="ietf",
    )
    c = client_for(make_app(fw))
    assert c.get("/items").status_code == 200
    r = c.get("/items")
    assert r.status_code == 429
    assert r.json() == {"slow": "down", "path": "/items"}
    wait = int(r.headers["retry-after"])
    assert 60 <= wait <= 65
    # t says what Retry-After says (jitter included).
    assert sf_list(r.headers["ratelimit"]) == [("1-per-60s", {"r": 0, "t": wait})]
    assert "x-ratelimit-limit" not in r.headers


def test_headers_none_and_not_on_allowed(store_url: str, clock: Any) -> None:
    fw = Floodwall("1/minute", store=store_url, clock=clock, headers="none")
    c = client_for(make_app(fw))
    r = c.get("/items")
    assert r.status_code == 200 and not any(
        k.startswith(("ratelimit", "x-ratelimit")) for k in r.headers
    )
    r = c.get("/items")
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert "ratelimit" not in r.headers
    fw2 = Floodwall(
        "1/minute", store=store_url, clock=clock, headers_on_allowed=False, namespace="n2"
    )
    c2 = client_for(make_app(fw2))
    assert "ratelimit" not in c2.get("/items").headers
    assert "ratelimit" in c2.get("/items").headers


def test_several_rates_one_policy_per_rate(store_url: str, clock: Any) -> None:
    fw = Floodwall("2/second; 3/minute", store=store_url, clock=clock)
    c = client_for(make_app(fw))
    r = c.get("/items")
    assert sf_list(r.headers["ratelimit-policy"]) == [
        ("2-per-1s", {"q": 2, "w": 1}),
        ("3-per-60s", {"q": 3, "w": 60}),
    ]
    c.get("/items")
    clock.advance(1)
    r = c.get("/items")
    assert r.status_code == 200
    r = c.get("/items")
    assert r.status_code == 429
    assert json.loads(r.content)["violated-policies"] == ["3-per-60s"]
    assert sf_list(r.headers["ratelimit"])[0][0] == "3-per-60s"


def test_plain_starlette_and_bare_middleware(store_url: str, clock: Any) -> None:
    fw = Floodwall(store=store_url, clock=clock)

    @fw.limit("1/minute")
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    async def other(request: Any) -> PlainTextResponse:
        return PlainTextResponse("other")

    app = Starlette(routes=[Route("/", home), Route("/other", other)])
    bare = Floodwall("1/minute", store=store_url, clock=clock, namespace="bare")
    wrapped = FloodwallMiddleware(app, bare)
    c = client_for(wrapped)
    assert c.get("/").text == "home"
    assert c.get("/").status_code == 429
    assert c.get("/other").status_code == 200
    assert c.get("/other").status_code == 429


def test_exempt_decorator(store_url: str, clock: Any) -> None:
    fw = Floodwall("1/minute", store=store_url, clock=clock)
    app = FastAPI()
    fw.init_app(app)

    @app.get("/free")
    @fw.exempt
    async def free() -> dict[str, str]:
        return {}

    c = client_for(app)
    assert [c.get("/free").status_code for _ in range(3)] == [200, 200, 200]
    with pytest.raises(TypeError, match="floodwall="):
        FloodwallMiddleware(app, "1/minute")  # type: ignore[arg-type]


def test_exempt_globs_bind_route_decorators(store_url: str, clock: Any) -> None:
    fw = Floodwall(store=store_url, clock=clock, exempt=["/internal/*"])
    app = FastAPI()
    fw.init_app(app)

    @app.get("/internal/stats")
    @fw.limit("1/minute")
    async def stats() -> dict[str, str]:
        return {}

    c = client_for(app)
    assert [c.get("/internal/stats").status_code for _ in range(3)] == [200, 200, 200]
