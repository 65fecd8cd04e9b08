"""Key naming of the network stores (Redis, PostgreSQL): user keys -> key names.

``<namespace>:<algorithm>:{<id>}:<rate>``, where ``id`` stands for the user
key: a 128-bit BLAKE2b of it (keyed by the deployment's secret, if one is
set), or the key itself with ``plain_keys``. The tag in braces is the only
hash tag, so every key of one check lands in one Redis Cluster slot; the
PostgreSQL store uses the very same names as its row keys, so one user key
has one id on every network store.

The key secret is read in exactly one place, :func:`resolve_key_secret`:
the ``key_secret=`` option, else the ``FLOODWALL_KEY_SECRET`` environment
variable. Without a secret, ids are an unkeyed hash: they hide keys from a
casual reader of the store, but anyone who can read it recovers keys from a
small space (IP addresses, user ids) by hashing every candidate.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Protocol

from floodwall.errors import ConfigError, KeyTypeError

__all__ = ["KEY_SECRET_ENV", "KeyNamer", "QuotaLike", "key_bytes", "resolve_key_secret"]

Key = str | bytes

#: The environment variable every process of a deployment reads its key
#: secret from (when ``key_secret=`` is not given).
KEY_SECRET_ENV = "FLOODWALL_KEY_SECRET"

# The BLAKE2b personalisation of ids: kept from the first network store, so
# ids (and the keys already stored) stay the same on every network store.
_HASH_PERSON = b"floodwall-redis"
_SECRET_MAX = 64  # BLAKE2b's key size


def resolve_key_secret(value: object = None) -> bytes | None:
    """The key secret: ``value`` (str or bytes, at most 64 bytes), else the
    ``FLOODWALL_KEY_SECRET`` environment variable, else None (unkeyed)."""
    source = "key_secret"
    if value is None:
        env = os.environ.get(KEY_SECRET_ENV)
        if not env:
            return None
        value, source = env, KEY_SECRET_ENV
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes) or not value or len(value) > _SECRET_MAX:
        raise ConfigError(
            f"{source} must be a non-empty str or bytes of at most {_SECRET_MAX} bytes "
            "(e.g. 32 random bytes, hex-encoded)"
        )
    return value


def escape(raw: bytes) -> bytes:
    """Make text safe inside a key name: no hash-tag braces, reversible."""
    return raw.replace(b"%", b"%25").replace(b"{", b"%7B").replace(b"}", b"%7D")


def glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for ch in raw:
        if ch in b"*?[]\\":
            out += b"\\"
        out.append(ch)
    return bytes(out)


def key_bytes(key: object) -> bytes:
    """A user key as bytes; KeyTypeError (the caller's mistake) otherwise."""
    if isinstance(key, str):
        return key.encode("utf-8", "surrogatepass")
    if isinstance(key, bytes):
        return key
    raise KeyTypeError(f"key must be str or bytes, not {type(key).__name__}")


class QuotaLike(Protocol):
    """What key naming reads of a normalised quota."""

    @property
    def rate(self) -> int: ...
    @property
    def period_ns(self) -> int: ...
    @property
    def burst(self) -> int: ...


def _rate_tag(q: QuotaLike) -> str:
    """The rate part of a key name: quotas that differ never share state."""
    if q.burst == q.rate:
        return f"{q.rate}/{q.period_ns}"
    return f"{q.rate}/{q.period_ns}/{q.burst}"


class KeyNamer:
    """Turns user keys into key names for one limit spec.

    ``<namespace>:<algorithm>:{<id>}:<rate>`` by default. With ``hash_tag``
    (a constant, or a function of the user key) the tag is that instead,
    and the key's id follows it: ``<namespace>:<algorithm>:{<tag>}:<id>:<rate>``.
    """

    __slots__ = ("_hash_tag", "_key_secret", "_plain", "_prefix", "_rate_tags", "pattern")

    def __init__(
        self,
        namespace: str,
        algorithm: str,
        quotas: Sequence[QuotaLike],
        *,
        plain_keys: bool = False,
        key_secret: bytes | None = None,
        hash_tag: str | bytes | Callable[[Key], Key] | None = None,
    ) -> None:
        ns = escape(namespace.encode("utf-8", "surrogatepass"))
        self._prefix = ns + b":" + algorithm.encode() + b":{"
        self.pattern = glob_escape(ns + b":" + algorithm.encode() + b":") + b"*"
        self._rate_tags = tuple(b"}:" + _rate_tag(q).encode() for q in quotas)
        self._plain = plain_keys
        self._key_secret = key_secret or b""
        if hash_tag is not None and not callable(hash_tag):
            hash_tag = escape(key_bytes(hash_tag))
        self._hash_tag: bytes | Callable[[Key], Key] | None = hash_tag

    @property
    def deterministic(self) -> bool:
        """Does a user key always give the same key names (no hash_tag
        function to call)? Then they may be remembered."""
        return not callable(self._hash_tag)

    @property
    def plain(self) -> bool:
        return self._plain

    @property
    def key_secret(self) -> bytes | None:
        return self._key_secret or None

    def ident(self, raw: bytes) -> bytes:
        """The part of a key name that stands for a user key."""
        if self._plain:
            return escape(raw)
        h = hashlib.blake2b(raw, digest_size=16, key=self._key_secret, person=_HASH_PERSON)
        return h.hexdigest().encode()

    def keys(self, key: Key) -> list[bytes]:
        """One key name per rate, all with the same hash tag."""
        raw = key_bytes(key)
        tag = self._hash_tag
        if tag is None:
            head = self._prefix + self.ident(raw)
            return [head + r for r in self._rate_tags]
        tag_bytes = tag if isinstance(tag, bytes) else self.ident(key_bytes(tag(key)))
        head = self._prefix + tag_bytes + b"}:" + self.ident(raw) + b":"
        return [head + r[2:] for r in self._rate_tags]
