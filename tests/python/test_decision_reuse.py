"""Decisions freed by the engine are reused (a free list in
python/ext/decision.c): a reused Decision must carry nothing of the one it
was, and reuse must leak no reference to its rate or its type."""

from __future__ import annotations

import gc
import sys

import floodwall
from floodwall import Decision, Limiter, Rate


def test_a_reused_decision_carries_nothing_of_the_freed_one(clock) -> None:
    a = Limiter("1/minute", store="memory://shared-reuse", clock=clock)
    b = Limiter("5/minute", store=a.store, namespace="other", clock=clock)
    assert floodwall.check_all([(a, "k"), (b, "k")])
    for _ in range(100):  # denials naming a part, then dropped
        denied = floodwall.check_all([(b, "k"), (a, "k")])
        assert not denied and denied.denied_part == 1
    full = Limiter("5/hour", max_keys=100, clock=clock, fail="open")
    fallbacks = [d for d in (full.check(f"k{i}") for i in range(300)) if d.fallback]
    assert fallbacks
    del denied, fallbacks
    fresh = Limiter("10/second", clock=clock)
    for i in range(200):  # many Decisions: some come from the free list
        d = fresh.check(f"n{i}")
        assert d.allowed and d.remaining == 9 and d.limit == 10
        assert d.denied_part is None and d.fallback is False
        assert d.rate == Rate(10, 1) and d.retry_after == 0.0
        assert d.reset_after_ns == 100_000_000


def test_reuse_leaks_no_reference() -> None:
    limiter = Limiter("1000000/day")
    rate = limiter.check("warm").rate
    kept = [limiter.check("warm") for _ in range(100)]
    del kept  # the free list is full from here on: its references are steady
    gc.collect()
    rate_refs, type_refs = sys.getrefcount(rate), sys.getrefcount(Decision)
    for i in range(20_000):
        limiter.check(f"k{i % 50}")
        if i % 3 == 0:
            kept = [limiter.check("warm") for _ in range(40)]  # more than the list holds
            del kept
    gc.collect()
    assert sys.getrefcount(rate) == rate_refs
    assert sys.getrefcount(Decision) == type_refs
