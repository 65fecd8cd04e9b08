# Tests of the ASGI middleware's short paths (issue 16: what the middleware
# costs per request): the byte headers it sends are exactly the str headers
# every other integration sends, for every number range the encoding
# shortcuts treat apart; and on an awaited store the middleware awaits the
# store once and nothing else, while a shaping delay is still slept.
from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

import floodwall
from floodwall.headers import HeaderPolicy
from floodwall.integrations.asgi import Floodwall, FloodwallMiddleware

S = 1_000_000_000

#: Around every boundary of the small-number table (0, 1023/1024) and beyond.
NUMBERS = (0, 1, 2, 9, 10, 1022, 1023, 1024, 1025, 65_536, 10**9)


def _encoded(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


@pytest.mark.parametrize("styles", ["both", "ietf", "x-ratelimit", "none"])
@pytest.mark.parametrize("on_allowed", [True, False])
def test_raw_headers_are_the_str_headers_encoded(styles: str, on_allowed: bool) -> None:
    rates = [floodwall.Rate(7, 60), floodwall.Rate(5000, 3600)]
    hp = HeaderPolicy(rates, ["min", "hour"], styles=styles, on_allowed=on_allowed)
    # the limiter's own Rate objects, an equal Rate object, and no rate
    for rate in (rates[0], rates[1], floodwall.Rate(5000, 3600), None):
        for allowed, limit, remaining, seconds in itertools.product(
            (True, False), NUMBERS[1:], NUMBERS, NUMBERS
        ):
            ns = seconds * S - 1 if seconds else 0  # rounded up to `seconds`
            d = floodwall.Decision(
                allowed, limit, remaining, 0 if allowed else ns, ns, 0, rate=rate
            )
            for retry_after in (None, -3, 3, 1024):
                ra = None if allowed else retry_after
                raw = hp.raw_headers(d, ra)
                assert raw == _encoded(hp.headers(d, ra)), (d, ra)


class _AwaitedStore:
    """Wraps a limiter's check as a network store would: awaited, counted."""

    def __init__(self, limiter: floodwall.Limiter) -> None:
        self.check = limiter.check
        self.awaits = 0

    async def acheck(self, key: str, cost: int = 1) -> Any:
        self.awaits += 1
        await asyncio.sleep(0)  # a real suspension, as a round trip is
        return self.check(key, cost)


def _awaited(fw: Floodwall) -> _AwaitedStore:
    limits = fw.default
    assert limits is not None and limits.single is not None
    store = _AwaitedStore(limits.single.limiter)
    limits.single.limiter.acheck = store.acheck  # type: ignore[method-assign]
    limits.local = False
    return store


async def _request(app: Any, path: str = "/items") -> tuple[int, dict[bytes, bytes]]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"t")], "client": ("192.0.2.7", 5555),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    return start["status"], dict(start["headers"])


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_awaited_store_one_await_per_request_exact_admissions() -> None:
    fw = Floodwall("3/minute", exempt=["/health"])
    store = _awaited(fw)
    app = FloodwallMiddleware(_ok, fw)

    async def run() -> list[tuple[int, dict[bytes, bytes]]]:
        return [await _request(app) for _ in range(5)] + [await _request(app, "/health")]

    results = asyncio.run(run())
    assert [status for status, _ in results] == [200, 200, 200, 429, 429, 200]
    assert store.awaits == 5  # one per limited request, none for the exempt path
    assert results[0][1][b"ratelimit"] == b'"3-per-60s";r=2;t=20'
    assert results[0][1][b"x-app"] == b"1"
    assert results[3][1][b"retry-after"] == b"20"
    assert b"ratelimit" not in results[5][1]
    fw.enabled = False  # turned off at run time: nothing checked
    assert asyncio.run(_request(app))[0] == 200
    assert store.awaits == 5


def test_awaited_store_shaping_delay_is_still_slept() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    fw = Floodwall("2/second", algorithm="leaky_bucket_shaping", sleep=sleep)
    _awaited(fw)
    app = FloodwallMiddleware(_ok, fw)

    async def run() -> list[int]:
        return [(await _request(app))[0] for _ in range(2)]

    assert asyncio.run(run()) == [200, 200]
    assert len(slept) == 1 and 0.4 < slept[0] <= 0.5, slept
    assert fw.waiting == 0.0  # the wait was given back
