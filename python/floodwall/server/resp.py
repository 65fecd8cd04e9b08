"""The RESP front end: ``CL.THROTTLE`` as redis-cell answers it, and floodwall's own command.

Commands (any case): ``CL.THROTTLE key max_burst count period [quantity]``
replies ``[limited, limit, remaining, retry_after, reset_after]`` with
``limit = max_burst + 1``, a GCRA of ``count`` per ``period`` seconds,
``retry_after`` -1 when allowed, and both times in whole seconds rounded
up; ``quantity`` 0 peeks. ``FW.CHECK name key [cost]`` answers the same
shape for a named limit of the configuration. Also ``PING``, ``ECHO``,
``QUIT``, ``AUTH token`` (required first when the server has a token),
``COMMAND`` (minimal) and the handshakes of common clients (``HELLO 2|3``
with its ``AUTH``, ``CLIENT``, ``SELECT 0``): every other reply is the same
in RESP2 and RESP3.

Bounds: at most :data:`MAX_ARGS` arguments of at most :data:`MAX_ARG_BYTES`
bytes each, :data:`MAX_CONNECTIONS` connections per worker, and a command
must arrive within :data:`COMMAND_TIMEOUT` seconds (idle connections are
closed after :data:`IDLE_TIMEOUT`). Invariant: a malformed frame gets an
error reply and the connection is closed; it never reaches the engine.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from floodwall.errors import CostError, StoreError
from floodwall.rates import Rate
from floodwall.server.auth import Authenticator
from floodwall.server.service import BadRequest, Service

__all__ = ["MAX_ARGS", "MAX_ARG_BYTES", "start_resp", "throttle_reply"]

MAX_ARGS = 16
MAX_ARG_BYTES = 4096
MAX_CONNECTIONS = 1024
COMMAND_TIMEOUT = 5.0
IDLE_TIMEOUT = 300.0
_NS = 1_000_000_000
_INT64_MAX = 2**63 - 1
#: The namespace of CL.THROTTLE keys (apart from named and inline limits).
CELL_NAMESPACE = "cl.throttle"
#: CL.THROTTLE limits kept by their spelling, per worker.
CELL_CACHE = 4096


class _ProtocolError(Exception):
    pass


def _ceil_s(ns: int) -> int:
    return -(-ns // _NS)


def throttle_reply(allowed: bool, limit: int, remaining: int, retry_ns: int,
                   reset_ns: int) -> list[int]:
    """redis-cell's five integers for a decision."""
    return [
        0 if allowed else 1,
        limit,
        remaining,
        -1 if allowed else _ceil_s(retry_ns),
        _ceil_s(reset_ns),
    ]


def _encode(value: Any) -> bytes:
    if isinstance(value, bool):
        return b":%d\r\n" % int(value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(_encode(v) for v in value)
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if value is None:
        return b"$-1\r\n"
    raise TypeError(type(value).__name__)  # pragma: no cover


def _simple(text: str) -> bytes:
    return b"+" + text.encode() + b"\r\n"


def _error(text: str) -> bytes:
    clean = text.replace("\r", " ").replace("\n", " ")
    if not clean.split(" ", 1)[0].isupper():
        clean = "ERR " + clean
    return b"-" + clean.encode("utf-8", "replace") + b"\r\n"


def _int_arg(raw: bytes, name: str, low: int, high: int = _INT64_MAX) -> int:
    try:
        text = raw.decode("ascii")
        if not text.lstrip("-").isdigit():
            raise ValueError
        value = int(text)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


class _Connection:
    def __init__(self, service: Service, auth: Authenticator,
                 cells: dict[tuple[bytes, ...], Any]) -> None:
        self.service = service
        self.auth = auth
        self.cells = cells
        self.authed = not auth.enabled
        self.proto = 2

    async def read_command(self, reader: asyncio.StreamReader) -> list[bytes] | None:
        line = await reader.readline()
        if not line:
            return None
        if not line.endswith(b"\r\n"):
            raise _ProtocolError("Protocol error: line too long or unterminated")
        if line[:1] != b"*":  # an inline command (redis-cli and telnet may send them)
            parts = line.strip().split()
            if len(parts) > MAX_ARGS:
                raise _ProtocolError("Protocol error: too many arguments")
            return parts
        count = self._length(line, "multibulk", MAX_ARGS)
        args = []
        async with asyncio.timeout(COMMAND_TIMEOUT):
            for _ in range(count):
                head = await reader.readline()
                if head[:1] != b"$":
                    raise _ProtocolError("Protocol error: expected '$'")
                size = self._length(head, "bulk", MAX_ARG_BYTES)
                data = await reader.readexactly(size + 2)
                if data[-2:] != b"\r\n":
                    raise _ProtocolError("Protocol error: bad bulk string end")
                args.append(data[:-2])
        return args

    @staticmethod
    def _length(line: bytes, what: str, high: int) -> int:
        try:
            n = int(line[1:].strip())
        except ValueError:
            raise _ProtocolError(f"Protocol error: invalid {what} length") from None
        if not 0 <= n <= high:
            raise _ProtocolError(f"Protocol error: {what} length {n} out of 0..{high}")
        return n

    def execute(self, args: list[bytes]) -> tuple[bytes, bool]:
        """The reply, and whether to close the connection after it."""
        if not args:
            return b"", False
        name = args[0].upper()
        if name == b"QUIT":
            return _simple("OK"), True
        if name == b"AUTH":
            if len(args) not in (2, 3):
                return _error("wrong number of arguments for 'auth' command"), False
            if self.auth.enabled and self.auth.check_token(args[-1]):
                self.authed = True
                return _simple("OK"), False
            return _error("WRONGPASS invalid token"), False
        if name == b"HELLO":
            return self.hello(args), False
        if not self.authed:
            return _error("NOAUTH Authentication required."), False
        try:
            if name == b"CL.THROTTLE":
                return _encode(self.throttle(args)), False
            if name == b"FW.CHECK":
                return _encode(self.named(args)), False
        except BadRequest as exc:
            return _error(str(exc)), False
        if name == b"PING":
            return (_simple("PONG") if len(args) == 1 else _encode(args[1])), False
        if name == b"ECHO" and len(args) == 2:
            return _encode(args[1]), False
        if name == b"COMMAND":
            return _encode([]), False
        if name == b"CLIENT" or (name == b"SELECT" and args[1:] == [b"0"]):
            return _simple("OK"), False
        if name == b"CONFIG":
            return _encode([]), False
        shown = args[0][:40].decode("utf-8", "replace")
        return _error(f"unknown command '{shown}'"), False

    def hello(self, args: list[bytes]) -> bytes:
        """``HELLO [2|3] [AUTH user token] [SETNAME name]``: every reply of
        this server is the same in RESP2 and RESP3 except HELLO's own."""
        proto = self.proto
        if len(args) > 1:
            if args[1] not in (b"2", b"3"):
                return _error("NOPROTO unsupported protocol version")
            proto = int(args[1])
        rest = args[2:]
        while rest:
            word = rest[0].upper()
            if word == b"AUTH" and len(rest) >= 3:
                if not (self.auth.enabled and self.auth.check_token(rest[2])):
                    return _error("WRONGPASS invalid token")
                self.authed = True
                rest = rest[3:]
            elif word == b"SETNAME" and len(rest) >= 2:
                rest = rest[2:]
            else:
                return _error("syntax error in HELLO")
        if not self.authed:
            return _error("NOAUTH HELLO must be called with the client already "
                          "authenticated, or with HELLO <proto> AUTH <user> <token>")
        self.proto = proto
        from floodwall._version import __version__

        fields: list[tuple[bytes, Any]] = [
            (b"server", b"floodwall"), (b"version", __version__.encode()),
            (b"proto", proto), (b"id", 1), (b"mode", b"standalone"),
            (b"role", b"master"), (b"modules", []),
        ]
        if proto == 3:
            return b"%%%d\r\n" % len(fields) + b"".join(
                _encode(k) + _encode(v) for k, v in fields)
        return _encode([x for pair in fields for x in pair])

    def throttle(self, args: list[bytes]) -> list[int]:
        if len(args) not in (5, 6):
            raise BadRequest("wrong number of arguments for 'cl.throttle' command")
        key = args[1].decode("utf-8", "surrogateescape")
        spelled = (args[2], args[3], args[4])
        limiter = self.cells.get(spelled)
        if limiter is None:  # parsed and checked once per spelling
            burst = _int_arg(args[2], "max_burst", 0, _INT64_MAX - 1)
            count = _int_arg(args[3], "count per period", 1)
            period = _int_arg(args[4], "period", 1, _INT64_MAX // _NS)
            limiter = self._cell(burst + 1, count, period)
            if len(self.cells) >= CELL_CACHE:
                self.cells.clear()
            self.cells[spelled] = limiter
        quantity = _int_arg(args[5], "quantity", 0) if len(args) == 6 else 1
        self.service.set_now({})  # RESP never sets the test clock: the real time
        return self._decide(limiter, key, quantity)

    def named(self, args: list[bytes]) -> list[int]:
        if len(args) not in (3, 4):
            raise BadRequest("wrong number of arguments for 'fw.check' command")
        name = args[1].decode("utf-8", "replace")
        limiter = self.service.limiter_for({"limit": name})
        cost = _int_arg(args[3], "cost", 0) if len(args) == 4 else 1
        self.service.set_now({})
        return self._decide(limiter, args[2].decode("utf-8", "surrogateescape"), cost)

    def _cell(self, limit: int, count: int, period: int) -> Any:
        try:
            rate = Rate.from_ns(count, period * _NS, limit)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return self.service.limiter_for(
            {"rate": [{"amount": rate.amount, "period_ns": rate.period_ns,
                       "burst": rate.burst}],
             "algorithm": "gcra", "namespace": CELL_NAMESPACE}
        )

    @staticmethod
    def _decide(limiter: Any, key: str, cost: int) -> list[int]:
        try:
            d = limiter.check(key, cost)
        except CostError as exc:
            raise BadRequest(str(exc)) from None
        except StoreError as exc:
            raise BadRequest(f"store could not decide: {exc}") from None
        if d.fallback:
            raise BadRequest("store could not decide")
        return throttle_reply(d.allowed, d.limit, d.remaining, d.retry_after_ns,
                              d.reset_after_ns)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(IDLE_TIMEOUT):
                        args = await self.read_command(reader)
                except _ProtocolError as exc:
                    writer.write(_error(str(exc)))
                    await writer.drain()
                    return
                if args is None:
                    return
                reply, close = self.execute(args)
                writer.write(reply)
                # pipelined commands are answered in one write
                if (
                    not close
                    and reader._buffer  # type: ignore[attr-defined]
                    and writer.transport.get_write_buffer_size() < 65536
                ):
                    continue
                await writer.drain()
                if close:
                    return
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        finally:
            writer.close()


async def start_resp(
    service: Service, auth: Authenticator, *, host: str, port: int,
    ssl: Any = None,
) -> asyncio.AbstractServer:
    """Listen for RESP on (host, port); every worker binds it (SO_REUSEPORT),
    so the kernel spreads connections across workers."""
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    cells: dict[tuple[bytes, ...], Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            writer.write(_error("ERR max number of clients reached"))
            writer.close()
            return
        async with slots:
            await _Connection(service, auth, cells).serve(reader, writer)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return await asyncio.start_server(
        handle, host, port, reuse_port=True, family=family, ssl=ssl,
        limit=MAX_ARG_BYTES + 64,
    )
