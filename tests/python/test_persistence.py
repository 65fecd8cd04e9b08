# file:// keeps its state: write, close, reopen (in this process and in new
# ones); a user at 0 remaining is still limited after a restart; with
# sync=always (and interval) the state survives the writer being killed.
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import floodwall
from floodwall import ops
from floodwall.stores import shared

PYTHON_DIR = str(Path(floodwall.__file__).resolve().parents[1])


def run_python(code: str, *args: str) -> str:
    """Run `code` in a new interpreter; return its stdout."""
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def file_url(tmp_path: Path) -> Iterator[str]:
    url = f"file://{tmp_path}/state/limits.fw"
    yield url
    shared.forget(url)


def close_all(url: str) -> None:
    """Drop every mapping of the table in this process."""
    shared.forget(url)
    gc.collect()


@pytest.mark.parametrize(
    "algorithm",
    ["gcra", "token_bucket", "leaky_bucket", "fixed_window", "sliding_window", "sliding_log"],
)
def test_write_close_reopen(file_url: str, algorithm: str) -> None:
    lim = floodwall.Limiter("10/hour", algorithm=algorithm, store=file_url)
    lim.check("alice", 4)
    lim.check("bob", 10)
    before = (lim.peek("alice").remaining, lim.peek("bob").remaining)
    assert before == (6, 0)
    del lim
    close_all(file_url)
    # closed: this process no longer maps the file
    assert shared.file_path(file_url) not in Path("/proc/self/maps").read_text()

    lim = floodwall.Limiter("10/hour", algorithm=algorithm, store=file_url)
    assert (lim.peek("alice").remaining, lim.peek("bob").remaining) == before
    assert not lim.allow("bob")


def test_reopen_from_new_processes(file_url: str) -> None:
    code = """
        import sys, floodwall
        lim = floodwall.Limiter("5/hour", store=sys.argv[1])
        if sys.argv[2] == "write":
            lim.check("carol", 3)
        print(lim.peek("carol").remaining)
    """
    assert run_python(code, file_url, "write") == "2"
    assert run_python(code, file_url, "read") == "2"
    # and this process sees the same
    assert floodwall.Limiter("5/hour", store=file_url).peek("carol").remaining == 2


def test_restart_keeps_a_user_limited(file_url: str) -> None:
    code = """
        import sys, floodwall
        lim = floodwall.Limiter("3/hour", store=sys.argv[1], sync=sys.argv[2])
        d = lim.check("dave")
        print(int(d.allowed), d.remaining, round(d.retry_after))
    """
    for sync in ("none", "always"):
        url = file_url.replace("limits.fw", f"limits-{sync}.fw")
        outputs = [run_python(code, url, sync) for _ in range(4)]
        assert outputs[:3] == ["1 2 0", "1 1 0", "1 0 0"]
        allowed, remaining, retry = outputs[3].split()
        assert (allowed, remaining) == ("0", "0")
        assert 1100 <= int(retry) <= 1200  # 20 minutes until the next unit


WRITER = """
    import sys, floodwall
    # a fixed clock: nothing refills while we count
    lim = floodwall.Limiter("1000000/hour", store=sys.argv[1], sync=sys.argv[2],
                            max_keys=1000, clock=lambda: 1_700_000_000 * 10**9)
    n = 0
    while True:
        lim.check("erin")
        n += 1
        print(n, flush=True)
"""


@pytest.mark.parametrize("sync", ["always", "interval", "none"])
def test_state_survives_writer_killed(file_url: str, sync: str) -> None:
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), file_url, sync],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    reported = 0
    deadline = time.monotonic() + 30
    while reported < 200 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        reported = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # what it printed before dying is still in the pipe: its last full line
    # is the last check it saw returning
    for line in proc.stdout.read().splitlines():
        if line.strip().isdigit():
            reported = int(line)
    assert reported >= 200
    # every check the writer reported (and perhaps one more) is in the file
    lim = floodwall.Limiter("1000000/hour", store=file_url, clock=lambda: 1_700_000_000 * 10**9)
    used = 1_000_000 - lim.peek("erin").remaining
    assert reported <= used <= reported + 1
    assert ops.doctor(file_url)["ok"]


def test_sync_interval_reopen(file_url: str) -> None:
    lim = floodwall.Limiter("100/hour", store=file_url, sync="interval", sync_interval_ms=5)
    for _ in range(30):
        lim.allow("frank")
        time.sleep(0.001)
    del lim
    close_all(file_url)
    assert floodwall.Limiter("100/hour", store=file_url).peek("frank").remaining == 70


def test_keys_stay_apart_after_reopen(file_url: str) -> None:
    # the fingerprint seed lives in the header: a reopened table finds the
    # same slots, and other keys stay fresh
    lim = floodwall.Limiter("2/hour", store=file_url)
    for i in range(100):
        lim.check(f"user-{i}", 2)
    del lim
    close_all(file_url)
    lim = floodwall.Limiter("2/hour", store=file_url)
    assert all(not lim.allow(f"user-{i}") for i in range(100))
    assert all(lim.peek(f"other-{i}").remaining == 2 for i in range(100))
