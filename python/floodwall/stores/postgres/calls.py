"""Calling the check function: one statement per check, sync or async.

:class:`Parts` holds what one limit sends per part (row keys are added per
call): the algorithm code, B, T, tau and W of each rate. :class:`OneGcra`
(one rate, sql/one_gcra.sql, sent by wire.py) and :class:`LeanGcra`
(several rates, sql/many_gcra.sql) hold the lean statements of a limit
whose rates are of the GCRA family, which decide a charging check of one
key without the check function. :func:`call_sync` and :func:`call_async`
send the one statement on a connection and return its row, checked. Invariant: a check
is exactly one statement (so one round trip and one transaction),
whatever the number of parts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from floodwall.errors import StoreError
from floodwall.stores.netquota import INT64_MAX, NetQuota
from floodwall.stores.postgres.schema import (
    EXPIRY_GRAIN_NS,
    SWEEP_EVERY,
    SWEEP_ROWS,
    Layout,
    sql_text,
)
from floodwall.stores.postgres.wire import Prepared

__all__ = [
    "ALGORITHM_CODES",
    "LeanGcra",
    "OneGcra",
    "Parts",
    "call_async",
    "call_sync",
    "costs_literal",
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
        """The check function's parameters (``costs``: the literal of one
        cost per key, :func:`costs_literal`)."""
        algo, b, t, tau, w = self.literals
        return (now, costs, keys_literal(keys), algo, b, t, tau, w, lock_ms)


#: The clock of one_gcra.sql on the database: clock_timestamp() in ns, as
#: check.sql reads it.
_DB_NOW = "trunc(extract(epoch FROM clock_timestamp()) * 1000000000)"


def _statement(name: str, subs: dict[str, str]) -> str:
    """An SQL file less its comment lines, its placeholders filled."""
    text = "\n".join(
        line for line in sql_text(name).splitlines() if line and not line.startswith("--")
    )
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


@cache
def _lean_texts(layout: Layout, lock_ms: int, name: str) -> tuple[str, str, str]:
    """The lean statements (``name``: one_gcra.sql or many_gcra.sql) of a
    layout and lock timeout: on the database's clock without and with the
    sweep, and on a test clock. Every value in their text is an int
    formatted here, or a name :class:`Layout` validated and quoted."""
    one = name == "one_gcra.sql"
    subs = {
        "@table@": layout.table,
        "@state@": layout.state_function,
        "@lockclass@": str(int(layout.lock_class)),
        "@lock@": f"set_config('lock_timeout', '{int(lock_ms)}', true)" if lock_ms > 0 else "'-'",
        "@sweep_rows@": str(SWEEP_ROWS),
        "@grain@": str(EXPIRY_GRAIN_NS),
        "@mine@": "y.k <> $1::bytea" if one else "y.k <> ALL (%(keys)s::bytea[])",
    }
    sweep = _statement("one_sweep.sql", subs)
    db = {**subs, "@now@": _DB_NOW}
    test_now = "$4::numeric" if one else "%(now)s::numeric"
    return (
        _statement(name, {**db, "@sweep@": ""}),
        _statement(name, {**db, "@sweep@": "\n" + sweep}),
        _statement(name, {**subs, "@now@": test_now, "@sweep@": ""}),
    )


def _slack(quotas: Sequence[NetQuota]) -> tuple[int, ...]:
    """max(tau, 1 s) of each rate: how far past tau a TAT may lead now
    before it is a clock excursion (docs/algorithms.md)."""
    return tuple(max(q.tau_ns, 10**9) for q in quotas)


def _excursion(row: Row, cost: int, slack: Sequence[int], t: Sequence[int]) -> bool:
    """Whether a denial may come from a TAT a clock excursion left further
    ahead than tau + max(tau, 1 s): the lean statements do not clamp it
    (the check function does, and writes the repair), so the check is
    decided again by the function. A TAT that far ahead makes its rate's
    retry_after exceed max(tau, 1 s) + cost * T, which the deciding
    (longest) wait then exceeds too; a rate whose TAT is in reach waits at
    most cost * T, plus a late clock read."""
    return not row[0] and row[3] > min(s + cost * x for s, x in zip(slack, t, strict=True))


def _sweeps() -> bool:
    """Whether this admitting check also sweeps: one in SWEEP_EVERY, on
    average (on the database's clock only)."""
    return random.random() * SWEEP_EVERY < 1


class _OneRun:
    """One of the prepared forms of :class:`OneGcra` (database clock,
    database clock and sweep, test clock): what a check's ``sql`` is, run
    by :func:`call_sync` / :func:`call_async` with ``(row key, cost, now)``."""

    __slots__ = ("one", "prepared")

    def __init__(self, one: OneGcra, sql: str, test_clock: bool) -> None:
        self.one = one
        # the key binary (its bytes as they are), the integers as text
        self.prepared = Prepared(sql, (1, 0, 0, 0) if test_clock else (1, 0, 0))

    def _params(self, params: tuple[bytes, int, int | None]) -> list[bytes]:
        k, cost, now = params
        out = [k, b"%d" % (cost * self.one.t_ns), self.one.tau_text]
        if now is not None:
            out.append(b"%d" % now)
        return out

    def run(self, conn: Any, params: tuple[bytes, int, int | None]) -> Row:
        return self.one.row(self.prepared.run(conn, self._params(params)), params[1])

    async def arun(self, conn: Any, params: tuple[bytes, int, int | None]) -> Row:
        return self.one.row(await self.prepared.arun(conn, self._params(params)), params[1])


class OneGcra:
    """The lean statement of a limit of one rate of the GCRA family
    (sql/one_gcra.sql), sent by wire.py: the server answers whether it
    admitted and how far the key's TAT leads now; the decision's fields
    follow from these (:meth:`row`, check.sql's formulas). Its text is
    shared by every limiter on the same table and lock timeout (the rate is
    in its parameters), so one prepared statement serves them all."""

    def __init__(self, layout: Layout, quota: NetQuota, lock_ms: int) -> None:
        self.t_ns = quota.interval_ns
        self.tau_ns = quota.tau_ns
        self.tau_text = b"%d" % quota.tau_ns
        self.shaping = quota.algorithm == "leaky_bucket_shaping"
        self.slack = _slack([quota])
        db, db_sweep, test = _lean_texts(layout, lock_ms, "one_gcra.sql")
        self.db = _OneRun(self, db, False)
        self.db_sweep = _OneRun(self, db_sweep, False)
        self.test = _OneRun(self, test, True)

    def statement(
        self, keys: Sequence[bytes], cost: int, now: int | None
    ) -> tuple[_OneRun, tuple[bytes, int, int | None]]:
        """(statement, parameters) of a check of ``cost`` >= 1 units on the
        row key of one key."""
        if now is not None:
            return self.test, (keys[0], cost, now)
        return (self.db_sweep if _sweeps() else self.db), (keys[0], cost, None)

    def row(self, res: Any, cost: int) -> Row:
        """The decision's row of the statement's answer (a binary libpq
        result: allowed, the TAT's lead d >= 0), or StoreError if it is not
        what the statement can answer."""
        if res.ntuples != 1 or res.nfields != 2:
            raise StoreError(f"the PostgreSQL check answered {res.ntuples} rows of {res.nfields}")
        ok = res.get_value(0, 0)
        lead = res.get_value(0, 1)
        if ok not in (b"\x00", b"\x01") or lead is None or len(lead) != 8:
            raise StoreError(f"the PostgreSQL check answered ({ok!r}, {lead!r})")
        d = int.from_bytes(lead, "big", signed=True)
        tau, t, nt = self.tau_ns, self.t_ns, cost * self.t_ns
        if ok == b"\x01":
            if not 0 <= d <= tau:
                raise StoreError(f"the PostgreSQL check admitted with a lead of {d} ns")
            return True, 0, (tau - d) // t, 0, d, max(d - nt, 0) if self.shaping else 0
        if d < 0:
            raise StoreError(f"the PostgreSQL check denied with a lead of {d} ns")
        remaining = (tau - d) // t if d < tau else 0
        return False, 0, remaining, min(max(d + nt - tau, 0), INT64_MAX), d, 0

    def excursion(self, row: Row, cost: int) -> bool:
        """See :func:`_excursion`."""
        return _excursion(row, cost, self.slack, (self.t_ns,))


@dataclass(frozen=True)
class LeanGcra:
    """The lean statement of a limit of several rates, all of the GCRA
    family (sql/many_gcra.sql, decided all-or-nothing), sent through a
    cursor; one rate has :class:`OneGcra` (:meth:`of` picks). Its text is
    shared by every limiter on the same table and lock timeout; the rates
    are in its parameters, so that one prepared statement serves them
    all."""

    t: tuple[int, ...]
    t8: Any
    tau: Any
    shaping: bool
    sql_db: str
    sql_db_sweep: str
    sql_test: str
    #: max(tau, 1 s) of each rate (:func:`_slack`)
    slack: tuple[int, ...]

    @staticmethod
    def serves(quotas: Sequence[NetQuota]) -> bool:
        """Whether a lean statement decides a limit of these rates."""
        return bool(quotas) and all(ALGORITHM_CODES.get(q.algorithm) in ("g", "s") for q in quotas)

    @classmethod
    def of(cls, layout: Layout, quotas: Sequence[NetQuota], lock_ms: int) -> LeanGcra | OneGcra:
        if len(quotas) == 1:
            return OneGcra(layout, quotas[0], lock_ms)
        shaping = quotas[0].algorithm == "leaky_bucket_shaping"
        t = tuple(q.interval_ns for q in quotas)
        texts = _lean_texts(layout, lock_ms, "many_gcra.sql")
        # arrays as literals, made once (as Parts does): dumping lists per
        # call costs more on the client than the statement saves
        taus = _array([q.tau_ns for q in quotas])
        return cls(t, _array(t), taus, shaping, *texts, _slack(quotas))

    def statement(
        self, keys: Sequence[bytes], cost: int, now: int | None
    ) -> tuple[str, dict[str, Any]]:
        """(SQL, parameters) of a check of ``cost`` >= 1 units on the row
        keys of one key (one per rate, distinct); one admitting check in
        SWEEP_EVERY (on average) also sweeps, on the database's clock only."""
        params: dict[str, Any] = {
            "keys": keys_literal(keys),
            "nt": _array([cost * t for t in self.t]),
            "tau": self.tau,
            "t": self.t8,
            "shaping": self.shaping,
        }
        if now is not None:
            params["now"] = now
            return self.sql_test, params
        return (self.sql_db_sweep if _sweeps() else self.sql_db), params

    def excursion(self, row: Row, cost: int) -> bool:
        """See :func:`_excursion`."""
        return _excursion(row, cost, self.slack, self.t)


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


def call_sync(conn: Any, sql: str | _OneRun, params: Any, nparts: int) -> Row:
    """Run one check of ``nparts`` row keys on a sync psycopg connection
    (``sql``, ``params``: :meth:`Parts.args`, :meth:`LeanGcra.statement`'s
    or :meth:`OneGcra.statement`'s)."""
    if not isinstance(sql, str):
        return sql.run(conn, params)
    cur = _cursor(conn)
    cur.execute(sql, params)
    return _checked(cur.fetchone(), nparts)


async def call_async(conn: Any, sql: str | _OneRun, params: Any, nparts: int) -> Row:
    """Run one check on an async psycopg connection."""
    if not isinstance(sql, str):
        return await sql.arun(conn, params)
    cur = _cursor(conn)
    await cur.execute(sql, params)
    return _checked(await cur.fetchone(), nparts)
