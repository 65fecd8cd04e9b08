"""gunicorn with 4 workers (real processes, real HTTP on loopback) serving a
FastAPI app and a Flask app on shm://: after N requests, /metrics reports
exactly the admitted and denied totals, whichever worker answers."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from floodwall import _native

RATE = 30
REQUESTS = 50
WORKERS = 4
DEADLINE = 60.0

FASTAPI_APP = """
from fastapi import FastAPI
from floodwall.integrations.asgi import Floodwall
from floodwall.observe.exporters import metrics_app

app = FastAPI()
Floodwall("{rate}/hour", store="{store}", key=lambda r: "everyone", metrics=True,
          exempt=["/metrics", "/metrics/*", "/pid"]).init_app(app)
app.add_route("/metrics", metrics_app())

@app.get("/")
def home():
    return {{"ok": True}}

@app.get("/pid")
def pid():
    import os
    return {{"pid": os.getpid()}}
"""

FLASK_APP = """
import os
from flask import Flask
from floodwall.integrations.flask import Floodwall
from floodwall.observe.exporters import add_flask_route

app = Flask(__name__)
Floodwall(app, default="{rate}/hour", store="{store}", key=lambda r: "everyone",
          metrics=True, exempt=["/metrics", "/pid"])
add_flask_route(app)

@app.get("/")
def home():
    return "ok"

@app.get("/pid")
def pid():
    return str(os.getpid())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def totals(body: bytes) -> tuple[float, float]:
    allowed = denied = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == "floodwall_decisions_total":
                if s.labels["outcome"] == "allowed":
                    allowed += s.value
                elif s.labels["outcome"] == "denied":
                    denied += s.value
    return allowed, denied


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fastapi", "flask"])
def test_four_workers_export_exact_totals(kind: str, tmp_path: Path) -> None:
    name = f"fwtest-gu-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    store = f"shm://{name}"
    source = (FASTAPI_APP if kind == "fastapi" else FLASK_APP).format(rate=RATE, store=store)
    (tmp_path / "app_under_test.py").write_text(textwrap.dedent(source))
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
           "--graceful-timeout", "2", "--timeout", "30", "app_under_test:app"]
    if kind == "fastapi":
        cmd[3:3] = ["-k", "uvicorn.workers.UvicornWorker"]
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + DEADLINE
        while True:  # until every worker answers
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "gunicorn did not start in time"
            try:
                pids = {get(port, "/pid")[1] for _ in range(40)}
                if len(pids) >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        codes = [get(port, "/")[0] for _ in range(REQUESTS)]
        assert codes.count(200) == RATE and codes.count(429) == REQUESTS - RATE
        # counters reach /metrics within the writers' interval; then they
        # must be exact on every scrape, whichever worker answers
        while True:
            status, body = get(port, "/metrics")
            assert status == 200
            if totals(body) == (RATE, REQUESTS - RATE):
                break
            assert totals(body)[0] <= RATE and totals(body)[1] <= REQUESTS - RATE, totals(body)
            assert time.monotonic() < deadline, f"metrics stuck at {totals(body)}"
            time.sleep(0.1)
        for _ in range(12):
            status, body = get(port, "/metrics")
            assert status == 200 and totals(body) == (RATE, REQUESTS - RATE)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()
        try:
            _native.unlink_shm(name, missing_ok=True)
        except OSError:
            pass
        shutil.rmtree(_native.shm_path(name) + ".metrics", ignore_errors=True)
