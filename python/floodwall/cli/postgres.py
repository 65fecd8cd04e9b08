"""``floodwall postgres init|status --store URL``: the PostgreSQL store's schema.

``init`` creates the tables and the check function (what the first check
does by itself when ``create_schema`` is on), for deployments whose
application role may not create tables: run it once as a role that may.
``status`` prints the schema version and the number of rows, read-only.
Both take the store's URL with its options (``schema=``, ``table=``,
``unlogged=``). Exit code 0 on success, 1 when ``status`` finds no schema,
2 on a usage or floodwall error (a schema of an unknown version included).
"""

from __future__ import annotations

import argparse

HELP = "create (init) or show (status) the PostgreSQL store's tables"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall postgres``."""
    parser.add_argument("action", choices=("init", "status"), help="what to do")
    parser.add_argument(
        "--store",
        required=True,
        help="postgresql://user@host/db?schema=...&table=... (a libpq URI)",
    )


def run(args: argparse.Namespace) -> int:
    """Create or show the schema of ``args.store``."""
    from floodwall.errors import ConfigError, StoreError
    from floodwall.stores.url import parse_store_url

    url = parse_store_url(args.store)
    try:
        import psycopg

        from floodwall.stores.postgres.schema import SCHEMA_VERSION, Layout, ensure_schema
        from floodwall.stores.postgres.url import libpq_conninfo, read_options
    except ImportError as exc:
        raise ConfigError(f"needs psycopg: pip install 'floodwall[postgres]' ({exc})") from exc
    opts = read_options({}, url)
    layout = Layout.of(opts)
    try:
        with psycopg.connect(libpq_conninfo(url), autocommit=True, connect_timeout=10) as conn:
            if args.action == "init":
                created = ensure_schema(conn, layout, create=True)
                what = "created" if created else "already present"
                print(f"{layout.table}: schema version {SCHEMA_VERSION}, {what}")
                return 0
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (layout.meta,)).fetchone()
            if not exists or not exists[0]:
                print(f"{layout.table}: no floodwall schema (run `floodwall postgres init`)")
                return 1
            ensure_schema(conn, layout, create=False)  # refuses an unknown version
            rows = conn.execute(f"SELECT count(*) FROM {layout.table}").fetchone()
            print(f"{layout.table}: schema version {SCHEMA_VERSION}, rows {rows[0] if rows else 0}")
            return 0
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL at {url.text}: {exc}") from exc
