"""Decision events: a sampled stream of decisions, written off the request path.

``Events(sink, sample_rate=0.1)`` given to a limiter (``events=``) or an
integration: each observed decision is sampled, turned into a small record
(time, limit, hashed key, cost, outcome, remaining, store, fallback) and put
on a bounded queue; one daemon thread per :class:`Events` writes batches to
the sink. Sinks: :class:`RedisStreamSink` (``XADD ... MAXLEN ~ N``),
:class:`JsonLinesSink` (a rotating file), :class:`CallableSink`.

Invariant: writing events never blocks nor fails a check. A full queue drops
the event and counts it (``dropped``); a sink that raises is logged (at most
once a minute) and counted (``failed``); the check that produced the event
has long returned.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from floodwall.errors import ConfigError

if TYPE_CHECKING:
    from floodwall._native import Decision

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_STREAM",
    "CallableSink",
    "Events",
    "JsonLinesSink",
    "RedisStreamSink",
    "Sink",
    "open_sink",
]

#: Events waiting for the writer thread before new ones are dropped.
DEFAULT_QUEUE_SIZE = 10_000
#: The Redis stream name of :class:`RedisStreamSink`.
DEFAULT_STREAM = "floodwall:events"
#: Entries a Redis stream keeps (about: ``MAXLEN ~``).
DEFAULT_MAXLEN = 100_000
_BATCH = 500
_LOG_INTERVAL = 60.0

logger = logging.getLogger("floodwall.events")

Record = dict[str, Any]


class Sink:
    """Where events go: ``write(records)`` (called on the writer thread) and
    ``read(limit, key_ids, n)`` (the newest first, for ``floodwall history``)."""

    def write(self, records: list[Record]) -> None:
        raise NotImplementedError

    def read(self, limit: str | None, key_ids: Iterable[str], n: int) -> list[Record]:
        raise ConfigError(f"{type(self).__name__} cannot be read back")

    def close(self) -> None:
        """Release what the sink holds."""


class CallableSink(Sink):
    """Each record handed to ``fn(record)``."""

    def __init__(self, fn: Callable[[Record], object]) -> None:
        if not callable(fn):
            raise ConfigError("CallableSink needs a callable taking one record")
        self.fn = fn

    def write(self, records: list[Record]) -> None:
        for record in records:
            self.fn(record)


class RedisStreamSink(Sink):
    """A Redis stream, trimmed to about ``maxlen`` entries on every write.

    ``target``: a ``redis://`` URL or a redis-py client. Socket timeouts are
    bounded (``timeout`` seconds), so a dead Redis stalls only the writer
    thread, and only that long per batch."""

    def __init__(
        self,
        target: Any,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int = DEFAULT_MAXLEN,
        timeout: float = 1.0,
    ) -> None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ConfigError(f"maxlen must be an int >= 1, got {maxlen!r}")
        if not isinstance(stream, str) or not stream:
            raise ConfigError("stream must be a non-empty str")
        if isinstance(target, str):
            try:
                import redis
            except ImportError as exc:
                raise ConfigError(
                    f"a Redis event stream needs redis-py: pip install 'floodwall[redis]' ({exc})"
                ) from exc
            self.client = redis.Redis.from_url(
                target, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        else:
            self.client = target
        self.stream = stream
        self.maxlen = maxlen

    def write(self, records: list[Record]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            fields: dict[Any, Any] = {k: _field(v) for k, v in record.items()}
            pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def read(self, limit: str | None, key_ids: Iterable[str], n: int) -> list[Record]:
        ids = set(key_ids)
        out: list[Record] = []
        last = "+"
        scanned = 0
        while len(out) < n and scanned < self.maxlen * 2:
            rows = self.client.xrevrange(self.stream, max=last, min="-", count=1000)
            if not rows:
                break
            for _entry_id, fields in rows:
                record = {_text(k): _text(v) for k, v in (fields or {}).items()}
                if record.get("key") in ids and (limit is None or record.get("limit") == limit):
                    out.append(_typed(record))
                    if len(out) >= n:
                        break
            scanned += len(rows)
            last = "(" + _text(rows[-1][0])
            if len(rows) < 1000:
                break
        return out

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


class JsonLinesSink(Sink):
    """One JSON object per line in ``path``, rotated at ``max_bytes`` into
    ``path.1`` ... ``path.<backups>``. The file is created ``0600``, never
    through a symbolic link."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 10 << 20,
                 backups: int = 3) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
            raise ConfigError(f"max_bytes must be an int >= 1024, got {max_bytes!r}")
        if isinstance(backups, bool) or not isinstance(backups, int) or not 0 <= backups <= 100:
            raise ConfigError(f"backups must be an int from 0 to 100, got {backups!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.max_bytes = max_bytes
        self.backups = backups

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            _check_own_file(fd, self.path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def write(self, records: list[Record]) -> None:
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        fd = self._open()
        try:
            if os.fstat(fd).st_size + len(data) > self.max_bytes:
                os.close(fd)
                fd = -1
                self._rotate()
                fd = self._open()
            os.write(fd, data)
        finally:
            if fd >= 0:
                os.close(fd)

    def _rotate(self) -> None:
        if self.backups == 0:
            os.unlink(self.path)
            return
        for i in range(self.backups - 1, 0, -1):
            src = f"{self.path}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")

    def read(self, limit: str | None, key_ids: Iterable[str], n: int) -> list[Record]:
        ids = set(key_ids)
        out: list[Record] = []
        paths = [self.path] + [f"{self.path}.{i}" for i in range(1, self.backups + 1)]
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot read the event file {path}: {exc}") from None
            with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
                _check_own_file(f.fileno(), path)
                lines = f.readlines()
            for line in reversed(lines):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                if not isinstance(record, dict):
                    continue
                if record.get("key") in ids and (limit is None or record.get("limit") == limit):
                    out.append(record)
                    if len(out) >= n:
                        return out
        return out


def open_sink(target: Any, **options: Any) -> Sink:
    """A sink from a ``redis://`` URL, a ``file://`` URL or path, a redis-py
    client, a callable, or a Sink."""
    if isinstance(target, Sink):
        return target
    if isinstance(target, str):
        if target.startswith(("redis://", "rediss://", "unix://")):
            return RedisStreamSink(target, **options)
        if target.startswith("file://"):
            return JsonLinesSink(target[len("file://"):], **options)
        if "://" in target:
            raise ConfigError(
                f"unknown event sink {target!r}: give a redis:// URL, a file path or a callable"
            )
        return JsonLinesSink(target, **options)
    if hasattr(target, "xadd"):
        return RedisStreamSink(target, **options)
    if callable(target):
        return CallableSink(target)
    raise ConfigError(
        f"an event sink is a redis:// URL, a file path, a Redis client or a callable, "
        f"not {type(target).__name__}"
    )


class Events:
    """Sampled decision events, queued and written by a background thread.

    ``sink``: see :func:`open_sink`. ``sample_rate``: the share of decisions
    recorded (0 < rate <= 1). ``queue_size``: events waiting before new ones
    are dropped. Counters: ``sent``, ``dropped``, ``failed``.
    """

    def __init__(
        self,
        sink: Any,
        *,
        sample_rate: float = 1.0,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        **sink_options: Any,
    ) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not (
            0 < sample_rate <= 1
        ):
            raise ConfigError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigError(f"queue_size must be an int >= 1, got {queue_size!r}")
        self.sink = open_sink(sink, **sink_options)
        self.sample_rate = float(sample_rate)
        self.queue_size = queue_size
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[Record | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()
        self._logged_at: float | None = None

    def offer(self, decision: Decision, info: Mapping[str, Any]) -> None:
        """Sample one decision and queue its record; never blocks or raises."""
        from floodwall.hooks import sampled

        if not sampled(self.sample_rate):
            return
        record = {
            "t": time.time(),
            "limit": info["limit"],
            "key": info["key"],
            "cost": info["cost"],
            "outcome": "allowed" if decision.allowed else "denied",
            "remaining": decision.remaining,
            "store": info["store"],
            "fallback": bool(info["fallback"]),
        }
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # after a fork the parent's thread and queued records are not ours
            self._queue = queue.Queue(self.queue_size)
            self._thread = threading.Thread(
                target=self._run, name="floodwall-events", daemon=True
            )
            self._thread.start()
            self._pid = os.getpid()

    def _run(self) -> None:
        q = self._queue
        while True:
            first = q.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < _BATCH:
                try:
                    more = q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                self.sink.write(batch)
                self.sent += len(batch)
            except Exception as exc:
                self.failed += len(batch)
                now = time.monotonic()
                if self._logged_at is None or now - self._logged_at >= _LOG_INTERVAL:
                    self._logged_at = now
                    logger.warning(
                        "floodwall: the event sink failed (%s: %s); %d event(s) lost so "
                        "far; checks are not affected", type(exc).__name__, exc, self.failed,
                    )
            if stop:
                return

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` s) until every queued event was handed to
        the sink; True if it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0 or self._queue.empty():
                # the writer may still hold a batch: give it its turn
                time.sleep(0.01)
                if self._queue.empty():
                    return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (bounded by ``timeout``) and stop the thread."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            thread.join(timeout)
        self._thread = None
        self._pid = 0
        self.sink.close()


def _check_own_file(fd: int, path: str) -> None:
    """An event file must be a regular file of this user that nobody else
    can write (another local user could otherwise read the events, or
    forge a client's history)."""
    import stat

    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"event file {path} is not a regular file")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"event file {path} belongs to uid {st.st_uid}, not to this user: "
                          "refused")
    if st.st_mode & 0o022:
        raise ConfigError(f"event file {path} is writable by group or others "
                          f"(mode {stat.S_IMODE(st.st_mode):o}): refused")


def _field(value: Any) -> str | int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _typed(record: dict[str, str]) -> Record:
    out: Record = dict(record)
    for name, kind in (("t", float), ("cost", int), ("remaining", int)):
        try:
            out[name] = kind(record[name])
        except (KeyError, ValueError):
            pass
    if "fallback" in record:
        out["fallback"] = record["fallback"] in ("1", "True", "true")
    return out
