"""Django middleware and view decorator.

FloodwallMiddleware reads settings.FLOODWALL, applies the default limit,
path routes and exempt globs (sync and async); @limit gives function and
class-based views (sync or async) their own limits. Invariant: a view that
checks its own limits is never also charged the middleware's default, and
headers a view or DRF throttle decided are written on its response.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core import checks
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string

from floodwall.errors import ConfigError
from floodwall.headers import PROBLEM_CONTENT_TYPE
from floodwall.integrations._common import (
    ENFORCED_ATTR,
    EXEMPT_ATTR,
    FOREIGN_OPTIONS,
    Guard,
    Limit,
    LimitInput,
    LimitSet,
    Outcome,
    check_key,
    check_rates,
)

if TYPE_CHECKING:
    from floodwall import Decision

__all__ = [
    "SETTINGS_KEYS",
    "DjangoView",
    "FloodwallMiddleware",
    "exempt",
    "get_guard",
    "limit",
    "wrap_view",
]

_T = TypeVar("_T")

#: settings.FLOODWALL keys (upper case) and the Guard option each sets.
SETTINGS_KEYS: dict[str, str] = {
    "DEFAULT": "default",
    "ROUTES": "routes",
    "EXEMPT": "exempt",
    "STORE": "store",
    "ALGORITHM": "algorithm",
    "NAMESPACE": "namespace",
    "CLOCK": "clock",
    "STORE_OPTIONS": "store_options",
    "KEY": "key",
    "TRUSTED_PROXIES": "trusted_proxies",
    "PROXY_HEADER": "proxy_header",
    "IPV6_PREFIX": "ipv6_prefix",
    "COST": "cost",
    "HEADERS": "headers",
    "HEADERS_ON_ALLOWED": "headers_on_allowed",
    "JITTER_MS": "jitter_ms",
    "ON_MISSING_KEY": "on_missing_key",
    "ENABLED": "enabled",
    "FAIL": "fail",
    "ON_LIMITED": "on_limited",
    "MAX_DELAY": "max_delay",
    "MAX_WAITING": "max_waiting",
    "ON_ALLOW": "on_allow",
    "ON_BLOCK": "on_block",
    "ON_ERROR": "on_error",
    "EVENTS": "events",
    "METRICS": "metrics",
}

_OUTCOME_ATTR = "_floodwall_outcome"
_MIDDLEWARE_PATH = "floodwall.integrations.django.FloodwallMiddleware"
logger = logging.getLogger("floodwall.django")
_KEY_SHORTCUTS = ("ip", "user", "path")
_UNSET: Any = object()


class DjangoView:
    """RequestView over a Django HttpRequest (``native`` may be a DRF Request,
    whose ``.user`` is then the authenticated user)."""

    __slots__ = ("_user", "native", "request")

    def __init__(self, request: HttpRequest, native: Any = None, user: Any = _UNSET) -> None:
        self.request = request
        self.native = native if native is not None else request
        self._user = user

    @property
    def peer(self) -> str | None:
        addr = self.request.META.get("REMOTE_ADDR")
        return str(addr) if addr else None

    def header(self, name: str) -> str | None:
        meta = self.request.META
        if name == "content-type":
            return meta.get("CONTENT_TYPE") or None
        if name == "content-length":
            return meta.get("CONTENT_LENGTH") or None
        value = meta.get("HTTP_" + name.upper().replace("-", "_"))
        return str(value) if value else None

    def header_values(self, name: str) -> list[str]:
        """The header as one field: Django (like WSGI servers) joins
        repeated fields before the application sees them."""
        value = self.header(name)
        return [value] if value else []

    @property
    def path(self) -> str:
        return str(self.request.path)

    @property
    def method(self) -> str:
        return str(self.request.method or "GET")

    @property
    def user(self) -> str | None:
        user = self._user
        if user is _UNSET:
            user = getattr(self.native, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        pk = getattr(user, "pk", None)
        return str(pk) if pk is not None else None


# ------------------------------------------------------------------ settings


def _guard_options(conf: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    unknown = sorted(set(conf) - set(SETTINGS_KEYS))
    for name in unknown:
        foreign = FOREIGN_OPTIONS.get(str(name).lower())
        if foreign is not None:
            raise ConfigError(
                f"settings.FLOODWALL[{name!r}] is another library's spelling; in floodwall "
                f"write {foreign.split('=', 1)[0].upper()} (as the option {foreign})"
            )
    if unknown:
        raise ConfigError(
            f"unknown settings.FLOODWALL key(s) {unknown}: allowed are {sorted(SETTINGS_KEYS)}"
        )
    options = {SETTINGS_KEYS[k]: v for k, v in conf.items()}
    if isinstance(options.get("store"), str) and options["store"].startswith("django://"):
        # the app's own PostgreSQL database, by alias
        try:
            from floodwall.stores.postgres.django_alias import resolve_django_store
        except ImportError as exc:
            raise ConfigError(f"django:// needs pip install 'floodwall[postgres]' ({exc})") from exc
        options["store"] = resolve_django_store(options["store"])
    on_limited = options.pop("on_limited", None)
    if isinstance(on_limited, str):
        on_limited = import_string(on_limited)
    for hook in ("on_allow", "on_block", "on_error"):
        if isinstance(options.get(hook), str):
            options[hook] = import_string(options[hook])
    key = options.get("key")
    if (
        isinstance(key, str)
        and key not in _KEY_SHORTCUTS
        and not key.startswith("header:")
        and "." in key
    ):
        options["key"] = import_string(key)
    if isinstance(options.get("cost"), str):
        options["cost"] = import_string(options["cost"])
    return options, on_limited


class _SettingsGuard:
    """The Guard built from settings.FLOODWALL, rebuilt when settings change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation = 0
        self._guard: Guard | None = None
        self.on_limited: Callable[[Any, Decision | None], Any] | None = None

    def get(self) -> Guard:
        guard = self._guard
        if guard is None:
            with self._lock:
                if self._guard is None:
                    from floodwall.config.frameworks import framework_options, is_schema_mapping

                    conf = getattr(settings, "FLOODWALL", None)
                    if conf is None or is_schema_mapping(conf):
                        # the configuration schema (settings.FLOODWALL in its
                        # form, else floodwall.toml), one code path for all
                        options = framework_options({}, conf, "settings.FLOODWALL")
                        self.on_limited = None
                    else:
                        options, self.on_limited = _guard_options(conf)
                    self._guard = Guard(**options)
                guard = self._guard
        return guard

    def reset(self, **kwargs: Any) -> None:
        if kwargs.get("setting") in (None, "FLOODWALL"):
            with self._lock:
                self._guard = None
                self.generation += 1


_settings_guard = _SettingsGuard()
setting_changed.connect(_settings_guard.reset, dispatch_uid="floodwall-settings")


def get_guard() -> Guard:
    """The Guard configured by settings.FLOODWALL (shared by the middleware,
    the view decorator and the DRF throttles)."""
    return _settings_guard.get()


# ------------------------------------------------------------------ configuration check


def _middleware_limits_nothing() -> str | None:
    """Why the installed middleware would limit nothing, or None."""
    if _MIDDLEWARE_PATH not in list(getattr(settings, "MIDDLEWARE", None) or ()):
        return None
    conf = getattr(settings, "FLOODWALL", None)
    from floodwall.config.frameworks import is_schema_mapping

    if conf is None or is_schema_mapping(conf):  # the configuration schema's form
        from floodwall.config import active_config, load_mapping

        try:
            config = active_config() if conf is None else load_mapping(conf, "FLOODWALL")
        except ConfigError:
            return None  # the middleware itself reports a bad configuration
        if config.is_set("defaults", "rate"):
            return None
        if conf is None:
            return "settings.FLOODWALL is not set (nor [defaults] rate in floodwall.toml)"
        return "settings.FLOODWALL sets no defaults.rate"
    if not isinstance(conf, Mapping):
        return None  # the middleware itself reports a malformed setting
    if conf.get("ENABLED", True) is False:
        return None  # turned off on purpose
    if conf.get("DEFAULT") is None and not conf.get("ROUTES"):
        return "settings.FLOODWALL sets neither DEFAULT nor ROUTES"
    return None


def _limits_nothing_message(reason: str) -> str:
    return (
        f"FloodwallMiddleware is installed but {reason}: the middleware limits no "
        "request (only views with @limit and DRF floodwall throttles are limited)"
    )


_HINT = (
    'Set FLOODWALL = {"DEFAULT": "100/minute"} (and "STORE": "shm://NAME" to share '
    "the limits between worker processes), or remove the middleware."
)


def check_configuration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django system check ``floodwall.W001``: the middleware is installed
    but the configuration gives it nothing to limit."""
    reason = _middleware_limits_nothing()
    if reason is None:
        return []
    return [checks.Warning(_limits_nothing_message(reason), hint=_HINT, id="floodwall.W001")]


checks.register(check_configuration, "floodwall")


# ------------------------------------------------------------------ responses


def _deny(
    outcome: Outcome,
    request: Any,
    on_limited: Callable[[Any, Decision | None], Any] | None,
) -> HttpResponse:
    if on_limited is not None and not outcome.missing_key:
        response = on_limited(request, outcome.decision)
    else:
        response = HttpResponse(
            outcome.body(instance=getattr(request, "path", None)),
            status=outcome.status(),
            content_type=PROBLEM_CONTENT_TYPE,
        )
    for k, v in outcome.header_pairs():
        response[k] = v
    return response


def _add_headers(response: Any, outcome: Outcome | None) -> Any:
    if outcome is not None and hasattr(response, "headers"):
        for k, v in outcome.header_pairs():
            response[k] = v
    return response


def _needs_user(limits: LimitSet) -> bool:
    return any(b.key.uses_user for b in limits.limits)


async def _async_view(request: HttpRequest, native: Any, limits: LimitSet) -> DjangoView:
    if _needs_user(limits) and hasattr(request, "auser"):
        return DjangoView(request, native, await request.auser())
    return DjangoView(request, native)


# ------------------------------------------------------------------ middleware


def _view_marked(func: Any, attr: str) -> bool:
    if getattr(func, attr, False):
        return True
    view_class = getattr(func, "view_class", None) or getattr(func, "cls", None)
    return bool(view_class is not None and getattr(view_class, attr, False))


def _drf_throttled(func: Any) -> bool:
    """Whether a resolved view is a DRF view throttled by a floodwall
    throttle class: it then checks its own limits (the throttle's)."""
    drf = sys.modules.get("floodwall.integrations.drf")
    view_class = getattr(func, "cls", None)
    if drf is None or view_class is None:
        return False
    try:
        classes = list(getattr(view_class, "throttle_classes", ()) or ())
    except Exception:
        return False
    base = drf.FloodwallThrottle
    return any(isinstance(c, type) and issubclass(c, base) for c in classes)


class FloodwallMiddleware:
    """Add ``"floodwall.integrations.django.FloodwallMiddleware"`` to
    MIDDLEWARE (after AuthenticationMiddleware when keying by user).

    Per request: exempt globs and ``@exempt`` views pass; views with their own
    ``@limit`` are left to it; else a matching ROUTES pattern, else DEFAULT is
    checked. Denials get a problem+json 429 (or ON_LIMITED's response).
    Allowed responses get the rate headers, including those decided by a
    floodwall DRF throttle on that request.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        reason = _middleware_limits_nothing()
        if reason is not None:
            logger.warning("%s. %s", _limits_nothing_message(reason), _HINT)

    def _limits_for(self, guard: Guard, request: HttpRequest) -> LimitSet | None:
        if not guard.enabled:
            return None
        method = request.method or "GET"
        path = request.path
        if guard.is_exempt(method, path):
            return None
        routed = guard.route_limits(method, path)
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            match = None
        if match is not None:
            if _view_marked(match.func, EXEMPT_ATTR) or _view_marked(match.func, ENFORCED_ATTR):
                return None
            if _drf_throttled(match.func):
                return None  # its floodwall throttles charge it, once
        return routed if routed is not None else guard.default

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        guard = get_guard()
        limits = self._limits_for(guard, request)
        outcome = None
        if limits is not None:
            outcome = guard.check(limits, DjangoView(request))
            if outcome is not None:
                setattr(request, _OUTCOME_ATTR, outcome)
                if not outcome.allowed:
                    return _deny(outcome, request, _settings_guard.on_limited)
                guard.wait(outcome, time.sleep)
        response = self.get_response(request)
        return _add_headers(response, getattr(request, _OUTCOME_ATTR, None))

    async def __acall__(self, request: HttpRequest) -> Any:
        guard = get_guard()
        limits = self._limits_for(guard, request)
        if limits is not None:
            view = await _async_view(request, None, limits)
            outcome = await guard.acheck(limits, view)
            if outcome is not None:
                setattr(request, _OUTCOME_ATTR, outcome)
                if not outcome.allowed:
                    return _deny(outcome, request, _settings_guard.on_limited)
                await guard.await_delay(outcome, asyncio.sleep)
        response = await self.get_response(request)
        return _add_headers(response, getattr(request, _OUTCOME_ATTR, None))


# ------------------------------------------------------------------ decorators


def _find_request(args: tuple[Any, ...]) -> tuple[HttpRequest, Any]:
    for a in args[:2]:
        if isinstance(a, HttpRequest):
            return a, a
        inner = getattr(a, "_request", None)
        if isinstance(inner, HttpRequest):  # a DRF Request
            return inner, a
    raise TypeError("floodwall: this view was called without a Django HttpRequest")


def wrap_view(
    fn: Callable[..., Any],
    get_guard: Callable[[], Guard],
    get_limits: Callable[[], LimitSet],
    get_on_limited: Callable[[], Callable[[Any, Decision | None], Any] | None] = lambda: None,
) -> Callable[..., Any]:
    """Wrap a Django view function or method (sync or async) so it checks
    ``get_limits()`` itself; the request is the first or second argument."""
    if iscoroutinefunction(fn) or inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_view(*args: Any, **kwargs: Any) -> Any:
            request, native = _find_request(args)
            limits = get_limits()
            view = await _async_view(request, native, limits)
            guard = get_guard()
            outcome = await guard.acheck(limits, view)
            if outcome is not None:
                if not outcome.allowed:
                    return _deny(outcome, native, get_on_limited())
                await guard.await_delay(outcome, asyncio.sleep)
            return _add_headers(await fn(*args, **kwargs), outcome)

        setattr(async_view, ENFORCED_ATTR, True)
        return async_view

    @functools.wraps(fn)
    def sync_view(*args: Any, **kwargs: Any) -> Any:
        request, native = _find_request(args)
        guard = get_guard()
        outcome = guard.check(get_limits(), DjangoView(request, native))
        if outcome is not None:
            if not outcome.allowed:
                return _deny(outcome, native, get_on_limited())
            guard.wait(outcome, time.sleep)
        return _add_headers(fn(*args, **kwargs), outcome)

    setattr(sync_view, ENFORCED_ATTR, True)
    return sync_view


def _wrap_class(cls: type, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> type:
    dispatch = cls.dispatch  # type: ignore[attr-defined]
    if getattr(cls, "view_is_async", False) and not iscoroutinefunction(dispatch):
        # Django's dispatch is sync and returns the async handler's coroutine.
        original = dispatch

        async def dispatch_async(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            return await original(self, request, *args, **kwargs)

        functools.update_wrapper(dispatch_async, original)
        dispatch = dispatch_async
    cls.dispatch = wrap(dispatch)  # type: ignore[attr-defined]
    setattr(cls, ENFORCED_ATTR, True)
    return cls


def limit(
    *rates: LimitInput,
    key: Any = None,
    cost: int | Callable[[Any], int] | None = None,
    name: str | None = None,
    algorithm: str | None = None,
    burst: int | None = None,
    limits: Sequence[str] | None = None,
) -> Callable[[_T], _T]:
    """View decorator: ``@limit("5/minute")`` (or ``@limit(limits=["login"])``,
    named limits of the configuration) on a function view (sync or
    async), a view method, or a class-based view (its ``dispatch`` is
    wrapped). Store, key and header options come from settings.FLOODWALL;
    ``key``/``cost``/``name`` override them for this view. One ``limit(...)``
    object is one bucket per client: reusing it on several views shares it."""
    if limits is not None:
        from floodwall.config import integration_limits

        get_guard()  # settings.FLOODWALL (or floodwall.toml) makes its limits known
        rates = (*rates, *integration_limits(limits))
    check_rates(rates, "@limit('5/minute')")
    check_key(key)
    specs = [
        r
        if isinstance(r, Limit)
        else Limit(r, key=key, name=name, algorithm=algorithm, burst=burst)
        for r in rates
    ]

    # One limit() call is one set of buckets, however often it decorates
    # (method_decorator re-applies it on every request).
    cache: dict[str, Any] = {"gen": -1, "set": None, "scope": name}
    lock = threading.Lock()

    def get_limits() -> LimitSet:
        if cache["gen"] != _settings_guard.generation or cache["set"] is None:
            with lock:
                if cache["gen"] != _settings_guard.generation or cache["set"] is None:
                    cache["set"] = get_guard().limit_set(specs, scope=cache["scope"], cost=cost)
                    cache["gen"] = _settings_guard.generation
        result: LimitSet = cache["set"]
        return result

    def decorate(target: Any) -> Any:
        if cache["scope"] is None:
            cache["scope"] = "view:{}.{}".format(
                getattr(target, "__module__", "?"), getattr(target, "__qualname__", id(target))
            )

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            return wrap_view(fn, get_guard, get_limits, lambda: _settings_guard.on_limited)

        if inspect.isclass(target):
            return _wrap_class(target, wrap)
        return wrap(target)

    return decorate


def exempt(target: _T) -> _T:
    """Never limit this view (function or class) in the middleware."""
    setattr(target, EXEMPT_ATTR, True)
    return target
