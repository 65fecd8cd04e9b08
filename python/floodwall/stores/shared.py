"""The ``shm://`` and ``file://`` stores: one native table shared by every
process of the host, in POSIX shared memory or in a memory-mapped file.

``shm://NAME?max_keys=100000`` and
``file:///var/lib/app/limits.fw?sync=always`` (options may be given as
keywords too: ``Limiter(..., store="shm://api", max_keys=100_000)``). Each
process maps a table once per name/path: every limiter of the process that
names it gets the same :class:`floodwall._native.Table`, so ``check_all``
works across them. The backend is the memory store's
:class:`~floodwall.stores.native.NativeBackend`; only the table differs.

Invariant: the decisions are those of ``memory://``; only the table's memory
and the clock (CLOCK_REALTIME, the one clock every process of the host
shares) differ.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from floodwall import _native
from floodwall.algorithms import LOG_CAPACITY_MAX, MAX_KEYS_MAX, MAX_KEYS_MIN
from floodwall.errors import ConfigError
from floodwall.stores import LimitSpec, register
from floodwall.stores.native import NativeBackend, log_capacity_for
from floodwall.stores.url import Options, StoreURL

__all__ = [
    "DEFAULT_SYNC_INTERVAL_MS",
    "SYNC_MODES",
    "file_path",
    "forget",
    "shm_name",
    "shm_path",
    "unlink_shm",
]

Key = str | bytes

SYNC_MODES = ("none", "interval", "always")
DEFAULT_SYNC_INTERVAL_MS = 1000

_SHM_OPTIONS = frozenset({"max_keys", "log_capacity"})
_FILE_OPTIONS = _SHM_OPTIONS | {"sync", "sync_interval_ms"}

# ---- options ---------------------------------------------------------------------


def _sizes(opts: Options, spec: LimitSpec) -> tuple[int, int]:
    """(max_keys, log_capacity) to ask for; 0 means "the existing table's"."""
    max_keys = opts.int_option("max_keys", 0, MAX_KEYS_MIN, MAX_KEYS_MAX) or 0
    log_capacity = log_capacity_for(spec)
    asked = opts.int_option("log_capacity", None, 0, LOG_CAPACITY_MAX)
    if asked is not None:
        if asked < log_capacity:
            raise ConfigError(
                f"log_capacity={asked} is too small for this sliding_log limit: "
                f"it needs {log_capacity} (its capacity)"
            )
        log_capacity = asked
    return max_keys, log_capacity


def _sync(opts: Options) -> tuple[str, int]:
    interval_given = opts.has("sync_interval_ms")
    sync = opts.choice_option("sync", "interval" if interval_given else "none", SYNC_MODES)
    if not interval_given:
        return sync, DEFAULT_SYNC_INTERVAL_MS if sync == "interval" else 0
    if sync != "interval":
        raise ConfigError(f"sync_interval_ms applies to sync=interval only, not sync={sync}")
    interval = opts.int_option("sync_interval_ms", None, 1, 86_400_000)
    assert interval is not None
    return sync, interval


def shm_name(url_or_name: str) -> str:
    """``shm://NAME`` (or a bare NAME) -> NAME, checked by the engine's one
    check of shm names (the store, the doctor and inspection all come here):
    :class:`~floodwall.errors.ConfigError` naming the problem otherwise."""
    if url_or_name.startswith("shm:"):
        parts = urlsplit(url_or_name)
        name = unquote(parts.netloc + parts.path).lstrip("/")
    else:
        name = url_or_name.lstrip("/")
    if not name:
        raise ConfigError(f"shm:// needs a name, e.g. 'shm://myapp-limits', got {url_or_name!r}")
    shm_path(name)
    return name


def shm_path(name: str) -> str:
    """The file that holds shm object ``name`` (``/dev/shm/NAME``)."""
    try:
        return _native.shm_path(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def file_path(url_or_path: StoreURL | str | os.PathLike[str]) -> str:
    """``file:///abs/path`` (or a path) -> an absolute path."""
    if isinstance(url_or_path, StoreURL):
        parts = urlsplit(url_or_path.raw)
        text = url_or_path.text
    else:
        text = os.fspath(url_or_path)
        if not text.startswith("file:"):
            return os.path.abspath(text)
        parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"file:// needs an absolute path, as in 'file:///var/lib/app/limits.fw' "
            f"(three slashes); {text!r} names host {parts.netloc!r}"
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ConfigError(f"file:// needs an absolute path, got {text!r}")
    return path


# ---- opening tables ------------------------------------------------------------


class _Mapping:
    """One table mapped in this process, and the backends using it. The
    table is held only through its backends: when the last one goes, the
    table is unmapped (and an unlinked shm object or file is freed)."""

    def __init__(self, sync: tuple[str, int]) -> None:
        self.sync = sync
        self.backends: weakref.WeakSet[NativeBackend] = weakref.WeakSet()

    def table(self) -> _native.Table | None:
        for backend in self.backends:
            return backend.table
        return None


# One mapping per shm name / file path in this process, so that every limiter
# naming it shares one table (check_all needs that). After fork() a child
# keeps using its parent's mappings: they are MAP_SHARED.
_mappings: dict[tuple[str, str], _Mapping] = {}
_mappings_lock = threading.Lock()


def _check_fits(
    table: _native.Table,
    sync: tuple[str, int],
    open_sync: tuple[str, int],
    max_keys: int,
    log_capacity: int,
    is_file: bool,
) -> None:
    info = _native.table_info(table)
    where = info["store"]
    if is_file and open_sync != sync:
        raise ConfigError(
            f"{where} is already open in this process with sync={open_sync[0]}"
            f"{f' ({open_sync[1]} ms)' if open_sync[0] == 'interval' else ''}; "
            f"one process uses one sync mode per file"
        )
    if max_keys > info["max_keys"]:
        raise ConfigError(
            f"{where} holds a table for max_keys={info['max_keys']}, and "
            f"max_keys={max_keys} was asked for: a table cannot grow in place"
        )
    if log_capacity > info["log_capacity"]:
        raise ConfigError(
            f"{where} holds a table whose sliding logs hold {info['log_capacity']} "
            f"entries, and {log_capacity} are needed: a table cannot grow in place"
        )


def _shared_backend(
    key: tuple[str, str],
    sync: tuple[str, int],
    max_keys: int,
    log_capacity: int,
    opener: Callable[[], _native.Table],
    spec: LimitSpec,
) -> NativeBackend:
    with _mappings_lock:
        mapping = _mappings.get(key)
        table = mapping.table() if mapping is not None else None
        if mapping is None or table is None:
            table = opener()
            mapping = _Mapping(sync)
            _mappings[key] = mapping
        else:
            _check_fits(table, sync, mapping.sync, max_keys, log_capacity, key[0] == "file")
        backend = NativeBackend(table, spec)
        mapping.backends.add(backend)
        return backend


def _file_key(path: str) -> tuple[str, str]:
    # the directories resolved, the last component not: a symbolic link at
    # the table's path is refused on open, never matched to its target's
    # mapping
    head, tail = os.path.split(os.path.abspath(path))
    return ("file", os.path.join(os.path.realpath(head), tail))


def forget(url: str | None = None) -> None:
    """Stop sharing this process's mapping of a table (of every table when
    ``url`` is None): the next limiter naming it maps it afresh, validating
    its header. Limiters already using it keep their mapping."""
    with _mappings_lock:
        if url is None:
            _mappings.clear()
        elif url.startswith("shm:"):
            _mappings.pop(("shm", shm_name(url)), None)
        else:
            _mappings.pop(_file_key(file_path(url)), None)


def _shm_factory(url: StoreURL, spec: LimitSpec, **options: Any) -> NativeBackend:
    opts = Options(url, options, known=_SHM_OPTIONS)
    max_keys, log_capacity = _sizes(opts, spec)
    name = shm_name(url.raw)
    return _shared_backend(
        ("shm", name),
        ("none", 0),
        max_keys,
        log_capacity,
        lambda: _native.open_shm(name, max_keys, log_capacity),
        spec,
    )


def _file_factory(url: StoreURL, spec: LimitSpec, **options: Any) -> NativeBackend:
    opts = Options(url, options, known=_FILE_OPTIONS)
    max_keys, log_capacity = _sizes(opts, spec)
    sync, interval = _sync(opts)
    path = file_path(url)
    return _shared_backend(
        _file_key(path),
        (sync, interval),
        max_keys,
        log_capacity,
        lambda: _native.open_file(
            path, max_keys, log_capacity, sync, interval or DEFAULT_SYNC_INTERVAL_MS
        ),
        spec,
    )


register("shm", _shm_factory)
register("file", _file_factory)


# ---- removal (doctor, inspection: floodwall.ops) -----------------------------------


def unlink_shm(name: str, *, missing_ok: bool = True) -> bool:
    """Remove ``shm://NAME`` (processes that have it open keep it until they
    close it), and its metrics directory (``/dev/shm/NAME.metrics``: the
    files floodwall wrote there, if this user's; see
    :func:`floodwall.observe.snapshots.remove_dir`). Returns False when
    there was no table and ``missing_ok``."""
    from floodwall.observe.snapshots import dir_beside, remove_dir

    name = shm_name(name)
    forget(f"shm://{name}")
    removed = bool(_native.unlink_shm(name, missing_ok=missing_ok))
    remove_dir(dir_beside(shm_path(name)))
    return removed
