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
        ("1/0.000001ms", 1, 1, 1),
        ("0010/s", 10, S, 10),
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
        ("10/second;;", "empty rate"),
        (";", "empty rate"),
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


# Input hygiene (issues 10 and 11): hostile or foreign input gets the
# documented error class with a message naming the problem.


@pytest.mark.parametrize(
    "text",
    [
        "1" * 5000 + "/second",  # over Python's 4300-digit int() limit
        "5/second burst " + "1" * 5000,
        "1/" + "1" * 5000 + "s",
        "1/1." + "0" * 5000 + "1s",
    ],
)
def test_huge_numbers_raise_rate_parse_error(text: str) -> None:
    with pytest.raises(RateParseError) as info:
        parse_rates(text)
    message = str(info.value)
    assert "digits" in message or "not a whole number of ns" in message
    assert len(message) < 1000  # the hostile text is not echoed in full


def test_numbers_just_past_64_bits_are_refused_at_parse_time() -> None:
    with pytest.raises(RateParseError, match="burst must be at most 2\\*\\*63-1"):
        parse_rates(f"10/second burst {2**63}")
    with pytest.raises(RateParseError, match="20 digits"):
        parse_rates("10/second burst 10000000000000000000")
    with pytest.raises(ValueError, match="burst must be at most 2\\*\\*63-1"):
        Rate(1, 1, burst=2**63)
    assert parse_rate(f"1/second burst {2**63 - 1}").burst == 2**63 - 1


@pytest.mark.parametrize(
    "text",
    [
        "\u0661\u0660/s",  # Arabic-Indic "10"
        "\uff11\uff10/second",  # fullwidth "10"
        "10/\u0665s",  # Arabic-Indic 5 in the period
        "10/s burst \u0662\u0660",
    ],
)
def test_only_ascii_digits(text: str) -> None:
    with pytest.raises(RateParseError, match="ASCII digits 0-9"):
        parse_rates(text)


def test_decimal_periods_are_exact() -> None:
    # 29 significant digits: a 28-digit Decimal context rounded this to 1 s.
    with pytest.raises(RateParseError, match="not a whole number of ns"):
        parse_rates("1/1.0000000000000000000000000001s")
    assert parse_rate("1/1." + "0" * 40 + "s").period_ns == S
    assert parse_rate("3/2.5s").period_ns == 2_500_000_000


@pytest.mark.parametrize("text", ["1.5/second", "0.5/s", "2.0/minute", "1e3/s"])
def test_fractional_amount_names_the_amount(text: str) -> None:
    with pytest.raises(RateParseError) as info:
        parse_rates(text)
    message = str(info.value)
    assert "the amount must be a whole number" in message
    assert "cannot read the period" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/second;", (Rate(10, 1),)),
        ("10/second; 1000/day;", (Rate(10, 1), Rate(1000, 86_400))),
        ("10/second; 1000/day ; ", (Rate(10, 1), Rate(1000, 86_400))),
        ("10/second,", (Rate(10, 1),)),
    ],
)
def test_one_trailing_separator_is_accepted(text: str, expected: tuple[Rate, ...]) -> None:
    assert parse_rates(text) == expected
    if len(expected) == 1:
        assert parse_rate(text) == expected[0]


@pytest.mark.parametrize(
    "text", ["100/month", "100/months", "100 per month", "1/mo", "5/year", "5/y", "100/mn"]
)
def test_unknown_units_are_refused_with_the_list_of_units(text: str) -> None:
    with pytest.raises(RateParseError) as info:
        parse_rates(text)
    message = str(info.value)
    assert "unknown unit" in message
    assert "ns, us, ms, s, m, h, d, w" in message and "30d" in message


def test_units_table_is_read_only_and_complete() -> None:
    from floodwall.rates import UNITS

    assert UNITS["minute"] == 60 * S and UNITS["ms"] == 1_000_000 and UNITS["w"] == 7 * 86_400 * S
    assert "month" not in UNITS
    with pytest.raises(TypeError):
        UNITS["month"] = 30 * 86_400 * S  # type: ignore[index]
