"""The deadline of one async call to a store: asyncio.timeout's bound, leaner.

A :class:`Deadline` bounds one awaited call of the task that made it: when
it passes, or when :meth:`Deadline.expire` is called (a circuit breaker
opened while the call waited), the task is cancelled; the caller then
calls :meth:`Deadline.end` in the same step as the call's end, which
disarms it and says whether the cancellation was the deadline's (the call
then failed with a timeout, not a cancellation).

It keeps ``asyncio.timeout``'s contract for one call, built from one
``loop.call_at`` handle with the loop passed in: no context-manager
coroutines and no ``get_running_loop`` per step (a ``getpid`` system call
each on Python 3.11), which cost a check several microseconds.

Invariant: a cancellation that did not come from the deadline is never
taken for a timeout; one that did is always withdrawn (``Task.uncancel``),
so an enclosing ``asyncio.timeout`` or TaskGroup sees no stray request.
Python >= 3.11 (``Task.uncancel``); see :data:`SUPPORTED`.
"""

from __future__ import annotations

import asyncio

__all__ = ["SUPPORTED", "Deadline"]

#: Python >= 3.11: a task's cancel requests can be counted and withdrawn.
SUPPORTED = hasattr(asyncio.Task, "uncancel")


class Deadline:
    """``seconds`` from now, for the current task of ``loop`` (see module doc)."""

    __slots__ = ("_cancelling", "_handle", "_task", "expired", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a store call's deadline needs to run inside a task")
        self.loop = loop
        self._task = task
        self._cancelling = task.cancelling()
        #: the deadline cancelled the task (it passed, or expire() was called)
        self.expired = False
        self._handle: asyncio.Handle | None = loop.call_at(loop.time() + seconds, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.expired = True
        self._task.cancel()

    def expire(self) -> None:
        """End the wait now; called on the loop's thread (a deadline already
        ended or expired is left alone)."""
        handle = self._handle
        if handle is not None and not self.expired:
            handle.cancel()
            self._handle = self.loop.call_soon(self._fire)

    def end(self) -> bool:
        """Disarm, in the step the call ended in. True when the deadline
        cancelled the call and no other cancel request came meanwhile: the
        caller answers a timeout instead of the CancelledError it got."""
        handle = self._handle
        if handle is not None:
            handle.cancel()
            self._handle = None
        if self.expired:
            self.expired = False  # withdrawn once
            return self._task.uncancel() <= self._cancelling
        return False
