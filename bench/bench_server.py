# bench_server.py - what `floodwall serve` and the remote store cost, as ratios in one run.
#
# A private server (2 workers, one shm:// table, a token) on a free loopback
# port, started by the tests' starter and stopped at the end. Rows:
# - HTTP: requests per second of POST /v1/check under a load generator
#   (a small asyncio one: N keep-alive connections, one request in flight
#   each, requests pre-encoded, for a fixed time) against the same server's
#   GET /v1/health (a constant JSON body, same app, token and sockets),
#   interleaved round by round;
# - the remote store: allow() latency against a plain keep-alive GET of
#   /v1/health through the same httpx client;
# - RESP: redis-benchmark's CL.THROTTLE throughput against its PING on the
#   same port (when redis-benchmark is installed).
# Prints ratios; never fails on timing.
#
#   python bench/bench_server.py [--quick]
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import best_ns_per_op, loop_calling  # noqa: E402

import floodwall  # noqa: E402

RATE = "1000000000/day"  # never denies in a run


def _request(method: str, path: str, token: str | None, body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: bench"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _connection(port: int, requests: list[bytes], stop: float, counter: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.monotonic() < stop:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length: *(\d+)", head)
            if m is None or not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {head[:80]!r}")
            await reader.readexactly(int(m.group(1)))
            counter[0] += 1
    finally:
        writer.close()


def load(port: int, requests: list[bytes], connections: int, seconds: float) -> float:
    """Requests per second over ``connections`` keep-alive connections."""

    async def run() -> float:
        counter = [0]
        start = time.monotonic()
        stop = start + seconds
        await asyncio.gather(*(_connection(port, requests, stop, counter)
                               for _ in range(connections)))
        return counter[0] / (time.monotonic() - start)

    return asyncio.run(run())


def http_rows(server: Any, quick: bool) -> list[tuple[str, float, str, float]]:
    token = server.token
    checks = [
        _request("POST", "/v1/check", token,
                 json.dumps({"rate": RATE, "key": f"user{i}"}).encode())
        for i in range(1000)
    ]
    health = [_request("GET", "/v1/health", token)]
    rounds, seconds, conns = (2, 1.0, 16) if quick else (4, 3.0, 32)
    best = {"check": 0.0, "health": 0.0}
    load(server.port, checks, conns, 0.5)  # warm: every inline limit bound
    for r in range(rounds):
        order = ("check", "health") if r % 2 == 0 else ("health", "check")
        for name in order:
            rps = load(server.port, checks if name == "check" else health, conns, seconds)
            best[name] = max(best[name], rps)
    return [(f"POST /v1/check, {conns} connections (req/s)", best["check"],
             "GET /v1/health (constant JSON)", best["health"])]


def remote_rows(server: Any, quick: bool) -> list[tuple[str, float, str, float]]:
    lim = floodwall.Limiter(RATE, store=server.store_url(timeout="10"), namespace="bench")
    client = lim.store.conn.sync_client()  # type: ignore[attr-defined]
    keys = [f"user{i}" for i in range(200 if quick else 1000)]
    health = ["/v1/health"] * len(keys)
    loops = {"allow": loop_calling(lim.allow, keys), "get": loop_calling(client.get, health)}
    for run in loops.values():
        run()
    best = best_ns_per_op(loops, len(keys), 3 if quick else 7)
    return [("remote allow() latency (us)", best["allow"] / 1000,
             "keep-alive GET, same httpx client (us)", best["get"] / 1000)]


def _benchmark_rps(port: int, token: str | None, command: list[str], n: int) -> float:
    args = ["redis-benchmark", "-p", str(port), "-n", str(n), "-c", "32", "-r", "1000", "-q"]
    if token:
        args += ["-a", token]
    out = subprocess.run(args + command, capture_output=True, text=True, timeout=300)
    m = re.search(r"([\d.]+) requests per second", out.stdout + out.stderr)
    if m is None:
        raise RuntimeError(f"redis-benchmark said: {out.stdout[-300:]} {out.stderr[-300:]}")
    return float(m.group(1))


def resp_rows(server: Any, quick: bool) -> list[tuple[str, float, str, float]]:
    if shutil.which("redis-benchmark") is None:
        print("RESP rows: skipped (redis-benchmark is not installed: apt-get install redis-tools)")
        return []
    n = 20_000 if quick else 100_000
    best = {"throttle": 0.0, "ping": 0.0}
    for r in range(2 if quick else 3):
        for name in (("throttle", "ping") if r % 2 == 0 else ("ping", "throttle")):
            command = (["CL.THROTTLE", "key:__rand_int__", "1000000", "1000000", "60"]
                       if name == "throttle" else ["PING"])
            rps = _benchmark_rps(server.resp_port, server.token, command, n)
            best[name] = max(best[name], rps)
    return [("RESP CL.THROTTLE (req/s)", best["throttle"], "PING, same port (req/s)",
             best["ping"])]


def rows(quick: bool) -> list[tuple[str, float, str, float]]:
    """Every row, on one private server."""
    from floodwall_servers import FloodwallServer

    server = FloodwallServer(workers=2, resp=True, test_clock=False)
    try:
        out: list[tuple[str, float, str, float]] = []
        for section in (http_rows, remote_rows, resp_rows):
            out += section(server, quick)
        return out
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="floodwall serve and the remote store")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"{'measure':46} {'value':>10} {'baseline':>10} {'ratio':>6}  baseline")
    for name, value, base_name, base in rows(args.quick):
        print(f"{name:46} {value:10.1f} {base:10.1f} {value / base:6.2f}  {base_name}")
    print("\n(targets: /v1/check >= 0.80 of /v1/health; remote allow() <= 1.30x the GET)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
