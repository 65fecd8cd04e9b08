# test_redis_lua.py - the Redis Lua scripts on their own, on a real server.
#
# The exact-integer module against Python's integers, every shared vector
# (tests/vectors/*.json) replayed through the check script field by field,
# the quota normalisation against quotas.json, and random walks compared
# with the reference model (tests/vectors/reference.py) and the C engine,
# including times near 2^63, quotas far beyond 2^53 ns, and clock
# excursions (where the engine, and so the script, departs from the model).
from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from floodwall import Limiter, Rate
from floodwall.stores.redis import scripts as redis_lua
from floodwall.stores.redis.scripts import QuotaParts, check_script, normalise, parse_reply

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))
import reference as ref  # noqa: E402

ALGORITHM_FILES = sorted(p for p in VECTORS.glob("*.json") if "cases" in json.loads(p.read_text()))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    try:
        yield c
    finally:
        c.close()


def run_check(
    client: redis.Redis,
    keys: list[str],
    quotas: list[QuotaParts],
    now: int,
    cost: int,
) -> tuple[bool, int, int, int, int, int]:
    script, sha = check_script()
    argv: list[Any] = [str(now), str(cost), "0"]
    for q in quotas:
        argv.extend(q.part)
    try:
        res = client.evalsha(sha, len(keys), *keys, *argv)
    except redis.exceptions.NoScriptError:
        res = client.eval(script, len(keys), *keys, *argv)
    return parse_reply(res)


# ---------------------------------------------------------------- bignum

BIGNUM_HARNESS = """
floor, fmod = math.floor, math.fmod
local out = {}
for i = 1, #ARGV, 3 do
    local op, a, b = ARGV[i], parse(ARGV[i + 1]), parse(ARGV[i + 2])
    if op == 'add' then out[#out + 1] = tostr(add(a, b))
    elseif op == 'sub' then out[#out + 1] = tostr(sub(a, b))
    elseif op == 'mul' then out[#out + 1] = tostr(mul(a, b))
    elseif op == 'div' then
        local q, r = divmod(a, b)
        out[#out + 1] = tostr(q) .. ' ' .. tostr(r)
    elseif op == 'cmp' then out[#out + 1] = tostring(cmp(a, b))
    elseif op == 'echo' then out[#out + 1] = tostr(a) .. ' ' .. tostr(b)
    end
end
return out
"""


def bignum_script() -> str:
    base = Path(redis_lua.__file__).parent / "lua"
    return (base / "bignum.lua").read_text() + BIGNUM_HARNESS


def interesting(rng: random.Random) -> int:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randrange(0, 100)
    if kind == 1:
        return 2**53 + rng.randrange(-50, 50)
    if kind == 2:
        return 2**63 + rng.randrange(-50, 50)
    if kind == 3:
        return 10 ** rng.randrange(1, 30) + rng.randrange(-3, 3)
    if kind == 4:
        return rng.randrange(0, 2**64)
    if kind == 5:
        return rng.randrange(0, 2**100)
    if kind == 6:
        return rng.randrange(0, 2**53)
    return rng.randrange(1, 10**7) * 10**7 + rng.randrange(0, 3)


def test_bignum_matches_python_integers(client: redis.Redis) -> None:
    script = bignum_script()
    rng = random.Random(5)
    for _round in range(20):
        ops: list[tuple[str, int, int]] = []
        for _ in range(200):
            a, b = abs(interesting(rng)), abs(interesting(rng))
            op = rng.choice(["add", "sub", "mul", "div", "cmp", "echo"])
            if op == "sub" and a < b:
                a, b = b, a
            if op == "div" and b == 0:
                b = 1
            if op == "mul" and a * b >= 2**140:
                b = b % 2**30
            ops.append((op, a, b))
        argv = [x for op, a, b in ops for x in (op, str(a), str(b))]
        out = client.eval(script, 0, *argv)
        for (op, a, b), got in zip(ops, out):
            text = got.decode()
            if op == "add":
                expected = str(a + b)
            elif op == "sub":
                expected = str(a - b)
            elif op == "mul":
                expected = str(a * b)
            elif op == "div":
                expected = f"{a // b} {a % b}"
            elif op == "cmp":
                expected = str((a > b) - (a < b))
            else:
                expected = f"{a} {b}"
            assert text == expected, (op, a, b)


def test_bignum_rejects_non_digits(client: redis.Redis) -> None:
    with pytest.raises(redis.exceptions.ResponseError, match="not a decimal integer"):
        client.eval(bignum_script(), 0, "echo", "12x", "1")
    with pytest.raises(redis.exceptions.ResponseError, match="not a decimal integer"):
        client.eval(bignum_script(), 0, "echo", "1" * 20 + "-", "1")


# ---------------------------------------------------------------- quotas


def test_normalisation_matches_quotas_json() -> None:
    quotas = json.loads((VECTORS / "quotas.json").read_text())["quotas"]
    assert quotas
    for q in quotas:
        if "error" in q:
            with pytest.raises(ValueError):
                normalise(q["algorithm"], q["rate"], q["period_ns"], q["burst"])
            continue
        got = normalise(q["algorithm"], q["rate"], q["period_ns"], q["burst"])
        assert (got.burst, got.interval_ns, got.tau_ns, got.window_ns) == (
            q["capacity"],
            q["interval_ns"],
            q["tau_ns"],
            q["window_ns"],
        ), q["name"]


# ---------------------------------------------------------------- vectors


@pytest.mark.parametrize("path", ALGORITHM_FILES, ids=lambda p: p.stem)
def test_vectors_through_the_script(client: redis.Redis, path: Path) -> None:
    data = json.loads(path.read_text())
    algorithm = data["algorithm"]
    steps = 0
    for case in data["cases"]:
        q = normalise(algorithm, case["rate"], case["period_ns"], case["burst"])
        for i, step in enumerate(case["steps"]):
            where = f"{path.name} {case['name']} step {i}"
            key = f"vec:{algorithm}:{case['name']}:{step['key']}"
            if "error" in step:
                assert step["error"] == "cost"
                assert step["cost"] > q.burst, where
                with pytest.raises(redis.exceptions.ResponseError, match="cost exceeds"):
                    run_check(client, [key], [q], step["t"], step["cost"])
                continue
            got = run_check(client, [key], [q], step["t"], step["cost"])
            want = (
                step["allowed"],
                0,
                step["remaining"],
                step["retry_after_ns"],
                step["reset_after_ns"],
                step["delay_ns"],
            )
            assert got == want, where
            assert q.burst == step["limit"], where
            steps += 1
    assert steps > 100


# ---------------------------------------------------------------- random walks


def random_quota(rng: random.Random, algorithm: str) -> ref.Quota:
    while True:
        kind = rng.random()
        if kind < 0.4:
            rate = rng.randint(1, 20)
            period = rng.choice([7, 10, 13, 1000, 10**9, 60 * 10**9])
            burst = rng.choice([0, 0, 1, 3, rng.randint(1, 30)])
        elif kind < 0.7:
            rate = rng.randint(1, 10**6)
            period = rng.randint(rate, 2**62)
            burst = rng.choice([0, rng.randint(1, 10**6)])
        else:
            rate = rng.randint(1, 2**40)
            period = rng.randint(rate, 2**63 - 1)
            burst = rng.choice([0, 1, rng.randint(1, 2**62)])
        if algorithm == "sliding_log" and (burst or rate) > 64:
            continue
        try:
            return ref.normalise(algorithm, rate, period, burst)
        except ref.QuotaError:
            continue


@pytest.mark.parametrize("seed", range(4))
def test_random_walks_match_the_reference(client: redis.Redis, seed: int) -> None:
    rng = random.Random(1000 + seed)
    for walk in range(60):
        algorithm = ref.ALGORITHMS[walk % len(ref.ALGORITHMS)]
        rq = random_quota(rng, algorithm)
        q = normalise(algorithm, rq.rate, rq.period_ns, rq.burst)
        state = ref.fresh_state(rq)
        mode = rng.random()
        if mode < 0.3:
            now = rng.randint(0, 2**63 - 1)
        elif mode < 0.5:
            now = 2**63 - 1 - rng.randint(0, 10 * max(rq.window_ns, rq.tau_ns, 1000))
        elif mode < 0.6:
            now = 0
        else:
            now = rng.randint(1_700_000_000 * 10**9, 1_900_000_000 * 10**9)
        now = max(0, min(now, 2**63 - 1))
        key = f"walk:{seed}:{walk}"
        clock = [now]
        engine = Limiter(Rate.from_ns(rq.rate, rq.period_ns, rq.burst), algorithm=algorithm,
                         clock=lambda clock=clock: clock[0])
        # the reference model has no clock excursions: it is the oracle until
        # the clock falls back further than the engine lets a state lead
        # (docs/algorithms.md); the C engine is the oracle throughout
        excursion = False
        latest = now
        # a state leads now by at most (latest - now) + horizon; the engine
        # clamps one leading by more than horizon + max(horizon, 1 s)
        windowed = algorithm in ("fixed_window", "sliding_window", "sliding_log")
        horizon = rq.window_ns if windowed else rq.tau_ns
        for _ in range(rng.randint(1, 20)):
            cost = rng.choice([0, 1, 1, rng.randint(0, rq.burst), rq.burst])
            state, d = ref.step(rq, state, now, cost)
            got = run_check(client, [key], [q], now, cost)
            clock[0] = now
            e = engine.check(key, cost)
            # the engine's Decision holds int64: the script's exact values saturate
            assert tuple(min(v, 2**63 - 1) for v in got) == (
                e.allowed, 0, e.remaining, e.retry_after_ns, e.reset_after_ns, e.delay_ns
            ), (rq, now, cost)
            want = (d.allowed, 0, d.remaining, d.retry_after_ns, d.reset_after_ns, d.delay_ns)
            if not excursion:
                assert got == want, (rq, now, cost)
            m = rng.random()
            if m < 0.3:
                dt = d.retry_after_ns
            elif m < 0.4:
                dt = max(0, d.retry_after_ns - 1)
            elif m < 0.6:
                dt = rng.randint(0, max(1, rq.interval_ns))
            elif m < 0.7:
                dt = rng.randint(0, max(1, rq.window_ns))
            elif m < 0.75:
                dt = -rng.randint(0, max(1, rq.window_ns))  # the clock steps back
            elif m < 0.8:
                dt = rng.choice([-1, 1]) * rng.randint(2**50, 2**60)  # far jumps
            else:
                dt = rng.randint(0, 3)
            now = max(0, min(2**63 - 1, now + dt))
            latest = max(latest, now)
            excursion = excursion or latest - now > max(horizon, 10**9)


def test_all_or_nothing_across_parts(client: redis.Redis) -> None:
    """Several parts in one call: a denial anywhere writes nothing."""
    t = 5 * 10**18
    small = normalise("gcra", 2, 10**9, 0)
    big = normalise("fixed_window", 100, 10**9, 0)
    log = normalise("sliding_log", 3, 10**9, 0)
    keys = ["aon:small", "aon:big", "aon:log"]
    quotas = [small, big, log]
    assert run_check(client, keys, quotas, t, 1)[0]
    assert run_check(client, keys, quotas, t, 1)[0]
    denied = run_check(client, keys, quotas, t, 1)
    assert denied[0] is False and denied[1] == 0  # the gcra part decided
    # the other parts did not consume the denied request
    assert run_check(client, ["aon:big"], [big], t, 0)[2] == 98
    assert run_check(client, ["aon:log"], [log], t, 0)[2] == 1
    # allowed: the part with the fewest units left decides
    later = t + 10**9  # gcra: 1 left after this; fixed window: 99; log: 2
    allowed = run_check(client, keys, quotas, later, 1)
    assert allowed[0] and allowed[1] == 0 and allowed[2] == 1
    assert run_check(client, keys[1:], quotas[1:], later, 1)[1:3] == (1, 1)


def test_same_key_twice_in_one_call(client: redis.Redis) -> None:
    q = normalise("sliding_log", 3, 10**9, 0)
    t = 10**18
    res = run_check(client, ["dup", "dup"], [q, q], t, 2)
    assert res[0] is False  # 2 + 2 > 3: the second part sees the first
    assert run_check(client, ["dup"], [q], t, 0)[2] == 3  # nothing written
    assert run_check(client, ["dup", "dup"], [q, q], t, 1)[0]
    assert run_check(client, ["dup"], [q], t, 0)[2] == 1
