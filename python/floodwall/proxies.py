"""Proxy headers and the client address behind them.

Parsing of X-Forwarded-For and RFC 7239 Forwarded values, address
normalisation, and ClientIP, which picks the client's hop out of
``header hops + [socket peer]`` believing only trusted proxies. Invariant:
proxy headers are read only when the socket peer is a trusted proxy (or a
trusted-proxy count is configured), and only the hops those proxies wrote
decide, so a client cannot choose its own address by spoofing them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from floodwall.keys import RequestView

__all__ = [
    "ClientIP",
    "client_ip",
    "normalize_ip",
    "parse_forwarded",
    "parse_x_forwarded_for",
]

_Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


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
