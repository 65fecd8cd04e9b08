"""Leaky-bucket shaping bounds for a Guard.

With ``leaky_bucket_shaping`` an admitted request may be held (slept) before
it is served. This module keeps that waiting bounded: ``max_delay`` caps how
long one request is held (the queue of each key is built no deeper, and a
longer delay is denied as a policing limiter would deny it), and
``max_waiting`` caps the waiting one worker process holds at once (summed
over the requests held); a request that would go over either is denied
with an honest Retry-After. :class:`ShapingBudget` is mixed into Guard.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from floodwall.errors import ConfigError

if TYPE_CHECKING:
    from floodwall import Decision
    from floodwall.integrations._common import Limit, LimitSet, Outcome

__all__ = ["DEFAULT_MAX_DELAY", "DEFAULT_MAX_WAITING", "ShapingBudget"]

_SHAPING = "leaky_bucket_shaping"
#: Shaping defaults: the longest a request may be held, and the most waiting
#: (in seconds, summed over requests held at once) one worker may hold.
DEFAULT_MAX_DELAY = 1.0
DEFAULT_MAX_WAITING = 10.0


class ShapingBudget:
    """The max_delay / max_waiting bounds of a Guard and the waiting it holds."""

    max_delay: float
    max_waiting: float
    _max_delay_ns: int
    _held: float
    _held_lock: threading.Lock

    def _init_shaping(self, max_delay: float, max_waiting: float) -> None:
        """Check and set the bounds (Guard options ``max_delay``, ``max_waiting``)."""
        for opt, val in (("max_delay", max_delay), ("max_waiting", max_waiting)):
            if (
                isinstance(val, bool)
                or not isinstance(val, (int, float))
                or not math.isfinite(val)
                or val < 0
            ):
                raise ConfigError(f"{opt} must be a finite number of seconds >= 0, got {val!r}")
        self.max_delay = float(max_delay)
        self.max_waiting = float(max_waiting)
        self._max_delay_ns = int(self.max_delay * 1e9)
        self._held = 0.0
        self._held_lock = threading.Lock()

    def _shaped_rates(self, limit: Limit, cost: int | Callable[[Any], int]) -> Any:
        """A shaping limit's rates with a queue no deeper than max_delay.

        With interval T = ceil(period / amount) and capacity B, the engine
        delays a request by at most (B - 1) * T, so B is lowered to
        floor(max_delay / T) + 1 (never below the route's fixed cost, which
        then waits (B - cost) * T <= max_delay). A callable cost keeps B
        (a lower B could refuse its larger costs as errors): max_delay is
        then enforced when the request is checked.
        """
        from floodwall import Rate
        from floodwall.limiter import resolve_rates

        if isinstance(cost, int):
            rates = resolve_rates(limit.rate, burst=limit.burst)
            out = []
            for r in rates:
                interval = -(-r.period_ns // r.amount)
                cap = max(self._max_delay_ns // interval + 1, cost, 1)
                out.append(Rate.from_ns(r.amount, r.period_ns, min(r.burst, cap)))
            return out
        return limit.rate

    def _hold(self, limits: LimitSet, decision: Decision, cost: int) -> Outcome:
        """An admitted request with a shaping delay: reserve its wait in the
        worker's budget, or deny it if it would wait longer than max_delay
        or the budget is spent. The caller sleeps with :meth:`wait` /
        :meth:`await_delay`, which give the reservation back."""
        delay_ns = decision.delay_ns
        delay = delay_ns / 1e9
        rate = decision.rate
        step = cost * -(-rate.period_ns // rate.amount) if rate is not None else 0
        if delay_ns > self._max_delay_ns:
            # Only a ready Limiter or a callable cost gets here (the queues a
            # Guard builds are no deeper than max_delay). The store has taken
            # the request; once it is served, a new one waits no longer than
            # max_delay: that is the honest Retry-After.
            return self._refuse(limits, decision, delay_ns + step - self._max_delay_ns)
        with self._held_lock:
            if self._held + delay > self.max_waiting:
                full = True
            else:
                full = False
                self._held += delay
        if full:
            # Once this key's queue has drained, a request needs no waiting.
            return self._refuse(limits, decision, delay_ns + step)
        from floodwall.integrations._common import Outcome

        outcome = Outcome(decision, limits)
        outcome.held = delay
        return outcome

    def _refuse(self, limits: LimitSet, decision: Decision, retry_ns: int) -> Outcome:
        from floodwall import Decision as _Decision
        from floodwall.integrations._common import Outcome

        retry_ns = max(retry_ns, 1)
        denied = _Decision(
            False,
            decision.limit,
            0,
            retry_ns,
            max(decision.reset_after_ns, retry_ns),
            0,
            decision.rate,
        )
        return Outcome(denied, limits, limits.headers.retry_after(denied))

    def release(self, outcome: Outcome) -> None:
        """Give back the waiting an outcome holds (idempotent)."""
        held = outcome.held
        if held:
            outcome.held = 0.0
            with self._held_lock:
                self._held = max(0.0, self._held - held)

    @property
    def waiting(self) -> float:
        """Seconds of shaping delay currently held by this worker."""
        return self._held

    def wait(self, outcome: Outcome, sleep: Callable[[float], Any]) -> None:
        """Sleep an allowed request's shaping delay, then release it."""
        if outcome.held or outcome.delay:
            try:
                sleep(outcome.delay)
            finally:
                self.release(outcome)

    async def await_delay(self, outcome: Outcome, sleep: Callable[[float], Awaitable[Any]]) -> None:
        """Await an allowed request's shaping delay, then release it."""
        if outcome.held or outcome.delay:
            try:
                await sleep(outcome.delay)
            finally:
                self.release(outcome)
