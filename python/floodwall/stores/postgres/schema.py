"""The PostgreSQL store's schema: its names, its SQL text, and installing it.

:class:`Layout` holds the quoted names of one store's objects (state table,
expiry index, meta table, check function) in a configurable schema. The
check function's name carries a digest of its SQL text, so two floodwall
versions sharing a database never replace each other's function.
:func:`ensure_schema` creates what is missing under a transaction-level
advisory lock (so several processes starting at once create it once), and
refuses a schema whose version this floodwall does not know, with a message
saying what to do. Invariant: the tables, the function and the version row
are created in one transaction: a reader sees all of them or none.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from floodwall.errors import ConfigError
from floodwall.stores.postgres.url import PostgresOptions, check_identifier

__all__ = [
    "EXPIRY_GRAIN_NS",
    "SCHEMA_VERSION",
    "SWEEP_EVERY",
    "SWEEP_ROWS",
    "Layout",
    "SchemaVersionError",
    "ensure_schema",
    "install_sql",
    "schema_state",
    "sql_text",
]

#: The version of the tables this floodwall reads and writes.
SCHEMA_VERSION = 1

#: Expired rows removed by one sweep, and one admitting check in how many
#: sweeps (on average): a sweep's work is bounded, and the expected number
#: removed per written row (16 / 8 = 2) exceeds the one row a write can add.
#: A sweep that finds nothing still costs a statement about a quarter
#: longer, so sweeps are rare and a little larger rather than frequent.
SWEEP_ROWS = 16
SWEEP_EVERY = 8
#: A row's expires is rounded up to a multiple of this (2^34 ns, about 17
#: s): an active key's writes then mostly leave it unchanged, so that they
#: update the row in place (HOT) and add no index entry; a fresh state's
#: row lingers at most this much longer before a sweep may take it.
EXPIRY_GRAIN_NS = 2**34


class SchemaVersionError(ConfigError):
    """The database holds a floodwall schema of a version this one cannot use."""


@cache
def _sql(name: str) -> str:
    return resources.files(__package__).joinpath("sql", name).read_text(encoding="utf-8")


def sql_text(name: str) -> str:
    """The text of one of the package's SQL files (``sql/<name>``)."""
    return _sql(name)


def _digest() -> str:
    text = _sql("check.sql") + _sql("state.sql") + f"{SWEEP_ROWS}/{SWEEP_EVERY}/{EXPIRY_GRAIN_NS}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


@dataclass(frozen=True)
class Layout:
    """The names of one store's objects, quoted and schema-qualified."""

    schema_name: str
    table_name: str
    unlogged: bool = False

    @classmethod
    def of(cls, opts: PostgresOptions) -> Layout:
        return cls(opts.schema, opts.table, opts.unlogged)

    def __post_init__(self) -> None:
        check_identifier("schema", self.schema_name)
        check_identifier("table", self.table_name)

    def _q(self, name: str) -> str:
        return f'"{self.schema_name}"."{name}"'

    @property
    def schema(self) -> str:
        return f'"{self.schema_name}"'

    @property
    def table(self) -> str:
        return self._q(self.table_name)

    @property
    def meta(self) -> str:
        return self._q(self.table_name + "_meta")

    @property
    def index(self) -> str:
        return f'"{self.table_name}_expires"'

    @property
    def function_name(self) -> str:
        return f"{self.table_name}_check_{_digest()}"

    @property
    def function(self) -> str:
        return self._q(self.function_name)

    @property
    def state_function(self) -> str:
        """The function one_gcra.sql reads a denied key's state with."""
        return self._q(f"{self.table_name}_state_{_digest()}")

    @property
    def functions(self) -> tuple[str, str, str]:
        """Every function of this floodwall (the schema check's list)."""
        return (self.function, self.state_function, self.window_function)

    @property
    def window_function(self) -> str:
        """The function one_window.sql reads a denied key's state with."""
        return self._q(f"{self.table_name}_window_{_digest()}")

    @property
    def lock_class(self) -> int:
        """The advisory-lock class (int4) of this table's keys; class + 1
        guards schema creation."""
        crc = zlib.crc32(f"floodwall:{self.schema_name}.{self.table_name}".encode())
        return (crc & 0x7FFFFFFE) - 0x40000000  # even, well inside int4

    @property
    def check_call(self) -> str:
        """The one statement a check sends (nine parameters)."""
        return (
            "SELECT allowed, part, remaining, retry_after, reset_after, delay "
            f"FROM {self.function}(%s::int8, %s::int8[], %s::bytea[], %s::text[], "
            "%s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::int4)"
        )


def install_sql(layout: Layout) -> list[str]:
    """The statements that create the schema (idempotent), in order."""
    subs = {
        "@table@": layout.table,
        "@meta@": layout.meta,
        "@index@": layout.index,
        "@unlogged@": "UNLOGGED" if layout.unlogged else "",
        "@version@": str(SCHEMA_VERSION),
        "@check@": layout.function,
        "@state@": layout.state_function,
        "@window@": layout.window_function,
        "@lockclass@": str(layout.lock_class),
        "@sweep_rows@": str(SWEEP_ROWS),
        "@sweep_every@": str(SWEEP_EVERY),
        "@grain@": str(EXPIRY_GRAIN_NS),
    }

    def fill(text: str) -> str:
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    schema_sql = fill(_sql("schema.sql"))
    statements = [s.strip() for s in _strip_comments(schema_sql).split(";") if s.strip()]
    statements.append(fill(_sql("check.sql")))
    statements.append(fill(_sql("state.sql")))
    return statements


def _strip_comments(text: str) -> str:
    """schema.sql less its comments (it has no "--" inside a literal)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


#: (the meta table exists, every function of this floodwall exists)
_EXISTS = (
    "SELECT to_regclass(%s) IS NOT NULL, to_regproc(%s) IS NOT NULL"
    " AND to_regproc(%s) IS NOT NULL AND to_regproc(%s) IS NOT NULL"
)


def _state(cur: Any, layout: Layout) -> tuple[int | None, bool]:
    """(schema version or None when there is no meta table, whether this
    floodwall's check function exists)."""
    cur.execute(_EXISTS, (layout.meta, *layout.functions))
    has_meta, has_function = cur.fetchone()
    if not has_meta:
        return None, bool(has_function)
    cur.execute(f"SELECT value FROM {layout.meta} WHERE name = 'schema_version'")
    row = cur.fetchone()
    if row is None:
        raise SchemaVersionError(
            f"{layout.meta} exists but holds no schema_version: it is not floodwall's, "
            "or was damaged; use another table= or drop it"
        )
    return _version(row[0], layout), bool(has_function)


def schema_state(cur: Any, layout: Layout) -> tuple[int | None, bool]:
    """(schema version, or None when the tables are missing; whether this
    floodwall's check function exists), read-only. SchemaVersionError for
    a version this floodwall does not know (``floodwall doctor`` uses it)."""
    return _state(cur, layout)


def _version(text: object, layout: Layout) -> int:
    try:
        version = int(str(text))
    except ValueError:
        version = -1
    if version != SCHEMA_VERSION:
        what = "newer" if version > SCHEMA_VERSION else "unknown"
        raise SchemaVersionError(
            f"the floodwall tables {layout.table} are at schema version {text!r}, "
            f"{what} to this floodwall (which uses version {SCHEMA_VERSION}): upgrade "
            "floodwall in every process that shares them (pip install -U 'floodwall[postgres]'), "
            "or point this one at other tables (table=... or schema=...)"
        )
    return version


def ensure_schema(conn: Any, layout: Layout, *, create: bool = True) -> bool:
    """Make sure ``layout``'s objects exist at this version, on a psycopg
    connection (sync); True when this call created something.

    Raises SchemaVersionError for a version this floodwall does not know,
    and ConfigError when the schema is missing and ``create`` is False.
    """
    with conn.cursor() as cur:
        version, has_function = _state(cur, layout)
    if version is not None and has_function:
        return False
    if not create:
        raise ConfigError(
            f"the floodwall tables {layout.table} do not exist (or lack this version's "
            "function): create them with `floodwall postgres init --store URL`, "
            "or open the store with create_schema=true"
        )
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (layout.lock_class + 1,))
        version, has_function = _state(cur, layout)  # someone may have just made it
        if version is not None and has_function:
            return False
        cur.execute("SELECT to_regnamespace(%s) IS NULL", (layout.schema,))
        if cur.fetchone()[0]:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {layout.schema}")
        for statement in install_sql(layout):
            cur.execute(statement)
    return True


async def aensure_schema(conn: Any, layout: Layout, *, create: bool = True) -> bool:
    """:func:`ensure_schema` on an async psycopg connection."""
    async with conn.cursor() as cur:
        await cur.execute(_EXISTS, (layout.meta, *layout.functions))
        has_meta, has_function = await cur.fetchone()
        if has_meta:
            await cur.execute(f"SELECT value FROM {layout.meta} WHERE name = 'schema_version'")
            row = await cur.fetchone()
            _version(row[0] if row else None, layout)
            if has_function:
                return False
    if not create:
        raise ConfigError(
            f"the floodwall tables {layout.table} do not exist: create them with "
            "`floodwall postgres init --store URL`, or open the store with create_schema=true"
        )
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (layout.lock_class + 1,))
        await cur.execute(_EXISTS, (layout.meta, *layout.functions))
        has_meta, has_function = await cur.fetchone()
        if has_meta:
            await cur.execute(f"SELECT value FROM {layout.meta} WHERE name = 'schema_version'")
            row = await cur.fetchone()
            _version(row[0] if row else None, layout)
            if has_function:
                return False
        await cur.execute("SELECT to_regnamespace(%s) IS NULL", (layout.schema,))
        if (await cur.fetchone())[0]:
            await cur.execute(f"CREATE SCHEMA IF NOT EXISTS {layout.schema}")
        for statement in install_sql(layout):
            await cur.execute(statement)
    return True
