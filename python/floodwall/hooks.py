"""Hooks: ``on_allow`` / ``on_block`` called after each decision of a limiter.

:class:`Observer` is the wrapper a :class:`~floodwall.Limiter` binds in place
of the store's own methods **only** when something observes its decisions
one by one (``on_allow``, ``on_block``, ``events=``, metrics with
``units=True`` or ``latency=True``). With none of them set, a limiter's
methods stay the store's C methods and observing costs nothing; decision
counts are then read from the store's own counters when metrics are scraped
(:mod:`floodwall.observe.metrics`). ``on_error`` is the failure policy's
(:mod:`floodwall.stores.failure`).

A group check (``check_all``, :class:`~floodwall.Limits`, a route's several
limits) is observed by each of its limiters: :func:`notify_group` gives
each the group's decision, and :func:`group_on_errors` the ``on_error``
hooks the policy answering for the group calls besides its own.

Invariant: a hook never changes a decision, and a hook that raises never
fails the check it observes (it is logged and counted). Hooks see
:func:`key_id`, the hashed key, never the raw key.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from floodwall.errors import ConfigError
from floodwall.stores.netkeys import key_bytes, resolve_key_secret

if TYPE_CHECKING:
    from floodwall._native import Decision
    from floodwall.observe.events import Events

__all__ = [
    "HOOK_LOG_INTERVAL",
    "KEY_LABELS_MAX",
    "Hook",
    "Observer",
    "group_on_errors",
    "key_id",
    "notify_group",
    "store_kind",
]

Key = str | bytes
#: ``hook(decision, info)``; ``info`` has ``limit``, ``key`` (hashed),
#: ``cost``, ``store`` and ``fallback``.
Hook = Callable[["Decision", Mapping[str, Any]], object]

#: Seconds between two log records about the same failing hook.
HOOK_LOG_INTERVAL = 60.0
#: Distinct values a ``key_label`` function may give one limiter; the
#: decisions of further values are counted under ``"other"``.
KEY_LABELS_MAX = 1000

logger = logging.getLogger("floodwall.hooks")

_ID_PERSON = b"floodwall-event"


def key_id(key: Key, secret: bytes | None = None) -> str:
    """The id of ``key`` shown by hooks, events and ``floodwall history``:
    32 hex digits of a BLAKE2b of the key, keyed by ``secret`` (default: the
    deployment's ``FLOODWALL_KEY_SECRET``, read once per process, as for
    network stores). The raw key never leaves the process this way."""
    raw = key_bytes(key)
    if secret is None:
        h = (_id_template[0] if _id_template else _make_template()).copy()
    else:
        h = hashlib.blake2b(digest_size=16, key=secret[:64], person=_ID_PERSON)
    h.update(raw)
    return str(h.hexdigest())


#: the keyed hash state every key_id starts from (copying it is cheap)
_id_template: list[Any] = []


def _make_template() -> Any:
    # the secret, its environment variable and its rules are the network
    # stores' (one home: floodwall.stores.netkeys)
    secret = resolve_key_secret() or b""
    template = hashlib.blake2b(digest_size=16, key=secret, person=_ID_PERSON)
    _id_template[:] = [template]
    return template


def store_kind(backend: Any) -> str:
    """The store's kind (memory, shm, file, redis...): a bounded label."""
    caps = getattr(backend, "capabilities", None)
    return str(getattr(caps, "kind", type(backend).__name__))


def _check_hook(name: str, hook: object) -> None:
    if hook is not None and not callable(hook):
        raise ConfigError(f"{name} must be a callable taking (decision, info), not {hook!r}")


class _Units:
    """Units (cost) of the observed decisions, allowed and denied."""

    __slots__ = ("allowed", "denied")

    def __init__(self) -> None:
        self.allowed = 0
        self.denied = 0


class Observer:
    """Calls the hooks of one limiter after each of its checks, emits its
    sampled events, and counts units; it never changes a decision.

    ``check``/``allow``/``acheck``/``aallow`` wrap the backend's. A hook that
    raises is logged on ``floodwall.hooks`` (at most once per
    :data:`HOOK_LOG_INTERVAL` per observer) and counted in
    ``hook_errors``; the decision stands. A peek (cost 0) is not observed.
    """

    def __init__(
        self,
        backend: Any,
        name: str,
        *,
        on_allow: Hook | None = None,
        on_block: Hook | None = None,
        events: Events | None = None,
        units: bool = False,
        latency: Callable[[float], object] | None = None,
        key_label: Callable[[Key], str] | None = None,
    ) -> None:
        _check_hook("on_allow", on_allow)
        _check_hook("on_block", on_block)
        self.name = name
        self.store = store_kind(backend)
        self.on_allow = on_allow
        self.on_block = on_block
        self.events = events
        self.units: _Units | None = _Units() if units else None
        self.latency = latency
        if key_label is not None and not callable(key_label):
            raise ConfigError(f"key_label must be a callable taking the key, not {key_label!r}")
        self.key_label = key_label
        #: (label, "allowed" | "denied") -> decisions, with key_label
        self.key_counts: dict[tuple[str, str], int] = {}
        self.hook_errors = 0
        self._logged_at: float | None = None
        self._lock = threading.Lock()
        self.check, self.allow, self.acheck, self.aallow = self._wrap(backend)

    @property
    def active(self) -> bool:
        """Whether anything here needs to see each decision."""
        return bool(
            self.on_allow or self.on_block or self.events or self.units or self.latency
            or self.key_label
        )

    def info(self, decision: Decision, key: Key, cost: int) -> dict[str, Any]:
        """The mapping a hook gets (and an event carries)."""
        return {
            "limit": self.name,
            "key": key_id(key),
            "cost": cost,
            "store": self.store,
            "fallback": decision.fallback,
        }

    def notify(self, decision: Decision, key: Key, cost: int) -> None:
        """Everything that observes one decision; never raises."""
        allowed = decision.allowed
        units = self.units
        if units is not None:
            if allowed:
                units.allowed += cost
            else:
                units.denied += cost
        if self.key_label is not None:
            self._count_key(key, allowed)
        hook = self.on_allow if allowed else self.on_block
        events = self.events
        if hook is None and events is None:
            return
        try:
            info = self.info(decision, key, cost)
        except Exception as exc:  # a key of a wrong type was refused by the store already
            self._failed(exc)
            return
        if hook is not None:
            try:
                hook(decision, info)
            except Exception as exc:
                self._failed(exc)
        if events is not None:
            events.offer(decision, info)

    def _count_key(self, key: Key, allowed: bool) -> None:
        """Count a decision under the label the redacting function gives
        its key (a str; bounded by :data:`KEY_LABELS_MAX`)."""
        assert self.key_label is not None
        try:
            label = self.key_label(key)
            if not isinstance(label, str):
                raise TypeError(f"key_label returned {type(label).__name__}, not str")
        except Exception as exc:
            self._failed(exc)
            return
        counts = self.key_counts
        outcome = "allowed" if allowed else "denied"
        slot = (label, outcome)
        if slot not in counts and len({lab for lab, _ in counts}) >= KEY_LABELS_MAX:
            slot = ("other", outcome)
        counts[slot] = counts.get(slot, 0) + 1

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.hook_errors += 1
            now = time.monotonic()
            due = self._logged_at is None or now - self._logged_at >= HOOK_LOG_INTERVAL
            if due:
                self._logged_at = now
        if due:
            logger.warning(
                "floodwall: a hook of limit %r raised %s: %s (the decision stands; "
                "%d hook error(s) so far, at most one record per %gs)",
                self.name, type(exc).__name__, exc, self.hook_errors, HOOK_LOG_INTERVAL,
                exc_info=exc,
            )

    def _wrap(self, backend: Any) -> tuple[Any, Any, Any, Any]:
        b_check = backend.check
        b_acheck = backend.acheck
        notify = self.notify
        latency = self.latency
        perf = time.perf_counter

        units = self.units
        if units is not None and latency is None and not (
            self.on_allow or self.on_block or self.events or self.key_label
        ):  # units only: counted inline

            def check(key: Key, cost: int = 1) -> Decision:
                decision: Decision = b_check(key, cost)
                if decision.allowed:
                    units.allowed += cost
                else:
                    units.denied += cost
                return decision

            async def acheck(key: Key, cost: int = 1) -> Decision:
                decision: Decision = await b_acheck(key, cost)
                if decision.allowed:
                    units.allowed += cost
                else:
                    units.denied += cost
                return decision

        elif latency is None:

            def check(key: Key, cost: int = 1) -> Decision:
                decision: Decision = b_check(key, cost)
                if cost:
                    notify(decision, key, cost)
                return decision

            async def acheck(key: Key, cost: int = 1) -> Decision:
                decision: Decision = await b_acheck(key, cost)
                if cost:
                    notify(decision, key, cost)
                return decision

        else:
            observe_latency = latency

            def check(key: Key, cost: int = 1) -> Decision:
                start = perf()
                decision: Decision = b_check(key, cost)
                if cost:
                    observe_latency(perf() - start)
                    notify(decision, key, cost)
                return decision

            async def acheck(key: Key, cost: int = 1) -> Decision:
                start = perf()
                decision: Decision = await b_acheck(key, cost)
                if cost:
                    observe_latency(perf() - start)
                    notify(decision, key, cost)
                return decision

        def allow(key: Key, cost: int = 1) -> bool:
            return check(key, cost).allowed

        async def aallow(key: Key, cost: int = 1) -> bool:
            return (await acheck(key, cost)).allowed

        return check, allow, acheck, aallow


# -- groups (check_all): every part's observers see the group's decision --


def notify_group(parts: Sequence[tuple[Any, ...]], decision: Decision, cost: int,
                 seconds: float | None = None) -> None:
    """The observers of each part of a group check (``check_all``, a
    route's several limits, :class:`~floodwall.Limits`) see the group's
    decision, with the part's own key and cost (``cost`` unless the part
    gives its own); a part of cost 0 peeks and is not observed, as a peek
    is not. A part is (limiter, key) or (limiter, key, cost). ``seconds``,
    how long the group check took, goes once into the latency histogram of
    each limiter of the group that keeps one and has a part observed: a
    group check is one check of each of its limiters."""
    timed: set[int] = set()
    for part in parts:
        observer = part[0].observer
        if observer is not None:
            n = part[2] if len(part) == 3 else cost
            if n:
                latency = observer.latency
                if seconds is not None and latency is not None and id(observer) not in timed:
                    timed.add(id(observer))
                    latency(seconds)
                observer.notify(decision, part[1], n)


def group_on_errors(limiters: Sequence[Any]) -> tuple[Callable[[BaseException], object], ...]:
    """The ``on_error`` hooks of a group's limiters that its first
    limiter's failure policy (the one that answers for the group) does not
    call itself: each other one once, however many parts share it (equal
    callables are one: ``errors.append`` given twice is one hook)."""
    seen: list[object] = [_on_error(limiters[0])]
    out: list[Callable[[BaseException], object]] = []
    for limiter in limiters[1:]:
        hook = _on_error(limiter)
        if hook is not None and hook not in seen:
            seen.append(hook)
            out.append(hook)
    return tuple(out)


def _on_error(limiter: Any) -> Any:
    return getattr(getattr(limiter.backend, "failure", None), "on_error", None)


def sampled(rate: float) -> bool:
    """True with probability ``rate`` (1.0: always)."""
    return rate >= 1.0 or random.random() < rate
