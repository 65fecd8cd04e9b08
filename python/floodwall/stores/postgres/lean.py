"""The lean statements: the commonest checks decided without the check function.

A charging check of one key whose rates are all of the GCRA family, or
whose one rate is a fixed or sliding window, is one plain prepared statement instead
of a call of the check function (docs/stores.md, "What a check costs"):

- :class:`OneGcra`: one GCRA-family rate (sql/one_gcra.sql);
- :class:`OneWindow`: one fixed_window rate (sql/one_window.sql);
- :class:`OneSliding`: one sliding_window rate (sql/one_sliding.sql);
- :class:`LeanGcra`: several GCRA-family rates, all-or-nothing
  (sql/many_gcra.sql), sent through a psycopg cursor.

The one-rate statements are sent by wire.py and answer a few integers; the
decision's fields follow from them and the rate, by the check function's
formulas (``row``). :func:`lean_statement` picks the statement of a limit.
Invariant: a lean statement decides exactly as the check function
(test_postgres_lean.py walks both, field by field); a denial it cannot
decide so (a state a clock excursion left ahead, which the function clamps
and repairs) is recognised by ``excursion`` and decided again by the
function.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from floodwall.errors import StoreError
from floodwall.stores.netquota import INT64_MAX, NetQuota
from floodwall.stores.postgres.calls import ALGORITHM_CODES, Row, array_literal, keys_literal
from floodwall.stores.postgres.schema import (
    EXPIRY_GRAIN_NS,
    SWEEP_EVERY,
    SWEEP_ROWS,
    Layout,
    sql_text,
)
from floodwall.stores.postgres.wire import Prepared

__all__ = ["LeanGcra", "OneGcra", "OneSliding", "OneWindow", "lean_statement"]

#: The clock of the lean statements on the database: clock_timestamp() in
#: ns, as check.sql reads it.
_DB_NOW = "trunc(extract(epoch FROM clock_timestamp()) * 1000000000)"

#: The sql/ file and the test clock's parameter of each statement.
_ONE_GCRA = ("one_gcra.sql", "$4::numeric")
_ONE_WINDOW = ("one_window.sql", "$5::numeric")
_ONE_SLIDING = ("one_sliding.sql", "$5::numeric")
_MANY_GCRA = ("many_gcra.sql", "%(now)s::numeric")


def _statement(name: str, subs: dict[str, str]) -> str:
    """An SQL file less its comment lines, its placeholders filled."""
    text = "\n".join(
        line for line in sql_text(name).splitlines() if line and not line.startswith("--")
    )
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


@cache
def _lean_texts(layout: Layout, lock_ms: int, form: tuple[str, str]) -> tuple[str, str, str]:
    """The texts of a lean statement (``form``: its file and test-clock
    parameter) for a layout and lock timeout: on the database's clock
    without and with the sweep, and on a test clock. Every value in their
    text is an int formatted here, or a name :class:`Layout` validated and
    quoted."""
    name, test_now = form
    one = name != "many_gcra.sql"
    subs = {
        "@table@": layout.table,
        "@state@": layout.state_function,
        "@window@": layout.window_function,
        "@lockclass@": str(int(layout.lock_class)),
        "@lock@": f"set_config('lock_timeout', '{int(lock_ms)}', true)" if lock_ms > 0 else "'-'",
        "@sweep_rows@": str(SWEEP_ROWS),
        "@grain@": str(EXPIRY_GRAIN_NS),
        "@mine@": "y.k <> $1::bytea" if one else "y.k <> ALL (%(keys)s::bytea[])",
    }
    sweep = _statement("one_sweep.sql", subs)
    db = {**subs, "@now@": _DB_NOW}
    return (
        _statement(name, {**db, "@sweep@": ""}),
        _statement(name, {**db, "@sweep@": "\n" + sweep}),
        _statement(name, {**subs, "@now@": test_now, "@sweep@": ""}),
    )


def _slack(quotas: Sequence[NetQuota]) -> tuple[int, ...]:
    """max(tau, 1 s) of each rate: how far past tau a TAT may lead now
    before it is a clock excursion (docs/algorithms.md)."""
    return tuple(max(q.tau_ns, 10**9) for q in quotas)


def _gcra_excursion(row: Row, cost: int, slack: Sequence[int], t: Sequence[int]) -> bool:
    """Whether a GCRA denial may come from a TAT a clock excursion left
    further ahead than tau + max(tau, 1 s). A TAT that far ahead makes its
    rate's retry_after exceed max(tau, 1 s) + cost * T, which the deciding
    (longest) wait then exceeds too; a rate whose TAT is in reach waits at
    most cost * T, plus a late clock read."""
    return not row[0] and row[3] > min(s + cost * x for s, x in zip(slack, t, strict=True))


def _sweeps() -> bool:
    """Whether this admitting check also sweeps: one in SWEEP_EVERY, on
    average (on the database's clock only)."""
    return random.random() * SWEEP_EVERY < 1


def _int8s(res: Any, n: int) -> tuple[bool, list[int]]:
    """(allowed, n int8 values) of a one-row binary answer of a bool and
    ``n`` int8 columns; StoreError if it is anything else."""
    if res.ntuples != 1 or res.nfields != n + 1:
        raise StoreError(f"the PostgreSQL check answered {res.ntuples} rows of {res.nfields}")
    ok = res.get_value(0, 0)
    values = [res.get_value(0, i) for i in range(1, n + 1)]
    if ok not in (b"\x00", b"\x01") or any(v is None or len(v) != 8 for v in values):
        raise StoreError(f"the PostgreSQL check answered ({ok!r}, {values!r})")
    return ok == b"\x01", [int.from_bytes(v, "big", signed=True) for v in values]


class _OneRun:
    """One of the prepared forms of a one-rate lean statement (database
    clock, database clock and sweep, test clock): what a check's ``sql``
    is, run by ``call_sync`` / ``call_async`` with ``(row key, cost, now)``."""

    __slots__ = ("one", "prepared")

    def __init__(self, one: _OneLean, sql: str, test_clock: bool) -> None:
        self.one = one
        # the key binary (its bytes as they are), the integers as text
        self.prepared = Prepared(sql, (1,) + (0,) * (one.nparams + test_clock))

    def _params(self, params: tuple[bytes, int, int | None]) -> list[bytes]:
        k, cost, now = params
        out = [k, *self.one.encode(cost)]
        if now is not None:
            out.append(b"%d" % now)
        return out

    def run(self, conn: Any, params: tuple[bytes, int, int | None]) -> Row:
        return self.one.row(self.prepared.run(conn, self._params(params)), params[1])

    async def arun(self, conn: Any, params: tuple[bytes, int, int | None]) -> Row:
        return self.one.row(await self.prepared.arun(conn, self._params(params)), params[1])


class _OneLean:
    """What the one-rate lean statements share: their three prepared forms
    and the choice between them. Its text is shared by every limiter on
    the same table and lock timeout (the rate is in its parameters), so one
    prepared statement serves them all."""

    #: the statement's file and test-clock parameter
    form: tuple[str, str]
    #: its integer parameters after the key (the test clock's not counted)
    nparams: int

    def __init__(self, layout: Layout, lock_ms: int) -> None:
        db, db_sweep, test = _lean_texts(layout, lock_ms, self.form)
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

    def encode(self, cost: int) -> tuple[bytes, ...]:
        """The integer parameters after the key, as text."""
        raise NotImplementedError

    def row(self, res: Any, cost: int) -> Row:
        """The decision's row of the statement's answer (a binary libpq
        result), or StoreError if it is not what the statement can answer."""
        raise NotImplementedError

    def excursion(self, row: Row, cost: int) -> bool:
        """Whether a denial may come from a state a clock excursion left
        ahead, which the check function clamps and repairs (decide again)."""
        raise NotImplementedError


class OneGcra(_OneLean):
    """One GCRA-family rate (sql/one_gcra.sql): the server answers whether
    it admitted and how far the key's TAT then leads now."""

    form = _ONE_GCRA
    nparams = 2

    def __init__(self, layout: Layout, quota: NetQuota, lock_ms: int) -> None:
        self.t_ns = quota.interval_ns
        self.tau_ns = quota.tau_ns
        self.tau_text = b"%d" % quota.tau_ns
        self.shaping = quota.algorithm == "leaky_bucket_shaping"
        self.slack = _slack([quota])
        super().__init__(layout, lock_ms)

    def encode(self, cost: int) -> tuple[bytes, ...]:
        return b"%d" % (cost * self.t_ns), self.tau_text

    def row(self, res: Any, cost: int) -> Row:
        ok, (d,) = _int8s(res, 1)
        tau, t, nt = self.tau_ns, self.t_ns, cost * self.t_ns
        if ok:
            if not 0 <= d <= tau:
                raise StoreError(f"the PostgreSQL check admitted with a lead of {d} ns")
            return True, 0, (tau - d) // t, 0, d, max(d - nt, 0) if self.shaping else 0
        if d < 0:
            raise StoreError(f"the PostgreSQL check denied with a lead of {d} ns")
        remaining = (tau - d) // t if d < tau else 0
        return False, 0, remaining, min(max(d + nt - tau, 0), INT64_MAX), d, 0

    def excursion(self, row: Row, cost: int) -> bool:
        return _gcra_excursion(row, cost, self.slack, (self.t_ns,))


class OneWindow(_OneLean):
    """One fixed_window rate (sql/one_window.sql): the server answers
    whether it admitted, what is left of the window in force and its count
    (after the check when admitted, as denied on otherwise)."""

    form = _ONE_WINDOW
    nparams = 3

    def __init__(self, layout: Layout, quota: NetQuota, lock_ms: int) -> None:
        self.burst = quota.burst
        self.window_ns = quota.window_ns
        self.rate_text = (b"%d" % quota.burst, b"%d" % quota.window_ns)
        #: how far a window's end may lead now: W, plus max(W, 1 s) of slack
        self.reach = quota.window_ns + max(quota.window_ns, 10**9)
        super().__init__(layout, lock_ms)

    def encode(self, cost: int) -> tuple[bytes, ...]:
        return (b"%d" % cost, *self.rate_text)

    def row(self, res: Any, cost: int) -> Row:
        ok, (left, count) = _int8s(res, 2)
        if not 0 <= count <= self.burst or left < 0 or left > self.reach and ok:
            raise StoreError(f"the PostgreSQL check answered a window of {left} ns, {count} used")
        if ok:
            return True, 0, self.burst - count, 0, left, 0
        return False, 0, self.burst - count, left, left, 0

    def excursion(self, row: Row, cost: int) -> bool:
        return not row[0] and row[3] > self.reach


class OneSliding(OneWindow):
    """One sliding_window rate (sql/one_sliding.sql): the server answers
    whether it admitted, what is left of the current window, and the
    previous and current windows' counts (after the check when admitted,
    as denied on otherwise)."""

    form = _ONE_SLIDING

    def row(self, res: Any, cost: int) -> Row:
        ok, (left, prv, cur) = _int8s(res, 3)
        b, w = self.burst, self.window_ns
        if not (0 <= prv <= b and 0 <= cur <= b and left >= 0) or left > self.reach and ok:
            raise StoreError(
                f"the PostgreSQL check answered a window of {left} ns, {prv} and {cur} used"
            )
        if not ok and left > self.reach:
            # a clock excursion: excursion() sends it to the check function
            return False, 0, 0, left, left, 0
        cap = b * w
        usage = prv * min(left, w) + cur * w
        remaining = (cap - usage) // w if usage < cap else 0
        if ok:
            return True, 0, remaining, 0, left + w, 0
        reset = left + w if cur > 0 else left if prv > 0 else 0
        q = (b - cur - cost) * w // prv if cur + cost <= b and prv > 0 else 0
        if q > 0:
            retry = left - q
        else:
            q2 = (b - cost) * w // cur if cur > 0 else w
            retry = left + (w - q2 if q2 < w else 0)
        return False, 0, remaining, min(max(retry, 0), INT64_MAX), reset, 0


@dataclass(frozen=True)
class LeanGcra:
    """Several GCRA-family rates of one key, decided all-or-nothing
    (sql/many_gcra.sql), sent through a cursor. Its text is shared by
    every limiter on the same table and lock timeout; the rates are in its
    parameters, so that one prepared statement serves them all."""

    t: tuple[int, ...]
    t_literal: str
    tau_literal: str
    shaping: bool
    sql_db: str
    sql_db_sweep: str
    sql_test: str
    #: max(tau, 1 s) of each rate (:func:`_slack`)
    slack: tuple[int, ...]

    @classmethod
    def of(cls, layout: Layout, quotas: Sequence[NetQuota], lock_ms: int) -> LeanGcra:
        t = tuple(q.interval_ns for q in quotas)
        # arrays as literals, made once (as Parts does): dumping lists per
        # call costs more on the client than the statement saves
        return cls(
            t,
            array_literal(t),
            array_literal([q.tau_ns for q in quotas]),
            quotas[0].algorithm == "leaky_bucket_shaping",
            *_lean_texts(layout, lock_ms, _MANY_GCRA),
            _slack(quotas),
        )

    def statement(
        self, keys: Sequence[bytes], cost: int, now: int | None
    ) -> tuple[str, dict[str, Any]]:
        """(SQL, parameters) of a check of ``cost`` >= 1 units on the row
        keys of one key (one per rate, distinct); one admitting check in
        SWEEP_EVERY (on average) also sweeps, on the database's clock only."""
        params: dict[str, Any] = {
            "keys": keys_literal(keys),
            "nt": array_literal([cost * t for t in self.t]),
            "tau": self.tau_literal,
            "t": self.t_literal,
            "shaping": self.shaping,
        }
        if now is not None:
            params["now"] = now
            return self.sql_test, params
        return (self.sql_db_sweep if _sweeps() else self.sql_db), params

    def excursion(self, row: Row, cost: int) -> bool:
        return _gcra_excursion(row, cost, self.slack, self.t)


def lean_statement(
    layout: Layout, quotas: Sequence[NetQuota], lock_ms: int
) -> OneGcra | OneWindow | LeanGcra | None:
    """The lean statement of a limit of these rates, or None when the
    check function decides its checks (other algorithms)."""
    codes = {ALGORITHM_CODES.get(q.algorithm) for q in quotas}
    if not quotas or not codes <= {"g", "s", "f", "w"}:
        return None
    if len(quotas) == 1:
        if codes == {"f"}:
            return OneWindow(layout, quotas[0], lock_ms)
        if codes == {"w"}:
            return OneSliding(layout, quotas[0], lock_ms)
        return OneGcra(layout, quotas[0], lock_ms)
    return LeanGcra.of(layout, quotas, lock_ms) if codes <= {"g", "s"} else None
