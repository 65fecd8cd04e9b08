"""The framework-neutral half of every integration.

A Guard holds one app's configuration (store, default limit, per-route
limits, exempt paths, keys, headers) and turns "this request, these limits"
into an Outcome; each framework module only adapts its request object to a
RequestView and writes the Outcome back the framework's way. Invariant: no
framework is imported here, and a denied request consumes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from floodwall.algorithms import DEFAULT_ALGORITHM
from floodwall.config.logsetup import raw_keys
from floodwall.errors import ConfigError
from floodwall.headers import PROBLEM_CONTENT_TYPE, HeaderPolicy
from floodwall.integrations._options import FOREIGN_OPTIONS
from floodwall.integrations._options import check_options as check_options
from floodwall.integrations._paths import PathMatcher
from floodwall.integrations._shaping import (
    _SHAPING,
    DEFAULT_MAX_DELAY,
    DEFAULT_MAX_WAITING,
    ShapingBudget,
)
from floodwall.keys import (
    MISSING_KEY_POLICIES,
    SHARED_MISSING_KEY,
    KeyFunc,
    KeySpec,
    RequestView,
    resolve_key,
)
from floodwall.stores.failure import WEB_FAIL_DEFAULT, check_fail_mode

if TYPE_CHECKING:
    from floodwall import Decision, Limiter, Rate

__all__ = [
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_WAITING",
    "ENFORCED_ATTR",
    "EXEMPT_ATTR",
    "FOREIGN_OPTIONS",
    "LIMITS_ATTR",
    "BoundLimit",
    "Guard",
    "Limit",
    "LimitInput",
    "LimitSet",
    "Outcome",
    "PathMatcher",
    "check_key",
    "check_rates",
    "missing_key_body",
]

#: One DEBUG record per decision (see :func:`log_decision`).
decision_log = logging.getLogger("floodwall.decision")
_DEBUG = logging.DEBUG

#: Set on a view that checks its own limits (decorators): the app-wide
#: middleware then applies neither the default limit nor path limits to it.
ENFORCED_ATTR = "__floodwall_enforced__"
#: A list of Limit objects attached by marking decorators (Flask ``@limit``).
LIMITS_ATTR = "__floodwall_limits__"
#: Set on a view exempt from every limit.
EXEMPT_ATTR = "__floodwall_exempt__"


@dataclass(frozen=True)
class Limit:
    """One limit as configured by a user.

    ``rate``: ``"5/minute"``, ``"10/second; 1000/day"``, a Rate, Rates, or a
    ready Limiter (used as is). ``key``: who is charged (see
    :func:`floodwall.keys.resolve_key`; None = the app's key). ``cost``: units
    per request, an int or a callable taking the native request. ``name``: the
    policy name in the IETF headers and the bucket scope (several routes
    sharing a name share a bucket). ``algorithm`` / ``burst`` override the
    app's.
    """

    rate: Any
    key: KeySpec | None = None
    cost: int | Callable[[Any], int] | None = None
    name: str | None = None
    algorithm: str | None = None
    burst: int | None = None


LimitInput = Union[str, "Rate", Sequence["Rate"], "Limiter", Limit]


def check_key(key: KeySpec | None) -> None:
    """Refuse a bad ``key=`` when a decorator is built, not at a request."""
    if key is not None and not isinstance(key, KeyFunc):
        resolve_key(key)


def check_rates(rates: Sequence[Any], form: str) -> None:
    """Refuse, when a decorator is built, what is not a limit: no rate at
    all, or a function (the decorator was used without parentheses).
    ``form`` is how the call should look, e.g. ``"@fw.limit('5/minute')"``."""
    if not rates:
        raise ConfigError(f"a rate is needed: write {form}")
    from floodwall import Limiter, Rate

    for r in rates:
        if isinstance(r, (str, Rate, Limiter, Limit)):
            continue
        if callable(r):
            raise ConfigError(
                f"{getattr(r, '__qualname__', r)!r} was given where a rate belongs: the "
                f"decorator was used without parentheses or without a rate; write {form}"
            )
        if isinstance(r, (list, tuple)) and all(isinstance(x, Rate) for x in r):
            continue
        raise ConfigError(
            f"{r!r} is not a limit: give a rate string, a Rate, a Limiter or a Limit, "
            f"e.g. {form}"
        )


def _as_limit(spec: LimitInput) -> Limit:
    return spec if isinstance(spec, Limit) else Limit(spec)


class BoundLimit:
    """A Limit made concrete: its Limiter, key function and bucket scope."""

    __slots__ = ("key", "limiter", "local", "name", "prefix")

    def __init__(
        self, limiter: Limiter, key: KeyFunc, prefix: str, name: str | None, local: bool
    ) -> None:
        self.limiter = limiter
        self.key = key
        self.prefix = prefix
        self.name = name
        #: True when the store says a check is inline (in-process, never
        #: waits): async callers then check on the event-loop thread.
        self.local = local


class LimitSet:
    """The limits that apply to one route, decided all-or-nothing."""

    __slots__ = ("cost", "fixed_cost", "headers", "limits", "local", "scope", "single")

    def __init__(
        self,
        limits: Sequence[BoundLimit],
        cost: int | Callable[[Any], int],
        headers: HeaderPolicy,
        scope: str,
    ) -> None:
        self.limits = tuple(limits)
        self.cost = cost
        self.headers = headers
        self.scope = scope
        self.local = all(b.local for b in self.limits)
        self.single: BoundLimit | None = self.limits[0] if len(self.limits) == 1 else None
        self.fixed_cost: int | None = cost if isinstance(cost, int) else None


class Outcome:
    """The result of checking a request against a LimitSet."""

    __slots__ = ("allowed", "decision", "held", "limits", "missing_key", "retry_after")

    def __init__(
        self,
        decision: Decision | None,
        limits: LimitSet,
        retry_after: int = 0,
        missing_key: bool = False,
    ) -> None:
        self.decision = decision
        self.limits = limits
        #: The Retry-After sent (jitter included), 0 when allowed.
        self.retry_after = retry_after
        self.missing_key = missing_key
        self.allowed: bool = not missing_key and (decision is None or decision.allowed)
        #: Seconds of the worker's waiting budget this request holds until
        #: its shaping delay is slept (see Guard.wait). Never 0 for an
        #: admitted request with a delay: Guard._hold sets it or denies.
        self.held = 0.0

    @property
    def delay(self) -> float:
        d = self.decision
        return d.delay_ns / 1e9 if d is not None and d.allowed and d.delay_ns > 0 else 0.0

    def header_pairs(self) -> list[tuple[str, str]]:
        if self.decision is None:
            return []
        return self.limits.headers.headers(self.decision, self.retry_after or None)

    def raw_header_pairs(self) -> list[tuple[bytes, bytes]]:
        if self.decision is None:
            return []
        return self.limits.headers.raw_headers(self.decision, self.retry_after or None)

    def status(self) -> int:
        return 400 if self.missing_key else 429

    def body(self, instance: str | None = None) -> bytes:
        if self.missing_key or self.decision is None:
            return missing_key_body()
        return self.limits.headers.problem(self.decision, self.retry_after, instance=instance)

    content_type = PROBLEM_CONTENT_TYPE


def missing_key_body() -> bytes:
    return (
        b'{"type":"about:blank","title":"Bad Request","status":400,'
        b'"detail":"No rate-limit key could be derived from this request."}'
    )


def guard_option_names() -> frozenset[str]:
    """The keyword options Guard accepts."""
    import inspect

    params = inspect.signature(Guard.__init__).parameters
    return frozenset(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def log_decision(outcome: Outcome, keys: Sequence[str]) -> None:
    """The DEBUG record ``floodwall.decision`` of one request's outcome: the
    limit name(s), the outcome, remaining, retry-after, and the key(s) as
    hashed ids (raw only with ``[logging] raw_keys = true``). Callers guard
    it with ``decision_log.isEnabledFor(logging.DEBUG)``."""
    from floodwall.hooks import key_id

    limits = outcome.limits
    names = ",".join(b.name or limits.scope or "default" for b in limits.limits)
    d = outcome.decision
    if outcome.missing_key:
        verdict = "denied (no key)"
    elif not outcome.allowed:
        verdict = "denied"
    else:
        verdict = "delayed" if outcome.delay > 0 else "allowed"
    shown = list(keys) if raw_keys() else [key_id(k) for k in keys]
    field = "key" if raw_keys() else "key_id"
    remaining = None if d is None else d.remaining
    retry = None if d is None else d.retry_after
    decision_log.debug(
        "decision limit=%s outcome=%s remaining=%s retry_after=%s %s=%s",
        names, verdict, remaining, retry, field, ",".join(shown),
        extra={"decision": {"limits": names, "outcome": verdict, "remaining": remaining,
                            "retry_after": retry, field: shown}},
    )


class Guard(ShapingBudget):
    """One app's rate-limit configuration, shared by every framework adapter.

    Options (the same names in every integration):

    ``default``: the limit for routes without their own (None = no default
    limit); it is one bucket per client across all such routes.
    ``routes``: ``{"/path/glob" or "METHOD /path/glob": limit}``, first match
    wins, replaces the default for matching requests.
    ``exempt``: path globs never limited (``"/health"``, ``"/static/*"``).
    ``store``, ``algorithm``, ``namespace``, ``clock``, ``store_options``: how
    Limiters are built (see floodwall.Limiter).
    ``key``: who is charged (default: client IP); ``trusted_proxies``,
    ``proxy_header``, ``ipv6_prefix``: see floodwall.keys.ClientIP.
    ``cost``: default units per request (int or callable(native request)).
    ``headers``: "both" (default), "ietf", "x-ratelimit" or "none";
    ``headers_on_allowed``: also on allowed responses (default True);
    ``jitter_ms``: random extra on Retry-After only.
    ``on_missing_key``: "shared" (default), "allow" or "deny" (400).
    ``enabled``: False turns every check off.
    ``fail``: when the store cannot answer (a full table, an outage):
    "open" (the default: admit, logged and counted), "closed" (deny) or
    "raise" (StoreError, an HTTP 500); see docs/frameworks.md, "Failure
    defaults".
    ``max_delay``: with ``leaky_bucket_shaping``, the longest one request is
    held (seconds, default 1): the queue of each key is made no deeper, so a
    request that would wait longer is denied (429) as a policing limiter
    would deny it. ``max_waiting``: the most waiting (seconds, summed over
    the requests held at once, default 10) this configuration holds in one
    worker process; a request that would go over it is denied too.
    """

    def __init__(
        self,
        default: LimitInput | None = None,
        *,
        routes: Mapping[str, LimitInput] | None = None,
        exempt: Iterable[str] = (),
        store: Any = "memory://",
        algorithm: str = DEFAULT_ALGORITHM,
        namespace: str = "floodwall",
        clock: Callable[[], int] | None = None,
        store_options: Mapping[str, Any] | None = None,
        key: KeySpec | None = None,
        trusted_proxies: int | str | Sequence[str] | None = None,
        proxy_header: str = "x-forwarded-for",
        ipv6_prefix: int = 64,
        cost: int | Callable[[Any], int] = 1,
        headers: str | Iterable[str] | bool | None = "both",
        headers_on_allowed: bool = True,
        jitter_ms: int = 0,
        on_missing_key: str = "shared",
        enabled: bool = True,
        fail: str = WEB_FAIL_DEFAULT,
        max_delay: float = DEFAULT_MAX_DELAY,
        max_waiting: float = DEFAULT_MAX_WAITING,
        on_allow: Callable[..., object] | None = None,
        on_block: Callable[..., object] | None = None,
        on_error: Callable[[BaseException], object] | None = None,
        events: Any = None,
        metrics: Any = False,
    ) -> None:
        self._init_shaping(max_delay, max_waiting)
        #: observers given to every Limiter built here (docs/observability.md)
        self.observers: dict[str, Any] = {
            "on_allow": on_allow, "on_block": on_block, "on_error": on_error,
            "events": events, "metrics": metrics,
        }
        if on_missing_key not in MISSING_KEY_POLICIES:
            raise ValueError(
                f"on_missing_key must be one of {sorted(MISSING_KEY_POLICIES)}, "
                f"got {on_missing_key!r}"
            )
        if isinstance(cost, int) and cost < 0:
            raise ValueError(f"cost must be an integer >= 0, got {cost}")
        if jitter_ms < 0:
            raise ValueError(f"jitter_ms must be >= 0, got {jitter_ms}")
        self.store = store
        self._shared_store: Any = None
        self.fail = check_fail_mode(fail)
        self.algorithm = algorithm
        self.namespace = namespace
        self.clock = clock
        self.store_options = dict(store_options or {})
        self.trusted_proxies = trusted_proxies
        self.proxy_header = proxy_header
        self.ipv6_prefix = ipv6_prefix
        self.key = self.resolve_key(key)
        self.cost = cost
        self.header_styles = headers
        self.headers_on_allowed = headers_on_allowed
        self.jitter_ms = jitter_ms
        self.on_missing_key = on_missing_key
        self.enabled = enabled
        self._exempt = PathMatcher(exempt)
        self._has_exempt = bool(self._exempt)
        self.default: LimitSet | None = (
            None if default is None else self.limit_set([default], scope="default")
        )
        route_items = list((routes or {}).items())
        self._routes = PathMatcher(p for p, _ in route_items)
        self._route_sets = [
            self.limit_set([spec], scope="route:" + pattern) for pattern, spec in route_items
        ]

    # -- building

    def resolve_key(self, key: KeySpec | None) -> KeyFunc:
        return resolve_key(
            key,
            trusted_proxies=self.trusted_proxies,
            proxy_header=self.proxy_header,
            ipv6_prefix=self.ipv6_prefix,
        )

    def make_limiter(
        self, limit: Limit, cost: int | Callable[[Any], int] | None = None,
        name: str | None = None,
    ) -> Limiter:
        """A Limiter on this app's store. Every Limiter a Guard builds shares
        one opened store, so several limits can be decided all-or-nothing."""
        from floodwall import Limiter

        rate = limit.rate
        if isinstance(rate, Limiter):
            return rate
        options: dict[str, Any] = {} if self._shared_store is not None else dict(self.store_options)
        algorithm = limit.algorithm or self.algorithm
        if isinstance(algorithm, str) and algorithm.lower() == _SHAPING:
            rate = self._shaped_rates(limit, self.cost if cost is None else cost)
            if not isinstance(rate, list) and limit.burst is not None:
                options["burst"] = limit.burst
        elif limit.burst is not None:
            options["burst"] = limit.burst
        limiter = Limiter(
            rate,
            algorithm=algorithm,
            store=self._shared_store if self._shared_store is not None else self.store,
            namespace=self.namespace,
            clock=self.clock,
            fail=self.fail,
            name=limit.name or name,
            **self.observers,
            **options,
        )
        if self._shared_store is None:
            self._shared_store = limiter.store
        return limiter

    def bind(
        self, spec: LimitInput, scope: str, cost: int | Callable[[Any], int] | None = None
    ) -> BoundLimit:

        limit = _as_limit(spec)
        limiter = self.make_limiter(limit, cost, scope)
        key = self.key if limit.key is None else self.resolve_key(limit.key)
        prefix = (limit.name or scope) + "|"
        return BoundLimit(limiter, key, prefix, limit.name, limiter.store.capabilities.inline)

    def limit_set(
        self,
        specs: Sequence[LimitInput],
        scope: str,
        cost: int | Callable[[Any], int] | None = None,
    ) -> LimitSet:
        """Bind several limits for one route (decided all-or-nothing)."""
        if not specs:
            raise ValueError("a route needs at least one limit")
        limits = [_as_limit(s) for s in specs]
        costs = {repr(lim.cost) for lim in limits if lim.cost is not None}
        if cost is None:
            explicit = [lim.cost for lim in limits if lim.cost is not None]
            if len(costs) > 1:
                raise ValueError(
                    f"limits on {scope!r} give different costs {sorted(costs)}: "
                    "a route has one cost"
                )
            cost = explicit[0] if explicit else self.cost
        if isinstance(cost, int) and cost < 0:
            raise ValueError(f"cost must be an integer >= 0, got {cost}")
        bound = [
            self.bind(lim, f"{scope}#{i}" if i else scope, cost) for i, lim in enumerate(limits)
        ]
        rates: list[Rate] = []
        names: list[str] = []
        from floodwall.headers import policy_name

        for b in bound:
            rs = list(b.limiter.rates)
            rates.extend(rs)
            if b.name is None:
                names.extend(policy_name(r) for r in rs)
            elif len(rs) == 1:
                names.append(b.name)
            else:
                names.extend(f"{b.name}-{policy_name(r)}" for r in rs)
        policy = HeaderPolicy(
            rates,
            names,
            styles=self.header_styles,
            on_allowed=self.headers_on_allowed,
            jitter_ms=self.jitter_ms,
        )
        return LimitSet(bound, cost, policy, scope)

    # -- routing

    def is_exempt(self, method: str, path: str) -> bool:
        return self._has_exempt and self._exempt.match(method, path) is not None

    def route_limits(self, method: str, path: str) -> LimitSet | None:
        """The configured path limits matching, else None (not the default)."""
        if not self._route_sets:
            return None
        index = self._routes.match(method, path)
        return None if index is None else self._route_sets[index]

    # -- checking

    def _cost(self, limits: LimitSet, view: RequestView, cost: int | None) -> int:
        if cost is not None:
            return cost
        c = limits.cost
        if isinstance(c, int):
            return c
        value = c(view.native)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"cost callable returned {value!r}: it must return an int >= 0")
        return value

    def _parts(self, limits: LimitSet, view: RequestView) -> list[tuple[Limiter, str]] | None:
        parts: list[tuple[Limiter, str]] = []
        for b in limits.limits:
            k = b.key(view)
            if not k:
                if self.on_missing_key == "allow":
                    return None
                if self.on_missing_key == "deny":
                    return []
                k = SHARED_MISSING_KEY
            parts.append((b.limiter, b.prefix + k))
        return parts

    def _finish(
        self, limits: LimitSet, decision: Decision, cost: int, keys: Sequence[str]
    ) -> Outcome:
        if decision.allowed:
            outcome = (
                self._hold(limits, decision, cost)
                if decision.delay_ns > 0
                else Outcome(decision, limits)
            )
        else:
            outcome = Outcome(decision, limits, limits.headers.retry_after(decision))
        if decision_log.isEnabledFor(_DEBUG):
            log_decision(outcome, keys)
        return outcome

    def _no_key(self, limits: LimitSet) -> Outcome:
        outcome = Outcome(None, limits, missing_key=True)
        if decision_log.isEnabledFor(_DEBUG):
            log_decision(outcome, ())
        return outcome

    def check(self, limits: LimitSet, view: RequestView, cost: int | None = None) -> Outcome | None:
        """Check a request synchronously; None means "not limited" (disabled,
        or no key with on_missing_key="allow")."""
        if not self.enabled:
            return None
        if self._has_exempt and self.is_exempt(view.method, view.path):
            return None  # exempt globs bind decorators too
        return self._decide(limits, view, cost)

    def _decide(
        self, limits: LimitSet, view: RequestView, cost: int | None = None
    ) -> Outcome | None:
        """:meth:`check` past its enabled and exempt tests (the ASGI
        middleware has made them already, on the same method and path)."""
        single = limits.single
        if single is not None:  # the common case, kept short
            k = single.key(view)
            if k:
                n = cost if cost is not None else limits.fixed_cost
                if n is None:
                    n = self._cost(limits, view, None)
                key = single.prefix + k
                decision = single.limiter.check(key, n)
                if decision.allowed:
                    if decision.delay_ns > 0:
                        outcome = self._hold(limits, decision, n)
                    else:
                        outcome = Outcome(decision, limits)
                else:
                    outcome = Outcome(decision, limits, limits.headers.retry_after(decision))
                if decision_log.isEnabledFor(_DEBUG):
                    log_decision(outcome, (key,))
                return outcome
        parts = self._parts(limits, view)
        if parts is None:
            return None
        if not parts:
            return self._no_key(limits)
        n = self._cost(limits, view, cost)
        if len(parts) == 1:
            limiter, key = parts[0]
            decision = limiter.check(key, n)
        else:
            from floodwall import check_all

            decision = check_all(parts, n)  # which calls each part's hooks
        return self._finish(limits, decision, n, [key for _, key in parts])

    async def acheck(
        self, limits: LimitSet, view: RequestView, cost: int | None = None
    ) -> Outcome | None:
        """Async twin of :meth:`check`. Stores whose capabilities say
        ``inline`` answer in microseconds and are called inline; the others
        (network stores, a file synced on every write) are awaited."""
        if not self.enabled:
            return None
        if self._has_exempt and self.is_exempt(view.method, view.path):
            return None
        if limits.local:
            return self._decide(limits, view, cost)
        return await self._adecide(limits, view, cost)

    async def _adecide(
        self, limits: LimitSet, view: RequestView, cost: int | None = None
    ) -> Outcome | None:
        """:meth:`acheck` on a store that is awaited (``limits.local`` is
        false), past the enabled and exempt tests."""
        single = limits.single
        if single is not None:  # the common case, kept short (as in check)
            k = single.key(view)
            if k:
                n = cost if cost is not None else limits.fixed_cost
                if n is None:
                    n = self._cost(limits, view, None)
                key = single.prefix + k
                decision = await single.limiter.acheck(key, n)
                return self._finish(limits, decision, n, (key,))
        parts = self._parts(limits, view)
        if parts is None:
            return None
        if not parts:
            return self._no_key(limits)
        n = self._cost(limits, view, cost)
        if len(parts) == 1:
            limiter, key = parts[0]
            decision = await limiter.acheck(key, n)
        else:
            from floodwall import acheck_all

            decision = await acheck_all(parts, n)  # which calls each part's hooks
        return self._finish(limits, decision, n, [key for _, key in parts])
