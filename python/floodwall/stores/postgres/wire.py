"""floodwall's own prepared statements, sent at the libpq level.

A lean check (calls.py) is one prepared statement with a few integer
parameters and a two-column answer. psycopg's cursor layer (query
conversion, parameter adaptation, the prepared-statement manager, row
loading) costs about as much client CPU as the round trip's own system
calls, so the lean checks skip it: :class:`Prepared` sends its statement
with ``PQsendQueryPrepared`` on the psycopg connection's libpq handle,
parameters already in PostgreSQL's text format, the answer in binary, and
waits through the connection's own ``wait`` (so a floodwall connection's
deadline still bounds every wait, and psycopg's cancellation and errors
behave as for any query).

Invariant: a statement is prepared once per connection, under a name of
its own (``floodwall_`` and a digest of its text: psycopg's names start
``_pg3_``, so neither can take the other's), and prepared again when the
server forgot it (a pooler's ``DISCARD ALL``, a user's ``DEALLOCATE``): the
check is then sent once more, never twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from psycopg import errors, generators, pq

__all__ = ["Prepared"]

_OK = pq.ExecStatus.TUPLES_OK
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
#: SQLSTATE 26000: the prepared statement does not exist (any more)
_FORGOTTEN = errors.InvalidSqlStatementName


def _names(conn: Any) -> set[bytes]:
    """The floodwall statements prepared on ``conn`` (kept on it)."""
    names: set[bytes] | None = getattr(conn, "_floodwall_prepared", None)
    if names is None:
        names = set()
        conn._floodwall_prepared = names
    return names


def _raise(res: Any, conn: Any) -> None:
    """psycopg's exception for an error result (its class says what failed:
    a lock timeout, a cancelled statement, a missing table...)."""
    raise errors.error_from_result(res, encoding=conn.info.encoding)


class Prepared:
    """One statement whose parameters are sent in the given formats (0:
    PostgreSQL's text form, 1: binary) and whose answer is binary."""

    __slots__ = ("name", "sql", "formats")

    def __init__(self, sql: str, formats: Sequence[int]) -> None:
        self.sql = sql.encode()
        self.formats = tuple(formats)
        self.name = b"floodwall_" + hashlib.blake2b(self.sql, digest_size=12).hexdigest().encode()

    def _prepare(self, conn: Any) -> Any:
        """The generator that prepares the statement on ``conn``."""
        conn.pgconn.send_prepare(self.name, self.sql)
        return generators.execute(conn.pgconn)

    def _send(self, conn: Any, params: Sequence[bytes | None]) -> Any:
        conn.pgconn.send_query_prepared(
            self.name, params, param_formats=self.formats, result_format=1
        )
        return generators.execute(conn.pgconn)

    def _result(self, conn: Any, results: list[Any]) -> Any:
        res = results[-1]
        if res.status != _OK:
            _raise(res, conn)
        return res

    def run(self, conn: Any, params: Sequence[bytes | None]) -> Any:
        """The answer (a libpq result) on a sync psycopg connection."""
        names = _names(conn)
        with conn.lock:
            for attempt in (0, 1):
                if self.name not in names:
                    res = conn.wait(self._prepare(conn))[-1]
                    if res.status != _COMMAND_OK:
                        _raise(res, conn)
                    names.add(self.name)
                try:
                    return self._result(conn, conn.wait(self._send(conn, params)))
                except _FORGOTTEN:
                    names.discard(self.name)
                    if attempt:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def arun(self, conn: Any, params: Sequence[bytes | None]) -> Any:
        """The answer on an async psycopg connection."""
        names = _names(conn)
        async with conn.lock:
            for attempt in (0, 1):
                if self.name not in names:
                    res = (await conn.wait(self._prepare(conn)))[-1]
                    if res.status != _COMMAND_OK:
                        _raise(res, conn)
                    names.add(self.name)
                try:
                    return self._result(conn, await conn.wait(self._send(conn, params)))
                except _FORGOTTEN:
                    names.discard(self.name)
                    if attempt:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover
