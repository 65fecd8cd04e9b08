# Tests that a client cannot choose its own key through X-Forwarded-For or
# RFC 7239 Forwarded: hostile values (unterminated and escaped quotes, stray
# commas and semicolons, obfuscated and unknown identifiers, IPv6 with and
# without brackets and ports, several fields) in both trusted-proxy modes, a
# hypothesis fuzz test that nothing a client puts left of the hops the
# trusted proxies wrote changes the chosen key, and the same attack through
# real FastAPI/Starlette, Flask and Django apps.
from __future__ import annotations

from typing import Any

import django_setup
import flask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from floodwall.integrations.asgi import Floodwall as AsgiFloodwall
from floodwall.integrations.flask import Floodwall as FlaskFloodwall
from floodwall.keys import ClientIP, parse_forwarded

django_setup.configure()

from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

TRUSTED = ["10.0.0.0/8", "fd00::/8"]
PROXY = "10.0.0.2"  # the socket peer: the last trusted proxy
REAL = "198.51.100.9"  # the client's real address, appended by the proxy


class View:
    """A RequestView whose header may arrive as several fields."""

    def __init__(self, peer: str | None, name: str, fields: list[str]) -> None:
        self.peer = peer
        self._name = name.lower()
        self._fields = fields
        self.path = "/"
        self.method = "GET"
        self.user = None
        self.native = self

    def header(self, name: str) -> str | None:
        if name != self._name or not self._fields:
            return None
        return ", ".join(self._fields)

    def header_values(self, name: str) -> list[str]:
        return list(self._fields) if name == self._name else []


class JoinedView(View):
    """A view that sees repeated fields already joined (WSGI, Django)."""

    def header_values(self, name: str) -> list[str]:
        value = self.header(name)
        return [value] if value else []


def appended(client_part: str, proxy_part: str) -> str:
    """What a proxy that appends to the existing field forwards."""
    return f"{client_part}, {proxy_part}" if client_part else proxy_part


HOSTILE_PREFIXES = [
    'for=1.2.3.4;x="',  # the attack: an unterminated quote
    'for="1.2.3.4',
    'for=1.2.3.4;x="\\',  # a backslash escaping what follows
    'for="[2001:db8::66]:80\\"',  # an escaped closing quote
    'for=1.2.3.4;x="a\\"b", for=5.5.5.5;y="',
    "for=1.2.3.4;;;",
    ",,,for=1.2.3.4,,;",
    "for=1.2.3.4;for=5.6.7.8",  # "for" twice in one element
    "for=_obfuscated;x=\"",
    "for=unknown, for=",
    "for=[2001:db8::1]:443",  # IPv6 not quoted (tolerated): still the client's part
    'for="[2001:db8::1',
    "for==1.2.3.4",
    "for",
    ";",
    '"',
    "\\",
    '"for=1.2.3.4"',
    "for=1.2.3.4 junk",
]


@pytest.mark.parametrize("prefix", HOSTILE_PREFIXES)
@pytest.mark.parametrize(
    "proxy_node",
    [
        "198.51.100.9",
        '"198.51.100.9:4711"',
        '"[2001:db8:cafe::17]:4711"',
        '"[2001:db8:cafe::17]"',
        "2001:db8:cafe::17",  # unquoted, as many proxy configurations write it
        "[2001:db8:cafe::17]:4711",
    ],
)
def test_forwarded_hostile_prefix_changes_nothing(prefix: str, proxy_node: str) -> None:
    proxy_part = f"for={proxy_node};proto=https"
    expected_cidr = ClientIP(TRUSTED, header="forwarded")(
        View(PROXY, "forwarded", [proxy_part])
    )
    expected_count = ClientIP(1, header="forwarded")(View(PROXY, "forwarded", [proxy_part]))
    assert expected_cidr in ("198.51.100.9", "2001:db8:cafe::/64")
    assert expected_count == expected_cidr
    for view in (
        View(PROXY, "forwarded", [appended(prefix, proxy_part)]),  # appended to the field
        View(PROXY, "forwarded", [prefix, proxy_part]),  # a field of its own
        JoinedView(PROXY, "forwarded", [prefix, proxy_part]),  # fields joined by the server
    ):
        assert ClientIP(TRUSTED, header="forwarded")(view) == expected_cidr, view._fields
        assert ClientIP(1, header="forwarded")(view) == expected_count, view._fields


def test_forwarded_unterminated_quote_swallowing_the_proxy_hop() -> None:
    # The exact case: before the fix this chose 1.2.3.4.
    value = 'for=1.2.3.4;x=", for=198.51.100.9'
    assert ClientIP(TRUSTED, header="forwarded")(View(PROXY, "forwarded", [value])) == REAL
    assert ClientIP(1, header="forwarded")(View(PROXY, "forwarded", [value])) == REAL
    assert ClientIP(2, header="forwarded")(
        View(PROXY, "forwarded", ['for=1.2.3.4;x=", for=198.51.100.9, for=10.0.0.1'])
    ) == REAL


def test_forwarded_unreadable_trusted_part_falls_back_to_what_proxies_vouch_for() -> None:
    # Nothing right of the client's garbage: the proxies vouch only for the peer.
    assert ClientIP(TRUSTED, header="forwarded")(View(PROXY, "forwarded", ['for="1.2.3.4'])) == (
        PROXY
    )
    assert ClientIP(1, header="forwarded")(View(PROXY, "forwarded", ['for="1.2.3.4'])) == PROXY
    # Two proxies, the first one's hop readable, the client's not: that hop.
    two = ClientIP(2, header="forwarded")
    assert two(View(PROXY, "forwarded", ['for="1.2.3.4, for=10.0.0.1'])) == "10.0.0.1"
    # CIDRs: a trusted hop, then unreadable text: the last trusted hop.
    cidr = ClientIP(TRUSTED, header="forwarded")
    assert cidr(View(PROXY, "forwarded", ['for="1.2.3.4, for=10.0.0.1'])) == "10.0.0.1"
    # The proxy wrote "unknown" / an obfuscated node for the client.
    for node in ("unknown", "_hidden", '"_hidden"'):
        assert cidr(View(PROXY, "forwarded", [f'for=6.6.6.6;x=", for={node}'])) == PROXY
        assert ClientIP(1, header="forwarded")(
            View(PROXY, "forwarded", [f"for=6.6.6.6, for={node}"])
        ) == PROXY


def test_forwarded_parser_reads_well_formed_values_whole() -> None:
    assert parse_forwarded('for="a,b";by=x, proto=https, FOR="[::1]"') == ["a,b", "", "[::1]"]
    assert parse_forwarded('for="q\\"uote"') == ['q"uote']
    assert parse_forwarded(" for=1.1.1.1 ; proto=http ,, for=2.2.2.2 ;") == ["1.1.1.1", "2.2.2.2"]
    # Malformed: read from the right up to the first unreadable element.
    assert parse_forwarded('for=1.2.3.4;x=", for=5.6.7.8') == ["", "5.6.7.8"]
    assert parse_forwarded("for=1;for=2, for=3") == ["", "3"]
    assert parse_forwarded('for="x') == [""]


XFF_PREFIXES = [
    "6.6.6.6",
    '"6.6.6.6',
    "6.6.6.6,,,",
    ",",
    "[2001:db8::66]:80",
    "2001:db8::66",
    "unknown, _hidden",
    "6.6.6.6 7.7.7.7",
    ";;=",
]


@pytest.mark.parametrize("prefix", XFF_PREFIXES)
@pytest.mark.parametrize("node", ["198.51.100.9", "198.51.100.9:4711", "[2001:db8::17]:443"])
def test_x_forwarded_for_hostile_prefix_changes_nothing(prefix: str, node: str) -> None:
    clean = View(PROXY, "x-forwarded-for", [node])
    for mode in (TRUSTED, 1):
        want = ClientIP(mode)(clean)
        assert want in ("198.51.100.9", "2001:db8::/64")
        for view in (
            View(PROXY, "x-forwarded-for", [appended(prefix, node)]),
            View(PROXY, "x-forwarded-for", [prefix, node]),
            JoinedView(PROXY, "x-forwarded-for", [prefix, node]),
        ):
            assert ClientIP(mode)(view) == want


# ------------------------------------------------------------------ fuzzing

_CLIENT_TEXT = st.text(
    alphabet=st.sampled_from(
        list('"\\,;= \t[]:_.-') + list("forFORunknwxy0123456789abcdef")
    ),
    max_size=40,
)
_CLIENT_PIECES = st.lists(
    st.one_of(
        _CLIENT_TEXT,
        st.sampled_from(
            [
                "for=",
                'for="',
                "for=unknown",
                "for=_x",
                'for="[2001:db8::6]:1"',
                "for=6.6.6.6",
                ";proto=http",
                '\\"',
                ", ",
            ]
        ),
    ),
    max_size=6,
).map("".join)

_REAL_NODES = st.sampled_from(
    [
        ("198.51.100.9", "198.51.100.9"),
        ('"198.51.100.9:8080"', "198.51.100.9:8080"),
        ('"[2001:db8:cafe::17]:4711"', "[2001:db8:cafe::17]:4711"),
        ('"[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
        ("2001:db8:cafe::17", "2001:db8:cafe::17"),
        ("unknown", "unknown"),
        ("_obf", "_obf"),
    ]
)
_EXTRA = st.sampled_from(["", ";proto=https", ";by=_lb;proto=http", ";host=example.com"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    client=st.lists(_CLIENT_PIECES, min_size=0, max_size=3),
    real=_REAL_NODES,
    extra=_EXTRA,
    proxies=st.integers(min_value=1, max_value=3),
    forwarded=st.booleans(),
    layout=st.sampled_from(["appended", "fields", "joined"]),
)
def test_fuzz_client_part_never_changes_the_key(
    client: list[str], real: tuple[str, str], extra: str, proxies: int, forwarded: bool,
    layout: str,
) -> None:
    """The trusted proxies write `proxies` hops (the client's address, then
    each inner proxy's); whatever the client sent before them, as one field
    or several, the key is the one chosen when the client sent nothing."""
    header = "forwarded" if forwarded else "x-forwarded-for"
    fwd_node, xff_node = real
    inner = [f"10.0.0.{i + 10}" for i in range(proxies - 1)]
    if forwarded:
        trusted_hops = [f"for={fwd_node}{extra}"] + [f"for={a}" for a in inner]
    else:
        trusted_hops = [xff_node, *inner]
    trusted_part = ", ".join(trusted_hops)
    modes: list[Any] = [proxies, TRUSTED]
    expected = {
        repr(m): ClientIP(m, header=header)(View(PROXY, header, [trusted_part])) for m in modes
    }
    client_fields = [c for c in client if c]
    if layout == "appended":
        views = [View(PROXY, header, [appended(", ".join(client_fields), trusted_part)])]
    elif layout == "fields":
        views = [View(PROXY, header, [*client_fields, trusted_part])]
    else:
        views = [JoinedView(PROXY, header, [*client_fields, trusted_part])]
    for view in views:
        for m in modes:
            assert ClientIP(m, header=header)(view) == expected[repr(m)], (m, view._fields)


# ------------------------------------------------------------------ real apps

ATTACKS = [f'for=203.0.113.{i};x="' for i in range(1, 7)]


def _starlette_app(fw: AsgiFloodwall) -> Starlette:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", home)])
    fw.init_app(app)
    return app


@pytest.mark.parametrize("trusted", [1, TRUSTED])
@pytest.mark.parametrize("layout", ["appended", "fields"])
def test_asgi_forwarded_attack(trusted: Any, layout: str, clock: Any) -> None:
    fw = AsgiFloodwall(
        "3/minute", clock=clock, trusted_proxies=trusted, proxy_header="forwarded"
    )
    c = TestClient(_starlette_app(fw), client=(PROXY, 1))
    codes = []
    for attack in ATTACKS:
        if layout == "appended":
            headers: Any = [("forwarded", f"{attack}, for={REAL}")]
        else:
            headers = [("forwarded", attack), ("forwarded", f"for={REAL}")]
        codes.append(c.get("/", headers=headers).status_code)
    assert codes == [200, 200, 200, 429, 429, 429]


@pytest.mark.parametrize("trusted", [1, TRUSTED])
def test_flask_forwarded_attack(trusted: Any, clock: Any) -> None:
    app = flask.Flask(__name__)

    @app.route("/")
    def home() -> str:
        return "ok"

    FlaskFloodwall(
        app, "3/minute", clock=clock, trusted_proxies=trusted, proxy_header="forwarded"
    )
    c = app.test_client()
    codes = [
        c.get(
            "/",
            headers=[("Forwarded", attack), ("Forwarded", f"for={REAL}")],
            environ_base={"REMOTE_ADDR": PROXY},
        ).status_code
        for attack in ATTACKS
    ]
    assert codes == [200, 200, 200, 429, 429, 429]


def django_home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("", django_home)]


@pytest.mark.parametrize("trusted", [1, TRUSTED])
def test_django_forwarded_attack(trusted: Any, clock: Any) -> None:
    conf = {
        "DEFAULT": "3/minute",
        "CLOCK": clock,
        "TRUSTED_PROXIES": trusted,
        "PROXY_HEADER": "forwarded",
    }
    with override_settings(
        FLOODWALL=conf,
        MIDDLEWARE=["floodwall.integrations.django.FloodwallMiddleware"],
        ROOT_URLCONF=__name__,
    ):
        c = Client(REMOTE_ADDR=PROXY)
        codes = [
            c.get("/", HTTP_FORWARDED=f"{attack}, for={REAL}").status_code for attack in ATTACKS
        ]
    assert codes == [200, 200, 200, 429, 429, 429]
