# test_postgres_django.py - store="django://ALIAS": the Django integration on
# the project's own PostgreSQL database, by its alias in settings.DATABASES.
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django_setup
import psycopg
import pytest
from postgres_servers import SUPERUSER, PostgresServer

django_setup.configure()

from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from floodwall.errors import ConfigError  # noqa: E402
from floodwall.stores.postgres.django_alias import resolve_django_store  # noqa: E402

MW = "floodwall.integrations.django.FloodwallMiddleware"
# DATABASES is read by floodwall alone here (no Django query runs)
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def items(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": "items"})


urlpatterns = [path("items", items)]


def _databases(server: PostgresServer) -> dict[str, Any]:
    return {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "USER": SUPERUSER,
            "PASSWORD": "",
            "HOST": server.host,
            "PORT": str(server.port),
            "OPTIONS": {"application_name": "floodwall-tests"},
        },
        "unix": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "USER": SUPERUSER,
            "HOST": str(server.sockdir),
            "PORT": str(server.port),
        },
        "lite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }


@pytest.fixture
def pg_project(postgres_url: str, postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    with override_settings(ROOT_URLCONF=__name__, DATABASES=_databases(postgres_server)):
        yield postgres_server


@pytest.mark.parametrize("alias", ["default", "unix"])
def test_middleware_on_the_apps_own_database(pg_project: PostgresServer, alias: str) -> None:
    conf = {"STORE": f"django://{alias}?table=django_{alias}", "DEFAULT": "2/minute"}
    with override_settings(FLOODWALL=conf, MIDDLEWARE=[MW]):
        c = Client(REMOTE_ADDR="203.0.113.9")
        assert [c.get("/items").status_code for _ in range(3)] == [200, 200, 429]
    with psycopg.connect(pg_project.conninfo) as conn:
        rows = conn.execute(f"SELECT count(*) FROM public.django_{alias}").fetchone()
        assert rows is not None and rows[0] >= 1


def test_resolved_urls() -> None:
    dbs = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "app db",
            "USER": "u@x",
            "PASSWORD": "p:w/d",
            "HOST": "db.internal",
            "PORT": 5433,
            "OPTIONS": {"sslmode": "require", "isolation_level": 3},
        }
    }
    url = resolve_django_store("django://default?table=t", dbs)
    assert url == ("postgresql://u%40x:p%3Aw%2Fd@db.internal:5433/app%20db?sslmode=require&table=t")
    assert resolve_django_store("postgresql://h/db", dbs) == "postgresql://h/db"


def test_unknown_or_non_postgres_alias_is_refused(pg_project: PostgresServer) -> None:
    with pytest.raises(ConfigError, match="no database 'other'"):
        resolve_django_store("django://other")
    with pytest.raises(ConfigError, match="needs a PostgreSQL database"):
        resolve_django_store("django://lite")
