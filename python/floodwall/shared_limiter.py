"""``SharedLimiter``: flint-limiter's name for a Limiter on a ``floodwall serve`` server.

``SharedLimiter(url, rate, token=..., timeout=...)`` is exactly
``Limiter(rate, store=url, token=..., timeout=...)`` on the remote store
(see docs/server.md): the same class, the same methods bound to the same
backend, nothing added on the hot path. flint's argument names are accepted
where they mean the same thing (the server's URL first, ``token``,
``timeout`` in seconds, ``rate`` with ``per``, flint's algorithm names);
those that have no meaning here (the embedded store's ``data_dir`` and
``sync`` options, the server's ``max_blocking``, configuring a key with
``limit(key, rate=..., per=...)``) raise :class:`~floodwall.ConfigError`
saying what to write instead. Invariant: a SharedLimiter is a Limiter whose
store is a floodwall server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from floodwall.algorithms import DEFAULT_ALGORITHM
from floodwall.errors import ConfigError
from floodwall.limiter import Key, Limiter, Period, RateInput

__all__ = ["FLINT_ALGORITHMS", "SharedLimiter"]

F = TypeVar("F", bound=Callable[..., Any])

#: flint's algorithm names, and floodwall's for the same algorithm.
FLINT_ALGORITHMS = {
    "sliding_window_log": "sliding_log",
    "fixed_window_counter": "fixed_window",
}

#: flint options with no meaning for a client of floodwall's server, and what
#: to do instead.
_NOT_HERE = {
    "data_dir": "the server keeps the table: `floodwall serve --store file:///path`",
    "sync": "durability is the server's: `floodwall serve --store 'file:///path?sync=always'`",
    "flush_every_ms": "the server's: `floodwall serve --store 'file:///path?sync=interval"
                      "&sync_interval_ms=100'`",
    "flush_every_events": "floodwall syncs by time: the server's `sync_interval_ms`",
    "max_blocking": "the server bounds its own concurrency (see docs/server.md, Bounds)",
}


class SharedLimiter(Limiter):
    """A :class:`~floodwall.Limiter` whose store is the floodwall server at
    ``url`` (``http://127.0.0.1:7878`` or ``https://...``).

    ``rate`` (and ``per``, ``burst``, ``algorithm``) are the Limiter's: one
    limiter serves any number of keys. ``token`` is the server's bearer token
    (prefer ``token_file=PATH`` or the ``FLOODWALL_SERVER_TOKEN`` variable,
    which the remote store reads when no token is given); ``timeout`` bounds
    each call in seconds. Other keywords are the Limiter's and the remote
    store's (``fail``, ``namespace``, ``breaker_threshold``, ``prefix``...).
    """

    def __init__(
        self,
        url: str,
        rate: RateInput = None,
        *,
        per: Period | None = None,
        algorithm: str = DEFAULT_ALGORITHM,
        token: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> None:
        for name, instead in _NOT_HERE.items():
            if name in options:
                raise ConfigError(
                    f"SharedLimiter({name}=...) is flint's and has no meaning for a client of "
                    f"floodwall's server: {instead}"
                )
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"SharedLimiter needs the floodwall server's URL (http://127.0.0.1:7878 or "
                f"https://host:7878), got {url!r}; for a table shared on one host use "
                "Limiter(rate, store='shm://NAME' or 'file:///path')"
            )
        if rate is None and per is None and "requests" not in options:
            raise ConfigError(
                "SharedLimiter needs its rate: SharedLimiter(url, '100/minute') or "
                "SharedLimiter(url, rate=100, per='1m'); floodwall sets the rate on the "
                "limiter, which then serves any number of keys (flint's limit(key, rate=..., "
                "per=...) has no equivalent)"
            )
        if token is not None:
            options["token"] = token
        if timeout is not None:
            options["timeout"] = timeout
        super().__init__(
            rate,
            per=per,
            algorithm=FLINT_ALGORITHMS.get(algorithm, algorithm),
            store=url,
            **options,
        )

    def limit(
        self,
        key: Key | Callable[..., Key] | None = None,
        cost: int | Callable[..., int] = 1,
        **flint: Any,
    ) -> Callable[[F], F]:
        """The decorator of :meth:`Limiter.limit`; flint's ``limit(key,
        rate=..., per=...)``, which configures a key, is refused with what to
        write instead."""
        if flint:
            raise ConfigError(
                f"SharedLimiter.limit({key!r}, {', '.join(f'{k}=...' for k in flint)}) "
                "configures a key in flint; in floodwall the rate belongs to the limiter: "
                "SharedLimiter(url, rate=100, per='1m') serves every key, and limit() "
                "decorates a function"
            )
        return super().limit(key, cost)
