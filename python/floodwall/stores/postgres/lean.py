"""The lean statements: the commonest checks decided without the check function.

A charging check of one key whose rates are all of the GCRA family, or
whose one rate is a fixed or sliding window, is one plain prepared statement instead
of a call of the check function (docs/stores.md, "What a check costs"):

- :class:`OneGcra`: one GCRA-family rate (sql/one_gcra.sql);
- :class:`OneWindow`: one fixed_window rate (sql/one_window.sql);
- :class:`OneSliding`: one sliding_window rate (sql/one_sliding.sql);
- :class:`ManyGcra`: several GCRA-family rates, all-or-nothing
  (sql/many_gcra.sql).

They are sent by wire.py and answer a few integers; the decision's fields
follow from them and the rates, by the check function's formulas
(``row``). :func:`lean_statement` picks the statement of a limit.
Invariant: a lean statement decides exactly as the check function
(test_postgres_lean.py walks both, field by field); a denial it cannot
decide so (a state a clock excursion left ahead, which the function clamps
and repairs) is recognised by ``excursion`` and decided again by the
function.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
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

__all__ = ["ManyGcra", "OneGcra", "OneSliding", "OneWindow", "lean_statement"]

#: The clock of the lean statements on the database: clock_timestamp() in
#: ns, as check.sql reads it.
_DB_NOW = "trunc(extract(epoch FROM clock_timestamp()) * 1000000000)"

#: A check's parameters: (the row keys, one per rate; the cost; the test
#: clock's now, or None).
Params = tuple[Sequence[bytes], int, int | None]

#: The sql/ file and the test clock's parameter of each statement.
_ONE_GCRA = ("one_gcra.sql", "$4::numeric")
_ONE_WINDOW = ("one_window.sql", "$5::numeric")
_ONE_SLIDING = ("one_sliding.sql", "$5::numeric")
_MANY_GCRA = ("many_gcra.sql", "$4::numeric")


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
        "@mine@": "y.k <> $1::bytea" if one else "y.k <> ALL ($1::bytea[])",
    }
    # the one-key statements begin with one_lock.sql, filled like them
    subs = {"@key_now@": _statement("one_lock.sql", {}), **subs}
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


class _Run:
    """One of the prepared forms of a lean statement (database clock,
    database clock and sweep, test clock): what a check's ``sql`` is, run
    by ``call_sync`` / ``call_async`` with ``(row keys, cost, now)``."""

    __slots__ = ("lean", "prepared")

    def __init__(self, lean: _Lean, sql: str, formats: tuple[int, ...]) -> None:
        self.lean = lean
        self.prepared = Prepared(sql, formats)

    def run(self, conn: Any, params: Params) -> Row:
        return self.lean.row(self.prepared.run(conn, self.lean.encode(params)), params)

    async def arun(self, conn: Any, params: Params) -> Row:
        return self.lean.row(await self.prepared.arun(conn, self.lean.encode(params)), params)


class _Lean:
    """What the lean statements share: their three prepared forms and the
    choice between them. Their text is shared by every limiter on the same
    table and lock timeout (the rates are in their parameters), so one
    prepared statement serves them all."""

    #: the statement's file and test-clock parameter
    form: tuple[str, str]
    #: the formats of its parameters (0: text, 1: binary), the test clock's not counted
    formats: tuple[int, ...]

    def __init__(self, layout: Layout, lock_ms: int) -> None:
        db, db_sweep, test = _lean_texts(layout, lock_ms, self.form)
        self.db = _Run(self, db, self.formats)
        self.db_sweep = _Run(self, db_sweep, self.formats)
        self.test = _Run(self, test, (*self.formats, 0))

    def statement(self, keys: Sequence[bytes], cost: int, now: int | None) -> tuple[_Run, Params]:
        """(statement, parameters) of a check of ``cost`` >= 1 units on the
        row keys of one key (one per rate)."""
        if now is not None:
            return self.test, (keys, cost, now)
        return (self.db_sweep if _sweeps() else self.db), (keys, cost, None)

    def encode(self, params: Params) -> list[bytes]:
        """The statement's parameters, as wire.py sends them."""
        raise NotImplementedError

    def row(self, res: Any, params: Params) -> Row:
        """The decision's row of the statement's answer (a binary libpq
        result), or StoreError if it is not what the statement can answer."""
        raise NotImplementedError

    def excursion(self, row: Row, cost: int) -> bool:
        """Whether a denial may come from a state a clock excursion left
        ahead, which the check function clamps and repairs (decide again)."""
        raise NotImplementedError


class _OneLean(_Lean):
    """A one-rate lean statement: the row key binary (its bytes as they
    are), then the rate's integers as text."""

    def encode(self, params: Params) -> list[bytes]:
        keys, cost, now = params
        out = [keys[0], *self.encode_rate(cost)]
        if now is not None:
            out.append(b"%d" % now)
        return out

    def encode_rate(self, cost: int) -> tuple[bytes, ...]:
        """The integer parameters after the key, as text."""
        raise NotImplementedError


class OneGcra(_OneLean):
    """One GCRA-family rate (sql/one_gcra.sql): the server answers whether
    it admitted and how far the key's TAT then leads now."""

    form = _ONE_GCRA
    formats = (1, 0, 0)

    def __init__(self, layout: Layout, quota: NetQuota, lock_ms: int) -> None:
        self.t_ns = quota.interval_ns
        self.tau_ns = quota.tau_ns
        self.tau_text = b"%d" % quota.tau_ns
        self.shaping = quota.algorithm == "leaky_bucket_shaping"
        self.slack = _slack([quota])
        super().__init__(layout, lock_ms)

    def encode_rate(self, cost: int) -> tuple[bytes, ...]:
        return b"%d" % (cost * self.t_ns), self.tau_text

    def row(self, res: Any, params: Params) -> Row:
        cost = params[1]
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
    formats = (1, 0, 0, 0)

    def __init__(self, layout: Layout, quota: NetQuota, lock_ms: int) -> None:
        self.burst = quota.burst
        self.window_ns = quota.window_ns
        self.rate_text = (b"%d" % quota.burst, b"%d" % quota.window_ns)
        #: how far a window's end may lead now: W, plus max(W, 1 s) of slack
        self.reach = quota.window_ns + max(quota.window_ns, 10**9)
        super().__init__(layout, lock_ms)

    def encode_rate(self, cost: int) -> tuple[bytes, ...]:
        return (b"%d" % cost, *self.rate_text)

    def row(self, res: Any, params: Params) -> Row:
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

    def row(self, res: Any, params: Params) -> Row:
        cost = params[1]
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


class ManyGcra(_Lean):
    """Several GCRA-family rates of one key, decided all-or-nothing
    (sql/many_gcra.sql): the server answers how far each rate's TAT led the
    clock when the check read it; whether each admits, the decision's
    fields and the deciding rate follow (:meth:`row`, check.sql's rules)."""

    form = _MANY_GCRA
    formats = (0, 0, 0)

    def __init__(self, layout: Layout, quotas: Sequence[NetQuota], lock_ms: int) -> None:
        self.t = tuple(q.interval_ns for q in quotas)
        self.tau = tuple(q.tau_ns for q in quotas)
        self.tau_literal = array_literal(self.tau).encode()
        self.shaping = quotas[0].algorithm == "leaky_bucket_shaping"
        self.slack = _slack(quotas)
        super().__init__(layout, lock_ms)

    def encode(self, params: Params) -> list[bytes]:
        keys, cost, now = params
        out = [
            keys_literal(keys).encode(),
            array_literal([cost * t for t in self.t]).encode(),
            self.tau_literal,
        ]
        if now is not None:
            out.append(b"%d" % now)
        return out

    def row(self, res: Any, params: Params) -> Row:
        cost = params[1]
        n = len(self.t)
        if res.ntuples != n or res.nfields != 1:
            raise StoreError(f"the PostgreSQL check answered {res.ntuples} rows of {res.nfields}")
        leads = [res.get_value(i, 0) for i in range(n)]
        if any(v is None or len(v) != 8 for v in leads):
            raise StoreError(f"the PostgreSQL check answered {leads!r}")
        best: tuple[tuple[bool, int, int], Row] | None = None
        for i, (raw, t, tau) in enumerate(zip(leads, self.t, self.tau, strict=True)):
            d = int.from_bytes(raw, "big", signed=True)
            if d < 0:
                raise StoreError(f"the PostgreSQL check answered a lead of {d} ns")
            used = d + cost * t
            if used <= tau:
                part: Row = (True, i, (tau - used) // t, 0, used, d if self.shaping else 0)
                order = (True, part[2], i)
            else:
                remaining = (tau - d) // t if d < tau else 0
                part = (False, i, remaining, min(used - tau, INT64_MAX), d, 0)
                order = (False, -part[3], i)
            if best is None or order < best[0]:
                best = (order, part)
        assert best is not None  # n >= 2
        ok, i, remaining, retry, reset, delay = best[1]
        return ok, i, remaining, retry, min(reset, INT64_MAX), delay

    def excursion(self, row: Row, cost: int) -> bool:
        return _gcra_excursion(row, cost, self.slack, self.t)


def lean_statement(
    layout: Layout, quotas: Sequence[NetQuota], lock_ms: int
) -> OneGcra | OneWindow | ManyGcra | None:
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
    return ManyGcra(layout, quotas, lock_ms) if codes <= {"g", "s"} else None
