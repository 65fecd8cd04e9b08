"""Host-wide counters of many worker processes: one small file per process.

Every process that exports metrics for a shared table (``shm://``,
``file://``) or a configured directory writes its own counters to
``<dir>/p<pid>-<token>.json`` (written to a temporary file, then renamed:
a reader never sees half a file), and whichever process serves
``/metrics`` sums the files of the directory. One writer per file, so no
lock is shared between processes and the check path never waits; counters
of a process that has exited stay in the sum (counters count since the
table was created).

Files of processes that have exited are folded, at most once a minute by
whichever process reads, into one archive per table epoch
(``a<epoch>.json``), so a server that restarts its workers (gunicorn
``max_requests``) keeps a bounded directory. The archive names the files it
absorbed, and readers skip those, so a crash between writing the archive
and deleting the files never counts twice; readers hold a shared lock and
the folder an exclusive one (``.lock``, never waited on for more than a
second), so a scrape never sees a counter step back.

Removal: :func:`remove_dir` removes a table's directory when floodwall
removes the table (:func:`floodwall.stores.shared.unlink_shm`); folding
also removes the temporaries of writers that died mid-write. Archives of a
table's earlier incarnations stay until the directory is removed.

Security (docs/design.md, "Security model"): the directory is created
``0700``; one that is a symbolic link, owned by another user or writable
by group or others is refused with :class:`~floodwall.errors.StoreError`.
Only regular files owned by this user and under :data:`MAX_FILE_BYTES` are
read, never through a symbolic link; a file whose content is not what a
writer produces is skipped (and counted in ``skipped``). Only such files
of this user are ever deleted, by name in a directory that is not a link.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from typing import Any

from floodwall.errors import StoreError

__all__ = [
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "Series",
    "SnapshotDir",
    "dir_beside",
    "remove_dir",
    "series_key",
]

#: Largest snapshot file read.
MAX_FILE_BYTES = 1 << 20
#: Most snapshot files summed (a directory with more is refused).
MAX_FILES = 100_000
_SUFFIX = ".json"
#: Seconds between two foldings of exited processes' files.
COMPACT_INTERVAL = 60.0
#: A file is folded only if untouched for this long (and its process gone).
COMPACT_GRACE = 10.0
_LOCK_WAIT = 1.0

#: (metric, ((label, value), ...)) -> value
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]
#: Every name a writer or a folder makes in the directory: files, archives,
#: their temporaries, the lock.
_OURS = re.compile(r"(p\d+-[0-9a-f]+|a\d+)\.json|\.(p\d+-[0-9a-f]+|a\d+)\.tmp|\.lock")
#: A writer's temporary: ``.p<pid>-<token>.tmp``.
_WRITER_TEMP = re.compile(r"\.p(\d+)-[0-9a-f]+\.tmp")


def dir_beside(table_path: str) -> str:
    """The directory of the counters of the shared table at ``table_path``."""
    return table_path + ".metrics"


def series_key(metric: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of one series: the metric and its sorted labels."""
    return metric, tuple(sorted(labels.items()))


def check_private_dir(path: str, *, create: bool = True) -> str:
    """``path`` as a directory this user owns and nobody else can write;
    created ``0700`` if missing (and ``create``)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            raise StoreError(f"metrics directory {path} does not exist") from None
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"metrics directory {path} is not a directory (or is a symbolic link)")
    if st.st_uid != os.geteuid():
        raise StoreError(
            f"metrics directory {path} belongs to uid {st.st_uid}, not to this user "
            f"(uid {os.geteuid()}): refused"
        )
    if st.st_mode & 0o022:
        raise StoreError(
            f"metrics directory {path} is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}): refused"
        )
    return path


class SnapshotDir:
    """One directory of per-process counter files."""

    def __init__(self, path: str, *, create: bool = True) -> None:
        self.path = check_private_dir(os.path.abspath(path), create=create)
        self.skipped = 0
        self._token = ""
        self._pid = 0
        self._compacted_at = 0.0

    def _name(self) -> str:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._token = secrets.token_hex(6)
        return f"p{self._pid}-{self._token}"

    def written(self) -> bool:
        """Whether this process's file is there (gone when the directory
        was removed with its table: the next :meth:`write` makes both)."""
        return os.path.lexists(os.path.join(self.path, self._name() + _SUFFIX))

    def write(self, series: Series, epoch: int = 0) -> None:
        """Replace this process's file with ``series``. ``epoch`` tells a
        table's incarnations apart (its creation time): a reader counts only
        the files of the epoch it asks for."""
        self._write_file(self._name(), series, epoch)

    def _write_file(self, name: str, series: Series, epoch: int,
                    absorbed: list[str] | None = None) -> None:
        doc: dict[str, Any] = {
            "v": 1, "epoch": epoch,
            "series": [[m, [list(kv) for kv in labels], v] for (m, labels), v in series.items()],
        }
        if absorbed is not None:
            doc["absorbed"] = absorbed
        body = json.dumps(doc, separators=(",", ":")).encode()
        tmp = os.path.join(self.path, f".{name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:  # removed with its table: made again, checked
            check_private_dir(self.path)
            fd = os.open(tmp, flags, 0o600)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(self.path, name + _SUFFIX))

    def read(self, epoch: int | None = None) -> Series:
        """The sum of every process's series (only those of ``epoch`` if given)."""
        if time.monotonic() - self._compacted_at >= COMPACT_INTERVAL:
            self._compacted_at = time.monotonic()
            self.compact()
        total: Series = {}
        with self._locked(fcntl.LOCK_SH):
            try:
                names = os.listdir(self.path)
            except FileNotFoundError:  # removed with its table: nothing to sum
                return total
            if len(names) > MAX_FILES:
                raise StoreError(f"metrics directory {self.path} holds over {MAX_FILES} files")
            absorbed: set[str] = set()
            for name in names:
                if not (name.startswith("a") and name.endswith(_SUFFIX)):
                    continue
                data = self._load(os.path.join(self.path, name))
                if data is None or (epoch is not None and data.get("epoch") != epoch):
                    continue
                absorbed.update(n for n in data.get("absorbed", []) if isinstance(n, str))
                for key, value in _entries(data):
                    total[key] = total.get(key, 0.0) + value
            for name in names:
                if not (name.startswith("p") and name.endswith(_SUFFIX)) or name in absorbed:
                    continue
                data = self._load(os.path.join(self.path, name))
                if data is None or (epoch is not None and data.get("epoch") != epoch):
                    continue
                for key, value in _entries(data):
                    total[key] = total.get(key, 0.0) + value
        return total

    @contextlib.contextmanager
    def _locked(self, kind: int) -> Iterator[bool]:
        """Hold the directory's lock (``kind``), waiting at most a second;
        yields whether it is held (a reader goes on without it)."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(os.path.join(self.path, ".lock"), flags, 0o600)
        except OSError:
            yield False
            return
        try:
            deadline = time.monotonic() + _LOCK_WAIT
            held = False
            while True:
                try:
                    fcntl.flock(fd, kind | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.005)
            yield held
        finally:
            os.close(fd)

    def compact(self, grace: float = COMPACT_GRACE) -> int:
        """Fold the files of exited processes (untouched for ``grace``
        seconds) into the archives; returns how many were folded."""
        with self._locked(fcntl.LOCK_EX) as held:
            if not held:
                return 0
            names = set(os.listdir(self.path))
            archives: dict[int, dict[str, Any]] = {}
            for name in names:
                if name.startswith("a") and name.endswith(_SUFFIX):
                    data = self._load(os.path.join(self.path, name))
                    if data is not None and isinstance(data.get("epoch"), int):
                        archives[data["epoch"]] = data
            absorbed_all = {n for a in archives.values() for n in a.get("absorbed", [])}
            dead: dict[int, list[tuple[str, dict[str, Any]]]] = {}
            stale: list[str] = []  # absorbed already, left by a folder that stopped
            now = time.time()
            for name in sorted(names):
                if not (name.startswith("p") and name.endswith(_SUFFIX)):
                    continue
                if name in absorbed_all:
                    stale.append(name)
                    continue
                if not _exited(name):
                    continue
                path = os.path.join(self.path, name)
                try:
                    if now - os.lstat(path).st_mtime < grace:
                        continue
                except OSError:
                    continue
                data = self._load(path)
                if data is not None and isinstance(data.get("epoch"), int):
                    dead.setdefault(data["epoch"], []).append((name, data))
            folded: list[str] = []
            for epoch in set(dead) | set(archives):
                archive = archives.get(epoch, {"v": 1, "epoch": epoch, "series": []})
                total: Series = dict(_entries(archive))
                for _name, data in dead.get(epoch, []):
                    for key, value in _entries(data):
                        total[key] = total.get(key, 0.0) + value
                still = [n for n in archive.get("absorbed", []) if n in names]
                new = [n for n, _ in dead.get(epoch, [])]
                if not new and len(still) == len(archive.get("absorbed", [])):
                    continue
                self._write_file(f"a{epoch}", total, epoch, still + new)
                folded += new
            for name in folded + stale + self._dead_temporaries(names, now, grace):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.path, name))
            return len(folded)

    def _dead_temporaries(self, names: Iterable[str], now: float, grace: float) -> list[str]:
        """The temporaries of writers that died mid-write: regular files of
        this user, untouched for ``grace`` seconds, whose process is gone."""
        out = []
        for name in names:
            match = _WRITER_TEMP.fullmatch(name)
            if match is None or not _exited(f"p{match.group(1)}"):
                continue
            try:
                st = os.lstat(os.path.join(self.path, name))
            except OSError:
                continue
            if (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
                    and now - st.st_mtime >= grace):
                out.append(name)
        return out

    def _load(self, path: str) -> dict[str, Any] | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            self.skipped += 1
            return None
        try:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != os.geteuid()
                or st.st_size > MAX_FILE_BYTES
            ):
                self.skipped += 1
                return None
            raw = os.read(fd, MAX_FILE_BYTES + 1)
        finally:
            os.close(fd)
        try:
            data = json.loads(raw)
        except ValueError:
            self.skipped += 1
            return None
        if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(
            data.get("series"), list
        ):
            self.skipped += 1
            return None
        return data


def remove_dir(path: str) -> bool:
    """Remove the counters directory ``path``, as the table it is beside is
    removed: only a directory this user owns, never through a symbolic
    link; in it only the names a writer makes, and only regular files of
    this user (unlinked relative to the opened directory); then the
    directory itself if nothing else is left. Returns whether it is gone
    (a directory holding anything else stays, with that)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return True
    except OSError:  # a symbolic link, not a directory, not ours to read
        return False
    me = os.geteuid()
    try:
        if os.fstat(fd).st_uid != me:
            return False
        for name in os.listdir(fd):
            if _OURS.fullmatch(name) is None:
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_uid == me:
                    os.unlink(name, dir_fd=fd)
            except OSError:
                continue
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


_Key = tuple[str, tuple[tuple[str, str], ...]]


def _exited(name: str) -> bool:
    """Whether the process that wrote ``p<pid>-<token>.json`` is gone."""
    try:
        pid = int(name[1:].split("-", 1)[0])
    except ValueError:
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def _entries(data: dict[str, Any]) -> Iterable[tuple[_Key, float]]:
    for item in data["series"]:
        if not (isinstance(item, list) and len(item) == 3):
            continue
        metric, labels, value = item
        if not isinstance(metric, str) or not isinstance(labels, list):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value) or value < 0:
            continue
        if not all(
            isinstance(kv, list) and len(kv) == 2 and all(isinstance(x, str) for x in kv)
            for kv in labels
        ):
            continue
        yield (metric, tuple(sorted((k, v) for k, v in labels))), float(value)
