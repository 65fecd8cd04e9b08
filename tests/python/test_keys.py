# Tests of floodwall.keys: client IP behind trusted proxies (a count or
# CIDRs; X-Forwarded-For and RFC 7239 Forwarded), spoofing from untrusted
# peers, IPv6 /64 grouping, and the user/header/path/callable key functions.
from __future__ import annotations

from typing import Any

import pytest

import floodwall
from floodwall.keys import (
    ClientIP,
    KeyFunc,
    by_callable,
    by_header,
    by_ip,
    by_path,
    by_user,
    client_ip,
    compose,
    normalize_ip,
    parse_forwarded,
    parse_x_forwarded_for,
    resolve_key,
)


class View:
    """A minimal RequestView."""

    def __init__(
        self,
        peer: str | None = "203.0.113.7",
        headers: dict[str, str] | None = None,
        path: str = "/",
        method: str = "GET",
        user: str | None = None,
        native: Any = None,
    ) -> None:
        self.peer = peer
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.path = path
        self.method = method
        self.user = user
        self.native = native if native is not None else self

    def header(self, name: str) -> str | None:
        return self._headers.get(name)


def xff(value: str, peer: str = "10.0.0.2") -> View:
    return View(peer, {"X-Forwarded-For": value})


def fwd(value: str, peer: str = "10.0.0.2") -> View:
    return View(peer, {"Forwarded": value})


def test_no_proxies_uses_peer_and_ignores_headers() -> None:
    ip = ClientIP()
    assert ip(View("203.0.113.7")) == "203.0.113.7"
    assert ip(xff("1.2.3.4", peer="203.0.113.7")) == "203.0.113.7"
    assert ip(fwd("for=1.2.3.4", peer="203.0.113.7")) == "203.0.113.7"
    assert ip(View(None)) is None
    assert ip(View("testclient")) is None


def test_address_forms() -> None:
    assert normalize_ip("192.0.2.1:8080") == "192.0.2.1"
    assert normalize_ip("[2001:db8::1]:443") == "2001:db8::/64"
    assert normalize_ip("::ffff:192.0.2.9") == "192.0.2.9"
    assert normalize_ip("fe80::1%eth0") == "fe80::/64"
    assert normalize_ip("not-an-ip") is None
    assert normalize_ip("") is None


def test_ipv6_grouping_options() -> None:
    assert ClientIP()(View("2001:db8:1:2:3:4:5:6")) == "2001:db8:1:2::/64"
    assert ClientIP(ipv6_prefix=48)(View("2001:db8:1:2::1")) == "2001:db8:1::/48"
    assert ClientIP(ipv6_prefix=128)(View("2001:db8::5")) == "2001:db8::5"
    assert ClientIP(ipv4_prefix=24)(View("198.51.100.77")) == "198.51.100.0/24"
    with pytest.raises(ValueError, match="ipv6_prefix"):
        ClientIP(ipv6_prefix=129)
    with pytest.raises(ValueError, match="ipv4_prefix"):
        ClientIP(ipv4_prefix=33)


def test_proxy_count() -> None:
    one = ClientIP(1)
    assert one(xff("192.0.2.1")) == "192.0.2.1"
    assert one(xff("6.6.6.6, 192.0.2.1")) == "192.0.2.1"  # left part forged
    assert one(View("10.0.0.2")) == "10.0.0.2"  # no header: the peer
    two = ClientIP(2)
    assert two(xff("6.6.6.6, 192.0.2.1, 10.0.0.1")) == "192.0.2.1"
    assert two(xff("10.0.0.1")) == "10.0.0.1"  # shorter chain: leftmost
    # An unusable hop written by our proxy: the nearest usable one to its right.
    assert one(xff("garbage")) == "10.0.0.2"


def test_trusted_cidrs() -> None:
    ip = ClientIP(["10.0.0.0/8", "2001:db8:ffff::/48"])
    # Untrusted peer: headers ignored entirely.
    assert ip(xff("1.2.3.4", peer="198.51.100.1")) == "198.51.100.1"
    # Trusted peer: walk right to left past trusted hops.
    assert ip(xff("6.6.6.6, 192.0.2.1, 10.1.1.1")) == "192.0.2.1"
    assert ip(xff("192.0.2.1", peer="2001:db8:ffff::1")) == "192.0.2.1"
    # Every hop trusted: the leftmost.
    assert ip(xff("10.3.3.3, 10.1.1.1")) == "10.3.3.3"
    # Unusable hop: the last usable address to its right.
    assert ip(xff("6.6.6.6, junk, 10.1.1.1")) == "10.1.1.1"
    assert ip(View("10.0.0.2")) == "10.0.0.2"
    assert ClientIP("127.0.0.1")(xff("192.0.2.5", peer="127.0.0.1")) == "192.0.2.5"
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        ClientIP(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="count"):
        ClientIP(-1)
    with pytest.raises(ValueError, match="bool"):
        ClientIP(True)


def test_forwarded_header() -> None:
    ip = ClientIP(["10.0.0.0/8"], header="forwarded")
    assert ip(fwd("for=192.0.2.60;proto=http;by=203.0.113.43")) == "192.0.2.60"
    assert ip(fwd('for=6.6.6.6, For="[2001:db8:cafe::17]:4711"')) == "2001:db8:cafe::/64"
    assert ip(fwd("for=unknown")) == "10.0.0.2"
    assert ip(fwd("for=_hidden, for=10.4.4.4")) == "10.4.4.4"
    # The XFF header is not read when Forwarded is configured.
    assert ip(View("10.0.0.2", {"X-Forwarded-For": "1.1.1.1"})) == "10.0.0.2"
    assert ClientIP(1, header="forwarded")(fwd("for=1.1.1.1, for=192.0.2.1")) == "192.0.2.1"


def test_parsers() -> None:
    assert parse_x_forwarded_for(" 1.1.1.1 ,2.2.2.2,, ") == ["1.1.1.1", "2.2.2.2"]
    assert parse_forwarded('for="a,b";by=x, proto=https, FOR="[::1]"') == ["a,b", "", "[::1]"]
    assert parse_forwarded('for="q\\"uote"') == ['q"uote']


def test_other_single_value_header() -> None:
    ip = ClientIP(["10.0.0.0/8"], header="X-Real-IP")
    assert ip(View("10.0.0.2", {"X-Real-IP": "192.0.2.44"})) == "192.0.2.44"
    assert (
        client_ip(View("10.0.0.2", {"X-Real-IP": "192.0.2.44"}), ["10.0.0.0/8"], header="x-real-ip")
        == "192.0.2.44"
    )


def test_key_functions() -> None:
    v = View("203.0.113.7", {"X-Api-Key": "k1"}, path="/a/b", method="POST", user="42")
    assert by_ip()(v) == "ip:203.0.113.7"
    assert by_user()(v) == "user:42"
    assert by_user()(View(user=None)) is None
    assert by_user(by_ip())(View(user=None)) == "ip:203.0.113.7"
    assert by_header("X-Api-Key")(v) == "hdr:x-api-key:k1"
    assert by_header("X-Missing")(v) is None
    assert by_header("X-Missing", by_ip())(v) == "ip:203.0.113.7"
    assert by_path()(v) == "path:/a/b"
    assert by_path(method=True)(v) == "path:POST /a/b"
    assert compose(by_path(), by_ip())(v) == "path:/a/b|ip:203.0.113.7"
    assert compose(by_path(), by_user())(View(user=None)) is None
    assert by_callable(lambda r: r.path)(v) == "/a/b"
    assert by_callable(lambda r: 7)(v) == "7"
    assert by_callable(lambda r: b"raw")(v) == "raw"
    assert by_callable(lambda r: None)(v) is None
    assert by_callable(lambda r: "")(v) is None
    assert by_user().uses_user and not by_ip().uses_user
    assert compose(by_path(), by_user()).uses_user


def test_resolve_key() -> None:
    v = View("10.0.0.2", {"X-Forwarded-For": "192.0.2.3", "X-Tenant": "t"}, user="u")
    assert resolve_key(None)(v) == "ip:10.0.0.2"
    assert resolve_key("ip", trusted_proxies=1)(v) == "ip:192.0.2.3"
    assert resolve_key("user")(v) == "user:u"
    assert resolve_key("user", trusted_proxies=["10.0.0.0/8"])(View(user=None)) == "ip:203.0.113.7"
    assert resolve_key("path")(v) == "path:/"
    assert resolve_key("header:X-Tenant")(v) == "hdr:x-tenant:t"
    assert resolve_key(lambda r: "fixed")(v) == "fixed"
    k = by_ip()
    assert resolve_key(k) is k
    assert isinstance(resolve_key(None), KeyFunc)
    with pytest.raises(ValueError, match="unknown key"):
        resolve_key("cookie")
    with pytest.raises(TypeError):
        resolve_key(42)  # type: ignore[arg-type]


def test_keys_share_buckets_on_store(store_url: str, clock: Any) -> None:
    """Addresses of one /64 are one client on the store; spoofed headers from
    an untrusted peer do not make new clients."""
    lim = floodwall.Limiter("1/minute", store=store_url, clock=clock, namespace="keys")
    key = by_ip(["10.0.0.0/8"])
    k1 = key(View("2001:db8:5:6::1"))
    k2 = key(View("2001:db8:5:6:ffff::2", {"X-Forwarded-For": "192.0.2.1"}))
    assert k1 == k2
    assert k1 is not None
    assert lim.check(k1).allowed
    assert not lim.check(k2).allowed
    k3 = key(xff("192.0.2.1", peer="10.9.9.9"))
    assert k3 == "ip:192.0.2.1" and lim.check(k3).allowed
