"""What every network store's backend shares: Redis, PostgreSQL, the remote store.

A network backend sends each check to a server and rebuilds the decision
from the reply. :class:`NetworkBackend` holds what does not depend on the
wire, once:

- the cost rules: an exact int >= 0 (:func:`validate_cost`), never above a
  rate's capacity; a bad cost is the caller's :class:`~floodwall.CostError`,
  raised before the server is asked, never a store failure;
- a test clock's rule: ``clock()`` gives int nanoseconds in [0, 2^63-1];
- the failure path of a call, around the circuit breaker of the server
  asked: an open breaker skips the server (:meth:`~NetworkBackend._skipped`,
  not a new error); a failed call counts on the breaker and goes to the
  failure policy (:meth:`~NetworkBackend._failed`); an async call whose
  breaker opened while it waited counts as skipped
  (:meth:`~NetworkBackend._failed_waiting`);
- the decision from its six fields (allowed, rate index, remaining, retry,
  reset, delay), naming the denying part of a group;
- the counts (``allowed``/``denied``: decisions that charged units, never
  a peek or a fallback) and the shape of ``stats()``;
- the checks of a group's parts (one cost rule, one store, in part order);
- the twins ``allow``/``peek``/``aallow``/``apeek``.

:class:`PooledBackend` adds what Redis and PostgreSQL share: a reference on
a connection that every backend opened with the same URL and options
holds, given back by ``close()`` (and by ``with`` / ``async with``).

Each backend keeps what is its wire's: the connection, the call, the
reading of the reply, its group's request. Its hot paths (``check``,
``acheck``) stay flat in its own module and call in here only on the error
path, so sharing costs a healthy check nothing.

Invariant: a caller's mistake never reaches the failure policy or a
breaker, and a decision is counted at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from floodwall._native import Decision
from floodwall.errors import ConfigError, CostError, StoreError
from floodwall.rates import Rate
from floodwall.stores import LimitSpec
from floodwall.stores.breaker import OPEN, CircuitBreaker
from floodwall.stores.capabilities import StoreCapabilities
from floodwall.stores.failure import FailurePolicy
from floodwall.stores.netquota import INT64_MAX

__all__ = [
    "GroupKeys",
    "Key",
    "NetworkBackend",
    "PooledBackend",
    "network_capabilities",
    "normalised_quotas",
    "validate_cost",
]

Key = str | bytes
#: (capacity, rate) of one rate of a limit
Capacity = tuple[int, Rate]
#: the six fields of a store's answer: allowed, index of the deciding rate,
#: remaining, retry_after ns, reset_after ns, delay ns
Reply = tuple[bool, int, int, int, int, int]


def validate_cost(cost: object) -> int:
    """The cost as an int; exactly an int (a bool or an IntEnum is a
    mistake), >= 0. CostError is the caller's, never a store failure."""
    if cost.__class__ is not int:
        raise CostError(f"cost must be an int >= 0, not {type(cost).__name__}")
    assert isinstance(cost, int)
    if cost < 0:
        raise CostError(f"cost must be an int >= 0, got {cost!r}")
    return cost


def network_capabilities(kind: str, *, durable: bool) -> StoreCapabilities:
    """What a network store is: a check waits on a server (not inline,
    blocking); groups are decided among the backends of one connection;
    the state is shared, on the server's clock."""
    return StoreCapabilities(
        kind=kind,
        inline=False,
        blocking=True,
        groups=True,
        shared=True,
        shared_clock=True,
        durable=durable,
    )


def normalised_quotas(spec: LimitSpec, normalise: Callable[..., Any]) -> list[Any]:
    """``normalise(algorithm, amount, period_ns, burst)`` of each rate of
    ``spec``; ConfigError when there is none, or one the engine refuses
    (its message naming the rate)."""
    if not spec.rates:
        raise ConfigError("a limit needs at least one rate")
    quotas: list[Any] = []
    for rate in spec.rates:
        try:
            quotas.append(normalise(spec.algorithm, rate.amount, rate.period_ns, rate.burst))
        except ValueError as exc:
            raise ConfigError(f"{exc} (rate {rate})") from None
    return quotas


class NetworkBackend:
    """The store-independent part of a network backend (see the module
    docstring). A subclass sets ``capabilities`` and ``store_name``, calls
    ``__init__`` and implements ``check``, ``acheck``, the groups, the
    administration and :meth:`_store_stats`."""

    capabilities: StoreCapabilities
    #: the store in messages ("Redis store")
    store_name: ClassVar[str]
    #: how a limiter shares another's store, for a group not on one store
    share_hint: ClassVar[str] = "store=<first limiter>"

    def __init__(
        self,
        conn: Any,
        spec: LimitSpec,
        failure: FailurePolicy,
        capacities: Sequence[Capacity],
    ) -> None:
        """``capacities``: (capacity, rate) per rate, in the order a cost
        above a capacity is reported (the first it exceeds is named)."""
        self.conn = conn
        self.spec = spec
        self.failure = failure
        self.rates: tuple[Rate, ...] = tuple(spec.rates)
        self._meta: tuple[Capacity, ...] = tuple(capacities)
        self.capacity = min(burst for burst, _ in self._meta)
        self._clock = spec.clock
        self._allowed = 0
        self._denied = 0
        self._closed = False

    # -- the caller's side -------------------------------------------------

    def _cost_error(self, cost: int) -> CostError | None:
        for burst, rate in self._meta:
            if cost > burst:
                return CostError(
                    f"cost {cost} exceeds the capacity {burst} of {rate}: it can never be admitted"
                )
        return None

    def _checked_cost(self, cost: object) -> int:
        """The cost as an int, or CostError (the slow path of a check)."""
        n = validate_cost(cost)
        err = self._cost_error(n)
        if err is not None:
            raise err
        return n

    def _now(self) -> int | None:
        """The test clock's time (None: the store's own clock), checked."""
        if self._clock is None:
            return None
        now = self._clock()
        if isinstance(now, bool) or not isinstance(now, int) or not 0 <= now <= INT64_MAX:
            raise ConfigError(f"clock() must return int ns in [0, 2^63-1], got {now!r}")
        return now

    # -- decisions ---------------------------------------------------------

    def _reply(
        self,
        reply: Reply,
        meta: Sequence[Capacity],
        part_of: Sequence[int] | None = None,
        units: int = 0,
    ) -> Decision:
        """The decision of a store's answer; ``meta``: (capacity, rate) of
        each key asked, ``part_of``: the group part of each (naming the
        denying part); counted when it charges ``units`` (else the caller
        counts it, see :meth:`_count`)."""
        allowed, index, rem, retry, reset, delay = reply
        burst, rate = meta[index]
        if units:
            if allowed:
                self._allowed += 1
            else:
                self._denied += 1
        denied_part = part_of[index] if part_of is not None and not allowed else None
        return Decision(
            allowed, burst, rem, retry, reset, delay, rate=rate, denied_part=denied_part
        )

    def _count(self, d: Decision, cost: int) -> Decision:
        """Count ``d`` if it charged units and the store made it."""
        if cost and not d.fallback:
            if d.allowed:
                self._allowed += 1
            else:
                self._denied += 1
        return d

    # -- failures (error paths only) ---------------------------------------

    def _skipped(self, breaker: CircuitBreaker, rate: Rate) -> Decision:
        """The answer while ``breaker`` is open: the server is not asked
        (not a new error: ``errors`` and ``on_error`` do not see it)."""
        exc = StoreError(
            f"{self.failure.label} skipped: the circuit breaker is open after "
            f"{breaker.threshold} consecutive failures; next try in {breaker.retry_in():.3f}s"
        )
        return self.failure.decide(
            exc, rate, None, breaker.retry_in() or breaker.cooldown, reached=False
        )

    def _failed(self, exc: BaseException, rate: Rate, breaker: CircuitBreaker) -> Decision:
        """A call that reached for the server and failed: count it on the
        breaker (telling the connection if that opened it), then the policy."""
        if breaker.failure():
            self._tripped(breaker)
        return self.failure.decide(exc, rate, None, breaker.retry_in() or breaker.cooldown)

    def _failed_waiting(
        self, exc: BaseException, rate: Rate, breaker: CircuitBreaker
    ) -> Decision:
        """An async call that failed: skipped if its breaker opened while it
        waited (another call's failures), else :meth:`_failed`."""
        if breaker.state == OPEN:
            return self._skipped(breaker, rate)
        return self._failed(exc, rate, breaker)

    def _tripped(self, breaker: CircuitBreaker) -> None:
        """``breaker`` just opened (a connection with calls waiting on it
        wakes them)."""

    # -- groups ------------------------------------------------------------

    def _members(
        self, parts: Sequence[tuple[Any, ...]], cost: int
    ) -> Iterator[tuple[Any, Key, int]]:
        """(backend, key, units) of each part of a group, each checked as it
        comes (so the caller's own checks of a part run in part order). A
        part is (backend, key), charged ``cost``, or (backend, key, its own
        cost); a cost of 0 peeks."""
        cost = validate_cost(cost)
        if not parts:
            raise ConfigError("check_all needs at least one (limiter, key) pair")
        for part in parts:
            yield self._member(part, cost)

    def _member(self, part: tuple[Any, ...], cost: int) -> tuple[Any, Key, int]:
        backend, key = part[0], part[1]
        n = validate_cost(part[2]) if len(part) == 3 else cost
        self._same_store(backend)
        err = backend._cost_error(n)
        if err is not None:
            raise err
        return backend, key, n

    def _same_store(self, backend: object) -> None:
        """ConfigError unless ``backend`` is on this backend's connection."""
        if not isinstance(backend, type(self)) or backend.conn is not self.conn:
            raise ConfigError(
                f"check_all needs every limiter on the same {self.store_name}: open them "
                f"with the same URL and options, or pass {self.share_hint}"
            )

    # -- the twins ---------------------------------------------------------

    def check(self, key: Key, cost: int = 1) -> Decision:
        raise NotImplementedError

    async def acheck(self, key: Key, cost: int = 1) -> Decision:
        raise NotImplementedError

    def allow(self, key: Key, cost: int = 1) -> bool:
        return self.check(key, cost).allowed

    def peek(self, key: Key) -> Decision:
        return self.check(key, 0)

    async def aallow(self, key: Key, cost: int = 1) -> bool:
        return (await self.acheck(key, cost)).allowed

    async def apeek(self, key: Key) -> Decision:
        return await self.acheck(key, 0)

    # -- stats and life cycle ----------------------------------------------

    def _store_stats(self) -> Mapping[str, int]:
        """What the server says of this limit (``active_keys``...); empty
        if it cannot say."""
        return {}

    def stats(self) -> dict[str, int]:
        """This process's counts and breakers, then what the store says
        (``active_keys`` -1 when it cannot be asked)."""
        breakers = self.conn.breakers()
        out = {
            "allowed": self._allowed,
            "denied": self._denied,
            "fallbacks": self.failure.fallbacks,
            "errors": self.failure.errors,
            "breaker_open": sum(1 for b in breakers if b.state == OPEN),
            "breaker_trips": sum(b.trips for b in breakers),
            "active_keys": -1,
        }
        out.update(self._store_stats())
        return out

    def close(self) -> None:
        self._closed = True

    async def aclose(self) -> None:
        """Close this event loop's connections of the store, then :meth:`close`."""
        await self.conn.aclose()
        self.close()


@dataclass
class GroupKeys:
    """The store keys of a group check, in part order: with each key its
    (capacity, rate), its part's index and its part's cost."""

    keys: list[bytes] = field(default_factory=list)
    meta: list[Capacity] = field(default_factory=list)
    part_of: list[int] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    #: the backend of each part
    backends: list[Any] = field(default_factory=list)

    @property
    def units(self) -> int:
        """The most units a part charges (0: the group peeks)."""
        return max(self.costs)


class PooledBackend(NetworkBackend):
    """A network backend whose user keys are named by a key namer (one key
    per rate), holding a reference on a connection that every backend
    opened with the same URL and options shares (Redis, PostgreSQL):
    ``close()`` gives it back, the last one closes it; a connection the
    user passed in is the user's to close."""

    #: the store's key naming (each backend of a connection has its own)
    namer: Any

    def __init__(
        self, conn: Any, spec: LimitSpec, opts: Any, normalise: Callable[..., Any]
    ) -> None:
        """``opts``: the store's options (``fail``, ``on_error``...);
        ``normalise``: the store's quota rules (see
        :func:`normalised_quotas`); ``self.quotas`` holds their results."""
        failure = FailurePolicy(
            opts.fail or spec.fail, opts.on_error or spec.on_error, label=self.store_name
        )
        quotas = normalised_quotas(spec, normalise)
        super().__init__(conn, spec, failure, [(q.burst, r) for q, r in zip(quotas, spec.rates)])
        self.fail = failure.mode
        self.on_error = failure.on_error
        self.options = opts
        self.quotas = tuple(quotas)

    @classmethod
    def on_shared(
        cls,
        conn: Any,
        spec: LimitSpec,
        opts: Any,
        acquire: Callable[[Any], None],
        release: Callable[[Any], None],
    ) -> Self:
        """A backend of ``spec`` on ``conn``, a connection another backend
        uses: a connection floodwall opened gets one more reference (by the
        store's ``acquire``), given back (``release``) if the backend is
        refused, so that a refused limit holds none; a user's connection is
        the user's."""
        make: Any = cls  # a store's backend: (conn, spec, opts)
        if not conn.owned:
            return make(conn, spec, opts)  # type: ignore[no-any-return]
        acquire(conn)
        try:
            return make(conn, spec, opts)  # type: ignore[no-any-return]
        except BaseException:
            release(conn)
            raise

    def _group_keys(self, parts: Sequence[tuple[Any, ...]], cost: int) -> GroupKeys:
        """The store keys of a group (see :meth:`NetworkBackend._members`)."""
        group = GroupKeys()
        for i, (backend, key, n) in enumerate(self._members(parts, cost)):
            part_keys = backend.namer.keys(key)
            group.keys.extend(part_keys)
            group.meta.extend(backend._meta)
            group.part_of.extend([i] * len(part_keys))
            group.costs.extend([n] * len(part_keys))
            group.backends.append(backend)
        return group

    def _release(self) -> None:
        """Give this backend's reference on its connection back."""
        raise NotImplementedError

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.conn.owned:
                self._release()

    def _tripped(self, breaker: CircuitBreaker) -> None:
        self.conn.tripped(breaker)  # the connection wakes the calls waiting on it

    # ``with`` / ``async with`` close the connections this store opened
    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @staticmethod
    def sharing_options(
        base: PooledBackend, options: Mapping[str, Any], connection_options: set[str]
    ) -> dict[str, Any]:
        """The options of a backend on ``base``'s connection: its key naming
        unless ``options`` change it; ConfigError for an option of the
        connection itself (shared, so not this backend's to choose)."""
        if connection_options & set(options):
            raise ConfigError(
                f"a limiter sharing another's {base.store_name} shares its connection options"
            )
        namer = base.namer
        merged: dict[str, Any] = {"plain_keys": namer.plain, "key_secret": namer.key_secret}
        merged.update(options)
        return merged
