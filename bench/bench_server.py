"""What `floodwall serve` and the remote store cost, as ratios measured in one run.

One private server (2 workers sharing one shm:// table, a token, the HTTP
parser uvicorn picks: httptools when installed, else h11; the bench says
which) on a free loopback port, started by the tests' starter and stopped at
the end. Rows:

- HTTP: requests per second of ``POST /v1/check`` (an inline rate that never
  denies, 1000 keys in turn, the body a client sends) against the same
  server's ``GET /v1/health`` (a constant JSON body: the same app, token,
  parser and sockets, no store call). Both endpoints get the same load
  generator (wrk when installed: a C client whose own cost stays small;
  else a small asyncio one, which shares the 2 cores and so flatters the
  ratio), the same number of keep-alive connections and the same duration,
  in interleaved rounds whose order alternates. Printed: the best and the
  median round of each, and the server's CPU time per request (the workers'
  user+system seconds over the requests answered), which a shared, noisy
  machine disturbs far less than requests per second;
- with ``--instructions``: the same two requests counted in instructions
  instead (a 1-worker server under callgrind, one keep-alive connection,
  N1 then N2 requests of one endpoint; (Ir(N2) - Ir(N1)) / (N2 - N1) is
  the server's user-space instructions per request, uvicorn and the parser
  included, the kernel not). Repeatable to a few percent (on a loaded machine) where
  requests per second are not; needs valgrind;
- the remote store: ``allow()`` latency against a plain keep-alive GET of
  /v1/health through the same httpx client;
- RESP: redis-benchmark's CL.THROTTLE throughput against its PING on the
  same port (when redis-benchmark is installed).

Prints ratios; never fails on timing.

    python bench/bench_server.py [--quick] [--rounds N] [--seconds S] [--http-only]
    python bench/bench_server.py --instructions
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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


def _check_body(i: int) -> bytes:
    return json.dumps({"rate": RATE, "key": f"user{i}"}).encode()


# -- the load generators: (port, endpoint, connections, seconds) -> (requests, seconds)

_WRK_SCRIPT = """\
local token = os.getenv("FW_BENCH_TOKEN")
local reqs = {}
local n = 0
init = function(args)
  local endpoint = args[1]
  local headers = {["Authorization"] = "Bearer " .. token}
  if endpoint == "check" then
    headers["Content-Type"] = "application/json"
    for i = 1, 1000 do
      local body = '{"rate": "RATE", "key": "user' .. (i - 1) .. '"}'
      reqs[i] = wrk.format("POST", "/v1/check", headers, body)
    end
  else
    reqs[1] = wrk.format("GET", "/v1/health", headers)
  end
end
request = function()
  n = n + 1
  return reqs[(n % #reqs) + 1]
end
""".replace("RATE", RATE)


def _wrk(port: int, token: str, endpoint: str, connections: int,
         seconds: float) -> tuple[int, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_SCRIPT)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", f.name,
             f"http://127.0.0.1:{port}/", "--", endpoint],
            capture_output=True, text=True, timeout=seconds + 60,
            env={**os.environ, "FW_BENCH_TOKEN": token},
        ).stdout
    finally:
        os.unlink(f.name)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk said: {out[-500:]}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    return int(m.group(1)), float(m.group(2)) * scale


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


def _asyncio_load(port: int, token: str, endpoint: str, connections: int,
                  seconds: float) -> tuple[int, float]:
    if endpoint == "check":
        requests = [_request("POST", "/v1/check", token, _check_body(i)) for i in range(1000)]
    else:
        requests = [_request("GET", "/v1/health", token)]

    async def run() -> tuple[int, float]:
        counter = [0]
        start = time.monotonic()
        stop = start + seconds
        await asyncio.gather(*(_connection(port, requests, stop, counter)
                               for _ in range(connections)))
        return counter[0], time.monotonic() - start

    return asyncio.run(run())


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _workers(pid: int) -> list[int]:
    """The server's worker processes (uvicorn's spawned children), or the
    server's own process when it runs one worker in itself."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    workers = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(int(child))
    return workers or [pid]


def _parser() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def _all_decided(server: Any) -> None:
    """Every check the HTTP rows send is answered with a decision the
    store made (not an error, not a fallback): else they would time
    something else."""
    import httpx

    headers = {"authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers=headers) as client:
        for i in range(1000):
            r = client.post("/v1/check", content=_check_body(i),
                            headers={"content-type": "application/json"})
            decision = r.json().get("decision") if r.status_code == 200 else None
            if not decision or decision.get("fallback"):
                raise RuntimeError(f"/v1/check for user{i} answered {r.status_code}: {r.text}")


def http_rows(server: Any, quick: bool, rounds: int | None = None,
              seconds: float | None = None) -> list[tuple[str, float, str, float]]:
    token = server.token
    generator = "wrk" if shutil.which("wrk") else "asyncio"
    load = _wrk if generator == "wrk" else _asyncio_load
    n_rounds = rounds or (2 if quick else 6)
    secs = seconds or (1.0 if quick else 3.0)
    conns = 16 if quick else 32
    pids = _workers(server.proc.pid)
    runs: dict[str, list[tuple[float, float]]] = {"check": [], "health": []}
    load(server.port, token, "check", conns, 1.0)  # warm: every inline limit bound
    for r in range(n_rounds):
        for name in (("check", "health") if r % 2 == 0 else ("health", "check")):
            cpu = _cpu_seconds(pids)
            done, took = load(server.port, token, name, conns, secs)
            cpu = _cpu_seconds(pids) - cpu
            runs[name].append((done / took, cpu / max(done, 1) * 1e6))
    print(f"HTTP: {generator} load generator, {conns} keep-alive connections, {n_rounds} "
          f"interleaved rounds of {secs:g}s per endpoint; server parser {_parser()}, "
          f"{len(pids)} workers")
    best = {k: max(rps for rps, _ in v) for k, v in runs.items()}
    median = {k: statistics.median(rps for rps, _ in v) for k, v in runs.items()}
    cpu_us = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    return [
        ("POST /v1/check, best round (req/s)", best["check"],
         "GET /v1/health (constant JSON), best", best["health"]),
        ("POST /v1/check, median round (req/s)", median["check"],
         "GET /v1/health, median", median["health"]),
        # inverted, so that like the rows above higher is better for /v1/check
        ("server CPU per /v1/health / per /v1/check", cpu_us["health"],
         f"us per /v1/check (health: {cpu_us['health']:.1f} us)", cpu_us["check"]),
    ]


def _instructions(endpoint: str, n: int) -> int:
    """Instructions a 1-worker server under callgrind executes in all, from
    its start to its stop, having answered ``n`` requests of ``endpoint``."""
    import secrets
    import signal
    import socket

    from floodwall_servers import CONFIG, free_port

    with tempfile.TemporaryDirectory(prefix="fw-bench-ir-") as tmp:
        token = secrets.token_urlsafe(24)
        fd = os.open(f"{tmp}/token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, token.encode())
        os.close(fd)
        Path(f"{tmp}/floodwall.toml").write_text(CONFIG)
        port = free_port()
        store = f"shm://fw-bench-ir-{os.getpid()}-{port}"
        log = Path(f"{tmp}/valgrind.log")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             f"--log-file={log}", sys.executable, "-m", "floodwall", "serve",
             "--port", str(port), "--workers", "1", "--store", store,
             "--config", f"{tmp}/floodwall.toml", "--token-file", f"{tmp}/token"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    sock = socket.create_connection(("127.0.0.1", port))
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        said = log.read_text()[-500:] if log.exists() else ""
                        raise RuntimeError(
                            f"the server under valgrind did not start: {said}"
                        ) from None
                    time.sleep(0.5)
            with sock:
                sock.settimeout(120)
                buf = b""
                for i in range(n):
                    if endpoint == "check":
                        sock.sendall(_request("POST", "/v1/check", token,
                                              _check_body(i % 1000)))
                    else:
                        sock.sendall(_request("GET", "/v1/health", token))
                    while True:
                        end = buf.find(b"\r\n\r\n")
                        if end >= 0:
                            head = buf[:end + 4]
                            m = re.search(rb"(?i)content-length: *(\d+)", head)
                            if m is None or not head.startswith(b"HTTP/1.1 200"):
                                raise RuntimeError(f"unexpected answer: {head[:80]!r}")
                            size = end + 4 + int(m.group(1))
                            if len(buf) >= size:
                                buf = buf[size:]
                                break
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise RuntimeError("the server closed the connection")
                        buf += chunk
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)
            try:
                os.unlink("/dev/shm/" + store[len("shm://"):])
            except OSError:
                pass
        found = re.findall(r"Collected : (\d+)", log.read_text())
        if not found:
            raise RuntimeError(f"no callgrind total in {log.read_text()[-500:]}")
        return int(found[-1])


def instruction_rows(quick: bool) -> list[tuple[str, float, str, float]]:
    """Instructions per request of /v1/check and /v1/health (see the module doc)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    n1, n2 = (200, 700) if quick else (500, 2500)
    per = {}
    for endpoint in ("check", "health"):
        per[endpoint] = (_instructions(endpoint, n2) - _instructions(endpoint, n1)) / (n2 - n1)
    print(f"instructions: a 1-worker server under callgrind, parser {_parser()}, "
          f"({n2} - {n1}) requests on one keep-alive connection")
    # inverted, so that like the other rows higher is better for /v1/check
    return [("instructions per /v1/health / per /v1/check", per["health"],
             f"Ir per /v1/check (health: {per['health']:.0f} Ir)", per["check"])]


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


def rows(quick: bool, rounds: int | None = None, seconds: float | None = None,
         http_only: bool = False, detail: bool = False) -> list[tuple[str, float, str, float]]:
    """Every row, on one private server (``detail``: also the HTTP median
    and CPU rows; bench/run takes the best-round row only)."""
    from floodwall_servers import FloodwallServer

    # room for every key the rows use (the tests' server holds 256): a
    # full table would answer errors, and the rows would time those
    store = f"shm://fwbench-{os.getpid()}-{uuid.uuid4().hex[:10]}?max_keys=65536"
    server = FloodwallServer(workers=2, resp=True, test_clock=False, store=store)
    try:
        _all_decided(server)
        out = http_rows(server, quick, rounds, seconds)
        if not detail:
            out = out[:1]
        if not http_only:
            for section in (remote_rows, resp_rows):
                out += section(server, quick)
        return out
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="floodwall serve and the remote store")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved HTTP rounds per endpoint (6; 2 with --quick)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per HTTP round (3; 1 with --quick)")
    parser.add_argument("--http-only", action="store_true", help="only the HTTP rows")
    parser.add_argument("--instructions", action="store_true",
                        help="instructions per request under callgrind instead (repeatable)")
    args = parser.parse_args()
    if args.instructions:
        for name, value, base_name, base in instruction_rows(args.quick):
            print(f"{name:46} {value:10.0f} {base:10.0f} {value / base:6.2f}  {base_name}")
        return 0
    table = rows(args.quick, args.rounds, args.seconds, args.http_only, detail=True)
    print(f"{'measure':46} {'value':>10} {'baseline':>10} {'ratio':>6}  baseline")
    for name, value, base_name, base in table:
        print(f"{name:46} {value:10.1f} {base:10.1f} {value / base:6.2f}  {base_name}")
    print("\n(targets: /v1/check >= 0.80 of /v1/health; remote allow() <= 1.30x the GET)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
