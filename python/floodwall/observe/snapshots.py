"""Host-wide counters of many worker processes: one small file per process.

Every process that exports metrics for a shared table (``shm://``,
``file://``) or a configured directory writes its own counters to
``<dir>/p<pid>-<token>.json`` (written to a temporary file, then renamed:
a reader never sees half a file), and whichever process serves
``/metrics`` sums the files of the directory. One writer per file, so no
lock is shared between processes and the check path never waits; counters
of a process that has exited stay in the sum (counters count since the
table was created).

Security (docs/design.md, "Security model"): the directory is created
``0700``; one that is a symbolic link, owned by another user or writable
by group or others is refused with :class:`~floodwall.errors.StoreError`.
Only regular files owned by this user and under :data:`MAX_FILE_BYTES` are
read, never through a symbolic link; a file whose content is not what a
writer produces is skipped (and counted in ``skipped``).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from collections.abc import Iterable
from typing import Any

from floodwall.errors import StoreError

__all__ = ["MAX_FILES", "MAX_FILE_BYTES", "Series", "SnapshotDir", "series_key"]

#: Largest snapshot file read.
MAX_FILE_BYTES = 1 << 20
#: Most snapshot files summed (a directory with more is refused).
MAX_FILES = 100_000
_SUFFIX = ".json"

#: (metric, ((label, value), ...)) -> value
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


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

    def _name(self) -> str:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._token = secrets.token_hex(6)
        return f"p{self._pid}-{self._token}"

    def write(self, series: Series, epoch: int = 0) -> None:
        """Replace this process's file with ``series``. ``epoch`` tells a
        table's incarnations apart (its creation time): a reader counts only
        the files of the epoch it asks for."""
        name = self._name()
        body = json.dumps(
            {"v": 1, "epoch": epoch,
             "series": [[m, [list(kv) for kv in labels], v] for (m, labels), v in series.items()]},
            separators=(",", ":"),
        ).encode()
        tmp = os.path.join(self.path, f".{name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(tmp, flags, 0o600)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(self.path, name + _SUFFIX))

    def read(self, epoch: int | None = None) -> Series:
        """The sum of every process's series (only those of ``epoch`` if given)."""
        total: Series = {}
        names = [n for n in os.listdir(self.path) if n.endswith(_SUFFIX) and n.startswith("p")]
        if len(names) > MAX_FILES:
            raise StoreError(f"metrics directory {self.path} holds over {MAX_FILES} files")
        for name in names:
            data = self._load(os.path.join(self.path, name))
            if data is None:
                continue
            if epoch is not None and data.get("epoch") != epoch:
                continue
            for key, value in _entries(data):
                total[key] = total.get(key, 0.0) + value
        return total

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


_Key = tuple[str, tuple[tuple[str, str], ...]]


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
