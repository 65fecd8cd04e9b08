"""Decision events: a Redis stream holds the sampled decisions with a
bounded length; a file sink rotates and is read back by `floodwall
history`; a failing or full sink never fails nor slows a check."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import floodwall
from floodwall.cli import main
from floodwall.hooks import key_id
from floodwall.observe.events import Events, JsonLinesSink, RedisStreamSink


@pytest.fixture(autouse=True)
def _keep_active_configuration() -> Any:
    """`floodwall metrics` / `history` run in-process make their
    configuration the active one, as a CLI process does: put it back."""
    from floodwall.config import registry

    saved_active = dict(registry._ACTIVE)
    saved_named = dict(registry._FROM_CONFIG)
    yield
    registry._ACTIVE.clear()
    registry._ACTIVE.update(saved_active)
    registry._FROM_CONFIG.clear()
    registry._FROM_CONFIG.update(saved_named)


def test_redis_stream_holds_events_with_bounded_length(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    events = Events(RedisStreamSink(client, stream="fw:ev", maxlen=100))
    lim = floodwall.Limiter("100/minute", name="api", events=events)
    for i in range(300):
        lim.check(f"user{i % 2}")
    events.close()
    assert events.sent == 300 and events.dropped == 0 and events.failed == 0
    length = client.xlen("fw:ev")
    assert 100 <= length < 300  # MAXLEN ~ 100: trimmed, about 100
    _, fields = client.xrevrange("fw:ev", count=1)[0]
    last = {k.decode(): v.decode() for k, v in fields.items()}
    assert last["limit"] == "api" and last["outcome"] == "denied"
    assert last["key"] == key_id("user1") and last["remaining"] == "0"
    assert "user1" not in str(client.xrange("fw:ev"))


def test_sampling_records_a_share(tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []
    events = Events(got.append, sample_rate=0.25)
    lim = floodwall.Limiter("100000/minute", name="s", events=events)
    for _ in range(4000):
        lim.check("k")
    events.close()
    assert 700 < len(got) < 1300  # 1000 expected; binomial sd ~27


def test_failing_sink_never_fails_checks() -> None:
    def broken(record: dict[str, Any]) -> None:
        raise ConnectionError("sink down")

    events = Events(broken)
    lim = floodwall.Limiter("3/minute", events=events)
    assert [lim.allow("k") for _ in range(5)] == [True, True, True, False, False]
    events.close()
    assert events.failed == 5 and events.sent == 0


def test_dead_redis_sink_never_blocks_checks(fresh_server: Any) -> None:
    url = fresh_server.url
    fresh_server.kill()
    events = Events(url, timeout=0.2)
    lim = floodwall.Limiter("1000/minute", events=events)
    start = time.perf_counter()
    for _ in range(200):
        lim.check("k")
    assert time.perf_counter() - start < 0.5
    events.close(timeout=5)
    assert events.failed > 0 and events.sent == 0


def test_full_queue_drops_and_counts() -> None:
    import threading

    gate = threading.Event()
    events = Events(lambda r: gate.wait(5), queue_size=10)
    lim = floodwall.Limiter("1000/minute", events=events)
    for _ in range(100):
        lim.check("k")
    assert events.dropped >= 80  # the writer holds one, the queue ten
    gate.set()
    events.close()
    assert events.sent + events.dropped == 100


def test_file_sink_rotates_and_history_reads_it(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "events.jsonl"
    events = Events(JsonLinesSink(path, max_bytes=4096, backups=2))
    lim = floodwall.Limiter("5/minute", name="login", events=events)
    for _ in range(7):
        lim.check("login|203.0.113.9")
    for i in range(100):
        lim.check(f"other{i}")
    events.close()
    assert (tmp_path / "events.jsonl.1").exists()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    code = main(["history", "login", "203.0.113.9", "--events", str(path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    outcomes = [e["outcome"] for e in out["events"]]
    # the events of the client are older than the rotation: read from the backups
    assert outcomes == ["denied", "denied"] + ["allowed"] * 5
    assert out["key"] == key_id("login|203.0.113.9")


def test_history_from_redis(redis_url: str, capsys: Any) -> None:
    events = Events(redis_url, stream="fw:h")
    lim = floodwall.Limiter("2/minute", name="api", events=events)
    for _ in range(3):
        lim.check("alice")
    lim.check("bob")
    events.close()
    code = main(["history", "api", "alice", "--raw", "--events", redis_url,
                 "--stream", "fw:h"])
    text = capsys.readouterr().out
    assert code == 0
    assert text.count("allowed") == 2 and text.count("denied") == 1
    assert "alice" in text.splitlines()[0]  # the header names the client asked for


def test_bad_events_arguments() -> None:
    with pytest.raises(floodwall.ConfigError, match="sample_rate"):
        Events(print, sample_rate=0)
    with pytest.raises(floodwall.ConfigError, match="events must be"):
        floodwall.Limiter("1/minute", events=print)
    with pytest.raises(floodwall.ConfigError, match="unknown event sink"):
        Events("kafka://x")


def test_event_file_writable_by_others_is_refused(tmp_path: Path) -> None:
    import os

    path = tmp_path / "events.jsonl"
    path.write_text('{"t":1,"limit":"api","key":"forged","outcome":"denied"}\n')
    os.chmod(path, 0o666)
    sink = JsonLinesSink(path)
    with pytest.raises(floodwall.ConfigError, match="writable by group or others"):
        sink.read("api", ["forged"], 10)
    events = Events(sink)
    lim = floodwall.Limiter("5/minute", events=events)
    assert lim.allow("k")  # the check is unaffected; the event is lost and counted
    events.close()
    assert events.failed == 1 and events.sent == 0


def test_event_file_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "events.jsonl"
    link.symlink_to(target)
    events = Events(str(link))
    floodwall.Limiter("5/minute", events=events).check("k")
    events.close()
    assert events.failed == 1 and target.read_text() == ""
