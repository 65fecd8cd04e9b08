"""A limiter opened on another limiter's Redis or PostgreSQL store
(``store=limiter.store``) shares its connection and holds one reference on
it; a limiter whose options are refused holds none, so the connection is
still closed when the last real user closes (no reference leaks)."""

from __future__ import annotations

import pytest

import floodwall
from floodwall.errors import ConfigError


@pytest.mark.parametrize("kind", ["redis", "postgresql"])
def test_a_refused_sharer_takes_no_reference(kind: str, redis_url: str,
                                              postgres_url: str) -> None:
    url = redis_url if kind == "redis" else postgres_url
    first = floodwall.Limiter("5/minute", store=url, namespace=f"refs-{kind}")
    conn = first.store.conn
    users = conn.users
    shared = floodwall.Limiter("9/minute", store=first.store, namespace=f"refs2-{kind}")
    assert conn.users == users + 1
    shared.close()
    assert conn.users == users
    # a bad option (refused as options are read), a bad secret (refused as
    # the backend is built, after the reference was taken)
    for bad in ({"plain_keys": "perhaps"}, {"key_secret": b"x" * 65}):
        with pytest.raises(ConfigError):
            floodwall.Limiter("9/minute", store=first.store, **bad)
        assert conn.users == users, bad
    first.close()
