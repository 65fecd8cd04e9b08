# reference.py - an independent pure-Python model of docs/algorithms.md.
#
# It is written from the spec alone, never from the C engine, so that the
# vectors it produces (tests/vectors/*.json, see generate.py) are a real
# cross-check of every store. Integers only; Python ints are unbounded, so
# nothing is emulated: instead every packed state is asserted to fit 64 bits.
from __future__ import annotations

from dataclasses import dataclass

INT64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
TAU_MAX = 2**62
SLIDING_LOG_MAX = 65536

GCRA_FAMILY = ("gcra", "token_bucket", "leaky_bucket", "leaky_bucket_shaping")
ALGORITHMS = GCRA_FAMILY + ("fixed_window", "sliding_window", "sliding_log")

# A sliding log is a tuple of (t, n) entries in the order they were appended.
LogState = tuple[tuple[int, int], ...]
State = int | LogState


class QuotaError(ValueError):
    """A quota rejected by normalisation; `code` is "einval" or "erange"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class CostError(ValueError):
    """cost > burst: such a request can never pass (FW_ECOST)."""


@dataclass(frozen=True)
class Quota:
    algorithm: str
    rate: int  # N, units per period
    period_ns: int  # P
    burst: int  # B, the capacity (0 in the input means N)
    interval_ns: int  # T = ceil(P / N)
    tau_ns: int  # tau = T * B
    window_ns: int  # W = ceil(P * B / N)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_ns: int
    reset_after_ns: int
    delay_ns: int = 0


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---- quota normalisation ---------------------------------------------------


def normalise(algorithm: str, rate: int, period_ns: int, burst: int) -> Quota:
    if algorithm not in ALGORITHMS:
        raise QuotaError("einval", f"unknown algorithm {algorithm!r}")
    if rate < 1:
        raise QuotaError("einval", "rate < 1")
    if period_ns < 1:
        raise QuotaError("einval", "period < 1")
    if burst < 0:
        raise QuotaError("einval", "burst < 0")
    if rate > period_ns:
        raise QuotaError("einval", "more than one unit per nanosecond")
    b = burst if burst != 0 else rate
    t = ceil_div(period_ns, rate)
    tau = t * b
    if tau > TAU_MAX:
        raise QuotaError("erange", "tau > 2^62")
    w = ceil_div(period_ns * b, rate)
    if w > INT64_MAX:
        raise QuotaError("erange", "W > 2^63 - 1")
    k_max = INT64_MAX // w  # largest window index a clock can reach
    if algorithm == "fixed_window" and (k_max + 1) * (b + 1) > U64_MAX:
        raise QuotaError("erange", "fixed_window state does not fit 64 bits")
    if algorithm == "sliding_window" and (k_max + 1) * (b + 1) * (b + 1) > U64_MAX:
        raise QuotaError("erange", "sliding_window state does not fit 64 bits")
    if algorithm == "sliding_log" and b > SLIDING_LOG_MAX:
        raise QuotaError("erange", "sliding_log burst > 65536")
    return Quota(algorithm, rate, period_ns, b, t, tau, w)


# ---- GCRA, token_bucket, leaky_bucket (policing and shaping) ---------------


def _gcra(q: Quota, tat: int, now: int, n: int) -> tuple[int, Decision]:
    t, tau, b = q.interval_ns, q.tau_ns, q.burst
    base = max(tat, now)
    new_tat = base + n * t
    if new_tat - now <= tau:
        delay = base - now if q.algorithm == "leaky_bucket_shaping" else 0
        return new_tat, Decision(True, b, (tau - (new_tat - now)) // t, 0, new_tat - now, delay)
    # Denied. Only a clock that stepped backwards can make base - now exceed
    # tau; remaining is then clamped at 0 (see the report on the spec).
    remaining = max(0, (tau - (base - now)) // t)
    return tat, Decision(False, b, remaining, new_tat - tau - now, base - now, 0)


def _gcra_reset_after(q: Quota, tat: int, now: int) -> int:
    return max(tat, now) - now


# ---- fixed_window ----------------------------------------------------------


def _fixed_view(q: Quota, v: int, now: int) -> tuple[int, int]:
    """The (window index, count) a request at `now` sees."""
    k_s, c_s = divmod(v, q.burst + 1)
    k_now = now // q.window_ns
    if k_s >= k_now:  # same window, or the clock stepped back
        return k_s, c_s
    return k_now, 0


def _fixed(q: Quota, v: int, now: int, n: int) -> tuple[int, Decision]:
    w, b = q.window_ns, q.burst
    k, c = _fixed_view(q, v, now)
    end = (k + 1) * w
    if c + n <= b:
        c2 = c + n
        reset = end - now if c2 > 0 else 0
        return k * (b + 1) + c2, Decision(True, b, b - c2, 0, reset)
    return v, Decision(False, b, b - c, end - now, end - now)


def _fixed_reset_after(q: Quota, v: int, now: int) -> int:
    k, c = _fixed_view(q, v, now)
    return (k + 1) * q.window_ns - now if c > 0 else 0


# ---- sliding_window (two-window weighted counter) --------------------------


def _sliding_view(q: Quota, v: int, now: int) -> tuple[int, int, int]:
    """The (window index, previous count, current count) seen at `now`."""
    b1 = q.burst + 1
    rest, c_s = divmod(v, b1)
    k_s, p_s = divmod(rest, b1)
    k_now = now // q.window_ns
    if k_s >= k_now:
        return k_s, p_s, c_s
    if k_s == k_now - 1:
        return k_now, c_s, 0
    return k_now, 0, 0


def _sliding_reset(q: Quota, k: int, prev: int, cur: int, now: int) -> int:
    w = q.window_ns
    if cur > 0:
        return (k + 2) * w - now
    if prev > 0:
        return (k + 1) * w - now
    return 0


def _sliding(q: Quota, v: int, now: int, n: int) -> tuple[int, Decision]:
    w, b = q.window_ns, q.burst
    k, prev, cur = _sliding_view(q, v, now)
    e = max(now, k * w) - k * w
    allowed = prev * (w - e) + (cur + n) * w <= b * w
    state = v
    cur2 = cur
    if allowed:
        cur2 = cur + n
        state = (k * (b + 1) + prev) * (b + 1) + cur2
    remaining = max(0, (b * w - prev * (w - e) - cur2 * w) // w)
    reset = _sliding_reset(q, k, prev, cur2, now)
    retry = 0
    if not allowed:
        x = b - cur - n
        if x >= 0 and prev > 0 and w - (x * w) // prev < w:
            retry = k * w + (w - (x * w) // prev) - now
        else:  # wait into window k+1
            e2 = max(0, w - ((b - n) * w) // cur) if cur > 0 else 0
            retry = (k + 1) * w + e2 - now
    return state, Decision(allowed, b, remaining, retry, reset)


def _sliding_reset_after(q: Quota, v: int, now: int) -> int:
    k, prev, cur = _sliding_view(q, v, now)
    return _sliding_reset(q, k, prev, cur, now)


# ---- sliding_log (exact) ---------------------------------------------------


def _live(q: Quota, log: LogState, now: int) -> LogState:
    return tuple(e for e in log if e[0] + q.window_ns > now)


def _log_reset(q: Quota, live: LogState, now: int) -> int:
    return max(t for t, _ in live) + q.window_ns - now if live else 0


def _log(q: Quota, log: LogState, now: int, n: int) -> tuple[LogState, Decision]:
    w, b = q.window_ns, q.burst
    live = _live(q, log, now)
    used = sum(c for _, c in live)
    if used + n <= b:
        after = live + ((now, n),)
        return after, Decision(True, b, b - used - n, 0, _log_reset(q, after, now))
    need = used + n - b
    total = 0
    retry = 0
    for t, c in sorted(live, key=lambda e: e[0]):  # oldest first
        total += c
        if total >= need:
            retry = t + w - now
            break
    return log, Decision(False, b, b - used, retry, _log_reset(q, live, now))


def _log_reset_after(q: Quota, log: LogState, now: int) -> int:
    return _log_reset(q, _live(q, log, now), now)


# ---- the step every store implements ---------------------------------------


def fresh_state(q: Quota) -> State:
    return () if q.algorithm == "sliding_log" else 0


def _consume(q: Quota, state: State, now: int, n: int) -> tuple[State, Decision]:
    if q.algorithm == "sliding_log":
        assert isinstance(state, tuple)
        return _log(q, state, now, n)
    assert isinstance(state, int)
    if q.algorithm in GCRA_FAMILY:
        return _gcra(q, state, now, n)
    if q.algorithm == "fixed_window":
        return _fixed(q, state, now, n)
    return _sliding(q, state, now, n)


def reset_after(q: Quota, state: State, now: int) -> int:
    """reset_after of `state` as it is at `now` (nothing consumed)."""
    if q.algorithm == "sliding_log":
        assert isinstance(state, tuple)
        return _log_reset_after(q, state, now)
    assert isinstance(state, int)
    if q.algorithm in GCRA_FAMILY:
        return _gcra_reset_after(q, state, now)
    if q.algorithm == "fixed_window":
        return _fixed_reset_after(q, state, now)
    return _sliding_reset_after(q, state, now)


def step(q: Quota, state: State, now: int, cost: int) -> tuple[State, Decision]:
    """Decide `cost` units at `now`; return (state to keep, decision).

    Raises CostError when cost > burst, ValueError on a negative cost or a
    `now` outside [0, 2^63 - 1]. A denial or a peek returns `state` itself.
    """
    if not 0 <= now <= INT64_MAX:
        raise ValueError("now outside [0, 2^63 - 1]")
    if cost < 0:
        raise ValueError("cost < 0")
    if cost > q.burst:
        raise CostError(f"cost {cost} > burst {q.burst}")
    if cost == 0:
        return state, peek(q, state, now)
    new_state, d = _consume(q, state, now, cost)
    if isinstance(new_state, int):
        assert 0 <= new_state <= U64_MAX, "packed state does not fit 64 bits"
    else:
        assert sum(c for _, c in new_state) <= q.burst
    return new_state, d


def peek(q: Quota, state: State, now: int) -> Decision:
    """Cost 0: what one unit would get, with remaining/reset of the state as is."""
    _, one = _consume(q, state, now, 1)
    remaining = one.remaining + 1 if one.allowed else one.remaining
    return Decision(
        one.allowed,
        one.limit,
        remaining,
        one.retry_after_ns,
        reset_after(q, state, now),
        one.delay_ns,
    )


def fresh_at(q: Quota, state: State) -> int:
    """When `state` becomes indistinguishable from a fresh key (absolute ns)."""
    if q.algorithm == "sliding_log":
        assert isinstance(state, tuple)
        return max((t for t, _ in state), default=-q.window_ns) + q.window_ns
    assert isinstance(state, int)
    if q.algorithm in GCRA_FAMILY:
        return state
    b1 = q.burst + 1
    if q.algorithm == "fixed_window":
        k_s, c_s = divmod(state, b1)
        return (k_s + 1) * q.window_ns if c_s > 0 else 0
    rest, c_s = divmod(state, b1)
    k_s, p_s = divmod(rest, b1)
    if c_s > 0:
        return (k_s + 2) * q.window_ns
    return (k_s + 1) * q.window_ns if p_s > 0 else 0
