"""Capacity of the native stores (issue 11): ``max_keys`` is exact on
memory://, shm:// and file://, and memory:// has no hidden ceiling."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeClock

import floodwall
from floodwall import _native, ops
from floodwall.cli import doctor as doctor_cli
from floodwall.stores import shared


@pytest.fixture(params=["memory", "shm", "file"])
def native_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh native store URL of each kind, removed afterwards."""
    if request.param == "memory":
        yield "memory://"
        return
    if request.param == "shm":
        url = f"shm://fwtest-cap-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    else:
        url = f"file://{tmp_path}/cap-{uuid.uuid4().hex[:8]}.fw"
    yield url
    if request.param == "shm":
        shared.unlink_shm(url)
    else:
        shared.forget(url)


def fresh_url(url: str, tmp_path: Path, i: int) -> str:
    """Table number i of the kind of `url` (memory:// is fresh every time)."""
    if url.startswith("shm://"):
        return f"{url}-{i}"
    if url.startswith("file://"):
        return f"file://{tmp_path}/cap-{i}.fw"
    return url


@pytest.mark.parametrize("max_keys", [1, 100, 1000])
def test_max_keys_live_keys_fit_then_the_next_is_refused(
    native_url: str, tmp_path: Path, max_keys: int
) -> None:
    tables = 5 if max_keys == 1000 else 2
    for i in range(tables):
        url = fresh_url(native_url, tmp_path, i)
        try:
            lim = floodwall.Limiter("10/hour", store=url, max_keys=max_keys)
            admitted = sum(lim.allow(f"user-{k}") for k in range(max_keys))
            assert admitted == max_keys, f"table {i}: {admitted} of {max_keys} keys fit"
            with pytest.raises(floodwall.StoreFullError):
                lim.allow("one-more")
            assert lim.check("user-0").remaining == 8  # a key already in still works
            stats = lim.stats()
            assert stats["keys"] == max_keys and stats["max_keys"] == max_keys
            assert stats["active_keys"] == max_keys and stats["full_errors"] == 1
        finally:
            if url.startswith("shm://") and url != native_url:
                shared.unlink_shm(url)


def test_expired_keys_make_room_at_the_cap(native_url: str) -> None:
    clock = FakeClock()
    lim = floodwall.Limiter("1/second", store=native_url, max_keys=500, clock=clock)
    assert all(lim.allow(f"a-{k}") for k in range(500))
    with pytest.raises(floodwall.StoreFullError):
        lim.allow("b-0")
    clock.advance(2)  # every key is fresh again
    assert all(lim.allow(f"b-{k}") for k in range(500))
    with pytest.raises(floodwall.StoreFullError):
        lim.allow("c-0")


def test_full_table_goes_to_the_failure_policy(native_url: str) -> None:
    lim = floodwall.Limiter("10/hour", store=native_url, max_keys=10, fail="open")
    assert all(lim.allow(f"k{i}") for i in range(10))
    decision = lim.check("k-new")
    assert decision.allowed and decision.fallback


def test_default_memory_store_has_no_ceiling() -> None:
    lim = floodwall.Limiter("10/hour")
    assert all(lim.allow(f"203.0.113.{k}") for k in range(200_000))
    stats = lim.stats()
    assert stats["keys"] == 200_000 and stats["active_keys"] == 200_000
    assert stats["full_errors"] == 0 and stats["max_keys"] == 0


def test_default_memory_store_starts_small() -> None:
    lim = floodwall.Limiter("10/hour")
    info = _native.table_info(lim.backend.table)  # type: ignore[attr-defined]
    assert info["grows"] is True and info["bytes"] < 64 * 1024 and info["max_keys"] == 0


def test_memory_stays_bounded_for_churning_expired_keys() -> None:
    clock = FakeClock()
    lim = floodwall.Limiter("1/second", clock=clock)
    table = lim.backend.table  # type: ignore[attr-defined]
    most = 0
    for k in range(100_000):
        assert lim.allow(f"visitor-{k}")
        clock.now += 100_000_000  # 0.1 s: about ten keys are live at a time
        if k % 500 == 0:
            most = max(most, _native.table_info(table)["slots"])
    assert most <= 1024, f"the table grew to {most} slots for about 10 live keys"


def test_eight_threads_on_one_key_stay_exact_while_the_table_grows() -> None:
    lim = floodwall.Limiter("1000/hour")
    admitted = [0] * 8
    start = threading.Barrier(8)

    def run(i: int) -> None:
        start.wait()
        for n in range(400):
            admitted[i] += lim.allow("hot")
            lim.allow(f"cold-{i}-{n}")  # new keys: the table rebuilds meanwhile

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 1000
    assert lim.stats()["keys"] == 1 + 8 * 400


def test_stats_and_doctor_show_the_fill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"file://{tmp_path}/fill.fw"
    lim = floodwall.Limiter("10/hour", store=url, max_keys=200)
    for k in range(50):
        lim.allow(f"k{k}")
    assert lim.stats()["keys"] == 50 and lim.stats()["max_keys"] == 200
    report = ops.doctor(url)
    assert report["ok"] and report["keys"] == 50 and report["max_keys"] == 200
    assert doctor_cli.fill_line(report) == "50 of 200 keys (25.0%, 50 live)"
    shared.forget(url)


def test_bad_max_keys_for_memory_names_the_range() -> None:
    with pytest.raises(floodwall.ConfigError, match="max_keys must be between 1 and"):
        floodwall.Limiter("10/hour", max_keys=0)
