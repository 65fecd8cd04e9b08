"""Metrics: exact counters after a known sequence, on every store, scraped
with prometheus_client's own parser; host-wide sums over processes; the
snapshot directory's ownership checks; zero binding when only metrics are on."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import stat
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import floodwall
from floodwall.errors import StoreError
from floodwall.observe.metrics import Metrics
from floodwall.observe.snapshots import SnapshotDir, series_key


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def metrics_dir_of(url: str) -> str | None:
    from floodwall import _native

    if url.startswith("shm://"):
        return _native.shm_path(url[len("shm://"):]) + ".metrics"
    if url.startswith("file://"):
        return url[len("file://"):].split("?", 1)[0] + ".metrics"
    return None


@pytest.fixture
def cleanup_dirs():
    dirs: list[str] = []
    yield dirs
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def test_counters_exact_on_every_store(store_url: str, cleanup_dirs: list[str]) -> None:
    d = metrics_dir_of(store_url)
    if d:
        cleanup_dirs.append(d)
    m = Metrics(units=True)
    ns = f"m{uuid.uuid4().hex[:8]}"
    lim = floodwall.Limiter("5/minute", store=store_url, namespace=ns, name="api", metrics=m)
    other = floodwall.Limiter("1/minute", store=store_url, namespace=ns + "x", name="login",
                              metrics=m)
    for _ in range(7):
        lim.check("alice")  # 5 allowed, 2 denied
    lim.check("bob", 3)  # allowed, 3 units
    lim.check("bob", 3)  # denied (2 left), 3 units denied
    lim.peek("carol")  # a peek is not a decision
    other.check("x")
    other.check("x")
    s = scrape(m)
    scheme = store_url.split(":", 1)[0]
    kind = {"http": "remote"}.get(scheme, scheme)  # the floodwall server is a "remote" store
    assert value(s, "floodwall_decisions_total", limit="api", store=kind, outcome="allowed") == 6
    assert value(s, "floodwall_decisions_total", limit="api", store=kind, outcome="denied") == 3
    assert value(s, "floodwall_decisions_total", limit="api", store=kind, outcome="fallback") == 0
    assert value(s, "floodwall_units_total", limit="api", store=kind, outcome="allowed") == 8
    assert value(s, "floodwall_units_total", limit="api", store=kind, outcome="denied") == 5
    assert value(s, "floodwall_decisions_total", limit="login", store=kind,
                 outcome="allowed") == 1
    assert value(s, "floodwall_decisions_total", limit="login", store=kind,
                 outcome="denied") == 1
    assert value(s, "floodwall_store_errors_total", limit="api", store=kind) == 0
    # no label carries a key
    assert not any("alice" in v or "bob" in v for _, labels in s for _, v in labels)
    if kind in ("shm", "file"):
        t = [k for k in s if k[0] == "floodwall_table_keys"]
        assert len(t) == 1 and s[t[0]] == 3  # alice, bob, x (carol only peeked)
    lim.close()
    other.close()


def test_fallbacks_and_errors_counted(tmp_path: Path) -> None:
    m = Metrics()
    lim = floodwall.Limiter("5/minute", store="memory://", max_keys=16, fail="open",
                            name="tiny", metrics=m)
    admitted = sum(lim.allow(f"k{i}") for i in range(200))
    st = lim.stats()
    assert st["fallbacks"] > 0  # the table filled up
    s = scrape(m)
    fb = value(s, "floodwall_decisions_total", limit="tiny", store="memory", outcome="fallback")
    ok = value(s, "floodwall_decisions_total", limit="tiny", store="memory", outcome="allowed")
    assert fb == st["fallbacks"]
    assert ok + fb == admitted == 200
    assert value(s, "floodwall_store_errors_total", limit="tiny", store="memory") == st["errors"]


def test_closed_fallback_is_not_a_denial() -> None:
    m = Metrics()
    lim = floodwall.Limiter("5/minute", store="memory://", max_keys=16, fail="closed",
                            name="tiny", metrics=m)
    for i in range(100):
        lim.check(f"k{i}")
    s = scrape(m)
    fb = value(s, "floodwall_decisions_total", limit="tiny", store="memory", outcome="fallback")
    ok = value(s, "floodwall_decisions_total", limit="tiny", store="memory", outcome="allowed")
    no = value(s, "floodwall_decisions_total", limit="tiny", store="memory", outcome="denied")
    assert fb > 0 and no == 0 and ok + fb == 100


def _worker(url: str, n: int, barrier) -> None:  # type: ignore[no-untyped-def]
    m = Metrics()
    lim = floodwall.Limiter("1000/minute", store=url, name="api", metrics=m)
    barrier.wait()
    for i in range(n):
        lim.check(f"w{os.getpid()}-{i % 3}")
    m.close()


def test_processes_sum_on_shared_table(shared_url: str, cleanup_dirs: list[str]) -> None:
    d = metrics_dir_of(shared_url)
    assert d
    cleanup_dirs.append(d)
    m = Metrics()
    lim = floodwall.Limiter("1000/minute", store=shared_url, name="api", metrics=m)
    lim.check("parent")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_worker, args=(shared_url, 40 + i, barrier)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    s = scrape(m)
    kind = shared_url.split(":", 1)[0]
    # 1 here + 40 + 41 + 42 in three other processes
    assert value(s, "floodwall_decisions_total", limit="api", store=kind,
                 outcome="allowed") == 124


def test_forked_child_does_not_recount_the_parent(shared_url: str,
                                                  cleanup_dirs: list[str]) -> None:
    d = metrics_dir_of(shared_url)
    assert d
    cleanup_dirs.append(d)
    m = Metrics()
    lim = floodwall.Limiter("1000/minute", store=shared_url, name="api", metrics=m)
    for _ in range(10):
        lim.check("before-fork")
    pid = os.fork()
    if pid == 0:  # the child: 5 checks of its own, written by its own file
        code = 1
        try:
            for _ in range(5):
                lim.check("child")
            m.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    s = scrape(m)
    kind = shared_url.split(":", 1)[0]
    assert value(s, "floodwall_decisions_total", limit="api", store=kind,
                 outcome="allowed") == 15


def test_snapshot_dir_refuses_group_writable(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(StoreError, match="writable by group or others"):
        SnapshotDir(str(d))


def test_snapshot_dir_refuses_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(StoreError, match="symbolic link"):
        SnapshotDir(str(link))


def test_snapshot_dir_refuses_other_owner(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root to give a directory to another user")
    d = tmp_path / "m"
    d.mkdir(mode=0o700)
    os.chown(d, 12345, 12345)
    with pytest.raises(StoreError, match="belongs to uid 12345"):
        SnapshotDir(str(d))


def test_snapshot_reader_skips_hostile_files(tmp_path: Path) -> None:
    snap = SnapshotDir(str(tmp_path / "m"))
    snap.write({series_key("decisions_total", limit="a", store="shm", outcome="allowed"): 4})
    bad = Path(snap.path)
    (bad / "p1-x.json").write_text('{"v":1,"series":[["decisions_total",[],-5]]}')
    (bad / "p2-x.json").write_text("not json")
    (bad / "p3-x.json").symlink_to("/etc/passwd")
    big = bad / "p4-x.json"
    big.write_bytes(b" " * (2 << 20))
    total = snap.read()
    assert total == {series_key("decisions_total", limit="a", store="shm", outcome="allowed"): 4}
    assert snap.skipped == 3  # not json, symlink, too big (the negative value is dropped)
    assert stat.S_IMODE(os.stat(snap.path).st_mode) == 0o700


def test_metrics_only_keeps_the_c_methods() -> None:
    lim = floodwall.Limiter("5/minute", metrics=Metrics())
    assert lim.check == lim.backend.check
    assert type(lim.check).__name__ == "builtin_function_or_method"
    plain = floodwall.Limiter("5/minute")
    assert type(plain.check).__name__ == "builtin_function_or_method"
    assert plain.observer is None


def test_latency_histogram_counts_checks() -> None:
    m = Metrics(latency=True)
    lim = floodwall.Limiter("5/minute", name="lat", metrics=m)
    for _ in range(4):
        lim.check("k")
    s = scrape(m)
    assert value(s, "floodwall_check_seconds_count", limit="lat", store="memory") == 4
    assert value(s, "floodwall_check_seconds_bucket", limit="lat", store="memory",
                 le="+Inf") == 4


def test_latency_histogram_counts_group_checks() -> None:
    m = Metrics(latency=True)
    store = f"memory://lat-{uuid.uuid4().hex[:8]}"
    user = floodwall.Limiter("50/minute", store=store, name="user", metrics=m)
    org = floodwall.Limiter("50/minute", store=store, name="org", metrics=m)
    for _ in range(3):
        assert floodwall.check_all([(user, "u"), (org, "o")]).allowed
    # one group check is one check of each limiter: user once for two
    # parts; org's part of cost 0 is a peek, not timed (as a peek is not)
    assert floodwall.check_all([(user, "u"), (user, "u2"), (org, "o", 0)]).allowed
    assert asyncio.run(floodwall.acheck_all([(user, "u"), (org, "o")])).allowed
    limits = floodwall.Limits({"a": "5/minute", "b": "5/minute"}, name="grp", metrics=m)
    for _ in range(2):
        assert limits.check(a="x", b="y").allowed
    s = scrape(m)
    for limit, checks in (("user", 5), ("org", 4), ("grp:a", 2), ("grp:b", 2)):
        labels = {"limit": limit, "store": "memory"}
        assert value(s, "floodwall_check_seconds_count", **labels) == checks, limit
        assert value(s, "floodwall_check_seconds_bucket", le="+Inf", **labels) == checks
        assert value(s, "floodwall_check_seconds_sum", **labels) > 0


def test_bad_metrics_argument() -> None:
    with pytest.raises(floodwall.ConfigError, match="metrics must be"):
        floodwall.Limiter("5/minute", metrics="yes")


def test_redis_outage_counts_fallbacks_errors_and_breaker(fresh_server) -> None:  # type: ignore[no-untyped-def]
    m = Metrics()
    lim = floodwall.Limiter("5/minute", store=fresh_server.url + "?timeout=0.2", fail="closed",
                            name="r", metrics=m)
    assert lim.check("k").allowed
    fresh_server.kill()
    for _ in range(10):
        assert not lim.check("k").allowed
    s = scrape(m)
    assert value(s, "floodwall_decisions_total", limit="r", store="redis", outcome="allowed") == 1
    assert value(s, "floodwall_decisions_total", limit="r", store="redis", outcome="denied") == 0
    assert value(s, "floodwall_decisions_total", limit="r", store="redis",
                 outcome="fallback") == 10
    errors = value(s, "floodwall_store_errors_total", limit="r", store="redis")
    assert 1 <= errors <= 10  # the breaker skips the store once open: not new errors
    assert value(s, "floodwall_store_breaker_open", store="redis") == 1
    lim.close()


def _dead_pid() -> int:
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_exited_processes_are_folded_and_never_counted_twice(tmp_path: Path) -> None:
    import json as _json

    snap = SnapshotDir(str(tmp_path / "m"))
    key = series_key("decisions_total", limit="a", store="shm", outcome="allowed")
    snap.write({key: 5}, epoch=7)  # this process: alive, never folded
    dead = f"p{_dead_pid()}-abc.json"
    body = _json.dumps({"v": 1, "epoch": 7,
                        "series": [["decisions_total", [["limit", "a"], ["outcome", "allowed"],
                                                        ["store", "shm"]], 3]]})
    path = Path(snap.path) / dead
    path.write_text(body)
    assert snap.read(7) == {key: 8}
    assert snap.compact(grace=3600) == 0  # too recent to fold
    old = time.time() - 60
    os.utime(path, (old, old))
    assert snap.compact() == 1
    assert not path.exists() and (Path(snap.path) / "a7.json").exists()
    assert snap.read(7) == {key: 8}
    # a folder that died after writing the archive but before deleting the
    # file: the file is back, and must not count twice
    path.write_text(body)
    assert snap.read(7) == {key: 8}
    snap.compact()
    assert not path.exists() and snap.read(7) == {key: 8}
    assert snap.read(8) == {}  # another incarnation of the table


def test_temporaries_of_writers_that_died_mid_write_are_removed(tmp_path: Path) -> None:
    snap = SnapshotDir(str(tmp_path / "m"))
    d = Path(snap.path)
    dead, alive = _dead_pid(), os.getppid()
    old = time.time() - 60
    made = {}
    for label, pid, age in (("stale", dead, old), ("fresh", dead, None),
                            ("alive", alive, old)):
        made[label] = d / f".p{pid}-{label.encode().hex()}.tmp"
        made[label].write_text("{half a fi")
        if age is not None:
            os.utime(made[label], (age, age))
    link = d / f".p{dead}-beef.tmp"  # a link is never a writer's
    link.symlink_to(tmp_path / "elsewhere")
    os.utime(link, (old, old), follow_symlinks=False)
    snap.compact()
    assert not made["stale"].exists()
    assert made["fresh"].exists() and made["alive"].exists() and link.is_symlink()


def test_unlink_shm_removes_the_metrics_directory() -> None:
    from floodwall.stores import shared

    name = f"fwtest-mdir-{uuid.uuid4().hex[:10]}"
    url = f"shm://{name}"
    d = Path(metrics_dir_of(url) or "")
    try:
        m = Metrics()
        lim = floodwall.Limiter("5/minute", store=url, name="gone", metrics=m)
        lim.check("k")
        m.flush()
        assert any(p.name.startswith("p") for p in d.iterdir())
        assert shared.unlink_shm(name) is True
        assert not d.exists() and not Path(f"/dev/shm/{name}").exists()
        # a worker still on the removed table: its next write makes the
        # directory again, and its scrape still counts its decisions
        key = ("floodwall_decisions_total",
               (("limit", "gone"), ("outcome", "allowed"), ("store", "shm")))
        assert scrape(m)[key] == 1
        assert d.is_dir()
        m.close()
    finally:
        shared.forget(url)
        shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/{name}")


def test_removing_a_metrics_directory_spares_what_floodwall_did_not_write(
    tmp_path: Path,
) -> None:
    from floodwall.observe.snapshots import remove_dir

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "p1-ab.json").write_text("keep")
    snap = SnapshotDir(str(tmp_path / "t.fw.metrics"))
    snap.write({series_key("decisions_total", limit="a"): 1}, epoch=3)
    d = Path(snap.path)
    (d / "a9.json").symlink_to(victim / "p1-ab.json")  # a link: never deleted
    (d / "notes.txt").write_text("mine, not floodwall's")
    assert remove_dir(str(d)) is False  # not empty: stays, with what it held
    assert sorted(p.name for p in d.iterdir()) == ["a9.json", "notes.txt"]
    assert (victim / "p1-ab.json").read_text() == "keep"
    # a metrics directory that is a symbolic link: nothing in it is touched
    link = tmp_path / "l.fw.metrics"
    link.symlink_to(victim)
    assert remove_dir(str(link)) is False
    assert (victim / "p1-ab.json").exists() and link.is_symlink()
    assert remove_dir(str(tmp_path / "none.metrics")) is True  # nothing there
    if os.geteuid() != 0:
        pytest.fail("the rest needs root, to give files to another user")
    (d / "notes.txt").unlink()
    (d / "a9.json").unlink()
    theirs = d / "p2-cd.json"
    theirs.write_text("{}")
    os.chown(theirs, 12345, 12345)
    assert remove_dir(str(d)) is False and theirs.exists()  # another user's file
    theirs.unlink()
    os.chown(d, 12345, 12345)
    (d / ".lock").touch()
    assert remove_dir(str(d)) is False and (d / ".lock").exists()  # another user's dir
    os.chown(d, os.geteuid(), os.getegid())
    assert remove_dir(str(d)) is True and not d.exists()


def test_a_collected_limiter_keeps_its_counts() -> None:
    import gc

    m = Metrics()
    lim = floodwall.Limiter("2/minute", name="gone", metrics=m)
    for _ in range(3):
        lim.check("k")
    before = scrape(m)
    del lim
    gc.collect()
    after = scrape(m)
    for outcome, n in (("allowed", 2), ("denied", 1)):
        key = ("floodwall_decisions_total",
               (("limit", "gone"), ("outcome", outcome), ("store", "memory")))
        assert before[key] == after[key] == n


def test_one_events_object_is_counted_once() -> None:
    from floodwall.observe.events import Events

    got: list[object] = []
    events = Events(got.append)
    m = Metrics()
    a = floodwall.Limiter("5/minute", name="a", metrics=m, events=events)
    b = floodwall.Limiter("5/minute", name="b", metrics=m, events=events)
    a.check("k")
    b.check("k")
    b.check("k")
    events.close()
    s = scrape(m)
    assert value(s, "floodwall_events_total", outcome="sent") == 3 == len(got)


def test_key_label_counts_per_redacted_label_and_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import floodwall.hooks

    m = Metrics(key_label=lambda key: key.split(":", 1)[0])
    lim = floodwall.Limiter("1/minute", name="t", metrics=m)
    for key in ("acme:alice", "acme:bob", "acme:alice", "initech:carol"):
        lim.check(key)
    s = scrape(m)
    assert value(s, "floodwall_key_decisions_total", limit="t", store="memory", key="acme",
                 outcome="allowed") == 2
    assert value(s, "floodwall_key_decisions_total", limit="t", store="memory", key="acme",
                 outcome="denied") == 1
    assert value(s, "floodwall_key_decisions_total", limit="t", store="memory",
                 key="initech", outcome="allowed") == 1
    assert not any("alice" in v for _, labels in s for _, v in labels)
    monkeypatch.setattr(floodwall.hooks, "KEY_LABELS_MAX", 2)
    for tenant in ("t3", "t4", "t5"):
        lim.check(f"{tenant}:x")
    s = scrape(m)
    assert value(s, "floodwall_key_decisions_total", limit="t", store="memory", key="other",
                 outcome="allowed") == 3
    bad = floodwall.Limiter("1/minute", metrics=Metrics(key_label=lambda key: 42))
    assert bad.allow("k")  # a failing label function never fails the check
    assert bad.observer is not None and bad.observer.hook_errors == 1


def test_a_worker_that_exits_leaves_its_last_counts(shared_url: str,
                                                    cleanup_dirs: list[str]) -> None:
    import subprocess
    import sys

    d = metrics_dir_of(shared_url)
    assert d
    cleanup_dirs.append(d)
    code = ("import floodwall, sys\n"
            "from floodwall.observe.metrics import Metrics\n"
            "m = Metrics(interval=60)\n"  # the writer thread would not write in time
            f"lim = floodwall.Limiter('1000/minute', store={shared_url!r}, name='api', "
            "metrics=m)\n"
            "for _ in range(7): lim.check('k')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    m = Metrics()
    lim = floodwall.Limiter("1000/minute", store=shared_url, name="api", metrics=m)
    s = scrape(m)
    kind = shared_url.split(":", 1)[0]
    assert value(s, "floodwall_decisions_total", limit="api", store=kind,
                 outcome="allowed") == 7
    lim.close()
