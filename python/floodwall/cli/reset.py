"""``floodwall reset LIMIT CLIENT``: unblock one client (its key is back to full capacity).

Exit code 0 when done, 2 on an error.
"""

from __future__ import annotations

import argparse

from floodwall.cli._target import add_client_arguments, add_common_arguments, emit, target

HELP = "unblock one client (back to full capacity)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``floodwall reset``."""
    add_client_arguments(parser)
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Reset the client's key under the named limit, and show it is full."""
    t = target(args)
    before = t.entry.limiter.peek(t.key)
    t.entry.limiter.reset(t.key)
    after = t.entry.limiter.peek(t.key)
    emit(
        args,
        f"{args.limit} / {args.client}: reset; {after.remaining} of {after.limit} left "
        f"(was {before.remaining})\n  key: {t.key}  store: {t.config.store_text}",
        {"limit_name": args.limit, "client": args.client, "key": t.key,
         "remaining_before": before.remaining, "remaining": after.remaining,
         "limit": after.limit},
    )
    return 0
