"""The remote store: a ``floodwall serve`` server as a store, ``https://host:7878``.

Every check is one POST of the limit's spec (algorithm, exact rates,
namespace), the key and the cost to ``/v1/check`` (``/v1/check-all`` for a
group), over keep-alive pooled connections of httpx (``floodwall[remote]``):
a synchronous ``httpx.Client`` and a native ``httpx.AsyncClient`` (one per
event loop). The server decides with its own clock and table; this side
rebuilds the :class:`~floodwall.Decision`. Failures (unreachable, timeout,
5xx, a wrong token) go through the shared failure policy and circuit
breaker (:mod:`floodwall.stores.failure`); a caller's mistake (a bad cost,
a cost above the capacity) is raised before the server is asked, and a
request the server calls malformed is a :class:`~floodwall.ConfigError`.

Options (URL query or keywords): ``token`` (prefer ``token_file`` or the
``FLOODWALL_SERVER_TOKEN`` variable), ``token_file``, ``timeout``,
``connect_timeout``, ``breaker_threshold``, ``breaker_cooldown``,
``max_connections``, ``verify`` (a CA bundle path, or false on loopback
only), ``insecure_http`` (allow ``http://`` beyond loopback), ``prefix``
(put before every namespace: applications sharing a server stay apart). Invariant:
the token never travels in clear text to a non-loopback host unless
``insecure_http`` says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any

from floodwall._native import Decision
from floodwall.errors import ConfigError, CostError, StoreError
from floodwall.rates import Rate
from floodwall.stores import LimitSpec, register
from floodwall.stores.breaker import CircuitBreaker
from floodwall.stores.failure import FailurePolicy, FailureSettings
from floodwall.stores.network import Key, NetworkBackend, network_capabilities
from floodwall.stores.url import Options, StoreURL

__all__ = ["CAPABILITIES", "RemoteBackend", "open_remote"]

#: What the remote store is.
CAPABILITIES = network_capabilities("remote", durable=False)

_OPTIONS = frozenset({
    "token", "token_file", "timeout", "connect_timeout", "breaker_threshold",
    "breaker_cooldown", "max_connections", "verify", "insecure_http", "fail", "on_error",
    "prefix",
})
_DEFAULT_MAX_CONNECTIONS = 32
#: A request's head and body go out as two writes: without TCP_NODELAY the
#: body waits for the server's delayed ACK (about 40 ms on Linux).
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class _ServerAnswer(Exception):
    """A non-200 answer that is the server's failure (5xx, 401...)."""


def _is_loopback(host: str) -> bool:
    from floodwall.server.main import is_loopback

    return is_loopback(host)


class Connection:
    """The pooled clients and the breaker of one server (shared by every
    backend opened with the same URL and options)."""

    def __init__(self, base: str, token: str | None, settings: FailureSettings,
                 max_connections: int, verify: Any) -> None:
        self.base = base
        self.settings = settings
        self.max_connections = max_connections
        self.verify = verify
        self.headers = {"content-type": "application/json"}
        if token is not None:
            self.headers["authorization"] = f"Bearer {token}"
        self.breaker = CircuitBreaker(settings.breaker_threshold or 0,
                                      settings.breaker_cooldown)
        self._lock = threading.Lock()
        self._sync: Any = None
        self._pid = os.getpid()
        self._async: dict[int, tuple[Any, Any]] = {}

    def breakers(self) -> list[CircuitBreaker]:
        """Every breaker of this connection (one: the server), for metrics."""
        return [self.breaker]

    def _timeout(self) -> Any:
        import httpx

        t = self.settings.timeout
        c = self.settings.connect_timeout or t
        return httpx.Timeout(t, connect=c, read=t, write=t, pool=t)

    def _limits(self) -> Any:
        import httpx

        return httpx.Limits(max_connections=self.max_connections,
                            max_keepalive_connections=self.max_connections)

    def sync_client(self) -> Any:
        client = self._sync
        if client is not None and self._pid == os.getpid():
            return client
        import httpx

        with self._lock:
            if self._sync is None or self._pid != os.getpid():
                # after a fork the parent's sockets are not ours to use
                self._pid = os.getpid()
                transport = httpx.HTTPTransport(verify=self.verify, limits=self._limits(),
                                                socket_options=_SOCKET_OPTIONS)
                self._sync = httpx.Client(base_url=self.base, headers=self.headers,
                                          timeout=self._timeout(), transport=transport)
            return self._sync

    def async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._async.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1]
        import httpx

        transport = httpx.AsyncHTTPTransport(verify=self.verify, limits=self._limits(),
                                             socket_options=_SOCKET_OPTIONS)
        client = httpx.AsyncClient(base_url=self.base, headers=self.headers,
                                   timeout=self._timeout(), transport=transport)
        with self._lock:
            self._async = {k: v for k, v in self._async.items() if not v[0].is_closed()}
            self._async[id(loop)] = (loop, client)
        return client

    def close(self) -> None:
        with self._lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._async.pop(id(loop), None)
        if entry is not None:
            await entry[1].aclose()
        self.close()


_connections: dict[tuple[Any, ...], Connection] = {}
_connections_lock = threading.Lock()


def _rates_json(rates: Sequence[Rate]) -> list[dict[str, int]]:
    return [{"amount": r.amount, "period_ns": r.period_ns, "burst": r.burst} for r in rates]


#: Longest key sent as is (the server's bound); a longer one is sent as its
#: SHA-256 digest, so every length works and the same key stays the same key.
MAX_KEY_BYTES = 1024


def _key_field(key: Key) -> dict[str, str]:
    """The JSON fields naming ``key``: ``key`` when it is UTF-8 text,
    ``key_b64`` for other bytes (a str and its UTF-8 bytes are one key, as
    on every store)."""
    if isinstance(key, str):
        data = key.encode("utf-8", "surrogatepass")
    elif isinstance(key, bytes):
        data = key
    else:
        from floodwall.errors import KeyTypeError

        raise KeyTypeError(f"key must be str or bytes, not {type(key).__name__}")
    if len(data) > MAX_KEY_BYTES:
        import hashlib

        data = b"\x00floodwall-sha256:" + hashlib.sha256(data).digest()
    try:
        return {"key": data.decode("utf-8")}
    except UnicodeDecodeError:
        import base64

        return {"key_b64": base64.b64encode(data).decode("ascii")}


class RemoteBackend(NetworkBackend):
    """A limit spec served by a floodwall server (see docs/server.md)."""

    capabilities = CAPABILITIES
    store_name = "floodwall server"
    share_hint = "store=<first limiter>.store"

    def __init__(self, conn: Connection, spec: LimitSpec, fail: str | None = None,
                 on_error: Any = None, prefix: str = "") -> None:
        if not spec.rates:
            raise ConfigError("a limit needs at least one rate")
        failure = FailurePolicy(fail or spec.fail, on_error or spec.on_error,
                                label=f"floodwall server {conn.base}")
        # the server checks each rate; a cost above a capacity is refused
        # here naming the smallest capacity
        capacities = sorted(((r.burst, r) for r in spec.rates), key=lambda c: c[0])
        super().__init__(conn, spec, failure, capacities)
        self._limit = {"rate": _rates_json(self.rates), "algorithm": spec.algorithm,
                       "namespace": prefix + spec.namespace}
        self.prefix = prefix
        self._prefix = json.dumps(self._limit)[:-1].encode() + b", "

    def bind(self, spec: LimitSpec, **options: Any) -> RemoteBackend:
        """Another limit on this server and connection (so check_all groups them)."""
        unknown = set(options) - {"fail", "on_error"}
        if unknown:
            raise ConfigError(
                f"a limiter sharing another's remote store shares its connection options; "
                f"unexpected {sorted(unknown)}"
            )
        return RemoteBackend(self.conn, spec, options.get("fail"), options.get("on_error"),
                             self.prefix)

    # -- requests

    def _body(self, key: Key, cost: int) -> bytes:
        """The JSON of one check: the limit's part is encoded once."""
        if isinstance(key, str) and len(key) <= 256 and key.isascii():
            field = b'"key": ' + json.dumps(key).encode()
        else:
            ((name, value),) = _key_field(key).items()
            field = f'"{name}": {json.dumps(value)}'.encode()
        tail = b', "cost": %d' % cost
        now = self._now()
        if now is not None:
            tail += b', "now_ns": %d' % now
        return self._prefix + field + tail + b"}"

    def _parse(self, status: int, content: bytes) -> Any:
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        if status == 200 and isinstance(data, dict):
            return data
        error = data.get("error") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        text = f"{message or content[:200]!r} (HTTP {status})"
        if status in (400, 404) and error == "cost":
            raise CostError(str(message))
        if status in (400, 403, 404) and error not in (None, "store"):
            raise ConfigError(f"the floodwall server refused the request: {text}")
        raise _ServerAnswer(f"the floodwall server answered {text}")

    def _decision(self, data: dict[str, Any], parts: Sequence[RemoteBackend] = ()) -> Decision:
        try:
            d = data["decision"]
            index = d["rate_index"]
            denied_part = d["denied_part"]
            owner = self
            if denied_part is not None:
                owner = parts[denied_part]
            elif parts:
                owner = next((p for p in parts if d["rate"] in map(str, p.rates)), self)
            rate = owner.rates[index] if index is not None else None
            return Decision(
                bool(d["allowed"]), int(d["limit"]), int(d["remaining"]),
                int(d["retry_after_ns"]), int(d["reset_after_ns"]), int(d["delay_ns"]),
                rate=rate, denied_part=denied_part,
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise _ServerAnswer(f"the floodwall server's answer is malformed: {exc}") from None

    def _answered(self, data: dict[str, Any], parts: Sequence[RemoteBackend],
                  breaker: CircuitBreaker) -> Decision:
        """The server answered: its decision, or a failure if it is malformed."""
        breaker.success()
        try:
            return self._decision(data, parts)
        except _ServerAnswer as exc:
            return self._failed(exc, self.rates[0], breaker)

    def _post(self, path: str, content: bytes,
              parts: Sequence[RemoteBackend] = ()) -> Decision:
        import httpx

        breaker = self.conn.breaker
        if breaker._state and not breaker.allow():
            return self._skipped(breaker, self.rates[0])
        try:
            r = self.conn.sync_client().post(path, content=content)
            data = self._parse(r.status_code, r.content)
        except (httpx.HTTPError, OSError, _ServerAnswer) as exc:
            return self._failed(exc, self.rates[0], breaker)
        return self._answered(data, parts, breaker)

    async def _apost(self, path: str, content: bytes,
                     parts: Sequence[RemoteBackend] = ()) -> Decision:
        import httpx

        breaker = self.conn.breaker
        if breaker._state and not breaker.allow():
            return self._skipped(breaker, self.rates[0])
        try:
            client = self.conn.async_client()
            timeout = self.conn.settings.timeout
            async with asyncio.timeout(timeout):
                r = await client.post(path, content=content)
            data = self._parse(r.status_code, r.content)
        except (httpx.HTTPError, OSError, TimeoutError, _ServerAnswer) as exc:
            return self._failed_waiting(exc, self.rates[0], breaker)
        return self._answered(data, parts, breaker)

    # -- checks

    def check(self, key: Key, cost: int = 1) -> Decision:
        """Decide ``cost`` units for ``key`` on the server."""
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = self._checked_cost(cost)
        return self._count(self._post("/v1/check", self._body(key, cost)), cost)

    async def acheck(self, key: Key, cost: int = 1) -> Decision:
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = self._checked_cost(cost)
        return self._count(await self._apost("/v1/check", self._body(key, cost)), cost)

    # -- groups

    def _group(self, parts: Sequence[tuple[Any, ...]],
               cost: int) -> tuple[dict[str, Any], list[RemoteBackend], int]:
        items: list[dict[str, Any]] = []
        owners: list[RemoteBackend] = []
        units = 0
        for backend, key, n in self._members(parts, cost):
            items.append({**backend._limit, **_key_field(key), "cost": n})
            owners.append(backend)
            units = max(units, n)
        body: dict[str, Any] = {"parts": items}
        if self.spec.clock is not None:
            body["now_ns"] = self._now()
        return body, owners, units

    def _member(self, part: tuple[Any, ...], cost: int) -> tuple[Any, Key, int]:
        # the part's store is checked before its cost, here
        backend = part[0]
        self._same_store(backend)
        return backend, part[1], backend._checked_cost(part[2] if len(part) == 3 else cost)

    def check_group(self, parts: Sequence[tuple[Any, ...]], cost: int = 1) -> Decision:
        """All-or-nothing over several (backend, key[, cost]) parts, in one request."""
        body, owners, units = self._group(parts, cost)
        return self._count(self._post("/v1/check-all", json.dumps(body).encode(), owners),
                           units)

    async def acheck_group(self, parts: Sequence[tuple[Any, ...]], cost: int = 1) -> Decision:
        body, owners, units = self._group(parts, cost)
        content = json.dumps(body).encode()
        return self._count(await self._apost("/v1/check-all", content, owners), units)

    # -- administration

    def _reset_body(self, key: Key) -> dict[str, Any]:
        body: dict[str, Any] = {**self._limit, **_key_field(key)}
        if self.spec.clock is not None:
            body["now_ns"] = self._now()
        return body

    def reset(self, key: Key) -> bool:
        """Forget ``key`` on the server; StoreError if it cannot be reached."""
        import httpx

        try:
            r = self.conn.sync_client().post("/v1/reset", content=json.dumps(self._reset_body(key)))
            return bool(self._parse(r.status_code, r.content)["reset"])
        except (httpx.HTTPError, OSError, _ServerAnswer, KeyError, TypeError) as exc:
            raise StoreError(f"remote reset failed: {exc}") from exc

    async def areset(self, key: Key) -> bool:
        import httpx

        try:
            client = self.conn.async_client()
            async with asyncio.timeout(self.conn.settings.timeout):
                r = await client.post("/v1/reset", content=json.dumps(self._reset_body(key)))
            return bool(self._parse(r.status_code, r.content)["reset"])
        except (httpx.HTTPError, OSError, TimeoutError, _ServerAnswer, KeyError,
                TypeError) as exc:
            raise StoreError(f"remote reset failed: {exc}") from exc

    def _admin(self, path: str, body: dict[str, Any]) -> Any:
        import httpx

        try:
            r = self.conn.sync_client().post(path, content=json.dumps(body))
            return self._parse(r.status_code, r.content)
        except (httpx.HTTPError, OSError, _ServerAnswer) as exc:
            raise StoreError(f"remote {path} failed: {exc}") from exc

    def clear(self) -> None:
        """Forget every key of the server's table, as ``clear()`` does on a
        table: refused (ConfigError) unless the server runs with
        ``--allow-clear``."""
        self._admin("/v1/clear", {})

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    def _store_stats(self) -> dict[str, int]:
        """The server's table counters (none if it cannot be reached)."""
        body: dict[str, Any] = {}
        if self.spec.clock is not None:
            body["now_ns"] = self._now()
        try:
            table = self._admin("/v1/stats", body)["stats"]
            return {k: int(v) for k, v in table.items()}
        except (StoreError, KeyError, TypeError, ValueError):
            return {}

    def close(self) -> None:
        """The pooled connections are shared by every backend of this server
        and stay open until the process ends (or :meth:`aclose`)."""
        self._closed = True

    def __repr__(self) -> str:
        rates = list(map(str, self.rates))
        return f"<RemoteBackend {self.spec.algorithm} {rates} on {self.conn.base}>"


def open_remote(url: StoreURL, spec: LimitSpec, **options: Any) -> RemoteBackend:
    """The factory of ``http://`` and ``https://``."""
    try:
        import httpx  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the {url.scheme}:// store needs httpx: pip install 'floodwall[remote]' ({exc})"
        ) from None
    from urllib.parse import urlsplit

    opts = Options(url, options, known=_OPTIONS)
    parts = urlsplit(url.raw)
    host = parts.hostname or ""
    if not host:
        raise ConfigError(f"the remote store URL {url.text!r} names no host")
    if parts.path not in ("", "/"):
        raise ConfigError(f"the remote store URL {url.text!r} must not have a path")
    if parts.username or parts.password:
        raise ConfigError("give the token as token_file= or $FLOODWALL_SERVER_TOKEN, "
                          "not in the URL")
    insecure = opts.bool_option("insecure_http", False)
    if url.scheme == "http" and not insecure and not _is_loopback(host):
        raise ConfigError(
            f"http:// to {host} would send the token in clear text: use https://, or "
            "insecure_http=true on a network you trust"
        )
    token = opts.raw("token")
    token_file = opts.raw("token_file")
    if token is not None and not isinstance(token, str):
        raise ConfigError("token must be a str")
    if token is None:
        from floodwall.server.auth import read_token

        token = read_token(token_file)
    timeout = opts.seconds_option("timeout", None)
    connect = opts.seconds_option("connect_timeout", None)
    threshold = opts.int_option("breaker_threshold", None, 0, 1_000_000)
    cooldown = opts.seconds_option("breaker_cooldown", None)
    given = {k: v for k, v in (("timeout", timeout), ("connect_timeout", connect),
                                ("breaker_threshold", threshold),
                                ("breaker_cooldown", cooldown)) if v is not None}
    settings = FailureSettings.from_options(given)
    max_conn = opts.int_option("max_connections", _DEFAULT_MAX_CONNECTIONS, 1, 10_000)
    verify: Any = True
    if opts.has("verify"):
        raw = opts.raw("verify")
        if isinstance(raw, bool) or (isinstance(raw, str) and raw.lower() in ("0", "false")):
            verify = bool(raw) if isinstance(raw, bool) else False
            if not verify and not _is_loopback(host):
                raise ConfigError("verify=false is allowed on loopback only")
        elif isinstance(raw, str) and raw:
            import ssl

            verify = ssl.create_default_context(cafile=raw)
        else:
            raise ConfigError(f"verify must be a CA bundle path or false, got {raw!r}")
    fail = opts.raw("fail")
    on_error = opts.raw("on_error")
    prefix = opts.raw("prefix", "")
    if not isinstance(prefix, str) or len(prefix) > 100:
        raise ConfigError("prefix must be a str of at most 100 characters")
    opts.finish()
    base = f"{url.scheme}://{parts.netloc}"
    import hashlib

    ident = (base, hashlib.sha256((token or "").encode()).hexdigest(), settings, max_conn,
             id(verify) if not isinstance(verify, bool) else verify)
    with _connections_lock:
        conn = _connections.get(ident)
        if conn is None:
            conn = Connection(base, token, settings, max_conn or _DEFAULT_MAX_CONNECTIONS,
                              verify)
            _connections[ident] = conn
    return RemoteBackend(conn, spec, fail, on_error, prefix)


register("http", open_remote)
register("https", open_remote)
