"""Connections to one Redis deployment, and their circuit breakers.

A :class:`Connection` holds the clients (one sync client, one asyncio client
per event loop) of one deployment, shared by every backend opened with the
same URL and options (which is what lets ``check_all`` group them). It owns
the circuit breakers: one for a single server or a Sentinel-managed master,
and **one per node** on Redis Cluster, so that a hung master neither slows
nor trips the others. Cluster clients are built without retries: a
command that timed out is never sent again.

Async waits are bounded: a check's whole wait (a pooled connection
included) is one deadline (:class:`floodwall.stores.deadline.Deadline`),
and when a breaker opens, the async calls already waiting on that
breaker's server stop waiting at once (:meth:`Connection.deadline`).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import redis
import redis.asyncio

from floodwall.errors import ConfigError
from floodwall.stores.breaker import CircuitBreaker
from floodwall.stores.deadline import SUPPORTED as _HAS_DEADLINE
from floodwall.stores.deadline import Deadline, DeadlineTimer
from floodwall.stores.failure import FailureSettings
from floodwall.stores.redis.calls import ScriptMode
from floodwall.stores.redis.pool import CheckPool
from floodwall.stores.redis.url import DEFAULT_MAX_CONNECTIONS, RedisURL

__all__ = ["Connection", "is_async_client", "is_cluster_client", "release", "shared"]


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


def _no_retry(asynchronous: bool) -> Any:
    """A cluster client's retry policy: none (a timed-out command is not
    sent again, to the same node or after a topology refresh)."""
    from redis.backoff import NoBackoff

    if asynchronous:
        from redis.asyncio.retry import Retry as AsyncRetry

        return AsyncRetry(NoBackoff(), 0)
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def is_async_client(client: object) -> bool:
    return isinstance(client, redis.asyncio.Redis) or type(client).__module__.startswith(
        "redis.asyncio"
    )


def is_cluster_client(client: object) -> bool:
    return hasattr(client, "nodes_manager") and hasattr(client, "get_nodes")


class Connection:
    """The clients and breakers of one Redis deployment (see module doc)."""

    def __init__(
        self,
        *,
        parsed: RedisURL | None = None,
        client: Any = None,
        settings: FailureSettings | None = None,
        client_options: Mapping[str, Any] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        scripting: str = "auto",
    ) -> None:
        self.parsed = parsed
        self.settings = settings or FailureSettings()
        self.timeout = self.settings.timeout
        self.connect_timeout = (
            self.timeout if self.settings.connect_timeout is None else self.settings.connect_timeout
        )
        self.max_connections = max_connections
        self.scripts = ScriptMode(scripting)
        self.client_options = dict(client_options or {})
        self.breaker = self._new_breaker()
        self._node_breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()
        self._sync: Any = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        #: async calls waiting now, per breaker: their deadlines, to expire
        #: at once when that breaker opens
        self._waiting: dict[int, set[Deadline]] = {}
        #: the deadline timer of each loop (its timer holds it weakly), and
        #: that of the loop last used, looked up first
        self._timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeadlineTimer] = (
            weakref.WeakKeyDictionary()
        )
        self._timer: DeadlineTimer | None = None
        self._user_async: Any = None
        self.owned = client is None
        self.cluster = False
        if client is not None:
            if is_async_client(client):
                self._user_async = client
            else:
                self._sync = client
            self.cluster = is_cluster_client(client)
        elif parsed is not None:
            self.cluster = parsed.kind == "cluster"
        self.users = 0

    # -- breakers -------------------------------------------------------------

    def _new_breaker(self) -> CircuitBreaker:
        s = self.settings
        return CircuitBreaker(s.breaker_threshold, s.breaker_cooldown)

    def route(self, client: Any, key: bytes) -> tuple[CircuitBreaker, Any]:
        """(breaker, target node) for a call on ``key``. On a cluster: the
        node serving its slot, and that node's breaker; the call is sent to
        that node directly (redis-py would otherwise ask its default node
        for the keys of every FCALL: a second round trip, and one hung node
        stalling every check). Until the topology is known, or off a
        cluster: the connection's breaker and no target."""
        if not self.cluster:
            return self.breaker, None
        try:
            from redis.crc import key_slot

            node = client.nodes_manager.get_node_from_slot(key_slot(key))
            name = node.name
        except Exception:  # topology not known yet: the cluster as a whole
            return self.breaker, None
        breaker = self._node_breakers.get(name)
        if breaker is None:
            with self._lock:
                breaker = self._node_breakers.setdefault(name, self._new_breaker())
        return breaker, node

    def breakers(self) -> list[CircuitBreaker]:
        return [self.breaker, *self._node_breakers.values()]

    def tripped(self, breaker: CircuitBreaker) -> None:
        """A breaker just opened: async calls waiting on it stop waiting."""
        waiting = self._waiting.pop(id(breaker), None)
        if not waiting:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for deadline in list(waiting):
            loop = deadline.loop
            if loop.is_closed():
                continue
            if running is loop:
                deadline.expire()
            else:
                loop.call_soon_threadsafe(deadline.expire)

    def deadline(
        self, breaker: CircuitBreaker, loop: asyncio.AbstractEventLoop
    ) -> Deadline | None:
        """The deadline of one async call on ``loop`` (the running one): the
        whole timeout (waiting for a pooled connection included), expired
        early when ``breaker`` opens; the caller ends it with :meth:`done`.
        None when there is no timeout (or on Python < 3.11, where the pool's
        and the sockets' timeouts bound each step)."""
        timeout = self.timeout
        if timeout is None or not _HAS_DEADLINE:
            return None
        timer = self._timer
        if timer is None or timer._loop() is not loop:
            timer = self._timers.get(loop)
            if timer is None:
                timer = self._timers[loop] = DeadlineTimer(loop, timeout)
            self._timer = timer
        deadline = Deadline(loop, timeout, timer)
        waiting = self._waiting.get(id(breaker))
        if waiting is None:
            waiting = self._waiting.setdefault(id(breaker), set())
        waiting.add(deadline)
        return deadline

    def done(self, breaker: CircuitBreaker, deadline: Deadline) -> bool:
        """The call bounded by ``deadline`` is over (called in the step it
        ended in): True when the deadline cancelled it (see
        :meth:`Deadline.end`)."""
        waiting = self._waiting.get(id(breaker))
        if waiting is not None:
            waiting.discard(deadline)
        return deadline.end()

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

    def _make_sync(self, p: RedisURL) -> Any:
        kw = self._kw()
        try:
            if p.kind in ("redis", "unix"):
                kw.setdefault("retry", _sync_retry())
                return redis.Redis.from_url(p.redis_url(), **kw)
            if p.kind == "sentinel":
                from redis.sentinel import Sentinel

                kw.setdefault("retry", _sync_retry())
                sentinel = Sentinel(  # type: ignore[no-untyped-call]
                    p.hosts, sentinel_kwargs=p.sentinel_kwargs(kw), **p.auth(), **kw
                )
                return sentinel.master_for(p.service, db=p.db)  # type: ignore[no-untyped-call]
            from redis.cluster import ClusterNode, RedisCluster

            kw.setdefault("retry", _no_retry(False))
            return RedisCluster(
                startup_nodes=[ClusterNode(h, port) for h, port in p.hosts],  # type: ignore[no-untyped-call]
                ssl=p.ssl,
                **p.auth(),
                **kw,
            )
        except TypeError as exc:
            raise ConfigError(f"bad option for the Redis client: {exc}") from None

    def async_client(self, loop: asyncio.AbstractEventLoop | None = None) -> Any:
        """The redis.asyncio client for ``loop`` (default: the running one);
        None when only a synchronous user client exists (callers then use a
        thread)."""
        if self._user_async is not None:
            return self._user_async
        if self.parsed is None:
            return None
        if loop is None:
            loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._make_async(self.parsed)
            self._async[loop] = client
        return client

    def _make_async(self, p: RedisURL) -> Any:
        kw = self._kw()
        try:
            if p.kind in ("redis", "unix"):
                kw.setdefault("retry", _async_retry())
                # a bounded pool where tasks queue for a free connection, so
                # that a burst of tasks never opens thousands of sockets; the
                # wait for one is part of the check's deadline
                pool = CheckPool.from_url(
                    p.redis_url(),
                    max_connections=self.max_connections,
                    # the check's deadline bounds the wait (Python >= 3.11)
                    timeout=None if _HAS_DEADLINE else self.timeout,
                    **kw,
                )
                return redis.asyncio.Redis.from_pool(pool)
            if p.kind == "sentinel":
                from redis.asyncio.sentinel import Sentinel

                kw.setdefault("retry", _async_retry())
                sentinel = Sentinel(  # type: ignore[no-untyped-call]
                    p.hosts, sentinel_kwargs=p.sentinel_kwargs(kw), **p.auth(), **kw
                )
                return sentinel.master_for(p.service, db=p.db)
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            kw.setdefault("retry", _no_retry(True))
            return RedisCluster(
                startup_nodes=[ClusterNode(h, port) for h, port in p.hosts],
                ssl=p.ssl,
                **p.auth(),
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


# Backends opened with the same URL and options share one Connection.
_connections: dict[tuple[Any, ...], Connection] = {}
_connections_lock = threading.Lock()


def shared(parsed: RedisURL, key: Sequence[Any], **kwargs: Any) -> Connection:
    """The Connection for this URL and these options (made on first use)."""
    full_key = (parsed.url, *key)
    with _connections_lock:
        conn = _connections.get(full_key)
        if conn is None:
            conn = Connection(parsed=parsed, **kwargs)
            _connections[full_key] = conn
        conn.users += 1
    return conn


def acquire(conn: Connection) -> None:
    """One more backend uses ``conn``."""
    with _connections_lock:
        conn.users += 1


def release(conn: Connection) -> None:
    """A backend stopped using ``conn``; the last one closes it."""
    with _connections_lock:
        conn.users -= 1
        if conn.users > 0:
            return
        for key, value in list(_connections.items()):
            if value is conn:
                del _connections[key]
    conn.close()
