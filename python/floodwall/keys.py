"""Who a request is charged to.

Framework-neutral key functions (client IP behind trusted proxies, user,
header, path, any callable) working on a small RequestView that each
integration provides. Invariant: proxy headers (X-Forwarded-For, RFC 7239
Forwarded) are read only when the socket peer is a trusted proxy (or a
trusted-proxy count is configured), and only the hops those proxies wrote
are believed, so a client cannot choose its own key by spoofing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

from floodwall.proxies import (
    ClientIP,
    _first_header,
    _peer_key,
    client_ip,
    normalize_ip,
    parse_forwarded,
    parse_x_forwarded_for,
)

__all__ = [
    "MISSING_KEY_POLICIES",
    "ClientIP",
    "KeyFunc",
    "KeySpec",
    "MissingKeyPolicy",
    "RequestView",
    "by_callable",
    "by_header",
    "by_ip",
    "by_path",
    "by_user",
    "client_ip",
    "compose",
    "normalize_ip",
    "parse_forwarded",
    "parse_x_forwarded_for",
    "resolve_key",
]

#: What to do when a key function returns no key (``None`` or ``""``).
#: ``"shared"``: charge the request to one shared bucket (``"floodwall:nokey"``),
#: so such requests are still limited, together. ``"allow"``: do not limit it
#: (no check, no rate headers). ``"deny"``: refuse it with 400.
MissingKeyPolicy = Literal["shared", "allow", "deny"]
MISSING_KEY_POLICIES: frozenset[str] = frozenset({"shared", "allow", "deny"})
SHARED_MISSING_KEY = "floodwall:nokey"


class RequestView(Protocol):
    """The parts of a request that key functions read; one adapter per framework."""

    @property
    def peer(self) -> str | None:
        """The socket peer's address (no port), or None (unix socket, test client)."""

    def header(self, name: str) -> str | None:
        """A request header by lower-case name; repeated fields joined with ", "."""

    # Adapters may also offer ``header_values(name) -> list[str]``: every
    # field of a repeated header, in order. Proxy headers are then read field
    # by field, and header keys take the first field (see _first_header).

    @property
    def path(self) -> str: ...

    @property
    def method(self) -> str: ...

    @property
    def user(self) -> str | None:
        """The authenticated user's id, if the framework knows one."""

    @property
    def native(self) -> Any:
        """The framework's own request object."""


class KeyFunc:
    """A key function over a :class:`RequestView`; returns a key or None."""

    __slots__ = ("_fn", "description", "uses_user")

    def __init__(
        self,
        fn: Callable[[RequestView], str | None],
        description: str,
        *,
        uses_user: bool = False,
    ) -> None:
        self._fn = fn
        self.description = description
        #: True when the key reads the authenticated user (async adapters then
        #: resolve the user before checking).
        self.uses_user = uses_user

    def __call__(self, view: RequestView) -> str | None:
        return self._fn(view)

    def __repr__(self) -> str:
        return f"<floodwall key {self.description}>"


#: What ``key=`` options accept: a KeyFunc, a shortcut string (``"ip"``,
#: ``"user"``, ``"path"``, ``"header:X-Api-Key"``), or a plain callable that
#: receives the framework's native request and returns a key (or None).
KeySpec = KeyFunc | str | Callable[[Any], Any]


# ----------------------------------------------------------------- key functions


def by_ip(
    trusted_proxies: int | str | Iterable[str] | None = None,
    *,
    header: str = "x-forwarded-for",
    ipv6_prefix: int = 64,
    ipv4_prefix: int = 32,
) -> KeyFunc:
    """Key by client address: ``"ip:<addr or network>"``. See :class:`ClientIP`."""
    finder = ClientIP(
        trusted_proxies, header=header, ipv6_prefix=ipv6_prefix, ipv4_prefix=ipv4_prefix
    )
    key: Callable[[RequestView], str | None]
    if finder.uses_headers:

        def key(view: RequestView) -> str | None:
            ip = finder(view)
            return None if ip is None else "ip:" + ip

    else:  # the socket peer only: one cached lookup

        def key(view: RequestView) -> str | None:
            peer = view.peer
            return _peer_key(peer, ipv4_prefix, ipv6_prefix) if peer else None

    return KeyFunc(key, f"by_ip(trusted_proxies={trusted_proxies!r}, header={header!r})")


def by_user(fallback: KeyFunc | None = None) -> KeyFunc:
    """Key by authenticated user id: ``"user:<id>"``; anonymous requests get
    ``fallback``'s key (e.g. ``by_ip()``) or no key."""

    def key(view: RequestView) -> str | None:
        user = view.user
        if user:
            return "user:" + user
        return fallback(view) if fallback is not None else None

    return KeyFunc(key, f"by_user(fallback={fallback!r})", uses_user=True)


def by_header(name: str, fallback: KeyFunc | None = None) -> KeyFunc:
    """Key by a request header value (e.g. an API key): ``"hdr:<name>:<value>"``.

    The value is the header's first field, the one ``request.headers[name]``
    hands the application in every framework: a client that repeats the
    header is charged to the same key as one that sends it once.
    """
    lname = name.lower()

    def key(view: RequestView) -> str | None:
        value = _first_header(view, lname)
        if value:
            return f"hdr:{lname}:{value}"
        return fallback(view) if fallback is not None else None

    return KeyFunc(
        key,
        f"by_header({name!r})",
        uses_user=fallback is not None and fallback.uses_user,
    )


def by_path(*, method: bool = False) -> KeyFunc:
    """Key by request path (``"path:/a/b"``), optionally with the method.

    This is one bucket per path for *all* clients; combine it with a client
    key through :func:`compose` for per-client, per-path limits.
    """

    def key(view: RequestView) -> str | None:
        if method:
            verb = view.method
            # HEAD runs the GET view in every framework: one bucket for both.
            return f"path:{'GET' if verb == 'HEAD' else verb} {view.path}"
        return "path:" + view.path

    return KeyFunc(key, f"by_path(method={method})")


def _check_one_argument(fn: Callable[..., Any]) -> None:
    """Refuse at setup a key function that cannot take the request."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # no signature to read (some builtins): trust it
    try:
        sig.bind(None)
    except TypeError:
        from floodwall.errors import ConfigError

        raise ConfigError(
            f"key function {getattr(fn, '__qualname__', fn)!r}{sig} must take one "
            "argument, the framework's request, e.g. key=lambda request: "
            "request.headers.get('X-Api-Key')"
        ) from None


def by_callable(fn: Callable[[Any], Any]) -> KeyFunc:
    """Wrap a callable taking the framework's native request. It may return
    a str, bytes, int (converted to text) or None (no key). A callable that
    cannot take one argument is refused here, not at the first request."""
    _check_one_argument(fn)

    def key(view: RequestView) -> str | None:
        value = fn(view.native)
        if value is None or value == "" or value == b"":
            return None
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        return str(value)

    return KeyFunc(key, f"by_callable({getattr(fn, '__qualname__', fn)!r})")


def compose(*keys: KeyFunc) -> KeyFunc:
    """All parts joined with ``"|"``; no key if any part has none."""

    def key(view: RequestView) -> str | None:
        parts: list[str] = []
        for k in keys:
            part = k(view)
            if not part:
                return None
            parts.append(part)
        return "|".join(parts)

    return KeyFunc(
        key,
        "compose(" + ", ".join(repr(k) for k in keys) + ")",
        uses_user=any(k.uses_user for k in keys),
    )


def resolve_key(
    spec: KeySpec | None,
    *,
    trusted_proxies: int | str | Sequence[str] | None = None,
    proxy_header: str = "x-forwarded-for",
    ipv6_prefix: int = 64,
) -> KeyFunc:
    """Turn a ``key=`` option into a KeyFunc.

    ``None`` and ``"ip"`` mean :func:`by_ip` with the given proxy settings;
    ``"user"`` means by user, falling back to IP for anonymous requests;
    ``"path"``; ``"header:<Name>"``; a KeyFunc as is; any other callable is
    called with the framework's native request.
    """
    if isinstance(spec, KeyFunc):
        return spec
    ip = None
    if spec is None or isinstance(spec, str):
        ip = by_ip(trusted_proxies, header=proxy_header, ipv6_prefix=ipv6_prefix)
    if spec is None or spec == "ip":
        assert ip is not None
        return ip
    if isinstance(spec, str):
        if spec == "user":
            return by_user(ip)
        if spec == "path":
            return by_path()
        if spec.startswith("header:") and len(spec) > 7:
            return by_header(spec[7:].strip())
        raise ValueError(
            f"unknown key {spec!r}: use 'ip', 'user', 'path', 'header:<Name>', or a callable"
        )
    if callable(spec):
        return by_callable(spec)
    raise TypeError(f"key must be a string shortcut or a callable, not {type(spec).__name__}")
