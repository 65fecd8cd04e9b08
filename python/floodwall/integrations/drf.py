"""Django REST framework throttle classes.

FloodwallThrottle and friends plug into DEFAULT_THROTTLE_CLASSES or a
view's throttle_classes, read DRF rate strings ("100/min", "5/hour") from
DEFAULT_THROTTLE_RATES by scope, and decide with the store configured in
settings.FLOODWALL. Invariant: wait() is the ceiling of the exact wait (plus
jitter if configured), so DRF's Retry-After admits a client that obeys it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from floodwall.integrations._common import Limit, LimitSet, Outcome
from floodwall.integrations.django import (
    _OUTCOME_ATTR,
    DjangoView,
    _settings_guard,
    get_guard,
)

__all__ = [
    "FloodwallAnonThrottle",
    "FloodwallScopedThrottle",
    "FloodwallThrottle",
    "FloodwallUserThrottle",
    "parse_drf_rate",
]

_DRF_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The period words DRF's own rates use; DRF reads only the first letter, so
#: "100/month" would silently be per minute: any other word is refused.
_DRF_WORDS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
}  # fmt: skip


def parse_drf_rate(rate: str) -> Any:
    """A DRF rate string ("100/min", "5/hour", "10/s", "1000/day") as a
    floodwall Rate; any other text is handed to floodwall.parse_rates
    ("5/5minutes", "10/s; 100/day"). Unlike DRF, the whole unit is read, not
    its first letter: "100/month" is refused, never read as per minute."""
    from floodwall import Rate, parse_rates

    num, sep, period = rate.strip().partition("/")
    period = period.strip().lower()
    digits = num.strip()
    if sep and digits.isascii() and digits.isdigit() and period.isascii() and period.isalpha():
        unit = _DRF_WORDS.get(period)
        if unit is None:
            from floodwall.errors import RateParseError

            raise RateParseError(
                f"throttle rate {rate!r}: unknown unit {period!r}; DRF rates take "
                "second, minute, hour or day (s, min, h, d), e.g. '100/hour'; "
                "floodwall rates take more, e.g. '100/30days'"
            )
        return Rate(int(digits), _DRF_UNITS[unit])
    return parse_rates(rate)


class FloodwallThrottle(BaseThrottle):  # type: ignore[misc]
    """A DRF throttle deciding with floodwall.

    Class attributes: ``scope`` (the DEFAULT_THROTTLE_RATES entry, default
    "floodwall"), ``rate`` (overrides the settings entry), ``key`` (default
    "user": the authenticated user, else the client IP), ``cost``,
    ``algorithm``. A rate of None means "not throttled".
    """

    scope: ClassVar[str] = "floodwall"
    rate: ClassVar[str | None] = None
    key: ClassVar[Any] = "user"
    cost: ClassVar[Any] = None  # int, or callable(request) -> int
    algorithm: ClassVar[str | None] = None

    _sets: ClassVar[dict[tuple[Any, ...], LimitSet]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.outcome: Outcome | None = None

    def get_scope(self, request: Any, view: Any) -> str | None:
        return self.scope

    def get_rate(self, scope: str) -> str | None:
        if self.rate is not None:
            return self.rate
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[scope]  # type: ignore[no-any-return]
        except KeyError:
            raise ImproperlyConfigured(
                f"no throttle rate for scope {scope!r}: set "
                f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'][{scope!r}] or {type(self).__name__}.rate"
            ) from None

    def accepts(self, request: Any) -> bool:
        """Whether this throttle applies to the request at all."""
        return True

    def _limits(self, scope: str, rate: str) -> LimitSet:
        ident = (type(self), scope, rate, _settings_guard.generation)
        limits = self._sets.get(ident)
        if limits is None:
            with self._lock:
                limits = self._sets.get(ident)
                if limits is None:
                    spec = Limit(
                        parse_drf_rate(rate),
                        key=self.key,
                        name=scope,
                        algorithm=self.algorithm,
                    )
                    limits = get_guard().limit_set([spec], scope="drf:" + scope, cost=self.cost)
                    self._sets[ident] = limits
        return limits

    def allow_request(self, request: Any, view: Any) -> bool:
        if not self.accepts(request):
            return True
        scope = self.get_scope(request, view)
        if scope is None:
            return True
        rate = self.get_rate(scope)
        if rate is None:
            return True
        limits = self._limits(scope, rate)
        http_request = getattr(request, "_request", request)
        guard = get_guard()
        outcome = guard.check(limits, DjangoView(http_request, request))
        self.outcome = outcome
        if outcome is None:
            return True
        # The middleware (if installed) writes these headers on the response.
        # With several throttle classes a denial's headers win: a 429 shows
        # the limit that denied, not one that allowed.
        previous = getattr(http_request, _OUTCOME_ATTR, None)
        if previous is None or previous.allowed:
            setattr(http_request, _OUTCOME_ATTR, outcome)
        if outcome.allowed:
            guard.wait(outcome, time.sleep)
        return outcome.allowed

    def wait(self) -> float | None:
        outcome = self.outcome
        if outcome is None or outcome.allowed or outcome.decision is None:
            return None
        return float(outcome.retry_after)


class FloodwallUserThrottle(FloodwallThrottle):
    """Like DRF's UserRateThrottle: scope "user", keyed by user, else IP."""

    scope: ClassVar[str] = "user"


class FloodwallAnonThrottle(FloodwallThrottle):
    """Like DRF's AnonRateThrottle: scope "anon", anonymous requests only, by IP."""

    scope: ClassVar[str] = "anon"
    key: ClassVar[Any] = "ip"

    def accepts(self, request: Any) -> bool:
        user = getattr(request, "user", None)
        return not (user is not None and getattr(user, "is_authenticated", False))


class FloodwallScopedThrottle(FloodwallThrottle):
    """Like DRF's ScopedRateThrottle: the scope is the view's ``throttle_scope``."""

    def get_scope(self, request: Any, view: Any) -> str | None:
        return getattr(view, "throttle_scope", None)
