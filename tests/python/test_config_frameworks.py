"""One named limit, configured only by floodwall.toml, used from a Flask app,
a FastAPI app and a Django app (``limits=["login"]``): they share its bucket
on a shared store; an unknown name fails when the route is declared; the
frameworks' own settings (``app.config["FLOODWALL"]``,
``settings.FLOODWALL``) in the schema's form go through the same checks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import django_setup
import pytest

django_setup.configure()

import flask  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import RequestFactory, override_settings  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from floodwall.config import ConfigFileError, registry  # noqa: E402
from floodwall.errors import ConfigError  # noqa: E402
from floodwall.integrations import asgi as fw_asgi  # noqa: E402
from floodwall.integrations import django as fw_django  # noqa: E402
from floodwall.integrations import flask as fw_flask  # noqa: E402
from floodwall.stores import shared  # noqa: E402

CLIENT = "203.0.113.7"


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A floodwall.toml with [limits.login] on a fresh shm table, found
    through FLOODWALL_CONFIG; yields the store URL."""
    name = f"fwcfg-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "floodwall.toml"
    path.write_text(f'[store]\nurl = "shm://{name}"\n\n[limits.login]\nrate = "3/minute"\n'
                    'key = "ip"\n')
    os.chmod(path, 0o644)
    for var in list(os.environ):
        if var.startswith("FLOODWALL_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("FLOODWALL_CONFIG", str(path))
    registry._ACTIVE.clear()
    registry._FROM_CONFIG.clear()
    yield f"shm://{name}"
    for entry in registry._FROM_CONFIG.values():
        entry.limiter.close()
    registry._ACTIVE.clear()
    registry._FROM_CONFIG.clear()
    shared.unlink_shm(name)
    fw_django._settings_guard.reset()


def flask_app() -> flask.Flask:
    app = flask.Flask(__name__)
    fw = fw_flask.Floodwall(app)

    @app.route("/login")
    @fw.limit(limits=["login"])
    def login() -> str:
        return "ok"

    return app


def fastapi_client() -> TestClient:
    app = FastAPI()
    fw = fw_asgi.Floodwall()
    fw.init_app(app)

    @app.get("/login")
    @fw.limit(limits=["login"])
    async def login() -> dict[str, str]:
        return {}

    return TestClient(app, client=(CLIENT, 1234))


def django_view() -> object:
    @fw_django.limit(limits=["login"])
    def login(request: object) -> HttpResponse:
        return HttpResponse("ok")

    return login


def test_one_named_limit_shared_by_flask_fastapi_and_django(config_file: str) -> None:
    flask_client = flask_app().test_client()
    api = fastapi_client()
    view = django_view()
    factory = RequestFactory()

    def from_flask() -> int:
        return flask_client.get("/login", environ_base={"REMOTE_ADDR": CLIENT}).status_code

    def from_fastapi() -> int:
        return api.get("/login").status_code

    def from_django() -> int:
        return view(factory.get("/login", REMOTE_ADDR=CLIENT)).status_code  # type: ignore

    # 3 per minute for this client, whichever framework it comes through
    assert [from_flask(), from_fastapi(), from_django()] == [200, 200, 200]
    assert [from_flask(), from_fastapi(), from_django()] == [429, 429, 429]
    response = api.get("/login")
    assert response.headers["ratelimit-policy"] == '"login";q=3;w=60'
    # another client is another bucket
    other = flask_client.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert other.status_code == 200
    # the state is in the configured store, under the key the CLI derives
    limiter = registry.lookup_named_limit("login")
    assert limiter.store_url == config_file
    assert limiter.peek(f"login|ip:{CLIENT}").remaining == 0


def test_unknown_name_fails_when_the_route_is_declared(config_file: str) -> None:
    app = flask.Flask(__name__)
    fw = fw_flask.Floodwall(app)
    with pytest.raises(ConfigError, match=r"no named limit 'logni': did you mean 'login'\?"):
        fw.limit(limits=["logni"])
    with pytest.raises(ConfigError, match="no named limit 'nope'"):
        fw_asgi.Floodwall().limit(limits=["nope"])
    with pytest.raises(ConfigError, match="no named limit 'nope'"):
        fw_asgi.Floodwall().depends(limits=["nope"])
    with pytest.raises(ConfigError, match="no named limit 'nope'"):
        fw_django.limit(limits=["nope"])
    with pytest.raises(ConfigError, match=r"limits= takes a list of limit names"):
        fw.limit(limits="login")  # type: ignore[arg-type]


def test_flask_app_config_in_the_schema_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOODWALL_CONFIG", raising=False)
    registry._ACTIVE.clear()
    registry._FROM_CONFIG.clear()
    try:
        app = flask.Flask(__name__)
        app.config["FLOODWALL"] = {"defaults": {"rate": "2/minute"},
                                   "http": {"headers": "ietf"}}
        fw_flask.Floodwall(app)

        @app.route("/")
        def index() -> str:
            return "ok"

        c = app.test_client()
        codes = [c.get("/").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert "x-ratelimit-limit" not in {k.lower() for k in c.get("/").headers.keys()}
        bad = flask.Flask(__name__)
        bad.config["FLOODWALL"] = {"http": {"jiter_ms": 5}}
        with pytest.raises(ConfigFileError) as info:
            fw_flask.Floodwall(bad)
        assert str(info.value) == (
            'app.config["FLOODWALL"]: http.jiter_ms: unknown key; did you mean '
            "'jitter_ms'? the keys of [http] are headers, headers_on_allowed, jitter_ms, "
            "trusted_proxies, proxy_header, ipv6_prefix, on_missing_key, exempt, enabled, "
            "max_delay, max_waiting"
        )
    finally:
        registry._ACTIVE.clear()
        registry._FROM_CONFIG.clear()


def test_django_settings_in_the_schema_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOODWALL_CONFIG", raising=False)
    registry._ACTIVE.clear()
    registry._FROM_CONFIG.clear()
    factory = RequestFactory()
    try:
        conf = {"limits": {"signup": {"rate": "1/minute"}}}
        with override_settings(FLOODWALL=conf):
            @fw_django.limit(limits=["signup"])
            def signup(request: object) -> HttpResponse:
                return HttpResponse("ok")

            assert fw_django.get_guard() is not None  # reads settings.FLOODWALL
            codes = [signup(factory.get("/s", REMOTE_ADDR=CLIENT)).status_code
                     for _ in range(2)]
            assert codes == [200, 429]
        with override_settings(FLOODWALL={"store": {"urll": "shm://x"}}):
            with pytest.raises(ConfigFileError) as info:
                fw_django.get_guard()
            assert str(info.value) == (
                "settings.FLOODWALL: store.urll: unknown key; did you mean 'url'? the keys "
                "of [store] are url, options, namespace, secret_env, secret, "
                "allow_inline_secret"
            )
        # the older upper-case form keeps working
        with override_settings(FLOODWALL={"DEFAULT": "5/minute"}):
            assert fw_django.get_guard().default is not None
    finally:
        registry._ACTIVE.clear()
        registry._FROM_CONFIG.clear()
        fw_django._settings_guard.reset()


def test_django_system_check_reads_the_schema_form(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core import checks

    monkeypatch.delenv("FLOODWALL_CONFIG", raising=False)
    mw = "floodwall.integrations.django.FloodwallMiddleware"
    try:
        with override_settings(MIDDLEWARE=[mw], FLOODWALL={"defaults": {"rate": "1/minute"}}):
            assert not [m for m in checks.run_checks() if m.id == "floodwall.W001"]
        with override_settings(MIDDLEWARE=[mw], FLOODWALL={"store": {"url": "memory://"}}):
            messages = [m for m in checks.run_checks() if m.id == "floodwall.W001"]
            assert len(messages) == 1
            assert "settings.FLOODWALL sets no defaults.rate" in messages[0].msg
    finally:
        registry._ACTIVE.clear()
        registry._FROM_CONFIG.clear()
        fw_django._settings_guard.reset()
