"""``floodwall status LIMIT CLIENT``: what a client has left and when it refills, consuming nothing.

Exit code 0 when the client's next request would pass, 1 when it is
limited, 2 on an error (unknown limit, a store a CLI cannot see, ...).
"""

from __future__ import annotations

import argparse

from floodwall.cli._target import (
    add_client_arguments,
    add_common_arguments,
    decision_json,
    emit,
    target,
)

HELP = "show what a client has left; consumes nothing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall status``."""
    add_client_arguments(parser)
    add_common_arguments(parser)


def describe(name: str, client: str, allowed: bool, remaining: int, capacity: int,
             retry_after: float, reset_after: float) -> str:
    """One decision in words (shared with ``check``)."""
    head = f"{name} / {client}: "
    if allowed:
        text = f"allowed, {remaining} of {capacity} left"
    else:
        text = f"LIMITED, {remaining} of {capacity} left; next request in {retry_after:.1f} s"
    if reset_after > 0:
        text += f"; full again in {reset_after:.1f} s"
    else:
        text += " (full)"
    return head + text


def run(args: argparse.Namespace) -> int:
    """Peek the client's key under the named limit and print it."""
    t = target(args)
    d = t.entry.limiter.peek(t.key)
    text = describe(args.limit, args.client, d.allowed, d.remaining, d.limit,
                    d.retry_after, d.reset_after)
    emit(args, f"{text}\n  key: {t.key}  store: {t.config.store_text}",
         {"limit_name": args.limit, "client": args.client, "key": t.key, **decision_json(d)})
    return 0 if d.allowed else 1
