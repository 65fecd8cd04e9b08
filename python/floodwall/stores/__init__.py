"""Store registry: turns a store URL (or an opened store) into a backend.

Built-in schemes are imported lazily, so ``import floodwall`` never imports a
network client: ``memory`` (:mod:`floodwall.stores.native`), ``shm`` and
``file`` (:mod:`floodwall.stores.shared`), ``redis``, ``rediss``,
``redis+unix``, ``redis+sentinel``, ``redis+cluster``
(:mod:`floodwall.stores.redis`). A URL is parsed once
(:mod:`floodwall.stores.url`); a backend says what it is
(:class:`~floodwall.stores.capabilities.StoreCapabilities`) and answers
failures with one policy (:mod:`floodwall.stores.failure`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from floodwall.algorithms import ALGORITHMS
from floodwall.errors import ConfigError
from floodwall.rates import Rate
from floodwall.stores.capabilities import StoreCapabilities
from floodwall.stores.url import StoreURL, parse_store_url

if TYPE_CHECKING:
    from floodwall._native import Decision

__all__ = [
    "ALGORITHMS",
    "Backend",
    "LimitSpec",
    "StoreCapabilities",
    "StoreURL",
    "open_backend",
    "register",
]

Key = str | bytes


@dataclass(frozen=True)
class LimitSpec:
    """What a backend enforces: the algorithm, the rates (decided
    all-or-nothing on one key), a namespace, and an optional test clock."""

    algorithm: str
    rates: tuple[Rate, ...]
    namespace: str = "default"
    clock: Callable[[], int] | None = None
    fail: str = "raise"
    on_error: Callable[[BaseException], object] | None = None


class Backend(Protocol):
    """What every store implements (see docs/python-api.md)."""

    capabilities: StoreCapabilities

    def bind(self, spec: LimitSpec, **options: Any) -> Backend:
        """Another limit on this same opened store (what ``store=`` of a
        limiter's ``store`` does)."""
        ...

    def check(self, key: Key, cost: int = 1) -> Decision: ...
    def allow(self, key: Key, cost: int = 1) -> bool: ...
    def peek(self, key: Key) -> Decision: ...
    def reset(self, key: Key) -> bool: ...
    def clear(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    async def acheck(self, key: Key, cost: int = 1) -> Decision: ...
    async def aallow(self, key: Key, cost: int = 1) -> bool: ...
    async def apeek(self, key: Key) -> Decision: ...
    async def areset(self, key: Key) -> bool: ...
    async def aclear(self) -> None: ...
    # a part is (backend, key), charged `cost`, or (backend, key, its own cost)
    def check_group(self, parts: Sequence[tuple[Any, ...]], cost: int) -> Decision: ...
    async def acheck_group(self, parts: Sequence[tuple[Any, ...]], cost: int) -> Decision: ...
    def close(self) -> None: ...


Factory = Callable[..., Backend]

_FACTORIES: dict[str, Factory] = {}
_LAZY_MODULES: dict[str, str] = {
    "memory": "floodwall.stores.native",
    "shm": "floodwall.stores.shared",
    "file": "floodwall.stores.shared",
    "redis": "floodwall.stores.redis",
    "rediss": "floodwall.stores.redis",
    "redis+unix": "floodwall.stores.redis",
    "unix": "floodwall.stores.redis",
    "redis+sentinel": "floodwall.stores.redis",
    "redis+cluster": "floodwall.stores.redis",
    "rediss+sentinel": "floodwall.stores.redis",
    "rediss+cluster": "floodwall.stores.redis",
    "postgresql": "floodwall.stores.postgres",
    "postgres": "floodwall.stores.postgres",
    "http": "floodwall.stores.remote",
    "https": "floodwall.stores.remote",
}

#: The extra that brings each lazily imported store's client library.
_EXTRAS = {
    "floodwall.stores.redis": ("redis-py", "redis"),
    "floodwall.stores.postgres": ("psycopg 3 and psycopg_pool", "postgres"),
    "floodwall.stores.remote": ("httpx", "remote"),
}


def register(scheme: str, factory: Factory) -> None:
    """Make ``factory(url, spec, **options) -> Backend`` serve ``scheme://``;
    ``url`` is the parsed :class:`StoreURL`."""
    _FACTORIES[scheme.lower()] = factory


def _factory_for(scheme: str) -> Factory:
    if scheme not in _FACTORIES and scheme in _LAZY_MODULES:
        try:
            importlib.import_module(_LAZY_MODULES[scheme])
        except ImportError as exc:
            extra = _EXTRAS.get(_LAZY_MODULES[scheme])
            if extra is not None:
                raise ConfigError(
                    f"the {scheme}:// store needs {extra[0]}: "
                    f"pip install 'floodwall[{extra[1]}]' ({exc})"
                ) from exc
            raise
    try:
        return _FACTORIES[scheme]
    except KeyError:
        known = ", ".join(sorted(set(_LAZY_MODULES) | set(_FACTORIES)))
        raise ConfigError(
            f"unknown store scheme {scheme!r}; known schemes: {known}"
        ) from None


def open_backend(store: Any, spec: LimitSpec, **options: Any) -> Backend:
    """Open the backend for ``store``: a URL string, an opened store (a
    backend, e.g. ``limiter.store``, or a native table), or a Redis client."""
    if isinstance(store, str):
        url = parse_store_url(store)
        return _factory_for(url.scheme)(url, spec, **options)
    if isinstance(getattr(store, "capabilities", None), StoreCapabilities):
        backend: Backend = store.bind(spec, **options)
        return backend
    from floodwall import _native

    if isinstance(store, _native.Table):
        from floodwall.stores import native

        return native.from_table(store, spec, **options)
    if _is_redis_client(store):
        from floodwall.stores import redis as redis_store

        return redis_store.from_client(store, spec, **options)
    if _is_psycopg_target(store):
        from floodwall.stores import postgres as postgres_store

        return postgres_store.from_connection(store, spec, **options)
    raise ConfigError(
        f"store must be a URL string, an opened store (limiter.store), a floodwall "
        f"table, a Redis client or a psycopg connection or pool, not {type(store).__name__}"
    )


def _is_psycopg_target(obj: object) -> bool:
    """A psycopg connection or pool (never imports psycopg: one exists only
    if the application imported it)."""
    if "psycopg" not in sys.modules and "psycopg_pool" not in sys.modules:
        return False
    from floodwall.stores.postgres import is_psycopg_target

    return is_psycopg_target(obj)


def _is_redis_client(obj: object) -> bool:
    """A redis-py client (never imports redis: a client exists only if the
    application imported it)."""
    if "redis" not in sys.modules:
        return False
    import redis
    import redis.asyncio

    kinds: list[type] = [redis.Redis, redis.asyncio.Redis]
    try:
        from redis.asyncio.cluster import RedisCluster as AsyncCluster
        from redis.cluster import RedisCluster

        kinds += [RedisCluster, AsyncCluster]
    except ImportError:  # pragma: no cover - every supported redis-py has them
        pass
    return isinstance(obj, tuple(kinds))
