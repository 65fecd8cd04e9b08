"""The Flask extension.

Floodwall(app) or fw.init_app(app); @fw.limit on views and blueprints,
@fw.exempt, a default limit, path routes and exempt globs. Checks run in a
before_request hook, headers are added in after_request. Invariant: one
request meets exactly one set of limits: the view's own, else a matching
path route, else its blueprint's (innermost first), else the default.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import flask

from floodwall.errors import ConfigError
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

if TYPE_CHECKING:
    from floodwall import Decision

__all__ = ["FlaskView", "Floodwall", "wrap_view"]

_T = TypeVar("_T")

_G_ATTR = "_floodwall_outcome"


class FlaskView:
    """RequestView over the current Flask request."""

    __slots__ = ("request",)

    def __init__(self, request: Any) -> None:
        self.request = request

    @property
    def peer(self) -> str | None:
        addr = self.request.remote_addr
        return str(addr) if addr else None

    def header(self, name: str) -> str | None:
        values = self.request.headers.getlist(name)
        if not values:
            return None
        return values[0] if len(values) == 1 else ", ".join(values)

    def header_values(self, name: str) -> list[str]:
        """Every field of a header (WSGI servers usually join repeated
        fields into one before Flask sees them)."""
        return [str(v) for v in self.request.headers.getlist(name)]

    @property
    def path(self) -> str:
        return str(self.request.path)

    @property
    def method(self) -> str:
        return str(self.request.method)

    @property
    def user(self) -> str | None:
        # Flask has no built-in user: flask-login's current_user when it is
        # loaded, else g.user (an object with .id, or a plain value).
        login = sys.modules.get("flask_login")
        if login is not None:
            current = login.current_user
            if current is not None and getattr(current, "is_authenticated", False):
                ident = current.get_id()
                return str(ident) if ident is not None else None
        user = flask.g.get("user")
        if user is None:
            return None
        ident = getattr(user, "id", user)
        return str(ident) if ident not in (None, "") else None

    @property
    def native(self) -> Any:
        return self.request


def _deny_response(outcome: Outcome, on_limited: Callable[..., Any] | None) -> Any:
    pairs = outcome.header_pairs()
    if on_limited is not None and not outcome.missing_key:
        response = flask.current_app.make_response(on_limited(flask.request, outcome.decision))
        if response.status_code < 400:
            response.status_code = outcome.status()
    else:
        response = flask.current_app.response_class(
            outcome.body(instance=flask.request.path),
            status=outcome.status(),
            mimetype=PROBLEM_CONTENT_TYPE,
        )
    for k, v in pairs:
        response.headers[k] = v
    return response


def _add_headers(response: Any, outcome: Outcome | None) -> Any:
    if outcome is not None:
        for k, v in outcome.header_pairs():
            response.headers[k] = v
    return response


class Floodwall(Guard):
    """Rate limiting for a Flask app. All :class:`Guard` options, plus
    ``on_limited(request, decision) -> response`` to answer denials yourself
    (rate headers are added to it), and ``sleep`` for shaping delays.

    ``fw = Floodwall(app, "100/minute")`` or ``fw.init_app(app)`` later.
    ``@fw.limit("5/minute", cost=2)`` under ``@app.route`` gives a view its
    own limits; ``fw.limit("1000/hour")(blueprint)`` limits a blueprint;
    ``@fw.exempt`` / ``fw.exempt(blueprint)`` skip limiting.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        default: LimitInput | None = None,
        *,
        on_limited: Callable[[Any, Decision | None], Any] | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        **options: Any,
    ) -> None:
        check_options(options, guard_option_names(), "Floodwall")
        if app is not None and not isinstance(app, flask.Flask):
            raise ConfigError(
                f"Floodwall(app, default): the first argument is the Flask app, not "
                f"{type(app).__name__}; write Floodwall(app, '100/minute') or "
                "Floodwall(default='100/minute') and fw.init_app(app)"
            )
        from floodwall.config.frameworks import framework_options

        conf = app.config.get("FLOODWALL") if app is not None else None
        options = framework_options(options, conf, 'app.config["FLOODWALL"]')
        if default is None:
            default = options.pop("default", None)
        options.pop("default", None)
        super().__init__(default, **options)
        self.on_limited = on_limited
        self.sleep = sleep
        self._lock = threading.Lock()
        self._view_specs: dict[Callable[..., Any], list[Limit]] = {}
        self._view_sets: dict[Callable[..., Any], LimitSet] = {}
        self._bp_specs: dict[str, list[Limit]] = {}
        self._bp_sets: dict[str, LimitSet] = {}
        self._exempt_views: set[Any] = set()
        self._exempt_bps: set[str] = set()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        app.extensions["floodwall"] = self
        app.before_request(self._before_request)
        app.after_request(self._after_request)

    # -- declaring

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
        """Give a view (or a Blueprint) its own limits; stacking adds limits,
        decided all-or-nothing. ``limits=["login"]``: named limits of the
        configuration (an unknown name fails here)."""
        if limits is not None:
            from floodwall.config import integration_limits

            rates = (*rates, *integration_limits(limits))
        check_rates(rates, "@fw.limit('5/minute') under @app.route(...)")
        check_key(key)
        specs = [
            r
            if isinstance(r, Limit)
            else Limit(r, key=key, cost=cost, name=name, algorithm=algorithm, burst=burst)
            for r in rates
        ]

        def decorate(target: Any) -> Any:
            with self._lock:
                if isinstance(target, flask.Blueprint):
                    lst = self._bp_specs.setdefault(target.name, [])
                    lst[:0] = specs
                    self._bp_sets[target.name] = self.limit_set(lst, scope="bp:" + target.name)
                else:
                    lst = self._view_specs.setdefault(target, [])
                    lst[:0] = specs
                    scope = f"view:{target.__module__}.{target.__qualname__}"
                    self._view_sets[target] = self.limit_set(lst, scope=name or scope)
            return target

        return decorate

    def exempt(self, target: _T) -> _T:
        """Never limit this view, or every view of this Blueprint."""
        if isinstance(target, flask.Blueprint):
            self._exempt_bps.add(target.name)
        else:
            self._exempt_views.add(target)
        return target

    # -- hooks

    def _limits_for(self, request: Any) -> LimitSet | None:
        if self.is_exempt(request.method, request.path):
            return None
        endpoint = request.endpoint
        view = flask.current_app.view_functions.get(endpoint) if endpoint else None
        if view is not None:
            if view in self._exempt_views or getattr(view, EXEMPT_ATTR, False):
                return None
            if getattr(view, ENFORCED_ATTR, False):
                return None
            own = self._view_sets.get(view)
            if own is not None:
                return own
        routed = self.route_limits(request.method, request.path)
        if routed is not None:
            return routed
        for bp in request.blueprints:  # innermost first
            if bp in self._exempt_bps:
                return None
            bp_set = self._bp_sets.get(bp)
            if bp_set is not None:
                return bp_set
        return self.default

    def _before_request(self) -> Any:
        if not self.enabled:
            return None
        request = flask.request
        limits = self._limits_for(request)
        if limits is None:
            return None
        outcome = self.check(limits, FlaskView(request))
        if outcome is None:
            return None
        setattr(flask.g, _G_ATTR, outcome)
        if not outcome.allowed:
            return _deny_response(outcome, self.on_limited)
        self.wait(outcome, self.sleep)
        return None

    def _after_request(self, response: Any) -> Any:
        return _add_headers(response, flask.g.get(_G_ATTR))

    def current_decision(self) -> Decision | None:
        """The Decision made for the current request, if any."""
        outcome = flask.g.get(_G_ATTR)
        return None if outcome is None else outcome.decision


def wrap_view(
    fn: Callable[..., Any],
    guard: Guard,
    get_limits: Callable[[], LimitSet],
    *,
    on_limited: Callable[[Any, Decision | None], Any] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> Callable[..., Any]:
    """Wrap a Flask view so it checks its limits itself (the unified
    ``floodwall.rate_limit`` uses this). Async views stay async."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_view(*args: Any, **kwargs: Any) -> Any:
            outcome = await guard.acheck(get_limits(), FlaskView(flask.request))
            if outcome is not None and not outcome.allowed:
                return _deny_response(outcome, on_limited)
            if outcome is not None:
                import asyncio

                await guard.await_delay(outcome, asyncio.sleep)
            rv = await fn(*args, **kwargs)
            return _add_headers(flask.make_response(rv), outcome)

        setattr(async_view, ENFORCED_ATTR, True)
        return async_view

    @functools.wraps(fn)
    def view(*args: Any, **kwargs: Any) -> Any:
        outcome = guard.check(get_limits(), FlaskView(flask.request))
        if outcome is not None and not outcome.allowed:
            return _deny_response(outcome, on_limited)
        if outcome is not None:
            guard.wait(outcome, sleep)
        return _add_headers(flask.make_response(fn(*args, **kwargs)), outcome)

    setattr(view, ENFORCED_ATTR, True)
    return view
