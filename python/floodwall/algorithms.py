"""The one Python home of the algorithm names and numbers, and of the bounds
and defaults Python checks: ``max_keys`` limits, sliding-log capacity.

Every other module imports these names from here; none writes the numbers
again. The C engine is the source of truth (``include/floodwall.h``): every
value here is read from the extension, which exports the header's list.
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

#: Every algorithm name, in the engine's numbering (``FW_ALGORITHM_MAP``).
ALGORITHMS: dict[str, int] = {name: number for number, name in enumerate(_native.ALGORITHMS)}

#: The algorithm a limiter uses when none is named.
DEFAULT_ALGORITHM = "gcra"

#: Keys a native table holds when ``max_keys`` is not given.
DEFAULT_MAX_KEYS: int = _native.DEFAULT_MAX_KEYS

#: The smallest and largest ``max_keys`` a native table accepts.
MAX_KEYS_MIN = 1
MAX_KEYS_MAX: int = _native.MAX_KEYS_MAX

#: The largest sliding-log capacity (one entry per admitted request).
LOG_CAPACITY_MAX: int = _native.LOG_CAPACITY_MAX


def algorithm_number(name: str) -> int:
    """The engine's number of an algorithm name (KeyError if unknown)."""
    return ALGORITHMS[name]
