"""The native backend: memory:// (and, through floodwall.stores.shared, shm://
and file://) served by the C slot table.

The hot methods of a backend are the C policy's own bound methods, so a call
to ``limiter.allow(key)`` goes straight into C.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, Union
from urllib.parse import parse_qsl, urlsplit

from floodwall import _native
from floodwall.errors import ConfigError
from floodwall.stores import ALGORITHMS, LimitSpec, register

__all__ = ["NativeBackend", "from_store", "is_native_store", "memory_table"]

Key = Union[str, bytes]
T = TypeVar("T")

DEFAULT_MAX_KEYS = 65_536
FAIL_MODES = {"raise": 0, "open": 1, "closed": 2}

_named_tables: dict[str, _native.Table] = {}
_named_lock = threading.Lock()


def log_capacity_for(spec: LimitSpec) -> int:
    """Room a table needs per key for this spec (sliding_log only)."""
    if spec.algorithm != "sliding_log":
        return 0
    need = max(rate.burst for rate in spec.rates)
    if need > _native.SLIDING_LOG_MAX:
        raise ConfigError(
            f"sliding_log keeps one entry per request: capacity at most "
            f"{_native.SLIDING_LOG_MAX}, got {need}; use sliding_window or gcra"
        )
    return need


def parse_int_option(name: str, value: Any, low: int, high: int) -> int:
    """An integer option from a URL or keyword, with a clear error."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {number}")
    return number


def memory_table(url: str, spec: LimitSpec, max_keys: Any = None) -> _native.Table:
    """``memory://`` gives a table of its own; ``memory://NAME`` one shared by
    every limiter of this process that names it (needed by check_all)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {"max_keys"}
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)} in {url!r}; known: max_keys")
    if max_keys is None:
        max_keys = query.get("max_keys", DEFAULT_MAX_KEYS)
    keys = parse_int_option("max_keys", max_keys, 1, 2**36)
    need = log_capacity_for(spec)
    name = parts.netloc + parts.path
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
        if spec.fail not in FAIL_MODES:
            raise ConfigError(f"fail must be one of {sorted(FAIL_MODES)}, got {spec.fail!r}")
        self.table = table
        self.spec = spec
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
                FAIL_MODES[spec.fail],
                spec.on_error,
            )
        except ValueError as exc:
            raise ConfigError(f"{exc} (store {table!r})") from None
        # the hot calls are the C methods themselves
        self.check = self.policy.check
        self.allow = self.policy.allow
        self.peek = self.policy.peek
        self.reset = self.policy.reset

    def clear(self) -> None:
        self.table.clear()

    def stats(self) -> dict[str, int]:
        allowed, denied, fallbacks = self.policy.counts()
        table = self.table.stats(self.policy.now_ns())
        return {
            "allowed": allowed,
            "denied": denied,
            "fallbacks": fallbacks,
            "active_keys": table["active_keys"],
            "used_slots": table["used_slots"],
            "slots": table["slots"],
            "max_keys": table["max_keys"],
            "full_errors": table["full_errors"],
            "damaged_states": table["damaged_states"],
            "clamped_states": table["clamped_states"],
        }

    # The engine answers in about a hundred nanoseconds: the async twins call
    # straight through, except on a store whose writes wait for the disk
    # (file:// with sync), whose checks run in a worker thread.
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if not self.table.blocking:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def acheck(self, key: Key, cost: int = 1) -> _native.Decision:
        return await self._call(self.check, key, cost)

    async def aallow(self, key: Key, cost: int = 1) -> bool:
        return await self._call(self.allow, key, cost)

    async def apeek(self, key: Key) -> _native.Decision:
        return await self._call(self.peek, key)

    async def areset(self, key: Key) -> None:
        await self._call(self.reset, key)

    async def aclear(self) -> None:
        await self._call(self.clear)

    def check_group(self, parts: Sequence[tuple[Any, Key]], cost: int) -> _native.Decision:
        native_parts = []
        for backend, key in parts:
            if not isinstance(backend, NativeBackend):
                raise ConfigError("check_all needs every limiter on the same store")
            native_parts.append((backend.policy, key))
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
        self, parts: Sequence[tuple[Any, Key]], cost: int
    ) -> _native.Decision:
        return await self._call(self.check_group, parts, cost)

    def close(self) -> None:
        """Nothing to release: the table goes with its last user."""


def is_native_store(store: object) -> bool:
    return isinstance(store, (_native.Table, NativeBackend))


def from_store(store: Any, spec: LimitSpec, **options: Any) -> NativeBackend:
    """Bind a spec to an existing table (or another limiter's backend)."""
    if options:
        raise ConfigError(f"unexpected option(s) {sorted(options)} for an open table")
    table = store.table if isinstance(store, NativeBackend) else store
    return NativeBackend(table, spec)


def _memory_factory(url: str, spec: LimitSpec, **options: Any) -> NativeBackend:
    max_keys = options.pop("max_keys", None)
    if options:
        raise ConfigError(
            f"unexpected option(s) {sorted(options)} for memory://; known: max_keys"
        )
    return NativeBackend(memory_table(url, spec, max_keys), spec)


register("memory", _memory_factory)
