"""The Lua side of the Redis store: the script text and its arguments.

Assembles the one check script from the package data under ``lua/`` (exact
integer maths first, then one file per algorithm, then the entry point),
and turns a quota into the one ARGV item ("algo B T tau W") the script
reads per part, normalised exactly as docs/algorithms.md says (the same
bounds as the C engine's fw_quota_init). Invariant: the script text, and
so its SHA1, depend only on the package.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

from floodwall.stores.netquota import NetQuota, normalise_quota

__all__ = [
    "ALGORITHM_CODES",
    "LUA_FILES",
    "QuotaParts",
    "check_library",
    "check_script",
    "normalise",
    "parse_reply",
]

#: The order in which the lua/ files are concatenated into one script.
LUA_FILES = (
    "bignum.lua",
    "common.lua",
    "gcra.lua",
    "fixed_window.lua",
    "sliding_window.lua",
    "sliding_log.lua",
    "check.lua",
)

#: Algorithm name -> the one-letter code check.lua dispatches on.
ALGORITHM_CODES = {
    "gcra": "g",
    "token_bucket": "g",
    "leaky_bucket": "g",
    "leaky_bucket_shaping": "s",
    "fixed_window": "f",
    "sliding_window": "w",
    "sliding_log": "l",
}


def _library_text() -> str:
    base = resources.files(__package__).joinpath("lua") if __package__ else None
    chunks = []
    for name in LUA_FILES:
        if base is not None:
            text = base.joinpath(name).read_text(encoding="utf-8")
        else:  # loaded by path (tests of the scripts alone)
            import pathlib

            text = (pathlib.Path(__file__).parent / "lua" / name).read_text(encoding="utf-8")
        chunks.append(f"-- >>> {name}\n{text}")
    return "\n".join(chunks)


@lru_cache(maxsize=1)
def check_script() -> tuple[str, str]:
    """(script text, its SHA1 hex) for EVAL / EVALSHA."""
    script = _library_text() + "\nreturn check(KEYS, ARGV)\n"
    return script, hashlib.sha1(script.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def check_library() -> tuple[str, str]:
    """(function name, library code) for FUNCTION LOAD / FCALL (Redis >= 7).

    The name carries the script's hash, so that two floodwall versions
    sharing a server never replace each other's function.
    """
    _, sha = check_script()
    name = f"floodwall_{sha[:16]}"
    code = (
        f"#!lua name={name}\n"
        + _library_text()
        + f"\nredis.register_function('{name}', check)\n"
    )
    return name, code


def parse_reply(
    reply: bytes | str, cap: int | None = None
) -> tuple[bool, int, int, int, int, int]:
    """The check script's reply, "allowed index remaining retry reset delay"
    (check.lua), as (allowed, index, remaining, retry_after_ns,
    reset_after_ns, delay_ns); with ``cap``, no value above it. ValueError
    when it is not such a reply."""
    a, i, rem, retry, reset, delay = reply.split()
    r, t, s, d = int(rem), int(retry), int(reset), int(delay)
    if cap is not None and (r > cap or t > cap or s > cap or d > cap):
        r, t, s, d = min(r, cap), min(t, cap), min(s, cap), min(d, cap)
    return int(a) == 1, int(i), r, t, s, d


class QuotaParts:
    """A normalised quota (:class:`floodwall.stores.netquota.NetQuota`) and
    what the script needs of it."""

    __slots__ = (
        "algorithm",
        "burst",
        "interval_ns",
        "part",
        "rate",
        "period_ns",
        "tau_ns",
        "window_ns",
    )

    def __init__(self, q: NetQuota) -> None:
        self.algorithm = q.algorithm
        self.rate = q.rate
        self.period_ns = q.period_ns
        self.burst = q.burst
        self.interval_ns = q.interval_ns
        self.tau_ns = q.tau_ns
        self.window_ns = q.window_ns
        code = ALGORITHM_CODES[q.algorithm]
        #: the ARGV of this part: one item, "algo B T tau W" (the script
        #: keeps what it parsed by this text)
        self.part: tuple[bytes, ...] = (
            f"{code} {q.burst} {q.interval_ns} {q.tau_ns} {q.window_ns}".encode(),
        )

    def __repr__(self) -> str:
        return f"QuotaParts({self.algorithm!r}, {self.rate}, {self.period_ns}, {self.burst})"


def normalise(algorithm: str, rate: int, period_ns: int, burst: int | None = None) -> QuotaParts:
    """Validate a quota as the engine does (the rules live in
    :func:`floodwall.stores.netquota.normalise_quota`, shared with the
    PostgreSQL store); ValueError says what is wrong. ``burst`` None or 0
    means ``rate``."""
    return QuotaParts(normalise_quota(algorithm, rate, period_ns, burst))
