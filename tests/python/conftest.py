# Shared pytest fixtures for the Python tests: the store URLs every behaviour
# runs on, and a fake clock so timing-dependent tests are deterministic.
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

#: Every store URL the store-parametrized tests run on. "shm://" gets a unique
#: object name per test; schemes the build does not support yet are skipped.
STORE_URLS: tuple[str, ...] = ("memory://", "shm://")


def unique_store_url(base: str) -> str:
    if base == "shm://":
        return f"shm://fwtest-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return base


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
    url = unique_store_url(request.param)
    import floodwall

    try:
        floodwall.Limiter("1/second", store=url)
    except Exception as exc:  # scheme not built yet on this tree
        pytest.skip(f"store {request.param} unavailable: {exc}")
    yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
