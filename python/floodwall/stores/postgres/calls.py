"""Calling the check function: one statement per check, sync or async.

:class:`Parts` holds what one limit sends per part (row keys are added per
call): the algorithm code, B, T, tau and W of each rate. The lean
statements, which decide the commonest checks without the check function,
are lean.py's. :func:`call_sync` and :func:`call_async` send the one
statement on a connection and return its row, checked. Invariant: a check
is exactly one statement (so one round trip and one transaction),
whatever the number of parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from floodwall.errors import StoreError
from floodwall.stores.netquota import NetQuota

__all__ = [
    "ALGORITHM_CODES",
    "Parts",
    "Row",
    "Runs",
    "array_literal",
    "call_async",
    "call_sync",
    "costs_literal",
    "keys_literal",
]

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


def array_literal(values: Sequence[object]) -> str:
    """A PostgreSQL array literal of plain values (codes and integers)."""
    return "{" + ",".join(str(v) for v in values) + "}"


def costs_literal(costs: Sequence[int]) -> str:
    """The int8[] literal of one cost per row key."""
    return array_literal(costs)


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
            lits = tuple(array_literal(x) for x in (self.algo, self.b, self.t, self.tau, self.w))
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
        """The check function's parameters (``costs``: the literal of one
        cost per key, :func:`costs_literal`)."""
        algo, b, t, tau, w = self.literals
        return (now, costs, keys_literal(keys), algo, b, t, tau, w, lock_ms)


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


def _cursor(conn: Any) -> Any:
    """The connection's own check cursor when it keeps one (a connection
    floodwall opened), else a new cursor (a user's connection)."""
    keep = getattr(conn, "check_cursor", None)
    return keep() if keep is not None else conn.cursor()


class Runs(Protocol):
    """A statement that sends itself (lean.py's one-rate statements)."""

    def run(self, conn: Any, params: Any) -> Row: ...

    async def arun(self, conn: Any, params: Any) -> Row: ...


def call_sync(conn: Any, sql: str | Runs, params: Any, nparts: int) -> Row:
    """Run one check of ``nparts`` row keys on a sync psycopg connection
    (``sql``, ``params``: :meth:`Parts.args`, or a lean statement's, see
    lean.py: SQL text sent through a cursor, or a statement that runs
    itself)."""
    if not isinstance(sql, str):
        return sql.run(conn, params)
    cur = _cursor(conn)
    cur.execute(sql, params)
    return _checked(cur.fetchone(), nparts)


async def call_async(conn: Any, sql: str | Runs, params: Any, nparts: int) -> Row:
    """Run one check on an async psycopg connection."""
    if not isinstance(sql, str):
        return await sql.arun(conn, params)
    cur = _cursor(conn)
    await cur.execute(sql, params)
    return _checked(await cur.fetchone(), nparts)
