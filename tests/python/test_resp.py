# test_resp.py - the RESP port of `floodwall serve` (2 workers sharing the
# port): redis-cli and redis-py talk to it, CL.THROTTLE answers as redis-cell
# does on a table of cases (limit = max_burst + 1, quantity 0 peeks, times
# rounded up to whole seconds), FW.CHECK names a configured limit, the token
# is required, and malformed frames are cut off.
from __future__ import annotations

import shutil
import socket
import subprocess
import uuid

import pytest
import redis
from floodwall_servers import FloodwallServer

from floodwall.server.resp import throttle_reply


@pytest.fixture(scope="module")
def srv(floodwall_server: FloodwallServer) -> FloodwallServer:
    assert floodwall_server.resp_port is not None
    return floodwall_server


@pytest.fixture
def r(srv: FloodwallServer) -> redis.Redis:
    client = redis.Redis(host="127.0.0.1", port=srv.resp_port, password=srv.token,
                         socket_timeout=10)
    yield client
    client.close()


def key() -> str:
    return f"cell-{uuid.uuid4().hex}"


def test_redis_cli_talks_to_it(srv: FloodwallServer) -> None:
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli is needed (apt-get install redis-tools)"
    base = [cli, "-p", str(srv.resp_port), "--no-auth-warning", "-a", str(srv.token)]
    out = subprocess.run(base + ["PING"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "PONG", out
    k = key()
    out = subprocess.run(base + ["CL.THROTTLE", k, "4", "1", "60"], capture_output=True,
                         text=True, timeout=30)
    assert out.stdout.split() == ["0", "5", "4", "-1", "60"], out
    # without the token: refused
    out = subprocess.run([cli, "-p", str(srv.resp_port), "CL.THROTTLE", k, "4", "1", "60"],
                         capture_output=True, text=True, timeout=30)
    assert "NOAUTH" in out.stdout + out.stderr


def test_redis_py_talks_to_it(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.execute_command("ECHO", "hi") == b"hi"
    assert r.execute_command("CL.THROTTLE", key(), 0, 1, 1) == [0, 1, 0, -1, 1]
    pipe = r.pipeline(transaction=False)
    k = key()
    for _ in range(4):
        pipe.execute_command("CL.THROTTLE", k, 2, 1, 60)
    assert [reply[0] for reply in pipe.execute()] == [0, 0, 0, 1]


def test_throttle_table_of_cases(r: redis.Redis) -> None:
    """redis-cell's semantics: GCRA with capacity max_burst + 1 and an
    emission interval of period / count; retry_after -1 when allowed."""
    k = key()
    cmd = ("CL.THROTTLE", k, 4, 1, 60)  # limit 5, one per minute
    # fresh key: limit = max_burst + 1, one consumed, full again in 60 s
    assert r.execute_command(*cmd) == [0, 5, 4, -1, 60]
    # quantity 0 peeks: nothing consumed, reset_after unchanged (rounded up)
    peek = r.execute_command(*cmd, 0)
    assert peek[:4] == [0, 5, 4, -1] and peek[4] == 60
    assert r.execute_command(*cmd, 0)[2] == 4
    # quantity 3 consumes 3
    assert r.execute_command(*cmd, 3)[:4] == [0, 5, 1, -1]
    assert r.execute_command(*cmd)[:4] == [0, 5, 0, -1]
    # limited: retry_after rounded up to the next whole second, reset ~ 5 min
    limited = r.execute_command(*cmd)
    assert limited[:3] == [1, 5, 0]
    assert limited[3] == 60  # 59.99... s rounds up to 60, never down to 59
    assert limited[4] == 300
    # a denial consumes nothing
    assert r.execute_command(*cmd, 0)[2] == 0


def test_throttle_rounds_sub_second_times_up(r: redis.Redis) -> None:
    k = key()
    # 3 per second, no burst: emission interval 333 ms
    first = r.execute_command("CL.THROTTLE", k, 0, 3, 1)
    assert first == [0, 1, 0, -1, 1]  # 0.333 s to full rounds up to 1
    second = r.execute_command("CL.THROTTLE", k, 0, 3, 1)
    assert second[:3] == [1, 1, 0] and second[3] == 1 and second[4] == 1


def test_throttle_quantity_above_limit_is_an_error(r: redis.Redis) -> None:
    # redis-cell answers "limited" with retry -1; floodwall says why
    with pytest.raises(redis.ResponseError, match="can never be admitted"):
        r.execute_command("CL.THROTTLE", key(), 4, 1, 60, 6)


@pytest.mark.parametrize(
    "args",
    [
        ("k",),
        ("k", 1, 1),
        ("k", "x", 1, 60),
        ("k", -1, 1, 60),
        ("k", 1, 0, 60),
        ("k", 1, 1, 0),
        ("k", 1, 1, 60, -1),
        ("k", 1, 1, 60, 1, 1),
        ("k", 1, 1, 2**63),
    ],
)
def test_throttle_bad_arguments(r: redis.Redis, args: tuple[object, ...]) -> None:
    with pytest.raises(redis.ResponseError):
        r.execute_command("CL.THROTTLE", *args)
    assert r.ping() is True  # the connection survives a bad command


def test_fw_check_names_a_configured_limit(r: redis.Redis) -> None:
    k = key()
    replies = [r.execute_command("FW.CHECK", "api", k) for _ in range(6)]
    assert [x[0] for x in replies] == [0] * 5 + [1]
    assert replies[0][:3] == [0, 5, 4] and replies[5][3] == 12
    assert r.execute_command("FW.CHECK", "api", key(), 0)[2] == 5
    with pytest.raises(redis.ResponseError, match="no limit named"):
        r.execute_command("FW.CHECK", "nope", k)


def test_auth_required(srv: FloodwallServer) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    no_retry = Retry(NoBackoff(), 0)
    plain = redis.Redis(host="127.0.0.1", port=srv.resp_port, socket_timeout=10,
                        retry=no_retry)
    with pytest.raises(redis.AuthenticationError):
        plain.execute_command("CL.THROTTLE", key(), 1, 1, 60)
    wrong = redis.Redis(host="127.0.0.1", port=srv.resp_port, password="x" * 32,
                        socket_timeout=10, retry=no_retry)
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    plain.close()
    wrong.close()


def _raw(srv: FloodwallServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.resp_port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk


@pytest.mark.parametrize(
    "frame",
    [
        b"*100000\r\n",  # too many arguments
        b"*2\r\n$4\r\nPING\r\n$99999999\r\n",  # a bulk string far too long
        b"*1\r\n$x\r\n",  # a bad length
        b"*1\r\n:4\r\nPING\r\n",  # not a bulk string
        b"*1\r\n$4\r\nPINGxx",  # a bad terminator
    ],
)
def test_malformed_frames_are_cut_off(srv: FloodwallServer, frame: bytes) -> None:
    out = _raw(srv, frame)  # returns when the server closes the connection
    assert out.startswith(b"-ERR Protocol error"), out
    assert _raw(srv, b"QUIT\r\n") == b"+OK\r\n"


def test_throttle_reply_rounds_up() -> None:
    assert throttle_reply(True, 5, 4, 0, 60_000_000_000) == [0, 5, 4, -1, 60]
    assert throttle_reply(False, 5, 0, 1, 59_000_000_001) == [1, 5, 0, 1, 60]
    assert throttle_reply(False, 1, 0, 333_333_333, 333_333_333) == [1, 1, 0, 1, 1]
