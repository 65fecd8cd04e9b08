# test_postgres_store.py - the PostgreSQL store on a real server: the shared
# vectors (async, and sync over the unix socket), what a denial and a peek
# write (nothing), key names (hashed as on Redis, no raw key), the bounded
# sweep of expired rows, schema versions and names, options, the user's own
# psycopg connection or pool, and `floodwall postgres init|status`.
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest
from postgres_servers import PostgresServer
from test_vectors import FIELDS, load_cases

import floodwall
from floodwall import ConfigError, Limiter, check_all
from floodwall.cli import main as cli_main
from floodwall.errors import CostError
from floodwall.stores.netkeys import KeyNamer
from floodwall.stores.netquota import normalise_quota

FIXED_NOW = 1_750_000_000 * 10**9
VECTORS = Path(__file__).resolve().parents[1] / "vectors"


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def _rows(server: PostgresServer, table: str = "public.floodwall_state") -> list[Any]:
    with psycopg.connect(server.conninfo) as c:
        return c.execute(f"SELECT k, a, p, c, lt, ln, expires FROM {table} ORDER BY k").fetchall()


# ---- the shared vectors ------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "case"), load_cases())
def test_vectors_async(postgres_url: str, algorithm: str, case: dict[str, Any]) -> None:
    clock = Clock()
    limiter = Limiter(
        floodwall.Rate.from_ns(case["rate"], case["period_ns"], case["burst"]),
        algorithm=algorithm,
        store=postgres_url + "?timeout=10",
        namespace=f"avectors-{algorithm}-{case['name']}",
        clock=clock,
    )

    async def replay() -> None:
        for key in {step["key"] for step in case["steps"]}:
            await limiter.areset(key)
        for index, step in enumerate(case["steps"]):
            clock.now = step["t"]
            if step.get("error") == "cost":
                with pytest.raises(CostError):
                    await limiter.acheck(step["key"], step["cost"])
                continue
            d = await limiter.acheck(step["key"], step["cost"])
            got = {field: getattr(d, field) for field in FIELDS}
            want = {field: step[field] for field in FIELDS}
            assert got == want, f"{algorithm}/{case['name']} step {index} {step}"

    asyncio.run(replay())


def test_vectors_sync_over_the_unix_socket(postgres_server: PostgresServer) -> None:
    url = postgres_server.unix_url + "&timeout=10"
    clock = Clock()
    replayed = 0
    for algorithm in ("gcra", "fixed_window", "sliding_window", "sliding_log"):
        data = json.loads((VECTORS / f"{algorithm}.json").read_text())
        for case in data["cases"]:
            limiter = Limiter(
                floodwall.Rate.from_ns(case["rate"], case["period_ns"], case["burst"]),
                algorithm=algorithm,
                store=url,
                namespace=f"uvectors-{algorithm}-{case['name']}",
                clock=clock,
            )
            for key in {step["key"] for step in case["steps"]}:
                limiter.reset(key)
            for step in case["steps"]:
                if step.get("error") == "cost":
                    continue
                clock.now = step["t"]
                d = limiter.check(step["key"], step["cost"])
                assert {f: getattr(d, f) for f in FIELDS} == {f: step[f] for f in FIELDS}
                replayed += 1
    assert replayed > 100


# ---- writes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm", ["gcra", "leaky_bucket_shaping", "fixed_window", "sliding_window", "sliding_log"]
)
def test_denial_and_peek_write_nothing(
    postgres_url: str, postgres_server: PostgresServer, algorithm: str
) -> None:
    lim = Limiter("2/minute", algorithm=algorithm, store=postgres_url, clock=lambda: FIXED_NOW)
    assert lim.peek("k").allowed
    assert _rows(postgres_server) == []  # a peek of a fresh key creates no row
    assert lim.check("k", 2).allowed
    before = _rows(postgres_server)
    assert len(before) == 1
    assert not lim.check("k").allowed
    assert not lim.peek("k").allowed
    assert _rows(postgres_server) == before
    with psycopg.connect(postgres_server.conninfo) as c:
        # the row was not even rewritten with the same values
        xmin_before = c.execute("SELECT xmin FROM public.floodwall_state").fetchone()
        lim.check("k")
        lim.peek("k")
        assert c.execute("SELECT xmin FROM public.floodwall_state").fetchone() == xmin_before


def test_check_function_refuses_malformed_costs(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    # one cost per row key, each >= 0 and within its part's capacity; a
    # call that breaks this (a caller other than floodwall's Python) fails
    # loudly and writes nothing
    lim = Limiter("2/minute; 5/hour", store=postgres_url, clock=lambda: FIXED_NOW)
    backend: Any = lim.backend
    keys = backend.namer.keys("k")
    good = backend.parts.args(FIXED_NOW, "{1,1}", keys, 0)
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as c:
        assert c.execute(backend._sql, good).fetchone()[0] is True
        before = _rows(postgres_server)
        for costs, message in (
            ("{1}", "one cost"),
            ("{1,1,1}", "one cost"),
            ("{1,-1}", "cost must be >= 0"),
            ("{1,NULL}", "cost must be >= 0"),
            ("{3,1}", "exceeds the capacity"),
        ):
            args = (good[0], costs, *good[2:])
            with pytest.raises(psycopg.errors.RaiseException, match=message):
                c.execute(backend._sql, args)
        assert _rows(postgres_server) == before


def test_keys_are_hashed_as_on_redis(postgres_url: str, postgres_server: PostgresServer) -> None:
    lim = Limiter("5/minute", store=postgres_url, namespace="ns", key_secret="s3cret")
    lim.check("alice@example.com")
    [row] = _rows(postgres_server)
    name = bytes(row[0])
    assert b"alice" not in name
    namer = KeyNamer("ns", "gcra", [normalise_quota("gcra", 5, 60 * 10**9)], key_secret=b"s3cret")
    assert namer.keys("alice@example.com") == [name]
    # plain keys only when asked for
    plain = Limiter("5/minute", store=postgres_url, namespace="pl", plain_keys=True)
    plain.check("bob")
    assert any(b"bob" in bytes(r[0]) for r in _rows(postgres_server))


def test_reset_and_clear_touch_only_their_limit(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    a = Limiter("5/minute", store=postgres_url, namespace="a_b%")
    b = Limiter("5/minute", store=postgres_url, namespace="a_bx")
    for key in ("1", "2"):
        a.check(key)
        b.check(key)
    a.reset("1")
    assert a.peek("1").remaining == 5 and a.peek("2").remaining == 4
    a.clear()  # a LIKE pattern: "_" and "%" in the namespace are literal
    assert a.peek("2").remaining == 5
    assert b.peek("1").remaining == 4 and b.peek("2").remaining == 4


# ---- bounded storage -----------------------------------------------------------


def test_expired_rows_are_swept_a_few_at_a_time(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as c:
        c.execute(
            "INSERT INTO public.floodwall_state (k, a, expires) "
            "SELECT ('dead' || i)::bytea, 0, 1000 FROM generate_series(1, 200) AS i"
        )
    lim = Limiter("1000/second", store=postgres_url)
    counts = []
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as c:
        for _ in range(6):
            for i in range(20):
                lim.check(f"live{i}")
            counts.append(
                c.execute(
                    "SELECT count(*) FROM public.floodwall_state WHERE k::text LIKE '%%646561%%'"
                ).fetchone()[0]
            )
    # never all at once (at most 8 per admitting check), and going down
    assert counts[0] >= 200 - 20 * 8
    assert counts[-1] < counts[0]
    assert counts == sorted(counts, reverse=True)
    # a check on a test clock never sweeps (its times are not the database's)
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as c:
        c.execute("TRUNCATE public.floodwall_state")
        c.execute("INSERT INTO public.floodwall_state (k, a, expires) VALUES ('old', 0, 5)")
    fake = Limiter("1000/second", store=postgres_url, clock=lambda: FIXED_NOW)
    for i in range(100):
        fake.check(f"k{i}")
    assert any(bytes(r[0]) == b"old" for r in _rows(postgres_server))


def test_unlogged_table_option(postgres_server: PostgresServer) -> None:
    url = postgres_server.url + "?table=fw_unlogged&unlogged=true"
    Limiter("5/minute", store=url).check("k")
    with psycopg.connect(postgres_server.conninfo) as c:
        persistence = c.execute(
            "SELECT relpersistence FROM pg_class WHERE relname = 'fw_unlogged'"
        ).fetchone()
    assert persistence == ("u",)


# ---- schema ----------------------------------------------------------------------


def test_custom_schema_and_table(postgres_server: PostgresServer) -> None:
    url = postgres_server.url + "?schema=fw_custom&table=limits"
    lim = Limiter("5/minute", store=url)
    assert lim.check("k").remaining == 4
    assert len(_rows(postgres_server, "fw_custom.limits")) == 1
    with psycopg.connect(postgres_server.conninfo) as c:
        assert c.execute("SELECT value FROM fw_custom.limits_meta").fetchone() == ("1",)


def test_newer_schema_version_is_refused(postgres_server: PostgresServer) -> None:
    url = postgres_server.url + "?table=fw_future"
    Limiter("5/minute", store=url).check("k")
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as c:
        c.execute("UPDATE public.fw_future_meta SET value = '99'")
    # a new process (nothing cached) opening the same tables
    with pytest.raises(ConfigError, match=r"version '99'.*upgrade floodwall"):
        Limiter("5/minute", store=url + "&max_connections=2").check("k")
    with pytest.raises(ConfigError, match="version"):
        Limiter("5/minute", store=url + "&max_connections=2", fail="open").check("k")


def test_create_schema_false_says_what_to_do(postgres_server: PostgresServer) -> None:
    url = postgres_server.url + "?table=fw_missing&create_schema=false"
    with pytest.raises(ConfigError, match="floodwall postgres init"):
        Limiter("5/minute", store=url).check("k")


def test_cli_init_and_status(postgres_server: PostgresServer, capsys: Any) -> None:
    url = postgres_server.url + "?schema=fw_cli&table=t"
    assert cli_main(["postgres", "status", "--store", url]) == 1
    assert cli_main(["postgres", "init", "--store", url]) == 0
    assert "created" in capsys.readouterr().out
    assert cli_main(["postgres", "init", "--store", url]) == 0
    assert "already present" in capsys.readouterr().out
    Limiter("5/minute", store=url + "&create_schema=false").check("k")
    assert cli_main(["postgres", "status", "--store", url]) == 0
    assert "rows 1" in capsys.readouterr().out


# ---- options and objects ---------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("table=Bad-Name", "table must be a lower-case SQL name"),
        ("schema=x;drop", "schema must be"),
        ("timeout=-1", "timeout"),
        ("prepare_threshold=-2", "prepare_threshold"),
        ("unlogged=maybe", "unlogged"),
        ("max_connections=0", "max_connections"),
    ],
)
def test_bad_options_name_the_option(
    postgres_server: PostgresServer, query: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Limiter("5/minute", store=f"{postgres_server.url}?{query}")


def test_prepare_threshold_none_prepares_nothing(postgres_server: PostgresServer) -> None:
    url = postgres_server.url + "?prepare_threshold=none&table=fw_noprep"
    lim = Limiter("100/minute", store=url)
    for _ in range(20):
        lim.check("k")
    backend: Any = lim.backend
    with backend.conn.connection() as c:
        assert c.prepare_threshold is None
        assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    prepared = Limiter("100/minute", store=postgres_server.url + "?table=fw_prep")
    for _ in range(20):
        prepared.check("k")
    pbackend: Any = prepared.backend
    with pbackend.conn.connection() as c:
        assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] >= 1


def test_user_connection_and_pools(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.conninfo, autocommit=True) as conn:
        lim = Limiter("3/minute", store=conn, namespace="userconn")
        assert [lim.allow("k") for _ in range(4)] == [True, True, True, False]
    with psycopg_pool.ConnectionPool(postgres_server.conninfo, min_size=1, max_size=2) as pool:
        lim = Limiter("3/minute", store=pool, namespace="userpool")
        other = Limiter("2/minute", store=lim, namespace="userpool2")
        assert check_all([(lim, "a"), (other, "b")]).allowed
        assert check_all([(lim, "a"), (other, "b")]).allowed
        assert not check_all([(lim, "a"), (other, "b")]).allowed
        assert lim.peek("a").remaining == 1  # the denial took nothing

    async def with_async() -> list[bool]:
        async with psycopg_pool.AsyncConnectionPool(
            postgres_server.conninfo, min_size=1, max_size=2, open=False
        ) as apool:
            alim = Limiter("2/minute", store=apool, namespace="userapool")
            return [await alim.aallow("k") for _ in range(3)]

    assert asyncio.run(with_async()) == [True, True, False]


def test_check_all_across_stores_is_refused(postgres_url: str) -> None:
    a = Limiter("5/minute", store=postgres_url)
    b = Limiter("5/minute", store="memory://")
    with pytest.raises(ConfigError):
        check_all([(a, "k"), (b, "k")])


def test_sync_call_on_an_async_pool_is_a_config_error(postgres_server: PostgresServer) -> None:
    async def make() -> Any:
        return psycopg_pool.AsyncConnectionPool(postgres_server.conninfo, open=False)

    apool = asyncio.run(make())
    lim = Limiter("2/minute", store=apool, namespace="mixed")
    with pytest.raises(ConfigError, match="async API"):
        lim.check("k")
