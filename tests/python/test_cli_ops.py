"""The operator's CLI driven as a subprocess on shm://, file:// and Redis
(memory:// where meaningful): ``limits``, ``status``, ``check``, ``reset``,
``top``, ``stats``, ``config``, ``init`` — text output, ``--json`` output
and exit statuses; and ``reset`` unblocking a client a real Flask app
limited, found by its IP address.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from floodwall.stores import shared

CLIENT = "203.0.113.7"


def run(cwd: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLOODWALL_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "floodwall", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)


def run_json(cwd: Path, *args: str, code: int = 0) -> Any:
    out = run(cwd, *args, "--json")
    assert out.returncode == code, (out.stdout, out.stderr)
    return json.loads(out.stdout)


def write_config(directory: Path, store: str) -> None:
    path = directory / "floodwall.toml"
    path.write_text(f"""
[store]
url = "{store}"

[limits.login]
rate = "3/5minutes"
key = "ip"

[limits.api]
rate = "100/minute"
algorithm = "sliding_window"
key = "header:X-Api-Key"
cost = 2
""")
    os.chmod(path, 0o644)


@pytest.fixture(params=["shm", "file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    tag = f"fwcli-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        yield request.getfixturevalue("redis_url")
    elif request.param == "shm":
        yield f"shm://{tag}"
        shared.unlink_shm(tag)
    else:
        yield f"file://{tmp_path}/{tag}.fw"


def test_every_command_on_a_shared_store(store: str, tmp_path: Path) -> None:
    write_config(tmp_path, store)

    # limits: in words, and as JSON
    out = run(tmp_path, "limits")
    assert out.returncode == 0, out.stderr
    assert "login: 3 per 5 minutes, gcra, burst 3, key: ip, cost 1" in out.stdout
    assert ("api: 100 per minute, sliding_window, burst 100, key: header:X-Api-Key, cost 2"
            in out.stdout)
    rows = {r["name"]: r for r in run_json(tmp_path, "limits")["limits"]}
    assert rows["login"]["words"] == "3 per 5 minutes" and rows["api"]["cost"] == 2

    # check consumes: three allowed (exit 0), then denied (exit 1)
    codes = [run(tmp_path, "check", "login", CLIENT).returncode for _ in range(3)]
    assert codes == [0, 0, 0]
    out = run(tmp_path, "check", "login", CLIENT)
    assert out.returncode == 1
    assert out.stdout.startswith(f"login / {CLIENT}: LIMITED, 0 of 3 left; next request in ")
    assert f"key: login|ip:{CLIENT}" in out.stdout

    # status consumes nothing, and says limited (exit 1)
    data = run_json(tmp_path, "status", "login", CLIENT, code=1)
    assert data["allowed"] is False and data["remaining"] == 0 and data["limit"] == 3
    assert data["key"] == f"login|ip:{CLIENT}" and 80 < data["retry_after"] <= 100
    again = run_json(tmp_path, "status", "login", CLIENT, code=1)
    assert again["remaining"] == 0

    # another client is untouched
    data = run_json(tmp_path, "status", "login", "198.51.100.1")
    assert data["allowed"] is True and data["remaining"] == 3

    # check --cost on the header-keyed limit
    data = run_json(tmp_path, "check", "api", "K-123", "--cost", "10")
    assert data["key"] == "api|hdr:x-api-key:K-123" and data["cost"] == 10
    assert data["remaining"] == 90

    # top: the limited client is among the hottest (tables only)
    out = run(tmp_path, "top", "--limit", "login", "--client", CLIENT)
    if store.startswith("redis"):
        assert out.returncode == 2
        assert "the redis store keeps no table floodwall can scan" in out.stderr
    else:
        assert out.returncode == 0, out.stderr
        assert "(fingerprints; keys are not stored;" in out.stdout
        data = run_json(tmp_path, "top", "--limit", "login", "--client", CLIENT)
        assert data["client_rank"] is not None and data["client_fingerprint"]
        missing = run(tmp_path, "top", "--limit", "login", "--client", "192.0.2.200")
        assert missing.returncode == 1
        assert "192.0.2.200: not among the 10 hottest" in missing.stdout

    # stats: the store's counters
    out = run(tmp_path, "stats")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"store {store} (")
    stats = run_json(tmp_path, "stats")
    assert "allowed" not in stats  # the CLI process's own counters mean nothing
    if not store.startswith("redis"):
        assert stats["active_keys"] == 2 and stats["slots"] > 0

    # reset unblocks the client
    out = run(tmp_path, "reset", "login", CLIENT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"login / {CLIENT}: reset; 3 of 3 left (was 0)")
    data = run_json(tmp_path, "status", "login", CLIENT)
    assert data["allowed"] is True and data["remaining"] == 3

    # config show: values and where they came from; check builds every limit
    out = run(tmp_path, "config")
    assert out.returncode == 0, out.stderr
    assert f"store.url = {store!r}  ({tmp_path / 'floodwall.toml'}:3)" in out.stdout
    out = run(tmp_path, "config", "check")
    assert out.returncode == 0, out.stderr
    assert f"ok: 2 named limit(s) built on {store}" in out.stdout
    env_store = run_json(tmp_path, "config")
    assert {v["key"]: v["source"] for v in env_store["values"]}["store.url"].endswith(":3")


def test_store_option_and_environment_choose_the_store(tmp_path: Path) -> None:
    write_config(tmp_path, "memory://")
    tag = f"fwcli-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        out = run(tmp_path, "check", "login", CLIENT, "--store", f"shm://{tag}")
        assert out.returncode == 0, out.stderr
        out = run(tmp_path, "status", "login", CLIENT, "--json",
                  env={"FLOODWALL_STORE": f"shm://{tag}"})
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["remaining"] == 2  # the same table
    finally:
        shared.unlink_shm(tag)


def test_memory_store_is_refused_with_the_reason(tmp_path: Path) -> None:
    write_config(tmp_path, "memory://")
    for command in (("status", "login", CLIENT), ("check", "login", CLIENT),
                    ("reset", "login", CLIENT), ("stats",), ("top",)):
        out = run(tmp_path, *command)
        assert out.returncode == 2, command
        assert "lives inside one process" in out.stderr, command
        assert out.stdout == ""
    # commands that do not touch the store work on memory://
    assert run(tmp_path, "limits").returncode == 0
    assert run(tmp_path, "config", "check").returncode == 0


def test_errors_go_to_stderr_with_exit_2(tmp_path: Path) -> None:
    write_config(tmp_path, "memory://")
    out = run(tmp_path, "status", "logn", CLIENT)
    assert out.returncode == 2 and out.stdout == ""
    assert "no named limit 'logn': did you mean 'login'? known: api, login" in out.stderr
    out = run(tmp_path, "status", "login", "alice", "--store", "shm://fwcli-never-created")
    assert out.returncode == 2
    assert "'alice' is not an IP address, and this limit is keyed by client IP" in out.stderr
    out = run(tmp_path, "status", "login", CLIENT, "--store", "mysql://x")
    assert out.returncode == 2 and "--store: unknown store scheme 'mysql'" in out.stderr
    (tmp_path / "floodwall.toml").write_text('[limits.login]\nrate = "5/minute"\nkye = "ip"\n')
    out = run(tmp_path, "config", "check")
    assert out.returncode == 2
    assert ("floodwall.toml:3: limits.login.kye: unknown key; did you mean 'key'?"
            in out.stderr)
    shared.unlink_shm("fwcli-never-created")


def test_init_writes_refuses_overwrite_and_forces(tmp_path: Path) -> None:
    out = run(tmp_path, "init")
    assert out.returncode == 0, out.stderr
    path = tmp_path / "floodwall.toml"
    assert out.stdout.startswith("wrote floodwall.toml")
    text = path.read_text()
    assert text.startswith("# floodwall.toml: the configuration of floodwall")
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    path.write_text(text + '\n[limits.mine]\nrate = "1/second"\n')
    out = run(tmp_path, "init")
    assert out.returncode == 2
    assert "floodwall.toml exists: not overwritten (use --force to replace it)" in out.stderr
    assert "[limits.mine]" in path.read_text()  # untouched
    out = run(tmp_path, "init", "--force", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["limits"] == []
    assert "[limits.mine]" not in path.read_text()
    # the generated file means the defaults
    assert run_json(tmp_path, "config")["values"] == []


def test_init_from_flux(tmp_path: Path) -> None:
    from test_config import FLUX_EXAMPLE

    (tmp_path / "flux.toml").write_text(FLUX_EXAMPLE)
    out = run(tmp_path, "init", "--from", "flux.toml")
    assert out.returncode == 0, out.stderr
    assert "not carried over:" not in out.stdout  # the documented example carries whole
    out = run(tmp_path, "limits")
    assert "strict_login: 5 per 5 minutes, token_bucket, burst 5, key: ip" in out.stdout
    assert "api_tier_1: 1000 per hour, gcra, burst 1000, key: ip" in out.stdout


def test_reset_unblocks_a_client_a_flask_app_limited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flask

    from floodwall.config import registry
    from floodwall.integrations import flask as fw_flask

    tag = f"fwcli-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    write_config(tmp_path, f"shm://{tag}")
    for var in list(os.environ):
        if var.startswith("FLOODWALL_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("FLOODWALL_CONFIG", str(tmp_path / "floodwall.toml"))
    registry._ACTIVE.clear()
    registry._FROM_CONFIG.clear()
    try:
        app = flask.Flask(__name__)
        fw = fw_flask.Floodwall(app)

        @app.route("/login", methods=["POST"])
        @fw.limit(limits=["login"])
        def login() -> str:
            return "ok"

        client = app.test_client()

        def attempt() -> int:
            return client.post("/login", environ_base={"REMOTE_ADDR": CLIENT}).status_code

        assert [attempt() for _ in range(4)] == [200, 200, 200, 429]
        out = run(tmp_path, "status", "login", CLIENT)
        assert out.returncode == 1 and "LIMITED" in out.stdout
        out = run(tmp_path, "reset", "login", CLIENT)
        assert out.returncode == 0, out.stderr
        assert attempt() == 200
    finally:
        for entry in registry._FROM_CONFIG.values():
            entry.limiter.close()
        registry._ACTIVE.clear()
        registry._FROM_CONFIG.clear()
        shared.unlink_shm(tag)


def test_docs_show_every_command() -> None:
    from floodwall.cli import COMMANDS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for name in COMMANDS:
        assert f"## `floodwall {name}" in doc, name


def test_store_password_is_never_printed(tmp_path: Path) -> None:
    write_config(tmp_path, "redis://app:hunter2@127.0.0.1:1/0")
    for command in (("config",), ("config", "--json"), ("limits", "--json")):
        out = run(tmp_path, *command)
        assert out.returncode == 0, out.stderr
        assert "hunter2" not in out.stdout + out.stderr, command
    assert "redis://app:***@127.0.0.1:1/0" in run(tmp_path, "config").stdout


def test_an_empty_table_is_pointed_out(tmp_path: Path) -> None:
    tag = f"fwcli-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    write_config(tmp_path, f"shm://{tag}")
    try:
        out = run(tmp_path, "status", "login", CLIENT)
        assert out.returncode == 0
        assert f"note: the table shm://{tag} holds no key at all" in out.stderr
        assert run(tmp_path, "check", "login", CLIENT).returncode == 0
        out = run(tmp_path, "status", "login", CLIENT)
        assert "note:" not in out.stderr
    finally:
        shared.unlink_shm(tag)
