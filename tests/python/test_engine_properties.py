# Property tests of the C engine (through Limiter with a fake clock): GCRA
# never admits more than burst + elapsed/T; waiting exactly retry_after is
# admitted; remaining never negative; denials and peeks consume nothing; and
# every algorithm agrees with the independent reference model of
# tests/vectors/reference.py on random request sequences.
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from floodwall import ConfigError, Limiter, Rate
from floodwall.algorithms import ALGORITHMS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vectors"))
import reference

START = 1_000_000_000_000

quotas = st.tuples(
    st.integers(1, 50),  # rate
    st.integers(1, 10**11),  # period ns
    st.integers(0, 60),  # burst (0 = rate)
).filter(lambda q: q[0] <= q[1])

steps = st.lists(
    st.tuples(st.integers(0, 3 * 10**10), st.integers(0, 5)),  # (dt ns, cost)
    min_size=1,
    max_size=60,
)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


def make(algorithm: str, quota: tuple[int, int, int], clock: Clock) -> Limiter:
    """The limiter, or assume() away a quota the spec rejects - after
    checking that the engine rejects it too."""
    rate, period, burst = quota
    try:
        reference.normalise(algorithm, rate, period, burst)
    except reference.QuotaError:
        with pytest.raises(ConfigError, match="cannot be used with this algorithm"):
            Limiter(Rate.from_ns(rate, period, burst or None), algorithm=algorithm)
        assume(False)
    return Limiter(Rate.from_ns(rate, period, burst or None), algorithm=algorithm, clock=clock)


@settings(max_examples=150, deadline=None)
@given(quota=quotas, seq=steps)
def test_gcra_never_exceeds_burst_plus_elapsed(quota: tuple[int, int, int], seq) -> None:
    clock = Clock()
    limiter = make("gcra", quota, clock)
    rate, period, burst = quota
    capacity = burst or rate
    interval = -(-period // rate)
    admitted = 0
    for dt, cost in seq:
        clock.now += dt
        cost = min(cost, capacity)
        d = limiter.check("k", cost)
        assert d.remaining >= 0 and d.limit == capacity
        if d.allowed and cost:
            admitted += cost
        elapsed = clock.now - START
        assert admitted <= capacity + elapsed // interval


@settings(max_examples=150, deadline=None)
@given(algorithm=st.sampled_from(list(ALGORITHMS)), quota=quotas, seq=steps)
def test_retry_after_is_enough_and_denials_consume_nothing(
    algorithm: str, quota: tuple[int, int, int], seq
) -> None:
    clock = Clock()
    limiter = make(algorithm, quota, clock)
    capacity = quota[2] or quota[0]
    for dt, cost in seq:
        clock.now += dt
        cost = max(1, min(cost, capacity))
        before = limiter.peek("k")
        assert limiter.peek("k") == before  # peeks consume nothing
        d = limiter.check("k", cost)
        assert d.remaining >= 0
        if not d.allowed:
            assert d.retry_after_ns > 0
            assert limiter.peek("k") == before  # a denial consumes nothing
            if algorithm == "leaky_bucket_shaping":
                continue
            clock.now += d.retry_after_ns
            assert limiter.check("k", cost).allowed, "waiting retry_after must succeed"


@settings(max_examples=200, deadline=None)
@given(algorithm=st.sampled_from(list(ALGORITHMS)), quota=quotas, seq=steps)
def test_engine_matches_reference_model(algorithm: str, quota: tuple[int, int, int], seq) -> None:
    clock = Clock()
    limiter = make(algorithm, quota, clock)
    q = reference.normalise(algorithm, *quota)
    state = reference.fresh_state(q)
    for dt, cost in seq:
        clock.now += dt
        cost = min(cost, q.burst)
        state, want = reference.step(q, state, clock.now, cost)
        got = limiter.check("k", cost)
        assert (
            got.allowed,
            got.limit,
            got.remaining,
            got.retry_after_ns,
            got.reset_after_ns,
            got.delay_ns,
        ) == (
            want.allowed,
            want.limit,
            want.remaining,
            want.retry_after_ns,
            want.reset_after_ns,
            want.delay_ns,
        ), (algorithm, quota, clock.now - START, cost)


DAY = 86_400 * 10**9
jumps = st.lists(
    st.tuples(
        st.one_of(
            st.integers(-3 * 10**10, 3 * 10**10),  # jitter, both ways
            st.sampled_from([DAY, -DAY, 7 * DAY, -7 * DAY]),  # clock excursions
        ),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(algorithm=st.sampled_from(list(ALGORITHMS)), quota=quotas, seq=jumps)
def test_clock_jumps_never_demand_more_than_the_policy_bound(
    algorithm: str, quota: tuple[int, int, int], seq
) -> None:
    # docs/algorithms.md: a stored state ahead of now is clamped once it
    # demands more than max(horizon, 1 s) beyond its policy, so no decision
    # waits longer than 2 * horizon + max(horizon, 1 s), whatever the clock
    # did; and remaining stays in [0, limit]
    clock = Clock()
    clock.now = 30 * DAY
    limiter = make(algorithm, quota, clock)
    q = reference.normalise(algorithm, *quota)
    if algorithm in ("fixed_window", "sliding_window", "sliding_log"):
        horizon = q.window_ns
    else:
        horizon = q.interval_ns * q.burst
    bound = 2 * horizon + max(horizon, 10**9)
    for dt, cost in seq:
        clock.now = max(0, clock.now + dt)
        cost = min(cost, q.burst)
        for d in (limiter.check("k", cost), limiter.peek("k")):
            assert 0 <= d.remaining <= d.limit == q.burst
            assert d.retry_after_ns <= bound, (algorithm, d)
            assert d.reset_after_ns <= bound, (algorithm, d)
