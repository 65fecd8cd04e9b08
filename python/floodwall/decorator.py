"""@floodwall.rate_limit, one decorator for every framework.

It works on a Flask view, a FastAPI/Starlette endpoint (sync or async, with
or without a `request` parameter) and a Django view (function or class,
sync or async): which one is decided per call from the arguments the
framework passes, and the 429 is answered the framework's way. Named limits
come from a small registry that the configuration file will fill.
Invariant: importing this module imports no framework.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from floodwall.algorithms import DEFAULT_ALGORITHM

# The named-limit registry lives in floodwall.config; these names stay
# importable from here.
from floodwall.config.registry import (
    lookup_named_limit,
    named_limit,
    named_limits,
    register_named_limit,
    unregister_named_limit,
)
from floodwall.errors import ConfigError

if TYPE_CHECKING:
    from floodwall import Decision, Rate
    from floodwall.integrations._common import Guard, LimitSet

__all__ = [
    "named_limits",
    "lookup_named_limit",
    "rate_limit",
    "register_named_limit",
    "unregister_named_limit",
]

_T = TypeVar("_T")

def _is_starlette_request(value: Any) -> bool:
    mod = sys.modules.get("starlette.requests")
    return mod is not None and isinstance(value, mod.Request)


def _django_request_in(args: tuple[Any, ...]) -> bool:
    http = sys.modules.get("django.http")
    if http is None:
        return False
    for a in args[:2]:
        if isinstance(a, http.HttpRequest) or isinstance(
            getattr(a, "_request", None), http.HttpRequest
        ):
            return True
    return False


def _flask_request_active() -> bool:
    flask = sys.modules.get("flask")
    return flask is not None and bool(flask.has_request_context())


def rate_limit(
    rate: str | Rate | Any = None,
    *,
    requests: int | None = None,
    period: float | None = None,
    name: str | None = None,
    key: Any = None,
    cost: int | Callable[[Any], int] | None = None,
    algorithm: str | None = None,
    burst: int | None = None,
    store: str = "memory://",
    clock: Callable[[], int] | None = None,
    headers: str | bool | None = "both",
    headers_on_allowed: bool = True,
    jitter_ms: int = 0,
    trusted_proxies: int | str | list[str] | None = None,
    proxy_header: str = "x-forwarded-for",
    on_missing_key: str = "shared",
    on_limited: Callable[[Any, Decision | None], Any] | None = None,
    max_delay: float | None = None,
    max_waiting: float | None = None,
    fail: str | None = None,
    on_allow: Callable[..., object] | None = None,
    on_block: Callable[..., object] | None = None,
    on_error: Callable[[BaseException], object] | None = None,
    events: Any = None,
    metrics: Any = False,
    **store_options: Any,
) -> Callable[[_T], _T]:
    """Rate-limit a Flask view, a FastAPI/Starlette endpoint or a Django view.

    Exactly one of: ``rate`` (``"5/5minutes"``, ``"10/second; 1000/day"``, a
    Rate), ``requests=`` with ``period=`` (seconds), or ``name=`` (a named
    limit: ``[limits.NAME]`` of the configuration, or one registered with
    :func:`register_named_limit`; looked up now, a ConfigError listing the
    known names if absent; its key and cost apply unless given here).
    ``key`` (default: client IP; see floodwall.keys.resolve_key), ``cost``, ``store``, ``headers``,
    ``jitter_ms``, ``trusted_proxies``, ``on_missing_key`` as in the
    integrations. A denial answers 429 with problem+json (or
    ``on_limited(request, decision)``'s response) as a Flask response, a
    Starlette Response, or a Django HttpResponse; allowed responses carry the
    rate headers. One ``rate_limit(...)`` object is one bucket per client.
    ``max_delay`` / ``max_waiting`` bound leaky-bucket shaping as in the
    integrations (defaults 1 s and 10 s; the budget is per decorator).
    ``fail``: when the store cannot answer, "open" (the default of every web
    entry point: admit, logged and counted), "closed" or "raise"; see
    docs/frameworks.md, "Failure defaults". ``on_allow``, ``on_block``,
    ``on_error``, ``events``, ``metrics``: observers, as for the
    integrations (docs/observability.md).
    """
    if rate is not None and callable(rate) and not isinstance(rate, str):
        from floodwall import Limiter, Rate

        if not isinstance(rate, (Rate, Limiter)):
            raise ConfigError(
                f"{getattr(rate, '__qualname__', rate)!r} was given where a rate belongs: "
                "@floodwall.rate_limit was used without parentheses; write "
                "@floodwall.rate_limit('5/minute')"
            )
    from floodwall.integrations._common import FOREIGN_OPTIONS

    for option in store_options:
        if option in FOREIGN_OPTIONS:
            raise ConfigError(
                f"rate_limit({option}=...) is another library's spelling; in floodwall "
                f"write {FOREIGN_OPTIONS[option]}"
            )
    given = sum(x is not None for x in (rate, requests, name))
    if given != 1 or (requests is None) != (period is None):
        raise ValueError(
            "rate_limit needs exactly one of: a rate ('5/5minutes'), "
            "requests= with period=, or name="
        )
    from floodwall.integrations._common import (
        DEFAULT_MAX_DELAY,
        DEFAULT_MAX_WAITING,
        Guard,
        Limit,
    )
    from floodwall.stores.failure import WEB_FAIL_DEFAULT

    guard = Guard(
        max_delay=DEFAULT_MAX_DELAY if max_delay is None else max_delay,
        max_waiting=DEFAULT_MAX_WAITING if max_waiting is None else max_waiting,
        store=store,
        algorithm=algorithm or DEFAULT_ALGORITHM,
        clock=clock,
        store_options=store_options,
        key=key,
        trusted_proxies=trusted_proxies,
        proxy_header=proxy_header,
        headers=headers,
        headers_on_allowed=headers_on_allowed,
        jitter_ms=jitter_ms,
        on_missing_key=on_missing_key,
        fail=WEB_FAIL_DEFAULT if fail is None else fail,
        on_allow=on_allow,
        on_block=on_block,
        on_error=on_error,
        events=events,
        metrics=metrics,
    )
    named = None if name is None else named_limit(name)  # unknown: fails here
    state: dict[str, Any] = {"set": None, "scope": None}
    lock = threading.Lock()

    def get_limits() -> LimitSet:
        limits = state["set"]
        if limits is None:
            with lock:
                limits = state["set"]
                if limits is None:
                    if named is not None:
                        spec = Limit(
                            named.limiter,
                            key=key if key is not None else named.key,
                            cost=cost if cost is not None else named.cost,
                            name=named.scope,
                        )
                    elif requests is not None:
                        from floodwall import Rate

                        assert period is not None
                        spec = Limit(Rate(requests, period), burst=burst)
                    else:
                        spec = Limit(rate, burst=burst)
                    limits = guard.limit_set(
                        [spec], scope=state["scope"] or "rate_limit", cost=cost
                    )
                    state["set"] = limits
        result: LimitSet = limits
        return result

    get_limits()  # fail fast on a bad rate or key

    def decorate(target: Any) -> Any:
        if not inspect.isclass(target) and "starlette" in sys.modules:
            from floodwall.integrations import asgi

            frame = sys._getframe(1)
            if asgi.registered_in(target, frame.f_locals) or asgi.registered_in(
                target, frame.f_globals
            ):
                raise ConfigError(
                    f"@floodwall.rate_limit is above the route decorator of "
                    f"{getattr(target, '__qualname__', target)!r}: the route already holds "
                    "the undecorated function and would not be limited; put "
                    "@floodwall.rate_limit(...) under @app.get(...)"
                )
        if state["scope"] is None:
            state["scope"] = (named.scope if named else None) or "rl:{}.{}".format(
                getattr(target, "__module__", "?"), getattr(target, "__qualname__", id(target))
            )
            if name is None:
                state["set"] = None  # rebuilt with the view's scope
        if inspect.isclass(target):
            return _decorate_class(target, guard, get_limits, on_limited)
        return _decorate_function(target, guard, get_limits, on_limited)

    return decorate


def _decorate_class(
    cls: type,
    guard: Guard,
    get_limits: Callable[[], LimitSet],
    on_limited: Callable[[Any, Decision | None], Any] | None,
) -> type:
    views = sys.modules.get("django.views")
    if views is None or not issubclass(cls, views.View):
        raise TypeError(
            "rate_limit on a class needs a Django class-based view; "
            "decorate a function or method otherwise"
        )
    from floodwall.integrations import django as dj

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        return dj.wrap_view(fn, lambda: guard, get_limits, lambda: on_limited)

    return dj._wrap_class(cls, wrap)


def _decorate_function(
    fn: Callable[..., Any],
    guard: Guard,
    get_limits: Callable[[], LimitSet],
    on_limited: Callable[[Any, Decision | None], Any] | None,
) -> Callable[..., Any]:
    is_async = inspect.iscoroutinefunction(fn)
    asgi_wrapper: Callable[..., Any] | None = None
    if "starlette" in sys.modules or "fastapi" in sys.modules:
        # FastAPI reads the signature when the route is registered: give it
        # the hidden Request/Response parameters now.
        from floodwall.integrations import asgi

        asgi_wrapper = asgi.wrap_endpoint(fn, guard, get_limits, on_limited=on_limited)
    cache: dict[str, Callable[..., Any]] = {}

    def flask_wrapper() -> Callable[..., Any]:
        w = cache.get("flask")
        if w is None:
            from floodwall.integrations import flask as fl

            w = cache["flask"] = fl.wrap_view(fn, guard, get_limits, on_limited=on_limited)
        return w

    def django_wrapper() -> Callable[..., Any]:
        w = cache.get("django")
        if w is None:
            from floodwall.integrations import django as dj

            w = cache["django"] = dj.wrap_view(fn, lambda: guard, get_limits, lambda: on_limited)
        return w

    def pick(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[..., Any]:
        if asgi_wrapper is not None and (
            "_floodwall_request" in kwargs
            or any(_is_starlette_request(v) for v in kwargs.values())
            or any(_is_starlette_request(a) for a in args[:2])
        ):
            return asgi_wrapper
        if _django_request_in(args):
            return django_wrapper()
        if _flask_request_active():
            return flask_wrapper()
        raise TypeError(
            f"rate_limit: {getattr(fn, '__qualname__', fn)} was called outside a Flask, "
            "FastAPI/Starlette or Django request"
        )

    wrapper: Any
    if is_async:

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await pick(args, kwargs)(*args, **kwargs)

        wrapper = async_wrapper
    else:

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            return pick(args, kwargs)(*args, **kwargs)

        wrapper = sync_wrapper
    if asgi_wrapper is not None:
        wrapper.__signature__ = inspect.signature(asgi_wrapper)
    from floodwall.integrations._common import ENFORCED_ATTR

    setattr(wrapper, ENFORCED_ATTR, True)
    if asgi_wrapper is not None:
        from floodwall.integrations import asgi

        asgi._MARKED["any"] = True
    result: Callable[..., Any] = wrapper
    return result
