"""The engine's distrust of stored state, seen from Python: a clock
excursion never locks a key out for long, damaged and clamped states are
counted in ``stats()``, the engine's facts are exported once, and a lock
that stays held becomes ``StoreBusyError`` (a ``StoreError``)."""

from __future__ import annotations

import floodwall
from floodwall import _native
from floodwall.errors import StoreBusyError, StoreError

DAY = 86_400 * 10**9
S = 10**9


def test_clock_excursion_does_not_lock_out() -> None:
    now = [1_000 * DAY]
    for algorithm in _native.ALGORITHMS:
        lim = floodwall.Limiter(
            "10/minute", algorithm=algorithm, clock=lambda: now[0], namespace=algorithm
        )
        now[0] = 1_000 * DAY + DAY  # the clock jumps a day ahead
        for _ in range(10):
            assert lim.check("user").allowed
        now[0] = 1_000 * DAY  # and comes back
        d = lim.check("user")
        horizon = 120 * S if algorithm == "sliding_window" else 60 * S
        assert d.retry_after_ns <= horizon, (algorithm, d)
        assert d.reset_after_ns <= horizon, (algorithm, d)
        now[0] += horizon
        assert lim.check("user").allowed, algorithm
        assert lim.stats()["clamped_states"] >= 1, algorithm


def test_engine_facts_exported_once() -> None:
    assert _native.ALGORITHMS == (
        "gcra",
        "token_bucket",
        "leaky_bucket",
        "leaky_bucket_shaping",
        "fixed_window",
        "sliding_window",
        "sliding_log",
    )
    assert _native.ALGORITHMS[_native.SLIDING_LOG] == "sliding_log"
    assert _native.MAX_KEYS_MAX == 2**36
    assert _native.DEFAULT_MAX_KEYS == 65_536
    assert _native.LOG_CAPACITY_MAX == _native.SLIDING_LOG_MAX == 65_536
    table = _native.Table()
    assert table.stats(0)["max_keys"] == _native.DEFAULT_MAX_KEYS


def test_busy_is_a_store_error() -> None:
    assert issubclass(StoreBusyError, StoreError)


def test_stats_count_damage() -> None:
    lim = floodwall.Limiter("5/hour", clock=lambda: 10 * S)
    lim.check("k")
    stats = lim.stats()
    assert stats["damaged_states"] == 0 and stats["clamped_states"] == 0
    assert lim.backend.table.damaged() == []  # type: ignore[attr-defined]
