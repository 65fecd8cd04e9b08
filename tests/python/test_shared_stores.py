# The shm:// and file:// stores: URL and keyword options, one table per
# process and name, exactness across processes (4 processes x 2 threads), the
# inspection helpers and doctor.
from __future__ import annotations

import multiprocessing
import os
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import floodwall
from floodwall import _native, ops
from floodwall.errors import ConfigError, StoreError
from floodwall.stores import shared

FORK = multiprocessing.get_context("fork")


@pytest.fixture
def shm_url() -> Iterator[str]:
    url = f"shm://fwtest-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield url
    shared.unlink_shm(url)


@pytest.fixture
def file_url(tmp_path: Path) -> Iterator[str]:
    url = f"file://{tmp_path}/sub/dir/table.fw"
    yield url
    shared.forget(url)


# ---- options ---------------------------------------------------------------------


def test_url_options(shm_url: str, file_url: str) -> None:
    lim = floodwall.Limiter("10/minute", store=f"{shm_url}?max_keys=1000")
    info = _native.table_info(lim.backend.table)  # type: ignore[attr-defined]
    assert info["max_keys"] == 1000 and info["store"] == shm_url
    assert info["clock_realtime"] is True

    lim = floodwall.Limiter(
        "10/minute", store=f"{file_url}?sync=interval&sync_interval_ms=50&max_keys=200"
    )
    info = _native.table_info(lim.backend.table)  # type: ignore[attr-defined]
    assert info["max_keys"] == 200 and info["store"] == file_url
    assert lim.allow("a")


def test_keyword_options(shm_url: str, file_url: str) -> None:
    lim = floodwall.Limiter("10/minute", store=shm_url, max_keys=300)
    assert _native.table_info(lim.backend.table)["max_keys"] == 300  # type: ignore[attr-defined]
    lim = floodwall.Limiter("10/minute", store=file_url, max_keys=400, sync="always")
    assert _native.table_info(lim.backend.table)["max_keys"] == 400  # type: ignore[attr-defined]
    assert lim.check("k").remaining == 9


@pytest.mark.parametrize(
    ("suffix", "options", "phrase"),
    [
        ("?colour=red", {}, "unknown URL option"),
        ("", {"colour": "red"}, "unknown keyword option"),
        ("?max_keys=lots", {}, "max_keys must be an integer"),
        ("?max_keys=0", {}, "max_keys must be between"),
        ("?sync=sometimes", {}, "sync must be one of"),
        ("?sync=always&sync_interval_ms=5", {}, "sync=interval only"),
        ("?sync=interval&sync_interval_ms=0", {}, "sync_interval_ms must be between"),
    ],
)
def test_bad_file_options(file_url: str, suffix: str, options: dict[str, Any], phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        floodwall.Limiter("1/second", store=file_url + suffix, **options)


def test_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absolute path"):
        floodwall.Limiter("1/second", store="file://relative/table.fw")
    with pytest.raises(ConfigError, match="needs a name"):
        floodwall.Limiter("1/second", store="shm://")
    with pytest.raises(ValueError, match="shm name"):
        floodwall.Limiter("1/second", store="shm://a/b")
    with pytest.raises(ConfigError, match="unknown URL option"):
        floodwall.Limiter("1/second", store="shm://x?sync=always")


def test_sync_interval_alone_means_interval(file_url: str) -> None:
    lim = floodwall.Limiter("5/second", store=file_url, sync_interval_ms=20)
    assert lim.allow("x")
    # the same file, another sync mode, in the same process: refused clearly
    with pytest.raises(ConfigError, match="sync=interval"):
        floodwall.Limiter("5/second", store=file_url, sync="always")


def test_file_created_with_mode_and_parents(file_url: str) -> None:
    floodwall.Limiter("1/second", store=file_url).allow("x")
    path = Path(shared.file_path(file_url))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # nothing else left next to it (the temporary file was linked and removed)
    assert [p.name for p in path.parent.iterdir()] == ["table.fw"]


def test_shm_mode(shm_url: str) -> None:
    floodwall.Limiter("1/second", store=shm_url).allow("x")
    dev = Path("/dev/shm") / shared.shm_name(shm_url)
    if dev.exists():
        assert stat.S_IMODE(dev.stat().st_mode) == 0o600


def test_one_table_per_process_and_check_all(shared_url: str) -> None:
    a = floodwall.Limiter("3/minute", store=shared_url, namespace="a")
    b = floodwall.Limiter("5/minute", store=shared_url, namespace="b")
    assert a.backend.table is b.backend.table  # type: ignore[attr-defined]
    d = floodwall.check_all([(a, "k"), (b, "k")])
    assert d.allowed
    assert a.peek("k").remaining == 2 and b.peek("k").remaining == 4
    # namespaces keep the keys apart
    for _ in range(2):
        a.check("k")
    assert not a.allow("k") and b.allow("k")


def test_larger_max_keys_refused(shared_url: str) -> None:
    floodwall.Limiter("1/second", store=shared_url, max_keys=100).allow("x")
    with pytest.raises((ConfigError, StoreError), match="max_keys=100.*cannot grow"):
        floodwall.Limiter("1/second", store=shared_url, max_keys=1000)
    # a new mapping (as a new process would make) is refused by the engine
    shared.forget(shared_url)
    with pytest.raises(StoreError, match="max_keys=100.*max_keys=1000.*cannot grow"):
        floodwall.Limiter("1/second", store=shared_url, max_keys=1000)
    # smaller or unspecified: the existing table
    lim = floodwall.Limiter("1/second", store=shared_url, max_keys=10)
    assert _native.table_info(lim.backend.table)["max_keys"] == 100  # type: ignore[attr-defined]


def test_sliding_log_needs_room(shared_url: str) -> None:
    floodwall.Limiter("5/second", store=shared_url, algorithm="sliding_log").allow("x")
    shared.forget(shared_url)
    with pytest.raises(StoreError, match="sliding logs hold 5 entries"):
        floodwall.Limiter("50/second", store=shared_url, algorithm="sliding_log")
    lim = floodwall.Limiter("4/second", store=shared_url, algorithm="sliding_log")
    assert [lim.allow("y") for _ in range(5)] == [True] * 4 + [False]


def test_shared_state_between_two_mappings(shared_url: str) -> None:
    a = floodwall.Limiter("4/hour", store=shared_url)
    a.check("u", 3)
    shared.forget(shared_url)
    b = floodwall.Limiter("4/hour", store=shared_url)
    assert a.backend.table is not b.backend.table  # type: ignore[attr-defined]
    assert b.peek("u").remaining == 1
    assert b.allow("u") and not a.allow("u")


def test_unlink_shm(shm_url: str) -> None:
    lim = floodwall.Limiter("1/second", store=shm_url)
    assert lim.allow("x")
    assert shared.unlink_shm(shm_url) is True
    assert shared.unlink_shm(shm_url) is False
    with pytest.raises(FileNotFoundError, match="shm object"):
        shared.unlink_shm(shm_url, missing_ok=False)
    # a limiter still holding the mapping keeps working
    assert not lim.allow("x")


def test_open_errors_name_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match=str(blocker)):
        floodwall.Limiter("1/second", store=f"file://{blocker}/t.fw")
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        floodwall.Limiter("1/second", store=f"file://{tmp_path}")
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        _native.open_file(str(tmp_path / "nothing-here.fw"), create=False)


# ---- exactness across processes -----------------------------------------------------


def _hammer(
    url: str,
    rate: str,
    keys: list[str],
    rounds: int,
    threads: int,
    barrier: Any,
    results: Any,
    fixed_now: int | None,
) -> None:
    clock = (lambda: fixed_now) if fixed_now is not None else None
    lim = floodwall.Limiter(rate, store=url, namespace="exact", clock=clock)
    admitted = [0] * threads

    def run(t: int) -> None:
        count = 0
        for r in range(rounds):
            for i in range(len(keys)):
                count += lim.allow(keys[(i + t + r) % len(keys)])
        admitted[t] = count

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    barrier.wait()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    results.put(sum(admitted))


def count_admitted(
    url: str,
    rate: str,
    keys: list[str],
    rounds: int,
    *,
    processes: int = 4,
    threads: int = 2,
    fixed_now: int | None = None,
) -> int:
    barrier = FORK.Barrier(processes)
    results = FORK.Queue()
    procs = [
        FORK.Process(
            target=_hammer,
            args=(url, rate, keys, rounds, threads, barrier, results, fixed_now),
        )
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    total = sum(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return total


def test_exact_one_key_four_processes(shared_url: str) -> None:
    # 4 processes x 2 threads x 200 tries at one instant: exactly 1000
    now = time.time_ns()
    assert count_admitted(shared_url, "1000/hour", ["hot"], 200, fixed_now=now) == 1000
    lim = floodwall.Limiter("1000/hour", store=shared_url, namespace="exact", clock=lambda: now)
    assert lim.peek("hot").remaining == 0


def test_exact_one_key_real_clock(shared_url: str) -> None:
    # the store's own clock (CLOCK_REALTIME): one unit refills every 3.6 s
    admitted = count_admitted(shared_url, "1000/hour", ["hot"], 200)
    assert 1000 <= admitted <= 1001


def test_exact_distinct_keys(shared_url: str) -> None:
    # 1000 keys at once, 5/hour each, 8 workers try each key twice
    keys = [f"user-{i}" for i in range(1000)]
    # the table is opened before the fork: children inherit the mapping
    parent = floodwall.Limiter("5/hour", store=shared_url, namespace="exact")
    assert count_admitted(shared_url, "5/hour", keys, 2) == 5000
    assert all(parent.peek(k).remaining == 0 for k in keys)
    assert parent.stats()["active_keys"] == 1000


# ---- inspection and doctor ----------------------------------------------------------


def test_inspect_and_hottest(shared_url: str) -> None:
    lim = floodwall.Limiter("100/minute; 1000/hour", store=shared_url, namespace="ins")
    for i in range(20):
        lim.check(f"k{i}", i + 1)
    info = ops.inspect(lim, "k19")
    assert [i["present"] for i in info] == [True, True]
    assert info[0]["decision"].remaining == 80 and info[1]["decision"].remaining == 980
    assert info[0]["slot"]["expiry_ns"] > info[0]["now_ns"]
    # inspecting consumes nothing
    assert ops.inspect(lim, "k19")[0]["decision"].remaining == 80
    assert ops.inspect(lim, "never")[0]["present"] is False

    hot = ops.hottest(lim, 3)
    assert len(hot) == 3
    fingerprints = {i["fingerprint"] for i in ops.inspect(lim, "k19")}
    assert hot[0]["fingerprint"] in fingerprints
    assert hot[0]["expiry_ns"] >= hot[1]["expiry_ns"] >= hot[2]["expiry_ns"]
    assert len(ops.hottest(lim, 1000)) == 40  # two rates x 20 keys
    assert ops.hottest(shared_url, 1)[0]["fingerprint"] == hot[0]["fingerprint"]


def test_hottest_never_creates(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ops.hottest(f"file://{tmp_path}/absent.fw")
    assert not (tmp_path / "absent.fw").exists()
    with pytest.raises(FileNotFoundError):
        ops.hottest(f"shm://fwtest-absent-{uuid.uuid4().hex}")


def test_doctor_healthy(shared_url: str) -> None:
    lim = floodwall.Limiter("10/minute", store=shared_url, max_keys=500)
    for i in range(30):
        lim.allow(f"d{i}")
    report = ops.doctor(shared_url)
    assert report["ok"] is True, report["problem"]
    assert report["used_slots"] == 30 and report["active_keys"] == 30
    assert report["max_keys"] == 500 and report["bad_slots"] == 0
    assert report["file_bytes"] == report["expected_bytes"]


def test_doctor_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent"):
        ops.doctor(tmp_path / "absent.fw")
