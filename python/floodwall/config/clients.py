"""An operator's CLIENT -> the exact key the integrations charge for a named limit.

The integrations charge ``<scope>|<key>`` where ``<key>`` is what the
limit's key function gives (``ip:203.0.113.7``, ``user:alice``,
``hdr:x-api-key:K``, ``path:/login``) and ``<scope>`` is the limit's bucket
(its name by default). An operator knows the client (an IP address, a user
id, a header value), not that spelling: :func:`client_key` builds it, so
"unblock alice" works. Invariant: the key built here is the one
:mod:`floodwall.keys` builds for a request from that client (same IP
normalisation, same IPv6 grouping); a value that cannot be such a client
is an error, never a guess.
"""

from __future__ import annotations

from floodwall.errors import ConfigError
from floodwall.proxies import normalize_ip

__all__ = ["KEY_FORMS", "client_key"]

#: The prefixes a key function writes; a CLIENT written with one is taken as is.
KEY_FORMS = ("ip:", "user:", "hdr:", "path:")


def client_key(
    scope: str, key: str, client: str, *, raw: bool = False, ipv6_prefix: int = 64
) -> str:
    """The key a named limit with bucket ``scope`` and key spec ``key``
    (``"ip"``, ``"user"``, ``"path"``, ``"header:<Name>"``) charges for
    ``client``. ``raw``: ``client`` is the exact key (a key your code passes
    to ``floodwall.named_limiter(name)``), used unchanged."""
    if not isinstance(client, str) or not client:
        raise ConfigError("CLIENT must be a non-empty string")
    if raw:
        return client
    if client.startswith(KEY_FORMS):
        form, _, value = client.partition(":")
        if form == "ip":
            return f"{scope}|{_ip(value, ipv6_prefix)}"
        return f"{scope}|{client}"
    if key == "ip":
        return f"{scope}|{_ip(client, ipv6_prefix)}"
    if key == "user":
        return f"{scope}|user:{client}"
    if key == "path":
        return f"{scope}|path:{client}"
    if key.startswith("header:"):
        return f"{scope}|hdr:{key[7:].strip().lower()}:{client}"
    raise ConfigError(f"the limit's key {key!r} is computed in code: give the exact key "
                      "with --raw")


def _ip(text: str, ipv6_prefix: int) -> str:
    ip = normalize_ip(text.strip(), 32, ipv6_prefix)
    if ip is None:
        raise ConfigError(
            f"{text!r} is not an IP address, and this limit is keyed by client IP; "
            "give an address (203.0.113.7, 2001:db8::1), a typed key "
            "(user:alice), or the exact key with --raw"
        )
    return "ip:" + ip
