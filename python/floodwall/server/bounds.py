"""The server's bounds on what one client can make it hold, and where each is applied.

- request body: at most :data:`MAX_BODY` bytes (413) — the ASGI app; read
  within :data:`BODY_TIMEOUT` seconds of its head (408, then closed) —
  :func:`guarded_protocol` (the app bounds the rest of a body that comes
  in several parts too);
- headers: at most :data:`MAX_HEADERS` fields and :data:`MAX_HEADER_BYTES`
  bytes (431) — the ASGI app; the HTTP parser (h11) bounds a head too, and
  at most MAX_HEADER_BYTES bytes (plus one read) received while a request
  head is incomplete, whatever the parser — :func:`guarded_protocol`;
- request head read time: a connection must deliver a whole request head
  within :data:`HEAD_TIMEOUT` seconds of its first byte (or of connecting),
  else it is closed (slowloris) — :func:`guarded_protocol`;
- concurrency: at most ``limit_concurrency`` connections and tasks per
  worker (503 beyond) — uvicorn;
- idle keep-alive connections closed after :data:`KEEP_ALIVE` seconds;
  a stopping worker closes what is still open after :data:`SHUTDOWN_TIMEOUT`.

Invariant: no client holds a worker's connection slot longer than
HEAD_TIMEOUT + BODY_TIMEOUT + the time to decide, before its response.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

__all__ = [
    "BODY_TIMEOUT",
    "HEAD_TIMEOUT",
    "KEEP_ALIVE",
    "SHUTDOWN_TIMEOUT",
    "MAX_BODY",
    "MAX_CONCURRENCY",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "guarded_protocol",
]

MAX_BODY = 64 * 1024
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024
BODY_TIMEOUT = 5.0
HEAD_TIMEOUT = 5.0
KEEP_ALIVE = 30
#: Seconds a stopping worker waits for open connections before closing them.
SHUTDOWN_TIMEOUT = 3
MAX_CONCURRENCY = 1024


_BODY_408 = b'{"error": "timeout", "message": "the body did not arrive in time"}'
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(_BODY_408)
) + _BODY_408


def guarded_protocol(
    base: type[Any], head_timeout: float = HEAD_TIMEOUT, body_timeout: float = BODY_TIMEOUT
) -> type[Any]:
    """A subclass of uvicorn's HTTP protocol ``base`` (h11 or httptools)
    that closes a connection whose request head does not arrive within
    ``head_timeout``, and answers 408 and closes when the body does not
    arrive within ``body_timeout`` of the head."""

    class Guarded(base):  # type: ignore[misc]
        _fw_timer: asyncio.TimerHandle | None = None
        _fw_in_body = False
        _fw_pending = 0

        def _fw_waiting(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is None or bool(cycle.response_complete)

        def _fw_reading_body(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is not None and not cycle.response_complete and bool(cycle.more_body)

        def _fw_arm(self, seconds: float, in_body: bool) -> None:
            if self._fw_timer is None:
                self._fw_in_body = in_body
                loop = asyncio.get_running_loop()
                self._fw_timer = loop.call_later(seconds, self._fw_expired)

        def _fw_disarm(self) -> None:
            if self._fw_timer is not None:
                self._fw_timer.cancel()
                self._fw_timer = None

        def _fw_expired(self) -> None:
            self._fw_timer = None
            if self.transport.is_closing():
                return
            if self._fw_in_body:
                if self._fw_reading_body():
                    self.transport.write(_TIMEOUT_408)
                    self.transport.close()
            elif self._fw_waiting():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            # a response's head and body may leave as two writes: without
            # TCP_NODELAY the second waits for the client's delayed ACK (~40 ms)
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._fw_arm(head_timeout, False)

        def data_received(self, data: bytes) -> None:
            if self._fw_waiting():
                self._fw_arm(head_timeout, False)
                self._fw_pending += len(data)
            super().data_received(data)
            if self._fw_waiting():
                if self._fw_pending > MAX_HEADER_BYTES and not self.transport.is_closing():
                    # whatever the parser's own bound, a head never grows past this
                    self.transport.close()
                return
            self._fw_pending = 0
            if self._fw_reading_body():
                if not self._fw_in_body:
                    self._fw_disarm()
                    self._fw_arm(body_timeout, True)
            else:
                self._fw_disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # idle now: uvicorn's keep-alive timer governs until the next byte
            self._fw_disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._fw_disarm()
            super().connection_lost(exc)

    Guarded.__name__ = f"Guarded{base.__name__}"
    return Guarded
