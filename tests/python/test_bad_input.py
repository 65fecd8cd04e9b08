# Every rejected argument: the error type and a message that says what was
# wrong and what is allowed. Nothing is consumed by a rejected call.
from __future__ import annotations

import pytest

import floodwall
from floodwall import ConfigError, CostError, KeyTypeError, Limiter


@pytest.mark.parametrize("key", [42, None, 1.5, ["a"], ("a",), bytearray(b"a"), object()])
def test_key_must_be_str_or_bytes(key: object) -> None:
    limiter = Limiter("5/minute")
    for call in (limiter.check, limiter.allow, limiter.peek, limiter.reset):
        with pytest.raises(KeyTypeError, match="key must be str or bytes, not"):
            call(key)  # type: ignore[arg-type]
    assert isinstance(KeyTypeError("x"), TypeError)


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        (-1, "cost must be an int >= 0, got -1"),
        (1.0, "cost must be an int >= 0, not float"),
        ("2", "cost must be an int >= 0, not str"),
        (None, "cost must be an int >= 0, not NoneType"),
        (6, "cost 6 exceeds the capacity 5 of Rate('5/minute'): it can never be admitted"),
        (2**70, "is larger than any capacity"),
        (-(2**70), "cost must be an int >= 0"),
    ],
)
def test_bad_costs(cost: object, message: str) -> None:
    limiter = Limiter("5/minute")
    with pytest.raises(CostError) as info:
        limiter.check("k", cost)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)
    assert limiter.peek("k").remaining == 5  # nothing consumed


def test_cost_above_any_of_several_rates() -> None:
    limiter = Limiter("10/second; 20/minute burst 5")
    with pytest.raises(CostError, match="capacity 5 of Rate"):
        limiter.check("k", 6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no rate given"),
        ({"rate": "5/minute", "algorithm": "magic"}, "unknown algorithm 'magic'; choose one"),
        ({"rate": 5}, "needs per=<seconds>"),
        ({"rate": "5/minute", "per": 60}, "per= goes with an int rate"),
        ({"rate": "5/minute", "requests": 5, "period": 60}, "either rate"),
        ({"requests": 5}, "requests and period go together"),
        ({"rate": "5/minute", "store": "nosuch://x"}, "unknown store scheme 'nosuch'"),
        ({"rate": "5/minute", "store": "memory"}, "store must be a URL"),
        ({"rate": "5/minute", "store": 42}, "store must be a URL string"),
        ({"rate": "5/minute", "max_keys": 0}, "max_keys must be between 1 and"),
        ({"rate": "5/minute", "max_keys": "lots"}, "max_keys must be an integer"),
        ({"rate": "5/minute", "store": "memory://?color=red"}, "unknown URL option(s) ['color']"),
        ({"rate": "5/minute", "bogus": 1}, "unknown keyword option(s) ['bogus']"),
        ({"rate": "5/minute", "fail": "maybe"}, "fail must be one of"),
        ({"rate": "5/minute", "namespace": ""}, "namespace must be a non-empty str"),
        ({"rate": "1/s; 2/s", "burst": 3}, "burst= applies to a single rate"),
        ({"rate": "1/s; 1/s"}, "the same rate is given twice"),
        ({"rate": "70000/hour", "algorithm": "sliding_log"}, "capacity at most 65536"),
        (
            {"rate": "100000000/minute", "algorithm": "sliding_window"},
            "sliding_window needs (capacity + 1)**2",
        ),
    ],
)
def test_bad_limiter_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ConfigError, TypeError, ValueError)) as info:
        Limiter(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert isinstance(info.value, floodwall.FloodwallError) or isinstance(info.value, TypeError)


def test_bad_clock() -> None:
    limiter = Limiter("5/minute", clock=lambda: -5)
    with pytest.raises(ValueError, match="the clock returned -5"):
        limiter.check("k")
    with pytest.raises(TypeError, match="clock must be None or a callable"):
        Limiter("5/minute", clock=5)  # type: ignore[arg-type]


def test_bad_check_all_parts() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        floodwall.check_all([])
    with pytest.raises(TypeError, match="takes \\(limiter, key\\) pairs"):
        floodwall.check_all([("not a limiter", "k")])  # type: ignore[list-item]


def test_too_many_positional_arguments() -> None:
    limiter = Limiter("5/minute")
    with pytest.raises(TypeError, match="at most 2 positional"):
        limiter.check("k", 1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing required argument 'key'"):
        limiter.check()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected or repeated keyword"):
        limiter.allow("k", weight=3)  # type: ignore[call-arg]


def test_sliding_log_on_a_table_without_room() -> None:
    Limiter("5/minute", store="memory://no-log-room")
    with pytest.raises(ConfigError, match="sliding logs of 0 entries and this limiter needs 5"):
        Limiter("5/minute", algorithm="sliding_log", store="memory://no-log-room")
