"""Quota normalisation for the network stores that run the algorithms
outside the C engine (PostgreSQL; Redis's ``scripts.normalise`` applies the
same rules): rate, period and burst -> capacity B, interval T, tolerance
tau and window W, in integer nanoseconds.

The rules are docs/algorithms.md's, with the engine's bounds (fw_quota_init):
``T = ceil(period / rate)``, ``tau = T * B``, ``W = ceil(period * B / rate)``,
tau <= 2^62, W <= 2^63 - 1, and the windowed algorithms' packing bounds.
Invariant: a :class:`NetQuota` exists only for a quota the engine accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from floodwall.algorithms import ALGORITHMS, LOG_CAPACITY_MAX

__all__ = ["INT64_MAX", "NetQuota", "normalise_quota"]

INT64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
TAU_MAX = 2**62


@dataclass(frozen=True)
class NetQuota:
    """A normalised quota: what a store script needs for one rate."""

    algorithm: str
    rate: int
    period_ns: int
    burst: int
    interval_ns: int
    tau_ns: int
    window_ns: int


def normalise_quota(
    algorithm: str, rate: int, period_ns: int, burst: int | None = None
) -> NetQuota:
    """Validate a quota as the engine does; ValueError says what is wrong.

    ``burst`` None or 0 means ``rate``.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    for name, value in (("rate", rate), ("period_ns", period_ns)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if burst is None:
        burst = 0
    if isinstance(burst, bool) or not isinstance(burst, int):
        raise ValueError(f"burst must be an int, got {type(burst).__name__}")
    if rate < 1:
        raise ValueError(f"rate must be >= 1, got {rate}")
    if period_ns < 1:
        raise ValueError(f"period must be >= 1 ns, got {period_ns}")
    if burst < 0:
        raise ValueError(f"burst must be >= 0, got {burst}")
    if rate > period_ns:
        raise ValueError(f"{rate} per {period_ns} ns is more than one unit per nanosecond")
    if period_ns > INT64_MAX:
        raise ValueError("period must be below 2^63 ns")
    b = burst or rate
    interval = -(-period_ns // rate)
    tau = interval * b
    window = -(-(period_ns * b) // rate)
    if tau > TAU_MAX:
        raise ValueError(f"quota out of range: interval * burst = {tau} ns > 2^62")
    if window > INT64_MAX:
        raise ValueError("quota out of range: the window period*burst/rate exceeds 2^63-1 ns")
    k_max = INT64_MAX // window
    if algorithm == "fixed_window" and (k_max + 1) * (b + 1) > U64_MAX:
        raise ValueError("quota out of range for fixed_window: burst too large for the window")
    if algorithm == "sliding_window" and (k_max + 1) * (b + 1) * (b + 1) > U64_MAX:
        raise ValueError("quota out of range for sliding_window: burst too large for the window")
    if algorithm == "sliding_log" and b > LOG_CAPACITY_MAX:
        raise ValueError(f"sliding_log burst must be <= {LOG_CAPACITY_MAX}, got {b}")
    return NetQuota(algorithm, rate, period_ns, b, interval, tau, window)
