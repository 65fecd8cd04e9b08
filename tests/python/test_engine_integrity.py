"""The engine's distrust of stored state, seen from Python: a clock
excursion never locks a key out for long, damaged and clamped states are
counted in ``stats()``, the engine's facts are exported once, and a lock
that stays held becomes ``StoreBusyError`` (a ``StoreError``)."""

from __future__ import annotations

import mmap
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

import floodwall
from floodwall import _native
from floodwall.errors import StoreBusyError, StoreError

DAY = 86_400 * 10**9
S = 10**9


def test_clock_excursion_does_not_lock_out() -> None:
    now = [1_000 * DAY]
    for algorithm in _native.ALGORITHMS:
        lim = floodwall.Limiter(
            "10/minute", algorithm=algorithm, clock=lambda: now[0], namespace=algorithm
        )
        now[0] = 1_000 * DAY + DAY  # the clock jumps a day ahead
        for _ in range(10):
            assert lim.check("user").allowed
        now[0] = 1_000 * DAY  # and comes back
        d = lim.check("user")
        horizon = 120 * S if algorithm == "sliding_window" else 60 * S
        assert d.retry_after_ns <= horizon, (algorithm, d)
        assert d.reset_after_ns <= horizon, (algorithm, d)
        now[0] += horizon
        assert lim.check("user").allowed, algorithm
        assert lim.stats()["clamped_states"] >= 1, algorithm


def test_engine_facts_exported_once() -> None:
    assert _native.ALGORITHMS == (
        "gcra",
        "token_bucket",
        "leaky_bucket",
        "leaky_bucket_shaping",
        "fixed_window",
        "sliding_window",
        "sliding_log",
    )
    assert _native.ALGORITHMS[_native.SLIDING_LOG] == "sliding_log"
    assert _native.MAX_KEYS_MAX == 2**36
    assert _native.DEFAULT_MAX_KEYS == 65_536
    assert _native.LOG_CAPACITY_MAX == _native.SLIDING_LOG_MAX == 65_536
    table = _native.Table()
    assert table.stats(0)["max_keys"] == 0  # memory tables grow; no cap unless asked


def test_busy_is_a_store_error() -> None:
    assert issubclass(StoreBusyError, StoreError)


def test_stats_count_damage() -> None:
    lim = floodwall.Limiter("5/hour", clock=lambda: 10 * S)
    lim.check("k")
    stats = lim.stats()
    assert stats["damaged_states"] == 0 and stats["clamped_states"] == 0
    assert lim.backend.table.damaged() == []  # type: ignore[attr-defined]


# The table header's stripe locks (src/table.h): 256 words from offset 136.
STRIPES_AT, STRIPES = 136, 256


def lock_word(pid: int) -> int:
    """The word a live process `pid` writes when it holds a lock (src/lock.h)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start = int(fields[19])  # field 22 of the whole line
    return (pid << 42) | ((start & (2**26 - 1)) << 16) | 1


def table_path(url: str) -> str:
    if url.startswith("shm://"):
        return "/dev/shm/" + url[len("shm://") :]
    return url[len("file://") :]


@pytest.fixture
def stopped_process() -> Iterator[int]:
    child = subprocess.Popen(["sleep", "60"])
    os.kill(child.pid, signal.SIGSTOP)
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_stopped_lock_owner_is_a_bounded_store_outage(
    shared_url: str, stopped_process: int
) -> None:
    lim = floodwall.Limiter("5/minute", store=shared_url, namespace="busy")
    assert lim.check("old").allowed
    word = lock_word(stopped_process)
    with open(table_path(shared_url), "r+b") as f, mmap.mmap(f.fileno(), 4096) as mem:
        for i in range(STRIPES):
            struct.pack_into("<Q", mem, STRIPES_AT + 8 * i, word)
    # a new key needs a stripe lock that a stopped process holds: the check
    # gives up within the bound, and the failure policy decides
    started = time.monotonic()
    with pytest.raises(StoreBusyError, match="not acquired in time"):
        lim.check("new")
    assert time.monotonic() - started < 1.0
    assert lim.check("old").allowed  # an existing key needs no lock
    open_lim = floodwall.Limiter("5/minute", store=shared_url, namespace="busy", fail="open")
    d = open_lim.check("new-too")
    assert d.allowed and d.fallback
    closed = floodwall.Limiter("5/minute", store=shared_url, namespace="busy", fail="closed")
    d = closed.check("new-three")
    assert not d.allowed and d.fallback
    # once the owner is gone, its locks are taken over
    os.kill(stopped_process, signal.SIGKILL)
    os.waitpid(stopped_process, 0)
    assert lim.check("new").allowed


def test_reused_pid_does_not_hold_a_lock(shared_url: str, stopped_process: int) -> None:
    lim = floodwall.Limiter("5/minute", store=shared_url, namespace="reuse")
    # a live process, but not the incarnation that wrote the word: pid reuse
    word = lock_word(stopped_process) ^ (1 << 16)
    with open(table_path(shared_url), "r+b") as f, mmap.mmap(f.fileno(), 4096) as mem:
        for i in range(STRIPES):
            struct.pack_into("<Q", mem, STRIPES_AT + 8 * i, word)
    started = time.monotonic()
    assert lim.check("new").allowed
    assert time.monotonic() - started < 0.02
