"""The HTTP face of a Decision, shared by every framework.

Retry-After, X-RateLimit-Limit/-Remaining/-Reset, the IETF
draft-ietf-httpapi-ratelimit-headers-11 RateLimit-Policy and RateLimit
structured fields (serialized per RFC 9651), and the problem+json body of a
429. Invariant: every number sent is an integer number of seconds rounded
up from the exact nanoseconds, and Retry-After (even with jitter) is never
shorter than the exact wait, so a client that obeys it is admitted.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from floodwall import Decision, Rate

__all__ = [
    "HEADER_STYLES",
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TITLE",
    "PROBLEM_TYPE",
    "HeaderPolicy",
    "advertised_quota",
    "ceil_seconds",
    "parse_header_styles",
    "policy_name",
    "problem_body",
    "ratelimit_field",
    "ratelimit_policy_field",
    "reset_seconds",
    "retry_after_seconds",
    "sf_string",
]

PROBLEM_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"
PROBLEM_TITLE = "Quota Exceeded"
PROBLEM_CONTENT_TYPE = "application/problem+json"

#: The header families a user can select (any combination, or none).
HEADER_STYLES = frozenset({"ietf", "x-ratelimit"})

_NS = 1_000_000_000
#: ASCII decimal of the small numbers most headers carry, encoded once.
_DIGITS = tuple(b"%d" % i for i in range(1024))
_NDIGITS = len(_DIGITS)

_STYLE_ALIASES: dict[str, frozenset[str]] = {
    "ietf": frozenset({"ietf"}),
    "draft": frozenset({"ietf"}),
    "x-ratelimit": frozenset({"x-ratelimit"}),
    "x": frozenset({"x-ratelimit"}),
    "legacy": frozenset({"x-ratelimit"}),
    "both": HEADER_STYLES,
    "all": HEADER_STYLES,
    "none": frozenset(),
}


class _RateLike(Protocol):
    @property
    def amount(self) -> int: ...
    @property
    def period_ns(self) -> int: ...
    @property
    def burst(self) -> int: ...


def parse_header_styles(spec: str | Iterable[str] | bool | None) -> frozenset[str]:
    """Normalise a ``headers=`` option into a set of styles.

    Accepts ``"ietf"``, ``"x-ratelimit"`` (aliases ``"x"``, ``"legacy"``),
    ``"both"``, ``"none"``, an iterable of those, ``True`` (= both) or
    ``False``/``None`` (= none).
    """
    if spec is None or spec is False:
        return frozenset()
    if spec is True:
        return HEADER_STYLES
    items = [spec] if isinstance(spec, str) else list(spec)
    out: set[str] = set()
    for item in items:
        styles = _STYLE_ALIASES.get(str(item).strip().lower())
        if styles is None:
            raise ValueError(
                f"unknown header style {item!r}: use 'ietf', 'x-ratelimit', 'both' or 'none'"
            )
        out |= styles
    return frozenset(out)


def ceil_seconds(ns: int) -> int:
    """Whole seconds, rounded up, of a non-negative nanosecond duration."""
    if ns <= 0:
        return 0
    return -(-ns // _NS)


def retry_after_seconds(
    decision: Decision,
    jitter_ms: int = 0,
    rng: Callable[[], float] = random.random,
) -> int:
    """The ``Retry-After`` value: ``ceil(retry_after)``, plus optional jitter.

    Jitter adds a random ``[0, jitter_ms]`` milliseconds to the *exact* wait
    before rounding up, so the result is always ``>= ceil(retry_after)``.
    """
    ns = decision.retry_after_ns
    if jitter_ms > 0:
        ns += int(rng() * jitter_ms * 1_000_000)
    return ceil_seconds(ns)


def reset_seconds(decision: Decision) -> int:
    """The IETF ``t`` (and ``X-RateLimit-Reset``): ``ceil(retry_after)`` when
    denied, else ``ceil(reset_after)``."""
    if decision.allowed:
        return ceil_seconds(decision.reset_after_ns)
    return ceil_seconds(decision.retry_after_ns)


def sf_string(value: str) -> str:
    """Serialize an RFC 9651 sf-string (printable ASCII only)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if code < 0x20 or code > 0x7E:
            raise ValueError(f"policy name {value!r} must be printable ASCII (RFC 9651 String)")
        if ch in '"\\':
            out.append("\\")
        out.append(ch)
    out.append('"')
    return "".join(out)


def _window_seconds(period_ns: int) -> int:
    # The draft's w is a non-zero integer number of seconds.
    return max(1, ceil_seconds(period_ns))


def advertised_quota(rate: _RateLike) -> tuple[int, int]:
    """``(q, w)`` of a rate for RateLimit-Policy: a whole-second window and
    the units a client may count on in it, so that ``q / w`` is never above
    the rate it can sustain (``amount / period``), and equal to it whenever a
    whole number of seconds allows.

    The burst capacity is not advertised: ``"10/second burst 20"`` is
    ``q=10;w=1`` (the extra 10 are there once, not every second). A
    sub-second period is scaled to whole seconds: ``"1/250ms"`` is
    ``q=4;w=1``; ``"2/1500ms"`` is ``q=2;w=2`` (1/s, below the real 1.33/s).
    """
    w = _window_seconds(rate.period_ns)
    q = rate.amount * w * _NS // rate.period_ns
    return max(q, 1), w


def policy_name(rate: _RateLike) -> str:
    """A readable default policy name for a rate, e.g. ``"100-per-60s"``."""
    period_ns = rate.period_ns
    if period_ns % _NS == 0:
        window = f"{period_ns // _NS}s"
    elif period_ns % 1_000_000 == 0:
        window = f"{period_ns // 1_000_000}ms"
    else:
        window = f"{period_ns}ns"
    name = f"{rate.amount}-per-{window}"
    if rate.burst != rate.amount:
        name += f"-burst-{rate.burst}"
    return name


def _rate_id(rate: _RateLike) -> tuple[int, int, int]:
    return (rate.amount, rate.period_ns, rate.burst)


def ratelimit_policy_field(policies: Sequence[tuple[str, _RateLike]]) -> str:
    """``RateLimit-Policy``: ``"name";q=<units>;w=<seconds>`` items (see
    :func:`advertised_quota`)."""
    items = []
    for name, rate in policies:
        q, w = advertised_quota(rate)
        items.append(f"{sf_string(name)};q={q};w={w}")
    return ", ".join(items)


def ratelimit_field(decision: Decision, name: str, retry_after: int | None = None) -> str:
    """``RateLimit``: ``"name";r=<remaining>;t=<seconds>``. On a denial
    ``t`` is the ``Retry-After`` sent (jitter included) when given, so the
    two never disagree."""
    t = retry_after if retry_after is not None and not decision.allowed else None
    if t is None:
        t = reset_seconds(decision)
    return f"{sf_string(name)};r={max(0, decision.remaining)};t={t}"


def problem_body(
    decision: Decision,
    violated: Sequence[str] = (),
    *,
    retry_after: int | None = None,
    detail: str | None = None,
    instance: str | None = None,
) -> bytes:
    """An RFC 9457 problem+json body of type ``quota-exceeded``."""
    wait = retry_after if retry_after is not None else retry_after_seconds(decision)
    doc: dict[str, Any] = {
        "type": PROBLEM_TYPE,
        "title": PROBLEM_TITLE,
        "status": 429,
        "detail": detail
        if detail is not None
        else f"Too many requests: retry in {wait} second{'s' if wait != 1 else ''}.",
    }
    if instance is not None:
        doc["instance"] = instance
    if violated:
        doc["violated-policies"] = list(violated)
    return json.dumps(doc, separators=(",", ":")).encode()


class HeaderPolicy:
    """What one set of limits puts on responses, precomputed once.

    ``rates`` are the Rate objects of the limits that apply (in order);
    ``names`` optionally names them (one name per rate; a single string names
    a single rate, or prefixes the derived names of several). ``styles`` is a
    ``headers=`` option (see :func:`parse_header_styles`); ``on_allowed``
    sends the rate headers on allowed responses too; ``jitter_ms`` adds jitter
    to ``Retry-After`` only.
    """

    __slots__ = (
        "_by_id",
        "_by_rate",
        "_default_name",
        "_raw_by_id",
        "_raw_names",
        "_rates",
        "_policy_pair",
        "_policy_raw",
        "_raw_default",
        "ietf",
        "jitter_ms",
        "names",
        "on_allowed",
        "policy_field",
        "rng",
        "styles",
        "xrl",
    )

    def __init__(
        self,
        rates: Sequence[Rate] | Sequence[_RateLike],
        names: str | Sequence[str] | None = None,
        *,
        styles: str | Iterable[str] | bool | None = "both",
        on_allowed: bool = True,
        jitter_ms: int = 0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if jitter_ms < 0:
            raise ValueError(f"jitter_ms must be >= 0, got {jitter_ms}")
        rates = list(rates)
        if not rates:
            raise ValueError("a header policy needs at least one rate")
        if names is None:
            resolved = [policy_name(r) for r in rates]
        elif isinstance(names, str):
            resolved = [names] if len(rates) == 1 else [f"{names}-{policy_name(r)}" for r in rates]
        else:
            resolved = list(names)
            if len(resolved) != len(rates):
                raise ValueError(
                    f"{len(resolved)} policy names given for {len(rates)} rates: give one per rate"
                )
        for n in resolved:
            sf_string(n)  # validates
        self.names: tuple[str, ...] = tuple(resolved)
        self._by_rate: dict[tuple[int, int, int], str] = {}
        for n, r in zip(resolved, rates):
            self._by_rate.setdefault(_rate_id(r), n)
        self._default_name = resolved[0]
        # Fast paths: decisions carry the limiter's own Rate objects.
        self._rates = tuple(rates)  # keeps the ids below alive
        self._by_id: dict[int, str] = {}
        for n, r in zip(resolved, rates):
            self._by_id.setdefault(id(r), n)
        self._raw_names = {n: sf_string(n).encode("latin-1") + b";r=" for n in resolved}
        #: id(rate) -> the encoded RateLimit item prefix (one lookup per response)
        self._raw_by_id = {i: self._raw_names[n] for i, n in self._by_id.items()}
        self.styles = parse_header_styles(styles)
        self.ietf = "ietf" in self.styles
        self.xrl = "x-ratelimit" in self.styles
        self.on_allowed = on_allowed
        self.jitter_ms = jitter_ms
        self.rng = rng
        self.policy_field = ratelimit_policy_field(list(zip(resolved, rates)))
        self._policy_raw = self.policy_field.encode("latin-1")
        self._policy_pair = (b"ratelimit-policy", self._policy_raw)

    def name_for(self, decision: Decision) -> str:
        """The policy name of the rate that made ``decision``."""
        rate = decision.rate
        if rate is None:
            return self._default_name
        name = self._by_id.get(id(rate))
        if name is not None:
            return name
        return self._by_rate.get(_rate_id(rate), self._default_name)

    def retry_after(self, decision: Decision) -> int:
        return retry_after_seconds(decision, self.jitter_ms, self.rng)

    def headers(self, decision: Decision, retry_after: int | None = None) -> list[tuple[str, str]]:
        """Headers for a response carrying ``decision`` (str pairs).

        Denied decisions always get ``Retry-After``; the selected rate headers
        are added when denied, and when allowed if ``on_allowed``.
        """
        out: list[tuple[str, str]] = []
        if not decision.allowed:
            ra = retry_after if retry_after is not None else self.retry_after(decision)
            out.append(("Retry-After", str(ra)))
            t = ra  # t and X-RateLimit-Reset say what Retry-After says
        elif not self.on_allowed:
            return out
        else:
            t = reset_seconds(decision)
        if self.ietf:
            out.append(("RateLimit-Policy", self.policy_field))
            out.append(("RateLimit", ratelimit_field(decision, self.name_for(decision), t)))
        if self.xrl:
            out.append(("X-RateLimit-Limit", str(decision.limit)))
            out.append(("X-RateLimit-Remaining", str(max(0, decision.remaining))))
            out.append(("X-RateLimit-Reset", str(t)))
        return out

    def raw_headers(
        self, decision: Decision, retry_after: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Same as :meth:`headers`, as lower-case ASGI byte pairs."""
        # Per response on every ASGI request: each number encoded once, small
        # ones looked up, the constant pair built once.
        if decision.allowed:
            if not self.on_allowed:
                return []
            ns = decision.reset_after_ns
            t = -(-ns // _NS) if ns > 0 else 0  # reset_seconds, inlined
            out: list[tuple[bytes, bytes]] = []
        else:
            ra = retry_after if retry_after is not None else self.retry_after(decision)
            t = ra  # t and x-ratelimit-reset say what Retry-After says
            out = [(b"retry-after", _DIGITS[ra] if 0 <= ra < _NDIGITS else b"%d" % ra)]
        remaining = decision.remaining
        if remaining <= 0:
            r = b"0"
        else:
            r = _DIGITS[remaining] if remaining < _NDIGITS else b"%d" % remaining
        tb = _DIGITS[t] if 0 <= t < _NDIGITS else b"%d" % t
        if self.ietf:
            name = self._raw_by_id.get(id(decision.rate))
            if name is None:
                name = self._raw_names[self.name_for(decision)]
            out.append(self._policy_pair)
            out.append((b"ratelimit", b"".join((name, r, b";t=", tb))))
        if self.xrl:
            n = decision.limit
            out.append((b"x-ratelimit-limit", _DIGITS[n] if 0 <= n < _NDIGITS else b"%d" % n))
            out.append((b"x-ratelimit-remaining", r))
            out.append((b"x-ratelimit-reset", tb))
        return out

    def problem(
        self,
        decision: Decision,
        retry_after: int | None = None,
        *,
        instance: str | None = None,
    ) -> bytes:
        """The problem+json body for a denial."""
        ra = retry_after if retry_after is not None else self.retry_after(decision)
        return problem_body(decision, [self.name_for(decision)], retry_after=ra, instance=instance)
