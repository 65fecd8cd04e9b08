"""A circuit breaker for network stores (part of the failure policy).

After ``threshold`` consecutive failures the breaker opens: calls are not
even tried for ``cooldown`` seconds (each costs a lock-free attribute read),
then one probe is let through (half-open); its success closes the breaker,
its failure opens it for another cooldown. Settings and their defaults live
in :mod:`floodwall.stores.failure`. Invariant: while closed, ``allow()`` and
``success()`` take no lock; at most one probe is in flight per cooldown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]

CLOSED = 0
OPEN = 1
HALF_OPEN = 2


class CircuitBreaker:
    """Skip a failing store for a while instead of waiting on it each call.

    ``threshold`` 0 disables the breaker (every call is tried).
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_lock",
        "_open_until",
        "_probe_since",
        "_state",
        "cooldown",
        "threshold",
        "trips",
    )

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise ValueError(f"breaker threshold must be an int >= 0, got {threshold!r}")
        if not isinstance(cooldown, (int, float)) or isinstance(cooldown, bool) or not cooldown > 0:
            raise ValueError(f"breaker cooldown must be seconds > 0, got {cooldown!r}")
        self.threshold = threshold
        self.cooldown = float(cooldown)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._open_until = 0.0
        self._probe_since = 0.0
        self.trips = 0

    @property
    def state(self) -> int:
        return self._state

    def allow(self) -> bool:
        """May a call be made now? (Claims the probe when half-opening.)"""
        if self._state == CLOSED:
            return True
        with self._lock:
            now = self._clock()
            if self._state == OPEN:
                if now < self._open_until:
                    return False
                self._state = HALF_OPEN
                self._probe_since = now
                return True
            if self._state == HALF_OPEN:
                # a probe that never reported back (cancelled task...) is
                # replaced after one cooldown
                if now - self._probe_since >= self.cooldown:
                    self._probe_since = now
                    return True
                return False
            return True

    def success(self) -> None:
        if self._state == CLOSED and not self._failures:
            return
        with self._lock:
            self._failures = 0
            self._state = CLOSED

    def failure(self) -> bool:
        """Count a failure; True when it just opened the breaker."""
        if not self.threshold:
            return False
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.threshold:
                opened = self._state != OPEN
                if opened:
                    self.trips += 1
                self._state = OPEN
                self._open_until = self._clock() + self.cooldown
                return opened
            return False

    def retry_in(self) -> float:
        """Seconds until the next call will be tried (0 if now)."""
        if self._state != OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def __repr__(self) -> str:
        name = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half-open"}[self._state]
        return f"<CircuitBreaker {name} failures={self._failures} trips={self.trips}>"
