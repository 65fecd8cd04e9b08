"""Route lookup for the ASGI middleware.

Walks a Starlette/FastAPI router (into Mount and Host routes) to find the
endpoint a request will hit and whether a floodwall decorator or dependency
already marked it (checks its own limits, exempt, or late limits), caching
the answer per (method, host, path); and finds whether a function is
already registered as a route endpoint. Starlette is imported lazily:
without it every lookup answers "not marked".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from floodwall.integrations._common import ENFORCED_ATTR, EXEMPT_ATTR, LimitSet

__all__ = ["registered_in"]

Scope = MutableMapping[str, Any]

#: Set on an endpoint function to the LimitSet of a floodwall decorator that
#: wrapped it; the middleware reads it when the router holds the unwrapped
#: function (the decorator was placed above @app.get).
_LATE_ATTR = "__floodwall_route_limits__"


def _dependency_marked(dependant: Any, depth: int = 0) -> bool:
    if dependant is None or depth > 8:
        return False
    for sub in getattr(dependant, "dependencies", ()) or ():
        if getattr(getattr(sub, "call", None), ENFORCED_ATTR, False):
            return True
        if _dependency_marked(sub, depth + 1):
            return True
    return False


def _has_host_routes(app: Any) -> bool:
    try:
        from starlette.routing import Host
    except ImportError:  # pragma: no cover
        return False

    def walk(routes: Any, depth: int) -> bool:
        for route in routes or ():
            if isinstance(route, Host):
                return True
            sub = getattr(route, "routes", None)
            if sub and depth < 8 and walk(sub, depth + 1):
                return True
        return False

    router = getattr(app, "router", None)
    return walk(getattr(router, "routes", None), 0)


class _RouteIndex:
    """Which Starlette route a request will hit, and whether it is marked.

    States: 0 = the middleware applies its limits; 1 = the endpoint checks its
    own limits; 2 = the endpoint is exempt; a LimitSet = the endpoint was
    given limits by a decorator placed *above* the route decorator (the
    router holds the undecorated function), so the middleware checks them.
    Cached per (method, host, path): Host routes can send one path to
    different endpoints."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str], int | LimitSet] = {}
        #: Whether the app routes by Host (then the Host header is part of
        #: the cache key; otherwise clients cannot spread the cache with it).
        self._by_host: bool | None = None

    def state(self, scope: Scope, app: Any = None) -> int | LimitSet:
        target = scope.get("app") or app
        if self._by_host is None:
            self._by_host = _has_host_routes(target)
        host = ""
        if self._by_host:
            for name, value in scope.get("headers") or ():
                if name == b"host":
                    host = value.decode("latin-1")
                    break
        k = (scope.get("method", ""), host, scope.get("path", ""))
        v = self._cache.get(k)
        if v is None:
            v = self._lookup(scope, target)
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[k] = v
        return v

    def _lookup(self, scope: Scope, app: Any) -> int | LimitSet:
        router = getattr(app, "router", None)
        routes = getattr(router, "routes", None)
        if routes is None:
            return 0
        try:
            from starlette.routing import Host, Match, Mount
        except ImportError:  # pragma: no cover
            return 0
        route = self._walk(routes, scope, Match, (Mount, Host), 0)
        if route is None:
            return 0
        endpoint = getattr(route, "endpoint", None)
        if getattr(endpoint, EXEMPT_ATTR, False):
            return 2
        if getattr(endpoint, ENFORCED_ATTR, False):
            return 1
        if _dependency_marked(getattr(route, "dependant", None)):
            return 1
        late = getattr(endpoint, _LATE_ATTR, None)
        if isinstance(late, LimitSet):
            return late
        return 0

    def _walk(self, routes: Iterable[Any], scope: Scope, match: Any, mount: Any, depth: int) -> Any:
        # Mount and Host both route into sub-routes: walk into either.
        for route in routes:
            try:
                m, child = route.matches(scope)
            except Exception:
                continue
            if m == match.FULL:
                if isinstance(route, mount) and depth < 8:
                    sub = getattr(route, "routes", None)
                    if sub:
                        return self._walk(sub, {**scope, **child}, match, mount, depth + 1)
                    return route
                return route
        return None


def registered_in(fn: Any, namespace: Mapping[str, Any]) -> bool:
    """Whether ``fn`` is already the endpoint of a route of a Starlette app
    or router found in ``namespace`` (a module's globals): a decorator that
    wraps it now comes too late for that route."""
    try:
        from starlette.applications import Starlette
        from starlette.routing import BaseRoute, Router
    except ImportError:  # pragma: no cover
        return False

    def walk(routes: Any, depth: int) -> bool:
        for route in routes or ():
            if not isinstance(route, BaseRoute):
                continue
            if getattr(route, "endpoint", None) is fn:
                return True
            sub = getattr(route, "routes", None)
            if sub and depth < 8 and walk(sub, depth + 1):
                return True
        return False

    for value in list(namespace.values()):
        if isinstance(value, Starlette):
            value = value.router
        if isinstance(value, Router) and walk(value.routes, 0):
            return True
    return False
