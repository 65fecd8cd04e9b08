"""The one Python home of the algorithm names and numbers, and of the bounds
and defaults Python checks: ``max_keys`` limits, sliding-log capacity.

Every other module imports these names from here; none writes the numbers
again. The C engine is the source of truth (``include/floodwall.h``); the
values below mirror it until the extension exports them.
"""

from __future__ import annotations

from floodwall import _native

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_MAX_KEYS",
    "LOG_CAPACITY_MAX",
    "MAX_KEYS_MAX",
    "MAX_KEYS_MIN",
    "algorithm_number",
]

#: Every algorithm name, in the engine's numbering.
# TODO(merge): read from _native (_native.ALGORITHMS, names in engine order)
ALGORITHMS: dict[str, int] = {
    "gcra": _native.GCRA,
    "token_bucket": _native.TOKEN_BUCKET,
    "leaky_bucket": _native.LEAKY_BUCKET,
    "leaky_bucket_shaping": _native.LEAKY_BUCKET_SHAPING,
    "fixed_window": _native.FIXED_WINDOW,
    "sliding_window": _native.SLIDING_WINDOW,
    "sliding_log": _native.SLIDING_LOG,
}

#: The algorithm a limiter uses when none is named.
DEFAULT_ALGORITHM = "gcra"

#: Keys a native table holds when ``max_keys`` is not given.
# TODO(merge): read from _native (_native.DEFAULT_MAX_KEYS)
DEFAULT_MAX_KEYS = 65_536

#: The smallest and largest ``max_keys`` a native table accepts.
MAX_KEYS_MIN = 1
# TODO(merge): read from _native (_native.MAX_KEYS_MAX)
MAX_KEYS_MAX = 2**36

#: The largest sliding-log capacity (one entry per admitted request).
# TODO(merge): read from _native (_native.LOG_CAPACITY_MAX)
LOG_CAPACITY_MAX: int = _native.SLIDING_LOG_MAX


def algorithm_number(name: str) -> int:
    """The engine's number of an algorithm name (KeyError if unknown)."""
    return ALGORITHMS[name]
