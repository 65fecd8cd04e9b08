"""floodwall's exceptions: one base class, and a subclass per kind of problem.

Bad input raises subclasses of the built-in ``ValueError`` / ``TypeError`` as
well, so ``except ValueError`` keeps working for callers that expect it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from floodwall._native import Decision

__all__ = [
    "ConfigError",
    "CostError",
    "FloodwallError",
    "KeyTypeError",
    "RateLimited",
    "RateParseError",
    "StoreError",
    "StoreBusyError",
    "StoreFullError",
]


class FloodwallError(Exception):
    """Base class of every error floodwall raises."""


class RateLimited(FloodwallError):
    """Raised by decorators when a call is over its limit; carries the
    decision, and the ``key`` and ``cost`` that were refused (None when the
    raiser did not say)."""

    def __init__(
        self,
        decision: Decision,
        message: str | None = None,
        *,
        key: str | bytes | None = None,
        cost: int | None = None,
    ) -> None:
        self.decision = decision
        self.key = key
        self.cost = cost
        if message is None:
            who = "" if key is None else f" for key {_short(key)}"
            units = "" if cost is None else f" (cost {cost})"
            message = (
                f"rate limited{who}{units}: retry after {decision.retry_after:.3f}s"
                f" ({decision.rate})"
            )
        super().__init__(message)

    @property
    def retry_after(self) -> float:
        """Seconds until the same request would be admitted."""
        return self.decision.retry_after


def _short(key: str | bytes, limit: int = 60) -> str:
    """A key for a message, cut short (a key may be long or hostile)."""
    text = repr(key)
    return text if len(text) <= limit else text[:limit] + "..."


class StoreError(FloodwallError):
    """The store could not answer (unreachable, damaged, full...)."""


class StoreFullError(StoreError):
    """The table has no free or expired slot for a new key."""


class StoreBusyError(StoreError):
    """A lock of a shared table stayed held too long (its owner is stopped or
    too slow): the check gave up after a bounded wait; nothing was consumed."""


class ConfigError(FloodwallError, ValueError):
    """A configuration (file, URL, option) is invalid; the message says where."""


class RateParseError(FloodwallError, ValueError):
    """A rate string could not be parsed; the message shows the grammar."""


class CostError(FloodwallError, ValueError):
    """A cost is not an int >= 0, or exceeds the capacity (it could never pass)."""


class KeyTypeError(FloodwallError, TypeError):
    """A key is neither str nor bytes."""
