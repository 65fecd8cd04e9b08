"""The one failure policy: what a check answers when its store cannot decide.

Every store that can fail uses it: the native table when it is full
(``StoreFullError``) or when a lock cannot be taken in time (a
``StoreError`` raised from the engine), Redis when it is unreachable, slow or
answers nonsense, and the stores to come. Its parts:

- ``fail=``: ``"raise"`` (:class:`~floodwall.StoreError`), ``"open"``
  (admit) or ``"closed"`` (deny); the defaults of each entry point are
  :data:`LIBRARY_FAIL_DEFAULT` (``Limiter``, ``Limits``) and
  :data:`WEB_FAIL_DEFAULT` (every web integration and ``@rate_limit``),
  stated for users in docs/frameworks.md, "Failure defaults";
- the fallback decision, with **one meaning** on every store: ``fail="open"``
  admits with ``fallback=True`` and ``remaining=0``; ``fail="closed"``
  denies with ``fallback=True``, ``remaining=0`` and ``retry_after`` = the
  time until the store will be tried again (the circuit breaker's remaining
  cooldown, else :data:`DEFAULT_RETRY_AFTER`);
- **readable parts first**: when some parts of a check could still be read
  and one of them denies, that denial is the answer, whatever ``fail=``
  says. A fallback never admits a request that a readable part denies;
- ``on_error``: called with the exception before the policy decides;
- the counters (``errors``, ``fallbacks``);
- the log: a fallback is logged as a warning on the ``floodwall.store``
  logger, at most once per ``warning_interval`` seconds per policy (one
  limiter on one store; :data:`LOG_INTERVAL` by default, ``[logging]
  warning_interval`` in a configuration), with the number of fallbacks
  skipped since the last warning, so an outage does not flood the log;
- the timeout and circuit-breaker settings of network stores
  (:class:`FailureSettings`; the breaker itself is
  :class:`floodwall.stores.breaker.CircuitBreaker`).

A caller's mistake (a bad cost, a key of the wrong type) is never a store
failure: it is raised at the call, before the store is asked, and never
counts here nor trips a breaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from floodwall._native import Decision
from floodwall.errors import ConfigError, StoreError

__all__ = [
    "DEFAULT_BREAKER_COOLDOWN",
    "DEFAULT_BREAKER_THRESHOLD",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TIMEOUT",
    "FAIL_MODES",
    "LIBRARY_FAIL_DEFAULT",
    "LOG_INTERVAL",
    "WEB_FAIL_DEFAULT",
    "FailurePolicy",
    "FailureSettings",
    "check_fail_mode",
    "group_on_error",
    "set_warning_interval",
]

#: What ``fail=`` accepts.
FAIL_MODES = ("raise", "open", "closed")

#: ``fail=`` of a library call (``Limiter``, ``Limits``, ``check_all``): a
#: call made by the program itself does not hide a store error.
LIBRARY_FAIL_DEFAULT = "raise"
#: ``fail=`` of every web integration (ASGI/FastAPI/Starlette, Flask,
#: Django, DRF) and of ``@floodwall.rate_limit``: a full table or a store
#: outage must not turn every request into an HTTP 500; the fallback is
#: logged and counted.
WEB_FAIL_DEFAULT = "open"

#: Default seconds between two warnings of one failure policy on the
#: ``floodwall.store`` logger (the fallbacks in between are counted in the
#: next warning); ``[logging] warning_interval`` changes it.
LOG_INTERVAL = 60.0
#: The interval in force (one cell, set by :func:`set_warning_interval`).
warning_interval = [LOG_INTERVAL]

logger = logging.getLogger("floodwall.store")


def set_warning_interval(seconds: float) -> None:
    """Seconds between two fallback warnings of one failure policy."""
    warning_interval[0] = float(seconds)

#: Seconds a ``fail="closed"`` denial asks to wait when no breaker says when
#: the store will be tried again.
DEFAULT_RETRY_AFTER = 1.0

#: Seconds a check of a network store waits in total (a pooled connection,
#: connecting, the answer) before the policy decides.
DEFAULT_TIMEOUT = 0.25
#: Consecutive failures that open a circuit breaker (0: never).
DEFAULT_BREAKER_THRESHOLD = 5
#: Seconds an open breaker skips its store before one probe is tried.
DEFAULT_BREAKER_COOLDOWN = 1.0

OnError = Callable[[BaseException], object]

#: The ``on_error`` hooks of the other limiters of the group check
#: (``check_all``) in progress in this context: the first limiter's policy
#: answers for the group and calls them after its own.
group_on_error: ContextVar[tuple[OnError, ...]] = ContextVar(
    "floodwall_group_on_error", default=()
)


def check_fail_mode(fail: object) -> str:
    """``fail`` itself, or ConfigError naming the allowed values."""
    if not isinstance(fail, str) or fail not in FAIL_MODES:
        raise ConfigError(f"fail must be one of {', '.join(FAIL_MODES)}, got {fail!r}")
    return fail


class FailurePolicy:
    """One limiter's answer to a store failure (see the module docstring).

    ``label`` names the store in messages ("Redis", "memory://"...).
    Thread-safe; used only on the error path, never on a healthy check.
    """

    __slots__ = (
        "_lock",
        "_logged_at",
        "_unlogged",
        "errors",
        "fallbacks",
        "label",
        "mode",
        "on_error",
        "retry_after",
    )

    def __init__(
        self,
        mode: str = LIBRARY_FAIL_DEFAULT,
        on_error: OnError | None = None,
        *,
        label: str = "the store",
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        self.mode = check_fail_mode(mode)
        if on_error is not None and not callable(on_error):
            raise ConfigError("on_error must be a callable taking the exception")
        if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) or not (
            retry_after > 0
        ):
            raise ConfigError(f"retry_after must be seconds > 0, got {retry_after!r}")
        self.on_error = on_error
        self.label = label
        self.retry_after = float(retry_after)
        self.errors = 0
        self.fallbacks = 0
        self._logged_at: float | None = None
        self._unlogged = 0
        self._lock = threading.Lock()

    def decide(
        self,
        exc: BaseException,
        rate: Any,
        readable: Decision | None = None,
        retry_in: float | None = None,
        reached: bool = True,
    ) -> Decision:
        """The answer to a check that failed with ``exc``.

        ``rate``: the first rate of the check (the fallback's ``limit`` is its
        capacity). ``readable``: the denial of a part the store could still
        read, if any (it wins). ``retry_in``: seconds until the store will be
        tried again, if the store knows (a breaker). ``reached``: False
        when the store was not even tried (an open breaker): that is not a
        new error, so neither ``errors`` nor ``on_error`` see it.
        """
        if reached:
            with self._lock:
                self.errors += 1
            if self.on_error is not None:
                self.on_error(exc)
            for hook in group_on_error.get():
                hook(exc)
        if readable is not None and not readable.allowed:
            return readable
        if self.mode == "raise":
            if isinstance(exc, StoreError):
                raise exc
            raise StoreError(f"{self.label} failed: {type(exc).__name__}: {exc}") from exc
        count = 0
        with self._lock:
            self.fallbacks += 1
            self._unlogged += 1
            now = time.monotonic()
            due = self._logged_at is None or now - self._logged_at >= warning_interval[0]
            if due:
                self._logged_at = now
                count, self._unlogged = self._unlogged - 1, 0
        if due:
            self._log(exc, count)
        burst = int(getattr(rate, "burst", 0) or 0)
        if self.mode == "open":
            return Decision(True, burst, 0, 0, 0, 0, rate=rate, fallback=True)
        wait = retry_in if retry_in else self.retry_after
        wait_ns = max(1, int(wait * 1e9))
        return Decision(False, burst, 0, wait_ns, wait_ns, 0, rate=rate, fallback=True)

    def _log(self, exc: BaseException, skipped: int) -> None:
        answer = "admitted" if self.mode == "open" else "denied"
        more = f"{skipped} more since the last warning; " if skipped else ""
        logger.warning(
            "floodwall: %s could not decide (%s: %s); fail=%r %s the request "
            "(%sat most one warning per %gs per limit; "
            "pass fail='raise' to get the error instead)",
            self.label,
            type(exc).__name__,
            exc,
            self.mode,
            answer,
            more,
            warning_interval[0],
        )

    def __repr__(self) -> str:
        return (
            f"<FailurePolicy fail={self.mode!r} errors={self.errors} "
            f"fallbacks={self.fallbacks} on {self.label}>"
        )


@dataclass(frozen=True)
class FailureSettings:
    """How long a network store waits, and when its breaker opens.

    ``timeout``: seconds a check waits in total (None: no deadline of
    floodwall's own; the client's apply). ``connect_timeout``: seconds to
    connect (default: ``timeout``). ``breaker_threshold``: consecutive
    failures that open the breaker (0 disables it). ``breaker_cooldown``:
    seconds it stays open before one probe.
    """

    timeout: float | None = DEFAULT_TIMEOUT
    connect_timeout: float | None = None
    breaker_threshold: int = DEFAULT_BREAKER_THRESHOLD
    breaker_cooldown: float = DEFAULT_BREAKER_COOLDOWN

    @classmethod
    def from_options(cls, opts: Mapping[str, Any]) -> FailureSettings:
        """Validated settings from already-typed options; ConfigError names
        the option and what is allowed."""
        timeout = opts.get("timeout", DEFAULT_TIMEOUT)
        _seconds("timeout", timeout, allow_none=True)
        connect = opts.get("connect_timeout")
        _seconds("connect_timeout", connect, allow_none=True)
        threshold = opts.get("breaker_threshold", DEFAULT_BREAKER_THRESHOLD)
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise ConfigError(f"breaker_threshold must be an int >= 0, got {threshold!r}")
        cooldown = opts.get("breaker_cooldown", DEFAULT_BREAKER_COOLDOWN)
        _seconds("breaker_cooldown", cooldown, allow_none=False)
        return cls(timeout, connect, threshold, float(cooldown))


def _seconds(name: str, value: object, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be seconds > 0{extra}, got {value!r}")
