"""The PostgreSQL store: postgresql:// and postgres:// URLs (libpq URIs,
unix sockets included), or an existing psycopg connection or pool.

One module per job: :mod:`.url` (URLs and options), :mod:`.schema` (the
tables and the check function under ``sql/``, versioned, created once),
:mod:`.connection` (pools, deadlines, the breaker), :mod:`.calls` (the one
statement of a check), :mod:`.backend` (the backend), :mod:`.django_alias`
(a Django app's own database). Key names are the Redis store's
(:mod:`floodwall.stores.netkeys`). Importing it imports psycopg.
"""

from __future__ import annotations

from floodwall.stores import register
from floodwall.stores.postgres.backend import (
    PostgresBackend,
    from_connection,
    is_psycopg_target,
    open_postgres,
)
from floodwall.stores.postgres.schema import SCHEMA_VERSION, Layout, SchemaVersionError

__all__ = [
    "SCHEMA_VERSION",
    "Layout",
    "PostgresBackend",
    "SchemaVersionError",
    "from_connection",
    "is_psycopg_target",
    "open_postgres",
]

SCHEMES = ("postgresql", "postgres")

for _scheme in SCHEMES:
    register(_scheme, open_postgres)
