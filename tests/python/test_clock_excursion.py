"""A clock excursion on every store: when the store's clock jumps ahead,
requests are decided, and the clock comes back, no key stays locked out
for as long as the excursion lasted (docs/algorithms.md, "States the engine
does not trust"): a state too far ahead of now is clamped to "full at now",
so the wait is at most the algorithm's horizon plus max(horizon, 1 s)."""

from __future__ import annotations

import random
import uuid

import pytest

import floodwall
from floodwall.algorithms import ALGORITHMS

DAY = 86_400 * 10**9
S = 10**9


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_a_day_ahead_and_back_waits_one_horizon(store_url: str, algorithm: str) -> None:
    now = [1_000 * DAY]
    lim = floodwall.Limiter("10/minute", algorithm=algorithm, store=store_url,
                            clock=lambda: now[0], namespace=f"excursion-{algorithm}")
    now[0] += DAY  # the clock jumps a day ahead
    assert [lim.check("user").allowed for _ in range(10)] == [True] * 10
    now[0] -= DAY  # and comes back
    d = lim.check("user")
    # two windows for sliding_window (the counts move into now's window,
    # where the previous window still weighs), one horizon plus the slack
    # for the others: never the day the excursion lasted
    horizon = 120 * S if algorithm == "sliding_window" else 60 * S
    assert not d.allowed
    assert d.retry_after_ns <= horizon, d
    assert d.reset_after_ns <= horizon, d
    assert lim.peek("user").retry_after_ns <= horizon
    now[0] += horizon
    assert lim.check("user").allowed


def test_a_small_lead_is_left_alone(store_url: str) -> None:
    # a caller whose clock read is merely late sees a state a little ahead:
    # it is decided as "no time has passed", never given units back
    now = [1_000 * DAY]
    lim = floodwall.Limiter("10/minute", store=store_url, clock=lambda: now[0],
                            namespace="small-lead")
    now[0] += 30 * S
    assert [lim.check("user").allowed for _ in range(10)] == [True] * 10
    now[0] -= 30 * S
    d = lim.check("user")
    assert not d.allowed and d.retry_after_ns == 36 * S  # 30 s late + one interval


@pytest.mark.parametrize("algorithm", ["gcra", "fixed_window", "sliding_window", "sliding_log"])
def test_a_denied_group_repairs_its_clamped_part(store_url: str, algorithm: str) -> None:
    # all-or-nothing over two keys: the part a clock excursion left far
    # ahead denies the group, and the group's check writes the repair, so
    # the key is free again one horizon later
    now = [1_000 * DAY]
    # (the larger sliding log first: a table's log capacity is set by its first limiter)
    limits = floodwall.Limits({"org": "100/minute", "user": "10/minute"}, algorithm=algorithm,
                              store=store_url, clock=lambda: now[0],
                              namespace=f"group-{algorithm}")
    now[0] += DAY
    assert all(limits.check(user="u", org="o-ahead").allowed for _ in range(10))
    now[0] -= DAY
    d = limits.check(user="u", org="o")
    assert not d.allowed and d.denied_part == 1
    assert limits.limiters["org"].remaining("o") == 100  # the group charged nothing
    horizon = 120 * S if algorithm == "sliding_window" else 60 * S
    now[0] += horizon
    assert limits.check(user="u", org="o").allowed


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_random_walks_with_clock_jumps_match_the_engine(store_url: str, algorithm: str) -> None:
    # every store decides as the C engine of memory:// does, field by field,
    # while its clock jitters, steps back, and jumps a day or a week both ways
    rng = random.Random(f"{algorithm}-walks")
    for walk in range(6):
        rate = rng.choice(["5/second", "10/minute", "3/2s burst 6", "100/hour"])
        now = [rng.randint(1_000, 2_000) * DAY]
        kwargs = {"algorithm": algorithm, "clock": lambda now=now: now[0]}
        space = f"walk-{algorithm}-{walk}-{uuid.uuid4().hex[:8]}"
        lim = floodwall.Limiter(rate, store=store_url, namespace=space, **kwargs)
        engine = floodwall.Limiter(rate, store="memory://", namespace=space, **kwargs)
        for _ in range(25):
            cost = rng.choice([0, 1, 1, 2])
            got, want = lim.check("k", cost), engine.check("k", cost)
            assert (got.allowed, got.remaining, got.retry_after_ns, got.reset_after_ns,
                    got.delay_ns) == (want.allowed, want.remaining, want.retry_after_ns,
                                      want.reset_after_ns, want.delay_ns), (walk, now[0], cost)
            now[0] = max(0, now[0] + rng.choice([
                0, rng.randint(0, 3 * S), -rng.randint(0, 2 * S), want.retry_after_ns,
                rng.choice([DAY, -DAY, 7 * DAY, -7 * DAY]),
            ]))
