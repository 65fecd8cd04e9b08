# redis_servers.py - start and stop real Redis servers for the tests.
#
# Every server is a `redis-server` child process bound to 127.0.0.1 on a
# free port, with persistence off (`--save '' --appendonly no`) and its
# files in a temporary directory. A missing or broken redis-server is a
# loud error, never a skip: run `.ci/install-redis.sh` first.
# Invariant: every process started here is stopped by the object that
# started it (by pid), and nothing here touches a system Redis.
"""Real Redis servers for the tests (PYTEST_DONT_REWRITE: also a plugin)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "RedisClusterProcs",
    "RedisServer",
    "SentinelProc",
    "free_port",
    "redis_server_binary",
]

START_TIMEOUT = 20.0


def redis_server_binary() -> str:
    """Path of redis-server; raises RuntimeError (never skips) if missing."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(
            "redis-server not found: the Redis tests need a real server; "
            "run `bash .ci/install-redis.sh` (apt-get install redis-server)"
        )
    return path


def redis_cli_binary() -> str:
    path = shutil.which("redis-cli")
    if path is None:
        raise RuntimeError("redis-cli not found: run `bash .ci/install-redis.sh`")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (and, for cluster
    nodes, whose bus port +10000 was free too)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair found on 127.0.0.1")


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies (Linux), so a
    killed test run never leaves a server behind."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _ping(host: str, port: int | None, unix: str | None = None, timeout: float = 0.5) -> bytes:
    """Send PING over a raw socket (no client library needed)."""
    if unix is not None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr: object = unix
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = (host, port)
    s.settimeout(timeout)
    try:
        s.connect(addr)  # type: ignore[arg-type]
        s.sendall(b"PING\r\n")
        return s.recv(64)
    finally:
        s.close()


class RedisServer:
    """One redis-server process; `stop()`/`start()` again keep the port."""

    def __init__(
        self,
        port: int | None = None,
        *,
        extra: Sequence[str] = (),
        unix_socket: bool = False,
        name: str = "redis",
    ) -> None:
        self.binary = redis_server_binary()
        self.port = port if port is not None else free_port()
        self.host = "127.0.0.1"
        self.extra = list(extra)
        self.dir = Path(tempfile.mkdtemp(prefix=f"floodwall-{name}-"))
        self.unix_path: str | None = str(self.dir / "redis.sock") if unix_socket else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def args(self) -> list[str]:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.log),
        ]
        if self.unix_path:
            args += ["--unixsocket", self.unix_path, "--unixsocketperm", "700"]
        return args + self.extra

    def start(self) -> RedisServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            self.args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.dir,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(
                    f"redis-server on port {self.port} exited with {self.proc.returncode}: "
                    f"{err.strip()} {self._log_tail()}"
                )
            try:
                if _ping(self.host, self.port).startswith(b"+PONG"):
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING: {last}")

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-run, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def pause(self) -> None:
        """SIGSTOP: the server still accepts TCP but never answers."""
        if self.proc is not None:
            os.kill(self.proc.pid, 19)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, 18)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class RedisClusterProcs:
    """A real Redis Cluster: `masters` redis-server processes on loopback,
    joined with `redis-cli --cluster create`."""

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "3000",
                ],
                name="cluster",
            )
            for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"redis+cluster://{hosts}"

    def start(self) -> RedisClusterProcs:
        for node in self.nodes:
            node.start()
        cmd = [redis_cli_binary(), "--cluster", "create"]
        cmd += [f"127.0.0.1:{n.port}" for n in self.nodes]
        cmd += ["--cluster-replicas", "0", "--cluster-yes"]
        out = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        if out.returncode != 0:
            self.cleanup()
            raise RuntimeError(
                "redis-cli --cluster create failed: "
                + out.stdout.decode(errors="replace")[-2000:]
                + out.stderr.decode(errors="replace")[-2000:]
            )
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        cli = redis_cli_binary()
        while time.monotonic() < deadline:
            states = []
            for n in self.nodes:
                out = subprocess.run(
                    [cli, "-h", "127.0.0.1", "-p", str(n.port), "cluster", "info"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
                states.append(b"cluster_state:ok" in out.stdout)
            if all(states):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")

    def cleanup(self) -> None:
        for n in self.nodes:
            n.cleanup()

    def __enter__(self) -> RedisClusterProcs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class SentinelProc:
    """A Redis Sentinel watching `master` under the service name `service`."""

    def __init__(self, master: RedisServer, service: str = "mymaster") -> None:
        self.master = master
        self.service = service
        self.server = RedisServer(name="sentinel")
        conf = self.server.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.server.port}\n"
            f"bind 127.0.0.1\n"
            f"dir {self.server.dir}\n"
            f"sentinel monitor {service} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} 2000\n"
        )
        self.conf = conf

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}"

    def start(self) -> SentinelProc:
        srv = self.server
        srv.args = lambda: [srv.binary, str(self.conf), "--sentinel"]  # type: ignore[method-assign]
        srv.start()
        return self

    def cleanup(self) -> None:
        self.server.cleanup()

    def __enter__(self) -> SentinelProc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# ---------------------------------------------------------------- fixtures
# Imported by the test_redis_*.py modules (`from redis_servers import ...`).

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session (unix socket enabled too)."""
    server = RedisServer(unix_socket=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, its data flushed before the test."""
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def fresh_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which the test may kill."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
