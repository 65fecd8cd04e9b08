"""The pool of floodwall's own asyncio Redis clients: a free connection in O(1).

A :class:`CheckPool` is redis-py's ``BlockingConnectionPool`` (a bounded
pool where tasks queue for a free connection) with a fast path for the
packed check (:mod:`.wire`): :meth:`CheckPool.take_free` hands out a free
connection, and :meth:`CheckPool.put_back` takes it back, each as one
plain call, when no task is queued and the pool is not in maintenance.
redis-py's own ``get_connection``/``release`` cost about 110 Python calls
(10 us) per check: a condition, an ``asyncio.timeout``, context managers,
an event dispatch and metrics records, none of which a free connection
needs. Whenever the fast path declines (no free connection, tasks queued,
maintenance, a connection to reconnect, an unknown redis-py layout) the
caller uses the pool's own methods, so queueing, its fairness and its
bound are redis-py's.

Invariant: a connection is in exactly one of the pool's free list and
in-use set, as redis-py keeps them; the fast path runs only while no task
is queued, so it never gives a connection back without waking the queue.
(As with redis-py's own ``get_connection``, a newcomer may take a connection
that a woken task has not yet run to take; that task waits again and is
woken at the next release, within its deadline.)
What the fast path skips: redis-py's per-checkout metrics and the released
event (which re-authenticates with a streaming credential provider: the
packed path is off for clients given one, see :func:`.wire.usable`).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio

__all__ = ["CheckPool"]


class CheckPool(redis.asyncio.BlockingConnectionPool):
    """A BlockingConnectionPool with an O(1) path for free connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the layout this fast path relies on (redis-py >= 5); else it declines
        self._fast = (
            isinstance(getattr(self, "_available_connections", None), list)
            and hasattr(getattr(self, "_in_use_connections", None), "add")
            and hasattr(getattr(self, "_condition", None), "_waiters")
        )

    def _queue_empty(self) -> bool:
        return (
            self._fast
            and not self._condition._waiters
            and not getattr(self, "_in_maintenance", False)
        )

    def take_free(self) -> Any:
        """A free connection, now in use; None when the caller must use
        ``get_connection`` (which queues, connects, and checks)."""
        free = self._available_connections if self._fast else None
        if not free or not self._queue_empty():
            return None
        conn = free.pop()
        self._in_use_connections.add(conn)
        return conn

    def put_back(self, conn: Any) -> bool:
        """Give ``conn`` back to the free list; False when the caller must
        use ``release`` (tasks queued to wake, or a connection to reconnect)."""
        if not self._queue_empty():
            return False
        should_reconnect = getattr(conn, "should_reconnect", None)
        if should_reconnect is not None and should_reconnect():
            return False
        self._in_use_connections.remove(conn)
        self._available_connections.append(conn)
        return True
