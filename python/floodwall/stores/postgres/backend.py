"""The PostgreSQL backend: one limit spec on a PostgreSQL database.

Every check is one statement, the check function (:mod:`.calls`): all the
rates of a limiter, and all the parts of a check_all, decided
all-or-nothing in one round trip, with the database's clock_timestamp() as
the clock. A failing database goes through the failure policy
(:mod:`floodwall.stores.failure`) and the store's circuit breaker, so a dead
server costs microseconds, not timeouts. A caller's mistake (a bad cost or
key) is raised before the database is asked, and never counts as a failure;
so is a schema this floodwall cannot use (a ConfigError).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from floodwall._native import Decision
from floodwall.errors import ConfigError, StoreError
from floodwall.rates import Rate
from floodwall.stores import LimitSpec
from floodwall.stores.breaker import OPEN
from floodwall.stores.netkeys import KeyNamer, escape, resolve_key_secret
from floodwall.stores.netquota import NetQuota, normalise_quota
from floodwall.stores.network import Key, PooledBackend, network_capabilities
from floodwall.stores.postgres.calls import (
    Parts,
    Row,
    call_async,
    call_sync,
    costs_literal,
)
from floodwall.stores.postgres.connection import Connection, acquire, release, shared
from floodwall.stores.postgres.lean import lean_statement
from floodwall.stores.postgres.schema import Layout
from floodwall.stores.postgres.url import PostgresOptions, libpq_conninfo, read_options
from floodwall.stores.url import StoreURL

__all__ = ["CAPABILITIES", "PostgresBackend", "from_connection", "open_postgres"]

_STORE_ERRORS = (psycopg.Error, StoreError, OSError)

#: What a PostgreSQL store is.
CAPABILITIES = network_capabilities("postgresql", durable=True)


def _broken(exc: BaseException) -> bool:
    """A pooled connection that the server had closed (a restart): the
    check never reached a live server, so it may be tried once more."""
    return (
        isinstance(exc, psycopg.OperationalError)
        and not isinstance(exc, psycopg.errors.QueryCanceled)
        and "timeout" not in str(exc).lower()
    )


class PostgresBackend(PooledBackend):
    """A limit spec on a PostgreSQL database (see docs/stores.md)."""

    capabilities = CAPABILITIES
    store_name = "PostgreSQL store"

    def __init__(self, conn: Connection, spec: LimitSpec, opts: PostgresOptions) -> None:
        super().__init__(conn, spec, opts, normalise_quota)
        quotas: tuple[NetQuota, ...] = self.quotas
        self.parts = Parts.of(quotas)
        #: the costs literal of a cost-1 check (one cost per rate), made once
        self._costs1 = costs_literal([1] * len(quotas))
        self.namer = KeyNamer(
            spec.namespace,
            spec.algorithm,
            quotas,
            plain_keys=opts.plain_keys,
            key_secret=resolve_key_secret(opts.key_secret),
        )
        self._sql = conn.layout.check_call
        #: the lean statement of a charging check (lean.py), on
        #: connections that prepare statements, one row key per rate
        self._one = (
            lean_statement(conn.layout, quotas, conn.lock_ms)
            if conn.prepares and len(set(self.namer.keys(""))) == len(quotas)
            else None
        )

    def bind(self, spec: LimitSpec, **options: Any) -> PostgresBackend:
        """Another limit on this backend's database (so check_all can group them)."""
        return from_connection(self, spec, **options)

    # -- helpers ------------------------------------------------------------

    def _costs(self, cost: int) -> str:
        return self._costs1 if cost == 1 else costs_literal([cost] * len(self.quotas))

    def _statement(self, key: Key, cost: int) -> tuple[Any, Any, int, Key | None]:
        """(SQL, parameters, row keys, the key when the statement is the
        lean one) of a check of ``key``: the lean statement when it
        serves, else the check function."""
        keys = self.namer.keys(key)
        one = self._one
        if one is not None and cost:
            sql, params = one.statement(keys, cost, self._now())
            return sql, params, len(keys), key
        args = self.parts.args(self._now(), self._costs(cost), keys, self.conn.lock_ms)
        return self._sql, args, len(keys), None

    def _again(self, row: Row, lean_key: Key | None, cost: int) -> tuple[str, Any] | None:
        """The check function's call for a lean check whose denial may
        come from a clock excursion (the lean statement's ``excursion``),
        else None."""
        one = self._one
        if lean_key is None or one is None or not one.excursion(row, cost):
            return None
        keys = self.namer.keys(lean_key)
        return self._sql, self.parts.args(self._now(), self._costs(cost), keys, self.conn.lock_ms)

    def _run(
        self,
        sql: str,
        params: Any,
        nparts: int,
        meta: Sequence[tuple[int, Rate]],
        units: int,
        part_of: Sequence[int] | None = None,
        lean_key: Key | None = None,
    ) -> Decision:
        conn = self.conn
        breaker = conn.breaker
        if breaker._state and not breaker.allow():  # not closed: maybe skip
            return self._skipped(breaker, meta[0][1])
        try:
            try:
                row = conn.call(call_sync, sql, params, nparts)
            except psycopg.OperationalError as exc:
                if not conn.owned or not _broken(exc):
                    raise
                # once more, on a fresh connection
                row = conn.call(call_sync, sql, params, nparts)
            if lean_key is not None and not row[0]:
                again = self._again(row, lean_key, units)
                if again is not None:
                    row = conn.call(call_sync, *again, nparts)
        except _STORE_ERRORS as exc:
            return self._failed(exc, meta[0][1], breaker)
        if breaker._failures or breaker._state:
            breaker.success()
        return self._reply(row, meta, part_of, units)

    async def _arun(
        self,
        sql: str,
        params: Any,
        nparts: int,
        meta: Sequence[tuple[int, Rate]],
        units: int,
        part_of: Sequence[int] | None = None,
        lean_key: Key | None = None,
    ) -> Decision:
        conn = self.conn
        breaker = conn.breaker
        if breaker._state and not breaker.allow():
            return self._skipped(breaker, meta[0][1])
        try:
            try:
                row = await self._acall(sql, params, nparts)
            except psycopg.OperationalError as exc:
                if not conn.owned or not _broken(exc):
                    raise
                row = await self._acall(sql, params, nparts)
            if lean_key is not None and not row[0]:
                again = self._again(row, lean_key, units)
                if again is not None:
                    row = await self._acall(*again, nparts)
        except _STORE_ERRORS as exc:
            return self._failed_waiting(exc, meta[0][1], breaker)
        if breaker._failures or breaker._state:
            breaker.success()
        return self._reply(row, meta, part_of, units)

    async def _acall(self, sql: str, params: Any, nparts: int) -> Row:
        c, done = await self.conn.aconnection()
        failed = True
        try:
            row = await call_async(c, sql, params, nparts)
            failed = False
            return row
        except psycopg.Error as exc:
            self.conn.schema_lost(exc)
            raise
        finally:
            await done(failed)

    # -- checks -------------------------------------------------------------

    def check(self, key: Key, cost: int = 1) -> Decision:
        """Decide `cost` units for `key` on every rate, all-or-nothing."""
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = self._checked_cost(cost)
        sql, params, nparts, lean_key = self._statement(key, cost)
        return self._run(sql, params, nparts, self._meta, cost, None, lean_key)

    async def acheck(self, key: Key, cost: int = 1) -> Decision:
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = self._checked_cost(cost)
        sql, params, nparts, lean_key = self._statement(key, cost)
        return await self._arun(sql, params, nparts, self._meta, cost, None, lean_key)

    # -- groups -------------------------------------------------------------

    def _group(
        self, parts: Sequence[tuple[Any, ...]], cost: int
    ) -> tuple[list[bytes], Parts, str, list[tuple[int, Rate]], list[int], int]:
        """The row keys, part arrays and costs literal of a group, the
        (capacity, rate) and group part of each key, and the most units a
        part charges. A part is (backend, key) with ``cost``, or (backend,
        key, its own cost); a cost of 0 peeks."""
        group = self._group_keys(parts, cost)
        arrays: Parts = group.backends[0].parts
        for backend in group.backends[1:]:
            arrays = arrays + backend.parts
        return (
            group.keys, arrays, costs_literal(group.costs), group.meta, group.part_of, group.units
        )

    def check_group(self, parts: Sequence[tuple[Any, ...]], cost: int = 1) -> Decision:
        """All-or-nothing over several (backend, key[, cost]) parts, in one
        statement; a denial names its part (``denied_part``)."""
        keys, arrays, costs, meta, part_of, units = self._group(parts, cost)
        args = arrays.args(self._now(), costs, keys, self.conn.lock_ms)
        return self._run(self._sql, args, len(keys), meta, units, part_of)

    async def acheck_group(self, parts: Sequence[tuple[Any, ...]], cost: int = 1) -> Decision:
        keys, arrays, costs, meta, part_of, units = self._group(parts, cost)
        args = arrays.args(self._now(), costs, keys, self.conn.lock_ms)
        return await self._arun(self._sql, args, len(keys), meta, units, part_of)

    # -- administration -----------------------------------------------------

    def _admin(self, sql: str, params: Sequence[Any], what: str) -> int:
        try:
            with self.conn.connection() as c:
                cur = c.execute(sql, params)
                return int(cur.rowcount)
        except _STORE_ERRORS as exc:
            raise StoreError(f"PostgreSQL {what} failed: {exc}") from exc

    async def _aadmin(self, sql: str, params: Sequence[Any], what: str) -> int:
        try:
            c, done = await self.conn.aconnection()
            failed = True
            try:
                cur = await c.execute(sql, params)
                failed = False
                return int(cur.rowcount)
            finally:
                await done(failed)
        except _STORE_ERRORS as exc:
            raise StoreError(f"PostgreSQL {what} failed: {exc}") from exc

    def _like(self) -> bytes:
        raw = escape(self.spec.namespace.encode("utf-8", "surrogatepass"))
        raw += b":" + self.spec.algorithm.encode() + b":"
        return raw.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_") + b"%"

    def reset(self, key: Key) -> bool:
        """Forget `key` (every rate); True if the table held a row for it
        (rows expire lazily: a key back to full capacity may still have
        one). Raises StoreError if the database fails."""
        table = self.conn.layout.table
        sql = f"DELETE FROM {table} WHERE k = ANY(%s)"
        return self._admin(sql, (self.namer.keys(key),), "reset") > 0

    async def areset(self, key: Key) -> bool:
        table = self.conn.layout.table
        sql = f"DELETE FROM {table} WHERE k = ANY(%s)"
        return await self._aadmin(sql, (self.namer.keys(key),), "reset") > 0

    def clear(self) -> None:
        """Forget every key of this limiter (namespace and algorithm)."""
        table = self.conn.layout.table
        self._admin(f"DELETE FROM {table} WHERE k LIKE %s", (self._like(),), "clear")

    async def aclear(self) -> None:
        table = self.conn.layout.table
        await self._aadmin(f"DELETE FROM {table} WHERE k LIKE %s", (self._like(),), "clear")

    def _store_stats(self) -> dict[str, int]:
        """This limit's live rows (-1 if the database cannot be reached)."""
        active = -1
        if self.conn.breaker.state != OPEN:
            try:
                with self.conn.connection() as c:
                    row = c.execute(
                        f"SELECT count(*) FROM {self.conn.layout.table} WHERE k LIKE %s "
                        "AND expires > coalesce(%s::numeric, "
                        "trunc(extract(epoch FROM clock_timestamp()) * 1000000000))",
                        (self._like(), self._now()),
                    ).fetchone()
                    active = int(row[0]) if row else -1
            except (ConfigError, *_STORE_ERRORS):
                active = -1
        return {"active_keys": active}

    def _release(self) -> None:
        release(self.conn)

    def __repr__(self) -> str:
        where = self.conn.label or type(self.conn.user).__name__
        return f"<PostgresBackend {self.spec.algorithm} {list(map(str, self.rates))} on {where}>"


def open_postgres(url: StoreURL, spec: LimitSpec, **options: Any) -> PostgresBackend:
    """The factory of postgresql:// and postgres:// (registered by the package)."""
    opts = read_options(options, url)
    conninfo = libpq_conninfo(url)
    conn = shared(
        conninfo,
        (opts.failure, opts.layout, opts.prepare_threshold, opts.max_connections),
        layout=Layout.of(opts),
        settings=opts.failure,
        prepare_threshold=opts.prepare_threshold,
        max_connections=opts.max_connections,
        create_schema=opts.create_schema,
        label=url.text,
    )
    try:
        backend = PostgresBackend(conn, spec, opts)
        conn.warm()  # the pool starts connecting now, not at the first check
        return backend
    except BaseException:
        release(conn)
        raise


def from_connection(target: Any, spec: LimitSpec, **options: Any) -> PostgresBackend:
    """A backend on an existing psycopg connection or pool, sync or async
    (its own timeouts apply; the check's lock wait is still bounded), or
    sharing the database of another PostgresBackend (so that check_all can
    group them)."""
    if isinstance(target, PostgresBackend):
        base = target
        merged = base.sharing_options(
            base, options, {"timeout", "connect_timeout", "max_connections", "schema", "table"}
        )
        return PostgresBackend.on_shared(base.conn, spec, read_options(merged), acquire, release)
    if not is_psycopg_target(target):
        raise ConfigError(f"not a psycopg connection or pool: {type(target).__name__}")
    opts = read_options(options)
    conn = Connection(
        None,
        Layout.of(opts),
        opts.failure,
        create_schema=opts.create_schema,
        user=target,
        label=type(target).__name__,
    )
    return PostgresBackend(conn, spec, opts)


def is_psycopg_target(obj: object) -> bool:
    """A psycopg (3) connection, or a psycopg_pool pool, sync or async."""
    if isinstance(obj, (psycopg.Connection, psycopg.AsyncConnection)):
        return True
    try:
        import psycopg_pool
    except ImportError:  # pragma: no cover - the postgres extra installs it
        return False
    return isinstance(obj, (psycopg_pool.ConnectionPool, psycopg_pool.AsyncConnectionPool))
