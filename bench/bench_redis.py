# bench_redis.py - what a Redis-backed check costs, as ratios measured in one run.
#
# The baseline is a redis-py INCR round trip on the same server through the
# same client (same connection settings), on keys of the same count and shape,
# interleaved batch by batch with the contender (order alternating) so that a
# noisy machine slows both alike; each side keeps its best batch. Also: async and
# pipelined throughput, and the `limits` (moving and fixed window) and
# `throttled-py` (GCRA) libraries on the same server when installed.
# Prints ratios; never fails on timing.
#
#   python bench/bench_redis.py [--url redis://127.0.0.1:6379/0] [--quick]
#
# Without --url a private redis-server is started on a free loopback port.
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# redis_servers (the tests' server starter); floodwall itself is the installed one
sys.path.insert(0, str(ROOT / "tests" / "python"))

import floodwall  # noqa: E402

RATE = "50000/minute"  # never denies across 1000 rotating keys in a run
KEYS = [f"user{i}" for i in range(1000)]
INCR_KEYS = [f"bench:incr:{k}" for k in KEYS]  # the baseline's keys: same count and shape


def paired(
    fn: Callable[[int], Any], base: Callable[[int], Any], batches: int, size: int
) -> tuple[float, float, float]:
    """(best ns per fn call, best ns per base call, their ratio): batches
    interleaved, the order alternating, the best batch of each side kept."""
    fn(0)
    base(0)
    best = {fn: float("inf"), base: float("inf")}
    for b in range(batches):
        order = (fn, base) if b % 2 == 0 else (base, fn)
        for g in order:
            start = time.perf_counter_ns()
            for i in range(size):
                g(i)
            best[g] = min(best[g], (time.perf_counter_ns() - start) / size)
    return best[fn], best[base], best[fn] / best[base]


def line(name: str, ns: float, base_ns: float, ratio: float, note: str = "") -> None:
    us, base_us = ns / 1000, base_ns / 1000
    print(f"  {name:44s} {us:9.1f} us   INCR {base_us:7.1f} us   ratio {ratio:5.2f}{note}")


def sync_section(url: str, batches: int, size: int) -> dict[str, float]:
    print("sync, one call at a time (ns per call; ratio to an INCR round trip):")
    out: dict[str, float] = {}
    for algorithm in (
        "gcra",
        "token_bucket",
        "leaky_bucket_shaping",
        "fixed_window",
        "sliding_window",
        "sliding_log",
    ):
        lim = floodwall.Limiter(RATE, algorithm=algorithm, store=url, namespace="bench")
        client = lim.backend.conn.sync_client()  # the INCR baseline: same client
        allow = lim.allow

        def fn(i: int, allow: Any = allow) -> None:
            allow(KEYS[i % 1000])

        def base(i: int, client: Any = client) -> None:
            client.incr(INCR_KEYS[i % 1000])

        ns, base_ns, ratio = paired(fn, base, batches, size)
        note = "   (target <= 1.15)" if algorithm == "gcra" else ""
        line(f"floodwall {algorithm} allow()", ns, base_ns, ratio, note)
        out[algorithm] = ratio
        lim.clear()
        lim.close()
    lim = floodwall.Limiter("10/second; 1000/minute; 50000/day", store=url, namespace="bench3")
    client = lim.backend.conn.sync_client()
    ns, base_ns, ratio = paired(
        lambda i: lim.allow(KEYS[i % 1000]), lambda i: client.incr(INCR_KEYS[i % 1000]),
        batches, size,
    )
    line("floodwall gcra, 3 rates on one key", ns, base_ns, ratio)
    lim.clear()
    return out


def pipelined_section(url: str, batches: int) -> None:
    print("pipelined (100 checks per round trip; checks per second):")
    lim = floodwall.Limiter(RATE, store=url, namespace="benchp")
    be = lim.backend
    client = be.conn.sync_client()
    be.check("warm")  # loads the function (or, on Redis < 7, use the script)
    scripts = be.conn.scripts
    if scripts.use_fcall:
        command, name = "FCALL", scripts.fname
    else:
        client.script_load(scripts.script)
        command, name = "EVALSHA", scripts.sha
    keys_of = [be.namer.keys(k) for k in KEYS]
    argv = be._argv1

    def checks(i: int) -> None:
        pipe = client.pipeline(transaction=False)
        for j in range(100):
            keys = keys_of[(i * 100 + j) % 1000]
            pipe.execute_command(command, name, len(keys), *keys, *argv)
        pipe.execute()

    def incrs(i: int) -> None:
        pipe = client.pipeline(transaction=False)
        for j in range(100):
            pipe.incr(INCR_KEYS[(i * 100 + j) % 1000])
        pipe.execute()

    ns, base_ns, ratio = paired(checks, incrs, batches, 3)
    print(
        f"  {'floodwall gcra, ' + command + ' pipelined':44s} {100e9 / ns:9.0f}/s   "
        f"INCR {100e9 / base_ns:7.0f}/s   time ratio {ratio:5.2f}"
    )
    lim.clear()


def async_section(url: str, seconds: float, concurrency: int = 64) -> None:
    print(f"async (one at a time, ns per call; then {concurrency} tasks, checks per second):")

    async def run() -> None:
        lim = floodwall.Limiter(RATE, store=url, namespace="bencha")
        await lim.acheck("warm")
        client = lim.backend.conn.async_client()
        assert client is not None

        async def drive(op: Callable[[int], Any]) -> float:
            done = 0
            stop = time.perf_counter() + seconds

            async def worker(w: int) -> None:
                nonlocal done
                i = w
                while time.perf_counter() < stop:
                    await op(i)
                    i += concurrency
                    done += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(concurrency)))
            return done / (time.perf_counter() - start)

        # one at a time: the latency an awaiting request sees
        one_f, one_b = float("inf"), float("inf")
        acheck, aincr = lim.acheck, client.incr
        for r in range(30):
            for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                start = time.perf_counter_ns()
                if side == 0:
                    for i in range(100):
                        await acheck(KEYS[i])
                    one_f = min(one_f, (time.perf_counter_ns() - start) / 100)
                else:
                    for i in range(100):
                        await aincr(INCR_KEYS[i])
                    one_b = min(one_b, (time.perf_counter_ns() - start) / 100)
        line("floodwall gcra acheck(), one at a time", one_f, one_b, one_f / one_b,
             "   (target <= 1.2)")
        rates_f, rates_b = [], []
        for _ in range(3):
            rates_f.append(await drive(lambda i: lim.acheck(KEYS[i % 1000])))
            rates_b.append(await drive(lambda i: client.incr(INCR_KEYS[i % 1000])))
        f, b = max(rates_f), max(rates_b)  # best of the interleaved runs
        name = "floodwall gcra acheck()"
        print(f"  {name:44s} {f:9.0f}/s   INCR {b:7.0f}/s   time ratio {b / f:5.2f}"
              "   (target <= 1.2)")
        await lim.aclear()
        await lim.backend.aclose()

    asyncio.run(run())


def others_section(url: str, batches: int, size: int, ours: dict[str, float]) -> None:
    print(
        "other libraries on the same server (ns per call; 'floodwall / this' compares the\n"
        "  two ratios to INCR, so that load changes between the runs cancel out):"
    )
    import redis

    base_client = redis.Redis.from_url(url)

    def base(i: int) -> None:
        base_client.incr(INCR_KEYS[i % 1000])

    try:
        from limits import parse
        from limits.storage import RedisStorage
        from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
    except ImportError:
        print("  limits: not installed")
    else:
        storage = RedisStorage(url)
        item = parse(RATE)
        for name, strategy, mine in (
            ("moving window", MovingWindowRateLimiter(storage), "sliding_log"),
            ("fixed window", FixedWindowRateLimiter(storage), "fixed_window"),
        ):
            storage.reset()  # the two strategies use one key name, two types
            ns, base_ns, ratio = paired(
                lambda i, hit=strategy.hit: hit(item, KEYS[i % 1000]), base, batches, size
            )
            vs = f"   floodwall {mine} / this: {ours[mine] / ratio:4.2f}" if mine in ours else ""
            line(f"limits {name} hit()", ns, base_ns, ratio, vs)
        storage.reset()
    try:
        from throttled import RateLimiterType, RedisStore, Throttled, per_min
    except ImportError:
        print("  throttled-py: not installed")
    else:
        store = RedisStore(server=url)
        throttle = Throttled(using=RateLimiterType.GCRA.value, quota=per_min(50000), store=store)
        limit = throttle.limit
        ns, base_ns, ratio = paired(lambda i: limit(KEYS[i % 1000]), base, batches, size)
        vs = f"   floodwall gcra / this: {ours['gcra'] / ratio:4.2f}" if "gcra" in ours else ""
        line("throttled-py gcra limit()", ns, base_ns, ratio, vs)
    base_client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="an existing Redis (default: start one)")
    parser.add_argument("--quick", action="store_true", help="fewer batches")
    args = parser.parse_args()
    batches, size, seconds = (10, 100, 0.5) if args.quick else (60, 100, 2.0)
    server = None
    url = args.url
    if url is None:
        from redis_servers import RedisServer

        server = RedisServer(name="bench")
        server.start()
        url = server.url
    try:
        import redis

        print(f"floodwall {floodwall.__version__}, redis-py {redis.__version__}, {url}")
        ours = sync_section(url, batches, size)
        pipelined_section(url, batches)
        async_section(url, seconds)
        others_section(url, batches, size, ours)
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
