"""Rates: ``Rate`` objects and the parser of rate strings.

Accepted grammar (case-insensitive, spaces optional around symbols)::

    rates  := rate ( (";" | ",") rate )* [";" | ","]
    rate   := AMOUNT ("/" | "per") [NUMBER] UNIT [ "burst" ["="] BURST ]
    UNIT   := ns | us | ms | s | sec | second | m | min | minute | h | hr | hour
              | d | day | w | week    (plural forms too: "seconds", "mins", ...)

Examples: ``"100/minute"``, ``"100 per minute"``, ``"100/m"``, ``"100/5m"``,
``"5/300s"``, ``"10/second burst 20"``, ``"250/250ms"``,
``"10/second; 1000/day"``.

Numbers are ASCII digits only (``"١٠/s"`` is refused, not read as 10/s), an
amount or burst is a whole number of at most 2**63-1, and a unit that is not
in the list (``"100/month"``: a month has no fixed length) is refused with
the list of units, never read by its first letter.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from floodwall.errors import RateParseError

__all__ = [
    "GRAMMAR",
    "UNITS",
    "Rate",
    "RateLike",
    "parse_duration",
    "parse_rate",
    "parse_rates",
]

GRAMMAR = (
    'AMOUNT "/" [NUMBER] UNIT ["burst" BURST], several joined by ";" - e.g. '
    '"100/minute", "100 per minute", "100/5m", "250/250ms", '
    '"10/second burst 20", "10/second; 1000/day"; units: ns, us, ms, s, m, h, d, w '
    "(or second, minute, hour, day, week)"
)

_UNIT_LIST = (
    "ns, us, ms, s, m, h, d, w (or nanosecond, microsecond, millisecond, second, "
    "minute, hour, day, week, and their plurals)"
)

_NS_PER_UNIT: dict[str, int] = {}
for _names, _ns in (
    (("ns", "nanosecond", "nanoseconds"), 1),
    (("us", "µs", "microsecond", "microseconds"), 1_000),
    (("ms", "millisecond", "milliseconds", "msec", "msecs"), 1_000_000),
    (("s", "sec", "secs", "second", "seconds"), 1_000_000_000),
    (("m", "min", "mins", "minute", "minutes"), 60_000_000_000),
    (("h", "hr", "hrs", "hour", "hours"), 3_600_000_000_000),
    (("d", "day", "days"), 86_400_000_000_000),
    (("w", "wk", "week", "weeks"), 604_800_000_000_000),
):
    for _name in _names:
        _NS_PER_UNIT[_name] = _ns

UNITS = MappingProxyType(_NS_PER_UNIT)
"""Every unit name the parser knows (lower case), and its length in ns."""

_INT64_MAX = 2**63 - 1
# Digits an amount, a burst or the whole part of a period count may have:
# 2**63-1 has 19, so anything longer is refused before int() is called (which
# would raise a bare ValueError past Python's 4300-digit conversion limit).
_MAX_DIGITS = 19

_RATE_RE = re.compile(
    r"""^\s*
    (?P<amount>\d[\d_]*)\s*
    (?:/|\s+per\s+|per\s+)\s*
    (?P<mult>\d+(?:\.\d+)?)?\s*
    (?P<unit>[a-zµ]+)\s*
    (?:(?:burst\s*=?\s*|\(\s*burst\s*=?\s*)(?P<burst>\d[\d_]*)\s*\)?)?
    \s*$""",
    re.IGNORECASE | re.VERBOSE | re.ASCII,
)


class Rate:
    """``amount`` units per ``period``, with a capacity of ``burst`` (default:
    ``amount``). Immutable and hashable."""

    __slots__ = ("_amount", "_burst", "_period_ns")
    _amount: int
    _burst: int
    _period_ns: int

    def __init__(
        self,
        amount: int,
        period: float | datetime.timedelta,
        burst: int | None = None,
    ) -> None:
        if isinstance(period, datetime.timedelta):
            period_ns = (
                period.days * 86_400_000_000_000
                + period.seconds * 1_000_000_000
                + period.microseconds * 1_000
            )
        elif isinstance(period, (int, float)) and not isinstance(period, bool):
            try:
                period_ns = int(Decimal(str(period)) * 1_000_000_000)
            except (InvalidOperation, ValueError, OverflowError):
                period_ns = -1
        else:
            raise TypeError(
                f"period must be seconds (int or float) or a timedelta, "
                f"not {type(period).__name__}"
            )
        self._init(amount, period_ns, burst)

    def _init(self, amount: int, period_ns: int, burst: int | None) -> None:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ValueError(f"amount must be an int >= 1, got {amount!r}")
        if not 1 <= period_ns <= _INT64_MAX:
            raise ValueError(
                "period must be at least 1 ns and at most 2**63-1 ns "
                f"(about 292 years), got {period_ns} ns"
            )
        if amount > period_ns:
            raise ValueError(
                f"{amount} per {period_ns} ns is more than one unit per "
                "nanosecond, the finest rate the engine keeps"
            )
        if burst is not None and (
            isinstance(burst, bool) or not isinstance(burst, int) or burst < 1
        ):
            raise ValueError(f"burst must be an int >= 1, got {burst!r}")
        if burst is not None and burst > _INT64_MAX:
            raise ValueError(f"burst must be at most 2**63-1, got {burst}")
        object.__setattr__(self, "_amount", amount)
        object.__setattr__(self, "_period_ns", period_ns)
        object.__setattr__(self, "_burst", amount if burst is None else burst)

    @classmethod
    def from_ns(cls, amount: int, period_ns: int, burst: int | None = None) -> Rate:
        """A rate whose period is given in integer nanoseconds."""
        self = cls.__new__(cls)
        if isinstance(period_ns, bool) or not isinstance(period_ns, int):
            raise TypeError(f"period_ns must be an int, not {type(period_ns).__name__}")
        self._init(amount, period_ns, burst)
        return self

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse exactly one rate (see the module docstring for the grammar)."""
        return parse_rate(text)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Rate is immutable")

    @property
    def amount(self) -> int:
        """Units admitted per period."""
        return self._amount

    @property
    def period_ns(self) -> int:
        """The period in nanoseconds."""
        return self._period_ns

    @property
    def period(self) -> float:
        """The period in seconds."""
        return self._period_ns / 1e9

    @property
    def burst(self) -> int:
        """The capacity: units a fresh key admits at once."""
        return self._burst

    @property
    def window_seconds(self) -> int:
        """The period in whole seconds, at least 1 (the IETF ``w`` parameter)."""
        return max(1, -(-self._period_ns // 1_000_000_000))

    def _key(self) -> tuple[int, int, int]:
        return (self._amount, self._period_ns, self._burst)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rate):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self._amount}/{_format_period(self._period_ns)}"
        if self._burst != self._amount:
            text += f" burst {self._burst}"
        return text

    def __repr__(self) -> str:
        return f"Rate({str(self)!r})"

    def __reduce__(self) -> tuple[object, tuple[int, int, int]]:
        return (_rate_from_ns, self._key())


def _rate_from_ns(amount: int, period_ns: int, burst: int) -> Rate:
    return Rate.from_ns(amount, period_ns, burst)


_FORMAT_UNITS = (
    (604_800_000_000_000, "week", "w"),
    (86_400_000_000_000, "day", "d"),
    (3_600_000_000_000, "hour", "h"),
    (60_000_000_000, "minute", "m"),
    (1_000_000_000, "second", "s"),
    (1_000_000, "millisecond", "ms"),
    (1_000, "microsecond", "us"),
    (1, "nanosecond", "ns"),
)


def _format_period(period_ns: int) -> str:
    for size, name, short in _FORMAT_UNITS:
        if period_ns % size == 0:
            count = period_ns // size
            return name if count == 1 else f"{count}{short}"
    return f"{period_ns}ns"  # unreachable: every int is a multiple of 1 ns


def _shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for an error message, cut short if it is long (the
    input may be hostile: a 5000-digit amount must not make a 10 kB error)."""
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text)} characters)"
    return repr(text)


def _parse_error(text: str, part: str, why: str) -> RateParseError:
    return RateParseError(
        f"invalid rate {_shown(text)}: {why} in {_shown(part.strip())}. Expected {GRAMMAR}"
    )


def parse_rate(text: str) -> Rate:
    """Parse one rate such as ``"100/minute"`` or ``"10/second burst 20"``."""
    rates = parse_rates(text)
    if len(rates) != 1:
        raise RateParseError(
            f"expected exactly one rate, got {len(rates)} in {_shown(text)}"
        )
    return rates[0]


def parse_rates(text: str) -> tuple[Rate, ...]:
    """Parse one or more rates separated by ``;`` (or ``,``); one trailing
    separator is allowed (``"10/second; 1000/day;"``)."""
    if not isinstance(text, str):
        raise TypeError(f"a rate string must be str, not {type(text).__name__}")
    parts = re.split(r"[;,]", text)
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()  # one trailing separator, as in a list written one per line
    if not text.strip() or any(not p.strip() for p in parts):
        raise _parse_error(text, text, "empty rate")
    return tuple(_parse_one(text, part) for part in parts)


_DURATION_RE = re.compile(
    r"^\s*(?P<mult>\d+(?:\.\d+)?)?\s*(?P<unit>[a-zµ]+)\s*$", re.IGNORECASE | re.ASCII
)


def parse_duration(text: str) -> int:
    """A period written as in a rate ("1m", "250ms", "1h", "2s", "5 minutes",
    "hour") as whole nanoseconds > 0: what ``per=`` and ``period=`` accept
    besides seconds and timedeltas. RateParseError says what is wrong."""
    if not isinstance(text, str):
        raise TypeError(f"a duration is a str such as '1m', not {type(text).__name__}")
    m = _DURATION_RE.match(text)
    if not m:
        raise RateParseError(
            f"cannot read the duration {_shown(text)}: write a number and a unit, "
            f"e.g. '1m', '250ms', '1h', '2s'; the units are {_UNIT_LIST}"
        )
    unit = m["unit"].lower()
    if unit not in _NS_PER_UNIT:
        raise RateParseError(
            f"duration {_shown(text)}: unknown unit {m['unit']!r} (the units are "
            f"{_UNIT_LIST}; a month or a year has no fixed length: write days, e.g. 30d)"
        )
    ns = _period_ns(text, text, m["mult"], _NS_PER_UNIT[unit])
    if not 0 < ns <= _INT64_MAX:
        raise RateParseError(
            f"duration {_shown(text)}: it must be above 0 and below 2**63 ns (292 years)"
        )
    return ns


def _whole(text: str, part: str, digits: str, what: str) -> int:
    """An ASCII digit string (underscores allowed) as an int, refused when it
    cannot fit in 64 bits - before int() sees it, so a 5000-digit amount is a
    RateParseError and never the bare ValueError of Python's digit limit."""
    digits = digits.replace("_", "").lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        raise _parse_error(
            text, part, f"the {what} has {len(digits)} digits; it must be at most 2**63-1"
        )
    return int(digits)


def _period_ns(text: str, part: str, mult: str | None, unit_ns: int) -> int:
    """``mult`` units of ``unit_ns`` as whole nanoseconds, computed exactly."""
    if not mult:
        return unit_ns
    whole, _, frac = mult.partition(".")
    frac = frac.rstrip("0")
    count = _whole(text, part, whole, "number before the unit")
    # unit_ns is at most 6.048e14 ns, so more than 19 decimals (after the
    # trailing zeros) can never make whole nanoseconds.
    if len(frac) > _MAX_DIGITS:
        raise _parse_error(text, part, "the period is not a whole number of ns")
    scale: int = 10 ** len(frac)
    numerator = (count * scale + int(frac or "0")) * unit_ns
    if numerator % scale:
        raise _parse_error(text, part, "the period is not a whole number of ns")
    return numerator // scale


def _parse_one(text: str, part: str) -> Rate:
    m = _RATE_RE.match(part)
    if not m:
        raise _parse_error(text, part, _diagnose(part))
    unit = m["unit"].lower()
    if unit not in _NS_PER_UNIT:
        raise _parse_error(
            text,
            part,
            f"unknown unit {m['unit']!r} (the units are {_UNIT_LIST}; a month or a "
            "year has no fixed length: write days, e.g. 30d)",
        )
    amount = _whole(text, part, m["amount"], "amount")
    period_ns = _period_ns(text, part, m["mult"], _NS_PER_UNIT[unit])
    burst = _whole(text, part, m["burst"], "burst") if m["burst"] else None
    try:
        return Rate.from_ns(amount, period_ns, burst)
    except ValueError as exc:
        raise _parse_error(text, part, str(exc)) from None


def _diagnose(part: str) -> str:
    """Say which piece of a rate is wrong, for the error message."""
    s = part.strip()
    if any(c.isdigit() and not c.isascii() for c in s):
        return "numbers must be written with the ASCII digits 0-9"
    if not re.match(r"^[0-9]", s):
        return "the amount must be a whole number at the start"
    if re.match(r"^[0-9_]*[.eE]", s):
        return "the amount must be a whole number (for 1.5 per second, write 3/2s)"
    if not re.search(r"/|\bper\b", s, re.IGNORECASE):
        return "missing '/' or 'per' between the amount and the period"
    if re.search(r"burst\s*=?\s*$", s, re.IGNORECASE):
        return "'burst' needs a whole number after it"
    if re.search(r"[-+]", s):
        return "signs are not allowed"
    return "cannot read the period"


RateLike = str | Rate
