"""`floodwall monitor` driven in a pseudo-terminal (pexpect): it shows the
decisions of a running workload on a shm:// table, redraws, and quits on
Ctrl-C with status 0; without a terminal it prints plain lines. Also
`floodwall metrics --once` and the standalone server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

import floodwall
from floodwall import _native
from floodwall.cli import main
from floodwall.observe.metrics import Metrics


@pytest.fixture(autouse=True)
def _keep_active_configuration() -> Any:
    """`floodwall metrics` / `history` run in-process make their
    configuration the active one, as a CLI process does: put it back."""
    from floodwall.config import registry

    saved_active = dict(registry._ACTIVE)
    saved_named = dict(registry._FROM_CONFIG)
    yield
    registry._ACTIVE.clear()
    registry._ACTIVE.update(saved_active)
    registry._FROM_CONFIG.clear()
    registry._FROM_CONFIG.update(saved_named)


@pytest.fixture
def workload(tmp_path: Path) -> Iterator[str]:
    """A thread checking a limit on a fresh shm:// table until the test ends."""
    name = f"fwtest-mon-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    url = f"shm://{name}"
    metrics = Metrics(interval=0.05)
    lim = floodwall.Limiter("20/second", store=url, name="checkout", metrics=metrics)
    stop = threading.Event()
    ready = threading.Event()

    def run() -> None:
        while not stop.is_set():
            for i in range(30):
                lim.check(f"user{i % 2}")
            if not ready.is_set():
                metrics.flush()  # the first counters are on disk before the test reads
                ready.set()
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        yield url
    finally:
        stop.set()
        t.join(5)
        metrics.close()
        _native.unlink_shm(name, missing_ok=True)
        shutil.rmtree(_native.shm_path(name) + ".metrics", ignore_errors=True)


#: a row of the table: limit, store, allowed/s, denied/s, allowed total
ROW = rb"checkout\D+shm\D+[\d.]+\D+[\d.]+\D+(\d+)"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["COLUMNS"] = "160"
    env["LINES"] = "40"
    return env


def test_monitor_in_a_terminal_shows_decisions_and_quits_on_ctrl_c(
    workload: str, tmp_path: Path
) -> None:
    child = pexpect.spawn(
        sys.executable, ["-m", "floodwall", "monitor", "--store", workload, "--interval", "0.2"],
        cwd=str(tmp_path), env=_env(), timeout=20, dimensions=(40, 160),
    )
    try:
        child.expect("floodwall monitor")
        child.expect("checkout")
        # the counters grow while it runs: two different allowed totals drawn
        child.expect(ROW)
        first = int(child.match.group(1))
        deadline = time.monotonic() + 15
        later = first
        while later == first and time.monotonic() < deadline:
            child.expect(ROW)
            later = int(child.match.group(1))
        assert later > first
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)


def test_monitor_without_a_terminal_prints_plain_lines(workload: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "floodwall", "monitor", "--store", workload, "--interval", "0.2",
         "--count", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if "checkout [shm]" in ln]
    assert len(lines) == 3, out
    assert "\x1b[" not in out  # no escape sequences
    assert "allowed/s=" in lines[-1] and "denied=" in lines[-1]


def test_monitor_reads_a_metrics_url(workload: str, tmp_path: Path) -> None:
    import argparse

    from floodwall.cli.metrics import build
    from floodwall.observe.exporters import serve

    metrics, _lim = build(argparse.Namespace(store=workload, config=None, limit=None,
                                             prefix="floodwall"))
    server = serve(metrics.render, 0)
    try:
        port = server.server_address[1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'floodwall_decisions_total{limit="checkout"' in body
        out = subprocess.run(
            [sys.executable, "-m", "floodwall", "monitor", "--url",
             f"http://127.0.0.1:{port}/metrics", "--interval", "0.2", "--count", "2"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        assert "checkout [shm]" in out
    finally:
        server.shutdown()


def test_metrics_once_prints_the_host_totals(workload: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["metrics", "--store", workload, "--once"]) == 0
    finally:
        os.chdir(cwd)
    text = capsys.readouterr().out
    assert 'floodwall_decisions_total{limit="checkout",outcome="allowed",store="shm"}' in text
    assert "floodwall_table_capacity" in text


def test_monitor_needs_a_source() -> None:
    assert main(["monitor"]) == 2


def test_monitor_shows_top_denied_keys_from_events(workload: str, tmp_path: Path) -> None:
    from floodwall.hooks import key_id
    from floodwall.observe.events import Events

    sink = tmp_path / "events.jsonl"
    events = Events(str(sink))
    lim = floodwall.Limiter("1/minute", name="login", events=events)
    for _ in range(4):
        lim.check("mallory")
    lim.check("alice")
    events.close()
    out = subprocess.run(
        [sys.executable, "-m", "floodwall", "monitor", "--store", workload, "--events",
         str(sink), "--interval", "0.2", "--count", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    top = [ln for ln in out.splitlines() if "top denied" in ln]
    assert top == [top[0]] and f"{key_id('mallory')[:16]}: 3" in top[0], out
    assert "mallory" not in out
