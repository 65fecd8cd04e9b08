"""Calling the check function: one statement per check, sync or async.

:class:`Parts` holds what one limit sends per part (row keys are added per
call): the algorithm code, B, T, tau and W of each rate. :func:`call_sync`
and :func:`call_async` send the one statement on a connection and return
its row, checked. Invariant: a check is exactly one statement (so one
round trip and one transaction), whatever the number of parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from floodwall.errors import StoreError
from floodwall.stores.netquota import NetQuota

__all__ = ["ALGORITHM_CODES", "Parts", "call_async", "call_sync", "costs_literal"]

#: Algorithm name -> the code check.sql dispatches on.
ALGORITHM_CODES = {
    "gcra": "g",
    "token_bucket": "g",
    "leaky_bucket": "g",
    "leaky_bucket_shaping": "s",
    "fixed_window": "f",
    "sliding_window": "w",
    "sliding_log": "l",
}

Row = tuple[bool, int, int, int, int, int]


def _array(values: Sequence[object]) -> str:
    """A PostgreSQL array literal of plain values (codes and integers)."""
    return "{" + ",".join(str(v) for v in values) + "}"


def costs_literal(costs: Sequence[int]) -> str:
    """The int8[] literal of one cost per row key."""
    return _array(costs)


def keys_literal(keys: Sequence[bytes]) -> str:
    """The bytea[] literal of row keys, in hex: no escaping can go wrong."""
    return "{" + ",".join('"\\\\x' + k.hex() + '"' for k in keys) + "}"


@dataclass(frozen=True)
class Parts:
    """The per-part arrays of a check (one item per rate), less the keys,
    and their array literals, made once: a check sends text the server
    parses, with no per-call adaptation of Python lists."""

    algo: tuple[str, ...]
    b: tuple[int, ...]
    t: tuple[int, ...]
    tau: tuple[int, ...]
    w: tuple[int, ...]
    literals: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.literals:
            lits = tuple(_array(x) for x in (self.algo, self.b, self.t, self.tau, self.w))
            object.__setattr__(self, "literals", lits)

    @classmethod
    def of(cls, quotas: Sequence[NetQuota]) -> Parts:
        return cls(
            tuple(ALGORITHM_CODES[q.algorithm] for q in quotas),
            tuple(q.burst for q in quotas),
            tuple(q.interval_ns for q in quotas),
            tuple(q.tau_ns for q in quotas),
            tuple(q.window_ns for q in quotas),
        )

    def __add__(self, other: Parts) -> Parts:
        return Parts(
            self.algo + other.algo,
            self.b + other.b,
            self.t + other.t,
            self.tau + other.tau,
            self.w + other.w,
        )

    def args(
        self, now: int | None, costs: str, keys: Sequence[bytes], lock_ms: int
    ) -> tuple[Any, ...]:
        """The statement's parameters (``costs``: the literal of one cost
        per key, :func:`costs_literal`), then the part count."""
        algo, b, t, tau, w = self.literals
        return (now, costs, keys_literal(keys), algo, b, t, tau, w, lock_ms, len(keys))


def _checked(row: Any, nparts: int) -> Row:
    """The function's row, or StoreError if it is not what it can answer."""
    if row is None or len(row) != 6:
        raise StoreError(f"the PostgreSQL check answered {row!r}")
    ok, part, rem, retry, reset, delay = row
    if (
        not isinstance(ok, bool)
        or not isinstance(part, int)
        or not 0 <= part < nparts
        or any(not isinstance(v, int) or v < 0 for v in (rem, retry, reset, delay))
    ):
        raise StoreError(f"the PostgreSQL check answered {row!r}")
    return ok, part, rem, retry, reset, delay


def call_sync(conn: Any, sql: str, args: Sequence[Any]) -> Row:
    """Run one check on a sync psycopg connection (``args`` from
    :meth:`Parts.args`: the statement's parameters, then the part count)."""
    cur = conn.execute(sql, args[:-1])
    return _checked(cur.fetchone(), args[-1])


async def call_async(conn: Any, sql: str, args: Sequence[Any]) -> Row:
    """Run one check on an async psycopg connection."""
    cur = await conn.execute(sql, args[:-1])
    return _checked(await cur.fetchone(), args[-1])
