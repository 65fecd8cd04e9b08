"""Hooks of group checks: check_all / acheck_all / allow_all and Limits call
the hooks of every limiter involved (on_allow / on_block with the group's
decision and the part's own key and cost; each distinct on_error once when
the store fails), a route's several limits call them once, and unset hooks
still cost nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import floodwall
from floodwall.hooks import key_id
from floodwall.integrations.asgi import Floodwall as AsgiFloodwall

Calls = list[tuple[str, str, str, int, bool]]


def _recorder(calls: Calls) -> dict[str, Any]:
    """on_allow / on_block that record (hook, limit, hashed key, cost, allowed)."""
    return {
        "on_allow": lambda d, i: calls.append(("allow", i["limit"], i["key"], i["cost"],
                                               d.allowed)),
        "on_block": lambda d, i: calls.append(("block", i["limit"], i["key"], i["cost"],
                                               d.allowed)),
    }


def _pair(store_url: str, clock: Any, calls: Calls) -> tuple[floodwall.Limiter, ...]:
    user = floodwall.Limiter("2/minute", store=store_url, clock=clock, namespace="g-user",
                             name="user", **_recorder(calls))
    org = floodwall.Limiter("5/minute", store=user.store, clock=clock, namespace="g-org",
                            name="org", **_recorder(calls))
    return user, org


def test_check_all_calls_every_limiters_hooks(store_url: str, clock: Any) -> None:
    calls: Calls = []
    user, org = _pair(store_url, clock, calls)
    u, o = key_id("u1"), key_id("acme")
    assert floodwall.check_all([(user, "u1"), (org, "acme", 2)]).allowed
    assert calls == [("allow", "user", u, 1, True), ("allow", "org", o, 2, True)]
    calls.clear()
    assert floodwall.allow_all([(user, "u1"), (org, "acme")])
    assert calls == [("allow", "user", u, 1, True), ("allow", "org", o, 1, True)]
    calls.clear()
    d = floodwall.check_all([(user, "u1"), (org, "acme")])  # user's 2/minute is spent
    assert not d.allowed and d.denied_part == 0
    assert calls == [("block", "user", u, 1, False), ("block", "org", o, 1, False)]
    calls.clear()
    # a part of cost 0 peeks: not a decision of that limiter, not observed
    floodwall.check_all([(user, "u2", 0), (org, "acme")])
    assert calls == [("allow", "org", o, 1, True)]
    calls.clear()
    floodwall.check_all([(user, "u2"), (org, "acme")], cost=0)
    assert calls == []
    user.close()
    org.close()


def test_acheck_all_calls_every_limiters_hooks(store_url: str, clock: Any) -> None:
    calls: Calls = []
    user, org = _pair(store_url, clock, calls)

    async def run() -> list[bool]:
        first = await floodwall.acheck_all([(user, "u1", 2), (org, "acme")])
        second = await floodwall.aallow_all([(user, "u1"), (org, "acme")])
        await user.aclose()
        await org.aclose()
        return [first.allowed, second]

    assert asyncio.run(run()) == [True, False]
    u, o = key_id("u1"), key_id("acme")
    assert calls == [
        ("allow", "user", u, 2, True), ("allow", "org", o, 1, True),
        ("block", "user", u, 1, False), ("block", "org", o, 1, False),
    ]


def test_limits_takes_the_observers(store_url: str, clock: Any) -> None:
    calls: Calls = []
    seen: list[str] = []
    limits = floodwall.Limits(
        {"user": "1/minute", "org": "10/minute"}, store=store_url, clock=clock,
        name="api", **_recorder(calls),
    )
    assert [lim.name for lim in limits.limiters.values()] == ["api:user", "api:org"]
    assert limits.check(user="alice", org="acme", cost={"org": 3}).allowed
    d = limits.check(user="alice", org="acme")
    assert limits.violated(d) == "user"
    a, o = key_id("alice"), key_id("acme")
    assert calls == [
        ("allow", "api:user", a, 1, True), ("allow", "api:org", o, 3, True),
        ("block", "api:user", a, 1, False), ("block", "api:org", o, 1, False),
    ]
    calls.clear()

    async def run() -> bool:
        return (await limits.acheck(user="bob", org="acme")).allowed

    assert asyncio.run(run())
    assert [c[:2] for c in calls] == [("allow", "api:user"), ("allow", "api:org")]
    # without name= the limits keep their default names (namespace:limit)
    plain = floodwall.Limits({"ip": "5/minute"}, store=store_url, clock=clock,
                             on_block=lambda d, i: seen.append(i["limit"]))
    assert plain.limiters["ip"].name == "limits:ip"
    for lim in (*limits.limiters.values(), *plain.limiters.values()):
        lim.close()


def test_limits_metrics_and_events(clock: Any) -> None:
    from floodwall.observe.events import Events
    from floodwall.observe.metrics import Metrics

    got: list[tuple[str, bool]] = []
    events = Events(lambda r: got.append((r["limit"], r["outcome"] == "allowed")))
    metrics = Metrics(units=True)
    limits = floodwall.Limits({"user": "1/minute", "org": "10/minute"}, clock=clock,
                              store="memory://limits-observed", events=events,
                              metrics=metrics)
    limits.check(user="a", org="o", cost={"org": 4})
    limits.check(user="a", org="o")
    events.flush()
    assert sorted(got) == [("limits:org", False), ("limits:org", True),
                           ("limits:user", False), ("limits:user", True)]
    org = limits.limiters["org"].observer
    assert org is not None and org.units is not None
    assert (org.units.allowed, org.units.denied) == (4, 1)
    events.close()


def test_limits_refuses_a_bad_name() -> None:
    with pytest.raises(floodwall.ConfigError, match="name must be a non-empty str"):
        floodwall.Limits({"user": "1/minute"}, name="")
    with pytest.raises(floodwall.ConfigError, match="on_allow must be a callable"):
        floodwall.Limits({"user": "1/minute"}, on_allow="print")  # type: ignore[arg-type]


def test_unset_hooks_still_cost_nothing() -> None:
    limits = floodwall.Limits({"user": "2/minute", "org": "5/minute"})
    for lim in limits.limiters.values():
        assert type(lim.check).__name__ == "builtin_function_or_method"
        assert lim.observer is None and not lim.watched_in_groups
    assert limits.check(user="u", org="o").allowed
    hooked = floodwall.Limits({"user": "2/minute"}, on_block=lambda d, i: None)
    assert type(hooked.limiters["user"].check).__name__ == "function"


def test_on_error_of_every_limiter_when_redis_is_stopped(fresh_server: Any) -> None:
    """The first limiter's policy answers for the group; every distinct
    on_error of the group's limiters is told, once."""
    first_errors: list[BaseException] = []
    second_errors: list[BaseException] = []
    blocked: list[str] = []
    url = fresh_server.url + "?timeout=0.2&breaker_threshold=0"
    a = floodwall.Limiter("5/minute", store=url, fail="closed", namespace="a", name="a",
                          on_error=first_errors.append,
                          on_block=lambda d, i: blocked.append(i["limit"]))
    b = floodwall.Limiter("5/minute", store=a.store, fail="closed", namespace="b", name="b",
                          on_error=second_errors.append,
                          on_block=lambda d, i: blocked.append(i["limit"]))
    c = floodwall.Limiter("5/minute", store=a.store, namespace="c",
                          on_error=first_errors.append)  # the same hook as a's
    assert floodwall.check_all([(a, "k"), (b, "k"), (c, "k")]).allowed
    fresh_server.kill()
    d = floodwall.check_all([(a, "k"), (b, "k"), (c, "k")])
    assert not d.allowed and d.fallback
    assert len(first_errors) == 1 and len(second_errors) == 1
    assert first_errors[0] is second_errors[0]
    assert blocked == ["a", "b"]  # c has no hook

    async def run() -> None:
        await floodwall.acheck_all([(b, "k"), (a, "k")])

    asyncio.run(run())
    assert len(first_errors) == 2 and len(second_errors) == 2
    # outside a group, a limiter's own on_error only
    a.check("k")
    assert len(first_errors) == 3 and len(second_errors) == 2
    limits_errors: list[BaseException] = []
    limits = floodwall.Limits({"x": "5/minute", "y": "5/minute"}, store=url, fail="open",
                              on_error=limits_errors.append)
    assert limits.check(x="1", y="2").fallback
    assert len(limits_errors) == 1  # one hook, one call, whatever the limits
    for lim in (a, b, c, *limits.limiters.values()):
        lim.close()


def test_on_error_of_a_group_on_a_full_table() -> None:
    """The same on the native table: a full table fails the group."""
    errors: list[tuple[str, BaseException]] = []
    a = floodwall.Limiter("5/minute", store="memory://full-group?max_keys=1024",
                          fail="open", namespace="a",
                          on_error=lambda e: errors.append(("a", e)))
    b = floodwall.Limiter("5/minute", store=a.store, fail="open", namespace="b",
                          on_error=lambda e: errors.append(("b", e)))
    for i in range(1024):
        a.check(f"fill{i}")
    d = floodwall.check_all([(a, "new1"), (b, "new2")])
    assert d.allowed and d.fallback
    assert [name for name, _ in errors] == ["a", "b"]
    assert errors[0][1] is errors[1][1]

    async def run() -> None:
        await floodwall.acheck_all([(b, "new3"), (a, "new4")])

    asyncio.run(run())
    assert [name for name, _ in errors] == ["a", "b", "b", "a"]


def test_route_with_several_limits_calls_each_hook_once() -> None:
    seen: list[tuple[str, str]] = []

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    fw = AsgiFloodwall(on_allow=lambda d, i: seen.append(("allow", i["limit"])),
                       on_block=lambda d, i: seen.append(("block", i["limit"])))
    app = Starlette(routes=[Route("/", fw.limit("2/minute", "5/minute")(home))])
    fw.init_app(app)
    client = TestClient(app)
    codes = [client.get("/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert len(seen) == 6, seen
    assert [s[0] for s in seen] == ["allow"] * 4 + ["block"] * 2
