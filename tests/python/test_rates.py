# The rate grammar: every accepted form, and errors that name the bad part
# and show the grammar.
from __future__ import annotations

import datetime
import pickle

import pytest

from floodwall import Rate, RateParseError, parse_rate, parse_rates

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "amount", "period_ns", "burst"),
    [
        ("100/minute", 100, 60 * S, 100),
        ("100 per minute", 100, 60 * S, 100),
        ("100/m", 100, 60 * S, 100),
        ("100/min", 100, 60 * S, 100),
        ("100/5m", 100, 300 * S, 100),
        ("5/300s", 5, 300 * S, 5),
        ("5/5minutes", 5, 300 * S, 5),
        ("10/second burst 20", 10, S, 20),
        ("10/second burst=20", 10, S, 20),
        ("10/s (burst 20)", 10, S, 20),
        ("250/250ms", 250, 250_000_000, 250),
        ("1/1.5s", 1, 1_500_000_000, 1),
        ("3 / hour", 3, 3600 * S, 3),
        ("10_000/day", 10_000, 86_400 * S, 10_000),
        ("7/w", 7, 7 * 86_400 * S, 7),
        ("1000/us", 1000, 1000, 1000),
        ("5/HOUR", 5, 3600 * S, 5),
        ("100/d", 100, 86_400 * S, 100),
    ],
)
def test_accepted_forms(text: str, amount: int, period_ns: int, burst: int) -> None:
    rate = parse_rate(text)
    assert (rate.amount, rate.period_ns, rate.burst) == (amount, period_ns, burst)


def test_several_rates() -> None:
    assert parse_rates("10/second; 1000/day") == (Rate(10, 1), Rate(1000, 86_400))
    assert parse_rates("10/second, 1000/day") == parse_rates("10/second;1000/day")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty rate"),
        ("100", "missing '/' or 'per'"),
        ("abc/minute", "amount must be a whole number"),
        ("100/fortnight", "unknown unit 'fortnight'"),
        ("100/minute burst", "'burst' needs a whole number"),
        ("10/second;", "empty rate"),
        ("-5/second", "amount must be a whole number"),
        ("0/second", "amount must be an int >= 1"),
        ("10/0s", "period must be at least 1 ns"),
        ("10/second burst 0", "burst must be an int >= 1"),
        ("1/0.5ns", "not a whole number of ns"),
        ("5/1ns", "more than one unit per nanosecond"),
        ("1/100000000w", "at most 2**63-1 ns"),
    ],
)
def test_errors_name_the_problem(text: str, names: str) -> None:
    with pytest.raises(RateParseError) as info:
        parse_rates(text)
    message = str(info.value)
    assert names in message
    assert "Expected" in message and '"100/minute"' in message
    assert isinstance(info.value, ValueError)


def test_parse_rate_wants_exactly_one() -> None:
    with pytest.raises(RateParseError, match="exactly one rate"):
        parse_rate("1/s; 2/m")
    with pytest.raises(TypeError, match="must be str"):
        parse_rates(100)  # type: ignore[arg-type]


def test_rate_object() -> None:
    rate = Rate(10, datetime.timedelta(seconds=1), burst=20)
    assert (rate.period, rate.period_ns, rate.window_seconds) == (1.0, S, 1)
    assert str(rate) == "10/second burst 20"
    assert str(Rate(5, 300)) == "5/5m" and str(Rate(1, 0.25)) == "1/250ms"
    assert Rate.from_ns(10, S, 20) == rate and hash(Rate.from_ns(10, S, 20)) == hash(rate)
    assert pickle.loads(pickle.dumps(rate)) == rate
    assert Rate(1, 0.4).window_seconds == 1 and Rate(1, 61).window_seconds == 61
    with pytest.raises(AttributeError):
        rate.amount = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="amount must be an int >= 1"):
        Rate(True, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="period must be seconds"):
        Rate(1, "1s")  # type: ignore[arg-type]
