"""FastAPI, Starlette and any ASGI app.

A pure ASGI middleware (no BaseHTTPMiddleware: no extra task, no body
buffering), a FastAPI dependency usable with Depends(...), and a route
decorator, all sharing one Floodwall configuration object. Invariant: the
middleware never applies the default limit to a route that checks its own
limits (decorator or dependency), so no request is charged twice.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from floodwall.headers import PROBLEM_CONTENT_TYPE
from floodwall.integrations._common import (
    ENFORCED_ATTR,
    EXEMPT_ATTR,
    Guard,
    Limit,
    LimitInput,
    LimitSet,
    Outcome,
    check_key,
    check_options,
    check_rates,
    guard_option_names,
)
from floodwall.integrations.asgi_routes import _LATE_ATTR, _RouteIndex
from floodwall.integrations.asgi_routes import registered_in as registered_in

if TYPE_CHECKING:
    from floodwall import Decision

try:  # Starlette is optional: the middleware alone works on any ASGI app.
    from starlette.exceptions import HTTPException as _HTTPException
except ImportError:  # pragma: no cover - exercised only without starlette

    class _HTTPException(Exception):  # type: ignore[no-redef]
        def __init__(
            self, status_code: int, detail: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            super().__init__(status_code, detail)
            self.status_code = status_code
            self.detail = detail
            self.headers = headers


__all__ = [
    "ASGIView",
    "Floodwall",
    "FloodwallMiddleware",
    "RateLimitExceeded",
    "rate_limit_exceeded_handler",
    "wrap_endpoint",
]

_T = TypeVar("_T")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQ = "_floodwall_request"
_RESP = "_floodwall_response"
_counter = itertools.count(1)
#: Turned on once any endpoint or dependency is marked; until then the
#: middleware never looks up routes.
_MARKED = {"any": False}


def _with_named(rates: tuple[Any, ...], names: Sequence[str] | None) -> tuple[Any, ...]:
    """``rates`` and the named limits ``names`` (``limits=["login"]``)."""
    if names is None:
        return rates
    from floodwall.config import integration_limits

    return (*rates, *integration_limits(names))


def _mark(obj: Any, attr: str = ENFORCED_ATTR) -> None:
    setattr(obj, attr, True)
    _MARKED["any"] = True


class ASGIView:
    """RequestView over an ASGI scope (and a Starlette Request when there is one)."""

    __slots__ = ("_fields", "_headers", "_request", "scope")

    def __init__(self, scope: Scope, request: Any = None) -> None:
        self.scope = scope
        self._request = request
        self._headers: dict[str, str] | None = None
        self._fields: dict[str, list[str]] | None = None

    @property
    def peer(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    def header(self, name: str) -> str | None:
        headers = self._headers
        if headers is None:
            headers = {}
            for k, v in self.scope.get("headers") or ():
                ks = k.decode("latin-1").lower()
                vs = v.decode("latin-1")
                headers[ks] = headers[ks] + ", " + vs if ks in headers else vs
            self._headers = headers
        return headers.get(name)

    def header_values(self, name: str) -> list[str]:
        """Every field of a header, in the order received."""
        fields = self._fields
        if fields is None:
            fields = {}
            for k, v in self.scope.get("headers") or ():
                fields.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
            self._fields = fields
        return fields.get(name, [])

    @property
    def path(self) -> str:
        return str(self.scope.get("path", "/"))

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def user(self) -> str | None:
        user = self.scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        try:
            ident = user.identity
        except (AttributeError, NotImplementedError):
            ident = getattr(user, "display_name", None)
        return str(ident) if ident not in (None, "") else None

    @property
    def native(self) -> Any:
        if self._request is None:
            try:
                from starlette.requests import Request
            except ImportError:  # pragma: no cover
                return self.scope
            self._request = Request(self.scope)
        return self._request


class RateLimitExceeded(_HTTPException):
    """Raised by the FastAPI dependency on a denial: a 429 HTTPException
    carrying the rate headers. With :func:`rate_limit_exceeded_handler`
    installed (``Floodwall.init_app`` does it) the body is problem+json;
    without it FastAPI's default handler answers 429 ``{"detail": ...}``."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.decision: Decision | None = outcome.decision
        detail = (
            "No rate-limit key could be derived from this request."
            if outcome.missing_key
            else f"Too many requests: retry in {outcome.retry_after} seconds."
        )
        super().__init__(outcome.status(), detail, dict(outcome.header_pairs()) or None)


async def rate_limit_exceeded_handler(request: Any, exc: Exception) -> Any:
    """Starlette/FastAPI exception handler: problem+json for RateLimitExceeded."""
    from starlette.responses import Response

    assert isinstance(exc, RateLimitExceeded)
    outcome = exc.outcome
    return Response(
        outcome.body(instance=str(request.url.path)),
        status_code=outcome.status(),
        headers=dict(outcome.header_pairs()),
        media_type=PROBLEM_CONTENT_TYPE,
    )


# ------------------------------------------------------------------ configuration


class Floodwall(Guard):
    """Rate limiting for one ASGI app. All :class:`Guard` options, plus:

    ``on_limited``: ``handler(request, decision) -> Response`` (sync or
    async; any ASGI response object) answering denials instead of the
    problem+json 429; rate headers are added to it. ``sleep``: the async
    sleep used for leaky-bucket shaping (tests replace it).

    Use ``app.add_middleware(FloodwallMiddleware, floodwall=fw)`` or
    ``fw.init_app(app)``; per route, ``@fw.limit(...)`` or
    ``Depends(fw.depends(...))``; ``@fw.exempt`` to skip a route.
    """

    def __init__(
        self,
        default: LimitInput | None = None,
        *,
        on_limited: Callable[[Any, Decision | None], Any] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        **options: Any,
    ) -> None:
        check_options(options, guard_option_names(), "Floodwall")
        from floodwall.config.frameworks import framework_options

        options = framework_options(options, None, "floodwall.toml")
        if default is None:
            default = options.pop("default", None)
        options.pop("default", None)
        super().__init__(default, **options)
        self.on_limited = on_limited
        self.sleep: Callable[[float], Awaitable[Any]] = sleep or asyncio.sleep
        self.routes_index = _RouteIndex()

    def init_app(self, app: Any) -> Any:
        """Add the middleware and the problem+json exception handler to a
        Starlette/FastAPI app (before it starts)."""
        app.add_middleware(FloodwallMiddleware, floodwall=self)
        app.add_exception_handler(RateLimitExceeded, rate_limit_exceeded_handler)
        return app

    def exempt(self, fn: _T) -> _T:
        """Route decorator: never limit this endpoint (put it under ``@app.get``)."""
        _mark(fn, EXEMPT_ATTR)
        return fn

    def _route_set(
        self,
        rates: Sequence[LimitInput],
        scope: str,
        key: Any,
        cost: int | Callable[[Any], int] | None,
        name: str | None,
        algorithm: str | None,
        burst: int | None,
    ) -> LimitSet:
        specs: list[LimitInput] = []
        for r in rates:
            if isinstance(r, Limit):
                specs.append(r)
            else:
                specs.append(Limit(r, key=key, name=name, algorithm=algorithm, burst=burst))
        return self.limit_set(specs, scope=name or scope, cost=cost)

    def limit(
        self,
        *rates: LimitInput,
        key: Any = None,
        cost: int | Callable[[Any], int] | None = None,
        name: str | None = None,
        algorithm: str | None = None,
        burst: int | None = None,
        limits: Sequence[str] | None = None,
    ) -> Callable[[_T], _T]:
        """Route decorator: this endpoint's own limits (replacing the default).
        ``limits=["login"]``: named limits of the configuration.

        Works on FastAPI endpoints (sync or async, with or without a
        ``request: Request`` parameter) and Starlette endpoints. Put it
        *under* ``@app.get(...)``. Several rates are decided all-or-nothing.
        """
        rates = _with_named(rates, limits)
        check_rates(rates, "@fw.limit('5/minute') under @app.get(...)")
        check_key(key)

        def decorate(fn: Any) -> Any:
            scope = f"route:{fn.__module__}.{fn.__qualname__}"
            limits = self._route_set(rates, scope, key, cost, name, algorithm, burst)
            wrapped = wrap_endpoint(fn, self, limits, on_limited=self.on_limited, sleep=self.sleep)
            # Placed above @app.get, the router keeps ``fn`` itself: the
            # middleware finds these limits on it and checks them instead.
            setattr(fn, _LATE_ATTR, limits)
            return wrapped

        return decorate

    def depends(
        self,
        *rates: LimitInput,
        key: Any = None,
        cost: int | Callable[[Any], int] | None = None,
        name: str | None = None,
        algorithm: str | None = None,
        burst: int | None = None,
        limits: Sequence[str] | None = None,
    ) -> Callable[..., Awaitable[Decision | None]]:
        """A FastAPI dependency: ``Depends(fw.depends("5/minute"))``, in a
        route's parameters or ``dependencies=[...]``. One dependency object is
        one bucket per client (reuse it on several routes to share it).
        Denials raise :class:`RateLimitExceeded`; allowed requests get the
        rate headers; the dependency's value is the Decision."""
        from starlette.requests import Request
        from starlette.responses import Response

        rates = _with_named(rates, limits)
        if rates:
            check_rates(rates, "Depends(fw.depends('5/minute'))")
        check_key(key)
        scope = f"dep#{next(_counter)}"
        limit_set = (
            self._route_set(rates, scope, key, cost, name, algorithm, burst)
            if rates
            else self.default
        )
        if limit_set is None:
            raise ValueError("depends() needs a rate, or a Floodwall with a default limit")
        guard = self
        sleep = self.sleep

        async def floodwall_dependency(request: Any, response: Any) -> Decision | None:
            outcome = await guard.acheck(limit_set, ASGIView(request.scope, request))
            if outcome is None:
                return None
            if not outcome.allowed:
                raise RateLimitExceeded(outcome)
            await guard.await_delay(outcome, sleep)
            for k, v in outcome.header_pairs():
                response.headers[k] = v
            return outcome.decision

        floodwall_dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(
                    "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
                ),
                inspect.Parameter(
                    "response", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Response
                ),
            ]
        )
        _mark(floodwall_dependency)
        return floodwall_dependency


# ------------------------------------------------------------------ middleware


class FloodwallMiddleware:
    """Pure ASGI middleware: ``app.add_middleware(FloodwallMiddleware, floodwall=fw)``,
    or around any ASGI app: ``FloodwallMiddleware(app, Floodwall("100/minute"))``.

    Per HTTP request: exempt paths pass; a matching ``routes`` pattern, else
    (unless the endpoint checks its own limits) the default limit, is checked;
    a denial is answered here with 429 (problem+json, or ``on_limited``);
    shaping delays are slept with an async sleep; allowed responses get the
    rate headers. Lifespan and websocket scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, floodwall: Floodwall) -> None:
        if not isinstance(floodwall, Floodwall):
            raise TypeError(
                "FloodwallMiddleware needs floodwall=Floodwall(...) "
                f"(got {type(floodwall).__name__})"
            )
        self.app = app
        self.fw = floodwall

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Per request: the tests that pass a request through come first and
        # cost a few attribute reads; a check on an in-process store is a
        # plain call, on a network store exactly one await (the store's).
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fw = self.fw
        if not fw.enabled:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path = scope["path"]
        if fw._has_exempt and fw.is_exempt(method, path):
            await self.app(scope, receive, send)
            return
        limits = fw.route_limits(method, path) if fw._route_sets else None
        if limits is None:
            if _MARKED["any"]:
                state = fw.routes_index.state(scope, self.app)
                if isinstance(state, LimitSet):
                    limits = state
                elif state:
                    await self.app(scope, receive, send)
                    return
            if limits is None:
                limits = fw.default
            if limits is None:
                await self.app(scope, receive, send)
                return
        if limits.local:
            outcome = fw._decide(limits, ASGIView(scope))
        else:
            outcome = await fw._adecide(limits, ASGIView(scope))
        if outcome is None:
            await self.app(scope, receive, send)
            return
        if not outcome.allowed:
            await self._deny(outcome, scope, receive, send)
            return
        if outcome.held:  # an admitted delay always holds its wait (Guard._hold)
            await fw.await_delay(outcome, fw.sleep)
        extra = outcome.raw_header_pairs()
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _deny(self, outcome: Outcome, scope: Scope, receive: Receive, send: Send) -> None:
        extra = outcome.raw_header_pairs()
        handler = self.fw.on_limited
        if handler is not None and not outcome.missing_key:
            response = handler(ASGIView(scope).native, outcome.decision)
            if inspect.isawaitable(response):
                response = await response

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), *extra]
                await send(message)

            await response(scope, receive, send_with_headers)
            return
        body = outcome.body(instance=scope.get("path"))
        headers = [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", b"%d" % len(body)),
            *extra,
        ]
        await send({"type": "http.response.start", "status": outcome.status(), "headers": headers})
        await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------ endpoint wrapping


def _typed_signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:
        return inspect.signature(fn)


def _find_param(sig: inspect.Signature, cls: type) -> str | None:
    for p in sig.parameters.values():
        ann = p.annotation
        if isinstance(ann, type) and issubclass(ann, cls):
            return p.name
    return None


def _with_params(sig: inspect.Signature, extra: list[inspect.Parameter]) -> inspect.Signature:
    params = list(sig.parameters.values())
    at = len(params)
    for i, p in enumerate(params):
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            at = i
            break
    return sig.replace(parameters=[*params[:at], *extra, *params[at:]])


def wrap_endpoint(
    fn: Callable[..., Any],
    guard: Guard,
    limits: LimitSet | Callable[[], LimitSet],
    *,
    on_limited: Callable[[Any, Decision | None], Any] | None = None,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> Callable[..., Any]:
    """Wrap a FastAPI/Starlette endpoint so it checks ``limits`` itself.

    The wrapper keeps the endpoint's kind (async stays async, sync stays sync
    and so still runs in FastAPI's threadpool) and its signature, plus hidden
    ``Request``/``Response`` parameters when the endpoint has none, so FastAPI
    injects them. Denials return a 429 Response (problem+json or
    ``on_limited``'s); allowed responses get the rate headers.
    """
    from starlette.requests import Request
    from starlette.responses import Response

    asleep = sleep or asyncio.sleep
    get_limits: Callable[[], LimitSet] = limits if callable(limits) else (lambda: limits)
    sig = _typed_signature(fn)
    req_name = _find_param(sig, Request)
    resp_name = _find_param(sig, Response)
    extra: list[inspect.Parameter] = []
    if req_name is None:
        extra.append(inspect.Parameter(_REQ, inspect.Parameter.KEYWORD_ONLY, annotation=Request))
    if resp_name is None:
        extra.append(inspect.Parameter(_RESP, inspect.Parameter.KEYWORD_ONLY, annotation=Response))
    new_sig = _with_params(sig, extra)

    def split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        request = kwargs.pop(_REQ, None) if req_name is None else kwargs.get(req_name)
        response = kwargs.pop(_RESP, None) if resp_name is None else kwargs.get(resp_name)
        if request is None:
            for a in itertools.chain(args, kwargs.values()):
                if isinstance(a, Request):
                    request = a
                    break
        if request is None:
            raise TypeError(
                f"floodwall: {fn.__qualname__} was called without a Request; "
                "is it registered as a FastAPI/Starlette endpoint?"
            )
        return request, response

    def denial(request: Any, outcome: Outcome) -> Any:
        if on_limited is not None and not outcome.missing_key:
            return on_limited, None
        return None, Response(
            outcome.body(instance=str(request.url.path)),
            status_code=outcome.status(),
            headers=dict(outcome.header_pairs()),
            media_type=PROBLEM_CONTENT_TYPE,
        )

    def finish(result: Any, response: Any, outcome: Outcome) -> Any:
        pairs = outcome.header_pairs()
        if pairs:
            target = result if isinstance(result, Response) else response
            if target is not None:
                for k, v in pairs:
                    target.headers[k] = v
        return result

    wrapper: Any
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            request, response = split(args, kwargs)
            outcome = await guard.acheck(get_limits(), ASGIView(request.scope, request))
            if outcome is None:
                return await fn(*args, **kwargs)
            if not outcome.allowed:
                handler, resp = denial(request, outcome)
                if handler is None:
                    return resp
                result = handler(request, outcome.decision)
                if inspect.isawaitable(result):
                    result = await result
                return finish(result, None, outcome)
            await guard.await_delay(outcome, asleep)
            return finish(await fn(*args, **kwargs), response, outcome)

        wrapper = async_wrapper
    else:

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            request, response = split(args, kwargs)
            outcome = guard.check(get_limits(), ASGIView(request.scope, request))
            if outcome is None:
                return fn(*args, **kwargs)
            if not outcome.allowed:
                handler, resp = denial(request, outcome)
                if handler is None:
                    return resp
                return finish(handler(request, outcome.decision), None, outcome)
            guard.wait(outcome, time.sleep)
            return finish(fn(*args, **kwargs), response, outcome)

        wrapper = sync_wrapper
    wrapper.__signature__ = new_sig
    _mark(wrapper)
    result: Callable[..., Any] = wrapper
    return result
