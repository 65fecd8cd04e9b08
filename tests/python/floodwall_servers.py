# floodwall_servers.py - start and stop real `floodwall serve` processes for the tests.
#
# A server is `python -m floodwall serve` on 127.0.0.1 with N uvicorn
# workers sharing one shm:// table, a token file of mode 600 and a
# floodwall.toml of named limits, in a temporary directory. It must answer
# /v1/health within START_TIMEOUT, else the test fails loudly with the
# server's log: never a skip. Invariant: every process started here is
# stopped by the object that started it (by its pid), and its shm table
# is unlinked.
"""Real floodwall servers for the tests (also a pytest plugin)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CONFIG", "FloodwallServer", "free_port"]

START_TIMEOUT = 30.0

#: The named limits every test server serves.
CONFIG = """\
[limits.api]
rate = "5/minute"

[limits.login]
rate = "3/minute"
algorithm = "sliding_window"

[limits.burst]
rate = "100/second"
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


class FloodwallServer:
    """One `floodwall serve` process tree; ``url`` is its HTTP base URL."""

    def __init__(
        self,
        *,
        workers: int = 2,
        token: bool = True,
        test_clock: bool = True,
        resp: bool = False,
        tls: bool = False,
        extra: Sequence[str] = (),
        store: str | None = None,
        port: int | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fw-serve-"))
        self.port = port or free_port()
        self.resp_port = free_port() if resp else None
        # room for the vectors' sliding logs (65536 entries); few keys, so a
        # clear() touches at most 256 x 512 KiB of shared memory
        self.store = store or (
            f"shm://fwserve-{os.getpid()}-{uuid.uuid4().hex[:10]}?max_keys=256&log_capacity=65536"
        )
        self.token = secrets.token_urlsafe(24) if token else None
        self.token_file = self.dir / "token"
        (self.dir / "floodwall.toml").write_text(CONFIG)
        args = [
            sys.executable, "-m", "floodwall", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(workers), "--store", self.store,
            "--config", str(self.dir / "floodwall.toml"),
        ]
        if self.token is not None:
            fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, self.token.encode() + b"\n")
            os.close(fd)
            args += ["--token-file", str(self.token_file)]
        if test_clock:
            args.append("--test-clock")
        if self.resp_port is not None:
            args += ["--resp-port", str(self.resp_port)]
        self.cert: Path | None = None
        if tls:
            self.cert, key = self._make_cert()
            args += ["--tls-cert", str(self.cert), "--tls-key", str(key)]
        args += list(extra)
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def _make_cert(self) -> tuple[Path, Path]:
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )
        os.chmod(key, 0o600)
        return cert, key

    @property
    def log(self) -> str:
        try:
            return (self.dir / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("FLOODWALL_SERVER_TOKEN", None)
        log = open(self.dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent, cwd=self.dir,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"floodwall serve exited with {self.proc.returncode}:\n{self.log}"
                )
            if self._healthy():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"floodwall serve did not answer within {START_TIMEOUT}s:\n{self.log}")

    def _healthy(self) -> bool:
        import httpx

        try:
            r = httpx.get(self.url + "/v1/health", headers=self.headers(), timeout=1.0,
                          verify=self.verify())
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def verify(self) -> Any:
        """What httpx should verify this server's certificate with."""
        if self.cert is None:
            return True
        import ssl

        return ssl.create_default_context(cafile=str(self.cert))

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def store_url(self, **options: str) -> str:
        """The URL of the remote store on this server (token by file)."""
        opts = dict(options)
        if self.token is not None:
            opts.setdefault("token_file", str(self.token_file))
        if self.cert is not None:
            opts.setdefault("verify", str(self.cert))
        query = "&".join(f"{k}={v}" for k, v in opts.items())
        return self.url + ("?" + query if query else "")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the main process and its workers (they are its children)."""
        proc = self.proc
        if proc is None:
            return
        children = _children(proc.pid)
        proc.kill()
        proc.wait(timeout=10)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None
        # the workers' sockets close with them; wait until the port is free
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.05)

    def close(self) -> None:
        self.stop()
        if self.store.startswith("shm://"):
            try:
                os.unlink(f"/dev/shm/{self.store[len('shm://'):].split('?')[0]}")
            except OSError:
                pass


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="session")
def floodwall_server() -> Iterator[FloodwallServer]:
    """One server for the session: 2 workers, token, test clock, RESP port."""
    server = FloodwallServer(workers=2, resp=True,
                             extra=["--allow-clear", "--head-timeout", "2",
                                    "--body-timeout", "2"])
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def remote_store_url(floodwall_server: FloodwallServer) -> str:
    """The remote store on the session server, its table cleared for this
    test (as the Redis fixture flushes its database), with a namespace
    prefix of this test's own."""
    import httpx

    r = httpx.post(floodwall_server.url + "/v1/clear", headers=floodwall_server.headers(),
                   content=b"{}", timeout=10)
    assert r.status_code == 200, r.text
    return floodwall_server.store_url(timeout="10", prefix=f"t{uuid.uuid4().hex[:12]}/")
