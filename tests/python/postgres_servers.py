# postgres_servers.py - start and stop real PostgreSQL servers for the tests.
#
# Every server is a `postgres` child process whose cluster was made by
# `initdb` in a temporary directory, listening on 127.0.0.1 on a free port
# and on a unix socket in that directory, with trust authentication for
# loopback and the socket only (initdb's pg_hba.conf) and fsync=off (a
# killed server keeps every commit, the OS still has it; only a crash of
# the machine would lose them). The server refuses to run as root, so when
# the tests run as root the cluster belongs to `nobody` and the server runs
# as that user. A missing or broken PostgreSQL is a loud error, never a
# skip: run `.ci/install-postgres.sh` first.
# Invariant: every process started here is stopped by the object that
# started it (its process group, by pid), and nothing here touches a
# system PostgreSQL.
"""Real PostgreSQL servers for the tests (PYTEST_DONT_REWRITE: also a plugin)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "free_port", "postgres_bin_dir"]

START_TIMEOUT = 30.0
#: The role the tests connect as (made by initdb -U).
SUPERUSER = "floodwall"


def postgres_bin_dir() -> Path:
    """The directory holding initdb and postgres; RuntimeError (never a
    skip) when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if versions:
        return Path(versions[-1]).parent
    raise RuntimeError(
        "initdb not found: the PostgreSQL tests need a real server; "
        "run `bash .ci/install-postgres.sh` (apt-get install postgresql)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) of the unprivileged user the server runs as when we are
    root; None when we are not root (the server runs as us)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError as exc:
        raise RuntimeError("running as root and there is no user 'nobody' to run postgres") from exc
    return entry.pw_uid, entry.pw_gid


class PostgresServer:
    """One PostgreSQL cluster and its server process; ``kill()`` and
    ``start()`` again keep the port, the socket directory and the data."""

    def __init__(self, port: int | None = None, *, name: str = "pg") -> None:
        self.bin = postgres_bin_dir()
        self.port = port if port is not None else free_port()
        self.host = "127.0.0.1"
        self.dir = Path(tempfile.mkdtemp(prefix=f"floodwall-{name}-"))
        self.data = self.dir / "data"
        self.sockdir = self.dir / "sock"
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = _run_as()
        self._initdb()

    # -- addresses ----------------------------------------------------------

    @property
    def url(self) -> str:
        """A libpq URI over TCP to the test database."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/postgres"

    @property
    def unix_url(self) -> str:
        """A libpq URI over the unix socket (``host=`` names the directory)."""
        return f"postgresql://{SUPERUSER}@/postgres?host={self.sockdir}&port={self.port}"

    @property
    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname=postgres"

    # -- life cycle ---------------------------------------------------------

    def _popen_user(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user[0], "group": self._user[1], "extra_groups": []}

    def _initdb(self) -> None:
        self.sockdir.mkdir()
        if self._user is not None:
            for path in (self.dir, self.sockdir):
                os.chown(path, *self._user)
        cmd = [
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        res = subprocess.run(
            cmd,
            capture_output=True,
            timeout=120,
            cwd=self.dir,
            **self._popen_user(),  # type: ignore[call-overload]
        )
        if res.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({res.returncode}): {res.stderr.decode(errors='replace')[-2000:]}"
            )

    def start(self) -> PostgresServer:
        cmd = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.sockdir),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=32MB",
            "-c",
            "logging_collector=off",
        ]
        logf = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **self._popen_user(),  # type: ignore[arg-type]
            )
        finally:
            logf.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.proc.returncode} on port {self.port}:\n"
                    + self._log_tail()
                )
            try:
                with psycopg.connect(self.conninfo, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error as exc:
                last = exc
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"postgres on port {self.port} not ready after {timeout}s ({last}):\n"
            + self._log_tail()
        )

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL the server and every backend: a crash."""
        if self.proc is None:
            return
        self._signal_all(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        # the backends of the group are gone; remove the stale pid file
        # so that start() does not wait on it
        try:
            (self.data / "postmaster.pid").unlink()
        except FileNotFoundError:
            pass
        time.sleep(0.2)

    def pids(self) -> list[int]:
        """The postmaster and its children (each backend calls setsid(), so
        the process group alone does not reach them)."""
        if self.proc is None:
            return []
        main = self.proc.pid
        found = [main]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 1 and int(fields[1]) == main:
                found.append(int(entry))
        return found

    def _signal_all(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def pause(self) -> None:
        """SIGSTOP the server and its backends: connections stay open and
        nothing answers (a hung server)."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def stop(self) -> None:
        """A fast shutdown (SIGINT), SIGKILL if it takes too long."""
        if self.proc is None:
            return
        try:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        except ProcessLookupError:
            pass
        self.proc = None

    def cleanup(self) -> None:
        self.resume()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _die_with_parent() -> None:
    """In the child (after the switch of user): get SIGINT, a fast
    shutdown, when the test process dies, so a killed run leaves no server."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGINT))  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (TCP and unix socket)."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session server's URL; floodwall's tables truncated before the test."""
    import psycopg

    with psycopg.connect(postgres_server.conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
            "FROM information_schema.tables WHERE table_name = 'floodwall_state'"
        ).fetchall()
        for (name,) in rows:
            conn.execute(f"TRUNCATE {name}")
    return postgres_server.url


@pytest.fixture
def fresh_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which the test may kill."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
