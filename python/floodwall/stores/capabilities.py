"""What a store is, asked of the store itself: :class:`StoreCapabilities`.

Code outside the store layer (the web integrations, the limiter) decides how
to call a store from these flags, never from its URL or its class's module.
Each backend sets ``capabilities`` when it is opened.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StoreCapabilities"]


@dataclass(frozen=True)
class StoreCapabilities:
    """The facts about a store that its callers act on.

    ``kind``: a short name for messages and metrics ("memory", "shm", "file",
    "redis", ...), never a switch for behaviour.
    ``inline``: a synchronous call answers in-process, without waiting on a
    disk or a network: an async caller may make it on the event-loop thread.
    ``blocking``: a synchronous call may wait (a disk sync, a network round
    trip): async callers use the async twins, which run it off the loop.
    ``groups``: several (limit, key) parts can be decided all-or-nothing in
    one check (``check_all``), among backends that share the opened store.
    ``shared``: other processes see the same state.
    ``shared_clock``: every process using the store reads one clock (the
    store's), so their decisions agree on time.
    ``durable``: the state survives a restart of every process using it.
    ``can_fail``: a check can fail for reasons outside the caller (a full
    table, a lock not taken in time, an outage): ``fail=`` decides then.
    """

    kind: str
    inline: bool
    blocking: bool
    groups: bool
    shared: bool
    shared_clock: bool
    durable: bool
    can_fail: bool = True
