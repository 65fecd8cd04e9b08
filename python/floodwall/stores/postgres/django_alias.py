"""``store="django://ALIAS"``: the PostgreSQL store on a Django project's own
database, named by its alias in ``settings.DATABASES``.

:func:`resolve_django_store` turns the alias into a ``postgresql://`` URL
from the database's settings (NAME, USER, PASSWORD, HOST, PORT, and the
libpq OPTIONS such as ``sslmode``), plus the query options written after
the alias (``django://default?table=limits``). The store opens connections
of its own to that database rather than using Django's: a check is its own
transaction, committed whatever the request's transaction does (a view that
rolls back must not give back what it consumed), and it never waits on, or
joins, a transaction the view holds open. Invariant: only a PostgreSQL
alias is accepted; anything else is a ConfigError naming the alias.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from floodwall.errors import ConfigError

__all__ = ["SCHEME", "resolve_django_store"]

SCHEME = "django://"
_ENGINES = ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2")
# libpq parameters that Django passes through OPTIONS and that mean the same in a URI
_LIBPQ_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "target_session_attrs",
    "connect_timeout",
    "passfile",
    "service",
)


def resolve_django_store(store: str, databases: Any = None) -> str:
    """The postgresql:// URL of ``django://ALIAS[?options]``; ``databases``
    defaults to ``django.conf.settings.DATABASES``."""
    if not store.startswith(SCHEME):
        return store
    parts = urlsplit(store)
    alias = parts.netloc or "default"
    if databases is None:
        from django.conf import settings

        databases = settings.DATABASES
    try:
        db = databases[alias]
    except KeyError:
        raise ConfigError(
            f"store {store!r}: no database {alias!r} in settings.DATABASES "
            f"(known: {', '.join(sorted(databases)) or 'none'})"
        ) from None
    engine = db.get("ENGINE", "")
    if engine not in _ENGINES:
        raise ConfigError(
            f"store {store!r}: the database {alias!r} is {engine or 'not set'}; "
            "django:// needs a PostgreSQL database (django.db.backends.postgresql)"
        )
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    host = str(db.get("HOST") or "")
    port = str(db.get("PORT") or "")
    name = quote(str(db.get("NAME") or ""), safe="")
    query: dict[str, str] = {}
    options = db.get("OPTIONS") or {}
    for key in _LIBPQ_OPTIONS:
        if key in options:
            query[key] = str(options[key])
    auth = user + (f":{password}" if password else "")
    netloc = ""
    if host.startswith("/"):  # a unix socket directory
        query["host"] = host
        if port:
            query["port"] = port
        netloc = f"{auth}@" if auth else ""
    else:
        netloc = (f"{auth}@" if auth else "") + (f"[{host}]" if ":" in host else host)
        if port:
            netloc += f":{port}"
    text = f"postgresql://{netloc}/{name}"
    rest = urlencode(query, safe="/")
    extra = parts.query
    if rest or extra:
        text += "?" + "&".join(x for x in (rest, extra) if x)
    return text
