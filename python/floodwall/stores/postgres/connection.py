"""Connections of the PostgreSQL store: pools, deadlines, the breaker.

A :class:`Connection` is what the backends of one store share: a sync
``psycopg_pool.ConnectionPool`` (built on first use), a :class:`LoopPool`
of async connections per event loop (never a thread pool), or the user's
own psycopg connection or pool (sync or async); the schema check, done once; and
the circuit breaker of the server. Connections floodwall opens are in
autocommit mode (each check is one statement, so one transaction), carry
no session state (PgBouncer's transaction mode is fine), and enforce the
check's deadline on the client side too: a call that has not answered in
time is abandoned and its connection closed. Invariant: a connection that
failed or timed out is never handed out again.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from floodwall.errors import ConfigError, StoreError
from floodwall.stores.breaker import CircuitBreaker
from floodwall.stores.failure import FailureSettings
from floodwall.stores.postgres.schema import Layout, aensure_schema, ensure_schema

__all__ = ["Connection", "acquire", "release", "shared"]

T = TypeVar("T")

# Seconds libpq waits to connect when no deadline is configured.
_CONNECT_DEFAULT = 10.0


def _timed_classes(deadline: float | None) -> tuple[type, type]:
    """psycopg connection classes whose every wait for the server ends after
    ``deadline`` seconds (psycopg's own wait takes a timeout; >= 3.3), and
    which keep the cursor checks run on."""
    import psycopg

    class TimedConnection(psycopg.Connection):
        _check_cursor: Any = None

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            return super().wait(gen, interval, deadline if timeout is None else timeout)

        def check_cursor(self) -> Any:
            """The cursor checks run on, made once (one caller at a time
            holds a pooled connection; a new cursor per call costs more
            than the statement's parameters)."""
            cur = self._check_cursor
            if cur is None or cur.closed:
                cur = self._check_cursor = self.cursor()
            return cur

    class AsyncTimedConnection(psycopg.AsyncConnection):
        _check_cursor: Any = None

        async def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            return await super().wait(gen, interval, deadline if timeout is None else timeout)

        def check_cursor(self) -> Any:
            cur = self._check_cursor
            if cur is None or cur.closed:
                cur = self._check_cursor = self.cursor()
            return cur

    return TimedConnection, AsyncTimedConnection


class Connection:
    """One PostgreSQL store: pools (or the user's connection), the schema
    check, and the breaker."""

    def __init__(
        self,
        conninfo: str | None,
        layout: Layout,
        settings: FailureSettings,
        *,
        prepare_threshold: int | None = 5,
        max_connections: int = 16,
        create_schema: bool = True,
        user: Any = None,
        label: str = "",
    ) -> None:
        self.conninfo = conninfo
        self.layout = layout
        self.settings = settings
        self.prepare_threshold = prepare_threshold
        self.max_connections = max_connections
        self.create_schema = create_schema
        self.user = user
        self.label = label
        self.owned = conninfo is not None
        self.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown)
        self.users = 1  # backends using it (acquire, release)
        self.key: Any = None
        self._lock = threading.Lock()
        self._pool: Any = None
        self._apools: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._schema_ok = False
        self._user_lock = threading.Lock()  # one caller at a time on a user's connection
        self._classes: tuple[type, type] | None = None

    # -- options ------------------------------------------------------------

    @property
    def timeout(self) -> float | None:
        return self.settings.timeout

    @property
    def prepares(self) -> bool:
        """Whether the connections used prepare statements (psycopg's
        ``prepare_threshold`` is not None): the lean statement pays off
        only prepared, its planning costing more than the check function's
        call. On a user's pool, read from the pool's connection keywords
        (psycopg's default, 5, when unset)."""
        if self.owned:
            return self.prepare_threshold is not None
        user = self.user
        if hasattr(user, "prepare_threshold"):
            return user.prepare_threshold is not None
        kwargs = getattr(user, "kwargs", None) or {}
        return kwargs.get("prepare_threshold", 5) is not None

    @property
    def lock_ms(self) -> int:
        """The server-side lock_timeout of a check (0: none of ours): 80% of
        the timeout, so that the server gives up a lock wait (and the check
        consumes nothing) before the client abandons the call."""
        t = self.settings.timeout
        return 0 if t is None else max(1, int(t * 800))

    def _kwargs(self) -> dict[str, Any]:
        connect = self.settings.connect_timeout or self.settings.timeout or _CONNECT_DEFAULT
        return {
            "autocommit": True,
            "prepare_threshold": self.prepare_threshold,
            # libpq counts whole seconds, and at least 2
            "connect_timeout": max(2, int(-(-connect // 1))),
        }

    def _pool_wait(self) -> float:
        """Seconds a caller waits for a pooled connection."""
        t = self.settings.connect_timeout or self.settings.timeout
        return t if t is not None else _CONNECT_DEFAULT

    def _timed(self) -> tuple[type, type]:
        if self._classes is None:
            self._classes = _timed_classes(self.settings.timeout)
        return self._classes

    # -- sync ---------------------------------------------------------------

    def _sync_pool(self) -> Any:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    from psycopg_pool import ConnectionPool

                    p = ConnectionPool(
                        self.conninfo or "",
                        min_size=1,
                        max_size=self.max_connections,
                        kwargs=self._kwargs(),
                        connection_class=self._timed()[0],
                        timeout=self._pool_wait(),
                        open=False,
                        name=f"floodwall {self.label}",
                    )
                    p.open(wait=False)
                    self._pool = p
                pool = self._pool
        return pool

    def warm(self) -> None:
        """Open the sync pool (its first connection is made in the
        background: no wait here, no error here)."""
        if self.owned:
            self._sync_pool()

    def _take(self) -> tuple[Any, Any]:
        """(pool, a connection of it) for one call (sync; floodwall's own
        pool), the schema checked."""
        pool = self._pool or self._sync_pool()
        try:
            conn = pool.getconn()
        except Exception as exc:  # PoolTimeout, PoolClosed
            raise StoreError(f"no PostgreSQL connection in time: {exc}") from exc
        if not self._schema_ok:
            try:
                ensure_schema(conn, self.layout, create=self.create_schema)
            except BaseException as exc:
                self._give(pool, conn, exc)
                raise
            self._schema_ok = True
        return pool, conn

    def _give(self, pool: Any, conn: Any, exc: BaseException | None) -> None:
        """Hand ``conn`` back after a call that raised ``exc`` (None: it
        did not); a connection a psycopg error came through is closed, so
        that the pool replaces it."""
        import psycopg

        try:
            if isinstance(exc, psycopg.Error):
                self.schema_lost(exc)
                conn.close()
        finally:
            pool.putconn(conn)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on a connection taken for this one call
        (sync): what a check does, with no context manager in its way."""
        if not self.owned:
            with self.connection() as c:
                return fn(c, *args)
        pool, conn = self._take()
        try:
            out = fn(conn, *args)
        except BaseException as exc:
            self._give(pool, conn, exc)
            raise
        pool.putconn(conn)
        return out

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection for one call (sync); on an error the connection is
        closed, so that the pool replaces it."""
        if not self.owned:
            yield from self._user_connection()
            return
        pool, conn = self._take()
        try:
            yield conn
        except BaseException as exc:
            self._give(pool, conn, exc)
            raise
        pool.putconn(conn)

    def schema_lost(self, exc: BaseException) -> None:
        """After an error saying the tables or the function are gone (a
        restored or recreated database), check the schema again next time."""
        import psycopg

        if isinstance(exc, (psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedTable)):
            self._schema_ok = False

    def _user_connection(self) -> Iterator[Any]:
        import psycopg

        user = self.user
        if isinstance(user, psycopg.Connection):
            if not self._user_lock.acquire(timeout=self._pool_wait()):
                raise StoreError("the PostgreSQL connection stayed busy past the timeout")
            try:
                if not self._schema_ok:
                    ensure_schema(user, self.layout, create=self.create_schema)
                    self._schema_ok = True
                yield user
                if not user.autocommit and user.info.transaction_status != 0:
                    user.commit()  # a check is its own transaction
            finally:
                self._user_lock.release()
            return
        from psycopg_pool import ConnectionPool

        if not isinstance(user, ConnectionPool):
            raise ConfigError(
                "this PostgreSQL store was given an async connection or pool: use the async API"
            )
        with user.connection(timeout=self._pool_wait()) as conn:
            if not self._schema_ok:
                ensure_schema(conn, self.layout, create=self.create_schema)
                self._schema_ok = True
            yield conn

    # -- async --------------------------------------------------------------

    async def _async_pool(self) -> LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is None:
            pool = LoopPool(
                self.conninfo or "",
                self._kwargs(),
                self._timed()[1],
                self.max_connections,
            )
            self._apools[loop] = pool
        return pool

    async def aconnection(self) -> Any:
        """(connection, release coroutine function) for one async call."""
        import psycopg

        if not self.owned:
            user = self.user
            if isinstance(user, psycopg.AsyncConnection):
                if not self._schema_ok:
                    await aensure_schema(user, self.layout, create=self.create_schema)
                    self._schema_ok = True

                async def done_user(failed: bool) -> None:
                    if not user.autocommit and user.info.transaction_status != 0:
                        await user.commit()

                return user, done_user
            if not hasattr(user, "getconn") or not asyncio.iscoroutinefunction(user.getconn):
                raise ConfigError(
                    "this PostgreSQL store was given a sync connection or pool: use the sync API"
                )
            apool = user
        else:
            apool = await self._async_pool()
        try:
            conn = await apool.getconn(timeout=self._pool_wait())
        except TimeoutError as exc:
            raise StoreError("no PostgreSQL connection in time") from exc
        except psycopg.Error:
            raise
        except Exception as exc:  # PoolTimeout, PoolClosed
            raise StoreError(f"no PostgreSQL connection in time: {exc}") from exc

        async def done(failed: bool) -> None:
            try:
                if failed:
                    await conn.close()
                elif not conn.autocommit and conn.info.transaction_status != 0:
                    await conn.commit()  # a user's pool: a check is its own transaction
            finally:
                await apool.putconn(conn)

        try:
            if not self._schema_ok:
                await aensure_schema(conn, self.layout, create=self.create_schema)
                self._schema_ok = True
        except BaseException:
            await done(True)
            raise
        return conn, done

    # -- life cycle ---------------------------------------------------------

    def breakers(self) -> list[CircuitBreaker]:
        """Every breaker of this store (one: the server), as the metrics
        exporter reads them."""
        return [self.breaker]

    def tripped(self, breaker: CircuitBreaker) -> None:
        """The breaker just opened (nothing queued to wake here)."""

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=1.0)
        # async pools belong to their event loops: aclose() closes the
        # current loop's; the others go with their loops
        self._apools.clear()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        apool = self._apools.pop(loop, None)
        if apool is not None:
            await apool.close(timeout=1.0)


class LoopPool:
    """The async connections floodwall opens on one event loop: idle ones
    kept for reuse, at most ``size`` in use, opened by the caller that needs
    one within its deadline. It runs no task of its own, so an event loop
    that ends (a test client's, ``asyncio.run``) leaves nothing to cancel;
    psycopg_pool's AsyncConnectionPool, whose workers connect in the
    background, can leave such a loop waiting on a cancelled connect.
    """

    def __init__(self, conninfo: str, kwargs: dict[str, Any], cls: type, size: int) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs
        self.cls = cls
        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(size)

    async def getconn(self, timeout: float) -> Any:
        idle = self.idle
        if idle and not self.slots.locked():
            # a free slot and nobody queued: nothing to wait for, so no
            # deadline to arm (acquire returns at once)
            conn = idle[-1]
            if not conn.closed and conn.info.transaction_status == 0:  # IDLE
                idle.pop()
                await self.slots.acquire()
                return conn
        async with asyncio.timeout(timeout):
            await self.slots.acquire()
            try:
                while self.idle:
                    conn = self.idle.pop()
                    if not conn.closed and conn.info.transaction_status == 0:  # IDLE
                        return conn
                    await conn.close()
                return await self.cls.connect(self.conninfo, **self.kwargs)  # type: ignore[attr-defined]
            except BaseException:
                self.slots.release()
                raise

    async def putconn(self, conn: Any) -> None:
        try:
            if not conn.closed and conn.info.transaction_status == 0:
                self.idle.append(conn)
            else:
                await conn.close()
        finally:
            self.slots.release()

    async def close(self, timeout: float = 1.0) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.close()


_SHARED: dict[Any, Connection] = {}
_SHARED_LOCK = threading.Lock()


def shared(conninfo: str, opts_key: Any, **kwargs: Any) -> Connection:
    """The Connection of (conninfo, options), opened once per process:
    limiters on the same store share pools and can group checks."""
    key = (conninfo, opts_key)
    with _SHARED_LOCK:
        conn = _SHARED.get(key)
        if conn is not None:
            conn.users += 1
            return conn
        conn = Connection(conninfo, **kwargs)
        conn.key = key
        _SHARED[key] = conn
        return conn


def acquire(conn: Connection) -> None:
    with _SHARED_LOCK:
        conn.users += 1


def release(conn: Connection) -> None:
    with _SHARED_LOCK:
        conn.users -= 1
        if conn.users > 0:
            return
        if _SHARED.get(conn.key) is conn:
            del _SHARED[conn.key]
    conn.close()
