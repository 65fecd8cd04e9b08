"""The check command packed once: only the keys are packed per call.

redis-py packs every argument of every command (in Python, about a
microsecond each), and a check's command is mostly the same every time: the
function name (or script SHA), the key count and the quota arguments. A
:class:`PackedCheck` holds those bytes, packed once per backend, and
:func:`send_sync` / :func:`send_async` send a packed command on a pooled
connection of a client floodwall made itself and read one reply, with the
client's own retry policy, as ``execute_command`` does without the per-call
packing and bookkeeping. Error replies raise ``ResponseError`` as they do
there (the caller then runs the full routine of :mod:`.calls`).
Invariant: the bytes sent are exactly what ``execute_command`` would send
for the same arguments (tests/python/test_redis_wire.py compares them).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError

from floodwall.stores.redis.calls import ScriptMode
from floodwall.stores.redis.pool import CheckPool

try:  # the Python parsers' base (RESP2 and RESP3); not hiredis's
    from redis._parsers.base import _AsyncRESPBase as _PY_PARSER
    from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR
except ImportError:  # another redis-py layout: replies go through read_response
    _PY_PARSER = ()  # type: ignore[assignment,misc]
    SERVER_CLOSED_CONNECTION_ERROR = "Connection closed by server."

__all__ = ["PackedCheck", "send_async", "send_sync", "usable"]

#: ``read_response(timeout=...)`` meaning "no timeout of the read's own":
#: the redis-py versions that know it arm no per-read timer, older ones an
#: endless one (the bound is the caller's deadline either way)
_NO_READ_TIMEOUT = math.inf


def _bulk(item: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(item), item)


class PackedCheck:
    """The script call of ``nkeys`` keys with a fixed ARGV, packed but for the
    keys, for FCALL and for EVALSHA (the mode may change at run time)."""

    __slots__ = ("_evalsha", "_fcall", "_tail")

    def __init__(self, mode: ScriptMode, nkeys: int, argv: Sequence[bytes]) -> None:
        count = b"*%d\r\n" % (3 + nkeys + len(argv))
        n = _bulk(b"%d" % nkeys)
        self._fcall = count + _bulk(b"FCALL") + _bulk(mode.fname.encode()) + n
        self._evalsha = count + _bulk(b"EVALSHA") + _bulk(mode.sha.encode()) + n
        self._tail = b"".join(_bulk(a) for a in argv)

    @staticmethod
    def segment(keys: Sequence[bytes]) -> bytes:
        """The keys, packed: what changes from one call to the next."""
        return b"".join([_bulk(k) for k in keys])

    def join(self, use_fcall: bool, segment: bytes) -> bytes:
        """The whole command around the packed keys."""
        return b"%b%b%b" % (self._fcall if use_fcall else self._evalsha, segment, self._tail)

    def command(self, use_fcall: bool, keys: Sequence[bytes]) -> bytes:
        return self.join(use_fcall, self.segment(keys))


def usable(owned: bool, cluster: bool, client_options: dict[str, Any]) -> bool:
    """May checks bypass ``execute_command`` on a connection's clients? Only
    on clients floodwall made (a user's client may carry its own behaviour),
    not a cluster's (it routes per node), not ones pinned to a single
    connection, and not ones given a credential provider (which
    re-authenticates connections as the pool releases them)."""
    return (
        owned
        and not cluster
        and not client_options.get("single_connection_client")
        and client_options.get("credential_provider") is None
    )


def send_sync(client: Any, packed: bytes) -> Any:
    """Send ``packed`` on a pooled connection of ``client`` and read the
    reply, retrying as the client's retry policy says (a dropped connection
    is reconnected; a failed one is disconnected before it is pooled again)."""
    pool = client.connection_pool
    conn = pool.get_connection()

    def call() -> Any:
        conn.send_packed_command([packed])
        return conn.read_response()

    def fail(error: BaseException) -> None:
        conn.disconnect()

    try:
        return conn.retry.call_with_retry(call, fail)
    finally:
        pool.release(conn)


async def send_async(client: Any, packed: bytes, bounded: bool = False) -> Any:
    """:func:`send_sync` for a redis.asyncio client (a cancelled read
    disconnects its connection, as redis-py does). On floodwall's own pool
    a free connection is taken and given back in O(1) (:mod:`.pool`). The
    first attempt is made here; only when it fails is the client's retry
    policy called, with that failure as its first (:func:`_retried`).

    ``bounded``: the caller holds a deadline over the whole call
    (``Connection.deadline``), which bounds every step as the socket
    timeout would. The command is then written to the connection's stream
    directly (redis-py would wrap the write in ``asyncio.wait_for``: a task
    and one more turn of the event loop per check; a write to a stream that
    is not full does not wait at all), and the reply is read without a
    timeout of its own (:func:`_attempt`).
    """
    pool = client.connection_pool
    fast = isinstance(pool, CheckPool)
    conn = (fast and pool.take_free()) or await pool.get_connection()
    try:
        try:
            return await _attempt(conn, packed, bounded)
        except Exception as exc:  # the retry policy decides (a BaseException ends here)
            first = exc
        return await _retried(conn, packed, bounded, first)
    finally:
        if not (fast and pool.put_back(conn)):
            await pool.release(conn)


async def _attempt(conn: Any, packed: bytes, bounded: bool) -> Any:
    """Send ``packed`` on ``conn`` once and read its reply.

    On the bounded path the reply is read as ``conn.read_response(
    timeout=math.inf)`` reads it, in this one coroutine: the script answers
    one bulk string, whose two lines are read from the stream here
    (redis-py's parser costs about 27,000 instructions per reply in
    Python); any other reply (an error, a RESP3 push...) is handed to that
    parser from its first line. Only with redis-py's own Python parser,
    idle (no buffered bytes), and no health checks (whose clock each read
    would move)."""
    writer = getattr(conn, "_writer", None) if bounded and conn.is_connected else None
    if writer is None:
        await conn.send_packed_command([packed])
        return await conn.read_response()
    try:
        writer.write(packed)
        if writer.transport.get_write_buffer_size():  # not all sent: wait as drain says
            await writer.drain()
    except OSError as exc:  # as send_packed_command: a retryable error
        await conn.disconnect(nowait=True)
        raise ConnectionError(f"Error while writing to socket: {exc}") from exc
    except BaseException:  # cancelled mid-write: the stream is unusable
        await conn.disconnect(nowait=True)
        raise
    parser = conn._parser
    if (
        not isinstance(parser, _PY_PARSER)
        or parser._buffer
        or parser._chunks
        or conn.health_check_interval
    ):
        return await conn.read_response(timeout=_NO_READ_TIMEOUT)
    reader = conn._reader
    try:
        line = await reader.readuntil(b"\r\n")
        if line[0] == 36:  # "$": a bulk string
            try:
                n = int(line[1:-2])
            except ValueError:
                n = -1  # the parser says what is wrong with it
            if n >= 0:
                data = await reader.readexactly(n + 2)
                return data[:-2]
    except asyncio.IncompleteReadError as exc:  # the server closed the connection
        await conn.disconnect(nowait=True)
        raise ConnectionError(SERVER_CLOSED_CONNECTION_ERROR) from exc
    except OSError as exc:
        await conn.disconnect(nowait=True)
        where = conn._host_error()
        raise ConnectionError(f"Error while reading from {where} : {exc.args}") from exc
    except BaseException:  # cancelled mid-read: the stream is unusable
        await conn.disconnect(nowait=True)
        raise
    parser._buffer = line  # the parser reads on from the line it starts with
    return await conn.read_response(timeout=_NO_READ_TIMEOUT)


async def _retried(conn: Any, packed: bytes, bounded: bool, first: Exception) -> Any:
    """The client's retry policy over a call whose first attempt failed with
    ``first``: the policy sees that failure as its own first (it disconnects
    and tries again, or raises it), as if it had made the attempt."""
    failures = [first]

    async def attempt() -> Any:
        if failures:
            raise failures.pop()
        return await _attempt(conn, packed, bounded)

    async def fail(error: BaseException) -> None:
        await conn.disconnect()

    return await conn.retry.call_with_retry(attempt, fail)
