"""The HTTP/JSON front end: a plain ASGI app routing :data:`~floodwall.server.openapi.ENDPOINTS`.

Each request is checked in this order: header count and size (431), token (401),
route (404/405), body size and read time (413/408), JSON (400), then the
:class:`~floodwall.server.service.Service` decides. Every decision is a 200
(a denial is an answer, not an error); every refusal is a JSON body
``{"error": code, "message": text}``. The app owns its worker's Service and,
when asked, the worker's RESP listener (started in the ASGI lifespan).
Invariant: nothing the client sends is read beyond the bounds of
:mod:`floodwall.server.bounds`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from floodwall._native import Decision
from floodwall._native import decision_answer as _decision_answer
from floodwall._version import __version__
from floodwall.server import bounds
from floodwall.server.auth import Authenticator
from floodwall.server.openapi import ENDPOINTS, document
from floodwall.server.service import BadRequest, Service

__all__ = ["SETTINGS_ENV", "ServerApp", "create_app"]

#: The variable that carries the settings from ``floodwall serve`` to its
#: workers (JSON; never the token itself, only where to read it).
SETTINGS_ENV = "FLOODWALL_SERVE_SETTINGS"

logger = logging.getLogger("floodwall.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_ROUTES = {(ep.method, ep.path): ep.handler for ep in ENDPOINTS}
_PATHS = {ep.path for ep in ENDPOINTS}
_LIMIT_PREFIX = "/v1/limits/"


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or []


class ServerApp:
    """The ASGI application of one worker."""

    def __init__(
        self,
        service_factory: Callable[[], Service],
        auth: Authenticator,
        *,
        resp: dict[str, Any] | None = None,
        max_body: int = bounds.MAX_BODY,
        body_timeout: float = bounds.BODY_TIMEOUT,
        max_headers: int = bounds.MAX_HEADERS,
    ) -> None:
        self._factory = service_factory
        self.service: Service | None = None
        self.auth = auth
        self.resp_options = resp
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.max_headers = max_headers
        self.counts = {"requests": 0, "refused": 0, "allowed": 0, "denied": 0}
        self._resp_server: asyncio.AbstractServer | None = None
        self._openapi = json.dumps(document()).encode()
        self._inline = False
        self._health = b""

    def _service(self) -> Service:
        if self.service is None:
            service = self._factory()
            # decided on the event loop: a store that never waits, or the
            # test clock (one request's now_ns must not meet another's)
            self._inline = bool(service.store.capabilities.inline or service.settings.test_clock)
            self._health = json.dumps(_health(service), separators=(",", ":")).encode()
            self.service = service
        return self.service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # -- lifespan: open the store, start the RESP port

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    service = self._service()
                    if self.resp_options:
                        from floodwall.server.resp import start_resp

                        self._resp_server = await start_resp(service, self.auth,
                                                             **self.resp_options)
                except Exception as exc:
                    logger.error("floodwall serve: cannot start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._resp_server is not None:
                    self._resp_server.close()
                if self.service is not None:
                    self.service.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- HTTP

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.counts["requests"] += 1
        try:
            status, body, headers = await self._answer(scope, receive)
        except _Refused as exc:
            self.counts["refused"] += 1
            status = exc.status
            body = json.dumps({"error": exc.code, "message": str(exc)}).encode()
            headers = list(_JSON) + exc.headers
            if status == 401:
                headers.append((b"www-authenticate", b'Bearer realm="floodwall"'))
            if status in (408, 413, 431):
                headers.append((b"connection", b"close"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        raw_headers = scope.get("headers") or []
        if len(raw_headers) > self.max_headers:
            raise _Refused(431, "too_many_headers",
                           f"more than {self.max_headers} header fields")
        # one pass: the size, the token, the declared length
        size = 0
        authorization = None
        length = None
        repeated = False
        for name, value in raw_headers:
            size += len(name) + len(value)
            if name == b"authorization":
                repeated = authorization is not None
                authorization = value
            elif name == b"content-length":
                length = value
        if size > bounds.MAX_HEADER_BYTES:
            raise _Refused(431, "headers_too_large",
                           f"the header fields exceed {bounds.MAX_HEADER_BYTES} bytes")
        if repeated:
            raise _Refused(400, "bad_request", "more than one Authorization header")
        if not self.auth.check_header(authorization):
            raise _Refused(401, "unauthorized",
                           "a valid 'Authorization: Bearer <token>' header is required")
        method, path = scope["method"], scope["path"]
        handler, name = self._route(method, path)
        body: Any = None
        if method == "POST":
            if length is not None:
                self._declared(length)
            # the first part waits under the protocol's body deadline; the
            # usual body is all in it (no further receive, no coroutine)
            message = await receive()
            data = message.get("body", b"")
            if (message.get("more_body") or message["type"] != "http.request"
                    or len(data) > self.max_body):
                data = await self._rest(receive, message)
            body = parse_json(data)
        service = self.service or self._service()
        if self._inline and (handler == "check" or handler == "status"):
            # the hot path: decided on the loop, formatted straight from the decision
            try:
                d, rates = service.decide(body, consume=handler == "check")
            except BadRequest as exc:
                raise _Refused(exc.status, exc.code, str(exc)) from None
            self.counts["allowed" if d.allowed else "denied"] += 1
            return 200, decision_answer(d, rates), list(_JSON)
        if handler == "health":  # constant: the store is not asked
            return 200, self._health, list(_JSON)
        if handler == "metrics":
            return 200, self._metrics(service).encode(), [
                (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
        if handler == "openapi":
            return 200, self._openapi, list(_JSON)
        try:
            if self._inline:
                result = self._dispatch(service, handler, body, name, scope)
            else:  # a store that waits (file:// sync, a network store): off the loop
                result = await asyncio.to_thread(
                    self._dispatch, service, handler, body, name, scope
                )
        except BadRequest as exc:
            raise _Refused(exc.status, exc.code, str(exc)) from None
        decision = result.get("decision")
        if decision is not None:
            self.counts["allowed" if decision["allowed"] else "denied"] += 1
        return 200, json.dumps(result, separators=(",", ":")).encode(), list(_JSON)

    def _route(self, method: str, path: str) -> tuple[str, str | None]:
        handler = _ROUTES.get((method, path))
        if handler is not None:
            return handler, None
        if path.startswith(_LIMIT_PREFIX) and len(path) > len(_LIMIT_PREFIX):
            name = path[len(_LIMIT_PREFIX):]
            if method == "GET":
                return "limit_status", name
            raise self._not_allowed(method, path, "/v1/limits/{name}")
        if path in _PATHS:
            raise self._not_allowed(method, path, path)
        raise _Refused(404, "not_found", f"no endpoint {path[:100]!r}; see /openapi.json")

    @staticmethod
    def _not_allowed(method: str, path: str, template: str) -> _Refused:
        allowed = ", ".join(sorted(ep.method for ep in ENDPOINTS if ep.path == template))
        return _Refused(405, "method_not_allowed",
                        f"{method[:20]} is not allowed on {path[:100]}; allowed: {allowed}",
                        [(b"allow", allowed.encode())])

    def _chunk(self, message: dict[str, Any], size: int) -> bytes:
        if message["type"] == "http.disconnect":
            raise _Refused(400, "bad_request", "the client went away")
        chunk: bytes = message.get("body", b"")
        if size + len(chunk) > self.max_body:
            raise _Refused(413, "too_large", f"the body is larger than {self.max_body} bytes")
        return chunk

    def _declared(self, length: bytes) -> None:
        """Refuse a declared Content-Length beyond the bound before reading."""
        try:
            declared = int(length)
        except ValueError:
            raise _Refused(400, "bad_request", "Content-Length is not a number") from None
        if declared > self.max_body:
            raise _Refused(413, "too_large", f"the body is larger than {self.max_body} bytes")

    async def _rest(self, receive: Receive, message: dict[str, Any]) -> bytes:
        """The body whose first part is ``message`` when that part is not all
        of it (or is refused): the rest read within the body deadline and
        bounded as a whole."""
        data = self._chunk(message, 0)  # refuses, saying why, if it must
        if not message.get("more_body"):
            return data
        chunks = [data]
        size = len(data)
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    chunk = self._chunk(message, size)
                    size += len(chunk)
                    chunks.append(chunk)
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            raise _Refused(408, "timeout",
                           f"the body did not arrive within {self.body_timeout}s") from None
        return b"".join(chunks)

    def _dispatch(
        self, service: Service, handler: str, body: Any, name: str | None, scope: Scope
    ) -> dict[str, Any]:
        if handler == "health":
            return _health(service)
        if handler == "limits":
            return {"limits": service.describe()}
        if handler == "limit_status":
            assert name is not None
            return self._limit_status(service, name, scope)
        if handler == "check":
            return service.check(body)
        if handler == "status":
            return service.check(body, consume=False)
        if handler == "check_all":
            return service.check_all(body)
        if handler == "reset":
            return service.reset(body)
        if handler == "doctor":
            return service.doctor()
        if handler == "stats":
            return service.stats_request(body)
        if handler == "clear":
            return service.clear(body)
        raise AssertionError(f"no handler {handler}")  # pragma: no cover

    def _limit_status(self, service: Service, name: str, scope: Scope) -> dict[str, Any]:
        from urllib.parse import parse_qs, unquote

        name = unquote(name)
        entry = next((d for d in service.describe() if d["name"] == name), None)
        if entry is None:
            known = ", ".join(sorted(service.named)) or "none"
            raise BadRequest(f"no limit named {name[:100]!r}; known: {known}",
                             "unknown_limit", 404)
        out: dict[str, Any] = {"limit": entry}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        keys = query.get("key")
        if keys:
            out.update(service.check({"limit": name, "key": keys[0]}, consume=False))
        return out

    def _metrics(self, service: Service) -> str:
        """The table's counters (shared by every worker) and this worker's
        request counts, in Prometheus text format."""
        lines = []
        pid = os.getpid()
        for key, value in sorted(service.stats()["stats"].items()):
            name = f"floodwall_store_{key}"
            lines += [f"# TYPE {name} gauge", f"{name} {int(value)}"]
        for key, value in sorted(self.counts.items()):
            name = f"floodwall_server_{key}_total"
            lines += [f"# TYPE {name} counter", f'{name}{{worker="{pid}"}} {value}']
        return "\n".join(lines) + "\n"


#: json's own scanner (C), as ``json.loads`` uses it (not in the typeshed stubs)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def parse_json(data: bytes) -> Any:
    """A request body as JSON: ``{}`` when empty or blank; a 400 when not JSON.

    The same result as ``json.loads(data)``: a body that starts ``{`` and a
    byte other than NUL is UTF-8 by json's own detection, so it is decoded
    and scanned directly (the common case; what may follow the value is
    json's whitespace, as for ``json.loads``); anything else goes through
    ``json.loads``.
    """
    if not data or data.isspace():
        return {}
    try:
        if data[0] == 0x7B and len(data) > 1 and data[1]:
            text = data.decode("utf-8", "surrogatepass")
            try:
                value, end = _SCAN(text, 0)
            except StopIteration:
                raise ValueError("no value") from None
            if end != len(text) and text[end:].strip(" \t\n\r"):
                raise ValueError("extra data after the value")
            return value
        return json.loads(data)
    except (ValueError, RecursionError):
        raise _Refused(400, "bad_json", "the body is not valid JSON") from None


def _health(service: Service) -> dict[str, Any]:
    """The answer of ``/v1/health`` (the same for the worker's whole life)."""
    return {"status": "ok", "version": __version__, "store": service.store.capabilities.kind}


#: The JSON text of each rate answered, by identity (the entry holds the
#: rate, so its id is not reused while it is here).
_RATE_JSON: dict[int, tuple[Any, str]] = {}


def _rate_json(rate: Any) -> str:
    entry = _RATE_JSON.get(id(rate))
    if entry is not None and entry[0] is rate:
        return entry[1]
    text = "null" if rate is None else json.dumps(str(rate))
    if len(_RATE_JSON) > 4096:
        _RATE_JSON.clear()
    _RATE_JSON[id(rate)] = (rate, text)
    return text


def decision_answer(d: Decision, rates: Sequence[Any]) -> bytes:
    """``{"decision": ...}`` formatted straight from the Decision (the hot
    answer): the JSON of :func:`~floodwall.server.service.decision_json`,
    which a test compares it with. The engine writes the text (its seconds
    read back as the same doubles, see ``python/ext/decision_json.c``); the
    rate's JSON and index are found here."""
    rate = d.rate
    if rates and rates[0] is rate:
        index: int | None = 0
    else:
        index = None
        for i, r in enumerate(rates):
            if r is rate or r == rate:
                index = i
                break
    entry = _RATE_JSON.get(id(rate))
    rate_text = entry[1] if entry is not None and entry[0] is rate else _rate_json(rate)
    return _decision_answer(d, rate_text, index)


def create_app() -> ServerApp:
    """The app of one worker, from the settings ``floodwall serve`` put in
    :data:`SETTINGS_ENV` (uvicorn calls this in every worker)."""
    from floodwall.server.main import ServeOptions

    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: start the server with `floodwall serve`")
    options = ServeOptions.from_json(raw)
    return options.app()
