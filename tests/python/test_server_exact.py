# test_server_exact.py - the server under several client processes, and
# killed under its clients.
#
# Exactness: 4 client processes, 2 server workers, one key, every
# algorithm: the number admitted equals the policy, exactly (the clock is
# held still, so no unit refills during the run).
# Outage: the server is SIGKILLed while clients run; every check answers by
# the client's failure policy within its timeout (then at once, from the
# open breaker), and the clients recover when the server is back.
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import pytest
from floodwall_servers import FloodwallServer

import floodwall
from floodwall.algorithms import ALGORITHMS
from floodwall.errors import StoreError

CLIENT = r"""
import sys, floodwall
url, namespace, algorithm, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
limiter = floodwall.Limiter("50/hour", algorithm=algorithm, store=url, namespace=namespace,
                            clock=lambda: 1_800_000_000_000_000_000)
sys.stdin.readline()  # start together
print(sum(limiter.allow("hot") for _ in range(calls)))
"""

PROCESSES = 4
CALLS = 25  # 100 calls for a capacity of 50


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_four_processes_one_key_exact(floodwall_server: FloodwallServer, algorithm: str) -> None:
    url = floodwall_server.store_url(timeout="30")
    namespace = f"exact-{algorithm}-{uuid.uuid4().hex}"
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, url, namespace, algorithm, str(CALLS)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(PROCESSES)
    ]
    time.sleep(0.5)  # let them import floodwall
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    admitted = 0
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        admitted += int(out)
    assert admitted == 50


# -- the server killed under its clients


@pytest.fixture
def victim() -> FloodwallServer:
    server = FloodwallServer(workers=2, test_clock=False)
    try:
        yield server
    finally:
        server.close()


TIMEOUT = 0.5


def _limiter(server: FloodwallServer, fail: str) -> floodwall.Limiter:
    url = server.store_url(timeout=str(TIMEOUT), breaker_threshold="2",
                           breaker_cooldown="0.5")
    return floodwall.Limiter("1000/second", store=url, fail=fail,
                             namespace=f"outage-{uuid.uuid4().hex}")


def test_killed_server_follows_the_failure_policy_and_recovers(
    victim: FloodwallServer,
) -> None:
    open_l = _limiter(victim, "open")
    closed_l = _limiter(victim, "closed")
    raising = _limiter(victim, "raise")
    assert open_l.check("k").fallback is False

    victim.kill()
    for _ in range(6):
        start = time.monotonic()
        d = open_l.check("k")
        took = time.monotonic() - start
        assert d.allowed and d.fallback, d
        assert took < TIMEOUT + 0.5, f"a check took {took:.2f}s with timeout={TIMEOUT}"
    d = closed_l.check("k")
    assert not d.allowed and d.fallback and 0 < d.retry_after <= 1.0
    with pytest.raises(StoreError):
        raising.check("k")
    assert open_l.stats()["breaker_trips"] >= 1

    async def async_check() -> floodwall.Decision:
        return await open_l.acheck("k")

    start = time.monotonic()
    d = asyncio.run(async_check())
    assert d.fallback and time.monotonic() - start < TIMEOUT + 0.5

    victim.start()  # same port, same table
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        d = open_l.check("k")
        if not d.fallback:
            break
        time.sleep(0.1)
    assert not d.fallback, "the client did not recover after the server came back"
    assert closed_l.check("k").allowed
    assert raising.check("k").allowed
