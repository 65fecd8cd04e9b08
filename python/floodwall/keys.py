"""Who a request is charged to.

Framework-neutral key functions (client IP behind trusted proxies, user,
header, path, any callable) working on a small RequestView that each
integration provides. Invariant: proxy headers (X-Forwarded-For, RFC 7239
Forwarded) are read only when the socket peer is a trusted proxy (or a
trusted-proxy count is configured), and only the hops those proxies wrote
are believed, so a client cannot choose its own key by spoofing them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal, Protocol

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

_Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


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


# ----------------------------------------------------------------- addresses


def _parse_addr(text: str) -> _Addr | None:
    """Parse one hop as written by a proxy: IPv4[:port], IPv6, [IPv6][:port]."""
    text = text.strip().strip('"')
    if not text:
        return None
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    if "%" in text:  # zone index
        text = text.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@lru_cache(maxsize=8192)
def normalize_ip(text: str, ipv4_prefix: int = 32, ipv6_prefix: int = 64) -> str | None:
    """Canonical key text of an address: IPv4 as is (or its /ipv4_prefix
    network), IPv6 as its /ipv6_prefix network (default /64: one subscriber)."""
    addr = _parse_addr(text)
    if addr is None:
        return None
    return _group(addr, ipv4_prefix, ipv6_prefix)


@lru_cache(maxsize=8192)
def _peer_key(text: str, ipv4_prefix: int, ipv6_prefix: int) -> str | None:
    ip = normalize_ip(text, ipv4_prefix, ipv6_prefix)
    return None if ip is None else "ip:" + ip


def _group(addr: _Addr, ipv4_prefix: int, ipv6_prefix: int) -> str:
    if isinstance(addr, ipaddress.IPv4Address):
        if ipv4_prefix >= 32:
            return str(addr)
        return str(ipaddress.IPv4Network((addr, ipv4_prefix), strict=False))
    if ipv6_prefix >= 128:
        return str(addr)
    return str(ipaddress.IPv6Network((addr, ipv6_prefix), strict=False))


def parse_x_forwarded_for(value: str) -> list[str]:
    """The hops of an X-Forwarded-For value, left (client) to right."""
    return [part.strip() for part in value.split(",") if part.strip()]


#: In a hop list, a stretch that could not be read unambiguously (a
#: malformed Forwarded value): how many hops it holds is unknown.
_UNREADABLE = None

_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS = " \t"
#: An unquoted value may also hold ":" and brackets: proxies often write a
#: bare IPv6 node (``for=2001:db8::1``) although RFC 7239 wants it quoted.
_VALUE_CHARS = _TCHARS | frozenset(":[]")


def _forwarded_strict(value: str) -> list[str] | None:
    """The ``for=`` nodes of a Forwarded field value read by the RFC 7239
    grammar, left to right ("" for an element without ``for=``); None when
    the value does not follow the grammar (an unterminated or stray quote, a
    pair without ``=``, a repeated ``for``, a control character...).

    Optional whitespace is tolerated around ``,`` and ``;``; empty list
    elements and empty pairs are skipped, as RFC 9110 and RFC 7239 allow; an
    unquoted value may hold ``:`` and brackets (a bare IPv6 node).
    """
    hops: list[str] = []
    i, n = 0, len(value)
    while True:
        node: str | None = None
        has_pair = False
        while True:  # the pairs of one element
            while i < n and value[i] in _OWS:
                i += 1
            if i < n and value[i] not in ",;":
                start = i
                while i < n and value[i] in _TCHARS:
                    i += 1
                name = value[start:i]
                if not name or i >= n or value[i] != "=":
                    return None
                i += 1
                if i < n and value[i] == '"':
                    i += 1
                    chars: list[str] = []
                    while True:
                        if i >= n:
                            return None  # unterminated quoted-string
                        ch = value[i]
                        if ch == '"':
                            i += 1
                            break
                        if ch == "\\":
                            i += 1
                            if i >= n:
                                return None
                            ch = value[i]
                        if (ch < " " and ch != "\t") or ch == "\x7f":
                            return None
                        chars.append(ch)
                        i += 1
                    val = "".join(chars)
                else:
                    start = i
                    while i < n and value[i] in _VALUE_CHARS:
                        i += 1
                    val = value[start:i]
                    if not val:
                        return None
                if name.lower() == "for":
                    if node is not None:
                        return None  # "for" twice in one element
                    node = val
                has_pair = True
                while i < n and value[i] in _OWS:
                    i += 1
            if i >= n or value[i] == ",":
                break
            if value[i] != ";":
                return None
            i += 1
        if has_pair:
            hops.append(node or "")
        if i >= n:
            return hops
        i += 1  # the ","


def _forwarded_hops(value: str) -> list[str | None]:
    """The nodes of one Forwarded field value, left to right.

    A value that follows the grammar is read whole. Otherwise its elements
    are read from the right, each on its own, up to the first that does not
    parse; everything left of that becomes one ``_UNREADABLE`` marker. The
    elements a trusted proxy appends (``, for=<addr>``) are the rightmost and
    hold no comma, so they are read the same whatever a client put before
    them (an unterminated quote cannot swallow them).
    """
    whole = _forwarded_strict(value)
    if whole is not None:
        return list(whole)
    tail: list[str | None] = []
    parts = value.split(",")
    for part in reversed(parts):
        if not part.strip(_OWS):
            continue  # an empty list element
        one = _forwarded_strict(part)
        if one is None or len(one) != 1:
            tail.append(_UNREADABLE)
            break
        tail.append(one[0])
    tail.reverse()
    return tail


def parse_forwarded(value: str) -> list[str]:
    """The ``for=`` nodes of an RFC 7239 Forwarded value, left to right.

    An element without ``for=`` yields ``""`` (an unusable hop); ``unknown``
    and obfuscated identifiers (``_hidden``) are returned as written. A
    value that breaks the grammar is read from the right up to the first
    element that does not parse; the unreadable rest yields one ``""``.
    """
    return ["" if h is None else h for h in _forwarded_hops(value)]


def _header_fields(view: RequestView, name: str) -> list[str]:
    """Every field of a header, in order (one joined value if the view
    cannot tell repeated fields apart)."""
    fields = getattr(view, "header_values", None)
    if fields is not None:
        return list(fields(name))
    value = view.header(name)
    return [value] if value else []


def _first_header(view: RequestView, name: str) -> str | None:
    """The first field of a header: what ``request.headers[name]`` gives
    the application in every framework."""
    fields = getattr(view, "header_values", None)
    if fields is not None:
        values = fields(name)
        return values[0] if values else None
    return view.header(name)


# ----------------------------------------------------------------- client IP


class ClientIP:
    """Find the client address of a request, believing proxies only as told.

    ``trusted_proxies``:
      * ``0`` / ``None`` / ``()`` (default): proxy headers are ignored, the
        socket peer is the client.
      * an int N: exactly N reverse proxies stand in front of the app, each
        appending to the header; the client is the N-th address from the
        right of ``header hops + [peer]``. Use only when the app cannot be
        reached except through those proxies.
      * CIDRs / addresses (``["10.0.0.0/8", "::1"]``): the header is read
        only if the socket peer is in them; hops are walked right to left,
        skipping trusted ones, and the first untrusted one is the client.
        If a hop a trusted proxy wrote is unusable (garbage, ``unknown``,
        obfuscated), the last usable address to its right is used.
    ``header``: which header the proxies write: ``"x-forwarded-for"``
    (default) or ``"forwarded"`` (RFC 7239); any other name is read as a
    comma-separated list of addresses (e.g. ``"x-real-ip"``). Configure
    the one your proxies overwrite or append to: reading a header they pass
    through untouched would let clients spoof it.
    ``ipv6_prefix`` / ``ipv4_prefix``: group addresses into networks
    (default /64 for IPv6, since one subscriber gets a /64; /32 for IPv4).
    """

    __slots__ = ("_count", "_nets", "header", "ipv4_prefix", "ipv6_prefix", "_forwarded")

    def __init__(
        self,
        trusted_proxies: int | str | Iterable[str] | None = None,
        *,
        header: str = "x-forwarded-for",
        ipv6_prefix: int = 64,
        ipv4_prefix: int = 32,
    ) -> None:
        if not 0 <= ipv6_prefix <= 128:
            raise ValueError(f"ipv6_prefix must be in 0..128, got {ipv6_prefix}")
        if not 0 <= ipv4_prefix <= 32:
            raise ValueError(f"ipv4_prefix must be in 0..32, got {ipv4_prefix}")
        self._count = 0
        self._nets: tuple[_Net, ...] = ()
        if isinstance(trusted_proxies, bool):
            raise ValueError("trusted_proxies must be a count or a list of CIDRs, not a bool")
        if isinstance(trusted_proxies, int):
            if trusted_proxies < 0:
                raise ValueError(f"trusted_proxies count must be >= 0, got {trusted_proxies}")
            self._count = trusted_proxies
        elif trusted_proxies:
            items = [trusted_proxies] if isinstance(trusted_proxies, str) else list(trusted_proxies)
            nets: list[_Net] = []
            for item in items:
                try:
                    nets.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise ValueError(
                        f"trusted proxy {item!r} is not an IP address or CIDR network"
                    ) from None
            self._nets = tuple(nets)
        self.header = header.lower()
        self._forwarded = self.header == "forwarded"
        self.ipv6_prefix = ipv6_prefix
        self.ipv4_prefix = ipv4_prefix

    @property
    def uses_headers(self) -> bool:
        return bool(self._count or self._nets)

    def _trusted(self, addr: _Addr) -> bool:
        return any(addr.version == n.version and addr in n for n in self._nets)

    def _hops(self, view: RequestView) -> list[_Addr | None | bool]:
        """The header's hops, left to right: an address, None for an
        unusable hop, or ``False`` for a stretch that could not be read
        (an unknown number of hops). Each field of a repeated header is
        read on its own, so a quote cannot run from one into the next."""
        out: list[_Addr | None | bool] = []
        for field in _header_fields(view, self.header):
            if self._forwarded:
                for hop in _forwarded_hops(field):
                    out.append(False if hop is None else _parse_addr(hop))
            else:
                out.extend(_parse_addr(h) for h in parse_x_forwarded_for(field))
        return out

    def address(self, view: RequestView) -> _Addr | None:
        """The client's address (ungrouped), or None if none can be found.

        Only hops the trusted proxies wrote decide: whatever a client put
        left of them, however malformed, never changes the answer. When a
        hop that decides cannot be read, the nearest usable address to its
        right (a hop a trusted proxy wrote, or the peer) is used.
        """
        peer_text = view.peer
        peer = _parse_addr(peer_text) if peer_text else None
        if self._count:
            chain: list[_Addr | None | bool] = self._hops(view)
            chain.append(peer)
            idx = max(len(chain) - 1 - self._count, 0)
            # Left of an unreadable stretch, positions are unknown: if the
            # hop we want is not surely right of it, use the nearest usable
            # hop right of it (our proxies wrote every hop there).
            for i in range(len(chain) - 1, -1, -1):
                if chain[i] is False:
                    idx = max(idx, i)
                    break
            for i in range(idx, len(chain)):
                hop = chain[i]
                if hop is not None and hop is not False:
                    return hop  # type: ignore[return-value]
            return None
        if not self._nets or peer is None or not self._trusted(peer):
            return peer
        last = peer
        for hop in reversed(self._hops(view)):
            if hop is None or hop is False:
                return last
            assert not isinstance(hop, bool)
            if not self._trusted(hop):
                return hop
            last = hop
        return last

    def __call__(self, view: RequestView) -> str | None:
        if not self.uses_headers:
            peer = view.peer
            if not peer:
                return None
            return normalize_ip(peer, self.ipv4_prefix, self.ipv6_prefix)
        addr = self.address(view)
        if addr is None:
            return None
        return _group(addr, self.ipv4_prefix, self.ipv6_prefix)


def client_ip(
    view: RequestView,
    trusted_proxies: int | str | Iterable[str] | None = None,
    **options: Any,
) -> str | None:
    """One-off helper: the grouped client address of ``view``."""
    return ClientIP(trusted_proxies, **options)(view)


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
