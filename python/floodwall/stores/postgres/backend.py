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
from floodwall.errors import ConfigError, CostError, StoreError
from floodwall.rates import Rate
from floodwall.stores import LimitSpec
from floodwall.stores.breaker import OPEN
from floodwall.stores.capabilities import StoreCapabilities
from floodwall.stores.failure import FailurePolicy
from floodwall.stores.netkeys import KeyNamer, escape, resolve_key_secret
from floodwall.stores.netquota import INT64_MAX, NetQuota, normalise_quota
from floodwall.stores.postgres.calls import (
    LeanGcra,
    Parts,
    Row,
    call_async,
    call_sync,
    costs_literal,
)
from floodwall.stores.postgres.connection import Connection, acquire, release, shared
from floodwall.stores.postgres.schema import Layout
from floodwall.stores.postgres.url import PostgresOptions, libpq_conninfo, read_options
from floodwall.stores.url import StoreURL

__all__ = ["CAPABILITIES", "PostgresBackend", "from_connection", "open_postgres"]

Key = str | bytes

_STORE_ERRORS = (psycopg.Error, StoreError, OSError)

#: What a PostgreSQL store is.
CAPABILITIES = StoreCapabilities(
    kind="postgresql",
    inline=False,
    blocking=True,
    groups=True,
    shared=True,
    shared_clock=True,
    durable=True,
)


def validate_cost(cost: object) -> int:
    """The cost as an int; exactly an int (a bool or an IntEnum is a
    mistake), >= 0. CostError is the caller's, never a store failure."""
    if cost.__class__ is not int:
        raise CostError(f"cost must be an int >= 0, not {type(cost).__name__}")
    assert isinstance(cost, int)
    if cost < 0:
        raise CostError(f"cost must be an int >= 0, got {cost!r}")
    return cost


def _broken(exc: BaseException) -> bool:
    """A pooled connection that the server had closed (a restart): the
    check never reached a live server, so it may be tried once more."""
    return (
        isinstance(exc, psycopg.OperationalError)
        and not isinstance(exc, psycopg.errors.QueryCanceled)
        and "timeout" not in str(exc).lower()
    )


class PostgresBackend:
    """A limit spec on a PostgreSQL database (see docs/stores.md)."""

    capabilities = CAPABILITIES

    def __init__(self, conn: Connection, spec: LimitSpec, opts: PostgresOptions) -> None:
        self.conn = conn
        self.spec = spec
        fail = opts.fail or spec.fail
        on_error = opts.on_error or spec.on_error
        self.failure = FailurePolicy(fail, on_error, label="PostgreSQL store")
        self.fail = self.failure.mode
        self.on_error = self.failure.on_error
        self.options = opts
        if not spec.rates:
            raise ConfigError("a limit needs at least one rate")
        quotas: list[NetQuota] = []
        for rate in spec.rates:
            try:
                quotas.append(
                    normalise_quota(spec.algorithm, rate.amount, rate.period_ns, rate.burst)
                )
            except ValueError as exc:
                raise ConfigError(f"{exc} (rate {rate})") from None
        self.quotas = tuple(quotas)
        self.rates: tuple[Rate, ...] = tuple(spec.rates)
        self.capacity = min(q.burst for q in quotas)
        self._meta = tuple((q.burst, r) for q, r in zip(quotas, self.rates))
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
        self._clock = spec.clock
        self._sql = conn.layout.check_call
        #: the lean statement of a charging check, for rates of the GCRA
        #: family (one row key each) on connections that prepare statements
        self._one = (
            LeanGcra.of(conn.layout, quotas, conn.lock_ms)
            if LeanGcra.serves(quotas)
            and conn.prepares
            and len(set(self.namer.keys(""))) == len(quotas)
            else None
        )
        self._allowed = 0
        self._denied = 0
        self._closed = False

    def bind(self, spec: LimitSpec, **options: Any) -> PostgresBackend:
        """Another limit on this backend's database (so check_all can group them)."""
        return from_connection(self, spec, **options)

    # -- helpers ------------------------------------------------------------

    def _now(self) -> int | None:
        if self._clock is None:
            return None
        now = self._clock()
        if isinstance(now, bool) or not isinstance(now, int) or not 0 <= now <= INT64_MAX:
            raise ConfigError(f"clock() must return int ns in [0, 2^63-1], got {now!r}")
        return now

    def _cost_error(self, cost: int, meta: Sequence[tuple[int, Rate]]) -> CostError | None:
        for burst, rate in meta:
            if cost > burst:
                return CostError(
                    f"cost {cost} exceeds the capacity {burst} of {rate}: it can never be admitted"
                )
        return None

    def _checked_cost(self, cost: object) -> int:
        n = validate_cost(cost)
        err = self._cost_error(n, self._meta)
        if err is not None:
            raise err
        return n

    def _costs(self, cost: int) -> str:
        return self._costs1 if cost == 1 else costs_literal([cost] * len(self.quotas))

    def _decision(
        self,
        row: Row,
        meta: Sequence[tuple[int, Rate]],
        units: int,
        part_of: Sequence[int] | None,
    ) -> Decision:
        """The row as a Decision (``part_of``: the group part of each row
        key, naming the denying part), counted when it charges ``units``."""
        ok, part, rem, retry, reset, delay = row
        burst, rate = meta[part]
        if units:
            if ok:
                self._allowed += 1
            else:
                self._denied += 1
        denied_part = part_of[part] if part_of is not None and not ok else None
        return Decision(ok, burst, rem, retry, reset, delay, rate=rate, denied_part=denied_part)

    def _failed(self, exc: BaseException, meta: Sequence[tuple[int, Rate]]) -> Decision:
        breaker = self.conn.breaker
        breaker.failure()
        return self.failure.decide(exc, meta[0][1], None, breaker.retry_in() or breaker.cooldown)

    def _skipped(self, meta: Sequence[tuple[int, Rate]]) -> Decision:
        breaker = self.conn.breaker
        exc = StoreError(
            f"PostgreSQL store skipped: the circuit breaker is open after "
            f"{breaker.threshold} consecutive failures; next try in {breaker.retry_in():.3f}s"
        )
        return self.failure.decide(
            exc, meta[0][1], None, breaker.retry_in() or breaker.cooldown, reached=False
        )

    def _statement(self, key: Key, cost: int) -> tuple[str, Any, int]:
        """(SQL, parameters, row keys) of a check of ``key``: the lean
        statement when it serves, else the check function."""
        keys = self.namer.keys(key)
        one = self._one
        if one is not None and cost:
            sql, params = one.statement(keys, cost, self._now())
            return sql, params, len(keys)
        args = self.parts.args(self._now(), self._costs(cost), keys, self.conn.lock_ms)
        return self._sql, args, len(keys)

    def _run(
        self,
        sql: str,
        params: Any,
        nparts: int,
        meta: Sequence[tuple[int, Rate]],
        units: int,
        part_of: Sequence[int] | None = None,
    ) -> Decision:
        conn = self.conn
        breaker = conn.breaker
        if breaker._state and not breaker.allow():  # not closed: maybe skip
            return self._skipped(meta)
        try:
            try:
                with conn.connection() as c:
                    row = call_sync(c, sql, params, nparts)
            except psycopg.OperationalError as exc:
                if not conn.owned or not _broken(exc):
                    raise
                with conn.connection() as c:  # once more, on a fresh connection
                    row = call_sync(c, sql, params, nparts)
        except _STORE_ERRORS as exc:
            return self._failed(exc, meta)
        if breaker._failures or breaker._state:
            breaker.success()
        return self._decision(row, meta, units, part_of)

    async def _arun(
        self,
        sql: str,
        params: Any,
        nparts: int,
        meta: Sequence[tuple[int, Rate]],
        units: int,
        part_of: Sequence[int] | None = None,
    ) -> Decision:
        conn = self.conn
        breaker = conn.breaker
        if breaker._state and not breaker.allow():
            return self._skipped(meta)
        try:
            try:
                row = await self._acall(sql, params, nparts)
            except psycopg.OperationalError as exc:
                if not conn.owned or not _broken(exc):
                    raise
                row = await self._acall(sql, params, nparts)
        except _STORE_ERRORS as exc:
            if breaker.state == OPEN:  # it opened while this call waited
                return self._skipped(meta)
            return self._failed(exc, meta)
        if breaker._failures or breaker._state:
            breaker.success()
        return self._decision(row, meta, units, part_of)

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
        return self._run(*self._statement(key, cost), self._meta, cost)

    def allow(self, key: Key, cost: int = 1) -> bool:
        return self.check(key, cost).allowed

    def peek(self, key: Key) -> Decision:
        return self.check(key, 0)

    async def acheck(self, key: Key, cost: int = 1) -> Decision:
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = self._checked_cost(cost)
        return await self._arun(*self._statement(key, cost), self._meta, cost)

    async def aallow(self, key: Key, cost: int = 1) -> bool:
        return (await self.acheck(key, cost)).allowed

    async def apeek(self, key: Key) -> Decision:
        return await self.acheck(key, 0)

    # -- groups -------------------------------------------------------------

    def _group(
        self, parts: Sequence[tuple[Any, ...]], cost: int
    ) -> tuple[list[bytes], Parts, str, list[tuple[int, Rate]], list[int], int]:
        """The row keys, part arrays and costs literal of a group, the
        (capacity, rate) and group part of each key, and the most units a
        part charges. A part is (backend, key) with ``cost``, or (backend,
        key, its own cost); a cost of 0 peeks."""
        cost = validate_cost(cost)
        if not parts:
            raise ConfigError("check_all needs at least one (limiter, key) pair")
        keys: list[bytes] = []
        arrays: Parts | None = None
        meta: list[tuple[int, Rate]] = []
        part_of: list[int] = []
        costs: list[int] = []
        for i, part in enumerate(parts):
            backend, key = part[0], part[1]
            n = validate_cost(part[2]) if len(part) == 3 else cost
            if not isinstance(backend, PostgresBackend) or backend.conn is not self.conn:
                raise ConfigError(
                    "check_all needs every limiter on the same PostgreSQL store: open them "
                    "with the same URL and options, or pass store=<first limiter>"
                )
            err = backend._cost_error(n, backend._meta)
            if err is not None:
                raise err
            part_keys = backend.namer.keys(key)
            keys.extend(part_keys)
            arrays = backend.parts if arrays is None else arrays + backend.parts
            meta.extend(backend._meta)
            part_of.extend([i] * len(part_keys))
            costs.extend([n] * len(part_keys))
        assert arrays is not None
        return keys, arrays, costs_literal(costs), meta, part_of, max(costs)

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

    def stats(self) -> dict[str, int]:
        """This process's counts, the breaker, and this limit's live rows
        (-1 if the database cannot be reached)."""
        active = -1
        breaker = self.conn.breaker
        if breaker.state != OPEN:
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
        return {
            "allowed": self._allowed,
            "denied": self._denied,
            "fallbacks": self.failure.fallbacks,
            "errors": self.failure.errors,
            "breaker_open": int(breaker.state == OPEN),
            "breaker_trips": breaker.trips,
            "active_keys": active,
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.conn.owned:
                release(self.conn)

    async def aclose(self) -> None:
        await self.conn.aclose()
        self.close()

    # ``with`` / ``async with`` close the connections this store opened
    def __enter__(self) -> PostgresBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> PostgresBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

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
        if {"timeout", "connect_timeout", "max_connections", "schema", "table"} & set(options):
            raise ConfigError(
                "a limiter sharing another's PostgreSQL store shares its connection options"
            )
        merged: dict[str, Any] = {
            "plain_keys": base.namer.plain,
            "key_secret": base.namer.key_secret,
        }
        merged.update(options)
        if base.conn.owned:
            acquire(base.conn)
        opts = read_options(merged)
        return PostgresBackend(base.conn, spec, opts)
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
