"""floodwall: a rate limiter for Python services with a C engine.

    >>> import floodwall
    >>> limiter = floodwall.Limiter("100/minute")
    >>> limiter.allow("user:42")
    True

One engine and one meaning of every decision on every store: memory://,
shm://, file://, Redis. See the README for the algorithms and the decision
contract. Framework integrations live in :mod:`floodwall.integrations` and are
imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from floodwall._native import Decision
from floodwall._version import __version__
from floodwall.errors import (
    ConfigError,
    CostError,
    FloodwallError,
    KeyTypeError,
    RateLimited,
    RateParseError,
    StoreError,
    StoreFullError,
)
from floodwall.limiter import Limiter, Limits, aallow_all, acheck_all, allow_all, check_all
from floodwall.rates import Rate, parse_rate, parse_rates
from floodwall.shared_limiter import SharedLimiter

if TYPE_CHECKING:
    from floodwall.config.registry import limiter as named_limiter
    from floodwall.decorator import rate_limit as rate_limit

__all__ = [
    "ConfigError",
    "CostError",
    "Decision",
    "FloodwallError",
    "KeyTypeError",
    "Limiter",
    "Limits",
    "Rate",
    "RateLimited",
    "RateParseError",
    "SharedLimiter",
    "StoreError",
    "StoreFullError",
    "__version__",
    "aallow_all",
    "acheck_all",
    "allow_all",
    "check_all",
    "named_limiter",
    "parse_rate",
    "parse_rates",
    "rate_limit",
]


def __getattr__(name: str) -> Any:
    # framework glue is imported on first use only
    if name == "rate_limit":
        from floodwall.decorator import rate_limit

        return rate_limit
    if name == "named_limiter":  # floodwall.named_limiter("login")
        from floodwall.config.registry import limiter

        return limiter
    raise AttributeError(f"module 'floodwall' has no attribute {name!r}")
