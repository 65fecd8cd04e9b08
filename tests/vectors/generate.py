# generate.py - writes the shared test vectors tests/vectors/*.json.
#
# Every expected decision comes from reference.py (the independent model of
# docs/algorithms.md). The output is deterministic: the only randomness is a
# seeded random.Random per walk. The layout is line-oriented so that the
# tiny C reader (tests/c/vector_reader.c) can read it line by line:
#
#   {"algorithm": "gcra", "cases": [
#   {"name": "...", "rate": N, "period_ns": P, "burst": B, "steps": [
#   {"t": ..., "key": "a", "cost": 1, "allowed": true, ...},
#   {"t": ..., "key": "a", "cost": 9, "error": "cost"}
#   ]},
#   ...
#   ]}
#
# Run: python tests/vectors/generate.py            (rewrites the files)
#      python tests/vectors/generate.py --check    (exit 1 if they differ)
from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference as ref  # noqa: E402

HERE = Path(__file__).resolve().parent
S = 10**9  # one second in ns
MS = 10**6
YEAR = 365 * 24 * 3600 * S
INT64_MAX = ref.INT64_MAX


# ---- building one case -----------------------------------------------------


class Case:
    """A named sequence of steps on one quota; the model fills the answers."""

    def __init__(
        self,
        algorithm: str,
        name: str,
        rate: int,
        period_ns: int,
        burst: int,
        backwards: bool = False,
    ) -> None:
        self.name = name
        self.q = ref.normalise(algorithm, rate, period_ns, burst)
        self.states: dict[str, ref.State] = {}
        self.steps: list[dict[str, Any]] = []
        self.backwards = backwards  # may the clock step back in this case?
        self.latest: dict[str, int] = {}

    @property
    def window(self) -> int:
        return self.q.window_ns

    def at(self, t: int, key: str = "a", cost: int = 1) -> ref.Decision | None:
        """Record one request; returns its decision, or None for a cost error."""
        assert 0 <= t <= INT64_MAX, (self.name, t)
        assert self.backwards or t >= self.latest.get(key, 0), (self.name, t)
        self.latest[key] = max(t, self.latest.get(key, 0))
        row: dict[str, Any] = {"t": t, "key": key, "cost": cost}
        state = self.states.get(key, ref.fresh_state(self.q))
        try:
            new_state, d = ref.step(self.q, state, t, cost)
        except ref.CostError:
            row["error"] = "cost"
            self.steps.append(row)
            return None
        if self.q.algorithm == "sliding_log" and cost > 0 and d.allowed:
            # an append older than the newest entry is outside what the spec
            # pins down (see the report): never put one in a vector
            assert t >= self.latest[key], (self.name, t)
        self.states[key] = new_state
        row.update(
            allowed=d.allowed,
            limit=d.limit,
            remaining=d.remaining,
            retry_after_ns=d.retry_after_ns,
            reset_after_ns=d.reset_after_ns,
            delay_ns=d.delay_ns,
        )
        for field in ("remaining", "retry_after_ns", "reset_after_ns", "delay_ns"):
            assert 0 <= row[field] <= INT64_MAX, (self.name, row)
        self.steps.append(row)
        return d

    def exhaust(self, t: int, key: str = "a") -> None:
        """Take everything the key still admits at t, in one request."""
        d = self.at(t, key, 0)
        assert d is not None
        if d.allowed and d.remaining > 0:
            self.at(t, key, d.remaining)

    def probe(self, t: int, d: ref.Decision | None, key: str = "a", cost: int = 1) -> int:
        """After a denial at t: retry_after - 1 ns must deny, retry_after admit.

        Returns the time of the admitted retry (t when nothing was probed,
        because `d` was no denial or the retry lies past INT64_MAX).
        """
        if d is None or d.allowed:
            return t
        r = d.retry_after_ns
        assert r > 0
        if t + r > INT64_MAX:
            return t
        early = self.at(t + r - 1, key, cost)
        assert early is not None and not early.allowed, (self.name, t, early)
        ok = self.at(t + r, key, cost)
        assert ok is not None and ok.allowed, (self.name, t, ok)
        return t + r

    def to_lines(self) -> list[str]:
        assert self.steps, self.name
        head = {
            "name": self.name,
            "rate": self.q.rate,
            "period_ns": self.q.period_ns,
            "burst": self.q.burst,
        }
        first = _dump(head)[:-1] + ', "steps": ['
        rows = [_dump(s) + "," for s in self.steps]
        rows[-1] = rows[-1][:-1]
        return [first, *rows]


def _dump(obj: dict[str, Any]) -> str:
    for v in obj.values():
        if isinstance(v, str):
            assert v.isascii() and '"' not in v and "\\" not in v, v
        elif isinstance(v, int) and not isinstance(v, bool):
            assert -(2**63) <= v <= INT64_MAX, obj
    return json.dumps(obj, separators=(", ", ": "))


# ---- the cases every algorithm gets ----------------------------------------

CaseFn = Callable[[str], Case]


def first_request(a: str) -> Case:
    c = Case(a, "first-request", 10, S, 10)
    c.at(S)
    c.at(5 * S + 3, "b")
    return c


def exact_burst(a: str) -> Case:
    c = Case(a, "exact-burst", 5, S, 5)
    t = 7 * S + 123
    for _ in range(5):
        c.at(t)
    t = c.probe(t, c.at(t))
    c.at(t, cost=0)
    return c


def cost_equals_capacity(a: str) -> Case:
    c = Case(a, "cost-equals-capacity", 4, S, 4)
    t = 3 * S
    d = c.at(t, cost=4)
    assert d is not None and d.allowed
    t2 = c.probe(t, c.at(t))
    d = c.at(t2, cost=0)
    assert d is not None
    t3 = t2 + d.reset_after_ns  # back to full capacity: 4 must pass
    d = c.at(t3, cost=4)
    assert d is not None and d.allowed
    return c


def cost_above_capacity(a: str) -> Case:
    c = Case(a, "cost-above-capacity", 4, S, 4)
    t = 2 * S
    c.at(t, cost=5)
    c.at(t, cost=0)
    c.at(t, cost=1)
    c.at(t, cost=5)
    c.at(t, cost=1000)
    c.at(t, cost=3)
    c.at(t, cost=5)
    c.at(t, cost=0)
    return c


def peek_fresh(a: str) -> Case:
    c = Case(a, "peek-fresh", 10, S, 10)
    t = 4 * S + 1
    c.at(t, cost=0)
    c.at(t, cost=0)
    c.at(t, cost=1)
    c.at(t, cost=0)
    c.at(0, "b", cost=0)
    return c


def peek_exhausted(a: str) -> Case:
    c = Case(a, "peek-exhausted", 3, S, 3)
    t = 9 * S
    c.at(t, cost=3)
    d = c.at(t, cost=0)
    c.at(t, cost=0)
    t2 = c.probe(t, d, cost=0)
    c.at(t2, cost=1)
    c.at(t2, cost=0)
    return c


def retry_multi_unit(a: str) -> Case:
    c = Case(a, "retry-exact-multi-unit", 10, S, 10)
    t = 11 * S
    c.at(t, cost=7)
    t = c.probe(t, c.at(t, cost=5), cost=5)
    t = c.probe(t, c.at(t, cost=10), cost=10)
    t += 1
    d = c.at(t, cost=3)
    if d is not None and not d.allowed:
        c.probe(t, d, cost=3)
    return c


def window_boundaries(a: str) -> Case:
    c = Case(a, "window-boundaries", 4, S, 4)
    w = c.window
    for k in (1, 2, 3, 1000, 1001):
        c.at(k * w - 1, cost=0)
        c.at(k * w - 1, cost=3)
        c.at(k * w - 1, cost=2)
        c.at(k * w, cost=0)
        c.at(k * w, cost=2)
        c.at(k * w, cost=2)
    c.at(1002 * w - 1, "b", cost=4)
    c.at(1002 * w, "b", cost=4)
    c.at(1003 * w - 1, "b", cost=1)
    c.at(1003 * w, "b", cost=1)
    return c


def idle_years(a: str) -> Case:
    c = Case(a, "idle-for-years", 10, 60 * S, 10)
    t = 5 * S
    c.at(t, cost=10)
    c.at(t)
    c.at(t + 10 * YEAR, cost=0)
    c.at(t + 10 * YEAR, cost=10)
    c.at(t + 10 * YEAR, cost=1)
    c.at(t + 200 * YEAR, cost=0)
    c.at(t + 200 * YEAR, cost=3)
    return c


def clock_zero(a: str) -> Case:
    c = Case(a, "clock-at-zero", 2, S, 2)
    c.at(0, cost=0)
    c.at(0)
    c.at(0)
    t = c.probe(0, c.at(0))
    c.at(t, cost=0)
    c.at(0, "b", cost=2)
    c.at(0, "b", cost=0)
    c.at(1, "b", cost=1)
    return c


def near_int64_max(a: str) -> Case:
    c = Case(a, "clock-near-int64-max", 5, S, 5)
    t = INT64_MAX - 3 * S - 17
    c.at(t, cost=5)
    t = c.probe(t, c.at(t))
    t = c.probe(t, c.at(t, cost=2), cost=2)
    c.at(INT64_MAX - 2, cost=0)
    c.at(INT64_MAX - 1, cost=3)
    c.at(INT64_MAX, cost=0)
    c.at(INT64_MAX, cost=5)
    c.at(INT64_MAX, cost=1)
    c.at(INT64_MAX, cost=6)
    c.at(INT64_MAX, "b", cost=0)
    c.at(INT64_MAX, "b", cost=5)
    c.at(INT64_MAX, "b", cost=1)
    c.at(INT64_MAX, "b", cost=0)
    return c


def three_per_second(a: str) -> Case:
    c = Case(a, "non-integral-3-per-second", 3, S, 3)
    c.at(0, cost=3)
    c.probe(0, c.at(0))
    c.at(0, "b", cost=3)
    for u in (333_333_333, 333_333_334, 666_666_667, 666_666_668, S - 1, S, S + 1):
        c.at(u, "b", cost=0)
        c.at(u, "b")
    c.at(2 * S, "b", cost=2)
    c.probe(2 * S, c.at(2 * S, "b", cost=2), "b", cost=2)
    return c


def seven_per_ten_seconds(a: str) -> Case:
    c = Case(a, "non-integral-7-per-10s", 7, 10 * S, 7)
    t = 100 * S
    c.at(t, cost=7)
    t = c.probe(t, c.at(t))
    t = c.probe(t, c.at(t, cost=3), cost=3)
    for gap in (1_428_571_428, 1_428_571_429, 1_428_571_430):
        t += gap
        c.at(t, cost=0)
        c.at(t)
    c.at(t + 10 * S - 1, cost=0)
    c.at(t + 10 * S, cost=7)
    return c


def burst_above_rate(a: str) -> Case:
    c = Case(a, "burst-above-rate", 2, S, 5)
    t = 20 * S
    c.at(t, cost=5)
    t = c.probe(t, c.at(t))
    t = c.probe(t, c.at(t, cost=3), cost=3)
    c.at(t + 500 * MS, cost=0)
    c.at(t + 2500 * MS, cost=5)
    return c


def burst_below_rate(a: str) -> Case:
    c = Case(a, "burst-below-rate", 10, S, 3)
    t = 30 * S + 7
    c.at(t, cost=3)
    t = c.probe(t, c.at(t))
    t = c.probe(t, c.at(t, cost=3), cost=3)
    c.at(t + 100 * MS, cost=0)
    c.at(t + 300 * MS, cost=0)
    c.at(t + 900 * MS, cost=3)
    return c


def non_integral_window(a: str) -> Case:
    c = Case(a, "non-integral-window", 3, S, 2)  # T = 333333334, W = 666666667
    w = c.window
    c.at(w - 1, cost=2)
    c.probe(w - 1, c.at(w - 1))
    c.at(2 * w - 1, cost=0)
    c.at(2 * w, cost=0)
    c.at(2 * w, cost=2)
    c.at(3 * w + w // 2, cost=1)
    c.at(3 * w + w // 2, cost=0)
    return c


def multi_unit_costs(a: str) -> Case:
    c = Case(a, "multi-unit-costs", 10, S, 10)
    t = 40 * S
    for cost in (3, 3, 3, 2, 1, 0):
        c.at(t, cost=cost)
    t = c.probe(t, c.at(t, cost=4), cost=4)
    for step, cost in ((100 * MS, 2), (150 * MS, 5), (1, 1), (700 * MS, 6), (S, 10)):
        t += step
        c.at(t, cost=cost)
    return c


def several_keys(a: str) -> Case:
    c = Case(a, "several-keys", 2, S, 2)
    t = 50 * S
    c.at(t, "a", 2)
    c.at(t, "b", 1)
    d = c.at(t, "a", 1)
    c.at(t, "c", 0)
    c.at(t, "b", 1)
    c.at(t, "b", 1)
    c.at(t, "c", 2)
    c.probe(t, d, "a")
    c.at(t + 600 * MS, "b", 0)
    c.at(t + 600 * MS, "c", 1)
    c.at(t + 3 * S, "a", 0)
    return c


def spaced_by_interval(a: str) -> Case:
    c = Case(a, "spaced-by-interval", 5, S, 5)
    t = 60 * S
    c.at(t, cost=5)
    step = c.q.interval_ns
    for i in range(1, 8):
        c.at(t + i * step, cost=0)
        c.at(t + i * step)
    return c


def queue_same_instant(a: str) -> Case:
    # For leaky_bucket_shaping: the delays of a queue filled at one instant.
    c = Case(a, "same-instant-queue", 5, S, 5)
    t = 70 * S + 5
    for _ in range(6):
        c.at(t)
    c.at(t, cost=0)
    c.at(t + 1, "b", 2)
    c.at(t + 1, "b", 2)
    c.at(t + 1, "b", 0)
    c.at(t + 2, "b", 2)
    return c


def few_ns_per_unit(a: str) -> Case:
    c = Case(a, "few-ns-per-unit", 3, 9, 3)  # T = 3 ns, W = 9 ns
    for t, cost in (
        (0, 2),
        (1, 1),
        (2, 1),
        (3, 0),
        (3, 1),
        (8, 1),
        (9, 2),
        (10, 3),
        (17, 0),
        (18, 3),
        (26, 1),
        (27, 1),
        (100, 3),
        (101, 0),
    ):
        c.at(t, cost=cost)
    return c


def max_tau(a: str) -> Case:
    # tau = 2^62 exactly, the largest accepted (sliding_window gets 2^61 so
    # that its reset_after, up to 2W, stays in int64; see the report).
    period = 2**61 if a == "sliding_window" else 2**62
    c = Case(a, "largest-period", 1, period, 1)
    c.at(0, cost=0)
    c.at(0)
    c.probe(0, c.at(0))
    c.at(INT64_MAX - 5, "b")
    c.at(INT64_MAX - 5, "b", 0)
    c.at(INT64_MAX, "b")
    return c


def large_burst(a: str) -> Case:
    c = Case(a, "large-burst", 10, S, 1000)
    t = 80 * S
    c.at(t, cost=1000)
    t = c.probe(t, c.at(t))
    c.at(t + 50 * MS, cost=0)
    c.probe(t + 50 * MS, c.at(t + 50 * MS, cost=999), cost=999)
    c.at(c.latest["a"], cost=1001)
    return c


def log_max_burst(a: str) -> Case:
    c = Case(a, "capacity-65536", 65536, 10 * S, 65536)
    t = 90 * S
    c.at(t, cost=0)
    c.at(t, cost=65536)
    t = c.probe(t, c.at(t))
    c.at(t, cost=65537)
    c.at(t + S, cost=0)
    c.at(t + 20 * S, cost=65536)
    return c


def clock_backwards(a: str) -> Case:
    c = Case(a, "clock-steps-backwards", 4, S, 4, backwards=True)
    t = 10 * S + 500 * MS
    c.at(t, cost=4)
    c.at(t - 100 * MS)  # earlier than the last request: no refill
    c.at(t - 100 * MS, cost=0)
    c.at(t - 600 * MS, cost=0)
    d = c.at(t + 1)
    c.probe(t + 1, d)
    if a != "sliding_log":  # appends at an earlier time (see the report)
        c.at(t, "b", 1)
        c.at(t - 1300 * MS, "b", 1)
        c.at(t - 1300 * MS, "b", 0)
        c.at(t - 200 * MS, "b", 2)
        c.at(t - 200 * MS, "b", 0)
    return c


COMMON: tuple[CaseFn, ...] = (
    first_request,
    exact_burst,
    cost_equals_capacity,
    cost_above_capacity,
    peek_fresh,
    peek_exhausted,
    retry_multi_unit,
    window_boundaries,
    idle_years,
    clock_zero,
    near_int64_max,
    three_per_second,
    seven_per_ten_seconds,
    burst_above_rate,
    burst_below_rate,
    non_integral_window,
    multi_unit_costs,
    several_keys,
    spaced_by_interval,
    queue_same_instant,
    few_ns_per_unit,
    max_tau,
    large_burst,
    log_max_burst,
    clock_backwards,
)


# ---- seeded random walks ---------------------------------------------------

WALK_QUOTAS = (
    (10, S, 10),
    (3, S, 3),
    (7, 10 * S, 7),
    (2, S, 5),
    (10, S, 3),
    (5, 1000, 5),
    (4, 60 * S, 6),
    (1, S, 1),
)
WALKS = 5
WALK_STEPS = 60


def random_walk(a: str, index: int) -> Case:
    rng = random.Random(f"floodwall-{a}-{index}")
    rate, period, burst = WALK_QUOTAS[rng.randrange(len(WALK_QUOTAS))]
    c = Case(a, f"random-walk-{index}", rate, period, burst)
    w, b = c.window, c.q.burst
    t = rng.choice((0, rng.randrange(10**12), rng.randrange(w)))
    denied: dict[str, tuple[int, int, int]] = {}  # key -> (t, retry, cost)
    for _ in range(WALK_STEPS):
        key = rng.choice("abc")
        mode = rng.random()
        if mode < 0.15:
            pass  # same instant
        elif mode < 0.35 and key in denied:
            dt, retry, cost0 = denied[key]
            t = max(t, dt + retry - rng.choice((0, 1)))
        elif mode < 0.5:
            k = t // w + 1
            t = k * w - rng.choice((0, 1))
        elif mode < 0.65:
            t += rng.randrange(3 * w)
        else:
            t += rng.randrange(w // 4 + 1)
        r = rng.random()
        if r < 0.55:
            cost = 1
        elif r < 0.7:
            cost = 0
        elif r < 0.95:
            cost = rng.randint(1, b)
        else:
            cost = b + rng.randint(1, 3)
        if key in denied and rng.random() < 0.5:
            cost = denied[key][2]
        d = c.at(t, key, cost)
        if d is not None and not d.allowed:
            denied[key] = (t, d.retry_after_ns, max(cost, 1))
        elif d is not None and cost > 0:
            denied.pop(key, None)
    return c


# ---- quota normalisation cases ---------------------------------------------

QuotaInput = tuple[str, int, int, int]  # name, rate, period_ns, burst


def _min_window(per_window: int) -> int:
    """Smallest W with ((2^63-1)//W + 1) * per_window <= 2^64 - 1, where
    per_window is the number of states one window index packs ((B+1)^2 for
    sliding_window)."""

    def fits(w: int) -> bool:
        return (INT64_MAX // w + 1) * per_window <= ref.U64_MAX

    lo, hi = 1, INT64_MAX
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def quota_inputs() -> list[QuotaInput]:
    m = INT64_MAX
    rows: list[QuotaInput] = [
        ("10-per-second", 10, S, 0),
        ("10-per-second-burst-20", 10, S, 20),
        ("3-per-second", 3, S, 0),
        ("3-per-second-burst-2", 3, S, 2),
        ("7-per-10s", 7, 10 * S, 0),
        ("1-per-ns", 1, 1, 0),
        ("1000-per-1000ns", 1000, 1000, 0),
        ("100-per-minute", 100, 60 * S, 0),
        ("5000-per-day", 5000, 86400 * S, 0),
        ("rate-0", 0, S, 0),
        ("rate-negative", -1, S, 0),
        ("rate-int64-min", -m - 1, S, 0),
        ("period-0", 1, 0, 0),
        ("period-negative", 1, -5, 0),
        ("burst-negative", 1, S, -1),
        ("rate-equals-period", 7, 7, 0),
        ("rate-above-period", 8, 7, 0),
        ("rate-int64-max-period-int64-max", m, m, 0),
        ("rate-int64-max-period-int64-max-burst-1", m, m, 1),
        ("tau-2^62", 1, 2**62, 1),
        ("tau-2^62-plus-1", 1, 2**62 + 1, 1),
        ("tau-2^62-by-burst", 1, 1, 2**62),
        ("tau-2^62-plus-1-by-burst", 1, 1, 2**62 + 1),
        ("tau-2^62-by-ceil", 3, 3 * 2**60 - 2, 4),  # T = 2^60, tau = 2^62
        ("tau-over-by-ceil", 3, 3 * 2**60 + 1, 4),  # T = 2^60 + 1
        ("window-over-int64", 1, m, 2),
        ("period-int64-max", 1, m, 1),
        ("burst-int64-max", 1, S, m),
        ("log-burst-65536", 65536, S, 0),
        ("log-burst-65537", 65537, S, 0),
        ("log-burst-65536-explicit", 10, S, 65536),
        ("log-burst-65537-explicit", 10, S, 65537),
        ("fixed-w1-b1", 5, 5, 1),  # T = 1, W = 1: the only B = 1 state too big
        ("fixed-w2-b1", 1, 2, 1),
        ("fixed-w2-b2", 2, 2, 0),
    ]
    for b in (1, 2, 10, 100, 1000, 65536):
        w = _min_window((b + 1) * (b + 1))
        rows.append((f"sliding-b{b}-min-window", b, w, 0))
        rows.append((f"sliding-b{b}-below-min-window", b, w - 1, 0))
    return rows


QUOTA_ALGORITHMS = ref.ALGORITHMS + ("unknown",)


def quota_lines() -> list[str]:
    lines = ['{"quotas": [']
    for name, rate, period, burst in quota_inputs():
        for a in QUOTA_ALGORITHMS:
            row: dict[str, Any] = {
                "name": f"{a}/{name}",
                "algorithm": a,
                "rate": rate,
                "period_ns": period,
                "burst": burst,
            }
            try:
                q = ref.normalise(a, rate, period, burst)
            except ref.QuotaError as e:
                row["error"] = e.code
            else:
                row.update(
                    capacity=q.burst,
                    interval_ns=q.interval_ns,
                    tau_ns=q.tau_ns,
                    window_ns=q.window_ns,
                )
            lines.append(_dump(row) + ",")
    lines[-1] = lines[-1][:-1]
    lines.append("]}")
    return lines


# ---- files -----------------------------------------------------------------


def cases_for(a: str) -> list[Case]:
    cases = [fn(a) for fn in COMMON]
    cases += [random_walk(a, i) for i in range(WALKS)]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), names
    return cases


def algorithm_lines(a: str) -> list[str]:
    lines = ['{"algorithm": ' + json.dumps(a) + ', "cases": [']
    cases = cases_for(a)
    for i, case in enumerate(cases):
        lines += case.to_lines()
        lines.append("]}," if i + 1 < len(cases) else "]}")
    lines.append("]}")
    return lines


def render_all() -> dict[str, str]:
    """File name -> exact file content."""
    out = {f"{a}.json": "\n".join(algorithm_lines(a)) + "\n" for a in ref.ALGORITHMS}
    out["quotas.json"] = "\n".join(quota_lines()) + "\n"
    for text in out.values():
        json.loads(text)  # every file is plain JSON too
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, text in render_all().items():
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("stale vectors: " + ", ".join(stale) + " (run tests/vectors/generate.py)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
