# Tests of floodwall.headers: the HTTP mapping of a Decision (Retry-After,
# X-RateLimit-*, the draft-11 RateLimit / RateLimit-Policy structured fields
# parsed back with an RFC 9651 parser, problem+json), and that obeying
# Retry-After is always enough, on every store.
from __future__ import annotations

import json
import random
from typing import Any

import http_sf
import pytest

import floodwall
from floodwall.headers import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPE,
    HeaderPolicy,
    ceil_seconds,
    parse_header_styles,
    policy_name,
    problem_body,
    ratelimit_field,
    ratelimit_policy_field,
    reset_seconds,
    retry_after_seconds,
    sf_string,
)

S = 1_000_000_000


def decision(
    allowed: bool, limit: int, remaining: int, retry_ns: int, reset_ns: int, rate: Any = None
) -> Any:
    return floodwall.Decision(allowed, limit, remaining, retry_ns, reset_ns, 0, rate=rate)


def sf_list(value: str | bytes) -> Any:
    raw = value if isinstance(value, bytes) else value.encode()
    return http_sf.parse(raw, tltype="list")


def test_ceil_seconds() -> None:
    assert [ceil_seconds(n) for n in (-5, 0, 1, S - 1, S, S + 1, 59 * S + 1)] == [
        0,
        0,
        1,
        1,
        1,
        2,
        60,
    ]


def test_retry_after_is_ceiling_and_jitter_never_shortens() -> None:
    d = decision(False, 10, 0, 2 * S + 1, 30 * S)
    assert retry_after_seconds(d) == 3
    assert retry_after_seconds(d, 0, rng=lambda: 0.99) == 3
    assert retry_after_seconds(d, 1000, rng=lambda: 0.0) == 3
    assert retry_after_seconds(d, 2000, rng=lambda: 0.999) == 4
    rng = random.Random(7).random
    exact = decision(False, 1, 0, 5 * S, 5 * S)
    seen = {retry_after_seconds(exact, 2500, rng) for _ in range(2000)}
    assert min(seen) >= 5 and max(seen) <= 8 and len(seen) > 1


def test_reset_seconds_is_retry_when_denied_else_reset() -> None:
    assert reset_seconds(decision(True, 5, 4, 0, 12 * S + 5)) == 13
    assert reset_seconds(decision(False, 5, 0, 3 * S, 60 * S)) == 3


def test_sf_string_roundtrip_and_rejects_non_ascii() -> None:
    for name in ("default", 'say "hi"', "back\\slash", "a;q=1, b", " "):
        text = sf_string(name)
        assert http_sf.parse(text.encode(), tltype="item") == (name, {})
    with pytest.raises(ValueError, match="printable ASCII"):
        sf_string("café")
    with pytest.raises(ValueError):
        sf_string("tab\there")


def test_policy_names() -> None:
    assert policy_name(floodwall.Rate(100, 60)) == "100-per-60s"
    assert policy_name(floodwall.Rate(5, 0.5)) == "5-per-500ms"
    assert policy_name(floodwall.Rate(10, 1, burst=20)) == "10-per-1s-burst-20"


def test_policy_field_and_ratelimit_field_parse() -> None:
    r1, r2 = floodwall.Rate(10, 1), floodwall.Rate(1000, 86400, burst=50)
    field = ratelimit_policy_field([("burst", r1), ("daily", r2)])
    # q/w is the sustained rate (1000 a day), not the burst capacity (50).
    assert field == '"burst";q=10;w=1, "daily";q=1000;w=86400'
    assert sf_list(field) == [("burst", {"q": 10, "w": 1}), ("daily", {"q": 1000, "w": 86400})]
    # Sub-second windows give a non-zero integer w, and q for that window.
    assert sf_list(ratelimit_policy_field([("fast", floodwall.Rate(5, 0.25))])) == [
        ("fast", {"q": 20, "w": 1})
    ]
    d = decision(True, 10, 7, 0, 2_300_000_000)
    assert ratelimit_field(d, "burst") == '"burst";r=7;t=3'


def test_header_policy_allowed_and_denied_exact() -> None:
    rate = floodwall.Rate(3, 60)
    hp = HeaderPolicy([rate])
    allowed = decision(True, 3, 2, 0, 20 * S, rate)
    assert hp.headers(allowed) == [
        ("RateLimit-Policy", '"3-per-60s";q=3;w=60'),
        ("RateLimit", '"3-per-60s";r=2;t=20'),
        ("X-RateLimit-Limit", "3"),
        ("X-RateLimit-Remaining", "2"),
        ("X-RateLimit-Reset", "20"),
    ]
    denied = decision(False, 3, 0, 20 * S - 7, 60 * S, rate)
    pairs = hp.headers(denied)
    assert pairs[0] == ("Retry-After", "20")
    assert dict(pairs)["RateLimit"] == '"3-per-60s";r=0;t=20'
    raw = hp.raw_headers(denied)
    assert raw == [(k.lower().encode(), v.encode()) for k, v in pairs]
    for k, v in raw:
        if k in (b"ratelimit", b"ratelimit-policy"):
            assert sf_list(v)


def test_header_policy_styles_names_and_on_allowed() -> None:
    rates = [floodwall.Rate(10, 1), floodwall.Rate(100, 3600)]
    hp = HeaderPolicy(rates, ["sec", "hour"], styles="ietf")
    d = decision(False, 100, 0, 36 * S, 3600 * S, floodwall.Rate(100, 3600))
    h = dict(hp.headers(d))
    assert set(h) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
    assert sf_list(h["RateLimit"]) == [("hour", {"r": 0, "t": 36})]
    assert sf_list(h["RateLimit-Policy"]) == [
        ("sec", {"q": 10, "w": 1}),
        ("hour", {"q": 100, "w": 3600}),
    ]
    # A single name prefixes derived names of several rates.
    assert HeaderPolicy(rates, "api").names == ("api-10-per-1s", "api-100-per-3600s")
    # Unknown rate (e.g. a fallback decision): the first policy.
    assert hp.name_for(decision(True, 1, 0, 0, 0, None)) == "sec"
    quiet = HeaderPolicy(rates[:1], styles="x-ratelimit", on_allowed=False)
    assert quiet.headers(decision(True, 10, 9, 0, S)) == []
    assert [k for k, _ in quiet.headers(decision(False, 10, 0, S, S))] == [
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    ]
    assert HeaderPolicy(rates[:1], styles="none").headers(decision(False, 1, 0, S, S)) == [
        ("Retry-After", "1")
    ]
    with pytest.raises(ValueError, match="one per rate"):
        HeaderPolicy(rates, ["only-one"])
    with pytest.raises(ValueError, match="printable ASCII"):
        HeaderPolicy(rates[:1], "naïve")
    with pytest.raises(ValueError, match="jitter_ms"):
        HeaderPolicy(rates[:1], jitter_ms=-1)


def test_parse_header_styles() -> None:
    both = frozenset({"ietf", "x-ratelimit"})
    assert parse_header_styles("both") == both
    assert parse_header_styles(True) == both
    assert parse_header_styles(["ietf", "legacy"]) == both
    assert parse_header_styles(None) == parse_header_styles("none") == frozenset()
    with pytest.raises(ValueError, match="unknown header style"):
        parse_header_styles("rfc")


def test_problem_body() -> None:
    d = decision(False, 5, 0, 1500 * 1_000_000, 10 * S)
    doc = json.loads(problem_body(d, ["daily"], instance="/x"))
    assert doc == {
        "type": PROBLEM_TYPE,
        "title": "Quota Exceeded",
        "status": 429,
        "detail": "Too many requests: retry in 2 seconds.",
        "instance": "/x",
        "violated-policies": ["daily"],
    }
    assert PROBLEM_CONTENT_TYPE == "application/problem+json"
    assert json.loads(problem_body(d, retry_after=1))["detail"].endswith("1 second.")


@pytest.mark.parametrize(
    "algorithm", ["gcra", "token_bucket", "fixed_window", "sliding_window", "sliding_log"]
)
@pytest.mark.parametrize("rate", ["3/minute", "7/10seconds", "2/second"])
def test_waiting_retry_after_is_enough(
    store_url: str, clock: Any, algorithm: str, rate: str
) -> None:
    lim = floodwall.Limiter(
        rate, algorithm=algorithm, store=store_url, clock=clock, namespace=f"ra-{algorithm}-{rate}"
    )
    hp = HeaderPolicy(lim.rates, jitter_ms=900, rng=random.Random(1).random)
    key = "client"
    for _ in range(5):
        d = lim.check(key)
        while d.allowed:
            d = lim.check(key)
        sent = dict(hp.headers(d))
        wait = int(sent["Retry-After"])
        t = sf_list(sent["RateLimit"])[0][1]["t"]
        assert wait == t >= 1  # one response never says two different waits
        clock.advance(wait)
        assert lim.check(key).allowed, (algorithm, rate, wait)


def test_advertised_policy_never_promises_more_than_the_rate() -> None:
    """Issue 11: "10/second burst 20" advertised q=20;w=1 (read as 20/s) and
    "1/250ms" q=1;w=1 (4/s real)."""
    from floodwall.headers import advertised_quota

    assert advertised_quota(floodwall.parse_rates("10/second burst 20")[0]) == (10, 1)
    assert advertised_quota(floodwall.parse_rates("1/250ms")[0]) == (4, 1)
    assert advertised_quota(floodwall.parse_rates("2/1500ms")[0]) == (2, 2)
    assert advertised_quota(floodwall.parse_rates("100/minute")[0]) == (100, 60)
    for text in ("3/7s", "1/250ms", "7/333ms", "10/second burst 20", "5/90ms burst 1", "1/2h"):
        rate = floodwall.parse_rates(text)[0]
        q, w = advertised_quota(rate)
        assert w >= 1 and q >= 1
        # q/w <= amount/period, in exact integers
        assert q * rate.period_ns <= rate.amount * w * 1_000_000_000, text
    field = ratelimit_policy_field([("b", floodwall.parse_rates("10/second burst 20")[0])])
    assert sf_list(field) == [("b", {"q": 10, "w": 1})]


def test_retry_after_and_t_agree_with_jitter() -> None:
    """Issue 11: with jitter_ms one 429 said Retry-After: 13 and t=12."""
    rates = floodwall.parse_rates("1/minute")
    for seed in range(20):
        hp = HeaderPolicy(rates, jitter_ms=5000, rng=random.Random(seed).random)
        d = decision(False, 1, 0, 12_000_000_000, 12_000_000_000)
        sent = dict(hp.headers(d))
        assert sf_list(sent["RateLimit"])[0][1]["t"] == int(sent["Retry-After"])
        assert sent["X-RateLimit-Reset"] == sent["Retry-After"]
        raw = dict(hp.raw_headers(d))
        assert raw[b"ratelimit"].endswith(b";t=" + raw[b"retry-after"])
        assert raw[b"x-ratelimit-reset"] == raw[b"retry-after"]
