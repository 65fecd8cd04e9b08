"""The Redis backend: one limit spec on a Redis deployment.

Every check is one call of the check script (:mod:`.calls`): all the rates
of a limiter, and all the parts of a check_all, decided all-or-nothing in
one round trip, with Redis TIME as the clock. A failing Redis goes through
the failure policy (:mod:`floodwall.stores.failure`) and the circuit
breaker of the server concerned (:mod:`.connection`), so a dead server
costs microseconds, not timeouts. A caller's mistake (a bad cost or key)
is raised before Redis is asked, and never counts as a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from floodwall._native import Decision
from floodwall.errors import ConfigError, StoreError
from floodwall.rates import Rate
from floodwall.stores import LimitSpec
from floodwall.stores.breaker import OPEN
from floodwall.stores.netquota import INT64_MAX as _INT64_MAX
from floodwall.stores.network import Key, PooledBackend, network_capabilities
from floodwall.stores.redis.calls import run_async, run_sync, script_call
from floodwall.stores.redis.connection import Connection, acquire, release, shared
from floodwall.stores.redis.keys import KeyNamer, resolve_key_secret
from floodwall.stores.redis.scripts import QuotaParts, normalise, parse_reply
from floodwall.stores.redis.url import RedisOptions, RedisURL
from floodwall.stores.redis.wire import PackedCheck, send_async, send_sync, usable
from floodwall.stores.url import StoreURL

__all__ = ["CAPABILITIES", "RedisBackend", "from_client", "open_redis"]

#: user keys whose Redis keys (and their packed bytes) a backend remembers;
#: the memory is forgotten whole when full (a bound an attacker's keys
#: cannot grow past)
KEY_MEMORY_MAX = 4096
_KEY_TYPES = (str, bytes)
_STORE_ERRORS = (RedisError, OSError)  # OSError covers socket errors and TimeoutError

#: What a Redis store is.
CAPABILITIES = network_capabilities("redis", durable=False)


def _timed_out(timeout: float | None) -> TimeoutError:
    """The error of an async call its deadline ended."""
    return TimeoutError(f"Redis did not answer within the timeout ({timeout}s)")


class RedisBackend(PooledBackend):
    """A limit spec on a Redis deployment (see docs/redis.md)."""

    capabilities = CAPABILITIES
    store_name = "Redis store"

    def __init__(self, conn: Connection, spec: LimitSpec, opts: RedisOptions) -> None:
        super().__init__(conn, spec, opts, normalise)
        quotas: tuple[QuotaParts, ...] = self.quotas
        self._parts = tuple(x for q in quotas for x in q.part)
        self.namer = KeyNamer(
            spec.namespace,
            spec.algorithm,
            quotas,
            plain_keys=opts.plain_keys,
            key_secret=resolve_key_secret(opts.key_secret),
            hash_tag=opts.hash_tag,
        )
        self._expire = b"0" if spec.clock is not None else b"1"
        # the ARGV of a cost-1 check with Redis's own clock, built once
        self._argv1 = (b"", b"1", self._expire, *self._parts)
        # ...and that call packed once but for its keys, sent without
        # execute_command on the clients floodwall made (wire.py)
        self._packed1 = PackedCheck(conn.scripts, len(quotas), self._argv1)
        self._wire = usable(conn.owned, conn.cluster, conn.client_options)
        # str/bytes user key -> (its Redis keys, packed): hashing a key
        # (blake2b) and packing it cost more than the rest of a check's
        # Python; remembered on the packed path only
        self._known: dict[Key, tuple[list[bytes], bytes]] = {}
        self._remember = self._wire and self.namer.deterministic

    def bind(self, spec: LimitSpec, **options: Any) -> RedisBackend:
        """Another limit on this backend's connection (so check_all can
        group them)."""
        return from_client(self, spec, **options)

    # -- helpers ------------------------------------------------------------

    def _keys_packed(self, key: Key) -> tuple[list[bytes], bytes]:
        """The Redis keys of ``key`` and their packed bytes, remembered
        (up to KEY_MEMORY_MAX keys) for a key that is exactly str or bytes."""
        keys = self.namer.keys(key)
        known = (keys, PackedCheck.segment(keys))
        if self._remember and key.__class__ in _KEY_TYPES:
            memory = self._known
            if len(memory) >= KEY_MEMORY_MAX:
                memory.clear()
            memory[key] = known
        return known

    def _argv(self, cost: int, parts: Sequence[bytes]) -> tuple[Any, ...]:
        if self._clock is None:
            now: Any = b""
            if cost == 1 and parts is self._parts:
                return self._argv1
        else:
            now = self._now()
        return (now, cost, self._expire, *parts)

    def _run(
        self,
        keys: Sequence[bytes],
        argv: Sequence[Any],
        meta: Sequence[tuple[int, Rate]],
        part_of: Sequence[int] | None = None,
    ) -> Decision:
        conn = self.conn
        client = conn.sync_client()
        breaker, target = conn.route(client, keys[0])
        if breaker._state and not breaker.allow():  # not closed
            return self._skipped(breaker, meta[0][1])
        try:
            res = run_sync(client, script_call(conn.scripts, keys, argv), target)
        except _STORE_ERRORS as exc:
            return self._failed(exc, meta[0][1], breaker)
        breaker.success()
        return self._reply(parse_reply(res, _INT64_MAX), meta, part_of)

    async def _arun(
        self,
        keys: Sequence[bytes],
        argv: Sequence[Any],
        meta: Sequence[tuple[int, Rate]],
        part_of: Sequence[int] | None = None,
        packed: bytes = b"",
    ) -> Decision:
        conn = self.conn
        loop = asyncio.get_running_loop()  # once per call (a getpid each on 3.11)
        client = conn.async_client(loop)
        if conn.cluster:
            breaker, target = conn.route(client or conn.sync_client(), keys[0])
        else:
            breaker, target = conn.breaker, None
        if breaker._state and not breaker.allow():
            return self._skipped(breaker, meta[0][1])
        deadline = conn.deadline(breaker, loop)
        bounded = deadline is not None
        try:
            if packed and target is None and client is not None:
                # the common case, without a coroutine of _acall's between
                scripts = conn.scripts
                try:
                    res = await send_async(
                        client, self._packed1.join(scripts.use_fcall, packed), bounded
                    )
                except ResponseError as exc:  # NOSCRIPT, no function yet...: the routine
                    res = await run_async(client, script_call(scripts, keys, argv, exc))
            else:
                res = await self._acall(client, keys, argv, target, bounded)
        except BaseException as exc:
            # ended in this step, as asyncio.timeout's exit would be
            if (
                deadline is not None
                and conn.done(breaker, deadline)
                and isinstance(exc, asyncio.CancelledError)
            ):
                return self._failed_waiting(_timed_out(conn.timeout), meta[0][1], breaker)
            if not isinstance(exc, _STORE_ERRORS):
                raise
            return self._failed_waiting(exc, meta[0][1], breaker)
        if deadline is not None:
            conn.done(breaker, deadline)
        breaker.success()
        return self._reply(parse_reply(res, _INT64_MAX), meta, part_of)

    async def _acall(
        self,
        client: Any,
        keys: Sequence[bytes],
        argv: Sequence[Any],
        target: Any,
        bounded: bool = False,
    ) -> Any:
        """The script call off the packed path (see :meth:`_arun`)."""
        conn = self.conn
        scripts = conn.scripts
        if client is None:  # only a synchronous user client: use a thread
            routine = script_call(scripts, keys, argv)
            return await asyncio.to_thread(run_sync, conn.sync_client(), routine, target)
        if target is None:
            try:
                if scripts.use_fcall:
                    return await client.execute_command(
                        "FCALL", scripts.fname, len(keys), *keys, *argv
                    )
                return await client.execute_command(
                    "EVALSHA", scripts.sha, len(keys), *keys, *argv
                )
            except ResponseError as exc:  # NOSCRIPT, no function yet...: the routine
                return await run_async(client, script_call(scripts, keys, argv, exc))
        return await run_async(client, script_call(scripts, keys, argv), target)

    # -- checks -------------------------------------------------------------

    def check(self, key: Key, cost: int = 1) -> Decision:
        """Decide `cost` units for `key` on every rate, all-or-nothing."""
        # The hot path, kept flat: one FCALL (or EVALSHA), no helper frames.
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = self._checked_cost(cost)
        if cost == 1 and self._clock is None and self._wire:
            known = self._known.get(key) if key.__class__ in _KEY_TYPES else None
            keys, packed = known or self._keys_packed(key)
            argv: Sequence[Any] = self._argv1
        else:
            keys, packed = self.namer.keys(key), b""
            argv = self._argv(cost, self._parts)
        conn = self.conn
        client = conn._sync or conn.sync_client()
        if conn.cluster:
            breaker, target = conn.route(client, keys[0])
        else:
            breaker, target = conn.breaker, None
        if breaker._state and not breaker.allow():  # not closed: maybe skip
            return self._skipped(breaker, self._meta[0][1])
        scripts = conn.scripts
        try:
            try:
                if target is not None:  # Cluster: straight to the key's node
                    res = run_sync(client, script_call(scripts, keys, argv), target)
                elif packed:
                    res = send_sync(client, self._packed1.join(scripts.use_fcall, packed))
                elif scripts.use_fcall:
                    res = client.execute_command("FCALL", scripts.fname, len(keys), *keys, *argv)
                else:
                    res = client.execute_command("EVALSHA", scripts.sha, len(keys), *keys, *argv)
            except ResponseError as exc:  # NOSCRIPT, no function yet...: the routine
                res = run_sync(client, script_call(scripts, keys, argv, exc), target)
        except _STORE_ERRORS as exc:
            return self._failed(exc, self._meta[0][1], breaker)
        if breaker._failures:
            breaker.success()
        allowed, index, rem, retry, reset, delay = parse_reply(res, _INT64_MAX)
        burst, rate = self._meta[index]
        if allowed:
            if cost:
                self._allowed += 1
            return Decision(True, burst, rem, retry, reset, delay, rate=rate)
        if cost:
            self._denied += 1
        return Decision(False, burst, rem, retry, reset, delay, rate=rate)

    async def acheck(self, key: Key, cost: int = 1) -> Decision:
        if cost.__class__ is not int or cost < 0 or cost > self.capacity:
            cost = self._checked_cost(cost)
        if cost == 1 and self._clock is None and self._wire:
            known = self._known.get(key) if key.__class__ in _KEY_TYPES else None
            keys, packed = known or self._keys_packed(key)
            d = await self._arun(keys, self._argv1, self._meta, packed=packed)
        else:
            d = await self._arun(self.namer.keys(key), self._argv(cost, self._parts), self._meta)
        return self._count(d, cost)

    # -- groups -------------------------------------------------------------

    def _group(
        self, parts: Sequence[tuple[Any, ...]], cost: int
    ) -> tuple[list[bytes], tuple[Any, ...], list[tuple[int, Rate]], list[int], int]:
        """KEYS, ARGV, the (capacity, rate) and the part of each key, and the
        units the group consumes. A part is (backend, key) with ``cost``, or
        (backend, key, its own cost)."""
        group = self._group_keys(parts, cost)
        keys, costs = group.keys, group.costs
        specs = [x for backend in group.backends for x in backend._parts]
        if self.conn.cluster:
            from redis.crc import key_slot

            slots = {key_slot(k) for k in keys}
            if len(slots) > 1:
                raise ConfigError(
                    "on Redis Cluster, the keys of one check_all must share a hash tag "
                    "(one slot, or Redis would answer CROSSSLOT): give the limiters "
                    "hash_tag=... (a constant, or a function of the key such as a "
                    "tenant id) so that every part maps to the same tag; see docs/redis.md"
                )
        if len(set(costs)) == 1:
            argv = self._argv(costs[0], specs)
        else:  # one cost per key, as the script reads them
            argv = self._argv(0, specs)
            argv = (argv[0], ",".join(map(str, costs)).encode(), *argv[2:])
        return keys, argv, group.meta, group.part_of, group.units

    def check_group(self, parts: Sequence[tuple[Any, ...]], cost: int = 1) -> Decision:
        """All-or-nothing over several (backend, key[, cost]) parts, in one
        script call; a denial names its part (``denied_part``)."""
        keys, argv, meta, part_of, units = self._group(parts, cost)
        return self._count(self._run(keys, argv, meta, part_of), units)

    async def acheck_group(self, parts: Sequence[tuple[Any, ...]], cost: int = 1) -> Decision:
        keys, argv, meta, part_of, units = self._group(parts, cost)
        return self._count(await self._arun(keys, argv, meta, part_of), units)

    # -- administration -----------------------------------------------------

    def reset(self, key: Key) -> bool:
        """Forget `key` (every rate); True if Redis held state for it (with
        Redis's clock a key expires when back to full capacity; with a test
        clock it stays). Raises StoreError if Redis fails."""
        keys = self.namer.keys(key)
        try:
            return int(self.conn.sync_client().delete(*keys)) > 0
        except _STORE_ERRORS as exc:
            raise StoreError(f"Redis reset failed: {exc}") from exc

    async def areset(self, key: Key) -> bool:
        keys = self.namer.keys(key)
        try:
            client = self.conn.async_client()
            if client is None:
                n = int(await asyncio.to_thread(self.conn.sync_client().delete, *keys))
            else:
                n = int(await client.delete(*keys))
        except _STORE_ERRORS as exc:
            raise StoreError(f"Redis reset failed: {exc}") from exc
        return n > 0

    def _scan_delete(self, client: Any) -> int:
        batch: list[bytes] = []
        n = 0
        for k in client.scan_iter(match=self.namer.pattern, count=1000):
            batch.append(k)
            if len(batch) >= 500:
                n += self._unlink(client, batch)
                batch = []
        if batch:
            n += self._unlink(client, batch)
        return n

    def _unlink(self, client: Any, batch: list[bytes]) -> int:
        if self.conn.cluster:  # one slot at a time
            return sum(int(client.unlink(k)) for k in batch)
        return int(client.unlink(*batch))

    def clear(self) -> None:
        """Forget every key of this limiter (namespace and algorithm)."""
        try:
            self._scan_delete(self.conn.sync_client())
        except _STORE_ERRORS as exc:
            raise StoreError(f"Redis clear failed: {exc}") from exc

    async def aclear(self) -> None:
        try:
            client = self.conn.async_client()
            if client is None:
                await asyncio.to_thread(self._scan_delete, self.conn.sync_client())
                return
            batch: list[bytes] = []
            async for k in client.scan_iter(match=self.namer.pattern, count=1000):
                batch.append(k)
            for i in range(0, len(batch), 500):
                chunk = batch[i : i + 500]
                if self.conn.cluster:
                    for k in chunk:
                        await client.unlink(k)
                else:
                    await client.unlink(*chunk)
        except _STORE_ERRORS as exc:
            raise StoreError(f"Redis clear failed: {exc}") from exc

    def _store_stats(self) -> dict[str, int]:
        """The keys of this limit in Redis (-1 if Redis cannot be reached;
        counting scans the namespace)."""
        active = -1
        try:
            if self.conn.breaker.state != OPEN:
                active = sum(
                    1
                    for _ in self.conn.sync_client().scan_iter(match=self.namer.pattern, count=1000)
                )
        except (ConfigError, *_STORE_ERRORS):
            active = -1
        return {"active_keys": active}

    def _release(self) -> None:
        release(self.conn)

    def __repr__(self) -> str:
        where = (
            self.conn.parsed.store_url.text
            if self.conn.parsed
            else type(self.conn._sync or self.conn._user_async).__name__
        )
        return f"<RedisBackend {self.spec.algorithm} {list(map(str, self.rates))} on {where}>"


def open_redis(url: StoreURL, spec: LimitSpec, **options: Any) -> RedisBackend:
    """The factory of every Redis URL scheme (registered by the package)."""
    parsed = RedisURL(url)
    opts = RedisOptions.read(options, parsed)
    conn = shared(
        parsed,
        (
            opts.failure,
            opts.max_connections,
            opts.scripting,
            repr(sorted(opts.client_options.items())),
        ),
        settings=opts.failure,
        client_options=opts.client_options,
        max_connections=opts.max_connections,
        scripting=opts.scripting,
    )
    try:
        if parsed.kind != "cluster":
            conn.sync_client()  # builds the client (no I/O): bad options fail now
        return RedisBackend(conn, spec, opts)
    except BaseException:
        release(conn)
        raise


def from_client(client: Any, spec: LimitSpec, **options: Any) -> RedisBackend:
    """A backend on an existing redis.Redis, redis.asyncio.Redis or
    RedisCluster client (its own timeouts apply), or sharing the connection
    of another RedisBackend (so that check_all can group them)."""
    if isinstance(client, RedisBackend):
        base = client
        merged = base.sharing_options(
            base, options, {"timeout", "client_options", "connect_timeout", "max_connections"}
        )
        return RedisBackend.on_shared(base.conn, spec, RedisOptions.read(merged), acquire, release)
    if not (hasattr(client, "execute_command") and hasattr(client, "scan_iter")):
        raise ConfigError(f"not a Redis client: {type(client).__name__}")
    if "client_options" in options or "timeout" in options:
        raise ConfigError(
            "timeout and client_options apply to clients floodwall creates; set them on your client"
        )
    opts = RedisOptions.read(options)
    conn = Connection(client=client, settings=opts.failure, scripting=opts.scripting)
    return RedisBackend(conn, spec, opts)
