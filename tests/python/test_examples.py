"""The examples run as written: each imports, exposes its app object, serves
requests through its framework (a burst admitted, then 429), and the
runnable ones take their port from the environment under a real server.

Django's example configures settings at import, so it runs in a child
process (this test process has its own Django settings).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def statuses(get: object, path: str, n: int) -> list[int]:
    return [get(path).status_code for _ in range(n)]  # type: ignore[operator]


def test_fastapi_example_limits_through_the_app() -> None:
    from starlette.testclient import TestClient

    module = load("fastapi_app")
    with TestClient(module.app) as client:
        assert statuses(client.get, "/items", 6) == [200] * 5 + [429]
        assert client.get("/health").status_code == 200  # exempt
        denied = client.get("/items")
        assert denied.status_code == 429 and int(denied.headers["Retry-After"]) >= 1


def test_flask_example_limits_through_the_app() -> None:
    module = load("flask_app")
    client = module.app.test_client()
    assert statuses(client.get, "/items", 6) == [200] * 5 + [429]
    assert statuses(client.get, "/free", 8) == [200] * 8


def serve_and_get(cmd: list[str], port: int, path: str, n: int) -> list[int]:
    """Start a real server with PORT in its environment; GET path n times."""
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    out = proc.communicate()[0]
                    raise AssertionError(f"{cmd} did not listen on port {port}:\n{out}") from None
                time.sleep(0.1)
        codes = []
        for _ in range(n):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                    codes.append(r.status)
            except urllib.error.HTTPError as exc:
                codes.append(exc.code)
        return codes
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_flask_example_serves_on_the_port_from_the_environment() -> None:
    port = free_port()
    codes = serve_and_get([sys.executable, "examples/flask_app.py"], port, "/items", 6)
    assert codes == [200] * 5 + [429]


def test_django_example_serves_on_the_port_from_the_environment() -> None:
    port = free_port()
    cmd = [sys.executable, "examples/django_app.py", "runserver", "--noreload"]
    assert serve_and_get(cmd, port, "/items", 6) == [200] * 5 + [429]


def test_django_example_exposes_wsgi_and_asgi_applications() -> None:
    script = textwrap.dedent(
        """
        import asyncio, io, sys
        sys.path.insert(0, "examples")
        import django_app
        import httpx
        from wsgiref.util import setup_testing_defaults

        codes = []
        for _ in range(6):
            environ = {"PATH_INFO": "/items", "REMOTE_ADDR": "192.0.2.1"}
            setup_testing_defaults(environ)
            seen = []
            body = b"".join(django_app.application(environ, lambda s, h: seen.append(s)))
            codes.append(int(seen[0].split()[0]))
        print("wsgi", codes)

        async def asgi():
            transport = httpx.ASGITransport(
                app=django_app.asgi_application, client=("192.0.2.2", 1234)
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
                return [(await c.get("/items")).status_code for _ in range(6)]
        print("asgi", asyncio.run(asgi()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    expected = str([200] * 5 + [429])
    assert f"wsgi {expected}" in out.stdout, out.stdout
    assert f"asgi {expected}" in out.stdout, out.stdout
