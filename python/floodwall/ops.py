"""Operations: the questions an operator asks of a deployment's stores.

The logic behind the operator's CLI commands and the server's doctor
endpoint (they only parse arguments and print; see :mod:`floodwall.cli`):

- :func:`doctor`: check a shared table (``shm://`` or ``file://``) read-only;
- :func:`doctor_store`: the same question for any store that can answer
  from outside a process (tables, Redis, PostgreSQL, a floodwall server);
- :func:`inspect`: the stored state of one key, per rate, without consuming;
- :func:`hottest`: the slots of a table furthest from fresh (``floodwall top``).

Invariant: nothing here writes to a store or waits longer than the store's
own timeout.
"""

from __future__ import annotations

import math
import os
from typing import Any

from floodwall import _native
from floodwall.algorithms import ALGORITHMS
from floodwall.errors import ConfigError
from floodwall.stores import shared
from floodwall.stores.native import NativeBackend

__all__ = ["NOT_LOADED", "Unreachable", "doctor", "doctor_store", "hottest", "inspect"]

Key = str | bytes

#: A finding's value when the check function is not on the server yet
#: (a warning: the first check loads it).
NOT_LOADED = "not loaded yet: loaded on first check"


class Unreachable(OSError):
    """A network store cannot be reached or answer within its timeout. An
    OSError, like a table that cannot be read (missing, not a table, no
    permission): the CLI's doctor exits 2 with either."""


# ---- shared tables -----------------------------------------------------------------


def doctor(url_or_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a table file (or ``shm://NAME``, through /dev/shm) read-only:
    header, sizes and every slot. ``result["ok"]`` says whether it is
    healthy; ``result["problem"]`` what is wrong (also: not a regular file,
    a symbolic link, writable by others, or in a directory that lets a user
    other than the table's owner or root replace it, as the stores would
    refuse it). Never writes and never blocks.
    Raises OSError when it cannot be read, ConfigError for a bad shm name."""
    text = os.fspath(url_or_path)
    if text.startswith("shm:"):
        path = shared.shm_path(shared.shm_name(text))
    else:
        path = shared.file_path(text)
    return dict(_native.doctor(path))


def _native_backend(target: Any) -> NativeBackend:
    backend = getattr(target, "backend", target)
    if not isinstance(backend, NativeBackend):
        raise ConfigError(
            f"inspection needs a limiter on memory://, shm:// or file://, "
            f"not {type(backend).__name__}"
        )
    return backend


def inspect(limiter: Any, key: Key, *, now_ns: int | None = None) -> list[dict[str, Any]]:
    """One key's state under each rate of ``limiter`` (a Limiter or its
    backend), without consuming: ``present`` (the key has a slot),
    ``fingerprint``, ``slot`` (state, expiry...) and ``decision`` (what a
    peek gives for that rate alone)."""
    backend = _native_backend(limiter)
    spec = backend.spec
    algorithm = _native_algorithm(spec.algorithm)
    namespace = spec.namespace.encode("utf-8", "surrogatepass")
    if now_ns is None:
        now_ns = backend.policy.now_ns()
    out = []
    for index, rate in enumerate(spec.rates):
        info = _native.inspect_key(
            backend.table,
            key,
            algorithm,
            (rate.amount, rate.period_ns, rate.burst),
            namespace,
            index,
            now_ns,
        )
        info["rate"] = rate
        out.append(info)
    return out


def hottest(target: Any, n: int = 10, *, now_ns: int | None = None) -> list[dict[str, Any]]:
    """The ``n`` slots furthest from fresh in a table (a Limiter, a backend,
    a Table, or a ``shm://`` / ``file://`` URL), furthest first. Tables
    store fingerprints, never keys: match them with :func:`inspect`."""
    if isinstance(target, str):
        # never create a table just to look at it
        if target.startswith("shm:"):
            table = _native.open_shm(shared.shm_name(target), create=False)
        else:
            table = _native.open_file(shared.file_path(target), create=False)
    elif isinstance(target, _native.Table):
        table = target
    else:
        table = _native_backend(target).table
    if now_ns is None:
        return list(_native.hottest(table, n))
    return list(_native.hottest(table, n, now_ns))


def _native_algorithm(name: str) -> int:
    return ALGORITHMS[name]


# ---- any store -----------------------------------------------------------------------


def doctor_store(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The findings on the store at ``url`` opened with ``options``: for a
    table, :func:`doctor`; Redis: reachable within the store's timeout, its
    version, the check function or script loaded; PostgreSQL: reachable, the
    schema at the version this floodwall uses, the check function; a
    floodwall server: its ``/v1/health``. ``result["ok"]`` says whether it
    is healthy. Raises OSError (:class:`Unreachable` for a network store)
    when the store cannot be read, ConfigError for an in-process store
    (nothing to check from outside)."""
    from floodwall.stores.url import parse_store_url

    parsed = parse_store_url(url)
    scheme = parsed.scheme
    if scheme in ("file", "shm"):
        return doctor(url)
    if scheme.startswith(("redis", "rediss", "unix")):
        return _redis(url, options)
    if scheme in ("postgresql", "postgres"):
        return _postgres(parsed, options)
    if scheme in ("http", "https"):
        return _remote(url, options)
    raise ConfigError(
        f"the store {parsed.text!r} ({scheme}://) lives inside one process: there is "
        "nothing to check from here; give --store shm://NAME, file:///path, redis://..., "
        "postgresql://... or http(s)://..."
    )


def _probe(url: str, options: dict[str, Any]) -> Any:
    """The backend of a probe limiter on ``url`` (opening it sends nothing)."""
    from floodwall.limiter import Limiter

    return Limiter("1/second", store=url, **options).store


def _redis(url: str, options: dict[str, Any]) -> dict[str, Any]:
    import redis

    from floodwall.stores.redis.scripts import check_library, check_script

    conn = _probe(url, options).conn
    report: dict[str, Any] = {"store": "redis", "timeout": conn.timeout}
    try:
        client = conn.sync_client()
        client.ping()
        info = client.info("server")
        version = str(info.get("redis_version", "?"))
        report["version"] = version
        major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
        name, _ = check_library()
        _, sha = check_script()
        loaded = ""
        if major >= 7:
            libraries = client.function_list(library=name) or []
            if any(_library_name(lib) == name for lib in libraries):
                loaded = f"function {name}"
        if not loaded and all(client.script_exists(sha)):
            loaded = f"script {sha}"
    except redis.exceptions.RedisError as exc:
        raise Unreachable(f"Redis: {exc} (timeout {conn.timeout} s)") from exc
    finally:
        conn.close()
    report["check"] = loaded or NOT_LOADED
    if not loaded:
        report["warning"] = f"the check function is {NOT_LOADED}"
    report["ok"] = True
    return report


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _library_name(entry: object) -> str:
    """The name in one FUNCTION LIST entry (a map on RESP3, a flat list of
    field, value on RESP2)."""
    if isinstance(entry, dict):
        fields = {_text(k): v for k, v in entry.items()}
    elif isinstance(entry, (list, tuple)):
        fields = {_text(entry[i]): entry[i + 1] for i in range(0, len(entry) - 1, 2)}
    else:
        return ""
    return _text(fields.get("library_name", ""))


def _postgres(url: Any, options: dict[str, Any]) -> dict[str, Any]:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigError(f"needs psycopg: pip install 'floodwall[postgres]' ({exc})") from exc
    from floodwall.stores.postgres.schema import (
        SCHEMA_VERSION,
        Layout,
        SchemaVersionError,
        schema_state,
    )
    from floodwall.stores.postgres.url import libpq_conninfo, read_options

    opts = read_options(options, url)
    layout = Layout.of(opts)
    timeout = opts.failure.timeout
    connect = opts.failure.connect_timeout or timeout
    report: dict[str, Any] = {"store": "postgresql", "timeout": timeout,
                              "table": layout.table}
    kw: dict[str, Any] = {"autocommit": True}
    if connect:
        kw["connect_timeout"] = max(1, math.ceil(connect))  # libpq counts whole seconds
    if timeout:
        kw["options"] = f"-c statement_timeout={max(1, int(timeout * 1000))}"
    try:
        with psycopg.connect(libpq_conninfo(url), **kw) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            report["version"] = row[0] if row else "?"
            with conn.cursor() as cur:
                try:
                    version, has_function = schema_state(cur, layout)
                except SchemaVersionError as exc:
                    report["schema"] = str(exc)
                    report["ok"] = False
                    return report
    except psycopg.Error as exc:
        raise Unreachable(f"PostgreSQL: {exc}".strip()) from exc
    report["schema"] = (f"version {version}" if version is not None
                        else "missing (run `floodwall postgres init --store URL`)")
    report["function"] = layout.function_name if has_function else "missing"
    report["ok"] = version == SCHEMA_VERSION and has_function
    return report


def _remote(url: str, options: dict[str, Any]) -> dict[str, Any]:
    import httpx

    conn = _probe(url, options).conn
    report: dict[str, Any] = {"store": "remote", "timeout": conn.settings.timeout}
    try:
        answer = conn.sync_client().get("/v1/health")
    except httpx.HTTPError as exc:
        raise Unreachable(f"floodwall server: {exc!r}") from exc
    finally:
        conn.close()
    report["health"] = f"HTTP {answer.status_code}"
    report["ok"] = answer.status_code == 200
    return report
