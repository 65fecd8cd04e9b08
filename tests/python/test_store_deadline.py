# test_store_deadline.py - the deadline of one async store call (stores/deadline.py).
#
# It bounds the call as asyncio.timeout does: it cancels the task when it
# passes or is expired early, says so once, withdraws its own cancel request
# (an enclosing timeout or TaskGroup sees none), and never claims a
# cancellation that came from elsewhere. Deadlines sharing one timer each
# end at their own time, on one handle.
from __future__ import annotations

import asyncio
import time

import pytest

from floodwall.stores.deadline import SUPPORTED, Deadline

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="Task.uncancel needs Python >= 3.11")


def test_a_passed_deadline_cancels_the_call_and_says_so_once() -> None:
    async def main() -> tuple[float, bool, bool, int]:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        deadline = Deadline(loop, 0.05)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            mine = deadline.end()
        else:  # pragma: no cover - the sleep must not finish
            raise AssertionError("the deadline did not cancel the call")
        again = deadline.end()
        await asyncio.sleep(0)  # no cancel request left to deliver
        return time.perf_counter() - start, mine, again, asyncio.current_task().cancelling()  # type: ignore[union-attr]

    waited, mine, again, cancelling = asyncio.run(main())
    assert 0.04 < waited < 1.0
    assert mine is True and again is False
    assert cancelling == 0


def test_a_call_that_ends_in_time_is_not_cancelled_later() -> None:
    async def main() -> tuple[bool, int]:
        deadline = Deadline(asyncio.get_running_loop(), 0.05)
        await asyncio.sleep(0)
        mine = deadline.end()
        await asyncio.sleep(0.1)  # past the deadline: nothing fires
        return mine, asyncio.current_task().cancelling()  # type: ignore[union-attr]

    assert asyncio.run(main()) == (False, 0)


def test_expire_ends_the_wait_at_once() -> None:
    async def main() -> tuple[float, bool]:
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop, 30.0)
        loop.call_later(0.05, deadline.expire)
        start = time.perf_counter()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return time.perf_counter() - start, deadline.end()
        raise AssertionError("expire() did not end the wait")  # pragma: no cover

    waited, mine = asyncio.run(main())
    assert waited < 1.0 and mine is True


def test_expire_after_the_end_does_nothing() -> None:
    async def main() -> int:
        deadline = Deadline(asyncio.get_running_loop(), 30.0)
        assert deadline.end() is False
        deadline.expire()
        await asyncio.sleep(0.02)
        return asyncio.current_task().cancelling()  # type: ignore[union-attr]

    assert asyncio.run(main()) == 0


def test_a_cancellation_from_elsewhere_is_not_the_deadlines() -> None:
    """The task is cancelled by its owner while the deadline is pending: end()
    says False and the caller lets the CancelledError through."""

    async def call() -> bool:
        deadline = Deadline(asyncio.get_running_loop(), 30.0)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            assert deadline.end() is False
            raise
        raise AssertionError("not cancelled")  # pragma: no cover

    async def main() -> None:
        task = asyncio.ensure_future(call())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_both_cancelled_the_owner_wins() -> None:
    """The deadline expired and the owner cancelled the task in the same turn:
    not a timeout (the owner's cancellation goes on), and the deadline's own
    request is withdrawn."""
    made: list[Deadline] = []

    async def call() -> tuple[bool, int]:
        made.append(Deadline(asyncio.get_running_loop(), 30.0))
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return made[0].end(), asyncio.current_task().cancelling()  # type: ignore[union-attr]
        raise AssertionError("not cancelled")  # pragma: no cover

    async def main() -> tuple[bool, int]:
        task = asyncio.ensure_future(call())
        await asyncio.sleep(0.02)
        made[0].expire()
        task.cancel()
        await asyncio.sleep(0)  # the expiry fires in this turn
        return await task

    assert asyncio.run(main()) == (False, 1)


def test_outside_a_task_it_refuses() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError):
            Deadline(loop, 1.0)
    finally:
        loop.close()


def test_deadlines_on_one_timer_each_end_at_their_own_time() -> None:
    """Three calls on one DeadlineTimer: the first passes its deadline, the
    second ends in time (the handle armed for the first must then re-arm
    past it), the third passes its own, later deadline; one handle on the
    loop serves them all."""
    from floodwall.stores.deadline import DeadlineTimer

    async def call(timer: DeadlineTimer, start: float, work: float) -> tuple[float, bool]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(start)
        began = time.perf_counter()
        deadline = Deadline(loop, timer.seconds, timer)
        try:
            await asyncio.sleep(work)
        except asyncio.CancelledError:
            return time.perf_counter() - began, deadline.end()
        return time.perf_counter() - began, deadline.end()

    async def main() -> tuple[list[tuple[float, bool]], int]:
        loop = asyncio.get_running_loop()
        timer = DeadlineTimer(loop, 0.2)
        before = len(loop._scheduled)  # type: ignore[attr-defined]
        tasks = [
            asyncio.ensure_future(call(timer, 0.0, 5.0)),
            asyncio.ensure_future(call(timer, 0.05, 0.05)),
            asyncio.ensure_future(call(timer, 0.1, 5.0)),
        ]
        await asyncio.sleep(0.12)  # all three deadlines pending; the sleeps' own handles
        handles = len(loop._scheduled) - before  # type: ignore[attr-defined]
        return list(await asyncio.gather(*tasks)), handles

    (first, second, third), handles = asyncio.run(main())
    assert first[1] is True and 0.15 < first[0] < 1.0  # its deadline: 0.2 s
    assert second[1] is False and second[0] < 0.15  # ended in time, never cancelled
    assert third[1] is True and 0.15 < third[0] < 1.0  # its own deadline, not the first's
    assert handles == 1 + 2  # the timer's one handle, and the two sleeps still pending


def test_expire_on_a_shared_timer_ends_that_call_only() -> None:
    from floodwall.stores.deadline import DeadlineTimer

    async def main() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        timer = DeadlineTimer(loop, 30.0)
        made: list[Deadline] = []

        async def call() -> bool:
            made.append(Deadline(loop, 30.0, timer))
            deadline = made[-1]
            try:
                await asyncio.sleep(0.3)
            except asyncio.CancelledError:
                return deadline.end()
            return deadline.end()

        start = time.perf_counter()
        a, b = asyncio.ensure_future(call()), asyncio.ensure_future(call())
        await asyncio.sleep(0.02)
        made[0].expire()
        expired_a = await a
        waited = time.perf_counter() - start
        return expired_a, await b, waited

    expired_a, expired_b, waited = asyncio.run(main())
    assert expired_a is True and waited < 0.25  # ended at once, not after its sleep
    assert expired_b is False  # the other call on the timer ran to its end
