"""Redis store URLs and options.

:class:`RedisURL` reads what redis-py needs from a parsed
:class:`~floodwall.stores.url.StoreURL` (kind, hosts, db, service, socket
path, credentials); :class:`RedisOptions` reads floodwall's own options,
from the URL's query and from keywords, through the one typed option reader.
Query options floodwall does not read go to redis-py, when it reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from floodwall.errors import ConfigError
from floodwall.stores.failure import FailureSettings
from floodwall.stores.url import Options, StoreURL, parse_store_url

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "SCRIPTING_MODES",
    "RedisOptions",
    "RedisURL",
    "parse_url",
]

#: Connections of an asyncio client's pool (tasks beyond wait for one,
#: within the check's timeout).
DEFAULT_MAX_CONNECTIONS = 64
SCRIPTING_MODES = ("auto", "function", "eval")

#: floodwall's options that may be written in the URL's query.
URL_OPTIONS = frozenset(
    {
        "timeout",
        "connect_timeout",
        "breaker_threshold",
        "breaker_cooldown",
        "plain_keys",
        "scripting",
        "max_connections",
    }
)
#: ... and those given as keywords only (objects, or secrets kept out of URLs).
KEYWORD_OPTIONS = URL_OPTIONS | {"key_secret", "hash_tag", "client_options", "fail", "on_error"}
_SENTINEL_QUERY = ("sentinel_password", "sentinel_username")


def _parse_hosts(netloc_hosts: str, default_port: int) -> list[tuple[str, int]]:
    hosts: list[tuple[str, int]] = []
    for item in netloc_hosts.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [ipv6]:port
            end = item.find("]")
            host, rest = item[1:end], item[end + 1 :]
            port_text = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_text = item.partition(":")
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ConfigError(f"bad port {port_text!r} in {item!r}") from None
        if not host or not 0 < port < 65536:
            raise ConfigError(f"bad host:port {item!r}")
        hosts.append((host, port))
    if not hosts:
        raise ConfigError("no host given")
    return hosts


def _int_db(text: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise ConfigError(f"db must be an integer, got {text!r}") from None
    if db < 0:
        raise ConfigError(f"db must be >= 0, got {db}")
    return db


class RedisURL:
    """A Redis store URL: the deployment (kind, hosts, db...) and the query
    options left for redis-py (``query``); ``options`` holds floodwall's
    options written in the URL, typed."""

    __slots__ = (
        "db",
        "hosts",
        "kind",
        "options",
        "password",
        "path",
        "query",
        "service",
        "ssl",
        "store_url",
        "url",
        "username",
    )

    def __init__(self, store_url: StoreURL) -> None:
        self.store_url = store_url
        self.url = store_url.raw
        url = store_url.text
        parts = urlsplit(store_url.raw)
        scheme = store_url.scheme
        reader = Options(store_url, {}, where=f"{scheme}:// ({url!r})")
        self.options = _typed_options(reader, URL_OPTIONS)
        self.query: dict[str, str] = reader.rest()[0]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.ssl = scheme in ("rediss", "rediss+sentinel", "rediss+cluster")
        self.db = 0
        self.service = ""
        self.path = ""
        self.hosts: list[tuple[str, int]] = []
        hostpart = parts.netloc.rpartition("@")[2]
        if scheme in ("redis", "rediss"):
            self.kind = "redis"
        elif scheme in ("redis+unix", "unix"):
            self.kind = "unix"
            self.path = unquote(parts.path)
            if not self.path:
                raise ConfigError(
                    f"{url!r}: give the socket path, e.g. redis+unix:///run/redis.sock"
                )
        elif scheme in ("redis+sentinel", "rediss+sentinel"):
            self.kind = "sentinel"
            self.hosts = _parse_hosts(hostpart, 26379)
            segments = [s for s in parts.path.split("/") if s]
            if not segments:
                raise ConfigError(
                    f"{url!r}: name the service, e.g. redis+sentinel://host:26379/mymaster"
                )
            self.service = unquote(segments[0])
            if len(segments) > 2:
                raise ConfigError(f"{url!r}: the path is /service or /service/db")
            if len(segments) == 2:
                self.db = _int_db(segments[1])
        elif scheme in ("redis+cluster", "rediss+cluster"):
            self.kind = "cluster"
            self.hosts = _parse_hosts(hostpart, 6379)
            if parts.path.strip("/"):
                raise ConfigError(f"{url!r}: a cluster has only db 0, so no path")
        else:
            raise ConfigError(f"{url!r} is not a Redis URL")
        if "db" in self.query and self.kind != "redis":
            self.db = _int_db(self.query.pop("db"))
        if self.kind == "cluster" and self.db:
            raise ConfigError(f"{url!r}: a cluster has only db 0")
        self._check_query()

    def _check_query(self) -> None:
        """Query options floodwall does not read must be ones redis-py reads."""
        if self.kind in ("redis", "unix"):
            from redis.connection import URL_QUERY_ARGUMENT_PARSERS

            known = set(URL_QUERY_ARGUMENT_PARSERS) | {"db", "password", "username", "client_name"}
            unknown = sorted(
                k for k in self.query if k not in known and not k.startswith("ssl_")
            )
            theirs = f"; redis-py reads {', '.join(sorted(known))} and ssl_*"
        else:
            unknown = sorted(k for k in self.query if k not in _SENTINEL_QUERY)
            theirs = f", db, {', '.join(_SENTINEL_QUERY)}"
        if unknown:
            raise ConfigError(
                f"unknown option(s) {unknown} in {self.store_url.text!r}; floodwall reads "
                f"{', '.join(sorted(URL_OPTIONS))}{theirs}; pass other redis-py options "
                "as client_options={...}"
            )

    def redis_url(self) -> str:
        """The URL redis-py's from_url reads (floodwall options removed)."""
        parts = urlsplit(self.url)
        scheme = "rediss" if self.ssl else "redis"
        if self.kind == "unix":
            q = dict(self.query)
            if self.db:
                q["db"] = str(self.db)
            return f"unix://{parts.netloc}{quote(self.path)}" + ("?" + urlencode(q) if q else "")
        return parts._replace(scheme=scheme, query=urlencode(self.query)).geturl()

    def auth(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.username:
            kw["username"] = self.username
        if self.password:
            kw["password"] = self.password
        return kw

    def sentinel_kwargs(self, kw: Mapping[str, Any]) -> dict[str, Any]:
        out = {
            "socket_timeout": kw.get("socket_timeout"),
            "socket_connect_timeout": kw.get("socket_connect_timeout"),
        }
        if "sentinel_password" in self.query:
            out["password"] = self.query["sentinel_password"]
        if "sentinel_username" in self.query:
            out["username"] = self.query["sentinel_username"]
        return out


def parse_url(url: str) -> RedisURL:
    """Parse a Redis store URL; ConfigError says what is wrong."""
    if not isinstance(url, str):
        raise ConfigError(f"a Redis store URL must be a str, not {type(url).__name__}")
    return RedisURL(parse_store_url(url))


def _typed_options(reader: Options, names: frozenset[str]) -> dict[str, Any]:
    """Take floodwall's options out of ``reader``, typed (only those given)."""
    out: dict[str, Any] = {}
    if "timeout" in names and reader.has("timeout"):
        out["timeout"] = reader.seconds_option("timeout", None, allow_none=True)
    if "connect_timeout" in names and reader.has("connect_timeout"):
        out["connect_timeout"] = reader.seconds_option("connect_timeout", None, allow_none=True)
    if "breaker_threshold" in names and reader.has("breaker_threshold"):
        out["breaker_threshold"] = reader.int_option("breaker_threshold", None, 0, 1_000_000)
    if "breaker_cooldown" in names and reader.has("breaker_cooldown"):
        out["breaker_cooldown"] = reader.seconds_option("breaker_cooldown", None)
    if "plain_keys" in names and reader.has("plain_keys"):
        out["plain_keys"] = reader.bool_option("plain_keys", False)
    if "scripting" in names and reader.has("scripting"):
        out["scripting"] = reader.choice_option("scripting", "auto", SCRIPTING_MODES)
    if "max_connections" in names and reader.has("max_connections"):
        out["max_connections"] = reader.int_option("max_connections", None, 1, 1_000_000)
    return out


@dataclass(frozen=True)
class RedisOptions:
    """Every floodwall option of a Redis store, typed and validated."""

    failure: FailureSettings = field(default_factory=FailureSettings)
    plain_keys: bool = False
    key_secret: Any = None
    hash_tag: Any = None
    client_options: Mapping[str, Any] = field(default_factory=dict)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    scripting: str = "auto"
    fail: str | None = None
    on_error: Callable[[BaseException], object] | None = None

    @classmethod
    def read(cls, keywords: Mapping[str, Any], url: RedisURL | None = None) -> RedisOptions:
        """URL options overridden by keywords; ConfigError names the option."""
        unknown = set(keywords) - KEYWORD_OPTIONS
        if unknown:
            raise ConfigError(
                f"unknown option(s) {sorted(unknown)} for the Redis store; known: "
                f"{', '.join(sorted(KEYWORD_OPTIONS))}"
            )
        reader = Options(None, keywords, where="the Redis store")
        opts: dict[str, Any] = dict(url.options) if url is not None else {}
        given = {k for k in keywords if keywords[k] is not None}
        # "timeout=None" means "no deadline of floodwall's own": keep it
        if "timeout" in keywords and keywords["timeout"] is None:
            opts["timeout"] = None
        opts.update(_typed_options(reader, URL_OPTIONS & given))
        client_options = reader.raw("client_options", None) or {}
        if not isinstance(client_options, dict):
            raise ConfigError("client_options must be a dict of redis-py keyword arguments")
        failure = FailureSettings.from_options(opts)
        return cls(
            failure=failure,
            plain_keys=bool(opts.get("plain_keys", False)),
            key_secret=reader.raw("key_secret", None),
            hash_tag=reader.raw("hash_tag", None),
            client_options=client_options,
            max_connections=opts.get("max_connections", DEFAULT_MAX_CONNECTIONS),
            scripting=opts.get("scripting", "auto"),
            fail=reader.raw("fail", None),
            on_error=reader.raw("on_error", None),
        )
