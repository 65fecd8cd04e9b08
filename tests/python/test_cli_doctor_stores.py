"""``floodwall doctor`` on every store, as a subprocess: the configured
store or ``--store``; a live Redis (version, check function loaded or "not
loaded yet" as a warning), a dead Redis port (exit 2 with the reason, within
the timeout), PostgreSQL with and without the schema, and a file:// table
(healthy, damaged, missing: exit codes 0, 1, 2 as before).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis_servers import free_port

from floodwall.stores import shared


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLOODWALL_")}
    return subprocess.run([sys.executable, "-m", "floodwall", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_live_redis_reports_version_and_loads_on_first_check(tmp_path: Path,
                                                              redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).function_flush()
    r = run(tmp_path, "doctor", "--json", "--store", redis_url)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["store"] == "redis"
    assert report["version"][0].isdigit()
    assert report["check"] == "not loaded yet: loaded on first check"
    assert "not loaded yet" in report["warning"]

    import floodwall

    limiter = floodwall.Limiter("5/second", store=redis_url)
    assert limiter.check("doctor-key").allowed
    limiter.close()
    r = run(tmp_path, "doctor", "--store", redis_url)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stdout
    assert "check            function floodwall_" in r.stdout or "script " in r.stdout


def test_redis_script_mode_finds_the_script(tmp_path: Path, redis_url: str) -> None:
    import floodwall
    from floodwall.stores.redis.scripts import check_script

    url = redis_url + ("&" if "?" in redis_url else "?") + "scripting=eval"
    limiter = floodwall.Limiter("5/second", store=url)
    assert limiter.check("k").allowed
    limiter.close()
    import redis

    redis.Redis.from_url(redis_url).function_flush()
    r = run(tmp_path, "doctor", "--json", "--store", redis_url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["check"] == f"script {check_script()[1]}"


def test_dead_redis_port_fails_within_the_timeout(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    r = run(tmp_path, "doctor", "--store", f"redis://127.0.0.1:{port}?timeout=0.5")
    elapsed = time.monotonic() - started
    assert r.returncode == 2
    assert f"127.0.0.1:{port}" in r.stderr and "Redis" in r.stderr
    assert elapsed < 10  # interpreter start-up included; the wait is 0.5 s


def test_configured_store_is_used(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "floodwall.toml").write_text(f'[store]\nurl = "{redis_url}"\n')
    r = run(tmp_path, "doctor", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["store"] == "redis"


def test_memory_store_is_refused(tmp_path: Path) -> None:
    r = run(tmp_path, "doctor", "--store", "memory://")
    assert r.returncode == 2
    assert "inside one process" in r.stderr


def test_postgres_without_and_with_the_schema(tmp_path: Path, postgres_url: str) -> None:
    schema = "doctor_" + uuid.uuid4().hex[:12]
    url = postgres_url + ("&" if "?" in postgres_url else "?") + f"schema={schema}"
    r = run(tmp_path, "doctor", "--json", "--store", url)
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is False and report["schema"].startswith("missing")
    assert report["function"] == "missing"

    init = run(tmp_path, "postgres", "init", "--store", url)
    assert init.returncode == 0, init.stderr
    r = run(tmp_path, "doctor", "--json", "--store", url)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["schema"] == "version 1"
    assert report["function"].startswith("floodwall_state_check_")
    assert report["version"][0].isdigit()


def test_postgres_unknown_schema_version_is_a_problem(tmp_path: Path,
                                                      postgres_url: str) -> None:
    import psycopg

    from floodwall.stores.postgres.url import libpq_conninfo
    from floodwall.stores.url import parse_store_url

    schema = "doctor_" + uuid.uuid4().hex[:12]
    url = postgres_url + ("&" if "?" in postgres_url else "?") + f"schema={schema}"
    assert run(tmp_path, "postgres", "init", "--store", url).returncode == 0
    with psycopg.connect(libpq_conninfo(parse_store_url(url)), autocommit=True) as conn:
        conn.execute(f'UPDATE "{schema}"."floodwall_state_meta" SET value = \'99\' '
                     "WHERE name = 'schema_version'")
    r = run(tmp_path, "doctor", "--store", url)
    assert r.returncode == 1
    assert "'99'" in r.stdout


def test_dead_postgres_port_is_unreadable(tmp_path: Path) -> None:
    r = run(tmp_path, "doctor", "--store",
            f"postgresql://nobody@127.0.0.1:{free_port()}/x?timeout=1")
    assert r.returncode == 2
    assert "PostgreSQL" in r.stderr


def test_file_table_behaviour_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "t.fw"
    import floodwall

    limiter = floodwall.Limiter("5/second", store=f"file://{path}")
    assert limiter.check("k").allowed
    limiter.close()
    r = run(tmp_path, "doctor", str(path))
    assert r.returncode == 0, r.stderr
    assert "ok               True" in r.stdout and "fill" in r.stdout
    r = run(tmp_path, "doctor", "--store", f"file://{path}", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the checksummed header
    damaged = tmp_path / "bad.fw"
    damaged.write_bytes(bytes(data))
    r = run(tmp_path, "doctor", "--store", f"file://{damaged}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert damaged.read_bytes() == bytes(data)  # read-only
    missing = run(tmp_path, "doctor", str(tmp_path / "missing.fw"))
    assert missing.returncode == 2 and "missing.fw" in missing.stderr


@pytest.mark.parametrize("scheme", ["shm"])
def test_shm_table_by_store(tmp_path: Path, scheme: str) -> None:
    import floodwall

    name = "fwdoc" + uuid.uuid4().hex[:10]
    limiter = floodwall.Limiter("5/second", store=f"{scheme}://{name}")
    try:
        assert limiter.check("k").allowed
        r = run(tmp_path, "doctor", "--store", f"{scheme}://{name}")
        assert r.returncode == 0, r.stderr
        assert "ok               True" in r.stdout
    finally:
        limiter.close()
        path = shared.shm_path(shared.shm_name(f"{scheme}://{name}"))
        if os.path.exists(path):
            os.unlink(path)


def test_remote_server_health(tmp_path: Path, remote_store_url: str) -> None:
    r = run(tmp_path, "doctor", "--json", "--store", remote_store_url)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["store"] == "remote"
    assert report["health"] == "HTTP 200"


def test_dead_remote_server_is_unreadable(tmp_path: Path) -> None:
    r = run(tmp_path, "doctor", "--store", f"http://127.0.0.1:{free_port()}?timeout=1")
    assert r.returncode == 2
    assert "floodwall server" in r.stderr
