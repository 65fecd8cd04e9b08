"""The Limiter: rates + algorithm + store, and the calls users make.

``Limiter("100/minute")`` needs no server and no configuration. On the native
stores (memory, shm, file) ``check``/``allow``/``peek``/``reset`` are the C
engine's own methods, bound on the instance, so a call costs about as much as
a dict update.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import sys
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    TypeVar,
    cast,
)

from floodwall.algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from floodwall.errors import ConfigError, RateLimited
from floodwall.rates import Rate, parse_duration, parse_rates
from floodwall.stores import Backend, LimitSpec, open_backend
from floodwall.stores.failure import LIBRARY_FAIL_DEFAULT, check_fail_mode

if TYPE_CHECKING:
    from floodwall._native import Decision
    from floodwall.hooks import Hook, Observer
    from floodwall.observe.events import Events
    from floodwall.observe.metrics import Metrics

__all__ = ["Limiter", "Limits", "aallow_all", "acheck_all", "allow_all", "check_all"]

Key = str | bytes
F = TypeVar("F", bound=Callable[..., Any])
RateInput = str | Rate | Sequence[str | Rate] | int | None
#: seconds, a timedelta, or a duration string such as "1m", "250ms", "1h"
Period = float | datetime.timedelta | str
#: one part of check_all: (limiter, key), charged the call's cost, or
#: (limiter, key, cost) with a cost of its own
Part = tuple[Any, ...]


def _period_seconds(value: Period, name: str) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be seconds (int or float), a timedelta, or a duration "
            f"such as '1m', '250ms', '1h', not {type(value).__name__}"
        )
    return value


def _rate_per(amount: int, per: Period, burst: int | None, name: str) -> Rate:
    """``amount`` per ``per`` (seconds, a timedelta, or "1m" / "250ms"...)."""
    if isinstance(per, str):
        return Rate.from_ns(amount, parse_duration(per), burst)
    return Rate(amount, _period_seconds(per, name), burst)


def resolve_rates(
    rate: RateInput,
    *,
    per: Period | None = None,
    requests: int | None = None,
    period: Period | None = None,
    burst: int | None = None,
) -> tuple[Rate, ...]:
    """Turn every accepted way of writing a limit into Rate objects."""
    if requests is not None or period is not None:
        if rate is not None or per is not None:
            raise ConfigError("give either rate (and per) or requests and period, not both")
        if requests is None or period is None:
            raise ConfigError("requests and period go together, e.g. requests=100, period=60")
        if isinstance(requests, bool) or not isinstance(requests, int):
            raise TypeError(f"requests must be an int, not {type(requests).__name__}")
        return (_rate_per(requests, period, burst, "period"),)
    if isinstance(rate, bool):
        raise TypeError("rate must be a rate string, a Rate or an int with per=")
    if isinstance(rate, int):
        if per is None:
            raise ConfigError(f"rate={rate} needs per=<seconds>, e.g. Limiter(rate={rate}, per=60)")
        return (_rate_per(rate, per, burst, "per"),)
    if per is not None:
        raise ConfigError("per= goes with an int rate, e.g. Limiter(rate=100, per=60)")
    if rate is None:
        raise ConfigError(
            "no rate given: pass a rate such as Limiter('100/minute'), "
            "Limiter(rate=100, per=60) or Limiter(requests=100, period=60)"
        )
    items: Iterable[str | Rate] = [rate] if isinstance(rate, (str, Rate)) else rate
    out: list[Rate] = []
    for item in items:
        if isinstance(item, Rate):
            out.append(item)
        elif isinstance(item, str):
            out.extend(parse_rates(item))
        else:
            raise TypeError(f"a rate must be a str or a Rate, not {type(item).__name__}")
    if not out:
        raise ConfigError("at least one rate is needed")
    if burst is not None:
        if len(out) != 1:
            raise ConfigError("burst= applies to a single rate; write 'N/period burst B' for each")
        out = [Rate.from_ns(out[0].amount, out[0].period_ns, burst)]
    if len(set(out)) != len(out):
        raise ConfigError(f"the same rate is given twice in {rate!r}")
    return tuple(out)


def _check_algorithm(algorithm: str) -> str:
    if not isinstance(algorithm, str) or algorithm.lower() not in ALGORITHMS:
        raise ConfigError(
            f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        )
    return algorithm.lower()


class Limiter:
    """A rate limiter: ``Limiter("100/minute").allow("user:42")``.

    Parameters:
        rate: ``"100/minute"``, ``"10/second; 1000/day"``, a :class:`Rate`, a
            list of them, or an int with ``per=``: seconds, a timedelta, or a
            duration such as ``"1m"``, ``"250ms"``, ``"1h"``.
        requests, period: the same as ``rate=requests, per=period``.
        algorithm: gcra (default), token_bucket, leaky_bucket,
            leaky_bucket_shaping, fixed_window, sliding_window, sliding_log.
        burst: the capacity, when it differs from the rate's amount.
        store: ``memory://`` (default), ``memory://NAME``, ``shm://NAME``,
            ``file:///path``, a ``redis://`` URL, a Redis client, or another
            limiter's ``store`` to share it.
        namespace: keeps the keys of limiters sharing a store apart.
        clock: a callable returning int nanoseconds, for tests; by default the
            store's own clock.
        fail: what a check answers when the store cannot: ``"raise"`` (the
            default for a library call: :class:`StoreError`), ``"open"``
            (admit) or ``"closed"`` (deny); see :mod:`floodwall.stores.failure`
            (a part the store could still read that denies is always the
            answer). The web integrations default to ``"open"``.
        on_error: called with the exception when ``fail`` decides.
        name: this limiter's name in metrics, hooks and events (default: the
            namespace); a label, so one per limit, never per client.
        on_allow, on_block: ``hook(decision, info)`` after each check
            (``info``: limit, hashed key, cost, store, fallback); a hook that
            raises is logged and never changes the decision. See
            docs/observability.md.
        events: a :class:`floodwall.observe.events.Events` (sampled decision
            events written off the request path).
        metrics: True (the process's :func:`~floodwall.observe.metrics.default_metrics`)
            or a :class:`~floodwall.observe.metrics.Metrics`: export this
            limiter's counters. Unset hooks, events and metrics cost nothing.
        **store_options: options of the store, e.g. ``max_keys``.
    """

    def __init__(
        self,
        rate: RateInput = None,
        *,
        per: Period | None = None,
        requests: int | None = None,
        period: Period | None = None,
        algorithm: str = DEFAULT_ALGORITHM,
        burst: int | None = None,
        store: Any = "memory://",
        namespace: str = "default",
        clock: Callable[[], int] | None = None,
        fail: str = LIBRARY_FAIL_DEFAULT,
        on_error: Callable[[BaseException], object] | None = None,
        name: str | None = None,
        on_allow: Hook | None = None,
        on_block: Hook | None = None,
        events: Events | None = None,
        metrics: bool | Metrics = False,
        **store_options: Any,
    ) -> None:
        check_fail_mode(fail)
        if not isinstance(namespace, str) or not namespace:
            raise ConfigError("namespace must be a non-empty str")
        rates = resolve_rates(rate, per=per, requests=requests, period=period, burst=burst)
        self.algorithm = _check_algorithm(algorithm)
        self.rates = rates
        self.namespace = namespace
        self.store_url = store if isinstance(store, str) else type(store).__name__
        if isinstance(store, Limiter):
            store = store.backend
        spec = LimitSpec(self.algorithm, rates, namespace, clock, fail, on_error)
        self.backend: Backend = open_backend(store, spec, **store_options)
        # Bind the backend's methods on the instance: no Python frame on the
        # hot path for the native stores.
        backend = self.backend
        self.__dict__.update(
            check=backend.check,
            allow=backend.allow,
            peek=backend.peek,
            reset=backend.reset,
            acheck=backend.acheck,
            aallow=backend.aallow,
            apeek=backend.apeek,
            areset=backend.areset,
        )
        self.name = namespace if name is None else name
        #: the per-check observer (hooks, events, units), or None
        self.observer: Observer | None = None
        if on_allow is not None or on_block is not None or events is not None or metrics:
            from floodwall.observe.bind import observe

            observe(self, on_allow=on_allow, on_block=on_block, events=events, metrics=metrics)
        #: whether check_all must tell this limiter of a group's decision
        #: or failure (an observer, or an on_error of its store's policy)
        self.watched_in_groups = self.observer is not None or (
            getattr(getattr(backend, "failure", None), "on_error", None) is not None
        )

    # The methods below document the API; instances use the bound ones.
    def check(self, key: Key, cost: int = 1) -> Decision:
        """Decide a request of ``cost`` units for ``key`` and return the Decision."""
        return self.backend.check(key, cost)

    def allow(self, key: Key, cost: int = 1) -> bool:
        """Like :meth:`check`, returning only whether it was admitted."""
        return self.backend.allow(key, cost)

    def peek(self, key: Key) -> Decision:
        """Would one unit be admitted? Never consumes (same as cost 0)."""
        return self.backend.peek(key)

    def reset(self, key: Key) -> bool:
        """Forget ``key``: it is back to full capacity. True if the store held
        state for it (it was not already back to full capacity)."""
        return self.backend.reset(key)

    def remaining(self, key: Key) -> int:
        """Whole units ``key`` could still use right now; consumes nothing."""
        return self.backend.peek(key).remaining

    def clear(self) -> None:
        """Forget every key of this limiter's store."""
        self.backend.clear()

    def stats(self) -> dict[str, int]:
        """Counts of this limiter (allowed, denied) and of its store (active_keys...)."""
        return self.backend.stats()

    async def acheck(self, key: Key, cost: int = 1) -> Decision:
        """Async :meth:`check`; never blocks the event loop."""
        return await self.backend.acheck(key, cost)

    async def aallow(self, key: Key, cost: int = 1) -> bool:
        """Async :meth:`allow`."""
        return await self.backend.aallow(key, cost)

    async def apeek(self, key: Key) -> Decision:
        """Async :meth:`peek`."""
        return await self.backend.apeek(key)

    async def areset(self, key: Key) -> bool:
        """Async :meth:`reset`."""
        return await self.backend.areset(key)

    async def aremaining(self, key: Key) -> int:
        """Async :meth:`remaining`."""
        return (await self.backend.apeek(key)).remaining

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await self.backend.aclear()

    @property
    def store(self) -> Backend:
        """This limiter's store, to share with another: ``Limiter(..., store=a.store)``."""
        return self.backend

    def close(self) -> None:
        """Release the store's resources (connections, mappings)."""
        self.backend.close()

    async def aclose(self) -> None:
        """Async :meth:`close`: also closes the store's async connections."""
        aclose = getattr(self.backend, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            self.backend.close()

    def __enter__(self) -> Limiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Limiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        rates = "; ".join(str(r) for r in self.rates)
        return f"Limiter({rates!r}, algorithm={self.algorithm!r}, store={self.store_url!r})"

    def limit(
        self,
        key: Key | Callable[..., Key] | None = None,
        cost: int | Callable[..., int] = 1,
    ) -> Callable[[F], F]:
        """Decorate a function (sync or async) so each call is checked first.

        ``key`` is a fixed key, or a callable given the call's arguments that
        returns one; by default the function's qualified name (a global limit
        on that function). Over the limit, the call raises
        :class:`floodwall.RateLimited` carrying the decision.
        """

        if _decorated_bare(key):
            name = getattr(key, "__qualname__", key)
            raise ConfigError(
                f"@limiter.limit was used without parentheses on {name!r}: it would "
                "take the function for a key function; write @limiter.limit() (or "
                "@limiter.limit(key=..., cost=...))"
            )
        if isinstance(key, str) and _looks_like_rate(key):
            raise ConfigError(
                f"Limiter.limit({key!r}): the argument is a key, not a rate; the rate is "
                f"the Limiter's own: Limiter({key!r}).limit(); for a per-route rate in a "
                f"web app use @floodwall.rate_limit({key!r}) or the integration's limit()"
            )

        def decorate(fn: F) -> F:
            if not callable(fn):
                raise ConfigError(
                    f"Limiter.limit(...) decorates a function, not {type(fn).__name__}: "
                    "was it used without parentheses? write @limiter.limit()"
                )
            default_key = f"{fn.__module__}.{fn.__qualname__}"

            def resolve(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Key, int]:
                k = key(*args, **kwargs) if callable(key) else (key or default_key)
                n = cost(*args, **kwargs) if callable(cost) else cost
                return k, n

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    k, n = resolve(args, kwargs)
                    decision = await self.acheck(k, n)
                    if not decision.allowed:
                        raise RateLimited(decision, key=k, cost=n)
                    return await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)

                return cast(F, async_wrapper)

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                k, n = resolve(args, kwargs)
                decision = self.check(k, n)
                if not decision.allowed:
                    raise RateLimited(decision, key=k, cost=n)
                return fn(*args, **kwargs)

            return cast(F, wrapper)

        return decorate


def _looks_like_rate(text: str) -> bool:
    """Whether a key is in fact a rate string ("5/minute"), the habit of
    libraries whose decorators take the rate."""
    from floodwall.rates import parse_rates

    try:
        parse_rates(text)
    except Exception:  # anything that does not parse is a key
        return False
    return True


def _decorated_bare(key: object) -> bool:
    """Whether ``Limiter.limit(key)`` is in fact ``@limiter.limit`` written
    without parentheses: ``key`` is then the function being decorated, made
    by the ``def`` that the caller is executing right now (its name is not
    bound yet, and the caller's line is one of its decorator lines). A key
    function passed on purpose was defined before, and is bound."""
    if not isinstance(key, types.FunctionType) or key.__name__ == "<lambda>":
        return False
    frame = sys._getframe(2)
    code = key.__code__
    if code.co_filename != frame.f_code.co_filename:
        return False
    if frame.f_locals.get(key.__name__) is key or frame.f_globals.get(key.__name__) is key:
        return False
    lines = sorted({line for _, _, line in code.co_lines() if line is not None})
    body = next((line for line in lines if line > code.co_firstlineno), None)
    here = frame.f_lineno
    if body is None:
        return here == code.co_firstlineno
    return code.co_firstlineno <= here < body


def _group(parts: Sequence[Part], cost: int) -> tuple[Backend, list[Part], bool]:
    """The first part's backend, the parts on backends, and whether a
    limiter of the group is watched (see :func:`check_all`)."""
    if isinstance(parts, (str, bytes)) or not isinstance(parts, Sequence) or not parts:
        raise ConfigError(
            "check_all needs at least one part, in a list of (limiter, key) or "
            "(limiter, key, cost) tuples, e.g. "
            "check_all([(per_user, 'user:42', 1), (per_org, 'org:acme', 10)])"
        )
    out: list[Part] = []
    watched = False
    for i, part in enumerate(parts):
        if not (
            isinstance(part, tuple) and len(part) in (2, 3) and isinstance(part[0], Limiter)
        ):
            raise TypeError(
                "check_all takes (limiter, key) pairs or (limiter, key, cost) triples; "
                f"part {i} is {_short(part)}"
            )
        if part[0].watched_in_groups:
            watched = True
        out.append((part[0].backend, *part[1:]))
    return out[0][0], out, watched


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_all(parts: Sequence[Part], cost: int = 1) -> Decision:
    """Decide several limiters and keys all-or-nothing: if any denies, none
    is consumed, and the Decision (with its ``rate``) is the violated one's,
    with ``denied_part`` the index of that part in ``parts``.

    A part is ``(limiter, key)``, charged ``cost``, or ``(limiter, key,
    cost)`` with a cost of its own: ``check_all([(per_user, "user:42", 1),
    (per_org, "org:acme", 10)])``. The limiters must share one store (e.g.
    ``memory://shared``). When the store cannot decide, the first limiter's
    ``fail=`` policy answers.

    Each limiter's hooks see the group's decision (``on_allow`` or
    ``on_block``, with its own key and cost; a part of cost 0 is a peek,
    not seen), a limiter with a latency histogram records the group check's
    time once, and each distinct ``on_error`` of the limiters is called
    when the store fails (docs/observability.md, "Hooks")."""
    first, pairs, watched = _group(parts, cost)
    if not watched:
        return first.check_group(pairs, cost)
    from floodwall.hooks import group_on_errors, notify_group
    from floodwall.stores.failure import group_on_error

    token = group_on_error.set(group_on_errors([part[0] for part in parts]))
    try:
        start = time.perf_counter()
        decision = first.check_group(pairs, cost)
        seconds = time.perf_counter() - start
    finally:
        group_on_error.reset(token)
    notify_group(parts, decision, cost, seconds)
    return decision


async def acheck_all(parts: Sequence[Part], cost: int = 1) -> Decision:
    """Async :func:`check_all`."""
    first, pairs, watched = _group(parts, cost)
    if not watched:
        return await first.acheck_group(pairs, cost)
    from floodwall.hooks import group_on_errors, notify_group
    from floodwall.stores.failure import group_on_error

    token = group_on_error.set(group_on_errors([part[0] for part in parts]))
    try:
        start = time.perf_counter()
        decision = await first.acheck_group(pairs, cost)
        seconds = time.perf_counter() - start
    finally:
        group_on_error.reset(token)
    notify_group(parts, decision, cost, seconds)
    return decision


def allow_all(parts: Sequence[Part], cost: int = 1) -> bool:
    """Like :func:`check_all`, returning only whether it was admitted."""
    return check_all(parts, cost).allowed


async def aallow_all(parts: Sequence[Part], cost: int = 1) -> bool:
    """Async :func:`allow_all`."""
    return (await acheck_all(parts, cost)).allowed


class Limits:
    """Named limits on several keys, decided all-or-nothing.

    ``Limits({"user": "100/minute", "org": "10000/day"})`` then
    ``limits.check(user="alice", org="acme", cost=3)``: if any limit denies,
    nothing is consumed, and ``violated(decision)`` names the limit. A cost
    per limit: ``cost={"org": 10}`` (the limits not named cost 1).
    ``fail``/``on_error``: the failure policy, as for :class:`Limiter`.
    ``name``, ``on_allow``, ``on_block``, ``events``, ``metrics``: the
    observers, as for :class:`Limiter`, given to the limiter of every named
    limit; limit ``user`` is named ``"<name>:user"`` in hooks, events and
    metrics (``name`` defaults to ``namespace``). A check calls the hooks
    of every limit with the check's decision (docs/observability.md).
    """

    def __init__(
        self,
        limits: Mapping[str, RateInput],
        *,
        algorithm: str = DEFAULT_ALGORITHM,
        store: Any = None,
        namespace: str = "limits",
        clock: Callable[[], int] | None = None,
        fail: str = LIBRARY_FAIL_DEFAULT,
        on_error: Callable[[BaseException], object] | None = None,
        name: str | None = None,
        on_allow: Hook | None = None,
        on_block: Hook | None = None,
        events: Events | None = None,
        metrics: bool | Metrics = False,
        **store_options: Any,
    ) -> None:
        if not limits:
            raise ConfigError("Limits needs at least one named limit")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"name must be a non-empty str, got {name!r}")
        prefix = namespace if name is None else name
        observers: dict[str, Any] = {
            "on_allow": on_allow, "on_block": on_block, "events": events, "metrics": metrics,
        }
        first: Limiter | None = None
        self.limiters: dict[str, Limiter] = {}
        for limit_name, rate in limits.items():
            if not isinstance(limit_name, str) or not limit_name or limit_name == "cost":
                raise ConfigError(
                    "limit names must be non-empty strings other than 'cost', "
                    f"got {limit_name!r}"
                )
            if first is None:
                first = Limiter(
                    rate,
                    algorithm=algorithm,
                    store="memory://" if store is None else store,
                    namespace=f"{namespace}:{limit_name}",
                    clock=clock,
                    fail=fail,
                    on_error=on_error,
                    name=f"{prefix}:{limit_name}",
                    **observers,
                    **store_options,
                )
                limiter = first
            else:
                limiter = Limiter(
                    rate,
                    algorithm=algorithm,
                    store=first.store,
                    namespace=f"{namespace}:{limit_name}",
                    clock=clock,
                    fail=fail,
                    on_error=on_error,
                    name=f"{prefix}:{limit_name}",
                    **observers,
                )
            self.limiters[limit_name] = limiter
        self._names = list(self.limiters)

    def _parts(self, keys: Mapping[str, Key], cost: int | Mapping[str, int]) -> list[Part]:
        """One part per limit, in the order the limits were declared (so that
        ``denied_part`` is an index into :attr:`limiters`)."""
        unknown = set(keys) - set(self.limiters)
        if unknown:
            raise ConfigError(
                f"unknown limit name(s) {sorted(unknown)}; known: {sorted(self.limiters)}"
            )
        missing = set(self.limiters) - set(keys)
        if missing:
            raise ConfigError(f"no key given for limit(s) {sorted(missing)}")
        if isinstance(cost, Mapping):
            extra = set(cost) - set(self.limiters)
            if extra:
                raise ConfigError(
                    f"cost names unknown limit(s) {sorted(extra)}; known: {sorted(self.limiters)}"
                )
            return [(self.limiters[n], keys[n], cost.get(n, 1)) for n in self._names]
        return [(self.limiters[n], keys[n]) for n in self._names]

    def check(self, cost: int | Mapping[str, int] = 1, **keys: Key) -> Decision:
        """Check every named limit for its key, all-or-nothing. ``cost``: one
        cost for every limit, or a cost per limit name (others cost 1)."""
        return check_all(self._parts(keys, cost), 1 if isinstance(cost, Mapping) else cost)

    async def acheck(self, cost: int | Mapping[str, int] = 1, **keys: Key) -> Decision:
        """Async :meth:`check`."""
        parts = self._parts(keys, cost)
        return await acheck_all(parts, 1 if isinstance(cost, Mapping) else cost)

    def allow(self, cost: int | Mapping[str, int] = 1, **keys: Key) -> bool:
        """Like :meth:`check`, returning only whether it was admitted."""
        return self.check(cost, **keys).allowed

    def violated(self, decision: Decision) -> str | None:
        """The name of the limit a denial came from (None if allowed, or if
        a failure policy denied)."""
        if decision.allowed:
            return None
        part = decision.denied_part
        if part is not None and 0 <= part < len(self._names):
            return self._names[part]
        # a decision without its part (made elsewhere): each limiter holds
        # its own Rate objects, so identity tells them apart
        for name, limiter in self.limiters.items():
            if any(decision.rate is rate for rate in limiter.rates):
                return name
        return None
