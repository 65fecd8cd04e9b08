"""Store registry: turns a store URL (or client object) into a backend.

Built-in schemes are imported lazily, so ``import floodwall`` never imports a
network client: ``memory`` (here), ``shm`` and ``file``
(:mod:`floodwall.stores.shared`), ``redis``, ``rediss``, ``redis+unix``,
``redis+sentinel``, ``redis+cluster`` (:mod:`floodwall.stores.redis`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, Union
from urllib.parse import urlsplit

from floodwall.errors import ConfigError
from floodwall.rates import Rate

if TYPE_CHECKING:
    from floodwall._native import Decision

__all__ = [
    "ALGORITHMS",
    "Backend",
    "LimitSpec",
    "open_backend",
    "register",
]

Key = Union[str, bytes]

#: Every algorithm name, in the engine's numbering.
ALGORITHMS: dict[str, int] = {
    "gcra": 0,
    "token_bucket": 1,
    "leaky_bucket": 2,
    "leaky_bucket_shaping": 3,
    "fixed_window": 4,
    "sliding_window": 5,
    "sliding_log": 6,
}


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

    def check(self, key: Key, cost: int = 1) -> Decision: ...
    def allow(self, key: Key, cost: int = 1) -> bool: ...
    def peek(self, key: Key) -> Decision: ...
    def reset(self, key: Key) -> None: ...
    def clear(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    async def acheck(self, key: Key, cost: int = 1) -> Decision: ...
    async def aallow(self, key: Key, cost: int = 1) -> bool: ...
    async def apeek(self, key: Key) -> Decision: ...
    async def areset(self, key: Key) -> None: ...
    async def aclear(self) -> None: ...
    def check_group(self, parts: Sequence[tuple[Backend, Key]], cost: int) -> Decision: ...
    async def acheck_group(
        self, parts: Sequence[tuple[Backend, Key]], cost: int
    ) -> Decision: ...
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
}


def register(scheme: str, factory: Factory) -> None:
    """Make ``factory(url, spec, **options) -> Backend`` serve ``scheme://``."""
    _FACTORIES[scheme.lower()] = factory


def _factory_for(scheme: str) -> Factory:
    if scheme not in _FACTORIES and scheme in _LAZY_MODULES:
        try:
            importlib.import_module(_LAZY_MODULES[scheme])
        except ImportError as exc:
            if scheme.startswith(("redis", "unix")):
                raise ConfigError(
                    f"the {scheme}:// store needs redis-py: "
                    f"pip install 'floodwall[redis]' ({exc})"
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
    """Open the backend for ``store``: a URL string, a native table, a
    limiter (to share its store), or a Redis client object."""
    if isinstance(store, str):
        scheme = urlsplit(store).scheme.lower()
        if not scheme or "://" not in store:
            raise ConfigError(
                f"store must be a URL such as 'memory://', 'shm://NAME', "
                f"'file:///path' or 'redis://host:6379/0', got {store!r}"
            )
        return _factory_for(scheme)(store, spec, **options)
    from floodwall.stores import native

    if native.is_native_store(store):
        return native.from_store(store, spec, **options)
    module = type(store).__module__
    if module.startswith(("redis", "floodwall.stores.redis")):
        from floodwall.stores import redis as redis_store

        return redis_store.from_client(store, spec, **options)
    raise ConfigError(
        f"store must be a URL string, a floodwall table or a Redis client, "
        f"not {type(store).__name__}"
    )
