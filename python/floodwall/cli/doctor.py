"""``floodwall doctor [TABLE]``: check a table, or the configured store, read-only.

With TABLE (a path, file:///path or shm://NAME) it prints every finding of
the table doctor, one per line, and never changes the table. Without it, it
checks the configured store (or ``--store URL``): a file:// or shm:// table
as above; Redis (reachable within the store's timeout, server version, the
check function or script loaded); PostgreSQL (reachable, the schema present
at a version this floodwall uses, the check function present); a floodwall
server (``http(s)://``: its ``/v1/health``). Exit code 0 if healthy, 1 if a
problem was found, 2 if the store cannot be read (missing, unreachable, not
a table, no permission). ``--json`` prints the findings as one object.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from floodwall.cli._target import add_common_arguments, emit, load_config
from floodwall.errors import ConfigError

HELP = "check a table or the configured store read-only (exit 1 if a problem is found)"

#: A finding's value when the check function is not on the server yet
#: (a warning: the first check loads it).
NOT_LOADED = "not loaded yet: loaded on first check"


class Unreachable(Exception):
    """The store cannot be read: the doctor exits 2 with this reason."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall doctor``."""
    parser.add_argument("table", nargs="?",
                        help="a table file path, file:///path or shm://NAME (default: "
                        "the configured store, or --store)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the doctor on ``args.table`` or the store, and print its report."""
    try:
        if args.table:
            what = args.table
            report = _table(args.table)
        else:
            config = load_config(args)
            what = config.store_text
            report = _store(config.store_url, config.store_options())
    except Unreachable as exc:
        print(f"floodwall: cannot read {what}: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            emit(args, "", {"ok": False, "store": what, "error": str(exc)})
        return 2
    lines = [f"{name:16} {report[name]}" for name in sorted(report)]
    fill = fill_line(report)
    if fill:
        lines.append(f"{'fill':16} {fill}")
    emit(args, "\n".join(lines), report)
    return 0 if report.get("ok") else 1


def _table(location: str) -> dict[str, Any]:
    # The doctor itself lives with the shared tables for now (see floodwall.ops).
    from floodwall.stores import shared

    try:
        return dict(shared.doctor(location))
    except OSError as exc:
        raise Unreachable(str(exc)) from exc


def _store(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The findings on the store at ``url`` opened with ``options``."""
    from floodwall.stores.url import parse_store_url

    parsed = parse_store_url(url)
    scheme = parsed.scheme
    if scheme in ("file", "shm"):
        return _table(url)
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


def fill_line(report: dict[str, object]) -> str:
    """How full the table is: the keys it counts against ``max_keys`` (live
    ones, and expired ones not yet reclaimed) and the live ones alone."""
    keys, cap, live = report.get("keys"), report.get("max_keys"), report.get("active_keys")
    if not isinstance(keys, int) or not isinstance(cap, int) or cap <= 0:
        return ""
    live_part = f", {live} live" if isinstance(live, int) else ""
    return f"{keys} of {cap} keys ({100.0 * keys / cap:.1f}%{live_part})"
