"""Calling the check script: one routine for FCALL, EVALSHA and EVAL.

:func:`script_call` is written once, as a generator that yields the Redis
commands to send and receives their answers (or their errors); the sync and
async drivers (:func:`run_sync`, :func:`run_async`) only send them. The
routine: FCALL of the floodwall function (Redis >= 7); if the function is
missing (a restart, FUNCTION FLUSH, a new node), FUNCTION LOAD it and call
again; if functions cannot be used (Redis < 7, an ACL), EVALSHA from then
on; on NOSCRIPT, EVAL (which caches the script).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from floodwall.stores.redis.scripts import check_library, check_script

__all__ = ["ScriptMode", "run_async", "run_sync", "script_call"]

Command = tuple[Any, ...]
Routine = Generator[Command, Any, Any]


class ScriptMode:
    """How one connection calls the script: ``scripting`` is "auto" (FCALL,
    falling back to EVALSHA for good if the server cannot), "function" or
    "eval". Shared by every backend of the connection."""

    __slots__ = ("fname", "library", "scripting", "script", "sha", "use_fcall")

    def __init__(self, scripting: str = "auto") -> None:
        self.scripting = scripting
        self.use_fcall = scripting in ("auto", "function")
        self.script, self.sha = check_script()
        self.fname, self.library = check_library()

    @staticmethod
    def function_missing(exc: ResponseError) -> bool:
        return "function not found" in str(exc).lower()

    def functions_unavailable(self, exc: ResponseError) -> bool:
        """Redis < 7, or FUNCTION/FCALL refused: use EVALSHA from now on."""
        text = str(exc).lower()
        if self.scripting == "auto" and (
            "unknown command" in text or "noperm" in text or "no permissions" in text
        ):
            self.use_fcall = False
            return True
        return False


def script_call(
    mode: ScriptMode,
    keys: Sequence[bytes],
    argv: Sequence[Any],
    first_error: Exception | None = None,
) -> Routine:
    """The commands of one check call, as a generator (see the module doc).

    ``first_error``: the error the first command (FCALL, or EVALSHA) already
    got when a caller sent it itself (the hot path): it is not sent again.
    """
    n = len(keys)
    pending = first_error

    def first(command: Command) -> Command:
        nonlocal pending
        if pending is not None:
            error, pending = pending, None
            raise error
        return command

    if mode.use_fcall:
        try:
            return (yield first(("FCALL", mode.fname, n, *keys, *argv)))
        except ResponseError as exc:
            if mode.function_missing(exc):
                yield ("FUNCTION LOAD", "REPLACE", mode.library)
                return (yield ("FCALL", mode.fname, n, *keys, *argv))
            if not mode.functions_unavailable(exc):
                raise
    try:
        return (yield first(("EVALSHA", mode.sha, n, *keys, *argv)))
    except NoScriptError:
        return (yield ("EVAL", mode.script, n, *keys, *argv))


def run_sync(client: Any, routine: Routine, target: Any = None) -> Any:
    """Drive a routine with a synchronous client (on Cluster, ``target`` is
    the node every command goes to)."""
    kw = {} if target is None else {"target_nodes": target}
    try:
        command = next(routine)
        while True:
            try:
                answer = client.execute_command(*command, **kw)
            except Exception as exc:  # handed to the routine, which may re-raise
                command = routine.throw(exc)
            else:
                command = routine.send(answer)
    except StopIteration as stop:
        return stop.value


async def run_async(client: Any, routine: Routine, target: Any = None) -> Any:
    """Drive a routine with a redis.asyncio client."""
    kw = {} if target is None else {"target_nodes": target}
    try:
        command = next(routine)
        while True:
            try:
                answer = await client.execute_command(*command, **kw)
            except Exception as exc:
                command = routine.throw(exc)
            else:
                command = routine.send(answer)
    except StopIteration as stop:
        return stop.value
