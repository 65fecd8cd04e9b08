"""The native backend: memory:// (and, through floodwall.stores.shared, shm://
and file://) served by the C slot table.

The hot methods of a backend are the C policy's own bound methods, so a call
to ``limiter.allow(key)`` goes straight into C. When the table cannot decide
(full, or a lock not taken in time) the C policy calls this limiter's
:class:`~floodwall.stores.failure.FailurePolicy`, on that error path only.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from floodwall import _native
from floodwall.algorithms import (
    ALGORITHMS,
    LOG_CAPACITY_MAX,
    MAX_KEYS_MAX,
    MAX_KEYS_MIN,
)
from floodwall.errors import ConfigError
from floodwall.stores import LimitSpec, register
from floodwall.stores.capabilities import StoreCapabilities
from floodwall.stores.failure import FailurePolicy
from floodwall.stores.url import Options, StoreURL

__all__ = ["NativeBackend", "from_table", "memory_table", "table_capabilities"]

Key = str | bytes
T = TypeVar("T")

_named_tables: dict[str, _native.Table] = {}
_named_lock = threading.Lock()


def log_capacity_for(spec: LimitSpec) -> int:
    """Room a table needs per key for this spec (sliding_log only)."""
    if spec.algorithm != "sliding_log":
        return 0
    need = max(rate.burst for rate in spec.rates)
    if need > LOG_CAPACITY_MAX:
        raise ConfigError(
            f"sliding_log keeps one entry per request: capacity at most "
            f"{LOG_CAPACITY_MAX}, got {need}; use sliding_window or gcra"
        )
    return need


def table_capabilities(table: _native.Table) -> StoreCapabilities:
    """What a native table is: asked of the table itself."""
    info = _native.table_info(table)
    kind = str(info["store"]).split(":", 1)[0]
    blocking = bool(table.blocking)
    shared = kind != "memory"
    return StoreCapabilities(
        kind=kind,
        inline=not blocking,
        blocking=blocking,
        groups=True,
        shared=shared,
        shared_clock=True,
        durable=kind == "file",
    )


def memory_table(url: StoreURL, spec: LimitSpec, **options: Any) -> _native.Table:
    """``memory://`` gives a table of its own; ``memory://NAME`` one shared by
    every limiter of this process that names it (needed by check_all).

    A memory table grows with its keys, like a dict (and shrinks when they
    expire); ``max_keys`` caps it, for those who want a bound on a flood of
    new keys. No cap by default."""
    opts = Options(url, options, known={"max_keys"})
    keys = opts.int_option("max_keys", 0, MAX_KEYS_MIN, MAX_KEYS_MAX)
    assert keys is not None
    need = log_capacity_for(spec)
    name = url.netloc + url.path
    if not name:
        return _native.Table(max_keys=keys, log_capacity=need)
    with _named_lock:
        table = _named_tables.get(name)
        if table is None:
            cap = max(need, 1024) if need else 0
            table = _native.Table(max_keys=keys, log_capacity=cap)
            _named_tables[name] = table
    return table


class NativeBackend:
    """A limit spec bound to a native table."""

    def __init__(self, table: _native.Table, spec: LimitSpec) -> None:
        self.table = table
        self.spec = spec
        self.capabilities = table_capabilities(table)
        self.failure = FailurePolicy(
            spec.fail, spec.on_error, label=str(_native.table_info(table)["store"])
        )
        need = log_capacity_for(spec)
        room = _native.table_info(table)["log_capacity"] if need else 0
        if need > room:
            raise ConfigError(
                f"{table!r} keeps sliding logs of {room} entries and this limiter needs "
                f"{need}: a table cannot grow; open it first with the sliding_log "
                "limiter, or use a store of its own"
            )
        try:
            self.policy = _native.Policy(
                table,
                ALGORITHMS[spec.algorithm],
                [(r.amount, r.period_ns, r.burst) for r in spec.rates],
                spec.namespace.encode("utf-8", "surrogatepass"),
                tuple(spec.rates),
                spec.clock,
                self.failure.decide,
            )
        except ValueError as exc:
            raise ConfigError(f"{exc} (store {table!r})") from None
        # the hot calls are the C methods themselves
        self.check = self.policy.check
        self.allow = self.policy.allow
        self.peek = self.policy.peek
        self.reset = self.policy.reset

    def bind(self, spec: LimitSpec, **options: Any) -> NativeBackend:
        """Another limit on this backend's table."""
        return from_table(self.table, spec, **options)

    def clear(self) -> None:
        self.table.clear()

    def stats(self) -> dict[str, int]:
        """Counts of this limiter and of its table. ``keys`` are the keys the
        table counts against ``max_keys`` (live ones, and expired ones not yet
        reclaimed); ``max_keys`` 0 means no cap (a growing memory table)."""
        allowed, denied = self.policy.counts()
        table = self.table.stats(self.policy.now_ns())
        return {
            "allowed": allowed,
            "denied": denied,
            "fallbacks": self.failure.fallbacks,
            "errors": self.failure.errors,
            "active_keys": table["active_keys"],
            "used_slots": table["used_slots"],
            "slots": table["slots"],
            "max_keys": table["max_keys"],
            "keys": table["keys"],
            "retired_slots": table["retired_slots"],
            "full_errors": table["full_errors"],
            "damaged_states": table["damaged_states"],
            "clamped_states": table["clamped_states"],
        }

    # The engine answers in about a hundred nanoseconds: the async twins call
    # straight through, except on a store whose writes wait for the disk
    # (file:// with sync), whose checks run in a worker thread.
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.capabilities.inline:
            return fn(*args)
        # to_thread: the call keeps this context (a check_all's on_error hooks)
        return await asyncio.to_thread(fn, *args)

    async def acheck(self, key: Key, cost: int = 1) -> _native.Decision:
        return await self._call(self.check, key, cost)

    async def aallow(self, key: Key, cost: int = 1) -> bool:
        return await self._call(self.allow, key, cost)

    async def apeek(self, key: Key) -> _native.Decision:
        return await self._call(self.peek, key)

    async def areset(self, key: Key) -> bool:
        return await self._call(self.reset, key)

    async def aclear(self) -> None:
        await self._call(self.clear)

    def check_group(self, parts: Sequence[tuple[Any, ...]], cost: int) -> _native.Decision:
        """All-or-nothing over several (backend, key[, cost]) parts on this
        table; a failure goes to the first part's failure policy."""
        native_parts: list[tuple[Any, ...]] = []
        for backend, *rest in parts:
            if not isinstance(backend, NativeBackend):
                raise ConfigError("check_all needs every limiter on the same store")
            native_parts.append((backend.policy, *rest))
        try:
            decision, _index = _native.check_all(native_parts, cost)
        except ValueError as exc:
            if "same store" in str(exc):
                raise ConfigError(
                    f"{exc}: open the limiters with one store URL, e.g. "
                    "store='memory://shared' or the same shm:// name"
                ) from None
            raise
        return decision

    async def acheck_group(
        self, parts: Sequence[tuple[Any, ...]], cost: int
    ) -> _native.Decision:
        return await self._call(self.check_group, parts, cost)

    def close(self) -> None:
        """Nothing to release: the table goes with its last user."""

    def __repr__(self) -> str:
        return f"<NativeBackend {self.spec.algorithm} on {self.failure.label}>"


def from_table(table: _native.Table, spec: LimitSpec, **options: Any) -> NativeBackend:
    """Bind a spec to an existing table."""
    if options:
        raise ConfigError(f"unexpected option(s) {sorted(options)} for an open table")
    return NativeBackend(table, spec)


def _memory_factory(url: StoreURL, spec: LimitSpec, **options: Any) -> NativeBackend:
    return NativeBackend(memory_table(url, spec, **options), spec)


register("memory", _memory_factory)
