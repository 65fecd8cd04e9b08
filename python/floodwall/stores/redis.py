# floodwall.stores.redis: the Redis store.
#
# Serves redis://, rediss://, redis+unix:// (and unix://), redis+sentinel://
# and redis+cluster:// URLs, or an existing redis-py client. Every check is
# one EVALSHA of the script assembled by floodwall.stores.redis_lua: all the
# rates of a limiter, and all the parts of a check_all, decided
# all-or-nothing in one round trip, with Redis TIME as the clock. A failing
# Redis goes through the failure policy (fail="open" | "closed" | "raise")
# and a circuit breaker, so a dead server costs microseconds, not timeouts.
# Invariant: keys are "<namespace>:<algorithm>:{<tag>}:<rate>" where the tag
# (by default a stable hash of the user key) is the only hash tag, so every
# key of one check lands in one Cluster slot; no raw user key is stored
# unless plain_keys=True.
from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import redis
import redis.asyncio
from redis.exceptions import NoScriptError, RedisError, ResponseError

from floodwall._native import Decision
from floodwall.errors import ConfigError, CostError, KeyTypeError, StoreError
from floodwall.rates import Rate
from floodwall.stores import LimitSpec, register
from floodwall.stores.breaker import OPEN, CircuitBreaker
from floodwall.stores.redis_lua import QuotaParts, check_library, check_script, normalise

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.cluster import RedisCluster

__all__ = [
    "DEFAULT_TIMEOUT",
    "RedisBackend",
    "from_client",
    "open_redis",
    "parse_url",
]

Key = Union[str, bytes]
SyncClient = Union["redis.Redis", "RedisCluster"]
AsyncClient = Union["redis.asyncio.Redis", "AsyncRedisCluster"]

#: Seconds a check waits for Redis (connect, then answer) before the failure
#: policy decides.
DEFAULT_TIMEOUT = 0.25
DEFAULT_BREAKER_THRESHOLD = 5
#: Connections of an asyncio client's pool (tasks beyond wait for one).
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_BREAKER_COOLDOWN = 1.0

_INT64_MAX = 2**63 - 1
_FAIL_MODES = ("open", "closed", "raise")
_STORE_ERRORS = (RedisError, OSError)  # OSError covers socket errors and TimeoutError
_HASH_PERSON = b"floodwall-redis"

# Options read from the URL query string (the rest go to redis-py).
_URL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "timeout": float,
    "connect_timeout": float,
    "breaker_threshold": int,
    "breaker_cooldown": float,
    "plain_keys": lambda v: v.lower() in ("1", "true", "yes", "on"),
    "scripting": str,
}
_KEYWORD_OPTIONS = frozenset(
    {
        "timeout",
        "connect_timeout",
        "breaker_threshold",
        "breaker_cooldown",
        "plain_keys",
        "key_secret",
        "hash_tag",
        "client_options",
        "max_connections",
        "scripting",
        "fail",
        "on_error",
    }
)


# ---------------------------------------------------------------- key names


def _escape(raw: bytes) -> bytes:
    """Make text safe inside a key name: no hash-tag braces, reversible."""
    return raw.replace(b"%", b"%25").replace(b"{", b"%7B").replace(b"}", b"%7D")


def _glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for ch in raw:
        if ch in b"*?[]\\":
            out += b"\\"
        out.append(ch)
    return bytes(out)


def _key_bytes(key: object) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    if isinstance(key, bytes):
        return key
    raise KeyTypeError(f"key must be str or bytes, not {type(key).__name__}")


def _rate_tag(q: QuotaParts) -> str:
    """The rate part of a key name: quotas that differ never share state."""
    if q.burst == q.rate:
        return f"{q.rate}/{q.period_ns}"
    return f"{q.rate}/{q.period_ns}/{q.burst}"


class KeyNamer:
    """Turns user keys into Redis key names for one limit spec.

    ``<namespace>:<algorithm>:{<id>}:<rate>`` by default, where ``id`` is a
    stable 128-bit BLAKE2b of the user key (keyed by ``key_secret`` if
    given) or, with ``plain_keys``, the key itself with ``%``, ``{`` and
    ``}`` percent-encoded. With ``hash_tag`` (a constant, or a function of
    the user key) the tag is that instead, and the key's id follows it:
    ``<namespace>:<algorithm>:{<tag>}:<id>:<rate>``.
    """

    __slots__ = ("_hash_tag", "_key_secret", "_plain", "_prefix", "_rate_tags", "pattern")

    def __init__(
        self,
        namespace: str,
        algorithm: str,
        quotas: Sequence[QuotaParts],
        *,
        plain_keys: bool = False,
        key_secret: bytes | None = None,
        hash_tag: str | bytes | Callable[[Key], Key] | None = None,
    ) -> None:
        ns = _escape(namespace.encode("utf-8", "surrogatepass"))
        self._prefix = ns + b":" + algorithm.encode() + b":{"
        self.pattern = _glob_escape(ns + b":" + algorithm.encode() + b":") + b"*"
        self._rate_tags = tuple(b"}:" + _rate_tag(q).encode() for q in quotas)
        self._plain = plain_keys
        self._key_secret = key_secret or b""
        if hash_tag is not None and not callable(hash_tag):
            hash_tag = _escape(_key_bytes(hash_tag))
        self._hash_tag: bytes | Callable[[Key], Key] | None = hash_tag

    def ident(self, raw: bytes) -> bytes:
        """The part of a key name that stands for a user key."""
        if self._plain:
            return _escape(raw)
        h = hashlib.blake2b(raw, digest_size=16, key=self._key_secret, person=_HASH_PERSON)
        return h.hexdigest().encode()

    def keys(self, key: Key) -> list[bytes]:
        """One Redis key per rate, all with the same hash tag."""
        raw = _key_bytes(key)
        tag = self._hash_tag
        if tag is None:
            head = self._prefix + self.ident(raw)
            return [head + r for r in self._rate_tags]
        tag_bytes = tag if isinstance(tag, bytes) else self.ident(_key_bytes(tag(key)))
        head = self._prefix + tag_bytes + b"}:" + self.ident(raw) + b":"
        return [head + r[2:] for r in self._rate_tags]


# ---------------------------------------------------------------- URLs


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


class ParsedURL:
    """A store URL split into what redis-py needs and floodwall's options."""

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
        "url",
        "username",
    )

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        self.options: dict[str, Any] = {}
        query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in _URL_OPTIONS:
                try:
                    self.options[name] = _URL_OPTIONS[name](value)
                except ValueError:
                    raise ConfigError(f"bad value {value!r} for {name} in {url!r}") from None
            else:
                query[name] = value
        self.query = query
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
                self.db = self._int_db(segments[1])
        elif scheme in ("redis+cluster", "rediss+cluster"):
            self.kind = "cluster"
            self.hosts = _parse_hosts(hostpart, 6379)
            if parts.path.strip("/"):
                raise ConfigError(f"{url!r}: a cluster has only db 0, so no path")
        else:
            raise ConfigError(f"{url!r} is not a Redis URL")
        if "db" in query and self.kind != "redis":
            self.db = self._int_db(query.pop("db"))
        if self.kind == "cluster" and self.db:
            raise ConfigError(f"{url!r}: a cluster has only db 0")

    @staticmethod
    def _int_db(text: str) -> int:
        try:
            db = int(text)
        except ValueError:
            raise ConfigError(f"db must be an integer, got {text!r}") from None
        if db < 0:
            raise ConfigError(f"db must be >= 0, got {db}")
        return db

    def redis_url(self) -> str:
        """The URL redis-py's from_url reads (floodwall options removed)."""
        parts = urlsplit(self.url)
        scheme = "rediss" if self.ssl else "redis"
        if self.kind == "unix":
            scheme = "unix"
            q = dict(self.query)
            if self.db:
                q["db"] = str(self.db)
            return f"unix://{parts.netloc}{quote(self.path)}" + ("?" + urlencode(q) if q else "")
        return parts._replace(scheme=scheme, query=urlencode(self.query)).geturl()


def parse_url(url: str) -> ParsedURL:
    """Parse a Redis store URL; ConfigError says what is wrong."""
    if not isinstance(url, str):
        raise ConfigError(f"a Redis store URL must be a str, not {type(url).__name__}")
    return ParsedURL(url)


# ---------------------------------------------------------------- connections


def _sync_retry() -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # one immediate retry on a dropped connection (a restarted server),
    # none on a timeout: a check never waits much longer than `timeout`
    return Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))


def _async_retry() -> Any:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))


class Connection:
    """The clients of one Redis deployment, shared by every backend opened
    with the same URL and options (which is what lets check_all group them)."""

    def __init__(
        self,
        *,
        parsed: ParsedURL | None = None,
        client: Any = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        client_options: dict[str, Any] | None = None,
        breaker: CircuitBreaker | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        scripting: str = "auto",
    ) -> None:
        self.parsed = parsed
        self.max_connections = max_connections
        #: FCALL of a Redis function (Redis >= 7: the library is loaded once,
        #: so a call skips the script's set-up) or EVALSHA; "auto" starts
        #: with FCALL and falls back to EVALSHA for good if the server
        #: cannot (Redis < 7, FUNCTION forbidden by an ACL...).
        self.use_fcall = scripting in ("auto", "function")
        self.scripting = scripting
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.client_options = dict(client_options or {})
        self.breaker = breaker or CircuitBreaker(
            DEFAULT_BREAKER_THRESHOLD, DEFAULT_BREAKER_COOLDOWN
        )
        self._lock = threading.Lock()
        self._sync: Any = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._user_async: Any = None
        self.owned = client is None
        self.cluster = False
        if client is not None:
            if _is_async_client(client):
                self._user_async = client
            else:
                self._sync = client
            self.cluster = _is_cluster_client(client)
        elif parsed is not None:
            self.cluster = parsed.kind == "cluster"
        self.users = 0

    # -- client construction --------------------------------------------

    def _kw(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.connect_timeout,
        }
        kw.update(self.client_options)
        return kw

    def sync_client(self) -> Any:
        client = self._sync
        if client is not None:
            return client
        if self._user_async is not None:
            raise ConfigError(
                "this Redis store was given a redis.asyncio client: use the async "
                "calls (acheck, aallow, apeek...), or pass a redis.Redis client"
            )
        with self._lock:
            if self._sync is None:
                assert self.parsed is not None
                self._sync = self._make_sync(self.parsed)
            return self._sync

    def _make_sync(self, p: ParsedURL) -> Any:
        kw = self._kw()
        kw.setdefault("retry", _sync_retry())
        try:
            if p.kind in ("redis", "unix"):
                return redis.Redis.from_url(p.redis_url(), **kw)
            if p.kind == "sentinel":
                from redis.sentinel import Sentinel

                sentinel = Sentinel(  # type: ignore[no-untyped-call]
                    p.hosts,
                    sentinel_kwargs=_sentinel_kwargs(p, kw),
                    **_auth(p),
                    **_extra_query(p),
                    **kw,
                )
                return sentinel.master_for(p.service, db=p.db)  # type: ignore[no-untyped-call]
            from redis.cluster import ClusterNode, RedisCluster

            return RedisCluster(
                startup_nodes=[ClusterNode(h, port) for h, port in p.hosts],  # type: ignore[no-untyped-call]
                ssl=p.ssl,
                **_auth(p),
                **_extra_query(p),
                **kw,
            )
        except TypeError as exc:
            raise ConfigError(f"bad option for the Redis client: {exc}") from None

    def async_client(self) -> Any:
        """The redis.asyncio client for the running loop; None when only a
        synchronous user client exists (callers then use a thread)."""
        if self._user_async is not None:
            return self._user_async
        if self.parsed is None:
            return None
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._make_async(self.parsed)
            self._async[loop] = client
        return client

    def _make_async(self, p: ParsedURL) -> Any:
        kw = self._kw()
        kw.setdefault("retry", _async_retry())
        try:
            if p.kind in ("redis", "unix"):
                # a bounded pool where tasks queue for a free connection (no
                # deadline on the queue: it is local; Redis's answer has one),
                # so that a burst of tasks never opens thousands of sockets
                pool = redis.asyncio.BlockingConnectionPool.from_url(
                    p.redis_url(),
                    max_connections=self.max_connections,
                    timeout=None,
                    **kw,
                )
                return redis.asyncio.Redis.from_pool(pool)
            if p.kind == "sentinel":
                from redis.asyncio.sentinel import Sentinel

                sentinel = Sentinel(  # type: ignore[no-untyped-call]
                    p.hosts,
                    sentinel_kwargs=_sentinel_kwargs(p, kw),
                    **_auth(p),
                    **_extra_query(p),
                    **kw,
                )
                return sentinel.master_for(p.service, db=p.db)
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            return RedisCluster(
                startup_nodes=[ClusterNode(h, port) for h, port in p.hosts],
                ssl=p.ssl,
                **_auth(p),
                **_extra_query(p),
                **kw,
            )
        except TypeError as exc:
            raise ConfigError(f"bad option for the Redis client: {exc}") from None

    # -- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Close the clients this object made (never a user's client)."""
        if not self.owned:
            return
        with self._lock:
            sync, self._sync = self._sync, None
            clients = list(self._async.items())
            self._async.clear()
        if sync is not None:
            sync.close()
        for loop, client in clients:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:  # elsewhere the loop's owner closes it (aclose)
                loop.create_task(client.aclose())

    async def aclose(self) -> None:
        if not self.owned:
            return
        loop = asyncio.get_running_loop()
        client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()


def _auth(p: ParsedURL) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if p.username:
        kw["username"] = p.username
    if p.password:
        kw["password"] = p.password
    return kw


def _extra_query(p: ParsedURL) -> dict[str, Any]:
    extra = dict(p.query)
    extra.pop("sentinel_password", None)
    extra.pop("sentinel_username", None)
    if extra:
        raise ConfigError(
            f"unknown option(s) {sorted(extra)} in {p.url!r}; floodwall reads "
            f"{', '.join(sorted(_URL_OPTIONS))}, db, sentinel_password, sentinel_username; "
            "pass other redis-py options as client_options={...}"
        )
    return {}


def _check_redis_query(p: ParsedURL) -> None:
    """redis:// and unix:// query options go to redis-py: only those it reads."""
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS

    known = set(URL_QUERY_ARGUMENT_PARSERS) | {"db", "password", "username", "client_name"}
    unknown = sorted(k for k in p.query if k not in known and not k.startswith("ssl_"))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} in {p.url!r}; floodwall reads "
            f"{', '.join(sorted(_URL_OPTIONS))}; redis-py reads {', '.join(sorted(known))} "
            "and ssl_*; pass other redis-py options as client_options={...}"
        )


def _sentinel_kwargs(p: ParsedURL, kw: dict[str, Any]) -> dict[str, Any]:
    out = {
        "socket_timeout": kw.get("socket_timeout"),
        "socket_connect_timeout": kw.get("socket_connect_timeout"),
    }
    if "sentinel_password" in p.query:
        out["password"] = p.query["sentinel_password"]
    if "sentinel_username" in p.query:
        out["username"] = p.query["sentinel_username"]
    return out


def _is_async_client(client: object) -> bool:
    return type(client).__module__.startswith("redis.asyncio")


def _is_cluster_client(client: object) -> bool:
    return type(client).__name__ == "RedisCluster" or hasattr(client, "get_nodes")


# Backends opened with the same URL and options share one Connection.
_connections: dict[tuple[Any, ...], Connection] = {}
_connections_lock = threading.Lock()


def _shared_connection(parsed: ParsedURL, opts: dict[str, Any]) -> Connection:
    key = (
        parsed.url,
        opts["timeout"],
        opts["connect_timeout"],
        opts["breaker_threshold"],
        opts["breaker_cooldown"],
        opts["max_connections"],
        opts["scripting"],
        repr(sorted(opts["client_options"].items())),
    )
    with _connections_lock:
        conn = _connections.get(key)
        if conn is None:
            conn = Connection(
                parsed=parsed,
                timeout=opts["timeout"],
                connect_timeout=opts["connect_timeout"],
                client_options=opts["client_options"],
                breaker=CircuitBreaker(opts["breaker_threshold"], opts["breaker_cooldown"]),
                max_connections=opts["max_connections"],
                scripting=opts["scripting"],
            )
            _connections[key] = conn
        conn.users += 1
    return conn


def _release_connection(conn: Connection) -> None:
    with _connections_lock:
        conn.users -= 1
        if conn.users > 0:
            return
        for key, value in list(_connections.items()):
            if value is conn:
                del _connections[key]
    conn.close()


# ---------------------------------------------------------------- the backend


def _i64(value: Any) -> int:
    v = int(value)
    return v if v <= _INT64_MAX else _INT64_MAX


def _validate_cost(cost: object) -> int:
    if not isinstance(cost, int):
        raise CostError(f"cost must be an int >= 0, not {type(cost).__name__}")
    if cost < 0:
        raise CostError(f"cost must be an int >= 0, got {cost!r}")
    return cost


class RedisBackend:
    """A limit spec on a Redis deployment (see docs/redis.md)."""

    def __init__(self, conn: Connection, spec: LimitSpec, opts: dict[str, Any]) -> None:
        self.conn = conn
        self.spec = spec
        fail = opts.get("fail") or getattr(spec, "fail", "raise")
        if fail not in _FAIL_MODES:
            raise ConfigError(f"fail must be one of {', '.join(_FAIL_MODES)}, got {fail!r}")
        self.fail = fail
        on_error = opts.get("on_error") or getattr(spec, "on_error", None)
        if on_error is not None and not callable(on_error):
            raise ConfigError("on_error must be a callable taking the exception")
        self.on_error: Callable[[BaseException], object] | None = on_error
        if not spec.rates:
            raise ConfigError("a limit needs at least one rate")
        quotas: list[QuotaParts] = []
        for rate in spec.rates:
            try:
                quotas.append(normalise(spec.algorithm, rate.amount, rate.period_ns, rate.burst))
            except ValueError as exc:
                raise ConfigError(f"{exc} (rate {rate})") from None
        self.quotas = tuple(quotas)
        self.rates: tuple[Rate, ...] = tuple(spec.rates)
        self.capacity = min(q.burst for q in quotas)
        self._meta = tuple((q.burst, r) for q, r in zip(quotas, self.rates))
        self._parts = tuple(x for q in quotas for x in q.part)
        self.namer = KeyNamer(
            spec.namespace,
            spec.algorithm,
            quotas,
            plain_keys=bool(opts.get("plain_keys", False)),
            key_secret=_secret(opts.get("key_secret")),
            hash_tag=opts.get("hash_tag"),
        )
        self._clock = spec.clock
        self._expire = b"0" if spec.clock is not None else b"1"
        # the ARGV of a cost-1 check with Redis's own clock, built once
        self._argv1 = (b"", b"1", self._expire, *self._parts)
        self._script, self._sha = check_script()
        self._fname, self._library = check_library()
        self._allowed = 0
        self._denied = 0
        self._fallbacks = 0
        self._errors = 0
        self._closed = False

    # -- helpers ------------------------------------------------------------

    def _argv(self, cost: int, parts: Sequence[bytes]) -> tuple[Any, ...]:
        if self._clock is None:
            now: Any = b""
            if cost == 1 and parts is self._parts:
                return self._argv1
        else:
            now = self._clock()
            if isinstance(now, bool) or not isinstance(now, int) or not 0 <= now <= _INT64_MAX:
                raise ConfigError(f"clock() must return int ns in [0, 2^63-1], got {now!r}")
        return (now, cost, self._expire, *parts)

    def _cost_error(self, cost: int, meta: Sequence[tuple[int, Rate]]) -> CostError | None:
        for burst, rate in meta:
            if cost > burst:
                return CostError(
                    f"cost {cost} exceeds the capacity {burst} of {rate}: it can never be admitted"
                )
        return None

    def _decision(self, res: Sequence[Any], meta: Sequence[tuple[int, Rate]]) -> Decision:
        burst, rate = meta[int(res[1])]
        allowed = bool(res[0])
        return Decision(
            allowed,
            burst,
            _i64(res[2]),
            _i64(res[3]),
            _i64(res[4]),
            _i64(res[5]),
            rate=rate,
        )

    def _count(self, d: Decision, cost: int) -> Decision:
        if cost and not d.fallback:
            if d.allowed:
                self._allowed += 1
            else:
                self._denied += 1
        return d

    def _failed(self, exc: BaseException, meta: Sequence[tuple[int, Rate]]) -> Decision:
        """A call that reached for Redis and failed: hook, then the policy."""
        self._errors += 1
        if self.on_error is not None:
            self.on_error(exc)
        return self._fallback(exc, meta)

    def _fallback(self, exc: BaseException, meta: Sequence[tuple[int, Rate]]) -> Decision:
        if self.fail == "raise":
            if isinstance(exc, StoreError):
                raise exc
            raise StoreError(f"Redis store failed: {type(exc).__name__}: {exc}") from exc
        self._fallbacks += 1
        burst, rate = meta[0]
        if self.fail == "open":
            return Decision(True, burst, 0, 0, 0, 0, rate=rate, fallback=True)
        wait = self.conn.breaker.retry_in() or self.conn.breaker.cooldown
        wait_ns = max(1, int(wait * 1e9))
        return Decision(False, burst, 0, wait_ns, wait_ns, 0, rate=rate, fallback=True)

    def _skipped(self, meta: Sequence[tuple[int, Rate]]) -> Decision:
        br = self.conn.breaker
        return self._fallback(
            StoreError(
                f"Redis store skipped: the circuit breaker is open after "
                f"{br.threshold} consecutive failures; next try in {br.retry_in():.3f}s"
            ),
            meta,
        )

    def _eval(self, client: Any, keys: Sequence[bytes], argv: Sequence[Any]) -> Any:
        """One call of the check script: FCALL, or EVALSHA (EVAL on NOSCRIPT)."""
        if self.conn.use_fcall:
            try:
                return client.execute_command("FCALL", self._fname, len(keys), *keys, *argv)
            except ResponseError as exc:
                if self._function_missing(exc):
                    client.execute_command("FUNCTION LOAD", "REPLACE", self._library)
                    return client.execute_command("FCALL", self._fname, len(keys), *keys, *argv)
                if not self._functions_unavailable(exc):
                    raise
        try:
            return client.execute_command("EVALSHA", self._sha, len(keys), *keys, *argv)
        except NoScriptError:
            return client.execute_command("EVAL", self._script, len(keys), *keys, *argv)

    async def _aeval(self, client: Any, keys: Sequence[bytes], argv: Sequence[Any]) -> Any:
        if self.conn.use_fcall:
            try:
                return await client.execute_command("FCALL", self._fname, len(keys), *keys, *argv)
            except ResponseError as exc:
                if self._function_missing(exc):
                    await client.execute_command("FUNCTION LOAD", "REPLACE", self._library)
                    return await client.execute_command(
                        "FCALL", self._fname, len(keys), *keys, *argv
                    )
                if not self._functions_unavailable(exc):
                    raise
        try:
            return await client.execute_command("EVALSHA", self._sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await client.execute_command("EVAL", self._script, len(keys), *keys, *argv)

    @staticmethod
    def _function_missing(exc: ResponseError) -> bool:
        # a restart, FUNCTION FLUSH, a new node: load the library again
        return "function not found" in str(exc).lower()

    def _functions_unavailable(self, exc: ResponseError) -> bool:
        """Redis < 7, or FUNCTION/FCALL refused: use EVALSHA from now on."""
        text = str(exc).lower()
        if self.conn.scripting == "auto" and (
            "unknown command" in text or "noperm" in text or "no permissions" in text
        ):
            self.conn.use_fcall = False
            return True
        return False

    def _run(
        self, keys: Sequence[bytes], argv: Sequence[Any], meta: Sequence[tuple[int, Rate]]
    ) -> Decision:
        breaker = self.conn.breaker
        if breaker._state and not breaker.allow():  # not closed
            return self._skipped(meta)
        try:
            client = self.conn.sync_client()
            res = self._eval(client, keys, argv)
        except _STORE_ERRORS as exc:
            breaker.failure()
            return self._failed(exc, meta)
        breaker.success()
        return self._decision(res, meta)

    async def _arun(
        self, keys: Sequence[bytes], argv: Sequence[Any], meta: Sequence[tuple[int, Rate]]
    ) -> Decision:
        breaker = self.conn.breaker
        if breaker._state and not breaker.allow():
            return self._skipped(meta)
        try:
            client = self.conn.async_client()
            if client is None:  # only a synchronous user client: use a thread
                res = await asyncio.to_thread(self._eval, self.conn.sync_client(), keys, argv)
            else:
                res = await self._aeval(client, keys, argv)
        except _STORE_ERRORS as exc:
            breaker.failure()
            return self._failed(exc, meta)
        breaker.success()
        return self._decision(res, meta)

    # -- checks -------------------------------------------------------------

    def _bad_cost(self, cost: object) -> int:
        """The cost as an int, or CostError (the slow path of check)."""
        n = _validate_cost(cost)
        err = self._cost_error(n, self._meta)
        if err is not None:
            raise err
        return n

    def check(self, key: Key, cost: int = 1) -> Decision:
        """Decide `cost` units for `key` on every rate, all-or-nothing."""
        # The hot path, kept flat: one EVALSHA, no helper frames.
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = self._bad_cost(cost)
        keys = self.namer.keys(key)
        if cost == 1 and self._clock is None:
            argv: Sequence[Any] = self._argv1
        else:
            argv = self._argv(cost, self._parts)
        conn = self.conn
        breaker = conn.breaker
        if breaker._state and not breaker.allow():  # not closed: maybe skip
            return self._skipped(self._meta)
        try:
            client = conn._sync or conn.sync_client()
            if conn.use_fcall:
                try:
                    res = client.execute_command("FCALL", self._fname, len(keys), *keys, *argv)
                except ResponseError as exc:
                    if not (self._function_missing(exc) or self._functions_unavailable(exc)):
                        raise
                    res = self._eval(client, keys, argv)
            else:
                try:
                    res = client.execute_command("EVALSHA", self._sha, len(keys), *keys, *argv)
                except NoScriptError:
                    res = client.execute_command("EVAL", self._script, len(keys), *keys, *argv)
        except _STORE_ERRORS as exc:
            breaker.failure()
            return self._failed(exc, self._meta)
        if breaker._failures:
            breaker.success()
        burst, rate = self._meta[res[1]]
        rem, retry, reset, delay = res[2], res[3], res[4], res[5]
        if (
            rem.__class__ is not int
            or retry.__class__ is not int
            or reset.__class__ is not int
            or delay.__class__ is not int
        ):  # 2^53 or more comes as decimal text
            rem, retry, reset, delay = _i64(rem), _i64(retry), _i64(reset), _i64(delay)
        if res[0]:
            if cost:
                self._allowed += 1
            return Decision(True, burst, rem, retry, reset, delay, rate=rate)
        if cost:
            self._denied += 1
        return Decision(False, burst, rem, retry, reset, delay, rate=rate)

    def allow(self, key: Key, cost: int = 1) -> bool:
        return self.check(key, cost).allowed

    def peek(self, key: Key) -> Decision:
        return self.check(key, 0)

    async def acheck(self, key: Key, cost: int = 1) -> Decision:
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = _validate_cost(cost)
            err = self._cost_error(cost, self._meta)
            if err is not None:
                raise err
        keys = self.namer.keys(key)
        d = await self._arun(keys, self._argv(cost, self._parts), self._meta)
        return self._count(d, cost)

    async def aallow(self, key: Key, cost: int = 1) -> bool:
        return (await self.acheck(key, cost)).allowed

    async def apeek(self, key: Key) -> Decision:
        return await self.acheck(key, 0)

    # -- groups -------------------------------------------------------------

    def _group(
        self, parts: Sequence[tuple[Any, Key]], cost: int
    ) -> tuple[list[bytes], tuple[Any, ...], list[tuple[int, Rate]]]:
        cost = _validate_cost(cost)
        if not parts:
            raise ConfigError("check_all needs at least one (limiter, key) pair")
        keys: list[bytes] = []
        specs: list[bytes] = []
        meta: list[tuple[int, Rate]] = []
        for backend, key in parts:
            if not isinstance(backend, RedisBackend) or backend.conn is not self.conn:
                raise ConfigError(
                    "check_all needs every limiter on the same Redis store: open them "
                    "with the same URL and options, or pass store=<first limiter>"
                )
            err = backend._cost_error(cost, backend._meta)
            if err is not None:
                raise err
            keys.extend(backend.namer.keys(key))
            specs.extend(backend._parts)
            meta.extend(backend._meta)
        if self.conn.cluster:
            from redis.crc import key_slot

            slots = {key_slot(k) for k in keys}
            if len(slots) > 1:
                raise ConfigError(
                    "on Redis Cluster, the keys of one check_all must share a hash tag "
                    "(one slot, or Redis would answer CROSSSLOT): give the limiters "
                    "hash_tag=... (a constant, or a function of the key such as a "
                    "tenant id) so that every part maps to the same tag; see docs/redis.md"
                )
        return keys, self._argv(cost, specs), meta

    def check_group(self, parts: Sequence[tuple[Any, Key]], cost: int = 1) -> Decision:
        """All-or-nothing over several (backend, key) parts, in one script call."""
        keys, argv, meta = self._group(parts, cost)
        return self._count(self._run(keys, argv, meta), cost)

    async def acheck_group(self, parts: Sequence[tuple[Any, Key]], cost: int = 1) -> Decision:
        keys, argv, meta = self._group(parts, cost)
        return self._count(await self._arun(keys, argv, meta), cost)

    # -- administration -----------------------------------------------------

    def reset(self, key: Key) -> None:
        """Forget `key` (every rate). Raises StoreError if Redis fails."""
        keys = self.namer.keys(key)
        try:
            self.conn.sync_client().delete(*keys)
        except _STORE_ERRORS as exc:
            raise StoreError(f"Redis reset failed: {exc}") from exc

    async def areset(self, key: Key) -> None:
        keys = self.namer.keys(key)
        try:
            client = self.conn.async_client()
            if client is None:
                await asyncio.to_thread(self.conn.sync_client().delete, *keys)
            else:
                await client.delete(*keys)
        except _STORE_ERRORS as exc:
            raise StoreError(f"Redis reset failed: {exc}") from exc

    def _scan_delete(self, client: Any) -> int:
        batch: list[bytes] = []
        n = 0
        for k in client.scan_iter(match=self.namer.pattern, count=1000):
            batch.append(k)
            if len(batch) >= 500:
                n += self._unlink(client, batch)
                batch = []
        if batch:
            n += self._unlink(client, batch)
        return n

    def _unlink(self, client: Any, batch: list[bytes]) -> int:
        if self.conn.cluster:  # one slot at a time
            return sum(int(client.unlink(k)) for k in batch)
        return int(client.unlink(*batch))

    def clear(self) -> None:
        """Forget every key of this limiter (namespace and algorithm)."""
        try:
            self._scan_delete(self.conn.sync_client())
        except _STORE_ERRORS as exc:
            raise StoreError(f"Redis clear failed: {exc}") from exc

    async def aclear(self) -> None:
        try:
            client = self.conn.async_client()
            if client is None:
                await asyncio.to_thread(self._scan_delete, self.conn.sync_client())
                return
            batch: list[bytes] = []
            async for k in client.scan_iter(match=self.namer.pattern, count=1000):
                batch.append(k)
            for i in range(0, len(batch), 500):
                chunk = batch[i : i + 500]
                if self.conn.cluster:
                    for k in chunk:
                        await client.unlink(k)
                else:
                    await client.unlink(*chunk)
        except _STORE_ERRORS as exc:
            raise StoreError(f"Redis clear failed: {exc}") from exc

    def stats(self) -> dict[str, int]:
        """This process's counts, the breaker, and the keys in Redis (-1 if
        Redis cannot be reached; counting scans the namespace)."""
        active = -1
        try:
            if self.conn.breaker.state != OPEN:
                active = sum(
                    1
                    for _ in self.conn.sync_client().scan_iter(match=self.namer.pattern, count=1000)
                )
        except (ConfigError, *_STORE_ERRORS):
            active = -1
        br = self.conn.breaker
        return {
            "allowed": self._allowed,
            "denied": self._denied,
            "fallbacks": self._fallbacks,
            "errors": self._errors,
            "breaker_open": 1 if br.state == OPEN else 0,
            "breaker_trips": br.trips,
            "active_keys": active,
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.conn.owned:
                _release_connection(self.conn)

    async def aclose(self) -> None:
        await self.conn.aclose()
        self.close()

    def __repr__(self) -> str:
        where = (
            self.conn.parsed.url
            if self.conn.parsed
            else type(self.conn._sync or self.conn._user_async).__name__
        )
        return f"<RedisBackend {self.spec.algorithm} {list(map(str, self.rates))} on {where}>"


def _secret(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes) or len(value) > 64:
        raise ConfigError("key_secret must be str or bytes of at most 64 bytes")
    return value


def _split_options(options: dict[str, Any], url_options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - _KEYWORD_OPTIONS
    if unknown:
        raise ConfigError(
            f"unknown option(s) {sorted(unknown)} for the Redis store; known: "
            f"{', '.join(sorted(_KEYWORD_OPTIONS))}"
        )
    opts: dict[str, Any] = dict(url_options)
    opts.update(options)
    timeout = opts.get("timeout", DEFAULT_TIMEOUT)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ConfigError(f"timeout must be seconds > 0 or None, got {timeout!r}")
    opts["timeout"] = timeout
    opts.setdefault("connect_timeout", None)
    opts.setdefault("breaker_threshold", DEFAULT_BREAKER_THRESHOLD)
    opts.setdefault("breaker_cooldown", DEFAULT_BREAKER_COOLDOWN)
    opts.setdefault("max_connections", DEFAULT_MAX_CONNECTIONS)
    opts.setdefault("scripting", "auto")
    if opts["scripting"] not in ("auto", "function", "eval"):
        raise ConfigError(f"scripting must be auto, function or eval, got {opts['scripting']!r}")
    mc = opts["max_connections"]
    if isinstance(mc, bool) or not isinstance(mc, int) or mc < 1:
        raise ConfigError(f"max_connections must be an int >= 1, got {mc!r}")
    client_options = opts.get("client_options") or {}
    if not isinstance(client_options, dict):
        raise ConfigError("client_options must be a dict of redis-py keyword arguments")
    opts["client_options"] = client_options
    try:  # validate now, not on first use
        CircuitBreaker(opts["breaker_threshold"], opts["breaker_cooldown"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return opts


def open_redis(url: str, spec: LimitSpec, **options: Any) -> RedisBackend:
    """The factory of every Redis URL scheme (registered below)."""
    parsed = parse_url(url)
    opts = _split_options(options, parsed.options)
    # unknown query options: an error now, not on first use
    if parsed.kind in ("sentinel", "cluster"):
        _extra_query(parsed)
    else:
        _check_redis_query(parsed)
    conn = _shared_connection(parsed, opts)
    try:
        if parsed.kind != "cluster":
            conn.sync_client()  # builds the client (no I/O): bad options fail now
        return RedisBackend(conn, spec, opts)
    except BaseException:
        _release_connection(conn)
        raise


def from_client(client: Any, spec: LimitSpec, **options: Any) -> RedisBackend:
    """A backend on an existing redis.Redis, redis.asyncio.Redis or
    RedisCluster client (its own timeouts apply), or sharing the connection
    of another RedisBackend (so that check_all can group them)."""
    if isinstance(client, RedisBackend):
        base = client
        if "timeout" in options or "client_options" in options:
            raise ConfigError(
                "a limiter sharing another's Redis store shares its connection options"
            )
        merged: dict[str, Any] = {
            "plain_keys": base.namer._plain,
            "key_secret": base.namer._key_secret or None,
        }
        merged.update(options)
        if base.conn.owned:
            with _connections_lock:
                base.conn.users += 1
        return RedisBackend(base.conn, spec, _split_options(merged, {}))
    if not (hasattr(client, "execute_command") and hasattr(client, "scan_iter")):
        raise ConfigError(f"not a Redis client: {type(client).__name__}")
    opts = _split_options(options, {})
    if opts.get("client_options") or "timeout" in options:
        raise ConfigError(
            "timeout and client_options apply to clients floodwall creates; set them on your client"
        )
    conn = Connection(
        client=client,
        breaker=CircuitBreaker(opts["breaker_threshold"], opts["breaker_cooldown"]),
        scripting=opts["scripting"],
    )
    return RedisBackend(conn, spec, opts)


for _scheme in (
    "redis",
    "rediss",
    "redis+unix",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
):
    register(_scheme, open_redis)
