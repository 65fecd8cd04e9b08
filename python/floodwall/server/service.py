"""What the server decides with: the limits it serves, shared by its front ends.

One :class:`Service` per worker process. It opens the server's store once
(a ``shm://`` or ``file://`` table that every worker maps, so the workers
need no lock of their own) and binds every limit to that one opened store:
the named limits of the configuration, and the limits given inline in a
request (cached, at most :data:`INLINE_CACHE` of them; a dropped entry
loses nothing, the state is in the table). Requests are parsed here into
checked values (:class:`BadRequest` names what is wrong); the HTTP app and
the RESP server only translate. Invariant: every limiter of a Service
shares one opened store, so any parts can be decided all-or-nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from floodwall._native import Decision
from floodwall.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, LOG_CAPACITY_MAX
from floodwall.config.model import Config
from floodwall.errors import ConfigError, CostError, FloodwallError, StoreError
from floodwall.limiter import Limiter
from floodwall.rates import Rate, parse_rates

__all__ = [
    "INLINE_CACHE",
    "MAX_KEY_BYTES",
    "MAX_PARTS",
    "MAX_RATES",
    "BadRequest",
    "Service",
    "ServiceSettings",
    "decision_json",
    "explicit_log_capacity",
    "log_room",
]

#: Inline limits kept bound per worker (least recently used dropped first).
INLINE_CACHE = 4096
#: Longest key accepted, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
#: Most parts of one check-all.
MAX_PARTS = 64
#: Most rates of one inline limit.
MAX_RATES = 8
#: Namespace prefix of inline limits: they never meet a named limit's keys.
INLINE_PREFIX = "inline/"
_INT64_MAX = 2**63 - 1


class BadRequest(FloodwallError, ValueError):
    """A request the server will not decide: ``status`` (HTTP), ``code`` (a
    short machine name) and a message saying what was wrong."""

    def __init__(self, message: str, code: str = "bad_request", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class ServiceSettings:
    """What a worker needs to open its Service (sent to every worker)."""

    store: str
    config_path: str | None = None
    store_options: Mapping[str, Any] | None = None
    test_clock: bool = False
    allow_clear: bool = False


def decision_json(d: Decision, rates: Sequence[Rate] = ()) -> dict[str, Any]:
    """The full decision as JSON: seconds and exact nanoseconds."""
    rate = d.rate
    index = None
    for i, r in enumerate(rates):
        if r is rate or r == rate:
            index = i
            break
    return {
        "allowed": d.allowed,
        "limit": d.limit,
        "remaining": d.remaining,
        "retry_after": d.retry_after,
        "reset_after": d.reset_after,
        "delay": d.delay,
        "retry_after_ns": d.retry_after_ns,
        "reset_after_ns": d.reset_after_ns,
        "delay_ns": d.delay_ns,
        "reset_at": d.reset_at,
        "rate": None if rate is None else str(rate),
        "rate_index": index,
        "fallback": d.fallback,
        "denied_part": d.denied_part,
        # the HTTP mapping of DESIGN.md, for clients that only relay it
        "retry_after_s": 0 if d.allowed else math.ceil(d.retry_after),
    }


def _int(body: Mapping[str, Any], name: str, default: int | None, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        raise BadRequest(f"{name!r} is required: an integer between {low} and {high}")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name!r} must be an integer between {low} and {high}, got {value!r}")
    return value


CHECK_FIELDS = frozenset(
    {"limit", "rate", "algorithm", "namespace", "key", "key_b64", "cost", "now_ns"}
)
STATUS_FIELDS = CHECK_FIELDS - {"cost"}
PART_FIELDS = CHECK_FIELDS - {"now_ns"}
CHECK_ALL_FIELDS = frozenset({"parts", "cost", "now_ns"})


def _fields(body: Any, allowed: frozenset[str]) -> Mapping[str, Any]:
    """``body`` if it is an object whose fields are all in ``allowed``."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(
            f"unknown field(s) {sorted(unknown)[:5]}; allowed: {', '.join(sorted(allowed))}"
        )
    return body


def _key(body: Mapping[str, Any]) -> str | bytes:
    """``key`` (text), or ``key_b64`` (the key's bytes, base64: keys that are
    not UTF-8); at most MAX_KEY_BYTES bytes either way."""
    if "key_b64" in body:
        if "key" in body:
            raise BadRequest("give either 'key' or 'key_b64', not both")
        raw = body["key_b64"]
        if not isinstance(raw, str) or len(raw) > 2 * MAX_KEY_BYTES:
            raise BadRequest("'key_b64' must be a base64 string")
        import base64
        import binascii

        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("'key_b64' is not valid base64") from None
        if len(data) > MAX_KEY_BYTES:
            raise BadRequest(f"the key is longer than {MAX_KEY_BYTES} bytes")
        return data
    key = body.get("key")
    if not isinstance(key, str):
        raise BadRequest(f"'key' is required: a string, got {key!r}")
    if len(key) > MAX_KEY_BYTES or (
        not key.isascii() and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES
    ):
        raise BadRequest(f"'key' is longer than {MAX_KEY_BYTES} bytes")
    return key


def _rates(value: Any) -> tuple[Rate, ...]:
    """An inline rate: text ("10/second; 1000/day") or a list of
    {"amount", "period_ns", "burst"} objects (exact, what the remote store sends)."""
    if isinstance(value, str):
        if len(value) > 200:
            raise BadRequest("'rate' is longer than 200 characters")
        try:
            rates = parse_rates(value)
        except ValueError as exc:
            raise BadRequest(f"'rate': {exc}", "bad_rate") from None
    elif isinstance(value, list) and value:
        out: list[Rate] = []
        for item in value:
            if not isinstance(item, dict) or set(item) - {"amount", "period_ns", "burst"}:
                raise BadRequest(
                    "'rate' items must be objects with amount, period_ns and burst", "bad_rate"
                )
            amount = _int(item, "amount", None, 1, _INT64_MAX)
            period = _int(item, "period_ns", None, 1, _INT64_MAX)
            burst = _int(item, "burst", amount, 1, _INT64_MAX)
            try:
                out.append(Rate.from_ns(amount, period, burst))
            except ValueError as exc:
                raise BadRequest(f"'rate': {exc}", "bad_rate") from None
        rates = tuple(out)
    else:
        raise BadRequest(
            "give 'limit' (a configured name) or 'rate' (text such as '10/second', "
            "or a list of {amount, period_ns, burst})"
        )
    if len(rates) > MAX_RATES:
        raise BadRequest(f"'rate' has {len(rates)} rates; at most {MAX_RATES}", "bad_rate")
    return rates


def _raw_key(body: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """A hashable spelling of a request's inline limit, or None (then it is
    parsed every time)."""
    rate = body.get("rate")
    if isinstance(rate, list):
        try:
            rate = tuple(
                (item.get("amount"), item.get("period_ns"), item.get("burst"), len(item))
                for item in rate
            )
        except AttributeError:
            return None
        if any(type(v) is not int and not (i == 2 and v is None)
               for part in rate for i, v in enumerate(part)):
            return None  # only exact ints: 1 and 1.0 and True must not share an entry
    elif not isinstance(rate, str):
        return None
    algorithm, namespace = body.get("algorithm"), body.get("namespace")
    if not (algorithm is None or isinstance(algorithm, str)) or not (
        namespace is None or isinstance(namespace, str)
    ):
        return None
    return (rate, algorithm, namespace)


def log_room(config: Config) -> tuple[int, str | None]:
    """The sliding-log room a table needs for the configured limits: the
    largest capacity of a named ``sliding_log`` limit, and that limit's name
    (0 and None when none is a sliding log)."""
    from floodwall.limiter import resolve_rates

    need, owner = 0, None
    for name in sorted(config.limits):
        spec = config.limit(name)
        if config.effective(spec)["algorithm"] != "sliding_log":
            continue
        try:
            capacity = max(r.burst for r in resolve_rates(spec.rate, burst=spec.burst))
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"limit {name!r} cannot be served: {exc}") from None
        if capacity > LOG_CAPACITY_MAX:
            raise ConfigError(
                f"limit {name!r} cannot be served: a sliding_log keeps one entry per "
                f"request, so its capacity is at most {LOG_CAPACITY_MAX}, got {capacity}; "
                "use sliding_window or gcra"
            )
        if capacity > need:
            need, owner = capacity, name
    return need, owner


def explicit_log_capacity(store: str, options: Mapping[str, Any]) -> int | None:
    """The ``log_capacity`` the operator set for the server's table (in the
    store URL's query or the store options), or None."""
    if "log_capacity" in options:
        value = options["log_capacity"]
    else:
        from urllib.parse import parse_qs

        query = parse_qs(store.split("?", 1)[1]) if "?" in store else {}
        if "log_capacity" not in query:
            return None
        value = query["log_capacity"][-1]
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # the store names the bad value when it opens


class Service:
    """The limits of one worker, on one opened store."""

    def __init__(self, settings: ServiceSettings, config: Config | None = None) -> None:
        from floodwall.config.loading import load

        self.settings = settings
        self.config = config if config is not None else load(settings.config_path)
        self._now: int | None = None
        self._clock: Callable[[], int] | None = self._test_now if settings.test_clock else None
        options = dict(settings.store_options or {})
        # the table's sliding-log room: the largest named sliding_log limit
        # needs it; the base limiter asks for it when the table is opened
        need, owner = log_room(self.config)
        given = explicit_log_capacity(settings.store, options)
        if owner is not None and given is not None and given < need:
            raise ConfigError(
                f"limit {owner!r} is a sliding_log of capacity {need} and the store's "
                f"log_capacity={given} cannot hold it: set log_capacity to at least {need}, "
                "or leave it out (the server then sizes it from the configured limits)"
            )
        self.base = Limiter(
            f"{need}/second" if need else "1/second",
            algorithm="sliding_log" if need else DEFAULT_ALGORITHM,
            store=settings.store,
            namespace="floodwall-serve",
            clock=self._clock,
            fail="raise",
            **options,
        )
        self.store = self.base.store
        self.named: dict[str, Limiter] = {}
        for name in sorted(self.config.limits):
            self.named[name] = self._named(name)
        self._inline: OrderedDict[tuple[Any, ...], Limiter] = OrderedDict()
        # the same limits by the request's own spelling (no parsing on a hit)
        self._raw: dict[tuple[Any, ...], Limiter] = {}
        self._lock = threading.Lock()
        self.started = time.time()

    # -- the limits

    def _named(self, name: str) -> Limiter:
        spec = self.config.limit(name)
        eff = self.config.effective(spec)
        try:
            return Limiter(
                spec.rate,
                algorithm=eff["algorithm"],
                burst=spec.burst,
                store=self.store,
                namespace=f"{self.config.namespace}:{spec.bucket}",
                clock=self._clock,
                fail="raise",
            )
        except ConfigError as exc:
            raise ConfigError(f"limit {name!r} cannot be served: {exc}") from None

    def describe(self) -> list[dict[str, Any]]:
        """The named limits, for people and clients."""
        out = []
        for name, limiter in self.named.items():
            eff = self.config.effective(self.config.limit(name))
            out.append(
                {
                    "name": name,
                    "rate": "; ".join(str(r) for r in limiter.rates),
                    "algorithm": limiter.algorithm,
                    "limit": min(r.burst for r in limiter.rates),
                    "cost": eff["cost"],
                }
            )
        return out

    def limiter_for(self, body: Mapping[str, Any]) -> Limiter:
        """The limiter a request names: ``limit`` (configured) or an inline
        ``rate`` with ``algorithm`` and ``namespace``."""
        name = body.get("limit")
        if name is not None:
            if not isinstance(name, str):
                raise BadRequest(f"'limit' must be a string, got {name!r}")
            if {"rate", "algorithm", "namespace"} & set(body):
                raise BadRequest("'rate', 'algorithm' and 'namespace' are for inline limits: "
                                 "give either 'limit' or them")
            found = self.named.get(name)
            if found is None:
                known = ", ".join(sorted(self.named)) or "none"
                raise BadRequest(f"no limit named {name[:100]!r}; known: {known}",
                                 "unknown_limit", 404)
            return found
        rate = body.get("rate")
        if type(rate) is str:  # the common spelling, looked up as _raw_key spells it
            algorithm, namespace = body.get("algorithm"), body.get("namespace")
            if (algorithm is None or type(algorithm) is str) and (
                namespace is None or type(namespace) is str
            ):
                hit = self._raw.get((rate, algorithm, namespace))
                if hit is not None:
                    return hit
        raw_key = _raw_key(body)
        if raw_key is not None:
            # the same request text as before: its checked limiter, at once
            hit = self._raw.get(raw_key)
            if hit is not None:
                return hit
        limiter = self._inline_limiter(body)
        if raw_key is not None:
            with self._lock:
                self._raw[raw_key] = limiter
                if len(self._raw) > INLINE_CACHE:
                    self._raw.clear()  # rebuilt from the checked cache as requests come
        return limiter

    def _inline_limiter(self, body: Mapping[str, Any]) -> Limiter:
        rates = _rates(body.get("rate"))
        algorithm = body.get("algorithm", DEFAULT_ALGORITHM)
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise BadRequest(
                f"'algorithm' must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"
            )
        namespace = body.get("namespace", "default")
        if not isinstance(namespace, str) or not namespace or len(namespace) > 200:
            raise BadRequest("'namespace' must be a non-empty string of at most 200 characters")
        cache_key = (algorithm, rates, namespace)
        with self._lock:
            limiter = self._inline.get(cache_key)
            if limiter is not None:
                self._inline.move_to_end(cache_key)
                return limiter
        try:
            limiter = Limiter(
                list(rates),
                algorithm=algorithm,
                store=self.store,
                namespace=INLINE_PREFIX + namespace,
                clock=self._clock,
                fail="raise",
            )
        except ConfigError as exc:
            raise BadRequest(str(exc), "bad_limit") from None
        with self._lock:
            self._inline[cache_key] = limiter
            while len(self._inline) > INLINE_CACHE:
                self._inline.popitem(last=False)
        return limiter

    # -- the test clock

    def _test_now(self) -> int:
        now = self._now
        return time.time_ns() if now is None else now

    def set_now(self, body: Mapping[str, Any]) -> None:
        """Apply a request's ``now_ns`` (only on a server started with the
        test clock: it lets a client choose time)."""
        if "now_ns" not in body:
            self._now = None
            return
        if not self.settings.test_clock:
            raise BadRequest("'now_ns' is accepted only by a server started with --test-clock")
        self._now = _int(body, "now_ns", None, 0, _INT64_MAX)

    # -- the calls (synchronous: the engine answers in about a microsecond)

    def decide(self, body: Any, *, consume: bool = True) -> tuple[Decision, Sequence[Rate]]:
        """A check's decision and the rates of its limit (what the answer is
        formatted from)."""
        allowed = CHECK_FIELDS if consume else STATUS_FIELDS
        if type(body) is not dict or not allowed.issuperset(body):
            body = _fields(body, allowed)  # raises, naming the problem
        limiter = None
        rate = body.get("rate")
        if type(rate) is str and "limit" not in body:  # limiter_for's first look, inlined
            algorithm, namespace = body.get("algorithm"), body.get("namespace")
            if (algorithm is None or type(algorithm) is str) and (
                namespace is None or type(namespace) is str
            ):
                limiter = self._raw.get((rate, algorithm, namespace))
        if limiter is None:
            limiter = self.limiter_for(body)
        key = body.get("key")
        if type(key) is not str or len(key) > MAX_KEY_BYTES or not key.isascii() or (
            "key_b64" in body
        ):
            key = _key(body)  # checked in full (and refused, saying why)
        if consume:
            cost = body.get("cost", 1)
            if type(cost) is not int or not 0 <= cost <= _INT64_MAX:
                cost = _int(body, "cost", 1, 0, _INT64_MAX)  # raises, naming the problem
        else:
            cost = 0
        if "now_ns" in body or self._now is not None:
            self.set_now(body)
        try:
            return limiter.check(key, cost), limiter.rates
        except Exception as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            raise refusal from None

    def check(self, body: Any, *, consume: bool = True) -> dict[str, Any]:
        d, rates = self.decide(body, consume=consume)
        return {"decision": decision_json(d, rates)}

    def check_all(self, body: Any) -> dict[str, Any]:
        body = _fields(body, CHECK_ALL_FIELDS)
        parts = body.get("parts")
        if not isinstance(parts, list) or not parts:
            raise BadRequest("'parts' is required: a non-empty list of {limit|rate, key, cost}")
        if len(parts) > MAX_PARTS:
            raise BadRequest(f"'parts' has {len(parts)} items; at most {MAX_PARTS}")
        default = _int(body, "cost", 1, 0, _INT64_MAX)
        triples: list[tuple[Any, ...]] = []
        for i, part in enumerate(parts):
            try:
                part = _fields(part, PART_FIELDS)
                limiter = self.limiter_for(part)
                triples.append((limiter, _key(part), _int(part, "cost", default, 0, _INT64_MAX)))
            except BadRequest as exc:
                raise BadRequest(f"part {i}: {exc}", exc.code, exc.status) from None
        self.set_now(body)
        from floodwall.limiter import check_all

        d = _decide(lambda: check_all(triples))
        rates: Sequence[Rate] = ()
        if d.denied_part is not None:
            rates = triples[d.denied_part][0].rates
        elif d.rate is not None:
            rates = next((t[0].rates for t in triples if d.rate in t[0].rates), ())
        return {"decision": decision_json(d, rates)}

    def reset(self, body: Any) -> dict[str, Any]:
        body = _fields(body, STATUS_FIELDS)
        limiter = self.limiter_for(body)
        key = _key(body)
        self.set_now(body)
        return {"reset": bool(_decide(lambda: limiter.reset(key)))}

    def stats_request(self, body: Any) -> dict[str, Any]:
        """``/v1/stats``: the counters at the request's ``now_ns`` (test clock)."""
        self.set_now(_fields(body, frozenset({"now_ns"})))
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """The store's counters (a table's are shared by every worker)."""
        out = dict(self.base.stats())
        for name in ("allowed", "denied", "fallbacks", "errors"):
            out.pop(name, None)  # the base limiter's own counts: meaningless here
        return {"stats": out}

    def clear(self, body: Any) -> dict[str, Any]:
        """Forget every key of the table: only on a server started with
        --allow-clear (one client must not wipe every limit by default)."""
        _fields(body, frozenset())
        if not self.settings.allow_clear:
            raise BadRequest("clear is disabled on this server (start it with --allow-clear)",
                             "forbidden", 403)
        _decide(self.base.clear)
        return {"cleared": True}

    def doctor(self) -> dict[str, Any]:
        """The store's health: its kind and table counters, and for shm:// and
        file:// the read-only table doctor."""
        caps = self.store.capabilities
        report: dict[str, Any] = {
            "store": caps.kind,
            "shared": caps.shared,
            "durable": caps.durable,
            "stats": self.stats()["stats"],
            "limits": len(self.named),
            "inline_limits": len(self._inline),
            "uptime": round(time.time() - self.started, 3),
        }
        ok = True
        if caps.kind in ("shm", "file"):
            from floodwall import ops

            try:
                table = ops.doctor(self.settings.store)
            except (OSError, ConfigError) as exc:
                table = {"ok": False, "problem": str(exc)}
            report["table"] = table
            ok = bool(table.get("ok"))
        report["ok"] = ok
        return report

    def close(self) -> None:
        self.base.close()


def _refusal(exc: Exception) -> BadRequest | None:
    """What a store call's exception means to a client: a caller's mistake
    is a 400, a store that cannot decide a 503 (the client's failure policy
    then answers); None for anything else (raised as it is)."""
    if isinstance(exc, CostError):
        return BadRequest(str(exc), "cost")
    if isinstance(exc, StoreError):
        return BadRequest(f"the server's store could not decide: {exc}", "store", 503)
    if isinstance(exc, (ConfigError, TypeError, ValueError)):
        return BadRequest(str(exc))
    return None


def _decide(call: Callable[[], Any]) -> Any:
    """Run a store call, its exceptions translated by :func:`_refusal`."""
    try:
        return call()
    except Exception as exc:
        refusal = _refusal(exc)
        if refusal is None:
            raise
        raise refusal from None
