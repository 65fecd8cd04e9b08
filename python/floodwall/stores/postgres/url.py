"""PostgreSQL store URLs and options.

``postgresql://`` and ``postgres://`` URLs are libpq URIs (a unix socket is
``postgresql://user@/db?host=/run/postgresql``). :func:`read_options` takes
floodwall's own options out of the query (and from keywords) through the
one typed option reader; what remains of the URL is handed to libpq as it
was written. :func:`check_identifier` validates and quotes the schema and
table names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from floodwall.errors import ConfigError
from floodwall.stores.failure import FailureSettings
from floodwall.stores.url import Options, StoreURL

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_SCHEMA",
    "DEFAULT_TABLE",
    "PostgresOptions",
    "check_identifier",
    "libpq_conninfo",
    "read_options",
]

DEFAULT_SCHEMA = "public"
DEFAULT_TABLE = "floodwall_state"
#: Connections of a pool floodwall opens (callers beyond wait for one,
#: within the check's timeout).
DEFAULT_MAX_CONNECTIONS = 16
#: psycopg's own default: a query is prepared on the server after this many
#: executions on one connection (None: never, e.g. behind PgBouncer < 1.21
#: in transaction mode).
DEFAULT_PREPARE_THRESHOLD = 5

#: floodwall's options that may be written in the URL's query.
URL_OPTIONS = frozenset(
    {
        "timeout",
        "connect_timeout",
        "breaker_threshold",
        "breaker_cooldown",
        "plain_keys",
        "schema",
        "table",
        "unlogged",
        "create_schema",
        "prepare_threshold",
        "max_connections",
    }
)
#: ... and those given as keywords only (objects, or secrets kept out of URLs).
KEYWORD_OPTIONS = URL_OPTIONS | {"key_secret", "fail", "on_error"}

# A name we create: lower case (so it needs no quoting to be typed by a
# user), and short enough that the names derived from it fit in 63 bytes.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def check_identifier(name: str, value: object) -> str:
    """``value`` as a quoted SQL identifier; ConfigError unless it is a
    lower-case name of letters, digits and underscores (at most 40)."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ConfigError(
            f"{name} must be a lower-case SQL name of at most 40 letters, digits and "
            f"underscores, starting with a letter or underscore; got {value!r}"
        )
    return f'"{value}"'


@dataclass(frozen=True)
class PostgresOptions:
    """Every floodwall option of a PostgreSQL store, typed and validated."""

    failure: FailureSettings = field(default_factory=FailureSettings)
    schema: str = DEFAULT_SCHEMA
    table: str = DEFAULT_TABLE
    unlogged: bool = False
    create_schema: bool = True
    prepare_threshold: int | None = DEFAULT_PREPARE_THRESHOLD
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    plain_keys: bool = False
    key_secret: Any = None
    fail: str | None = None
    on_error: Callable[[BaseException], object] | None = None

    @property
    def layout(self) -> tuple[str, str, bool, bool]:
        """What decides the tables a store uses (part of a pool's identity)."""
        return (self.schema, self.table, self.unlogged, self.create_schema)


def _prepare_threshold(reader: Options) -> int | None:
    if not reader.has("prepare_threshold"):
        return DEFAULT_PREPARE_THRESHOLD
    value = reader.raw("prepare_threshold")
    if value is None or (isinstance(value, str) and value.lower() in ("none", "off", "")):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"prepare_threshold must be an int >= 0 or none, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"prepare_threshold must be an int >= 0 or none, got {value!r}") from None
    if number < 0:
        raise ConfigError(f"prepare_threshold must be an int >= 0 or none, got {value!r}")
    return number


def read_options(keywords: Mapping[str, Any], url: StoreURL | None = None) -> PostgresOptions:
    """URL options overridden by keywords; ConfigError names the option."""
    unknown = set(keywords) - KEYWORD_OPTIONS
    if unknown:
        raise ConfigError(
            f"unknown option(s) {sorted(unknown)} for the PostgreSQL store; known: "
            f"{', '.join(sorted(KEYWORD_OPTIONS))}"
        )
    from_url = {k: v for k, v in (url.options if url else {}).items() if k in URL_OPTIONS}
    merged = StoreURL(url.scheme, url.netloc, url.path, from_url, url.text) if url else None
    where = "the PostgreSQL store"
    # "timeout=None" means "no deadline of floodwall's own": keep it
    no_deadline = "timeout" in keywords and keywords["timeout"] is None
    reader = Options(merged, keywords, where=where)
    settings: dict[str, Any] = {}
    for name in ("timeout", "connect_timeout"):
        value = reader.seconds_option(name, None, allow_none=True)
        if value is not None:
            settings[name] = value
        elif reader.has(name) or (name == "timeout" and no_deadline):
            settings[name] = None
    if no_deadline:
        settings["timeout"] = None
    threshold = reader.int_option("breaker_threshold", None, 0, 1_000_000)
    if threshold is not None:
        settings["breaker_threshold"] = threshold
    cooldown = reader.seconds_option("breaker_cooldown", None)
    if cooldown is not None:
        settings["breaker_cooldown"] = cooldown
    failure = FailureSettings.from_options(settings)
    schema = reader.raw("schema", DEFAULT_SCHEMA)
    table = reader.raw("table", DEFAULT_TABLE)
    check_identifier("schema", schema)
    check_identifier("table", table)
    opts = PostgresOptions(
        failure=failure,
        schema=schema,
        table=table,
        unlogged=reader.bool_option("unlogged", False),
        create_schema=reader.bool_option("create_schema", True),
        prepare_threshold=_prepare_threshold(reader),
        max_connections=reader.int_option("max_connections", DEFAULT_MAX_CONNECTIONS, 1, 10_000)
        or DEFAULT_MAX_CONNECTIONS,
        plain_keys=reader.bool_option("plain_keys", False),
        key_secret=reader.raw("key_secret", None),
        fail=reader.raw("fail", None),
        on_error=reader.raw("on_error", None),
    )
    reader.finish()
    return opts


def libpq_conninfo(url: StoreURL) -> str:
    """The URL for libpq: as written, less floodwall's own query options."""
    if url.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"not a PostgreSQL URL: {url.text!r}")
    parts = urlsplit(url.raw or url.text)
    rest = {k: v for k, v in url.options.items() if k not in URL_OPTIONS}
    return parts._replace(query=urlencode(rest, safe="/")).geturl()
