# bench_redis_parts.py - what each part of the Redis check costs the server.
#
# On a private redis-server (never a shared one), one call at a time through
# a synchronous redis-py client: `INCR`, then Redis functions doing a growing
# share of what the check does (return a constant; read `TIME`; `TIME` and
# `GET` the key; `TIME`, `GET` and `SET ... PX`), then the floodwall check
# itself (its GCRA common case: one key, cost 1, Redis's clock, admitted).
# For each: `INFO commandstats` usec_per_call (the command's own time, the
# Lua inside included) and the server's CPU per call from
# /proc/PID/schedstat (which adds reading and writing the socket), best of
# --rounds interleaved rounds. `--also DIR` adds the check of another
# floodwall install (a `pip install --target DIR`), for before/after
# figures in one run. Prints figures; never fails on timing.
#
#   python bench/bench_redis_parts.py [--calls 20000] [--rounds 5] [--also DIR]
#                                     [--pin CPU]
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))  # the tests' server starter

#: what the check's reply looks like, returned by every partial function
_REPLY = "'1 0 999999 0 1000 0'"
#: a state text of the check's shape (19 digits)
_STATE = "'1796083212123456789'"
PARTS = {
    "FCALL returning a constant": f"return {_REPLY}",
    "... reading TIME": f"local t = redis.call('TIME'); return {_REPLY}",
    "... TIME + GET": (
        f"local t = redis.call('TIME'); local v = redis.call('GET', keys[1]); return {_REPLY}"
    ),
    "... TIME + GET + SET PX": (
        "local t = redis.call('TIME'); local v = redis.call('GET', keys[1]); "
        f"redis.call('SET', keys[1], {_STATE}, 'PX', '2'); return {_REPLY}"
    ),
}
RATE, PERIOD_NS = 1_000_000, 10**9  # never denies one call at a time


def check_of(site: str | None) -> tuple[str, str, str]:
    """(function name, library code, quota argument) of the floodwall
    installed in ``site`` (None: this process's)."""
    code = (
        "import json; from floodwall.stores.redis.scripts import check_library, normalise; "
        "n, c = check_library(); "
        f"print(json.dumps([n, c, normalise('gcra', {RATE}, {PERIOD_NS}).part[0].decode()]))"
    )
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = site
    out = subprocess.check_output([sys.executable, "-c", code], env=env, cwd="/")
    name, library, quota = json.loads(out)
    return name, library, quota


def server_cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--also", metavar="DIR", help="another floodwall install to compare")
    parser.add_argument("--pin", type=int, metavar="CPU", help="run here and the server on CPU")
    args = parser.parse_args()
    if args.pin is not None:  # inherited by the server started below
        os.sched_setaffinity(0, {args.pin})

    import redis
    from redis_servers import RedisServer

    server = RedisServer(name="bench-parts").start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        client = redis.Redis.from_url(server.url)
        library = "#!lua name=floodwall_bench_parts\n" + "\n".join(
            f"redis.register_function('bench_part{i}', function(keys, args) {body} end)"
            for i, body in enumerate(PARTS.values())
        )
        client.function_load(library, replace=True)
        argv = (b"", b"1", b"1")
        calls: dict[str, tuple[str, Callable[[bytes], Any]]] = {
            "INCR": ("incr", lambda k: client.execute_command("INCR", k)),
        }
        for i, label in enumerate(PARTS):
            fname = f"bench_part{i}"
            calls[label] = (
                "fcall",
                lambda k, f=fname: client.execute_command("FCALL", f, 1, k, *argv, b"q"),
            )
        checks = [("the floodwall check", None)]
        if args.also:
            checks.insert(0, (f"the floodwall check of {args.also}", args.also))
        for label, site in checks:
            name, code, quota = check_of(site)
            client.function_load(code, replace=True)
            calls[label] = (
                "fcall",
                lambda k, n=name, q=quota: client.execute_command("FCALL", n, 1, k, *argv, q),
            )
        for label, (_, call) in calls.items():  # untimed: first calls, quota caches
            for _ in range(1000):
                call(b"bench:parts:" + label.encode())
        best = {label: (float("inf"), float("inf")) for label in calls}
        for _ in range(args.rounds):
            for label, (command, call) in calls.items():
                key = b"bench:parts:" + label.encode()
                client.config_resetstat()
                cpu0 = server_cpu_ns(pid)
                for _ in range(args.calls):
                    call(key)
                cpu = (server_cpu_ns(pid) - cpu0) / args.calls / 1000
                usec = float(client.info("commandstats")[f"cmdstat_{command}"]["usec_per_call"])
                best[label] = (min(best[label][0], usec), min(best[label][1], cpu))
        client.close()
    finally:
        server.cleanup()
    print(
        f"server side, one call at a time, best of {args.rounds} interleaved rounds x "
        f"{args.calls} calls"
    )
    print(f"{'call':44} {'commandstats us':>16} {'server CPU us':>14}")
    for label, (usec, cpu) in best.items():
        print(f"{label:44} {usec:16.2f} {cpu:14.2f}")


if __name__ == "__main__":
    main()
