# Shared pytest fixtures: the store URLs every store-parametrized behaviour
# runs on, and a fake clock so timing-dependent tests are deterministic.
# A store that cannot be opened fails the test loudly: nothing is skipped.
from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# real redis-server, PostgreSQL and `floodwall serve` fixtures (started by
# the tests, never skipped)
pytest_plugins = ["redis_servers", "postgres_servers", "floodwall_servers"]

#: Every store the store-parametrized tests run on. "redis://" is a real
#: redis-server started for the session (see redis_servers.py),
#: "postgresql://" a real PostgreSQL server (see postgres_servers.py), and
#: "http://" a real `floodwall serve` with 2 workers (see floodwall_servers.py).
STORE_URLS: tuple[str, ...] = (
    "memory://", "shm://", "file://", "redis://", "postgresql://", "http://"
)


def unique_store_url(base: str) -> str:
    """A fresh store of kind `base`, private to one test."""
    tag = f"fwtest-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    if base == "shm://":
        return f"shm://{tag}"
    if base == "file://":
        return f"file://{tempfile.gettempdir()}/floodwall-tests/{tag}.fw"
    return base


def remove_store(url: str) -> None:
    """Delete what a test store left behind (shm object or file)."""
    if url.startswith("shm://"):
        from floodwall import _native

        unlink = getattr(_native, "unlink_shm", None)
        if unlink is not None:
            try:
                unlink(url[len("shm://"):])
            except OSError:
                pass
    elif url.startswith("file://"):
        path = url[len("file://"):].split("?", 1)[0]
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class FakeClock:
    """A settable clock in int nanoseconds, for Limiter(clock=...)."""

    def __init__(self, start_ns: int = 1_700_000_000 * 1_000_000_000) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1_000_000_000)


@pytest.fixture(params=STORE_URLS)
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "redis://":
        # flushed for this test; a generous timeout: this tests decisions,
        # not failure handling (test_redis_failure.py does that)
        yield request.getfixturevalue("redis_url") + "?timeout=10"
        return
    if request.param == "postgresql://":
        # the floodwall table emptied for this test; a generous timeout
        # (test_postgres_failure.py tests failures)
        yield request.getfixturevalue("postgres_url") + "?timeout=10"
        return
    if request.param == "http://":
        yield request.getfixturevalue("remote_store_url")
        return
    url = unique_store_url(request.param)
    yield url
    remove_store(url)


@pytest.fixture(params=["shm", "file"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh shm:// or file:// table URL, removed (and unmapped) afterwards."""
    from floodwall.stores import shared

    if request.param == "shm":
        url = f"shm://fwtest-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    else:
        url = f"file://{tmp_path}/table.fw"
    yield url
    if request.param == "shm":
        shared.unlink_shm(url)
    else:
        shared.forget(url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
